"""Generate the hop-record vectors (``tests/vectors/hops/``, SPEC.md §12.3–12.4) deterministically.

Run by hand from the repository root after a deliberate change to the wire format::

    .venv/bin/python tests/vectors/generate_hops.py

Everything is fixed: the TEST keys (``keys/`` of the message vectors, plus ``hops/keys.json`` for the gateways)
derive from public seeds, times and nonces are constants, grants carry a fixed ``jti``, and both algorithms sign
deterministically. ``tests/unit/test_hop_vectors.py`` checks that the committed files are exactly what this writes.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mcps.core.encoding import b64u_encode
from mcps.core.envelope import request_binding
from mcps.core.hops import countersign, hop_signing_input
from mcps.core.keys import PrivateKey
from mcps.core.strict import parse_message
from mcps.identity.grants import GRANT_TYP, argument_hash
from mcps.identity.jws import sign_compact

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("mcps_vectors_generate", HERE / "generate.py")
assert _spec is not None
assert _spec.loader is not None
_base = importlib.util.module_from_spec(_spec)
sys.modules.setdefault(_spec.name, _base)
_spec.loader.exec_module(_base)

NOW = _base.NOW
SKEW = _base.SKEW
UPSTREAM = _base.AUDIENCE
AGENT = "agent-7"
GATEWAY = "urn:mcps:gateway:vectors"
EDGE = "urn:mcps:gateway:edge"


def gateway_keys() -> dict[str, PrivateKey]:
    """``gateway`` (P-256, from the message vectors' keys) and ``edge`` (Ed25519, its own seed): both TEST keys."""
    seed = hashlib.sha256(b"mcps test vector key: edge-gateway").digest()
    return {
        "gateway": _base.fixed_keys()["p256"],
        "edge": PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed)),
    }


def _grant(gateway: PrivateKey, request: dict[str, Any]) -> str:
    claims = {
        "iss": GATEWAY,
        "sub": AGENT,
        "aud": UPSTREAM,
        "tool": request["params"]["name"],
        "args": argument_hash(request["params"]["arguments"]),
        "req": request_binding(_base.sig_of(request)),
        "tl": 2,
        "scope": "payments:write",
        "jti": b64u_encode(hashlib.sha256(b"mcps test vector grant").digest()[:16]),
        "iat": NOW,
        "exp": NOW + 30,
    }
    return sign_compact(claims, gateway, typ=GRANT_TYP)


def _signing_inputs(raw: str) -> list[str]:
    message = parse_message(raw.encode("utf-8"))
    container = _base.block_of(message)
    holder = message["params"]["_meta"] if "params" in message else message["result"]["_meta"]
    via = holder.get("mcps/via", [])
    inputs, prev = [], container["sig"]
    for record in via:
        inputs.append(hop_signing_input(record, prev).decode("utf-8"))
        prev = record["sig"]
    return inputs


def _vector(description: str, raw: str, expect: str, *, receiver: str = UPSTREAM, required: bool = True) -> Any:
    keys = gateway_keys()
    agent = _base.fixed_keys()["ed25519"]
    vector: dict[str, Any] = {
        "description": description,
        "public_key": agent.public_key.to_jwk(),
        "hop_keys": [keys["gateway"].public_key.to_jwk(), keys["edge"].public_key.to_jwk()],
        "receiver": receiver,
        "now": NOW,
        "skew": SKEW,
        "required": required,
        "message": raw,
    }
    if expect == "valid":
        vector["hop_signing_inputs"] = _signing_inputs(raw)
    vector["expect"] = expect
    return vector


def _forwarded(name: str, **options: Any) -> dict[str, Any]:
    keys = gateway_keys()
    agent = _base.fixed_keys()["ed25519"]
    request = _base.sign_fixed(_base.REQUEST, agent, f"hops-{name}", audience=UPSTREAM)
    return countersign(request, keys["gateway"], identity=GATEWAY, audience=UPSTREAM, now=NOW, **options)


def _via(message: dict[str, Any]) -> list[dict[str, Any]]:
    via: list[dict[str, Any]] = message["params"]["_meta"]["mcps/via"]
    return via


