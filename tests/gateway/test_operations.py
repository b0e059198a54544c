"""Operating ``mcps gateway run``: health, readiness, metrics, JSON logs and traces, SIGTERM and SIGHUP.

Signals are tested on real processes (``mcps gateway run``) with a real stdio upstream (tests/gateway/
slow_server.py, whose ``slow`` tool is a call in flight); readiness failures and spans in process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.bindings.http_harness import serving
from tests.gateway.harness import GatewayFiles, write_gateway
from tests.gateway.process_harness import GatewayProcess, free_port, mcps_cli, set_gateway_settings

from mcps.audit import SqliteAuditLog, verify_log
from mcps.gateway import ops
from mcps.gateway.config import load_config
from mcps.gateway.reload import FIXED_SETTINGS, RELOADABLE_SETTINGS
from mcps.gateway.runtime import Gateway

SLOW_SERVER = Path(__file__).with_name("slow_server.py")
SLOW_ID = "urn:example:slow"
POLICY = """\
mcps_policy = 1

[servers.slow]
default = "deny"
min_level = 0

[[servers.slow.tools]]
match = "slow"

[[servers.slow.tools]]
match = "quick"
"""
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def write_slow_gateway(directory: Path, *, shutdown_timeout: float = 20) -> GatewayFiles:
    """A gateway (unsigned clients admitted, as L0) in front of the slow stdio server, its tools pinned."""
    files = write_gateway(directory, admit_unsigned=True)
    text = files.config.read_text(encoding="utf-8")
    text = text[: text.index("[upstreams.payments]")] + (
        f'[upstreams.slow]\nidentity = "{SLOW_ID}"\ntrust = "unsigned"\ntimeout = 60\n'
        f"command = {json.dumps([sys.executable, str(SLOW_SERVER)])}\n"
    )
    files.config.write_text(text, encoding="utf-8")
    set_gateway_settings(files, {"shutdown_timeout": shutdown_timeout})
    (directory / "policy.toml").write_text(POLICY, encoding="utf-8")
    pinned = mcps_cli("gateway", "pin", "--config", str(files.config), cwd=directory)
    assert pinned.returncode == 0, pinned.stderr
    return files


def call(tool: str, arguments: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments or {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }


async def post(http: httpx2.AsyncClient, url: str, message: dict[str, Any], **headers: str) -> httpx2.Response:
    return await http.post(
        f"{url}/mcp/slow",
        content=json.dumps(message),
        headers={
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": message["method"],
            "mcp-name": message["params"]["name"],
            **headers,
        },
        timeout=90,
    )


def result_of(response: httpx2.Response) -> str:
    """The tool's text, or the MCPS code of a refusal."""
    body = response.text
    if not body.startswith("{"):
        body = [line[5:] for line in body.splitlines() if line.startswith("data:") and line[5:].strip()][-1]
    message = json.loads(body)
    if "result" in message:
        return str(message["result"]["content"][0]["text"])
    return str(message["error"].get("data", {}).get("mcps_code", message["error"]["code"]))


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


@pytest.fixture
def slow_gateway(tmp_path: Path) -> Iterator[tuple[GatewayFiles, GatewayProcess]]:
    files = write_slow_gateway(tmp_path)
    process = GatewayProcess(files.config, free_port(), tmp_path / "gateway.log").start()
    try:
        process.wait_ready()
        yield files, process
    finally:
        process.stop()


# --- health, readiness, metrics, logs --------------------------------------------------------------------------------


async def test_health_readiness_and_metrics_of_a_running_gateway(
    slow_gateway: tuple[GatewayFiles, GatewayProcess],
) -> None:
    _, gateway = slow_gateway
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{gateway.url}/healthz")).text == "ok\n"
        ready = await http.get(f"{gateway.url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "ready": True,
            "checks": {
                "keys": "ok",
                "store:nonce": "ok",
                "store:revocation": "ok",
                "store:counter": "ok",
                "store:audit": "ok",
                "upstream:slow": "ok",
            },
        }
        assert result_of(await post(http, gateway.url, call("quick"))) == "quick"
        secret_name = "exfiltrate_" + os.urandom(6).hex()  # a tool name no pin knows: never a label
        assert result_of(await post(http, gateway.url, call(secret_name, request_id=2))) == "MCPS-008"
        foreign = await http.get(f"{gateway.url}/metrics", headers={"host": "evil.example"})
        assert foreign.status_code == 421  # the same Host check as every path
        metrics = (await http.get(f"{gateway.url}/metrics")).text
    assert 'mcps_gateway_messages_total{method="tools/call",tool="quick",upstream="slow"} 1.0' in metrics
    assert 'mcps_gateway_messages_total{method="tools/call",tool="unpinned",upstream="slow"} 1.0' in metrics
    assert secret_name not in metrics
    assert 'mcps_gateway_decisions_total{code="MCPS-008",decision="deny",upstream="slow"} 1.0' in metrics
    assert 'mcps_gateway_upstream_latency_seconds_count{upstream="slow"} 1.0' in metrics
    assert "mcps_gateway_audit_batch_size_count" in metrics
    assert 'mcps_gateway_http_requests_total{route="slow",status="200"}' in metrics
    assert 'mcps_gateway_store_errors_total{store="nonce"} 0.0' in metrics
    assert "mcps_gateway_ready 1.0" in metrics


