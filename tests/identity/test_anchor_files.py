"""Anchors files are parsed as strictly as messages and as the ``issuerKeysUrl`` document (issue 9 §1.3, SPEC.md
§7.4): a duplicate member, a non-I-JSON number, a lone surrogate or an oversized file refuses the whole set
(MCPS-029), and so does an ``alg`` that does not match its key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import load_public_jwk
from mcps.identity.anchors import MAX_JWKS_BYTES, TrustAnchors
from mcps.identity.levels import TrustLevel
from mcps.identity.remote_anchors import RemoteTrustAnchors

from .pki import ANCHOR, ANCHORS, LOW_ANCHOR, NOW

ANCHOR_JWK = json.dumps(ANCHOR.public_key.to_jwk())[1:-1]  # the members, to splice into hand-written files


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "anchors.jwks"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return path


def refused(path: Path) -> McpsError:
    with pytest.raises(McpsError) as caught:
        TrustAnchors.load(path)
    assert caught.value.code is ErrorCode.UNKNOWN_KEY
    assert caught.value.message == "trust anchors are invalid"
    return caught.value


def test_anchor_file_with_a_duplicate_max_level_is_refused_not_read_as_the_last(tmp_path: Path) -> None:
    good = write(tmp_path, '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":1}]}')
    assert TrustAnchors.load(good).get(ANCHOR.kid) is not None
    path = write(tmp_path, '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":1,"mcps_max_tl":4}]}')
    assert "MCPS-020" in (refused(path).detail or "")


@pytest.mark.parametrize(
    "text",
    [
        '{"keys":[],"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":4}]}',  # a second set hidden behind the first
        '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":NaN}]}',
        '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":18446744073709551620}]}',
        '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":4,"note":"\\ud800"}]}',
        '\ufeff{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":4}]}',
        '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":true}]}',
        '[{"keys":[]}]',
        "not json",
    ],
    ids=["duplicate-keys-member", "nan", "integer-too-large", "lone-surrogate", "bom", "bool-level", "array", "text"],
)
def test_anchor_file_that_is_not_strict_i_json_is_refused_whole(tmp_path: Path, text: str) -> None:
    refused(write(tmp_path, text))


def test_anchor_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    text = json.dumps(ANCHORS.to_jwks())
    refused(write(tmp_path, text[:-1] + " " * (MAX_JWKS_BYTES - len(text) + 1) + "}"))
    assert len(TrustAnchors.load(write(tmp_path, text[:-1] + " " * (MAX_JWKS_BYTES - len(text)) + "}"))) == 2


def test_one_bad_file_refuses_the_bundle_and_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.jwks"
    good.write_text(json.dumps(ANCHORS.to_jwks()))
    bad = write(tmp_path, '{"keys":[{' + ANCHOR_JWK + ',"mcps_max_tl":1,"mcps_max_tl":4}]}')
    with pytest.raises(McpsError) as caught:
        TrustAnchors.load(good, bad)
    assert caught.value.code is ErrorCode.UNKNOWN_KEY
    assert str(bad) in (caught.value.detail or "")
    assert str(bad) not in caught.value.message


def test_anchor_whose_alg_does_not_match_its_key_is_refused_with_029() -> None:
    for anchor, wrong in ((ANCHOR, "ES256"), (LOW_ANCHOR, "EdDSA")):
        jwk = {**anchor.public_key.to_jwk(), "alg": wrong, "mcps_max_tl": 2}
        with pytest.raises(McpsError) as caught:
            TrustAnchors.from_jwks({"keys": [jwk]})
        assert caught.value.code is ErrorCode.UNKNOWN_KEY


def test_anchor_file_whose_alg_does_not_match_its_key_is_refused_with_029(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"keys": [{**ANCHOR.public_key.to_jwk(), "alg": "ES256", "mcps_max_tl": 2}]}))
    refused(path)


async def test_issuer_keys_document_whose_alg_does_not_match_its_key_is_refused_whole() -> None:
    body = json.dumps({"keys": [{**ANCHOR.public_key.to_jwk(), "alg": "ES256", "mcps_max_tl": 2}]}).encode()
    anchors = RemoteTrustAnchors(
        "https://issuer.example/keys",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
        clock=lambda: NOW,
    )
    with pytest.raises(McpsError) as caught:
        await anchors.refresh()
    assert caught.value.code is ErrorCode.TRUST_AUTHORITY_UNREACHABLE
    assert "MCPS-029" in (caught.value.detail or "")


def test_anchor_file_levels_load_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(ANCHORS.to_jwks()))
    loaded = TrustAnchors.load(path)
    assert loaded.get(ANCHOR.kid) is not None
    assert {anchor.max_level for anchor in loaded} == {TrustLevel.L3, TrustLevel.L1}


def test_public_jwk_file_with_a_duplicate_member_is_refused(tmp_path: Path) -> None:
    other = LOW_ANCHOR.public_key.to_jwk()
    path = tmp_path / "key.jwk"
    x, y = other["x"], other["y"]
    path.write_text('{"kty":"EC","crv":"P-256","x":"' + x + '","x":"' + y + '","y":"' + y + '"}')
    with pytest.raises(McpsError) as caught:
        load_public_jwk(path)
    assert caught.value.code is ErrorCode.UNKNOWN_KEY
    assert "MCPS-020" in (caught.value.detail or "")
    path.write_text(json.dumps(other))
    assert load_public_jwk(path) == LOW_ANCHOR.public_key
