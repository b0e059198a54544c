"""Core benchmark: mcps sign and full verify against the bare signature primitive, and against mcp-secure.

``make bench`` runs this file. One run prints everything, and every ratio comes from that one run:

1. the machine (CPU, cores, Python, cryptography, OpenSSL, date);
2. the fastest bare primitive available for each algorithm — libsodium (PyNaCl ``crypto_sign`` /
   ``crypto_sign_open``) for Ed25519, OpenSSL (pyca/cryptography) for P-256 — signing and verifying the exact mcps
   signing input of each message; pyca's Ed25519 (OpenSSL) is printed too, for comparison with earlier runs;
3. ``MessageSigner.sign`` (dict → signed dict) and ``MessageVerifier.verify`` (bytes → VerifiedMessage: size,
   strict parse, block shape, window, audience, canonical form, signature, in-memory nonce claim), for a ~1 KiB
   ``tools/call`` request and a ~100 KiB ``tools/call`` result, EdDSA and ES256;
4. ``mcp-secure`` (PyPI, pinned below) doing the same jobs, run in a throwaway virtualenv under ``.bench/``;
5. a per-step breakdown of the mcps 1 KiB path, in µs.

Method: ``time.perf_counter`` around batches of operations, warm-up batches first, the median per-operation time
over several batches (spread = min..max). Verification batches use distinct pre-signed messages, a fixed
``now`` and a new ``MemoryNonceStore`` per batch, so every nonce claim in the timed path is a fresh one. The bare
primitive is timed twice: on one input repeated (the ratio column, as in earlier runs) and on the same distinct
signing inputs the mcps rows handle (a second ratio, printed below each mcps row and in the targets).
Targets are reported, never enforced: the exit status is non-zero only when something breaks.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography
import nacl
import nacl.bindings
from cryptography.hazmat.backends.openssl.backend import backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mcps import (
    Algorithm,
    ErrorCode,
    McpsError,
    MemoryNonceStore,
    MessageSigner,
    MessageVerifier,
    PinnedKeys,
    PrivateKey,
)
from mcps.core import envelope
from mcps.core.canonical import canonicalize, canonicalize_reference
from mcps.core.encoding import b64u_decode, b64u_encode
from mcps.core.strict import parse_message

try:  # the fast path (absent when this harness measures an older checkout: BENCHMARKS.md "before")
    from mcps.core.fastpath import parse_fast
except ImportError:  # pragma: no cover
    parse_fast = None  # type: ignore[assignment]

MCP_SECURE_VERSION = "1.0.0"
ROOT = Path(__file__).resolve().parent.parent
THROWAWAY_VENV = ROOT / ".bench" / "mcp-secure-venv"
RUNNER = Path(__file__).resolve().parent / "mcp_secure_runner.py"

NOW = 1_763_683_200  # fixed clock: nothing signed here expires while it is measured
AUDIENCE = "https://tools.example.com/mcp"
TARGET_VERIFY_RATIO = {Algorithm.EDDSA: 1.2, Algorithm.ES256: 1.3}  # 1 KiB full verify / fastest bare verify
TARGET_SIGN_RATIO = {Algorithm.EDDSA: 1.25, Algorithm.ES256: 1.3}  # 1 KiB sign / fastest bare sign
BATCH_SECONDS = 0.12
REPS = 7

# BENCHMARK TEST KEYS ONLY, derived from public seeds: never use them for anything else.
_ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"mcps bench test key: Ed25519").digest())
_P256 = ec.derive_private_key(
    int.from_bytes(hashlib.sha256(b"mcps bench test key: P-256").digest(), "big"), ec.SECP256R1()
)
_ECDSA_DETERMINISTIC = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)  # what mcps signs with (RFC 6979)
_ECDSA_RANDOMIZED = ec.ECDSA(hashes.SHA256())  # what mcp-secure signs with
_SODIUM_PUBLIC, _SODIUM_SECRET = nacl.bindings.crypto_sign_seed_keypair(
    hashlib.sha256(b"mcps bench test key: Ed25519").digest()
)


# --- messages ---------------------------------------------------------------------------------------------------


def request_1k() -> dict[str, Any]:
    """A ``tools/call`` request of ~1 KiB once signed, with the ``_meta`` an SDK adds (progress token, trace)."""
    return {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "search_tickets",
            "arguments": {
                "query": "login failures after the SSO migration on the EU tenant, reported by more than one team",
                "project": "OPS",
                "status": ["open", "in_progress", "waiting_for_customer"],
                "assignee": None,
                "created_after": "2026-03-01T00:00:00Z",
                "labels": ["sso", "auth", "regression", "customer-facing"],
                "limit": 25,
                "include_comments": True,
                "sort": {"field": "updated", "order": "desc"},
                "fields": ["key", "summary", "status", "assignee", "updated", "priority", "reporter"],
            },
            "_meta": {
                "progressToken": "c0a8f1e2-7b4d-4e0a-9f3e-2d6b8c1a5e77",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
        },
    }


def result_100k() -> dict[str, Any]:
    """A ``tools/call`` result of ~100 KiB: a text block plus ``structuredContent`` (nested objects, numbers)."""
    rng = random.Random(8785)  # noqa: S311 - reproducible test data, not secrets
    countries = ["DE", "FR", "GB", "US", "JP", "BR", "IN", "NL"]
    invoices = [
        {
            "id": f"INV-{100000 + i}",
            "customer": {
                "name": f"Customer {rng.randint(1, 999)} Ltd",
                "country": rng.choice(countries),
                "tier": i % 4,
            },
            "amount": round(rng.uniform(10, 5000), 2),
            "currency": "EUR",
            "paid": rng.random() < 0.7,
            "due": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "lines": [
                {
                    "sku": f"SKU-{rng.randint(1000, 9999)}",
                    "qty": rng.randint(1, 20),
                    "unit_price": round(rng.uniform(1, 250), 2),
                }
                for _ in range(2)
            ],
        }
        for i in range(300)
    ]
    sentences = [
        f"Invoice INV-{100000 + i} for customer {rng.randint(1, 999)} is {'paid' if i % 3 else 'overdue'}; "
        f"the balance is {rng.randint(10, 5000)} EUR and the next reminder goes out on day {rng.randint(1, 28)}."
        for i in range(240)
    ]
    return {
        "jsonrpc": "2.0",
        "id": 42,
        "result": {
            "content": [{"type": "text", "text": " ".join(sentences)}],
            "structuredContent": {"invoices": invoices, "total": len(invoices), "page": {"next": None, "size": 300}},
            "isError": False,
        },
    }


def wire(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


# --- timing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per operation
    low: float
    high: float
    n: int

    @property
    def ops(self) -> float:
        return 1 / self.median

    @property
    def spread(self) -> str:
        return f"{self.low * 1e6:.1f}..{self.high * 1e6:.1f}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timing:
        return cls(data["median"], data["min"], data["max"], data["n"])


def measure(run_batch: Callable[[], float], size: int, reps: int = REPS, warmup: int = 1) -> Timing:
    """``run_batch`` performs ``size`` operations and returns the seconds they took."""
    for _ in range(warmup):
        run_batch()
    per_op = sorted(run_batch() / size for _ in range(reps))
    return Timing(statistics.median(per_op), per_op[0], per_op[-1], size)


def batch_size(one_op: Callable[[], object], target_s: float = BATCH_SECONDS) -> int:
    start = time.perf_counter()
    for _ in range(3):
        one_op()
    estimate = (time.perf_counter() - start) / 3
    return max(10, min(5000, round(target_s / max(estimate, 1e-7))))


def time_calls(op: Callable[[], object], size: int | None = None) -> Timing:
    size = size or batch_size(op)

    def batch() -> float:
        start = time.perf_counter()
        for _ in range(size):
            op()
        return time.perf_counter() - start

    return measure(batch, size)


def run(coro: Coroutine[Any, Any, float]) -> float:
    """Drive a coroutine that never really suspends (the in-memory store) without event-loop overhead."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return float(stop.value)
    coro.close()
    raise RuntimeError("the benchmark coroutine suspended: run it in an event loop instead")


