"""Time the ``mcp-secure`` package (PyPI) doing the jobs ``bench_core.py`` times for mcps.

Runs inside the throwaway virtualenv that ``bench_core.py`` creates (never in the project's own: mcp-secure is
not a dependency of mcps). Reads one JSON job from stdin, prints one JSON result on stdout.

What is timed, per message (the unsigned JSON-RPC message as a dict):

* ``sign``: ``sign_message(message, passport_id, private_key_pem)`` → envelope dict. The call parses the PEM key
  each time (that is its API) and signs ``json.dumps(message) + passport_id + timestamp + nonce`` with
  randomized ECDSA P-256 / SHA-256 (DER signature, standard base64).
* ``verify_message``: ``verify_message(envelope_dict, public_key_pem)`` on an already parsed envelope: timestamp
  window (±300 s, wall clock) and signature. No replay check, no audience.
* ``verify_full``: the same job as mcps' full verify, from the bytes received: ``json.loads`` (lenient: duplicate
  keys accepted), ``verify_message``, then ``NonceStore.check(nonce)`` (the package's replay store) — each
  envelope distinct, a new store per batch.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import mcp_secure
from cryptography.hazmat.backends.openssl.backend import backend

PASSPORT_ID = "asp_" + "5a" * 16  # the package's own passport id format: "asp_" + 32 hex digits


def measure(run_batch: Callable[[], float], size: int, reps: int, warmup: int) -> dict[str, Any]:
    """``run_batch`` times ``size`` operations and returns seconds; the median of ``reps`` batches is reported."""
    for _ in range(warmup):
        run_batch()
    per_op = sorted(run_batch() / size for _ in range(reps))
    return {"median": statistics.median(per_op), "min": per_op[0], "max": per_op[-1], "n": size, "reps": reps}


def batch_size(one_op: Callable[[], object], target_s: float) -> int:
    start = time.perf_counter()
    one_op()
    one_op()
    estimate = (time.perf_counter() - start) / 2
    return max(10, min(5000, round(target_s / max(estimate, 1e-7))))


def bench_message(message: dict[str, Any], keys: dict[str, str], target_s: float, reps: int) -> dict[str, Any]:
    private_pem, public_pem = keys["private_pem"], keys["public_pem"]

    def sign_once() -> dict[str, Any]:
        return mcp_secure.sign_message(message, PASSPORT_ID, private_pem)

    size = batch_size(sign_once, target_s)

    def sign_batch() -> float:
        start = time.perf_counter()
        for _ in range(size):
            mcp_secure.sign_message(message, PASSPORT_ID, private_pem)
        return time.perf_counter() - start

    sign = measure(sign_batch, size, reps, warmup=1)

    envelopes = [sign_once() for _ in range(size)]  # distinct nonces, signed now: inside the 300 s window
    raws = [json.dumps(envelope).encode() for envelope in envelopes]

    def verify_batch() -> float:
        start = time.perf_counter()
        for envelope in envelopes:
            if not mcp_secure.verify_message(envelope, public_pem)["valid"]:
                raise RuntimeError("mcp-secure rejected its own envelope")
        return time.perf_counter() - start

    def verify_full_batch() -> float:
        store = mcp_secure.NonceStore()
        try:
            start = time.perf_counter()
            for raw in raws:
                envelope = json.loads(raw)
                if not mcp_secure.verify_message(envelope, public_pem)["valid"]:
                    raise RuntimeError("mcp-secure rejected its own envelope")
                if not store.check(envelope["nonce"]):
                    raise RuntimeError("mcp-secure reported a replay of a fresh nonce")
            return time.perf_counter() - start
        finally:
            store.destroy()

    example = envelopes[0]
    payload = json.dumps(example["message"]) + example["passport_id"] + example["timestamp"] + example["nonce"]
    return {
        "sign": sign,
        "verify_message": measure(verify_batch, size, reps, warmup=1),
        "verify_full": measure(verify_full_batch, size, reps, warmup=1),
        "signing_input_bytes": len(payload.encode()),
        "envelope_bytes": len(raws[0]),
    }


def main() -> int:
    job = json.load(sys.stdin)
    results = {
        name: bench_message(message, job["keys"], job["target_s"], job["reps"])
        for name, message in job["messages"].items()
    }
    out = {
        "mcp_secure": version("mcp-secure"),
        "cryptography": version("cryptography"),
        "openssl": backend.openssl_version_text(),
        "python": sys.version.split()[0],
        "results": results,
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
