"""UnsafeTrustOnFirstUse: the first key that signs for a server is pinned, learnt from its passport, and every use
warns. In memory with MessageVerifier, and once through a SecureChannel pair."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcps import ErrorCode, McpsError, MemoryNonceStore, MessageVerifier, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity, SecureChannel, UnsafeTrustOnFirstUse, UnsafeTrustWarning
from mcps.core.envelope import sign_message
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import attach_passport
from mcps.verifier import VerifiedMessage

SERVER = "urn:mcps:test:server"
NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


class Server:
    """A server key with a self-signed passport: what carries the key to a client that has none pinned."""

    def __init__(self, identity: str = SERVER) -> None:
        self.key = PrivateKey.generate()
        self.passport = issue_passport(
            self.key, iss=identity, sub=identity, agent_key=self.key.public_key, level=0, now=NOW
        )

    def notification(self, audience: str, *, passport: bool = True) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "hi"}}
        if passport:
            message = attach_passport(message, self.passport)
        return sign_message(message, self.key, audience=audience, now=NOW)


AGENT = PrivateKey.generate()


def tofu(path: Path | None = None, *, match: str = "first key") -> UnsafeTrustOnFirstUse:
    with pytest.warns(UnsafeTrustWarning, match=match):
        return UnsafeTrustOnFirstUse(SERVER, path=path)


def verifier(trusted: UnsafeTrustOnFirstUse) -> MessageVerifier:
    return MessageVerifier(audience=AGENT.kid, keys=trusted, nonces=MemoryNonceStore(), clock=clock)


async def first_use(trusted: UnsafeTrustOnFirstUse, server: Server) -> VerifiedMessage:
    with pytest.warns(UnsafeTrustWarning, match=f"pinned key {server.key.kid} for {SERVER}"):
        return await verifier(trusted).verify_parsed(server.notification(AGENT.kid))


async def refused(trusted: UnsafeTrustOnFirstUse, message: dict[str, Any]) -> ErrorCode:
    with pytest.raises(McpsError) as caught:
        await verifier(trusted).verify_parsed(message)
    return caught.value.code


async def test_pins_the_first_key_and_refuses_any_other_with_mcps_029() -> None:
    trusted, server, impostor = tofu(), Server(), Server()
    assert trusted.pinned is None
    assert (await first_use(trusted, server)).kid == server.key.kid
    assert trusted.pinned is not None
    assert trusted.pinned.kid == server.key.kid
    # Pinned: the key needs no passport any more, and another key is refused even with one.
    assert (await verifier(trusted).verify_parsed(server.notification(AGENT.kid, passport=False))).key == trusted.pinned
    assert await refused(trusted, impostor.notification(AGENT.kid)) is ErrorCode.UNKNOWN_KEY


async def test_warns_and_logs_on_construction_and_on_pinning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcps.bindings")
    with pytest.warns(UnsafeTrustWarning) as constructed:
        trusted = UnsafeTrustOnFirstUse(SERVER)
    assert [str(w.message) for w in constructed] == [
        f"UNSAFE: trust on first use for {SERVER}: the first key that signs for it will be trusted, whoever "
        "holds it; pin the server's key (PinnedKeys) instead"
    ]
    server = Server()
    await first_use(trusted, server)
    logged = [r.getMessage() for r in caplog.records if r.name == "mcps.bindings" and r.levelno == logging.WARNING]
    assert len(logged) == 2
    assert logged[0].startswith(f"mcps: UNSAFE: trust on first use for {SERVER}")
    assert logged[1].startswith(f"mcps: UNSAFE: trust on first use: pinned key {server.key.kid} for {SERVER}")
    with pytest.warns(UnsafeTrustWarning):  # every construction, not only the first one in a process
        UnsafeTrustOnFirstUse(SERVER)


@pytest.mark.parametrize(
    ("defect", "code"),
    [
        ("no-passport", ErrorCode.UNKNOWN_KEY),
        ("passport-of-another-key", ErrorCode.UNKNOWN_KEY),
        ("passport-of-another-server", ErrorCode.UNKNOWN_KEY),
        ("bad-signature", ErrorCode.BAD_SIGNATURE),
    ],
)
async def test_learns_nothing_from_a_message_that_does_not_prove_the_key(defect: str, code: ErrorCode) -> None:
    trusted, server = tofu(), Server()
    if defect == "no-passport":
        message = server.notification(AGENT.kid, passport=False)
    elif defect == "passport-of-another-key":
        message = attach_passport({"jsonrpc": "2.0", "method": "notifications/message"}, Server().passport)
        message = sign_message(message, server.key, audience=AGENT.kid, now=NOW)
    elif defect == "passport-of-another-server":
        message = Server("urn:mcps:test:elsewhere").notification(AGENT.kid)
    else:
        message = server.notification(AGENT.kid)
        message["params"]["data"] = "tampered"
    assert await refused(trusted, message) is code
    assert trusted.pinned is None
    assert (await first_use(trusted, server)).kid == server.key.kid  # a proper first message still pins


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_known_keys_file_is_written_0600_and_reloaded_like_pinned_keys(tmp_path: Path) -> None:
    path = tmp_path / "known_keys.json"
    server = Server()
    await first_use(tofu(path), server)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["servers"][SERVER]["kid"] == server.key.kid
    assert files_in(tmp_path) == [".known_keys.json.lock", "known_keys.json"]  # no temporary file left behind
    # Another run: the recorded key is trusted without a passport and without pinning anything new.
    reloaded = tofu(path, match=f"trusting key {server.key.kid} recorded in")
    assert reloaded.pinned is not None
    assert reloaded.pinned.kid == server.key.kid
    await verifier(reloaded).verify_parsed(server.notification(AGENT.kid, passport=False))
    # Other servers' entries are kept when a new one is learnt.
    with pytest.warns(UnsafeTrustWarning):
        other = UnsafeTrustOnFirstUse("urn:mcps:test:other", path=path)
    other_server = Server("urn:mcps:test:other")
    with pytest.warns(UnsafeTrustWarning, match="pinned key"):
        await verifier(other).verify_parsed(other_server.notification(AGENT.kid))
    assert json.loads(path.read_text())["servers"].keys() == {SERVER, "urn:mcps:test:other"}


async def test_refuses_a_key_that_differs_from_the_files(tmp_path: Path) -> None:
    path = tmp_path / "known_keys.json"
    server, impostor = Server(), Server()
    await first_use(tofu(path), server)
    recorded = path.read_bytes()
    assert await refused(tofu(path, match="recorded in"), impostor.notification(AGENT.kid)) is ErrorCode.UNKNOWN_KEY
    assert path.read_bytes() == recorded


async def test_a_key_pinned_meanwhile_by_another_process_wins(tmp_path: Path) -> None:
    path = tmp_path / "known_keys.json"
    server, impostor = Server(), Server()
    racing = tofu(path)  # made before the file had this server
    await first_use(tofu(path), server)
    assert await refused(racing, impostor.notification(AGENT.kid)) is ErrorCode.UNKNOWN_KEY
    assert racing.pinned is None


@pytest.mark.parametrize(
    ("content", "mode"),
    [
        ('{"mcps_known_keys": 1, "servers": {}}', 0o620),
        ('{"mcps_known_keys": 2, "servers": {}}', 0o600),
        ('{"mcps_known_keys": 1, "servers": {"s": {"kty": "OKP"}}}', 0o600),
        ('{"mcps_known_keys": 1, "servers": {}, "servers": {}}', 0o600),
    ],
    ids=["group-writable", "version", "bad-jwk", "duplicate-key"],
)
def test_a_bad_known_keys_file_is_refused(tmp_path: Path, content: str, mode: int) -> None:
    path = tmp_path / "known_keys.json"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(ValueError, match=str(path)):
        UnsafeTrustOnFirstUse(SERVER, path=path)


def test_a_known_keys_file_others_could_have_planted_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "real.json"
    good.write_text('{"mcps_known_keys": 1, "servers": {}}')
    good.chmod(0o600)
    link = tmp_path / "known_keys.json"
    link.symlink_to(good)
    with pytest.raises(ValueError, match="regular file"):
        UnsafeTrustOnFirstUse(SERVER, path=link)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may create or swap files here (no sticky bit)
    with pytest.raises(ValueError, match="writable by group or others"):
        UnsafeTrustOnFirstUse(SERVER, path=shared / "known_keys.json")


def test_a_known_keys_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    path = tmp_path / "known_keys.json"
    path.write_text('{"mcps_known_keys": 1, "servers": {}}')
    path.chmod(0o644)
    os.chown(path, 65534, 65534)  # nobody
    with pytest.raises(ValueError, match="owned by this user"):
        UnsafeTrustOnFirstUse(SERVER, path=path)


def test_the_warning_is_shown_on_every_use_not_once() -> None:
    """In a plain interpreter (Python's default filters show an identical warning from one place once)."""
    program = "from mcps.bindings import UnsafeTrustOnFirstUse\nfor _ in range(3): UnsafeTrustOnFirstUse('urn:s')"
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stderr.count("UnsafeTrustWarning: UNSAFE: trust on first use for urn:s") == 3


async def test_a_client_channel_trusts_the_server_it_first_hears_from() -> None:
    server = Server()
    client = SecureChannel(
        ChannelSecurity(key=AGENT, trusted=tofu(), nonces=MemoryNonceStore(), clock=clock), peer=SERVER
    )
    served = SecureChannel(
        ChannelSecurity(
            key=server.key,
            identity=SERVER,
            passport=server.passport,
            trusted=PinnedKeys([AGENT.public_key]),
            nonces=MemoryNonceStore(),
            clock=clock,
        ),
        peer=None,
    )
    request = client.send({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {}})
    assert request is not None
    assert (await served.receive(request)).deliver is not None
    answer = served.send({"jsonrpc": "2.0", "id": 1, "result": {}})
    assert answer is not None
    with pytest.warns(UnsafeTrustWarning, match="pinned key"):
        assert (await client.receive(answer)).deliver == answer
