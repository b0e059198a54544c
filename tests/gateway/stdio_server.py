"""Test upstream (run as a subprocess): a plain MCP SDK server over stdio, no mcps, with tools that misbehave
on request. Written by us for the gateway's stdio adapter tests.

The JSON-RPC wire is a private duplicate of fd 1 (fd 1 itself points at stderr, as the SDK's own stdio_server
arranges), so that the tools ``garbage`` and ``close_stdout`` can write to, or close, the real wire.

Arguments: ``--banner`` prints non-JSON lines on the wire before serving.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from io import TextIOWrapper
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.stdio import stdio_server
from mcp_types import CallToolResult, SamplingMessage, TextContent
from pydantic import BaseModel, Field

warnings.simplefilter("ignore")  # the logging capability is deprecated at 2026-07-28; this server still uses it

WIRE_OUT = os.dup(1)
WIRE_IN = os.dup(0)
os.dup2(2, 1)  # stray prints go to stderr, never onto the wire
server = MCPServer("gateway-test-upstream")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def route(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    """A tool whose argument is mirrored in an ``Mcp-Param-Region`` header (2026-07-28)."""
    return f"routed to {region}"


@server.tool()
def meta(ctx: Context) -> CallToolResult:
    """The request's ``_meta`` as text; the result's ``_meta`` carries its ``mcps/sig`` member back."""
    received = dict(ctx.request_context.meta or {})
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(received))],
        _meta={"mcps/sig": received.get("mcps/sig"), "x.example/upstream": ["é", 1.5, None, True, 2**53 - 1]},
    )


@server.tool()
def pid() -> int:
    """This process's id."""
    return os.getpid()


@server.tool()
def environment(name: str) -> str:
    """An environment variable ('' when unset) and the working directory."""
    return f"{os.environ.get(name, '')}|{os.getcwd()}"


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Report progress ``steps`` times, then answer."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return f"done {steps}"


@server.tool()
async def log(message: str, ctx: Context) -> str:
    """Send a log message to the client, then answer."""
    await ctx.info(message, logger_name="upstream")
    return "logged"


class Answer(BaseModel):
    text: str


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Elicit an answer from the user (2025-era server→client request)."""
    answer = await ctx.elicit(question, Answer)
    return answer.data.text if answer.action == "accept" and answer.data is not None else answer.action


@server.tool()
async def sample(prompt: str, ctx: Context) -> str:
    """Ask the client's model (sampling, a 2025-era server→client request)."""
    result = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=10
    )
    content: Any = result.content
    return content.text if isinstance(content, TextContent) else "?"


@server.tool()
async def change_tools(ctx: Context) -> str:
    """Add a tool and tell the client its tool list changed (2025: a notification; 2026: a listen event)."""
    server.add_tool(lambda: "added", name="added", description="Added at run time.")
    if ctx.protocol_version is not None and ctx.protocol_version >= "2026":
        await ctx.notify_tools_changed()
    else:
        await ctx.session.send_tool_list_changed()
    return "changed"


@server.tool()
def crash() -> str:
    """Exit at once, mid-call."""
    os._exit(3)


@server.tool()
async def hang(ctx: Context) -> str:
    """Report that it has started (progress), then never answer."""
    await ctx.report_progress(0, 1, "hanging")
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def garbage() -> str:
    """Write non-JSON lines onto the wire, then answer."""
    os.write(WIRE_OUT, b'this is not json\n\xff\xfe\x00 binary\n[1,2,3]\n{"jsonrpc":"2.0","id":\n\n')
    return "after garbage"


@server.tool()
def big(size: int) -> str:
    """A result of ``size`` characters."""
    return "x" * size


@server.tool()
async def close_stdout() -> str:
    """Close the wire and stay alive."""
    os.close(WIRE_OUT)
    await anyio.sleep_forever()
    return "unreachable"


async def main() -> None:
    if "--banner" in sys.argv:
        os.write(WIRE_OUT, b"Starting the server...\nnot json either\n")
    stdin = anyio.wrap_file(TextIOWrapper(os.fdopen(WIRE_IN, "rb"), encoding="utf-8", errors="replace"))
    stdout = anyio.wrap_file(TextIOWrapper(os.fdopen(WIRE_OUT, "wb", closefd=False), encoding="utf-8"))
    async with stdio_server(stdin, stdout) as (read_stream, write_stream):
        lowlevel = server._lowlevel_server  # run over our own streams, as run_stdio_async does
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
