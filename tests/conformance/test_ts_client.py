"""The TypeScript MCP SDK client lists and calls tools on each conformance target (ts_client.mjs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .node import NodeTools

CLIENT = Path(__file__).resolve().parent / "ts_client.mjs"
CLIENT_TIMEOUT = 60.0  # seconds; the client gives up by itself after 30


@pytest.fixture(scope="session")
def ts_client_run(node_tools: NodeTools, target_url: str) -> dict[str, Any]:
    environment = {"MCPS_NODE_MODULES": str(node_tools.modules)}
    completed = subprocess.run(
        [str(node_tools.node), str(CLIENT), target_url],
        env=node_tools.environment() | environment,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, f"ts_client.mjs exit {completed.returncode}:\n{completed.stderr[-3000:]}"
    answer: dict[str, Any] = json.loads(completed.stdout)
    return answer


def test_ts_client_negotiates_2025_11_25_and_lists_the_tools(ts_client_run: dict[str, Any]) -> None:
    assert ts_client_run["protocolVersion"] == "2025-11-25"
    assert ts_client_run["server"]["name"] == "mcps-conformance-target"
    assert {"test_simple_text", "test_tool_with_progress", "test_error_handling", "test_elicitation"} <= set(
        ts_client_run["tools"]
    )


def test_ts_client_calls_a_tool(ts_client_run: dict[str, Any]) -> None:
    assert ts_client_run["simpleText"]["content"] == [
        {"type": "text", "text": "This is a simple text response for testing."}
    ]
    assert not ts_client_run["simpleText"].get("isError")


def test_ts_client_receives_progress_during_a_call(ts_client_run: dict[str, Any]) -> None:
    updates = [(update["progress"], update.get("total")) for update in ts_client_run["progress"]]

    assert updates == [(0, 100), (50, 100), (100, 100)]
    assert ts_client_run["withProgress"]["content"][0]["type"] == "text"


def test_ts_client_sees_a_tool_error_as_is_error(ts_client_run: dict[str, Any]) -> None:
    assert ts_client_run["error"]["isError"] is True
    assert ts_client_run["error"]["content"] == [
        {"type": "text", "text": "This tool intentionally returns an error for testing"}
    ]


def test_ts_client_answers_an_elicitation_during_a_call(ts_client_run: dict[str, Any]) -> None:
    (asked,) = ts_client_run["elicitations"]
    assert asked["message"] == "Who are you?"
    assert asked["requestedSchema"]["required"] == ["username", "email"]
    (content,) = ts_client_run["elicitation"]["content"]
    assert content["text"] == (
        'User response: action=accept, content={"email": "ts-client@example.com", "username": "ts-client"}'
    )
