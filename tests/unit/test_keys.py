"""Keys (SPEC.md §2): EdDSA and ES256 only, RFC 7638 kids, low-S ES256, strict JWKs, private key files at 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import (
    P256_ORDER,
    Algorithm,
    PrivateKey,
    PublicKey,
    jwks,
    load_jwks,
    load_private_key,
    load_public_jwk,
    save_private_key,
    thumbprint,
)

ALGORITHMS = [Algorithm.EDDSA, Algorithm.ES256]
HALF_ORDER = P256_ORDER // 2


def code_of(error: pytest.ExceptionInfo[McpsError]) -> ErrorCode:
    return error.value.code


@pytest.fixture(scope="module", params=ALGORITHMS, ids=str)
def key(request: pytest.FixtureRequest) -> PrivateKey:
    return PrivateKey.generate(request.param)


@pytest.fixture(scope="module")
def es256_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


# --- generate, sign, verify -------------------------------------------------------------------------------------


def test_sign_and_verify(key: PrivateKey) -> None:
    signature = key.sign(b"message")
    assert len(signature) == 64
    key.public_key.verify(signature, b"message")  # returns None or raises


def test_wrong_data_is_refused(key: PrivateKey) -> None:
    with pytest.raises(McpsError) as caught:
        key.public_key.verify(key.sign(b"message"), b"messagf")
    assert code_of(caught) is ErrorCode.BAD_SIGNATURE


def test_another_keys_signature_is_refused(key: PrivateKey) -> None:
    other = PrivateKey.generate(key.alg)
    with pytest.raises(McpsError) as caught:
        key.public_key.verify(other.sign(b"message"), b"message")
    assert code_of(caught) is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_wrong_signature_length_is_refused(key: PrivateKey, length: int) -> None:
    signature = (key.sign(b"m") * 3)[:length]
    with pytest.raises(McpsError) as caught:
        key.public_key.verify(signature, b"m")
    assert code_of(caught) is ErrorCode.BAD_SIGNATURE


def test_algorithm_and_kid_are_properties_of_the_key(key: PrivateKey) -> None:
    assert key.alg is key.public_key.alg
    assert key.kid == thumbprint(key.public_key.to_jwk())
    assert len(key.kid) == 43
    assert len(b64u_decode(key.kid)) == 32


def test_generate_accepts_jose_names() -> None:
    assert PrivateKey.generate("EdDSA").alg is Algorithm.EDDSA
    assert PrivateKey.generate("ES256").alg is Algorithm.ES256
    with pytest.raises(ValueError):
        PrivateKey.generate("RS256")


def test_ed25519_is_deterministic() -> None:
    key = PrivateKey.generate(Algorithm.EDDSA)
    assert key.sign(b"m") == key.sign(b"m")


def test_es256_signing_is_deterministic(es256_key: PrivateKey) -> None:
    """RFC 6979: the test vectors rely on it."""
    assert es256_key.sign(b"m") == es256_key.sign(b"m")


# --- ES256 low-S and scalar ranges ------------------------------------------------------------------------------


def _r_s(signature: bytes) -> tuple[int, int]:
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def _p1363(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_es256_always_emits_low_s(es256_key: PrivateKey) -> None:
    """Deterministic nonces give about half of raw signatures a high S; every one must come out low."""
    for index in range(200):
        _, s = _r_s(es256_key.sign(b"message %d" % index))
        assert 0 < s <= HALF_ORDER


def test_es256_high_s_is_refused(es256_key: PrivateKey) -> None:
    data = b"malleable?"
    r, s = _r_s(es256_key.sign(data))
    high = _p1363(r, P256_ORDER - s)
    # The high-S twin is a valid ECDSA signature for the raw primitive ...
    raw_key = es256_key.public_key._key
    assert isinstance(raw_key, ec.EllipticCurvePublicKey)
    raw_key.verify(encode_dss_signature(r, P256_ORDER - s), data, ec.ECDSA(hashes.SHA256()))
    # ... and mcps refuses it.
    with pytest.raises(McpsError) as caught:
        es256_key.public_key.verify(high, data)
    assert code_of(caught) is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("name", "scalars"),
    [
        ("r=0", lambda r, s: (0, s)),
        ("s=0", lambda r, s: (r, 0)),
        ("r=n", lambda r, s: (P256_ORDER, s)),
        ("r=n+r", lambda r, s: (P256_ORDER + r, s) if P256_ORDER + r < 2**256 else (2**256 - 1, s)),
        ("s=n", lambda r, s: (r, P256_ORDER)),
        ("r=2^256-1", lambda r, s: (2**256 - 1, s)),
    ],
)
def test_es256_scalars_out_of_range_are_refused(es256_key: PrivateKey, name: str, scalars: object) -> None:
    r, s = _r_s(es256_key.sign(b"m"))
    bad_r, bad_s = scalars(r, s)  # type: ignore[operator]
    with pytest.raises(McpsError) as caught:
        es256_key.public_key.verify(_p1363(bad_r, bad_s), b"m")
    assert code_of(caught) is ErrorCode.BAD_SIGNATURE


# --- JWK --------------------------------------------------------------------------------------------------------


def test_jwk_round_trip(key: PrivateKey) -> None:
    jwk = key.public_key.to_jwk()
    assert jwk["kid"] == key.kid
    assert jwk["alg"] == key.alg.value
    assert jwk["use"] == "sig"
    loaded = PublicKey.from_jwk(jwk)
    assert loaded == key.public_key
    assert loaded.to_jwk() == jwk
    loaded.verify(key.sign(b"m"), b"m")


def test_jwk_members_per_key_type() -> None:
    ed = PrivateKey.generate(Algorithm.EDDSA).public_key.to_jwk()
    assert (ed["kty"], ed["crv"], len(b64u_decode(ed["x"]))) == ("OKP", "Ed25519", 32)
    p256 = PrivateKey.generate(Algorithm.ES256).public_key.to_jwk()
    assert (p256["kty"], p256["crv"]) == ("EC", "P-256")
    assert len(b64u_decode(p256["x"])) == len(b64u_decode(p256["y"])) == 32


def test_jwk_without_kid_and_alg_is_accepted(key: PrivateKey) -> None:
    bare = {k: v for k, v in key.public_key.to_jwk().items() if k not in ("kid", "alg", "use")}
    assert PublicKey.from_jwk(bare).kid == key.kid


def test_rfc8037_appendix_a3_thumbprint() -> None:
    """RFC 8037 Appendix A.3: the RFC 7638 thumbprint of the Appendix A.2 Ed25519 public key."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    expected = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert thumbprint(jwk) == expected
    assert PublicKey.from_jwk(jwk).kid == expected


