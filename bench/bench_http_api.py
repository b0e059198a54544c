"""HTTP API benchmark: requests/s through AgentTrustMiddleware vs the same FastAPI app without it, concurrency 1 and 16,
in one run (issue 14).

Two processes: the service (``python bench/bench_http_api.py serve MODE PORT``, uvicorn, one worker; MODE ``bare`` or
``guarded``) and this script, the load generator (httpx.AsyncClient, one keep-alive connection per worker). The
operation is ``POST /payments`` (L2; a 40-byte JSON body, validated by pydantic; the guarded app also runs a policy
with a rate rule and writes nothing to an audit log) — the app's handler is the same in both.

Guarded requests are signed **before** the timed window (RFC 9421, ES256 agent key, an L2 passport; each request its
own nonce), so the figure is the service's cost, not the client's signing: the client only sends prepared bytes. The
client still verifies each signed response's headers are present, not the signature (verifying is the client's cost).
For each concurrency the two modes run one after another, ``--seconds`` each after a warm-up, ``--rounds`` times.

Usage: ``python bench/bench_http_api.py [--seconds 5] [--rounds 2]``
"""

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CONCURRENCY = [1, 16]
WARMUP_SECONDS = 0.5
NOW = time.time()


def _keys() -> dict[str, Any]:
    from mcps import PrivateKey  # noqa: PLC0415

    seed = Path(os.environ.get("MCPS_BENCH_STATE", "/tmp")) / "mcps-bench-http-keys"  # noqa: S108
    seed.mkdir(exist_ok=True)
    keys = {}
    for name in ("issuer", "service", "agent"):
        path = seed / f"{name}.pem"
        if not path.exists():
            path.write_bytes(PrivateKey.generate("ES256").to_pem())
        keys[name] = PrivateKey.from_pem(path.read_bytes())
    return keys


def build_app(mode: str, origin: str) -> Any:
    from fastapi import FastAPI  # noqa: PLC0415
    from fastapi.openapi.utils import get_openapi  # noqa: PLC0415
    from pydantic import BaseModel  # noqa: PLC0415

    from mcps import MemoryNonceStore  # noqa: PLC0415
    from mcps.http_api import AgentTrustMiddleware, HttpApiSecurity  # noqa: PLC0415
    from mcps.identity import MemoryRevocationStore, TrustAnchor, TrustAnchors, TrustLevel  # noqa: PLC0415
    from mcps.policy import PolicyFile  # noqa: PLC0415
    from mcps.stores.counters import MemoryCounterStore  # noqa: PLC0415

    class Payment(BaseModel):
        amount: float
        currency: str

    app = FastAPI()

    @app.post("/payments", operation_id="create_payment", openapi_extra={"security": [{"AgentTrust": ["L2"]}]})
    def pay(payment: Payment) -> dict[str, Any]:
        return {"paid": payment.amount}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title="bench", version="1", routes=app.routes)
            scheme = {"type": "apiKey", "in": "header", "name": "Signature", "x-agent-trust": {"algorithm": "ES256"}}
            schema.setdefault("components", {})["securitySchemes"] = {"AgentTrust": scheme}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if mode == "guarded":
        keys = _keys()
        security = HttpApiSecurity(
            identity=origin,
            key=keys["service"],
            nonces=MemoryNonceStore(max_entries=10_000_000),
            revocations=MemoryRevocationStore(),
            anchors=TrustAnchors([TrustAnchor(keys["issuer"].public_key, TrustLevel.L3)]),
        )
        policy_text = f'mcps_policy = 1\n[servers."{origin}"]\ndefault = "allow"\n'
        policy_text += f'[[servers."{origin}".tools]]\nmatch = "create_payment"\nrate = ["100000000/second"]\n'
        policy = PolicyFile.loads(policy_text, counters=MemoryCounterStore())
        app.add_middleware(AgentTrustMiddleware, security=security, openapi=app.openapi, policy=policy)
    return app


def serve(mode: str, port: int) -> None:
    import uvicorn  # noqa: PLC0415

    uvicorn.run(build_app(mode, f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port, log_level="error")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"service on {port} did not start")


def prepare(mode: str, origin: str, count: int) -> list[httpx.Request]:
    from mcps.core.httpsig import SignatureFormat  # noqa: PLC0415
    from mcps.http_api import AgentTrustAuth  # noqa: PLC0415
    from mcps.identity import issue_passport  # noqa: PLC0415

    body = b'{"amount": 25.0, "currency": "USD"}'
    requests = [
        httpx.Request("POST", f"{origin}/payments", content=body, headers={"content-type": "application/json"})
        for _ in range(count)
    ]
    if mode == "guarded":
        keys = _keys()
        passport = issue_passport(
            keys["issuer"], iss="bench", sub="agent", agent_key=keys["agent"].public_key, level=2, now=time.time()
        )
        auth = AgentTrustAuth(keys["agent"], server_key=keys["service"].public_key, passport=passport, lifetime=300)
        for request in requests:
            auth.sign(request, SignatureFormat.RFC9421)
    return requests


async def load(requests: list[httpx.Request], concurrency: int, seconds: float) -> tuple[int, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue = iter(requests)
    done = 0
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker(until: float, count: bool) -> None:
            nonlocal done
            while time.perf_counter() < until:
                request = next(queue)
                response = await client.send(request)
                if response.status_code != 200:
                    raise SystemExit(f"unexpected {response.status_code}: {response.text[:200]}")
                if count:
                    done += 1

        warm = time.perf_counter() + WARMUP_SECONDS
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(concurrency)))
        return done, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, load: {os.getloadavg()}")
    results: dict[tuple[str, int], list[float]] = {}
    processes = {}
    ports = {}
    try:
        for mode in ("bare", "guarded"):
            ports[mode] = _free_port()
            command = [sys.executable, __file__, "serve", mode, str(ports[mode])]
            processes[mode] = subprocess.Popen(command)
            _wait(ports[mode])
        for _ in range(args.rounds):
            for concurrency in CONCURRENCY:
                for mode in ("bare", "guarded"):
                    origin = f"http://127.0.0.1:{ports[mode]}"
                    requests = prepare(mode, origin, int(6000 * args.seconds) + 2000)
                    done, elapsed = asyncio.run(load(requests, concurrency, args.seconds))
                    rate = done / elapsed
                    results.setdefault((mode, concurrency), []).append(rate)
                    print(f"  {mode:8} c={concurrency:2}: {rate:8.0f} requests/s", flush=True)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=10)
    print("\n| concurrency | without middleware (req/s) | with AgentTrustMiddleware (req/s) | ratio |")
    print("|---|---|---|---|")
    for concurrency in CONCURRENCY:
        bare = max(results[("bare", concurrency)])
        guarded = max(results[("guarded", concurrency)])
        print(f"| {concurrency} | {bare:.0f} | {guarded:.0f} | {guarded / bare:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
