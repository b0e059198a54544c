"""``make demo``: mcps gateway in front of an ordinary MCP server, and every attack on it refused with its code.

What runs, all on 127.0.0.1, in a temporary directory, with TEST keys made here:

* ``payments`` — examples/gateway/payments_server.py, an ordinary server written with the plain MCP SDK (no mcps),
  started by the gateway as a stdio command: what a team already runs, with no line changed;
* ``ledger`` — the same server with mcps in it (signed_payments_server.py), over Streamable HTTP, reached through a
  relay that can tamper with what passes (the attacker on the wire);
* ``mcps gateway run`` — the real command, as a separate process, with a policy (levels, scopes, a spend cap, a
  sanctions screen), trust anchors, the tools pinned by ``mcps gateway pin``, and its audit log.

Agents with passports call tools through the gateway with the mcps client binding; an unsigned client uses the
plain SDK. Then ``mcps audit verify`` checks the gateway's log, and a hand-edited row is caught. The demo exits
non-zero when any step misbehaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from mcp import Client
from mcp.shared.exceptions import MCPError
from rich.console import Console
from rich.table import Table

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.envelope import sign_message
from mcps.core.keys import Algorithm, PrivateKey, PublicKey, jwks, save_private_key
from mcps.identity.passports import issue_passport
from mcps.identity.resolver import attach_passport
from mcps.verifier import HopTrust

HERE = Path(__file__).resolve().parent / "gateway"
MCPS = [sys.executable, "-m", "mcps"]
PAYMENTS, LEDGER, GATEWAY = "urn:example:payments", "urn:example:ledger", "urn:mcps:gateway:demo"
TRANSFER = {"amount": 50, "currency": "USD", "to": "acct-2", "counterparty": "Acme Supplies"}
CHECK = "✓"
CROSS = "✗"

POLICY = """\
mcps_policy = 1
{servers}"""
SERVER_RULES = """
[servers.{name}]
default = "deny"
min_level = 0

[[servers.{name}.tools]]
match = "get_balance"                     # harmless: any caller, even an unsigned one (L0)
min_level = 0

[[servers.{name}.tools]]
match = "transfer_funds"
min_level = 2                             # agents vouched for by a trust anchor
scopes_all = ["payments:write"]
rate = ["60/minute per agent"]
spend.amount_arg = "amount"
spend.currency_arg = "currency"
spend.currency = "USD"
spend.per_level."2" = {{ per_call = 100, per_day = 1000 }}
spend.per_level."3" = {{ per_call = 10000, per_day = 100000 }}
hooks = [{{ hook = "mcps.policy.sanctions:SanctionsScreen", args = ["counterparty"], list = "sdn.csv" }}]