# --- the measurements -------------------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    message: dict[str, Any]
    in_reply_to: str | None  # results are bound to their request


def bare_primitive(alg: Algorithm, data: bytes, *, randomized: bool = False) -> tuple[Timing, Timing]:
    """The fastest primitive available alone: sign ``data``, verify one signature over ``data``.

    Ed25519: libsodium through PyNaCl's bindings, ``crypto_sign`` and ``crypto_sign_open`` of a signed message
    concatenated beforehand (the API takes ``signature ‖ data``; the concatenation is not timed). P-256: OpenSSL
    through pyca/cryptography, DER signatures.
    """
    if alg is Algorithm.EDDSA:
        signed = nacl.bindings.crypto_sign(data, _SODIUM_SECRET)
        if signed[:64] != _ED25519.sign(data):
            raise RuntimeError("libsodium and OpenSSL disagree on an Ed25519 signature")
        return (
            time_calls(lambda: nacl.bindings.crypto_sign(data, _SODIUM_SECRET)),
            time_calls(lambda: nacl.bindings.crypto_sign_open(signed, _SODIUM_PUBLIC)),
        )
    scheme = _ECDSA_RANDOMIZED if randomized else _ECDSA_DETERMINISTIC
    der = _P256.sign(data, scheme)
    public_ec = _P256.public_key()
    return (
        time_calls(lambda: _P256.sign(data, scheme)),
        time_calls(lambda: public_ec.verify(der, data, _ECDSA_RANDOMIZED)),
    )


