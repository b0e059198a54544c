"""Trust-file attacks: an anchors file (SPEC.md §7.4), a public key file (a pinned key) or an ``mcps.lock`` (§10.3)
that some JSON reader would read one way and mcps another, or that smuggles a type past a check. The defender is
the loader: an anchors file is refused as a whole (MCPS-029, :meth:`TrustAnchors.load`), a key file likewise
(:func:`load_public_jwk`); a lock file is refused with ``ValueError`` ("not a valid mcps.lock",
:func:`parse_lockfile`, SPEC.md §10.3). These files are local: their errors go to the operator, not to
a peer, so they are not searched for the canary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcps.core.errors import ErrorCode as E
from mcps.core.tools import pin_hash

from .cases_tools import ECHO
from .corpus import CANARY, Case, Threat, unique
from .pki import AGENT, ANCHOR, ATTACKER, LOW_ANCHOR, OTHER_AGENT, SERVER, SERVER_ID

ANCHORS_FILE = "anchors"
LOCK_FILE = "lock"
JWK_FILE = "jwk"
KNOWN_KEYS_FILE = "known-keys"


def anchor_jwk(**changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = {**ANCHOR.public_key.to_jwk(), "mcps_max_tl": 3}
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


def anchors_file(*keys: dict[str, Any], raw: bytes | None = None) -> bytes:
    return raw if raw is not None else json.dumps({"keys": list(keys)}).encode()


def anchors(attack: bytes, control: bytes) -> Callable[[bool], tuple[str, bytes]]:
    return lambda defect: (ANCHORS_FILE, attack if defect else control)


GOOD_ANCHORS = anchors_file(anchor_jwk())


AGENT_JWK = json.dumps(AGENT.public_key.to_jwk()).encode()


def jwk(attack: bytes, control: bytes) -> Callable[[bool], tuple[str, bytes]]:
    return lambda defect: (JWK_FILE, attack if defect else control)


def known_keys_text(servers: Any = None, *, version: Any = 1) -> bytes:
    servers = {SERVER_ID: SERVER.public_key.to_jwk()} if servers is None else servers
    return json.dumps({"mcps_known_keys": version, "servers": servers}).encode()


def known_keys(attack: bytes, control: bytes) -> Callable[[bool], tuple[str, bytes]]:
    return lambda defect: (KNOWN_KEYS_FILE, attack if defect else control)


def lock_text(servers: Any = None, *, version: Any = 1, raw: bytes | None = None) -> bytes:
    if raw is not None:
        return raw
    if servers is None:
        servers = {SERVER_ID: {"kid": ANCHOR.kid, "tools": {"echo": pin_hash(ECHO)}}}
    return json.dumps({"mcps_lock": version, "servers": servers}).encode()


def lock(attack: bytes, control: bytes) -> Callable[[bool], tuple[str, bytes]]:
    return lambda defect: (LOCK_FILE, attack if defect else control)


GOOD_LOCK = lock_text()
PIN = pin_hash(ECHO)
T = Threat.TRUST_FILE


def case(
    name: str, code: E | None, summary: str, build: Callable[[bool], tuple[str, bytes]], xfail: str | None = None
) -> Case[tuple[str, bytes]]:
    return Case(name, code, T, build, summary, expect="ValueError" if code is None else None, xfail=xfail)


CASES: list[Case[tuple[str, bytes]]] = unique(
    [
        # --- anchors files (MCPS-029, refused whole) ---------------------------------------------------------
        case(
            "anchors-dup-max-level",
            E.UNKNOWN_KEY,
            '"mcps_max_tl": 1, "mcps_max_tl": 4 — read as L4 by a lenient parser',
            anchors(
                json.dumps({"keys": [anchor_jwk(mcps_max_tl=1)]})
                .encode()
                .replace(b'"mcps_max_tl": 1', b'"mcps_max_tl": 1, "mcps_max_tl": 4'),
                json.dumps({"keys": [anchor_jwk(mcps_max_tl=1)]})
                .encode()
                .replace(b'"mcps_max_tl": 1', b'"mcps_max_tl": 1, "mcps_max_tm": 4'),
            ),
        ),
        case(
            "anchors-dup-key-x",
            E.UNKNOWN_KEY,
            "two x members: which key is the anchor?",
            anchors(
                GOOD_ANCHORS.replace(b'"x": ', f'"x": "{OTHER_AGENT.public_key.to_jwk()["x"]}", "x": '.encode()),
                GOOD_ANCHORS.replace(b'"x": ', f'"xx": "{OTHER_AGENT.public_key.to_jwk()["x"]}", "x": '.encode()),
            ),
        ),
        case(
            "anchors-max-level-true",
            E.UNKNOWN_KEY,
            "mcps_max_tl = true",
            anchors(anchors_file(anchor_jwk(mcps_max_tl=True)), GOOD_ANCHORS),
        ),
        case(
            "anchors-max-level-5",
            E.UNKNOWN_KEY,
            "mcps_max_tl = 5",
            anchors(anchors_file(anchor_jwk(mcps_max_tl=5)), anchors_file(anchor_jwk(mcps_max_tl=4))),
        ),
        case(
            "anchors-max-level-missing",
            E.UNKNOWN_KEY,
            "a key without mcps_max_tl",
            anchors(anchors_file(anchor_jwk(mcps_max_tl=None)), GOOD_ANCHORS),
        ),
        case(
            "anchors-max-level-nan",
            E.UNKNOWN_KEY,
            "mcps_max_tl = NaN",
            anchors(GOOD_ANCHORS.replace(b'"mcps_max_tl": 3', b'"mcps_max_tl": NaN'), GOOD_ANCHORS),
        ),
        case(
            "anchors-max-level-huge-integer",
            E.UNKNOWN_KEY,
            "mcps_max_tl with 5000 digits",
            anchors(GOOD_ANCHORS.replace(b'"mcps_max_tl": 3', b'"mcps_max_tl": ' + b"3" * 5000), GOOD_ANCHORS),
        ),
        case(
            "anchors-kid-not-the-thumbprint",
            E.UNKNOWN_KEY,
            "kid names another key",
            anchors(anchors_file(anchor_jwk(kid=OTHER_AGENT.kid)), GOOD_ANCHORS),
        ),
        case(
            "anchors-alg-not-the-keys",
            E.UNKNOWN_KEY,
            'alg "ES256" on an Ed25519 anchor (SPEC §7.4: MCPS-029)',
            anchors(anchors_file(anchor_jwk(alg="ES256")), GOOD_ANCHORS),
        ),
        case(
            "anchors-one-key-two-levels",
            E.UNKNOWN_KEY,
            "the same key listed at L1 and at L3",
            anchors(anchors_file(anchor_jwk(mcps_max_tl=1), anchor_jwk()), anchors_file(anchor_jwk(), anchor_jwk())),
        ),
        case(
            "anchors-bad-key-spoils-the-set",
            E.UNKNOWN_KEY,
            "one unusable key among good ones: the set is refused",
            anchors(
                anchors_file(anchor_jwk(), {"kty": "OKP", "crv": "Ed25519", "x": CANARY, "mcps_max_tl": 1}),
                anchors_file(anchor_jwk(), {**LOW_ANCHOR.public_key.to_jwk(), "mcps_max_tl": 1}),
            ),
        ),
        case(
            "anchors-not-a-jwk-set",
            E.UNKNOWN_KEY,
            "keys is an object",
            anchors(json.dumps({"keys": anchor_jwk()}).encode(), GOOD_ANCHORS),
        ),
        case(
            "anchors-not-utf8",
            E.UNKNOWN_KEY,
            "a Latin-1 byte in the file",
            anchors(
                GOOD_ANCHORS.replace(b'{"keys"', b'{"n\xe9": 1, "keys"'),
                GOOD_ANCHORS.replace(b'{"keys"', b'{"n\xc3\xa9": 1, "keys"'),
            ),
        ),
        case(
            "anchors-recursion-bomb",
            E.UNKNOWN_KEY,
            "100,000 nested arrays",
            anchors(
                GOOD_ANCHORS.replace(b'{"keys"', b'{"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b', "keys"'),
                GOOD_ANCHORS.replace(b'{"keys"', b'{"deep": [[[]]], "keys"'),
            ),
        ),
        # --- a public key file (MCPS-029) -------------------------------------------------------------------
        case(
            "jwk-file-dup-x",
            E.UNKNOWN_KEY,
            "two x members: the pinned key depends on the parser",
            jwk(
                AGENT_JWK.replace(b'"x": ', b'"x": "' + OTHER_AGENT.public_key.to_jwk()["x"].encode() + b'", "x": '),
                AGENT_JWK.replace(b'"x": ', b'"y0": "' + OTHER_AGENT.public_key.to_jwk()["x"].encode() + b'", "x": '),
            ),
        ),
        case(
            "jwk-file-recursion-bomb",
            E.UNKNOWN_KEY,
            "100,000 nested arrays beside the key",
            jwk(
                AGENT_JWK.replace(b"{", b'{"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b", ", 1),
                AGENT_JWK.replace(b"{", b'{"deep": [[]], ', 1),
            ),
        ),
        case(
            "jwk-file-kid-not-the-thumbprint",
            E.UNKNOWN_KEY,
            "kid names another key",
            jwk(json.dumps({**AGENT.public_key.to_jwk(), "kid": OTHER_AGENT.kid}).encode(), AGENT_JWK),
        ),
        # --- a known-keys file of trust on first use (refused: ValueError) -----------------------------------
        case(
            "known-keys-dup-server",
            None,
            "the server listed twice: the attacker's key, then the real one",
            known_keys(
                known_keys_text().replace(
                    b'"servers": {',
                    b'"servers": {"'
                    + SERVER_ID.encode()
                    + b'": '
                    + json.dumps(ATTACKER.public_key.to_jwk()).encode()
                    + b", ",
                    1,
                ),
                known_keys_text().replace(
                    b'"servers": {',
                    b'"servers": {"'
                    + SERVER_ID.encode()
                    + b'x": '
                    + json.dumps(ATTACKER.public_key.to_jwk()).encode()
                    + b", ",
                    1,
                ),
            ),
        ),
        case(
            "known-keys-version-true",
            None,
            "mcps_known_keys = true",
            known_keys(known_keys_text(version=True), known_keys_text()),
        ),
        case(
            "known-keys-bad-key",
            None,
            "a server key that is no key",
            known_keys(known_keys_text({SERVER_ID: {"kty": "OKP", "crv": "Ed25519", "x": CANARY}}), known_keys_text()),
        ),
        # --- lock files (refused: ValueError) ----------------------------------------------------------------
        case(
            "lock-dup-tool-pin",
            None,
            "two pins for echo: which one is approved?",
            lock(
                GOOD_LOCK.replace(
                    b'"echo": ', b'"echo": "' + pin_hash(ECHO | {"description": CANARY}).encode() + b'", "echo": '
                ),
                GOOD_LOCK.replace(
                    b'"echo": ', b'"echp": "' + pin_hash(ECHO | {"description": CANARY}).encode() + b'", "echo": '
                ),
            ),
        ),
        case(
            "lock-dup-server",
            None,
            "the server listed twice",
            lock(
                GOOD_LOCK.replace(b'"servers": {', b'"servers": {"' + SERVER_ID.encode() + b'": {"tools": {}}, ', 1),
                GOOD_LOCK.replace(b'"servers": {', b'"servers": {"' + SERVER_ID.encode() + b'x": {"tools": {}}, ', 1),
            ),
        ),
        case("lock-version-true", None, "mcps_lock = true", lock(lock_text(version=True), GOOD_LOCK)),
        case(
            "lock-version-fraction",
            None,
            "mcps_lock = 1.5, no integer (1.0 is the integer 1, SPEC §3)",
            lock(lock_text(version=1.5), GOOD_LOCK),
        ),
        case("lock-version-2", None, "mcps_lock = 2", lock(lock_text(version=2), GOOD_LOCK)),
        case(
            "lock-extra-member",
            None,
            "an unknown member in a server entry",
            lock(
                lock_text({SERVER_ID: {"tools": {"echo": PIN}, "approve": "*"}}),
                lock_text({SERVER_ID: {"tools": {"echo": PIN}}}),
            ),
        ),
        case(
            "lock-pin-not-a-hash",
            None,
            "a pin that is not a SHA-256 hash",
            lock(lock_text({SERVER_ID: {"tools": {"echo": CANARY}}}), GOOD_LOCK),
        ),
        case(
            "lock-kid-not-a-thumbprint",
            None,
            "a kid that is not a thumbprint",
            lock(
                lock_text({SERVER_ID: {"kid": CANARY, "tools": {}}}),
                lock_text({SERVER_ID: {"kid": ANCHOR.kid, "tools": {}}}),
            ),
        ),
        case(
            "lock-not-utf8",
            None,
            "a Latin-1 byte in a server identity",
            lock(
                GOOD_LOCK.replace(SERVER_ID.encode(), SERVER_ID.encode() + b"\xe9"),
                GOOD_LOCK.replace(SERVER_ID.encode(), SERVER_ID.encode() + b"\xc3\xa9"),
            ),
        ),
        case(
            "lock-nan-pin",
            None,
            "NaN where a pin goes",
            lock(GOOD_LOCK.replace(f'"{PIN}"'.encode(), b"NaN"), GOOD_LOCK),
        ),
    ]
)
