"""The hop-record vectors in ``tests/vectors/hops`` (SPEC.md §12.3–12.4; format in that folder's README).

Each vector runs through :class:`mcps.verifier.MessageVerifier` with :class:`~mcps.verifier.HopTrust` holding the
vector's hop keys, the agent's key pinned, a fresh nonce store and the vector's own ``now``, receiver, skew and
``required``: the outcome must be the vector's ``expect``, and positive vectors state each record's exact signing
input. The committed files must be exactly what ``tests/vectors/generate_hops.py`` writes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mcps.core.envelope import PinnedKeys
from mcps.core.errors import McpsError
from mcps.core.hops import hop_signing_input
from mcps.core.keys import PublicKey
from mcps.core.strict import parse_message
from mcps.stores.nonces import MemoryNonceStore
from mcps.verifier import HopTrust, MessageVerifier

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PATHS = sorted((VECTORS / "hops").glob("*/*.json"))
LOADED = {path: json.loads(path.read_text(encoding="utf-8")) for path in PATHS}
ONE_HOP = LOADED[VECTORS / "hops" / "valid" / "one-hop.json"]["message"]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("mcps_vectors_generate_hops", VECTORS / "generate_hops.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", PATHS, ids=[f"{p.parent.name}/{p.stem}" for p in PATHS])
async def test_hop_vector(path: Path) -> None:
    vector = LOADED[path]
    verifier = MessageVerifier(
        audience=vector["receiver"],
        keys=PinnedKeys([PublicKey.from_jwk(vector["public_key"])]),
        nonces=MemoryNonceStore(),
        max_skew=vector["skew"],
        clock=lambda: float(vector["now"]),
        hops=HopTrust(PinnedKeys([PublicKey.from_jwk(jwk) for jwk in vector["hop_keys"]]), vector["required"]),
    )
    raw = vector["message"].encode("utf-8")
    message = parse_message(raw)
    irt = None
    if "result" in message:  # the answer vector answers the one-hop request
        irt = json.loads(ONE_HOP)["params"]["_meta"]["mcps/sig"]["sig"]
    if vector["expect"] == "valid":
        verified = await verifier.verify(raw, in_reply_to=irt)
        container = message["params"]["_meta"] if "params" in message else message["result"]["_meta"]
        prev, inputs = container["mcps/sig"]["sig"], []
        for record in container.get("mcps/via", []):
            inputs.append(hop_signing_input(record, prev).decode("utf-8"))
            prev = record["sig"]
        assert inputs == vector["hop_signing_inputs"]
        assert len(verified.hops) == len(inputs)
    else:
        with pytest.raises(McpsError) as refusal:
            await verifier.verify(raw, in_reply_to=irt)
        assert refusal.value.code.mcps == vector["expect"], vector["description"]


def test_vectors_cover_every_defect_of_section_12_4() -> None:
    names = {f"{p.parent.name}/{p.stem}" for p in PATHS}
    required = {"invalid/missing-required", "invalid/chain-broken", "invalid/unknown-hop-key", "invalid/grant-swapped"}
    assert required | {"invalid/record-changed", "valid/two-hops", "valid/with-grant"} <= names


def test_committed_vectors_are_what_the_generator_writes() -> None:
    for relative, content in _generator().all_files().items():
        assert (VECTORS / relative).read_text(encoding="utf-8") == content, relative