def bare_primitive_distinct(alg: Algorithm, inputs: list[bytes]) -> tuple[Timing, Timing]:
    """The same primitives over the distinct signing inputs the mcps rows handle, each once per batch.

    mcps never verifies one message twice (its nonce is fresh), so its inputs are not hot in the CPU caches the
    way one input repeated is; this baseline pays the same. Signatures are made beforehand (not timed).
    """

    def over(op: Callable[[Any], object], items: list[Any]) -> Timing:
        def batch() -> float:
            start = time.perf_counter()
            for item in items:
                op(item)
            return time.perf_counter() - start

        return measure(batch, len(items))

    if alg is Algorithm.EDDSA:
        signed = [nacl.bindings.crypto_sign(data, _SODIUM_SECRET) for data in inputs]
        return (
            over(lambda data: nacl.bindings.crypto_sign(data, _SODIUM_SECRET), inputs),
            over(lambda message: nacl.bindings.crypto_sign_open(message, _SODIUM_PUBLIC), signed),
        )
    public_ec = _P256.public_key()
    pairs = [(_P256.sign(data, _ECDSA_DETERMINISTIC), data) for data in inputs]
    return (
        over(lambda data: _P256.sign(data, _ECDSA_DETERMINISTIC), inputs),
        over(lambda pair: public_ec.verify(pair[0], pair[1], _ECDSA_RANDOMIZED), pairs),
    )


def pyca_ed25519(data: bytes) -> tuple[Timing, Timing]:
    """pyca/cryptography's Ed25519 (OpenSSL) on the same bytes: the baseline of earlier runs, for comparison."""
    sig = _ED25519.sign(data)
    public = _ED25519.public_key()
    return time_calls(lambda: _ED25519.sign(data)), time_calls(lambda: public.verify(sig, data))


