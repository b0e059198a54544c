"""StdioUpstreamApp end to end: the test upstream (a plain SDK stdio server, ``stdio_server.py``) behind the app
on a real uvicorn, driven by the plain mcp 2.3 SDK client in both protocol generations (2025-11-25 sessions and
2026-07-28 stateless requests). Faults of the child (crash, hang, garbage, oversize line, closed stdout) fail the
calls they touch with a JSON-RPC error and nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    LoggingMessageNotificationParams,
    TextContent,
    ToolListChangedNotification,
)

from mcps.gateway.stdio_upstream import RestartPolicy, StdioUpstreamApp

from .stdio_harness import MODERN, TIMEOUT, FakeClock, RawClient, process_gone, serving, text, upstream

ERAS = [pytest.param("legacy", id="2025-11-25"), pytest.param(MODERN, id="2026-07-28")]


@asynccontextmanager
async def connect(url: str, mode: str, **options: Any) -> AsyncIterator[Client]:
    async with Client(url, mode=mode, **options) as client:
        yield client


def mcp_error(raised: BaseException) -> MCPError:
    """The MCPError in ``raised`` (the SDK client raises some from inside its task groups)."""
    if isinstance(raised, MCPError):
        return raised
    if isinstance(raised, BaseExceptionGroup):
        for inner in raised.exceptions:
            with contextlib.suppress(AssertionError):
                return mcp_error(inner)
    raise AssertionError(f"no MCPError in {raised!r}")


async def call_error(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(tool, arguments or {})
    return caught.value


async def hang_until_failed(client: Client, started: anyio.Event, errors: list[MCPError]) -> None:
    """Call ``hang``; ``started`` is set once the child runs it (it reports progress first)."""

    async def on_progress(_progress: float, _total: float | None, _message: str | None) -> None:
        started.set()

    with pytest.raises(MCPError) as caught:
        await client.call_tool("hang", {}, progress_callback=on_progress)
    errors.append(caught.value)


@pytest.mark.parametrize("mode", ERAS)
async def test_lists_and_calls_tools(mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"echo", "progress", "crash", "hang"} <= names
            assert text(await client.call_tool("echo", {"text": "héllo"})) == "héllo"


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_notifications_reach_the_caller(mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, mode) as client:
            result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
    assert text(result) == "done 3"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("mode", ERAS)
async def test_log_messages_reach_the_caller(mode: str) -> None:
    logged: list[Any] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logged.append((params.level, params.logger, params.data))

    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, mode, logging_callback=on_log, log_level="info") as client:
            assert text(await client.call_tool("log", {"message": "from the upstream"})) == "logged"
    assert logged == [("info", "upstream", "from the upstream")]


async def test_elicitation_and_sampling_during_a_call_reach_the_client() -> None:
    """2025-11-25: server→client requests during a call travel on the call's stream; the answers are POSTed back."""
    asked: list[str] = []

    async def on_elicit(_context: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"text": "yes, go"})

    async def on_sample(_context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        prompt = params.messages[0].content
        assert isinstance(prompt, TextContent)
        return CreateMessageResult(
            role="assistant", model="test-model", content=TextContent(type="text", text=f"sampled: {prompt.text}")
        )

    with anyio.fail_after(TIMEOUT):
        async with (
            upstream() as (_, url),
            connect(url, "legacy", elicitation_callback=on_elicit, sampling_callback=on_sample) as client,
        ):
            assert text(await client.call_tool("ask", {"question": "Proceed?"})) == "yes, go"
            assert text(await client.call_tool("sample", {"prompt": "hi"})) == "sampled: hi"
    assert asked == ["Proceed?"]


async def test_tool_list_changed_notification_reaches_the_client_2025() -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            changed.set()

    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, "legacy", message_handler=on_message) as client:
            assert text(await client.call_tool("change_tools")) == "changed"
            await changed.wait()
            assert "added" in {tool.name for tool in (await client.list_tools()).tools}


async def test_tool_list_changed_event_reaches_a_listen_stream_2026() -> None:
    """2026-07-28: ``subscriptions/listen`` through the shared child, its subscription id mapped back."""
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, MODERN) as client:
            async with client.listen(tools_list_changed=True) as subscription:
                assert subscription.honored.tools_list_changed
                assert text(await client.call_tool("change_tools")) == "changed"
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
            assert "added" in {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}


async def test_two_sessions_have_separate_children() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url), connect(url, "legacy") as first, connect(url, "legacy") as second:
            pids = [int(text(await client.call_tool("pid"))) for client in (first, second)]
            assert pids[0] != pids[1]
            assert app.session_count == 2
            await first.call_tool("change_tools")  # state in one child is not seen by the other
            assert "added" not in {tool.name for tool in (await second.list_tools()).tools}


