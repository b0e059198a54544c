"""Signed traffic through StdioUpstreamApp to a stdio upstream that runs the mcps server binding
(``signed_stdio_server.py``: verifies every message end to end, pins its connection to its first signer).

At 2026-07-28 a signed request must reach the child exactly as signed (its signature covers ``id`` and
``progressToken``) and on a child of its signer's own (a second signer on one connection is refused, MCPS-029):
two agents at once, colliding ids of one signer (serialized, never rewritten), the bound on signers' children
(least recently used idle one ended), listen streams, and requests whose client went away.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcps import MemoryNonceStore, PinnedKeys, PrivateKey
from mcps.bindings import ChannelSecurity
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.core.envelope import sign_message
from mcps.core.keys import save_private_key
from mcps.gateway.stdio_modern import signer_of
from mcps.gateway.stdio_upstream import StdioUpstreamApp
from mcps.verifier import MessageVerifier

from .stdio_harness import MODERN, TIMEOUT, FakeClock, RawClient, messages, process_gone, serving, text

SIGNED_SERVER = Path(__file__).with_name("signed_stdio_server.py")
SERVER_IDENTITY = "urn:mcps:test:stdio-upstream"
ERAS = [pytest.param("legacy", id="2025-11-25"), pytest.param(MODERN, id="2026-07-28")]


@dataclass
class Keys:
    """Test keys made per run: the upstream's, and the agents' it trusts (agent-<n>.jwk in ``directory``)."""

    directory: Path
    server: PrivateKey
    agents: list[PrivateKey]

    @classmethod
    def write(cls, directory: Path, agents: int = 2) -> Keys:
        server = PrivateKey.generate()
        save_private_key(server, directory / "server.pem")
        keys = [PrivateKey.generate() for _ in range(agents)]
        for n, agent in enumerate(keys):
            (directory / f"agent-{n}.jwk").write_text(json.dumps(agent.public_key.to_jwk()))
        return cls(directory, server, keys)

    def refusals(self) -> str:
        path = self.directory / "refusals.log"
        return path.read_text() if path.exists() else ""

    def started(self) -> list[dict[str, Any]]:
        path = self.directory / "started.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@asynccontextmanager
async def signed_upstream(keys: Keys, **options: Any) -> AsyncIterator[tuple[StdioUpstreamApp, str]]:
    """The signed test upstream behind a StdioUpstreamApp on uvicorn: yields the app and its URL."""
    command = [sys.executable, str(SIGNED_SERVER)]
    app = StdioUpstreamApp(command, env={"MCPS_TEST_DIR": str(keys.directory)}, **options)
    async with serving(app) as url:
        yield app, url


@asynccontextmanager
async def signed_client(url: str, keys: Keys, agent: PrivateKey, mode: str) -> AsyncIterator[Client]:
    """An SDK client with the mcps HTTP transport: signs every request, verifies every answer with the upstream's
    key (an answer that does not verify fails its call)."""
    security = ChannelSecurity(key=agent, trusted=PinnedKeys([keys.server.public_key]), nonces=MemoryNonceStore())
    transport = signed_streamable_http_client(url, security, server_identity=SERVER_IDENTITY)
    async with Client(transport, mode=mode) as client:
        await client.list_tools()  # as an agent must: a call to a tool it has not listed is refused locally
        yield client


class SignedRaw:
    """Hand-made 2026-07-28 requests signed by ``agent``, whose every answer is verified against its request."""

    def __init__(self, url: str, keys: Keys, agent: PrivateKey) -> None:
        self.raw = RawClient(url)
        self.agent = agent
        self.verifier = MessageVerifier(
            audience=agent.kid, keys=PinnedKeys([keys.server.public_key]), nonces=MemoryNonceStore()
        )

    async def aclose(self) -> None:
        await self.raw.aclose()

    def request(self, request_id: Any, method: str, params: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        """The request's ``sig``, body and headers."""
        content, headers = self.raw.modern_request(request_id, method, params)
        signed = sign_message(json.loads(content), self.agent, audience=SERVER_IDENTITY, now=time.time())
        return signed["params"]["_meta"]["mcps/sig"]["sig"], json.dumps(signed).encode(), headers

    async def post(
        self, request_id: Any, method: str, params: dict[str, Any], headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every message of the answer, each verified (the final one bound to this request)."""
        sig, content, all_headers = self.request(request_id, method, params)
        response = await self.raw.http.post(self.raw.url, content=content, headers=all_headers | (headers or {}))
        return await self.verified(messages(response), sig)

    async def verified(self, received: list[dict[str, Any]], sig: str) -> list[dict[str, Any]]:
        for message in received:
            if "error" in message and "mcps/sig" not in (message["error"].get("data") or {}):
                continue  # the app's own error (a timeout): not the upstream's, and not signed
            await self.verifier.verify_parsed(message, in_reply_to=None if "method" in message else sig)
        return received

    async def call(self, request_id: Any, tool: str, token: Any = None, **arguments: Any) -> list[dict[str, Any]]:
        meta = {} if token is None else {"_meta": {"progressToken": token}}
        return await self.post(request_id, "tools/call", {"name": tool, "arguments": arguments, **meta})

    async def seen(self, request_id: Any, token: Any = None) -> dict[str, Any]:
        """What the child saw of a ``seen`` call (its id, token, caller) and its pid."""
        final = (await self.call(request_id, "seen", token))[-1]
        assert final["id"] == request_id
        return json.loads(final["result"]["content"][0]["text"])  # type: ignore[no-any-return]

    @asynccontextmanager
    async def listening(self, request_id: Any) -> AsyncIterator[None]:
        """A ``subscriptions/listen`` stream, open (acknowledged, verified) until the block ends."""
        listen = {"notifications": {"toolsListChanged": True}}
        _, content, headers = self.request(request_id, "subscriptions/listen", listen)
        async with self.raw.http.stream("POST", self.raw.url, content=content, headers=headers) as response:
            lines = response.aiter_lines()  # not left by break: closing it would close the stream
            while not (line := await anext(lines)).startswith("data:"):
                pass
            acknowledged = json.loads(line[5:])
            await self.verified([acknowledged], "")
            assert acknowledged["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == request_id
            yield


@asynccontextmanager
async def raw_agents(url: str, keys: Keys) -> AsyncIterator[list[SignedRaw]]:
    agents = [SignedRaw(url, keys, agent) for agent in keys.agents]
    try:
        yield agents
    finally:
        for agent in agents:
            await agent.aclose()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for what another process or task does next (bounded by the test's ``fail_after``)."""
    while not condition():  # noqa: ASYNC110 - the state is another process's, or the app's: no event to wait on
        await anyio.sleep(0.01)


def timed_out(answer: list[dict[str, Any]]) -> bool:
    return answer[-1].get("error", {}).get("message") == "upstream call timed out"


@pytest.mark.parametrize("mode", ERAS)
async def test_two_agents_call_a_verifying_upstream_concurrently_and_both_verify(tmp_path: Path, mode: str) -> None:
    """Regression: at 2026-07-28 both agents' requests went to one shared child with rewritten ids: the child
    refused them (MCPS-004, and MCPS-029 for the second signer) and its answers did not verify at the clients."""
    keys = Keys.write(tmp_path)
    seen: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    progress: dict[int, list[float]] = {0: [], 1: []}

    async def agent(url: str, n: int) -> None:
        async def on_progress(value: float, _total: float | None, _message: str | None) -> None:
            progress[n].append(value)

        async def call(client: Client) -> None:
            seen[n].append(json.loads(text(await client.call_tool("seen", {}, progress_callback=on_progress))))

        async with signed_client(url, keys, keys.agents[n], mode) as client, anyio.create_task_group() as calls:
            for _ in range(4):
                calls.start_soon(call, client)
            assert text(await client.call_tool("route", {"region": "eu"})) == "routed to eu"  # Mcp-Param-Region

    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url):
            async with anyio.create_task_group() as agents:
                agents.start_soon(agent, url, 0)
                agents.start_soon(agent, url, 1)
            if mode == MODERN:
                assert {info.kid for info in app.signers()} == {key.kid for key in keys.agents}
                assert app.shared_pid is None  # no signed request went to the shared child
    assert keys.refusals() == ""
    for n, key in enumerate(keys.agents):
        assert len(seen[n]) == 4
        assert {entry["caller"] for entry in seen[n]} == {key.kid}
        assert all(entry["token"] == entry["id"] for entry in seen[n])  # the SDK's token is its id: both unchanged
        assert progress[n] == [1.0] * 4
    pids = [{entry["pid"] for entry in seen[n]} for n in (0, 1)]
    assert len(pids[0]) == len(pids[1]) == 1
    assert pids[0] != pids[1]  # one child per signer
    # Both clients numbered their requests alike, and each child saw its client's own numbers.
    assert {entry["id"] for entry in seen[0]} & {entry["id"] for entry in seen[1]}