def vectors() -> dict[str, Any]:
    keys = gateway_keys()
    agent = _base.fixed_keys()["ed25519"]
    out: dict[str, Any] = {}
    text = _base.text

    one = _forwarded("one-hop")
    out["valid/one-hop"] = _vector("An agent's request forwarded by one gateway (P-256).", text(one), "valid")
    request = _base.sign_fixed(_base.REQUEST, agent, "hops-with-grant", audience=UPSTREAM)
    grant = _grant(keys["gateway"], request)
    granted = copy.deepcopy(request)
    granted["params"]["_meta"]["mcps/grant"] = grant
    granted = countersign(granted, keys["gateway"], identity=GATEWAY, audience=UPSTREAM, now=NOW, grant=grant)
    out["valid/with-grant"] = _vector(
        "Forwarded with the gateway's grant, named in its record by hash.", text(granted), "valid"
    )
    edge_request = _base.sign_fixed(_base.REQUEST, agent, "hops-two", audience=UPSTREAM)
    edge = countersign(edge_request, keys["edge"], identity=EDGE, audience=GATEWAY, now=NOW)
    two = countersign(edge, keys["gateway"], identity=GATEWAY, audience=UPSTREAM, now=NOW + 1)
    out["valid/two-hops"] = _vector(
        "Two gateways: the edge names the next gateway, which names the upstream.", text(two), "valid"
    )
    result = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}
    answer = _base.sign_fixed(result, agent, "hops-answer", audience=AGENT, in_reply_to=_base.sig_of(one))
    receipt = {"log": "mcps.audit/vectors", "index": 41, "leaf": b64u_encode(hashlib.sha256(b"leaf").digest())}
    back = countersign(answer, keys["gateway"], identity=GATEWAY, audience=AGENT, now=NOW, receipt=receipt)
    out["valid/answer-with-receipt"] = _vector(
        "An answer countersigned on its way back, carrying the gateway's audit receipt.",
        text(back),
        "valid",
        receiver=AGENT,
    )
    out["valid/none-not-required"] = _vector(
        "No hop record, at a receiver that does not require one.",
        text(_base.sign_fixed(_base.REQUEST, agent, "hops-none", audience=UPSTREAM)),
        "valid",
        required=False,
    )

    def bad(name: str, description: str, message: dict[str, Any] | str, code: str, **options: Any) -> None:
        raw = message if isinstance(message, str) else text(message)
        out[f"invalid/{name}"] = _vector(description, raw, code, **options)

    bad("missing-required", "No mcps/via at a receiver that requires hops.",
        _base.sign_fixed(_base.REQUEST, agent, "hops-missing", audience=UPSTREAM), "MCPS-034")  # fmt: skip
    changed = _forwarded("changed-iss")
    _via(changed)[0]["iss"] = "urn:mcps:gateway:evil"
    bad("record-changed", "A member of the record changed after it was signed (iss).", changed, "MCPS-004")
    stranger = PrivateKey.from_crypto(
        ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"stranger").digest())
    )
    substituted = countersign(
        _base.sign_fixed(_base.REQUEST, agent, "hops-substituted", audience=UPSTREAM),
        stranger, identity=GATEWAY, audience=UPSTREAM, now=NOW,
    )  # fmt: skip
    bad(
        "unknown-hop-key",
        "Countersigned by a key the receiver does not trust (a substituted gateway).",
        substituted,
        "MCPS-029",
    )
    bad(
        "wrong-aud",
        "The last record names another receiver.",
        _forwarded("wrong-aud"),
        "MCPS-011",
        receiver="urn:example:other",
    )
    moved = _forwarded("moved")
    other = _base.sign_fixed(_base.REQUEST, agent, "hops-moved-target", audience=UPSTREAM)
    other["params"]["_meta"]["mcps/via"] = _via(moved)
    bad("record-moved-to-another-message", "A genuine record copied onto another signed message.", other, "MCPS-004")
    broken_edge = countersign(
        _base.sign_fixed(_base.REQUEST, agent, "hops-broken", audience=UPSTREAM),
        keys["edge"], identity=EDGE, audience="urn:somewhere:else", now=NOW,
    )  # fmt: skip
    broken = countersign(broken_edge, keys["gateway"], identity=GATEWAY, audience=UPSTREAM, now=NOW)
    bad("chain-broken", "The second hop's iss is not the aud the first hop named.", broken, "MCPS-034")
    bad("on-behalf-not-its-block", "on_behalf is true but the block was made by the agent.",
        _forwarded("on-behalf", on_behalf=True), "MCPS-034")  # fmt: skip
    future = countersign(
        _base.sign_fixed(_base.REQUEST, agent, "hops-future", audience=UPSTREAM),
        keys["gateway"], identity=GATEWAY, audience=UPSTREAM, now=NOW + SKEW + 1,
    )  # fmt: skip
    bad("iat-in-future", "The record's iat is beyond now + skew.", future, "MCPS-006")
    extra = _forwarded("extra")
    _via(extra)[0]["note"] = "hi"
    bad("unknown-member", "A record with a member not in §12.3.", extra, "MCPS-034")
    v2 = _forwarded("v2")
    _via(v2)[0]["v"] = 2
    bad("v2", "A record of another version.", v2, "MCPS-015")
    none = _forwarded("alg-none")
    _via(none)[0]["alg"] = "none"
    bad("alg-none", "A record naming the algorithm none.", none, "MCPS-028")
    flat = _forwarded("not-array")
    flat["params"]["_meta"]["mcps/via"] = _via(flat)[0]
    bad("via-not-an-array", "mcps/via is an object, not an array of records.", flat, "MCPS-034")
    swapped = copy.deepcopy(granted)
    swapped["params"]["_meta"]["mcps/grant"] = _grant(keys["edge"], request)
    bad("grant-swapped", "The grant carried is not the one the last hop named.", swapped, "MCPS-032")
    return out


def all_files() -> dict[str, str]:
    keys = gateway_keys()
    files = {"hops/keys.json": _base.render({name: _base.private_jwk(key) for name, key in keys.items()})}
    for name, vector in vectors().items():
        files[f"hops/{name}.json"] = _base.render(vector)
    return files


def main() -> None:
    for relative, content in all_files().items():
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    print(f"wrote {len(all_files())} files under {HERE / 'hops'}")


if __name__ == "__main__":
    main()