async def test_concurrent_2026_requests_are_multiplexed_without_crosstalk() -> None:
    """A burst of 50 calls from 5 clients, all on one shared child: every answer and every progress notification
    reaches exactly the call it belongs to (the SDK client's ids and progress tokens collide across clients)."""
    clients, per_client = 5, 10
    answers: dict[tuple[int, int], str] = {}
    progress: dict[tuple[int, int], list[float]] = {}

    async def call(client: Client, c: int, i: int) -> None:
        if i % 2:
            answers[c, i] = text(await client.call_tool("echo", {"text": f"client {c} call {i}"}))
            return
        progress[c, i] = []

        async def on_progress(value: float, _total: float | None, _message: str | None) -> None:
            progress[c, i].append(value)

        answers[c, i] = text(await client.call_tool("progress", {"steps": i + 1}, progress_callback=on_progress))

    with anyio.fail_after(TIMEOUT * 2):
        async with upstream() as (_, url), anyio.create_task_group() as tasks:

            async def run_client(c: int) -> None:
                async with connect(url, MODERN) as client:
                    pid = text(await client.call_tool("pid"))
                    async with anyio.create_task_group() as calls:
                        for i in range(per_client):
                            calls.start_soon(call, client, c, i)
                    assert text(await client.call_tool("pid")) == pid  # one shared child throughout

            for c in range(clients):
                tasks.start_soon(run_client, c)
    for (c, i), answer in answers.items():
        if i % 2:
            assert answer == f"client {c} call {i}"
        else:
            assert answer == f"done {i + 1}"
            assert progress[c, i] == [float(step) for step in range(1, i + 2)]
    assert len(answers) == clients * per_client


@pytest.mark.parametrize("mode", ERAS)
async def test_crash_fails_the_calls_in_flight_and_the_next_call_restarts_the_child(mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, mode) as client, connect(url, mode) as other:
            other_pid = text(await other.call_tool("pid"))
            before = int(text(await client.call_tool("pid")))
            errors: list[MCPError] = []
            started = anyio.Event()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(hang_until_failed, client, started, errors)
                await started.wait()
                errors.append(await call_error(client, "crash"))
            assert {(error.code, error.message) for error in errors} == {(INTERNAL_ERROR, "upstream server exited")}
            assert process_gone(before)
            after = int(text(await client.call_tool("pid")))  # restarted on next use
            assert after != before
            assert text(await client.call_tool("echo", {"text": "again"})) == "again"
            if mode == "legacy":  # another session: another child, untouched
                assert text(await other.call_tool("pid")) == other_pid


async def test_repeated_crashes_back_off_until_the_clock_allows_a_restart() -> None:
    clock = FakeClock()
    policy = RestartPolicy(initial_delay=5.0, max_delay=60.0, reset_after=600.0)
    with anyio.fail_after(TIMEOUT):
        async with upstream(clock=clock, restart=policy) as (_, url), connect(url, "legacy") as client:
            await call_error(client, "crash")  # first crash: the next call restarts at once
            assert text(await client.call_tool("echo", {"text": "1"})) == "1"
            await call_error(client, "crash")  # second in a row: 5 s of backoff
            refused = await call_error(client, "echo", {"text": "2"})
            assert (refused.code, refused.message) == (INTERNAL_ERROR, "upstream server is restarting")
            clock.advance(5.0)
            assert text(await client.call_tool("echo", {"text": "3"})) == "3"


@pytest.mark.parametrize("mode", ERAS)
async def test_hanging_tool_times_out_within_the_bound_and_others_go_on(mode: str) -> None:
    call_timeout = 3.0  # long enough for an echo on a loaded machine, short enough for a test
    with anyio.fail_after(TIMEOUT):
        async with upstream(call_timeout=call_timeout) as (_, url), connect(url, mode) as client:
            async with anyio.create_task_group() as tasks:

                async def hang() -> None:
                    with anyio.fail_after(call_timeout + 10):  # the bound, with room for a loaded machine
                        error = await call_error(client, "hang")
                    assert (error.code, error.message) == (INTERNAL_ERROR, "upstream call timed out")

                tasks.start_soon(hang)
                assert text(await client.call_tool("echo", {"text": "meanwhile"})) == "meanwhile"
            assert text(await client.call_tool("echo", {"text": "after"})) == "after"


@pytest.mark.parametrize("mode", ERAS)
async def test_garbage_printing_child_is_served(mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream("--banner") as (_, url), connect(url, mode) as client:
            pid = text(await client.call_tool("pid"))
            assert text(await client.call_tool("garbage")) == "after garbage"
            assert text(await client.call_tool("echo", {"text": "still"})) == "still"
            assert text(await client.call_tool("pid")) == pid  # garbage is dropped, not a crash


@pytest.mark.parametrize("mode", ERAS)
async def test_oversize_line_fails_its_call_only(mode: str) -> None:
    """A 10 MiB answer against the default 4 MiB limit: discarded while read, its call gets an error."""
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, mode) as client:
            pid = text(await client.call_tool("pid"))
            error = await call_error(client, "big", {"size": 10 * 1024 * 1024})
            assert (error.code, error.message) == (INTERNAL_ERROR, "upstream sent an invalid message")
            assert text(await client.call_tool("big", {"size": 1000})) == "x" * 1000
            assert text(await client.call_tool("pid")) == pid