async def test_a_signed_listen_stream_gets_its_events_through_the_signers_child(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url), signed_client(url, keys, keys.agents[0], MODERN) as client:
            async with client.listen(tools_list_changed=True) as subscription:
                assert subscription.honored.tools_list_changed
                assert text(await client.call_tool("change_tools")) == "changed"
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
            assert [info.kid for info in app.signers()] == [keys.agents[0].kid]
    assert keys.refusals() == ""


async def test_colliding_ids_of_one_signer_wait_their_turn_and_are_never_rewritten(tmp_path: Path) -> None:
    """The gateway signs for every unsigned client with one key, so one signer's ids and tokens collide: a request
    whose id or progress token is in flight waits, and the child sees every request exactly as signed."""
    keys = Keys.write(tmp_path)
    answers: dict[str, list[dict[str, Any]]] = {}
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url), raw_agents(url, keys) as (agent, _):

            async def post(label: str, request_id: int, tool: str, token: int | None, **arguments: Any) -> None:
                answers[label] = await agent.call(request_id, tool, token, **arguments)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: post("first", 7, "gate", 7, name="open"))
                await until(lambda: keys.started() == [{"gate": "open", "id": 7}])
                tasks.start_soon(lambda: post("same id", 7, "seen", None))
                tasks.start_soon(lambda: post("same token", 8, "seen", 7))
                await until(lambda: app.signers()[0].waiting == 2)
                assert app.signers()[0].calls == 1  # only the first is on the child
                (tmp_path / "open").touch()
    assert answers["first"][-1]["id"] == 7
    assert answers["first"][-1]["result"]["content"][0]["text"] == "opened open"
    same_id = answers["same id"][-1]
    assert same_id["id"] == 7
    assert json.loads(same_id["result"]["content"][0]["text"])["id"] == 7
    *notes, same_token = answers["same token"]
    assert [note["params"]["progressToken"] for note in notes] == [7]  # its progress, by its own token
    assert json.loads(same_token["result"]["content"][0]["text"])["token"] == 7
    assert json.loads(same_token["result"]["content"][0]["text"])["id"] == 8
    assert keys.refusals() == ""