def test_rfc8037_appendix_a_private_key_matches() -> None:
    """RFC 8037 A.1 private key d derives the A.2 public key, and signs A.4's message as A.4 says."""
    private = PrivateKey.from_jwk(
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    )
    assert private.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    signature = private.sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc")
    assert b64u_encode(signature) == (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )


def test_jwk_with_wrong_kid_is_refused(key: PrivateKey) -> None:
    jwk = {**key.public_key.to_jwk(), "kid": PrivateKey.generate(key.alg).kid}
    with pytest.raises(McpsError) as caught:
        PublicKey.from_jwk(jwk)
    assert code_of(caught) is ErrorCode.UNKNOWN_KEY


@pytest.mark.parametrize("alg", ["the-other-one", "RS256", "none", "HS256"])
def test_jwk_with_wrong_alg_is_refused(key: PrivateKey, alg: str) -> None:
    if alg == "the-other-one":
        alg = "ES256" if key.alg is Algorithm.EDDSA else "EdDSA"
    with pytest.raises(McpsError) as caught:
        PublicKey.from_jwk({**key.public_key.to_jwk(), "alg": alg})
    assert code_of(caught) is ErrorCode.ALGORITHM_MISMATCH


def _p256_point_off_curve() -> dict[str, str]:
    jwk = PrivateKey.generate(Algorithm.ES256).public_key.to_jwk()
    y = int.from_bytes(b64u_decode(jwk["y"]), "big")
    return {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": b64u_encode(((y + 1) % 2**256).to_bytes(32, "big"))}


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param(_p256_point_off_curve(), id="ec-point-not-on-curve"),
        pytest.param({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, id="ec-short-coordinates"),
        pytest.param({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}, id="ec-other-curve"),
        pytest.param({"kty": "EC", "crv": "P-256", "x": b64u_encode(bytes(32))}, id="ec-missing-y"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(bytes(31))}, id="ed25519-31-bytes"),
        pytest.param({"kty": "OKP", "crv": "Ed448", "x": b64u_encode(bytes(57))}, id="ed448"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": 5}, id="x-not-a-string"),
        pytest.param(
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}, id="padded-b64u"
        ),
        pytest.param(
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp"},
            id="non-canonical-b64u",
        ),
        pytest.param({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, id="rsa"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0"}, id="symmetric"),
        pytest.param(["not", "an", "object"], id="not-an-object"),
    ],
)
def test_bad_public_jwk_is_refused(jwk: object) -> None:
    with pytest.raises(McpsError) as caught:
        PublicKey.from_jwk(jwk)
    assert code_of(caught) is ErrorCode.UNKNOWN_KEY


def test_only_ed25519_and_p256_keys_are_supported() -> None:
    with pytest.raises(McpsError):
        PublicKey.from_crypto(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(McpsError):
        PrivateKey.from_crypto(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def test_private_jwk_round_trip_and_mismatch(key: PrivateKey) -> None:
    other = PrivateKey.generate(key.alg)
    assert isinstance(key._key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    if key.alg is Algorithm.EDDSA:
        raw = key._key.private_bytes_raw()  # type: ignore[union-attr]
    else:
        raw = key._key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    private_jwk = {**key.public_key.to_jwk(), "d": b64u_encode(raw)}
    assert PrivateKey.from_jwk(private_jwk).kid == key.kid
    with pytest.raises(McpsError) as caught:
        PrivateKey.from_jwk({**other.public_key.to_jwk(), "d": b64u_encode(raw)})
    assert code_of(caught) is ErrorCode.UNKNOWN_KEY


def test_jwks_round_trip() -> None:
    keys = [PrivateKey.generate(alg).public_key for alg in ALGORITHMS]
    assert load_jwks(jwks(keys)) == keys
    bad_set = {"keys": [keys[0].to_jwk(), {"kty": "oct", "k": "AA"}]}
    with pytest.raises(McpsError):
        load_jwks(bad_set)
    with pytest.raises(McpsError):
        load_jwks([keys[0].to_jwk()])


def test_load_public_jwk(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key.public_key.to_jwk()), encoding="utf-8")
    assert load_public_jwk(path) == key.public_key
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(McpsError) as caught:
        load_public_jwk(path)
    assert code_of(caught) is ErrorCode.UNKNOWN_KEY


# --- private key files ------------------------------------------------------------------------------------------


def test_save_private_key_writes_mode_0600(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "agent.pem"
    save_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).kid == key.kid


def test_save_private_key_refuses_to_overwrite(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "agent.pem"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        save_private_key(key, path)
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_load_private_key_refuses_a_file_others_can_access(tmp_path: Path, key: PrivateKey, mode: int) -> None:
    path = tmp_path / "agent.pem"
    save_private_key(key, path)
    os.chmod(path, mode)
    with pytest.raises(McpsError) as caught:
        load_private_key(path)
    assert code_of(caught) is ErrorCode.UNKNOWN_KEY
    assert str(path) not in caught.value.message  # the path stays in the local detail


def test_load_private_key_accepts_0400(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "agent.pem"
    save_private_key(key, path)
    os.chmod(path, 0o400)
    assert load_private_key(path).kid == key.kid


def test_load_private_key_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "agent.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    os.chmod(path, 0o600)
    with pytest.raises(McpsError) as caught:
        load_private_key(path)
    assert code_of(caught) is ErrorCode.UNKNOWN_KEY
