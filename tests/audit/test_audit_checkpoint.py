"""C2SP signed-note / tlog-checkpoint: the Go x/mod/sumdb/note test vectors, round trips and refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mcps.audit.checkpoint import (
    key_hash,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)
from mcps.audit.merkle import EMPTY_ROOT
from mcps.core.errors import ErrorCode, McpsError
from mcps.core.keys import PrivateKey

# golang.org/x/mod/sumdb/note note_test.go (BSD-3-Clause): a published TEST key, never used for anything else.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def _go_key() -> PrivateKey:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])[1:]
    return PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def _refused(note: str, key: PrivateKey, name: str = "PeterNeumann") -> None:
    with pytest.raises(McpsError) as caught:
        open_note(note, name, key.public_key)
    assert caught.value.code is ErrorCode.AUDIT_INVALID


def test_go_vectors() -> None:
    key = _go_key()
    assert verifier_key("PeterNeumann", key.public_key) == GO_VERIFIER
    assert key_hash("PeterNeumann", key.public_key).hex() == "c74f20a3"
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_TEXT + "\n" + GO_SIG
    name, public = parse_verifier_key(GO_VERIFIER)
    assert (name, public.kid) == ("PeterNeumann", key.kid)
    # A cosignature by another key is ignored; ours must verify.
    assert open_note(GO_TEXT + "\n" + GO_SIG + GO_ENOCH_SIG, "PeterNeumann", key.public_key) == GO_TEXT


def test_go_bad_notes_are_refused() -> None:
    key = _go_key()
    for bad in [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + GO_SIG,
        GO_TEXT + "\n" + GO_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + GO_SIG[:60] + "ABCD" + GO_SIG[60:],  # invalid signature by our key
        GO_TEXT + "\n" + GO_ENOCH_SIG,  # no signature by our key
        GO_TEXT + "\n" + GO_SIG * 101,  # too many signatures
    ]:
        _refused(bad, key)


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+c74f20a3+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(bad: str) -> None:
    with pytest.raises(ValueError, match="verifier key"):
        parse_verifier_key(bad)


def test_checkpoint_round_trip_and_format() -> None:
    key = PrivateKey.generate()
    checkpoint = sign_checkpoint(key, "example.test/log", 8, EMPTY_ROOT)
    body = checkpoint.note.split("\n\n")[0]
    assert body == f"example.test/log\n8\n{base64.b64encode(EMPTY_ROOT).decode()}"
    assert open_checkpoint(checkpoint.note, key.public_key, "example.test/log") == checkpoint
    assert open_checkpoint(checkpoint.note.encode(), key.public_key, "example.test/log").size == 8


def test_checkpoint_refusals() -> None:
    key = PrivateKey.generate()
    origin = "example.test/log"
    note = sign_checkpoint(key, origin, 8, EMPTY_ROOT).note
    for call in [
        lambda: open_checkpoint(note, PrivateKey.generate().public_key, "example.test/log"),  # other key
        lambda: open_checkpoint(note, key.public_key, "example.test/other"),  # other log
        lambda: open_checkpoint(note.replace("\n8\n", "\n9\n"), key.public_key, "example.test/log"),  # edited
        lambda: open_checkpoint(
            sign_note("example.test/log\n08\nAA==\n", "example.test/log", key), key.public_key, "example.test/log"
        ),
        lambda: open_checkpoint(
            sign_note("example.test/log\n8\n", "example.test/log", key), key.public_key, "example.test/log"
        ),
        lambda: open_checkpoint(b"\xff" * 10, key.public_key, "example.test/log"),
    ]:
        with pytest.raises(McpsError) as caught:
            call()
        assert caught.value.code is ErrorCode.AUDIT_INVALID


@pytest.mark.parametrize("name", ["example.test/ log", "example.test/log+x", "", "example\ttest"])
def test_log_name_that_is_no_key_name_is_refused_with_mcps_033_not_value_error(name: str) -> None:
    """The name comes from an evidence file (its ``log``): a bad one is a refusal, never a ValueError (a crash)."""
    key = PrivateKey.generate()
    note = sign_checkpoint(key, "example.test/log", 8, EMPTY_ROOT).note
    for call in (lambda: open_checkpoint(note, key.public_key, name), lambda: open_note(note, name, key.public_key)):
        with pytest.raises(McpsError) as caught:
            call()
        assert caught.value.code is ErrorCode.AUDIT_INVALID


def test_es256_keys_cannot_sign_notes() -> None:
    with pytest.raises(McpsError) as caught:
        sign_checkpoint(PrivateKey.generate("ES256"), "example.test/log", 0, EMPTY_ROOT)
    assert caught.value.code is ErrorCode.ALGORITHM_MISMATCH