async def test_a_new_signer_ends_the_least_recently_used_idle_child(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path, agents=3)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys, max_signers=2) as (app, url), raw_agents(url, keys) as agents:
            first = (await agents[0].seen(1))["pid"]
            second = (await agents[1].seen(1))["pid"]
            assert (await agents[0].seen(2))["pid"] == first  # the first signer is now the more recent
            third = await agents[2].seen(1)
            assert third["caller"] == keys.agents[2].kid
            assert process_gone(second)  # ended and reaped before the new signer's child started
            assert [info.kid for info in app.signers()] == [keys.agents[0].kid, keys.agents[2].kid]
            assert (await agents[0].seen(3))["pid"] == first
    assert keys.refusals() == ""


async def test_a_new_signer_waits_while_every_child_is_busy_then_times_out(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path, agents=3)
    with anyio.fail_after(TIMEOUT):
        async with (
            signed_upstream(keys, max_signers=2, call_timeout=3.0) as (app, url),
            raw_agents(url, keys) as agents,
        ):
            async with agents[0].listening(1), agents[1].listening(1):  # listen streams: busy, no call timeout
                assert timed_out(await agents[2].call(1, "seen"))
                assert len(app.signers()) == 2
            # Both streams closed: their children become idle, and the least recent one makes room.
            await until(lambda: not any(info.busy for info in app.signers()))
            assert (await agents[2].seen(2))["caller"] == keys.agents[2].kid
            assert [info.kid for info in app.signers()] == [keys.agents[1].kid, keys.agents[2].kid]


async def test_a_new_signer_waiting_for_a_child_gets_the_first_that_becomes_idle(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path, agents=3)
    answer: dict[str, Any] = {}

    async def third(agent: SignedRaw) -> None:
        answer.update(await agent.seen(1))

    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys, max_signers=2) as (app, url), raw_agents(url, keys) as agents:
            async with agents[0].listening(1), anyio.create_task_group() as tasks, agents[1].listening(1):
                tasks.start_soon(third, agents[2])
                await until(lambda: app.signers_waiting == 1)
            # The second agent's stream closed first (the waiter is served before the first one's closes): its child
            # is the one that made room.
            assert [info.kid for info in app.signers()] == [keys.agents[0].kid, keys.agents[2].kid]
    assert answer["caller"] == keys.agents[2].kid


async def test_a_late_answer_to_an_abandoned_request_never_reaches_the_next_one_with_its_id(tmp_path: Path) -> None:
    """A signed request whose client went away keeps its id on the child until the child answers it: the next
    request with that id waits, and gets its own answer (bound to its own signature), not the late one."""
    keys = Keys.write(tmp_path)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url), raw_agents(url, keys) as (agent, _):
            async with anyio.create_task_group() as gone:
                gone.start_soon(lambda: agent.call(9, "gate", name="late"))
                await until(lambda: keys.started() == [{"gate": "late", "id": 9}])
                gone.cancel_scope.cancel()  # the client goes away
            await until(lambda: app.signers()[0].abandoned == 1)
            answer: list[dict[str, Any]] = []
            async with anyio.create_task_group() as tasks:

                async def next_call() -> None:
                    answer.extend(await agent.call(9, "seen"))

                tasks.start_soon(next_call)
                await until(lambda: app.signers()[0].waiting == 1)
                (tmp_path / "late").touch()
    assert json.loads(answer[-1]["result"]["content"][0]["text"])["id"] == 9  # verified against its own request
    assert keys.refusals() == ""


