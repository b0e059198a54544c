"""Fixed vectors in tests/vectors/audit/ for other implementations: entries and their leaf hashes, the roots of a
small tree, inclusion and consistency proofs, a signed checkpoint and an evidence file, under a TEST key.

The test rebuilds every vector from its inputs and compares; ``MCPS_REGENERATE_VECTORS=1`` rewrites the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcps.audit.checkpoint import open_checkpoint, sign_checkpoint, verifier_key
from mcps.audit.entry import AuditEvent, build_entry, json_hash
from mcps.audit.evidence import check_evidence
from mcps.audit.merkle import (
    ListNodeSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.keys import PrivateKey, PublicKey

VECTORS = Path(__file__).parent.parent / "vectors" / "audit" / "audit-log.json"
# TEST KEY — published in this repository for test vectors only; never use it to sign anything real.
TEST_KEY_D = "bWNwcy1hdWRpdC12ZWN0b3JzLVRFU1QtS0VZLTAwMDE"  # 32 bytes: "mcps-audit-vectors-TEST-KEY-0001"
ORIGIN = "example.test/mcps-audit-vectors"
TIME_MS = 1_763_683_200_000


def _test_key() -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(b64u_decode(TEST_KEY_D)))


def _events() -> list[AuditEvent]:
    return [
        AuditEvent(
            event="call",
            agent="agent://alice",
            kid="kid-alice",
            trust_level=2,
            method="tools/call",
            tool="get_weather",
            request_id=1,
            args_hash=json_hash({"city": "Paris"}),
            decision="allow",
        ),
        AuditEvent(
            event="result",
            agent="agent://alice",
            method="tools/call",
            tool="get_weather",
            request_id=1,
            result_hash=json_hash({"content": []}),
            latency_ms=42,
            upstream="weather",
        ),
        AuditEvent(
            event="deny",
            agent="agent://mallory",
            trust_level=0,
            method="tools/call",
            tool="transfer",
            request_id="r-7",
            decision="deny",
            code="MCPS-009",
        ),
        AuditEvent(event="list", agent="agent://alice", method="tools/list", request_id=2),
        AuditEvent(event="pin", tool="get_weather", data={"hash": json_hash({"name": "get_weather"})}),
        AuditEvent(event="revoke", kid="kid-mallory"),
        AuditEvent(event="external", data={"note": 'ünïcode and "quotes"'}),
    ]


def build() -> dict[str, Any]:
    key = _test_key()
    entries: list[bytes] = []
    prev = None
    for index, event in enumerate(_events()):
        data = build_entry(event, index=index, prev=prev, time_ms=TIME_MS)
        entries.append(data)
        prev = leaf_hash(data)
    leaves = [leaf_hash(e) for e in entries]
    source = ListNodeSource(leaves)
    size = len(leaves)
    checkpoint = sign_checkpoint(key, ORIGIN, size, root_from_leaves(leaves))
    return {
        "description": "mcps audit log vectors. The key is a TEST KEY published for vectors only.",
        "test_key_jwk": {**key.public_key.to_jwk(), "d": TEST_KEY_D},
        "note_verifier_key": verifier_key(ORIGIN, key.public_key),
        "origin": ORIGIN,
        "entries": [
            {"jcs": e.decode("utf-8"), "leaf_hex": leaf.hex(), "leaf": b64u_encode(leaf)}
            for e, leaf in zip(entries, leaves, strict=True)
        ],
        "roots_hex": [root_from_leaves(leaves[:n]).hex() for n in range(size + 1)],
        "inclusion": [
            {"index": i, "size": n, "proof": [b64u_encode(h) for h in inclusion_proof(source, i, n)]}
            for n, i in [(1, 0), (5, 4), (7, 0), (7, 3), (7, 6)]
        ],
        "consistency": [
            {"old": m, "new": n, "proof": [b64u_encode(h) for h in consistency_proof(source, m, n)]}
            for m, n in [(1, 7), (3, 7), (4, 7), (6, 7), (2, 5)]
        ],
        "checkpoint": checkpoint.note,
        "evidence": {
            "type": "mcps-audit-evidence",
            "v": 1,
            "log": ORIGIN,
            "index": 2,
            "entry": json.loads(entries[2]),
            "proof": [b64u_encode(h) for h in inclusion_proof(source, 2, size)],
            "checkpoint": checkpoint.note,
        },
    }


def test_vectors_are_current() -> None:
    built = build()
    text = json.dumps(built, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("MCPS_REGENERATE_VECTORS") == "1":
        VECTORS.write_text(text, encoding="utf-8")
    assert VECTORS.read_text(encoding="utf-8") == text


def test_vectors_check_from_the_file_alone() -> None:
    """What another implementation would do: recompute from the stored values only."""
    v = json.loads(VECTORS.read_text(encoding="utf-8"))
    key = PublicKey.from_jwk({k: v["test_key_jwk"][k] for k in ("kty", "crv", "x")})
    leaves = [bytes.fromhex(e["leaf_hex"]) for e in v["entries"]]
    prev = None
    for index, item in enumerate(v["entries"]):
        assert leaf_hash(item["jcs"].encode("utf-8")).hex() == item["leaf_hex"]
        entry = json.loads(item["jcs"])
        assert (entry["index"], entry["prev"]) == (index, prev)
        prev = item["leaf"]
    roots = [bytes.fromhex(r) for r in v["roots_hex"]]
    assert [root_from_leaves(leaves[:n]) for n in range(len(leaves) + 1)] == roots
    for item in v["inclusion"]:
        proof = [b64u_decode(h) for h in item["proof"]]
        verify_inclusion(leaves[item["index"]], item["index"], item["size"], proof, roots[item["size"]])
    for item in v["consistency"]:
        proof = [b64u_decode(h) for h in item["proof"]]
        verify_consistency(item["old"], item["new"], roots[item["old"]], roots[item["new"]], proof)
    checkpoint = open_checkpoint(v["checkpoint"], key, v["origin"])
    assert (checkpoint.size, checkpoint.root) == (len(leaves), roots[-1])
    assert check_evidence(v["evidence"], key).index == 2