def mcps_sign_and_verify(key: PrivateKey, case: Case) -> tuple[Timing, Timing, list[bytes]]:
    signer = MessageSigner(key)
    sign_one = lambda: signer.sign(case.message, audience=AUDIENCE, in_reply_to=case.in_reply_to, now=NOW)  # noqa: E731
    sign = time_calls(sign_one)
    size = batch_size(sign_one)
    raws = [wire(sign_one()) for _ in range(max(10, size // 2))]  # verify is about twice as fast as sign or more
    keys = PinnedKeys([key.public_key])

    async def verify_all() -> float:
        verifier = MessageVerifier(audience=AUDIENCE, keys=keys, nonces=MemoryNonceStore())
        start = time.perf_counter()
        for raw in raws:
            await verifier.verify(raw, in_reply_to=case.in_reply_to, now=NOW)
        return time.perf_counter() - start

    verify = measure(lambda: run(verify_all()), len(raws))
    # Sanity: the path really is the full one (a replay is refused), and the bytes are what the bare primitive saw.
    verifier = MessageVerifier(audience=AUDIENCE, keys=keys, nonces=MemoryNonceStore())
    run(_verify_twice(verifier, raws[0], case.in_reply_to))
    return sign, verify, [envelope.signing_input(parse_message(raw)) for raw in raws]


async def _verify_twice(verifier: MessageVerifier, raw: bytes, in_reply_to: str | None) -> float:
    await verifier.verify(raw, in_reply_to=in_reply_to, now=NOW)
    try:
        await verifier.verify(raw, in_reply_to=in_reply_to, now=NOW)
    except McpsError as exc:
        if exc.code is not ErrorCode.REPLAY:
            raise
        return 0.0
    raise RuntimeError("a replayed message was accepted: the timed path is not the full verify")


# --- mcp-secure in its throwaway virtualenv ---------------------------------------------------------------------


def throwaway_python() -> Path:
    """``.bench/mcp-secure-venv`` with mcp-secure and this process's cryptography version, created on first use."""
    python = THROWAWAY_VENV / "bin" / "python"
    stamp = THROWAWAY_VENV / ".installed"
    wanted = (
        f"mcp-secure=={MCP_SECURE_VERSION} cryptography=={cryptography.__version__} python={platform.python_version()}"
    )
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"creating {THROWAWAY_VENV.relative_to(ROOT)} ({wanted}) ...", flush=True)
    subprocess.run([base, "-m", "venv", "--clear", str(THROWAWAY_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"mcp-secure=={MCP_SECURE_VERSION}", f"cryptography=={cryptography.__version__}"],
        check=True,
    )  # fmt: skip
    stamp.write_text(wanted)
    return python


def run_mcp_secure(messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    keys = {
        "private_pem": _P256.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "public_pem": _P256.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    }
    job = {"messages": messages, "keys": keys, "target_s": BATCH_SECONDS, "reps": REPS}
    done = subprocess.run(
        [str(throwaway_python()), str(RUNNER)], input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"mcp-secure runner failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def mcp_secure_signing_input(message: dict[str, Any]) -> bytes:
    """Bytes of the same shape mcp-secure signs: ``json.dumps(msg) + passport_id + timestamp + nonce``."""
    return (json.dumps(message) + "asp_" + "5a" * 16 + "2026-05-10T12:00:00.123456Z" + "ab" * 16).encode()


# --- per-step breakdown of the 1 KiB path -----------------------------------------------------------------------


def profile_steps(key: PrivateKey, case: Case, bare_sign: Timing, bare_verify: Timing) -> list[tuple[str, float]]:
    """µs per step of sign and verify, each step timed alone over many distinct messages (median of batches)."""
    signer = MessageSigner(key)
    signed = [signer.sign(case.message, audience=AUDIENCE, now=NOW) for _ in range(600)]
    raws = [wire(m) for m in signed]
    parsed = [parse_message(r) for r in raws]
    inputs = [envelope.signing_input(m) for m in parsed]
    blocks = [envelope.SignatureBlock.parse(m["params"]["_meta"]["mcps/sig"]) for m in parsed]
    public = key.public_key

    def each(items: list[Any], op: Callable[[Any], object]) -> float:
        def batch() -> float:
            start = time.perf_counter()
            for item in items:
                op(item)
            return time.perf_counter() - start

        return measure(batch, len(items), reps=5).median * 1e6

    def shape(m: dict[str, Any]) -> object:
        envelope.message_kind(m)
        return envelope.SignatureBlock.parse(m["params"]["_meta"]["mcps/sig"])

    def claim_all() -> float:
        store = MemoryNonceStore()

        async def go() -> float:
            start = time.perf_counter()
            for block in blocks:
                await store.claim(block.kid, block.nonce, expires_at=block.exp + 30, now=NOW)
            return time.perf_counter() - start

        return run(go())

    def key_verify(pair: tuple[envelope.SignatureBlock, bytes]) -> None:
        public.verify(b64u_decode(pair[0].sig), pair[1])

    fast_steps = []
    if parse_fast is not None:
        fast_steps = [("verify: parse_fast (the fast path; strict when None)", each(raws, parse_fast))]
        if hasattr(envelope, "_plain_signing_input"):
            kind = envelope.message_kind(parsed[0])
            fast_steps.append(
                (
                    "verify: plain signing input (no walk, no copy)",
                    each([parse_fast(r) for r in raws], lambda m: envelope._plain_signing_input(m, kind)),
                )
            )
    return [
        *fast_steps,
        ("verify: parse_message (size, UTF-8, strict decode)", each(raws, parse_message)),
        ("verify: message_kind + SignatureBlock.parse", each(parsed, shape)),
        ("verify: signing_input (copy, strip, canonicalize)", each(parsed, envelope.signing_input)),
        ("verify:   canonicalize alone", each(parsed, canonicalize)),
        ("verify:   canonicalize by the rfc8785 reference", each(parsed, canonicalize_reference)),
        ("verify: b64u_decode(sig) + PublicKey.verify", each(list(zip(blocks, inputs, strict=True)), key_verify)),
        ("verify:   fastest bare primitive verify (reference)", bare_verify.median * 1e6),
        ("verify: nonce claim (MemoryNonceStore)", measure(claim_all, len(blocks), reps=5).median * 1e6),
        ("sign: os.urandom(16) + b64u (nonce)", each(signed, lambda _: b64u_encode(os.urandom(16)))),
        ("sign: PrivateKey.sign (incl. DER→P1363, low-S)", each(inputs, key.sign)),
        ("sign:   fastest bare primitive sign (reference)", bare_sign.median * 1e6),
    ]


# --- report -----------------------------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"date        {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"cpu         {cpu} ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.2f}",
        f"python      {platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
        f"crypto      cryptography {cryptography.__version__}, {backend.openssl_version_text()}; "
        f"PyNaCl {nacl.__version__} (its bundled libsodium)",
    ]


def row(label: str, timing: Timing, bare: Timing | None = None) -> str:
    ratio = f"{timing.median / bare.median:6.2f}x" if bare else "      -"
    return f"  {label:<46} {timing.ops:>10,.0f}/s {timing.median * 1e6:>10.1f} µs  [{timing.spread:>17}]  {ratio}"


def report_mcp_secure(cases: list[Case]) -> list[str]:
    """Run mcp-secure in its throwaway virtualenv; print its rows against the bare primitive over its own input."""
    findings = []
    compared = run_mcp_secure({case.label: case.message for case in cases})
    print(f"mcp-secure {compared['mcp_secure']} (ES256 only: randomized ECDSA P-256, DER, PEM parsed per call),")
    print(f"  throwaway venv: cryptography {compared['cryptography']}, {compared['openssl']}")
    if compared["cryptography"] != cryptography.__version__:
        findings.append("mcp-secure ran with another cryptography version: its ratios are not comparable")
    for case in cases:
        got = compared["results"][case.label]
        data = mcp_secure_signing_input(case.message)
        if len(data) != got["signing_input_bytes"]:
            raise RuntimeError("mcp-secure signs another input than the one measured here")
        bare_sign, bare_verify = bare_primitive(Algorithm.ES256, data, randomized=True)
        print(f"{case.label}: {got['envelope_bytes']:,} bytes enveloped, signing input {len(data):,} bytes")
        print(row("bare sign (pyca, randomized ECDSA)", bare_sign))
        print(row("bare verify (pyca)", bare_verify))
        print(row("mcp-secure sign_message", Timing.from_json(got["sign"]), bare_sign))
        print(row("mcp-secure verify_message (dict in)", Timing.from_json(got["verify_message"]), bare_verify))
        print(row("mcp-secure json.loads+verify+NonceStore", Timing.from_json(got["verify_full"]), bare_verify))
        print()
    return findings


def report_case(case: Case, alg: Algorithm, key: PrivateKey, findings: list[str]) -> tuple[Timing, Timing]:
    """Time and print one message with one algorithm; add the 1 KiB targets to ``findings``. Returns the bare
    primitive's (sign, verify) timings on one input."""
    sign, verify, inputs = mcps_sign_and_verify(key, case)
    data = inputs[0]
    bare_sign, bare_verify = bare_primitive(alg, data)
    distinct_sign, distinct_verify = bare_primitive_distinct(alg, inputs)
    size = len(wire(MessageSigner(key).sign(case.message, audience=AUDIENCE, in_reply_to=case.in_reply_to, now=NOW)))
    print(f"{case.label}, {alg.value}: {size:,} bytes signed on the wire, signing input {len(data):,} bytes")
    if alg is Algorithm.EDDSA:
        print(row("bare sign (libsodium)", bare_sign))
        print(row("bare verify (libsodium)", bare_verify))
        pyca_sign, pyca_verify = pyca_ed25519(data)
        print(row("  pyca sign (OpenSSL), for comparison", pyca_sign, bare_sign))
        print(row("  pyca verify (OpenSSL), for comparison", pyca_verify, bare_verify))
    else:
        print(row("bare sign (OpenSSL, RFC 6979)", bare_sign))
        print(row("bare verify (OpenSSL)", bare_verify))
    print(row(f"  bare sign, {len(inputs):,} distinct inputs", distinct_sign, bare_sign))
    print(row(f"  bare verify, {len(inputs):,} distinct inputs", distinct_verify, bare_verify))
    print(row("mcps MessageSigner.sign", sign, bare_sign))
    print(row("mcps MessageVerifier.verify (full path)", verify, bare_verify))
    print(row("  the same, ratio to the distinct-input sign", sign, distinct_sign))
    print(row("  the same, ratio to the distinct-input verify", verify, distinct_verify))
    print()
    if case.in_reply_to is None:
        checks = [
            ("full verify", verify, bare_verify, distinct_verify, TARGET_VERIFY_RATIO[alg]),
            ("sign", sign, bare_sign, distinct_sign, TARGET_SIGN_RATIO[alg]),
        ]
        for what, got, bare, distinct, target in checks:
            ratio = got.median / bare.median
            verdict = "met" if ratio <= target else "MISSED"
            findings.append(
                f"target {alg.value} 1 KiB {what} ≤ {target}x bare: {ratio:.2f}x — {verdict} "
                f"(to the distinct-input primitive: {got.median / distinct.median:.2f}x)"
            )
    return bare_sign, bare_verify


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-compare", action="store_true", help="skip mcp-secure (no throwaway virtualenv)")
    args = parser.parse_args()
    started = time.perf_counter()
    print("mcps core benchmark\n" + "\n".join(machine()))
    print(f"method      median per-op of {REPS} batches (~{BATCH_SECONDS}s each) after a warm-up; spread = min..max µs")
    print("ratio       time per op / fastest bare primitive time per op, same algorithm, same bytes")
    print("            (Ed25519: libsodium; P-256: OpenSSL); pyca Ed25519 rows for comparison with earlier runs\n")

    keys = {Algorithm.EDDSA: PrivateKey.from_crypto(_ED25519), Algorithm.ES256: PrivateKey.from_crypto(_P256)}
    request_sig = MessageSigner(keys[Algorithm.EDDSA]).sign(request_1k(), audience=AUDIENCE, now=NOW)
    cases = [
        Case("1 KiB tools/call request", request_1k(), None),
        Case("100 KiB tools/call result", result_100k(), request_sig["params"]["_meta"]["mcps/sig"]["sig"]),
    ]
    findings: list[str] = []
    bare_1k: dict[Algorithm, tuple[Timing, Timing]] = {}
    for case in cases:
        for alg, key in keys.items():
            bare = report_case(case, alg, key, findings)
            if case.in_reply_to is None:
                bare_1k[alg] = bare

    if not args.no_compare:
        findings += report_mcp_secure(cases)

    print("mcps 1 KiB path, per step (µs per op; steps timed separately, so they need not add up exactly)")
    for alg, key in keys.items():
        print(f"  {alg.value}")
        for label, value in profile_steps(key, cases[0], *bare_1k[alg]):
            unit = "%" if label.startswith("share") else ("" if label.startswith("(") else "µs")
            print(f"    {label:<58} {value:>9.1f} {unit}")
    print()
    for finding in findings:
        print(finding)
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