async def test_an_id_held_by_an_abandoned_request_is_freed_by_ending_the_child(tmp_path: Path) -> None:
    """A listen stream the client closed is never answered (the app cannot sign the cancellation): a request that
    waited ``call_timeout`` for its id ends the child, and the next one is served by a new child."""
    keys = Keys.write(tmp_path)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys, call_timeout=3.0) as (app, url), raw_agents(url, keys) as (agent, _):
            async with agent.listening(4):
                pid = app.signers()[0].pid
            await until(lambda: app.signers()[0].abandoned == 1)
            assert timed_out(await agent.call(4, "seen"))
            assert pid is not None
            assert process_gone(pid)
            again = await agent.seen(4)
            assert again["id"] == 4
            assert again["pid"] != pid
    assert keys.refusals() == ""


async def test_a_signers_child_that_crashes_fails_its_calls_and_is_started_again(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url), raw_agents(url, keys) as (agent, _):
            pid = (await agent.seen(1))["pid"]
            crashed = await agent.call(2, "crash")
            assert crashed[-1]["error"]["message"] == "upstream server exited"
            assert process_gone(pid)
            assert (await agent.seen(2))["pid"] != pid  # its id is free again, on a new child
            assert [info.abandoned for info in app.signers()] == [0]
    assert keys.refusals() == ""


async def test_idle_signers_children_are_ended_by_the_clock(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path)
    clock = FakeClock()
    with anyio.fail_after(TIMEOUT):
        async with (
            signed_upstream(keys, clock=clock, idle_timeout=60.0) as (app, url),
            raw_agents(url, keys) as agents,
        ):
            pids = [(await agent.seen(1))["pid"] for agent in agents]
            clock.advance(30.0)
            await agents[0].seen(2)
            clock.advance(30.0)
            assert await app.reap_idle() == 1  # the second signer's, idle for 60 s; the first was used 30 s ago
            assert process_gone(pids[1])
            assert [info.kid for info in app.signers()] == [keys.agents[0].kid]
            assert (await agents[1].seen(2))["pid"] != pids[1]


async def test_mcp_param_headers_of_signed_calls_are_checked_against_the_signers_listing(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url), raw_agents(url, keys) as (agent, _):
            await agent.post(1, "tools/list", {})
            route = {"name": "route", "arguments": {"region": "eu"}}
            _, content, headers = agent.request(2, "tools/call", route)
            response = await agent.raw.http.post(url, content=content, headers=headers | {"mcp-param-region": "us"})
            assert (response.status_code, response.json()["error"]["code"]) == (400, -32020)
            good = await agent.post(3, "tools/call", route, {"mcp-param-region": "eu"})
            assert good[-1]["result"]["content"][0]["text"] == "routed to eu"
            assert app.shared_pid is None  # the schema came from the signer's own listing
    assert keys.refusals() == ""


async def test_unsigned_requests_still_share_one_child_beside_the_signers(tmp_path: Path) -> None:
    keys = Keys.write(tmp_path)
    with anyio.fail_after(TIMEOUT):
        async with signed_upstream(keys) as (app, url), raw_agents(url, keys) as (agent, _):
            await agent.seen(1)
            unsigned = await agent.raw.modern(1, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
            assert unsigned.json()["error"]["data"]["mcps_code"] == "MCPS-026"  # this upstream verifies
            assert app.shared_pid is not None
            assert app.shared_pid not in {info.pid for info in app.signers()}


@pytest.mark.parametrize(
    ("meta", "signer"),
    [
        pytest.param(None, None, id="no-meta"),
        pytest.param({"progressToken": 1}, None, id="no-block"),
        pytest.param({"mcps/sig": {"kid": "abc"}}, "abc", id="kid"),
        pytest.param({"mcps/sig": {"kid": 5}}, "", id="kid-not-a-string"),
        pytest.param({"mcps/sig": None}, "", id="block-null"),
        pytest.param({"mcps/sig": "x"}, "", id="block-not-an-object"),
    ],
)
def test_signer_of_routes_by_the_blocks_kid_and_any_block_is_signed(meta: Any, signer: str | None) -> None:
    params = {} if meta is None else {"_meta": meta}
    assert signer_of({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}) == signer