async def test_json_logs_carry_the_request_id_and_trace_context(
    slow_gateway: tuple[GatewayFiles, GatewayProcess],
) -> None:
    _, gateway = slow_gateway
    async with httpx2.AsyncClient() as http:
        refused = await post(
            http, gateway.url, call("not_pinned"), **{"x-request-id": "req-42", "traceparent": TRACEPARENT}
        )
        assert refused.headers["x-request-id"] == "req-42"
        inner = call("not_pinned", request_id=7)
        inner["params"]["_meta"]["traceparent"] = TRACEPARENT.replace("00f067aa0ba902b7", "1111111111111111")
        await post(http, gateway.url, inner)
        forged = '"},{"x":"' + "y" * 200
        hostile = await post(http, gateway.url, call("not_pinned", request_id=8), **{"x-request-id": forged})
        assert len(hostile.headers["x-request-id"]) == 16  # not the client's: not a short token
    lines = gateway.log_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    refusals = [record for record in records if "refused" in record["message"]]
    first = next(record for record in refusals if record.get("request_id") == "req-42")
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["upstream"] == "slow"
    assert first["rpc_id"] == "1"
    second = next(record for record in refusals if record.get("rpc_id") == "7")
    assert second["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"  # from params._meta.traceparent
    assert second["span_id"] == "1111111111111111"


async def test_readiness_names_an_unreachable_upstream_and_a_store_that_does_not_answer(
    tmp_path: Path, free_tcp_port: int
) -> None:
    files = write_gateway(tmp_path, upstream_url=f"http://127.0.0.1:{free_tcp_port}/mcp")
    set_gateway_settings(files, {"redis_url": f"redis://127.0.0.1:{free_tcp_port}/0"})
    gateway = await Gateway.open(load_config(files.config))
    try:
        assert gateway.app is not None
        async with serving(gateway.app) as url, httpx2.AsyncClient() as http:
            ready = await http.get(f"{url}/readyz", timeout=30)
            assert (await http.get(f"{url}/healthz")).status_code == 200
    finally:
        await gateway.aclose()
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["upstream:payments"] == "unreachable"
    assert checks["store:nonce"] == "not answering (MCPS-030)"
    assert checks["store:revocation"] == "revocation mirror not current"
    assert checks["store:audit"] == "ok"  # SQLite: no postgres_url
    assert "Error" not in ready.text  # fixed words, never exception text


async def test_each_request_is_a_span_parented_by_its_traceparent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(ops, "tracer", lambda: provider.get_tracer("mcps.gateway"))
    files = write_slow_gateway(tmp_path)
    gateway = await Gateway.open(load_config(files.config))
    try:
        assert gateway.app is not None
        async with serving(gateway.app, lifespan="on") as url, httpx2.AsyncClient() as http:
            await post(http, url, call("not_pinned"), traceparent=TRACEPARENT)
    finally:
        await gateway.aclose()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    server, decide = spans["POST /mcp/slow"], spans["mcps.gateway tools/call"]
    assert format(server.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert decide.parent is not None
    assert decide.parent.span_id == server.context.span_id
    assert decide.attributes is not None
    assert decide.attributes["error.type"] == "MCPS-008"
    assert decide.attributes["gen_ai.tool.name"] == "unpinned"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200


# --- SIGTERM ---------------------------------------------------------------------------------------------------------


async def test_sigterm_finishes_calls_in_flight_flushes_the_audit_log_and_ends_the_children(tmp_path: Path) -> None:
    files = write_slow_gateway(tmp_path)
    gateway = GatewayProcess(files.config, free_port(), tmp_path / "gateway.log").start()
    try:
        gateway.wait_ready()
        assert gateway.process is not None
        async with httpx2.AsyncClient() as http:
            in_flight = asyncio.create_task(post(http, gateway.url, call("slow", {"seconds": 2})))
            deadline = time.monotonic() + 30
            while not children_of(gateway.process.pid) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # the stdio child starts with the first call
            children = children_of(gateway.process.pid)
            assert children
            await asyncio.sleep(0.3)  # the call is at the upstream now
            gateway.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            with pytest.raises(httpx2.ConnectError):  # the listening socket is closed: new clients go elsewhere
                await http.get(f"{gateway.url}/healthz")
            assert result_of(await in_flight) == "slept 2.0"
        assert await asyncio.to_thread(gateway.process.wait, 30) == 0
    finally:
        gateway.stop()
    for child in children:
        assert not os.path.exists(f"/proc/{child}")  # noqa: ASYNC240 - the stdio upstream was ended
    log = SqliteAuditLog(tmp_path / "state" / "audit.db", read_only=True)
    try:
        verified = verify_log(log, log.public_key, log.origin)
        entries = [json.loads(stored.data) for stored in await log.entries(0, verified.size)]
    finally:
        await log.aclose()
    assert [(entry["event"], entry.get("tool")) for entry in entries][-2:] == [("call", "slow"), ("result", "slow")]


async def test_sigterm_cancels_calls_that_outlast_the_shutdown_bound(tmp_path: Path) -> None:
    files = write_slow_gateway(tmp_path, shutdown_timeout=1)
    gateway = GatewayProcess(files.config, free_port(), tmp_path / "gateway.log").start()
    try:
        gateway.wait_ready()
        assert gateway.process is not None
        async with httpx2.AsyncClient() as http:
            stuck = asyncio.create_task(post(http, gateway.url, call("slow", {"seconds": 120})))
            await asyncio.sleep(1.0)
            started = time.monotonic()
            gateway.signal(signal.SIGTERM)
            code = await asyncio.to_thread(gateway.process.wait, 60)
            assert code == 0
            assert time.monotonic() - started < 30  # 1 s for calls, then the child's own kill timeouts
            try:
                answer = await stuck
            except httpx2.HTTPError:
                pass  # cut off: the client knows it has no answer
            else:  # or refused: never a result
                assert answer.status_code == 503, answer.text
                assert result_of(answer) == "MCPS-035"
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text()


# --- SIGHUP ----------------------------------------------------------------------------------------------------------


async def _reload(gateway: GatewayProcess, count: int) -> dict[str, Any]:
    """Send SIGHUP and wait for the ``count``-th reload record in the log (applied or refused)."""
    gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = [record for record in gateway.log_records() if "reload" in record["message"]]
        if len(done) >= count:
            return done[count - 1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no reload record:\n{gateway.log_text()[-3000:]}")


async def test_sighup_reloads_policy_and_upstreams_without_dropping_a_call_and_refuses_a_bad_file(
    slow_gateway: tuple[GatewayFiles, GatewayProcess],
) -> None:
    files, gateway = slow_gateway
    policy = files.directory / "policy.toml"
    async with httpx2.AsyncClient() as http:
        assert result_of(await post(http, gateway.url, call("quick"))) == "quick"
        in_flight = asyncio.create_task(post(http, gateway.url, call("slow", {"seconds": 2}, request_id=2)))
        await asyncio.sleep(0.5)
        # 1. a new policy without "quick": applied; the call in flight finishes
        policy.write_text(POLICY.replace('\n[[servers.slow.tools]]\nmatch = "quick"\n', ""), encoding="utf-8")
        applied = await _reload(gateway, 1)
        assert applied["message"].startswith("mcps gateway: reloaded")
        assert result_of(await post(http, gateway.url, call("quick", request_id=3))) == "MCPS-016"
        assert result_of(await in_flight) == "slept 2.0"
        # 2. a policy with an error on line 3: refused, the error names file and line, the running policy stays
        policy.write_text("mcps_policy = 1\n[servers.slow]\nmin_level = 9\n", encoding="utf-8")
        refused = await _reload(gateway, 2)
        assert refused["level"] == "ERROR"
        assert f"{policy}:3" in refused["message"]
        assert result_of(await post(http, gateway.url, call("slow", {"seconds": 0}, request_id=4))) == "slept 0.0"
        # 3. a setting that cannot change on a reload: refused, named
        policy.write_text(POLICY, encoding="utf-8")
        original = files.config.read_text(encoding="utf-8")
        files.config.write_text(original.replace('identity = "urn:mcps:gateway:test"', 'identity = "urn:x"'))
        fixed = await _reload(gateway, 3)
        assert "identity cannot change on a reload" in fixed["message"]
        # 4. a second upstream: started, reachable; the first keeps its child (and so its sessions)
        assert gateway.process is not None
        before = children_of(gateway.process.pid)
        files.config.write_text(
            original + original[original.index("[upstreams.slow]") :].replace("[upstreams.slow]", "[upstreams.more]")
        )
        policy.write_text(POLICY + POLICY[POLICY.index("[servers.slow]") :].replace("servers.slow", "servers.more"))
        pins = mcps_cli("gateway", "pin", "--config", str(files.config), cwd=files.directory)
        assert pins.returncode == 0, pins.stderr
        added = await _reload(gateway, 4)
        assert added["message"].startswith("mcps gateway: reloaded"), added
        assert "'more'" in added["message"]
        more = await http.post(
            f"{gateway.url}/mcp/more",
            content=json.dumps(call("quick", request_id=5)),
            headers={"content-type": "application/json", "accept": "application/json, text/event-stream",
                     "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "quick"},
        )  # fmt: skip
        assert result_of(more) == "quick"
        assert set(before) <= set(children_of(gateway.process.pid))
        metrics = (await http.get(f"{gateway.url}/metrics")).text
    assert 'mcps_gateway_reloads_total{result="applied"} 2.0' in metrics
    assert 'mcps_gateway_reloads_total{result="refused"} 2.0' in metrics


def test_every_setting_is_either_reloadable_or_fixed(tmp_path: Path) -> None:
    config = load_config(write_gateway(tmp_path).config)
    names = set(type(config).__dataclass_fields__)
    assert names == set(FIXED_SETTINGS) | RELOADABLE_SETTINGS
    assert not set(FIXED_SETTINGS) & RELOADABLE_SETTINGS
