"""Keys for the examples, made on first use. They are TEST KEYS for trying mcps out: never use them in production.

Each example key is what ``mcps keygen --out examples/keys/NAME.pem`` writes: a private key PEM (mode 0600) and
its public JWK beside it (``NAME.pem.pub.jwk``). Git ignores ``examples/keys/``. Delete the folder to start over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from mcps import PrivateKey, PublicKey
from mcps.core.keys import load_private_key, load_public_jwk, save_private_key

KEYS = Path(os.environ.get("MCPS_EXAMPLE_KEYS", Path(__file__).parent / "keys"))


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Examples started together (a server and its agent) make each key once: one at a time, under a lock."""
    KEYS.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (KEYS / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ensure(name: str, alg: str = "EdDSA") -> Path:
    private = KEYS / f"{name}.pem"
    with _locked():
        if not private.exists():
            key = PrivateKey.generate(alg)
            save_private_key(key, private)
            Path(f"{private}.pub.jwk").write_text(json.dumps(key.public_key.to_jwk()) + "\n", encoding="utf-8")
    return private


def private_key(name: str, alg: str = "EdDSA") -> PrivateKey:
    """The example key ``name`` (``server``, ``agent``, …), made with ``alg`` if it does not exist yet."""
    return load_private_key(_ensure(name, alg))


def public_key(name: str, alg: str = "EdDSA") -> PublicKey:
    """The public half of the example key ``name``, read from its JWK as a peer would be given it."""
    return load_public_jwk(f"{_ensure(name, alg)}.pub.jwk")