[[servers.{name}.tools]]
match = "read_file"
min_level = 1
scopes_all = ["files:read"]
"""
SDN = '2674,"EVIL CORP HOLDINGS LTD",-0-,"SDGT",-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-\n'  # OFAC SDN layout, TEST data


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_jwk(path: Path, key: PublicKey) -> None:
    path.write_text(json.dumps(key.to_jwk()) + "\n", encoding="utf-8")


class Setup:
    """The demo's files: TEST keys, anchors, passports, policy, sanctions list, gateway configuration."""

    def __init__(self, directory: Path, *, ledger_port: int, relay_port: int, gateway_port: int) -> None:
        self.dir = directory
        self.gateway_port, self.ledger_port, self.relay_port = gateway_port, ledger_port, relay_port
        self.gateway_key = self._key("gateway")
        self.ledger_key = self._key("ledger")
        issuer = self._key("issuer", Algorithm.ES256)
        anchors = jwks([issuer.public_key])
        anchors["keys"][0]["mcps_max_tl"] = 3
        (directory / "anchors.jwks").write_text(json.dumps(anchors, indent=2), encoding="utf-8")
        self.agents: dict[str, tuple[PrivateKey, str]] = {}
        for name, level, scopes in (
            ("agent-7", 2, ["payments:write", "files:read"]),
            ("intern", 1, ["files:read"]),
            ("auditor", 2, ["files:read"]),
        ):
            key = PrivateKey.generate(Algorithm.EDDSA)
            passport = issue_passport(
                issuer, iss="urn:demo:issuer", sub=name, agent_key=key.public_key, level=level, scopes=scopes,
                now=time.time(),
            )  # fmt: skip
            self.agents[name] = (key, passport)
        servers = "".join(SERVER_RULES.format(name=name) for name in ("payments", "ledger"))
        (directory / "policy.toml").write_text(POLICY.format(servers=servers), encoding="utf-8")
        (directory / "sdn.csv").write_text(SDN, encoding="utf-8")
        data = directory / "data"
        data.mkdir()
        (data / "q3.txt").write_text("Q3 revenue: 4.2M\n", encoding="utf-8")
        self.rug_pull = directory / "rug-pull"
        command = [sys.executable, str(HERE / "payments_server.py")]
        config = f"""\
[gateway]
identity = "{GATEWAY}"
key = "gateway.pem"
listen = "127.0.0.1:{gateway_port}"
state_dir = "state"
policy = "policy.toml"
admit_unsigned = true            # unsigned clients, as L0 callers: the policy lets them call get_balance only

[agents]
anchors = ["anchors.jwks"]

[upstreams.payments]             # an ordinary MCP server: a stdio command, no mcps in it
identity = "{PAYMENTS}"
command = {json.dumps(command)}
env = {{ PAYMENTS_DATA = "{data}" }}
trust = "unsigned"

[upstreams.ledger]               # the same server with mcps in it, behind an attacker's relay
identity = "{LEDGER}"
url = "http://127.0.0.1:{relay_port}/mcp"
key = "ledger.pem.pub.jwk"
"""
        (directory / "gateway.toml").write_text(config, encoding="utf-8")

    def _key(self, name: str, alg: Algorithm = Algorithm.EDDSA) -> PrivateKey:
        key = PrivateKey.generate(alg)
        save_private_key(key, self.dir / f"{name}.pem")
        write_jwk(self.dir / f"{name}.pem.pub.jwk", key.public_key)
        return key


