"""``mcps gateway run --stdio NAME``: a client that starts a command reaches the upstream through every check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from tests.gateway.harness import write_gateway

from mcps.gateway.config import load_config
from mcps.gateway.setup import pin_upstreams


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    files = write_gateway(tmp_path)
    await pin_upstreams(load_config(files.config), ["payments"], False)
    return files.config


def _command(config: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mcps", "gateway", "run", "--config", str(config), "--stdio", "payments"]
    )


async def test_an_unsigned_stdio_client_gets_what_the_policy_gives_l0(config: Path) -> None:
    with anyio.fail_after(60):
        async with Client(_command(config)) as client:
            listed = await client.list_tools()
            assert [tool.name for tool in listed.tools] == ["get_balance"]
            balance = await client.call_tool("get_balance", {})
            assert "balance" in balance.content[0].text  # type: ignore[union-attr]
            with pytest.raises(MCPError) as refusal:
                await client.call_tool(
                    "transfer_funds", {"amount": 1, "currency": "USD", "to": "a", "counterparty": "b"}
                )
    assert isinstance(refusal.value.error.data, dict)
    assert refusal.value.error.data["mcps_code"] == "MCPS-009"


def test_a_line_that_is_not_strict_json_is_refused_on_stdout(config: Path) -> None:
    lines = b'{"jsonrpc":"2.0","id":5,"method":"ping","method":"tools/call"}\n'
    done = subprocess.run(
        [sys.executable, "-m", "mcps", "gateway", "run", "--config", str(config), "--stdio", "payments"],
        input=lines, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    answer = json.loads(done.stdout.splitlines()[0])
    assert answer["error"]["data"]["mcps_code"] == "MCPS-020"
    assert answer["id"] == 5
    assert done.returncode == 0
