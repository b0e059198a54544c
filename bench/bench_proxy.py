"""Proxy benchmark: MCP ``tools/call`` through :class:`~mcps.gateway.http_upstream.HttpUpstreamApp` vs direct, and
the HTTP clients it could be built on.

Processes (each its own, so that each one's CPU can be read from /proc): the upstream, a plain-SDK ``MCPServer``
with one ``echo`` tool under uvicorn (``proxy_servers.py upstream``); one forwarder per candidate under uvicorn
(``proxy_servers.py proxy NAME URL``); this script, the load generator (aiohttp: a C parser, so that it takes as
little of the two cores as possible).

For each protocol generation — 2025-11-25 (``initialize`` once per worker, then ``tools/call`` in the session;
the SDK answers with SSE) and 2026-07-28 (stateless: each POST stands alone with its ``Mcp-Method``/``Mcp-Name``
headers and ``_meta``; the SDK answers with JSON) — and each concurrency (workers, one keep-alive connection
each), the targets run one after another, direct first, for ``--seconds`` each after a warm-up, the whole set
``--rounds`` times (alternating). The upstream is restarted for each protocol block (the 2025 server keeps every
session in memory).

Reported per run: calls/s, p50 and p99 latency, the ratio to the direct run of the same round, and the CPU the
forwarder process spent per call (``/proc/PID/stat`` utime+stime, milliseconds): the number that says what a
client costs, least disturbed by the three processes sharing two cores.

Candidates (``proxy_servers.py``): ``mcps`` (the product), and bare pass-through forwarders on httpx, httpcore,
aiohttp and a minimal keep-alive pool of asyncio streams driven by h11. sniffio is installed (the ``dev`` and
``gateway`` extras declare it), so httpx and httpcore are measured without the failed-import penalty.

Usage: ``python bench/bench_proxy.py [--seconds 4] [--rounds 2] [--candidates mcps,httpx,...]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
CANDIDATES = ["mcps", "httpx", "httpcore", "aiohttp", "h11"]
PROTOCOLS = ["2025-11-25", "2026-07-28"]
CONCURRENCY = [1, 16]
WARMUP_SECONDS = 0.5
TICKS = os.sysconf("SC_CLK_TCK")
ACCEPT = "application/json, text/event-stream"
CLIENT_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@dataclass
class Process:
    popen: subprocess.Popen[str]
    url: str

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def started(*args: str) -> Iterator[Process]:
    popen = subprocess.Popen([sys.executable, str(HERE / "proxy_servers.py"), *args], stdout=subprocess.PIPE, text=True)
    try:
        assert popen.stdout is not None
        line = popen.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server {args} did not start")
        yield Process(popen, f"http://127.0.0.1:{line.split()[1]}/mcp")
    finally:
        popen.terminate()
        popen.wait(10)


def result_of(body: bytes, content_type: str) -> dict[str, Any]:
    if content_type.startswith("text/event-stream"):
        for line in body.splitlines():
            if line.startswith(b"data:") and line[5:].strip():
                message = json.loads(line[5:])
                if "id" in message:
                    return dict(message)
        raise RuntimeError("no response in the SSE body")
    return dict(json.loads(body))


class Worker:
    def __init__(self, session: aiohttp.ClientSession, url: str, protocol: str) -> None:
        self.session, self.url, self.protocol = session, url, protocol
        self.headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        self.next_id = 0

    async def post(self, message: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, Any] | None:
        headers = self.headers | (extra or {})
        async with self.session.post(self.url, data=json.dumps(message), headers=headers) as response:
            body = await response.read()
            if response.status == 202:
                return None
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            if "mcp-session-id" in response.headers:
                self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
            return result_of(body, response.headers.get("content-type", ""))

    async def open(self) -> None:
        if self.protocol == "2025-11-25":
            params = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            }
            await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
            self.headers["MCP-Protocol-Version"] = "2025-11-25"
            await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        else:
            self.headers |= {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}

    async def call(self) -> None:
        self.next_id += 1
        params: dict[str, Any] = {"name": "echo", "arguments": {"text": "hello"}}
        if self.protocol == "2026-07-28":
            params["_meta"] = CLIENT_META
        reply = await self.post({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call", "params": params})
        if reply is None or reply.get("result", {}).get("structuredContent") != {"result": "hello"}:
            raise RuntimeError(f"unexpected reply {reply!r}")


@dataclass
class Run:
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float | None


async def load(url: str, protocol: str, concurrency: int, seconds: float, proxy: Process | None) -> Run:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",)) as session:
        workers = [Worker(session, url, protocol) for _ in range(concurrency)]
        await asyncio.gather(*(worker.open() for worker in workers))
        latencies: list[float] = []
        measuring = False
        stop = time.perf_counter() + WARMUP_SECONDS

        async def drive(worker: Worker) -> None:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                await worker.call()
                if measuring:
                    latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(drive(worker) for worker in workers))
        measuring = True
        cpu_before = proxy.cpu_seconds() if proxy else 0.0
        began = time.perf_counter()
        stop = began + seconds
        await asyncio.gather(*(drive(worker) for worker in workers))
        elapsed = time.perf_counter() - began
        cpu = (proxy.cpu_seconds() - cpu_before) * 1000 / len(latencies) if proxy else None
    latencies.sort()
    return Run(
        calls_per_s=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        cpu_ms_per_call=cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    args = parser.parse_args()
    candidates = args.candidates.split(",")
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| protocol | conc. | round | target | calls/s | × direct | p50 ms | p99 ms | forwarder CPU ms/call |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for protocol in args.protocols.split(","):
        with started("upstream") as upstream:
            proxies = {name: started("proxy", name, upstream.url) for name in candidates}
            running = {name: manager.__enter__() for name, manager in proxies.items()}
            try:
                for concurrency in CONCURRENCY:
                    for round_ in range(1, args.rounds + 1):
                        direct: Run | None = None
                        for name in ["direct", *candidates]:
                            proxy = running.get(name)
                            url = proxy.url if proxy else upstream.url
                            run = asyncio.run(load(url, protocol, concurrency, args.seconds, proxy))
                            direct = direct or run
                            cpu = "" if run.cpu_ms_per_call is None else f"{run.cpu_ms_per_call:.2f}"
                            print(
                                f"| {protocol} | {concurrency} | {round_} | {name} | {run.calls_per_s:.0f} | "
                                f"{run.calls_per_s / direct.calls_per_s:.2f} | {run.p50_ms:.2f} | {run.p99_ms:.1f} | "
                                f"{cpu} |",
                                flush=True,
                            )
            finally:
                for manager in proxies.values():
                    manager.__exit__(None, None, None)
    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