class TamperingRelay:
    """An attacker on the wire between the gateway and the ledger: forwards everything, or, when ``tamper`` is set,
    raises the amount of every transfer it forwards (the agent's signature still says 50)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tamper = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.tamper and b'"transfer_funds"' in body:
            message = json.loads(body)
            message["params"]["arguments"]["amount"] = 50_000
            body = json.dumps(message).encode()
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.lower() not in (b"host", b"content-length")}
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.request(scope["method"], self.upstream, content=body, headers=headers)
        out = [
            (k.encode(), v.encode())
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
        ]
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})


@contextlib.asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, "the relay")
    try:
        yield
    finally:
        server.should_exit = True
        await task


def start(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, log: Any = None) -> Any:
    """Start a process (the demo's servers and the gateway); its output goes to ``log`` or nowhere."""
    output = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


async def until(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        await asyncio.sleep(0.05)


def mcps(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCPS, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603


def mcps_code(error: BaseException) -> str:
    """The MCPS code inside what the SDK raised (an MCPError, possibly inside exception groups)."""
    pending: list[BaseException] = [error]
    while pending:
        leaf = pending.pop()
        if isinstance(leaf, BaseExceptionGroup):
            pending.extend(leaf.exceptions)
        elif isinstance(leaf, MCPError) and isinstance(leaf.error.data, dict) and "mcps_code" in leaf.error.data:
            return str(leaf.error.data["mcps_code"])
        elif isinstance(leaf, MCPError):
            return f"JSON-RPC {leaf.error.code}"
    return type(error).__name__


class Demo:
    def __init__(self, setup: Setup, relay: TamperingRelay) -> None:
        self.setup = setup
        self.relay = relay
        self.base = f"http://127.0.0.1:{setup.gateway_port}"
        self.rows: list[tuple[str, str, str, bool]] = []

    def client(self, agent: str, upstream: str, *, gateway_key: PublicKey | None = None) -> Client:
        key, passport = self.setup.agents[agent]
        gateway = gateway_key or self.setup.gateway_key.public_key
        if upstream == "ledger":  # a signing upstream: verified end to end, the gateway as a countersigning hop
            trusted, identity = PinnedKeys([self.setup.ledger_key.public_key]), LEDGER
        else:  # an unsigned upstream: the gateway answers for it, under its own key
            trusted, identity = PinnedKeys([gateway]), PAYMENTS
        security = ChannelSecurity(
            key=key,
            passport=passport,
            trusted=trusted,
            gateways=HopTrust(PinnedKeys([gateway]), required=True),
            nonces=MemoryNonceStore(),
        )
        url = f"{self.base}/mcp/{upstream}"
        return Client(signed_streamable_http_client(url, security, server_identity=identity))

    async def step(self, title: str, expected: str, attempt: Callable[[], Awaitable[str]]) -> None:
        try:
            outcome = await asyncio.wait_for(attempt(), 30)
        except Exception as error:  # noqa: BLE001 - every outcome is a row of the table
            outcome = mcps_code(error)
        self.rows.append((title, expected, outcome, outcome == expected))

    async def call(self, agent: str, upstream: str, tool: str, arguments: dict[str, Any], **options: Any) -> str:
        async with self.client(agent, upstream, **options) as client:
            await client.list_tools()
            result = await client.call_tool(tool, arguments)
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        return "allowed" if not result.is_error else f"tool error: {text}"

    async def raw(self, message: dict[str, Any], upstream: str = "payments") -> str:
        """POST one signed message as is (what a replaying or misaddressing attacker sends)."""
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": message["method"],
            "mcp-name": message["params"]["name"],
        }
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{self.base}/mcp/{upstream}", content=json.dumps(message), headers=headers)
        body = response.text
        events = [line[5:] for line in body.split("\n") if line.startswith("data:") and line[5:].strip()]
        data = body if body.startswith("{") else events[0]
        answer = json.loads(data)
        return answer["error"]["data"]["mcps_code"] if "error" in answer else "allowed"

    def signed_call(self, agent: str, *, audience: str = PAYMENTS) -> dict[str, Any]:
        key, passport = self.setup.agents[agent]
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "demo", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "get_balance", "arguments": {}, "_meta": meta},
        }
        return sign_message(attach_passport(call, passport), key, audience=audience, now=time.time())

    async def unsigned(self, tool: str, arguments: dict[str, Any]) -> str:
        async with Client(f"{self.base}/mcp/payments") as client:
            result = await client.call_tool(tool, arguments)
        return "allowed" if not result.is_error else "tool error"

    async def run(self) -> None:
        await self.step("agent-7 (L2) transfers 50 USD: plain server behind the gateway", "allowed",
                        lambda: self.call("agent-7", "payments", "transfer_funds", TRANSFER))  # fmt: skip
        await self.step("agent-7 transfers 50 USD: signed server, verified end to end", "allowed",
                        lambda: self.call("agent-7", "ledger", "transfer_funds", TRANSFER))  # fmt: skip

        async def tampered() -> str:
            self.relay.tamper = True
            try:
                return await self.call("agent-7", "ledger", "transfer_funds", TRANSFER)
            finally:
                self.relay.tamper = False

        await self.step("amount changed in transit (50 → 50000): the upstream checks", "MCPS-004", tampered)
        replayed = self.signed_call("agent-7")
        await self.raw(replayed)
        await self.step("the same signed call replayed", "MCPS-005", lambda: self.raw(replayed))
        await self.step(
            "signed for another server", "MCPS-011", lambda: self.raw(self.signed_call("agent-7", audience=LEDGER))
        )
        await self.step("intern (L1) tries a transfer", "MCPS-009",
                        lambda: self.raw(self._transfer_as("intern")))  # fmt: skip
        await self.step("auditor (no payments:write scope) tries a transfer", "MCPS-016",
                        lambda: self.raw(self._transfer_as("auditor")))  # fmt: skip
        large, sanctioned = {**TRANSFER, "amount": 5000}, {**TRANSFER, "counterparty": "Evil Corp Holdings"}
        await self.step("agent-7 transfers 5,000 USD (L2 cap: 100 per call)", "MCPS-016",
                        lambda: self.call("agent-7", "payments", "transfer_funds", large))  # fmt: skip
        await self.step("agent-7 pays 'Evil Corp Holdings' (sanctions list)", "MCPS-016",
                        lambda: self.call("agent-7", "payments", "transfer_funds", sanctioned))  # fmt: skip
        await self.step("client pinned another gateway key (substituted gateway)", "MCPS-029",
                        lambda: self.call("agent-7", "ledger", "get_balance", {},
                                          gateway_key=PrivateKey.generate(Algorithm.EDDSA).public_key))  # fmt: skip
        await self.step("unsigned client (plain SDK) reads the balance (an L0 tool)", "allowed",
                        lambda: self.unsigned("get_balance", {}))  # fmt: skip
        await self.step(
            "unsigned client tries a transfer", "MCPS-009", lambda: self.unsigned("transfer_funds", TRANSFER)
        )

    async def kill_switch(self) -> None:
        revoked = await asyncio.to_thread(
            mcps, "revoke", "--sub", "agent-7", "--store", "state/revocations.db", cwd=self.setup.dir
        )
        if revoked.returncode != 0:
            raise SystemExit(f"mcps revoke failed: {revoked.stderr.strip()}")
        await self.step("agent-7 after `mcps revoke --sub agent-7` (kill switch)", "MCPS-003",
                        lambda: self.raw(self.signed_call("agent-7")))  # fmt: skip

    def _transfer_as(self, agent: str) -> dict[str, Any]:
        message = self.signed_call(agent)
        key, passport = self.setup.agents[agent]
        params = {**message["params"], "name": "transfer_funds", "arguments": TRANSFER}
        params["_meta"] = {k: v for k, v in params["_meta"].items() if not k.startswith("mcps/")}
        call = {**message, "params": params}
        return sign_message(attach_passport(call, passport), key, audience=PAYMENTS, now=time.time())