@pytest.mark.parametrize("mode", ERAS)
async def test_child_closing_its_stdout_fails_the_call_and_is_restarted(mode: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream(kill_timeout=0.5) as (_, url), connect(url, mode) as client:
            pid = int(text(await client.call_tool("pid")))
            error = await call_error(client, "close_stdout")
            assert (error.code, error.message) == (INTERNAL_ERROR, "upstream server exited")
            assert process_gone(pid)
            assert text(await client.call_tool("echo", {"text": "back"})) == "back"


async def test_delete_ends_the_sessions_child_and_reaps_it() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url):
            async with connect(url, "legacy") as client:
                pid = int(text(await client.call_tool("pid")))
                assert app.session_count == 1
            # The client sent DELETE on exit, and was answered only once the child was gone.
            assert process_gone(pid)
            assert app.session_count == 0


async def test_idle_session_is_ended_by_the_clock() -> None:
    """A session with nothing in flight and no open stream is ended after ``idle_timeout`` (an SDK client keeps
    its GET stream open, which holds the session, as in the SDK's own server: so a raw client here)."""
    clock = FakeClock()
    with anyio.fail_after(TIMEOUT):
        async with upstream(clock=clock, idle_timeout=60.0) as (app, url):
            raw = RawClient(url)
            try:
                await raw.initialize()
                pid = (await raw.call(1, "pid", {}))["result"]["structuredContent"]["result"]
                while app.sessions()[0].busy:  # noqa: ASYNC110 - the server ends its side just after the client
                    await anyio.sleep(0.01)
                assert app.sessions()[0].pid == pid
                clock.advance(59.0)
                assert await app.reap_idle() == 0
                clock.advance(1.0)
                assert await app.reap_idle() == 1
                assert process_gone(pid)
                gone = await raw.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
                assert gone.status_code == 404  # as the SDK answers an unknown session
            finally:
                await raw.aclose()


async def test_idle_shared_child_is_ended_and_started_again_on_demand() -> None:
    clock = FakeClock()
    with anyio.fail_after(TIMEOUT):
        async with upstream(clock=clock, idle_timeout=60.0) as (app, url), connect(url, MODERN) as client:
            pid = int(text(await client.call_tool("pid")))
            clock.advance(60.0)
            assert await app.reap_idle() == 1
            assert process_gone(pid)
            assert int(text(await client.call_tool("pid"))) != pid


async def test_environment_is_minimal_plus_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("GATEWAY_TEST_SECRET", "not for the child")
    with anyio.fail_after(TIMEOUT):
        async with (
            upstream(env={"GATEWAY_TEST_VAR": "configured"}, cwd=tmp_path) as (_, url),
            connect(url, "legacy") as client,
        ):
            assert text(await client.call_tool("environment", {"name": "GATEWAY_TEST_VAR"})) == f"configured|{tmp_path}"
            assert text(await client.call_tool("environment", {"name": "GATEWAY_TEST_SECRET"})) == f"|{tmp_path}"


async def test_mcp_param_header_checked_against_the_tools_schema_2026() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (_, url), connect(url, MODERN) as client:
            await client.list_tools()  # the SDK client mirrors x-mcp-header arguments only for tools it listed
            assert text(await client.call_tool("route", {"region": "eu-west"})) == "routed to eu-west"


async def test_command_that_cannot_start_gets_an_error_not_a_crash() -> None:
    app = StdioUpstreamApp(["/nonexistent/mcp-server"])
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as url:
            for mode in ("legacy", MODERN):
                with pytest.raises((MCPError, BaseExceptionGroup)) as caught:
                    async with connect(url, mode) as client:
                        await client.call_tool("echo", {"text": "x"})
                error = mcp_error(caught.value)
                assert (error.code, error.message) == (INTERNAL_ERROR, "upstream server is unavailable")
            assert app.session_count == 0


async def test_a_call_the_client_abandons_is_cancelled_and_leaves_nothing_pending() -> None:
    with anyio.fail_after(TIMEOUT):
        async with upstream() as (app, url), connect(url, "legacy") as client:
            started = anyio.Event()

            async def on_progress(_progress: float, _total: float | None, _message: str | None) -> None:
                started.set()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.call_tool, "hang", {}, None, on_progress)
                await started.wait()
                tasks.cancel_scope.cancel()  # the SDK client sends notifications/cancelled
            while app.sessions()[0].calls:  # noqa: ASYNC110 - the cancellation reaches the server asynchronously
                await anyio.sleep(0.01)
            assert text(await client.call_tool("echo", {"text": "next"})) == "next"