async def rug_pull(demo: Demo, ledger_command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """Restart the ledger with a rewritten read_file description (same name, new instructions for the model)."""
    demo.setup.rug_pull.touch()
    ledger = start(ledger_command, env={**env, "PAYMENTS_RUG_PULL": str(demo.setup.rug_pull)})
    await until(lambda: port_open(port), "the ledger", ledger)

    async def listed_then_called() -> str:
        async with demo.client("agent-7", "ledger") as client:
            listed = await client.list_tools()
            if "read_file" in {tool.name for tool in listed.tools}:
                return "changed tool still listed"
            await client.call_tool("read_file", {"path": "q3.txt"})
        return "allowed"

    await demo.step(
        "ledger redeployed with read_file's description rewritten (rug pull)", "MCPS-008", listed_then_called
    )
    return ledger


async def main() -> int:
    console = Console(width=None if sys.stdout.isatty() else 110)
    logging.getLogger("mcps").setLevel(logging.ERROR)  # the table says what happened; refusals are expected here
    with tempfile.TemporaryDirectory(prefix="mcps-demo-") as tmp:
        directory = Path(tmp)
        ledger_port, relay_port, gateway_port = free_port(), free_port(), free_port()
        setup = Setup(directory, ledger_port=ledger_port, relay_port=relay_port, gateway_port=gateway_port)
        env = {**os.environ, "PAYMENTS_DATA": str(directory / "data")}
        ledger_command = [
            sys.executable, str(HERE / "signed_payments_server.py"), "--port", str(ledger_port),
            "--key", str(directory / "ledger.pem"), "--identity", LEDGER, "--anchors", str(directory / "anchors.jwks"),
            "--gateway-key", str(directory / "gateway.pem.pub.jwk"),
        ]  # fmt: skip
        ledger = start(ledger_command, env=env)
        relay = TamperingRelay(f"http://127.0.0.1:{ledger_port}/mcp")
        gateway: subprocess.Popen[bytes] | None = None
        try:
            await until(lambda: port_open(ledger_port), "the ledger", ledger)
            async with serving(relay, relay_port):
                pinned = await asyncio.to_thread(mcps, "gateway", "pin", "--config", "gateway.toml", cwd=directory)
                if pinned.returncode != 0:
                    raise SystemExit(f"mcps gateway pin failed: {pinned.stderr.strip()}")
                log = open(directory / "gateway.log", "wb")  # noqa: SIM115, ASYNC230 - closed with the process
                gateway = start([*MCPS, "gateway", "run", "--config", "gateway.toml"], cwd=directory, log=log)
                await until(lambda: port_open(gateway_port), "mcps gateway", gateway)
                console.print(
                    f"[bold]mcps gateway[/] {GATEWAY} on 127.0.0.1:{gateway_port} (key {setup.gateway_key.kid})"
                )
                console.print("  /mcp/payments → examples/gateway/payments_server.py (plain SDK, stdio, unsigned)")
                console.print("  /mcp/ledger   → the same server with mcps in it, over HTTP, behind a tampering relay")
                demo = Demo(setup, relay)
                await demo.run()
                ledger.terminate()
                ledger.wait(10)
                ledger = await rug_pull(demo, ledger_command, env, ledger_port)
                await demo.kill_switch()
            gateway.terminate()
            gateway.wait(30)
            audit_rows(demo, directory)
        finally:
            for process in (gateway, ledger):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        return report(console, demo)


def audit_rows(demo: Demo, directory: Path) -> None:
    key = mcps("audit", "key", "--db", "state/audit.db", cwd=directory)
    (directory / "log.pub.jwk").write_text(key.stdout, encoding="utf-8")
    verified = mcps("audit", "verify", "--db", "state/audit.db", "--key", "log.pub.jwk", cwd=directory)
    size = json.loads(verified.stdout).get("entries", "?") if verified.returncode == 0 else "?"
    outcome = "intact" if verified.returncode == 0 else verified.stderr.strip()[:60]
    demo.rows.append((f"mcps audit verify: {size} entries, every decision", "intact", outcome, outcome == "intact"))
    with contextlib.closing(sqlite3.connect(directory / "state" / "audit.db")) as db:
        rows = db.execute("SELECT idx, entry FROM audit_entries ORDER BY idx").fetchall()
        row = next(row for row in rows if b'"decision":"deny"' in bytes(row[1]))
        edited_entry = bytes(row[1]).replace(b'"decision":"deny"', b'"decision":"allow"')
        db.execute("UPDATE audit_entries SET entry = ? WHERE idx = ?", (edited_entry, row[0]))
        db.commit()
    edited = mcps("audit", "verify", "--db", "state/audit.db", "--key", "log.pub.jwk", cwd=directory)
    caught = edited.returncode == 1 and "modified" in edited.stderr + edited.stdout
    demo.rows.append(
        (f"a 'deny' rewritten as 'allow' in audit row {row[0]}", "caught", "caught" if caught else "missed", caught)
    )


def report(console: Console, demo: Demo) -> int:
    table = Table(title="mcps gateway: what happens to each call")
    table.add_column("")
    table.add_column("scenario")
    table.add_column("expected", no_wrap=True)
    table.add_column("got", no_wrap=True)
    for title, expected, got, good in demo.rows:
        table.add_row(f"[green]{CHECK}[/]" if good else f"[red]{CROSS}[/]", title, expected, got)
    console.print(table)
    bad = [row for row in demo.rows if not row[3]]
    if bad:
        console.print(f"[red]{len(bad)} scenario(s) misbehaved[/]")
        return 1
    console.print("[green]all scenarios behaved as expected[/]")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
