"""A conformance target for the official MCP conformance suite, written by us with the plain ``mcp`` SDK.

It serves Streamable HTTP at ``http://127.0.0.1:PORT/mcp``: both protocol generations the SDK speaks
(2025-11-25 with sessions, resumable SSE and server→client requests; 2026-07-28 stateless, with
``server/discover``, per-request ``_meta``, multi-round-trip ``InputRequiredResult`` and
``subscriptions/listen``). It is built on the SDK's low-level ``Server`` so that every tool, resource and
prompt is plain data here, with the exact names, schemas and contents the suite's scenarios ask for (the
scenario descriptions in ``@modelcontextprotocol/conformance`` are the specification of this file).

Run it by hand::

    python tests/conformance/server.py --port 3001

It prints one line, ``listening on http://127.0.0.1:PORT/mcp``, once it accepts connections (``--port 0``
picks a free port). The tests start it as a subprocess; the gateway's tests put the gateway in front of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import socket
import struct
import sys
import warnings
import wave
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

SERVER_NAME = "mcps-conformance-target"
ENDPOINT = "/mcp"
# Milliseconds a client waits before it reconnects to an SSE stream the server closed (SEP-1699 polling).
SSE_RETRY_MS = 100
# Events kept for Last-Event-ID resumption, across all streams; the oldest are dropped first.
MAX_STORED_EVENTS = 10_000
# The pause between the notifications a tool sends, so that a client sees them arrive one by one.
STEP_SECONDS = 0.05

Context = ServerRequestContext[Any, Any]
ToolResult = types.CallToolResult | types.InputRequiredResult
ToolHandler = Callable[[Context, types.CallToolRequestParams], Awaitable[ToolResult]]


# --- test media, generated here rather than pasted in ---------------------------------------------------


def _png_1x1() -> bytes:
    """A valid 1×1 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1×1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte 0, then one red pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav_silence() -> bytes:
    """A valid WAV file: 10 ms of 8 kHz mono 16-bit silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


PNG = _png_1x1()
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(_wav_silence()).decode()


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def image() -> types.ImageContent:
    return types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")


def embedded(uri: str, mime_type: str, value: str) -> types.EmbeddedResource:
    contents = types.TextResourceContents(uri=uri, mime_type=mime_type, text=value)
    return types.EmbeddedResource(type="resource", resource=contents)


def result(*content: types.ContentBlock, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=list(content), is_error=is_error)


def string_argument(params: types.CallToolRequestParams, name: str) -> str:
    value = (params.arguments or {}).get(name)
    if not isinstance(value, str):
        raise MCPError(types.INVALID_PARAMS, f"argument {name!r} must be a string")
    return value


def is_modern(ctx: Context) -> bool:
    """True on the stateless 2026-07-28 wire, where the server cannot send requests of its own to the client."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def object_schema(properties: Mapping[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    if required:
        schema["required"] = required
    return schema


STRING = {"type": "string"}


def ask(message: str, schema: dict[str, Any]) -> types.ElicitRequest:
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def sample(prompt: str, max_tokens: int) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=text(prompt))
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


NAME_SCHEMA = object_schema({"name": STRING}, ["name"])


# --- per-connection state (2025-11-25 sessions) ---------------------------------------------------------

LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


@dataclass
class SessionState:
    log_threshold: types.LoggingLevel = "debug"
    subscriptions: frozenset[str] = frozenset()


class ConnectionStates:
    """What ``logging/setLevel`` and ``resources/subscribe`` set, per ``Mcp-Session-Id`` (bounded)."""

    def __init__(self, limit: int = 1024) -> None:
        self._states: OrderedDict[str, SessionState] = OrderedDict()
        self._limit = limit

    def of(self, ctx: Context) -> SessionState:
        headers = getattr(ctx.request, "headers", None)
        key = (headers.get("mcp-session-id") if headers is not None else None) or ""
        state = self._states.pop(key, None) or SessionState()
        self._states[key] = state
        while len(self._states) > self._limit:
            self._states.popitem(last=False)
        return state


class BoundedEventStore(EventStore):
    """SSE events kept in memory for ``Last-Event-ID`` resumption; event ids are ``<stream>/<sequence>``.

    The SDK names a POST's stream after its JSON-RPC request id, which repeats across sessions, and gives the
    store no session: a replay sends the later events of every stream with that id. Good enough for a test
    target that sees one resuming client at a time; a production store would need the session.
    """

    def __init__(self, limit: int = MAX_STORED_EVENTS) -> None:
        self._events: OrderedDict[str, tuple[str, types.JSONRPCMessage | None]] = OrderedDict()
        self._sequence = 0
        self._limit = limit

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        self._sequence += 1
        event_id = f"{stream_id}/{self._sequence}"
        self._events[event_id] = (stream_id, message)
        while len(self._events) > self._limit:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        found = self._events.get(last_event_id)
        if found is None:
            return None
        stream_id, _ = found
        after = int(last_event_id.rpartition("/")[2])
        for event_id, (stream, message) in list(self._events.items()):
            if stream == stream_id and message is not None and int(event_id.rpartition("/")[2]) > after:
                await send_callback(EventMessage(message, event_id))
        return stream_id


# --- the target -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: ToolHandler


@dataclass(frozen=True)
class StaticResource:
    uri: str
    name: str
    description: str
    mime_type: str
    text: str | None = None
    blob: bytes | None = None


TEMPLATE = "test://template/{id}/data"
TEMPLATE_PREFIX, TEMPLATE_SUFFIX = "test://template/", "/data"

JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": STRING, "city": STRING},
        }
    },
    "properties": {
        "name": STRING,
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": STRING,
        "email": STRING,
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

SEP1034_SCHEMA = object_schema(
    {
        "name": {"type": "string", "description": "Your name", "default": "John Doe"},
        "age": {"type": "integer", "description": "Your age", "default": 30},
        "score": {"type": "number", "description": "Your score", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "description": "Verified?", "default": True},
    }
)

SEP1330_SCHEMA = object_schema(
    {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    }
)


class ConformanceTarget:
    """The tools, resources and prompts the suite's server scenarios call, and the ``Server`` serving them."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self.sessions = ConnectionStates()
        self.tools: dict[str, ToolSpec] = {spec.name: spec for spec in self._tool_specs()}
        self.resources = {
            r.uri: r
            for r in (
                StaticResource(
                    "test://static-text",
                    "static-text",
                    "A static text resource",
                    "text/plain",
                    text="This is the content of the static text resource.",
                ),
                StaticResource("test://static-binary", "static-binary", "A 1x1 PNG", "image/png", blob=PNG),
                StaticResource(
                    "test://watched-resource",
                    "watched-resource",
                    "A resource clients subscribe to",
                    "text/plain",
                    text="Watched resource content",
                ),
            )
        }
        self.prompts: dict[str, types.Prompt] = {
            prompt.name: prompt
            for prompt in (
                types.Prompt(name="test_simple_prompt", description="A prompt without arguments"),
                types.Prompt(
                    name="test_prompt_with_arguments",
                    description="A prompt with two required arguments",
                    arguments=[
                        types.PromptArgument(name="arg1", description="First test argument", required=True),
                        types.PromptArgument(name="arg2", description="Second test argument", required=True),
                    ],
                ),
                types.Prompt(
                    name="test_prompt_with_embedded_resource",
                    description="A prompt embedding a resource",
                    arguments=[
                        types.PromptArgument(name="resourceUri", description="URI to embed", required=True),
                    ],
                ),
                types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
                types.Prompt(
                    name="test_input_required_result_prompt",
                    description="A prompt that first asks the client for context (InputRequiredResult)",
                ),
            )
        }

    # --- the Server -------------------------------------------------------------------------------------

    def server(self) -> Server[Any]:
        server: Server[Any] = Server(
            SERVER_NAME,
            version="1.0.0",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
            on_subscribe_resource=self.subscribe,
            on_unsubscribe_resource=self.unsubscribe,
            on_subscriptions_listen=ListenHandler(self.bus),
            on_list_prompts=self.list_prompts,
            on_get_prompt=self.get_prompt,
            on_completion=self.complete,
            on_set_logging_level=self.set_logging_level,
            get_tool_input_schema=lambda name: self.tools[name].input_schema if name in self.tools else None,
        )
        # The multi-round-trip requestState is sealed by the SDK's boundary, so a tampered echo is refused.
        server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=SERVER_NAME))
        return server

    def app(self) -> Any:
        return self.server().streamable_http_app(
            streamable_http_path=ENDPOINT,
            event_store=BoundedEventStore(),
            retry_interval=SSE_RETRY_MS,
            transport_security=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            ),
        )

    # --- tools ------------------------------------------------------------------------------------------

    async def list_tools(self, ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools = [
            types.Tool(name=s.name, description=s.description, input_schema=s.input_schema) for s in self.tools.values()
        ]
        return types.ListToolsResult(tools=tools)

    async def call_tool(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        spec = self.tools.get(params.name)
        if spec is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        return await spec.handler(ctx, params)

    def _tool_specs(self) -> list[ToolSpec]:
        no_arguments = object_schema()
        return [
            ToolSpec("test_simple_text", "Returns one text block", no_arguments, self.simple_text),
            ToolSpec("test_image_content", "Returns one PNG image", no_arguments, self.image_content),
            ToolSpec("test_audio_content", "Returns one WAV clip", no_arguments, self.audio_content),
            ToolSpec("test_embedded_resource", "Returns one embedded resource", no_arguments, self.embedded_resource),
            ToolSpec("test_multiple_content_types", "Returns text, image and resource", no_arguments, self.mixed),
            ToolSpec("test_tool_with_logging", "Sends three info log messages", no_arguments, self.with_logging),
            ToolSpec("test_logging_tool", "Sends log messages (2026: only when opted in)", no_arguments, self.logs),
            ToolSpec("test_tool_with_progress", "Reports progress 0, 50, 100 of 100", no_arguments, self.progress),
            ToolSpec("test_error_handling", "Always fails with isError", no_arguments, self.error_handling),
            ToolSpec(
                "test_sampling",
                "Asks the client's LLM (sampling/createMessage)",
                object_schema({"prompt": {"type": "string", "description": "The prompt to send"}}, ["prompt"]),
                self.sampling,
            ),
            ToolSpec(
                "test_elicitation",
                "Asks the user (elicitation/create)",
                object_schema({"message": {"type": "string", "description": "What to ask"}}, ["message"]),
                self.elicitation,
            ),
            ToolSpec("test_elicitation_sep1034_defaults", "Elicits with defaults", no_arguments, self.elicit_defaults),
            ToolSpec("test_elicitation_sep1330_enums", "Elicits with every enum form", no_arguments, self.elicit_enums),
            ToolSpec(
                "test_streaming_elicitation",
                "Needs the user's name: asks on the session (2025) or returns InputRequiredResult (2026)",
                no_arguments,
                self.streaming_elicitation,
            ),
            ToolSpec(
                "json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12, self.noop
            ),
            ToolSpec("test_reconnection", "Closes its SSE stream mid-call (SEP-1699)", no_arguments, self.reconnection),
            ToolSpec(
                "test_x_mcp_header",
                "Echoes a parameter mirrored into the Mcp-Param-Region header (SEP-2243)",
                object_schema({"region": {"type": "string", "x-mcp-header": "Region"}}, ["region"]),
                self.x_mcp_header,
            ),
            ToolSpec(
                "test_missing_capability", "Needs the client's sampling capability", no_arguments, self.needs_sampling
            ),
            ToolSpec(
                "test_update_watched_resource",
                "Announces an update of test://watched-resource to its subscribers",
                no_arguments,
                self.watched_resource_updated,
            ),
            ToolSpec("test_trigger_tool_change", "Announces a tools list change", no_arguments, self.tools_changed),
            ToolSpec(
                "test_trigger_prompt_change", "Announces a prompts list change", no_arguments, self.prompts_changed
            ),
            ToolSpec(
                "test_input_required_result_elicitation", "MRTR: elicitation", no_arguments, self.mrtr_elicitation
            ),
            ToolSpec("test_input_required_result_sampling", "MRTR: sampling", no_arguments, self.mrtr_sampling),
            ToolSpec("test_input_required_result_list_roots", "MRTR: roots/list", no_arguments, self.mrtr_roots),
            ToolSpec("test_input_required_result_request_state", "MRTR: requestState", no_arguments, self.mrtr_state),
            ToolSpec("test_input_required_result_multiple_inputs", "MRTR: three inputs", no_arguments, self.mrtr_many),
            ToolSpec("test_input_required_result_multi_round", "MRTR: three rounds", no_arguments, self.mrtr_rounds),
            ToolSpec("test_input_required_result_tampered_state", "MRTR: sealed state", no_arguments, self.mrtr_sealed),
            ToolSpec(
                "test_input_required_result_capabilities",
                "MRTR: asks only for what the client declared",
                no_arguments,
                self.mrtr_capabilities,
            ),
        ]

    async def simple_text(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(text("This is a simple text response for testing."))

    async def image_content(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(image())

    async def audio_content(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(types.AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav"))

    async def embedded_resource(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(embedded("test://embedded-resource", "text/plain", "This is an embedded resource content."))

    async def mixed(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        document = json.dumps({"test": "data", "value": 123})
        return result(
            text("Multiple content types test:"),
            image(),
            embedded("test://mixed-content-resource", "application/json", document),
        )

    async def log(self, ctx: Context, level: types.LoggingLevel, message: str) -> None:
        threshold = self.sessions.of(ctx).log_threshold
        if LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold):
            await ctx.session.send_log_message(level, message, related_request_id=ctx.request_id)

    async def with_logging(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        for step, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if step:
                await anyio.sleep(STEP_SECONDS)
            await self.log(ctx, "info", message)
        return result(text("Tool with logging executed successfully"))

    async def logs(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        # On 2026-07-28 the SDK drops these unless the request's _meta opted in to a log level.
        await self.log(ctx, "info", "logging tool: info")
        await self.log(ctx, "warning", "logging tool: warning")
        return result(text("logged"))

    async def progress(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        for step, value in enumerate((0, 50, 100)):
            if step:
                await anyio.sleep(STEP_SECONDS)
            await ctx.session.report_progress(value, 100, f"step {value} of 100")
        token = (ctx.meta or {}).get("progress_token")
        return result(text(f"progress reported (token {token!r})"))

    async def error_handling(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(text("This tool intentionally returns an error for testing"), is_error=True)

    async def sampling(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        request = sample(string_argument(params, "prompt"), 100).params
        answer = await ctx.session.create_message(
            request.messages, max_tokens=request.max_tokens, related_request_id=ctx.request_id
        )
        content = answer.content
        reply = content.text if isinstance(content, types.TextContent) else f"<{content.type}>"
        return result(text(f"LLM response: {reply}"))

    async def _elicit(self, ctx: Context, message: str, schema: dict[str, Any], prefix: str) -> ToolResult:
        answer = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        content = json.dumps(answer.content if answer.action == "accept" else {}, sort_keys=True)
        return result(text(f"{prefix}: action={answer.action}, content={content}"))

    async def elicitation(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        schema = object_schema(
            {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            ["username", "email"],
        )
        return await self._elicit(ctx, string_argument(params, "message"), schema, "User response")

    async def elicit_defaults(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return await self._elicit(ctx, "Please review your details", SEP1034_SCHEMA, "Elicitation completed")

    async def elicit_enums(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return await self._elicit(ctx, "Please pick some options", SEP1330_SCHEMA, "Elicitation completed")

    async def streaming_elicitation(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        if is_modern(ctx):
            return await self.mrtr_elicitation(ctx, params)
        return await self._elicit(ctx, "What is your name?", NAME_SCHEMA, "Elicitation completed")

    async def noop(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(text(f"{params.name} called"))

    async def reconnection(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        await self.log(ctx, "info", "Before disconnect")
        if ctx.close_sse_stream is not None:
            await ctx.close_sse_stream()
        await anyio.sleep(4 * STEP_SECONDS)  # the client reconnects with Last-Event-ID meanwhile
        await self.log(ctx, "info", "After reconnect")
        return result(text("Reconnection test completed"))

    async def x_mcp_header(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        return result(text(f"region={string_argument(params, 'region')}"))

    async def needs_sampling(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        capabilities = ctx.session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            raise MCPError(
                types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                "This tool requires the client's sampling capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return result(text("The client declared sampling."))

    async def watched_resource_updated(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        uri = "test://watched-resource"
        if is_modern(ctx):
            await self.bus.publish(ResourceUpdated(uri=uri))  # to subscriptions/listen streams
        elif uri in self.sessions.of(ctx).subscriptions:
            await ctx.session.send_resource_updated(uri)  # on the session's standalone GET stream
        return result(text(f"{uri} updated"))

    async def tools_changed(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        await self.bus.publish(ToolsListChanged())
        return result(text("tools list changed"))

    async def prompts_changed(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        await self.bus.publish(PromptsListChanged())
        return result(text("prompts list changed"))

    # --- multi-round-trip tools (2026-07-28, SEP-2322) --------------------------------------------------

    async def mrtr_elicitation(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        answer = (params.input_responses or {}).get("user_name")
        if not isinstance(answer, types.ElicitResult):
            return types.InputRequiredResult(input_requests={"user_name": ask("What is your name?", NAME_SCHEMA)})
        name = (answer.content or {}).get("name", "stranger")
        return result(text(f"Hello, {name}!"))

    async def mrtr_sampling(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        answer = (params.input_responses or {}).get("capital_question")
        if not isinstance(answer, types.CreateMessageResult):
            request = sample("What is the capital of France?", 100)
            return types.InputRequiredResult(input_requests={"capital_question": request})
        reply = answer.content.text if isinstance(answer.content, types.TextContent) else "?"
        return result(text(f"The model answered: {reply}"))

    async def mrtr_roots(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        answer = (params.input_responses or {}).get("client_roots")
        if not isinstance(answer, types.ListRootsResult):
            return types.InputRequiredResult(input_requests={"client_roots": types.ListRootsRequest()})
        return result(text(f"The client has {len(answer.roots)} root(s): {[str(r.uri) for r in answer.roots]}"))

    async def mrtr_state(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        if "confirm" in (params.input_responses or {}) and params.request_state == "awaiting-confirmation":
            return result(text("state-ok: the confirmation and the requestState came back"))
        confirm = ask("Please confirm", object_schema({"ok": {"type": "boolean"}}, ["ok"]))
        return types.InputRequiredResult(input_requests={"confirm": confirm}, request_state="awaiting-confirmation")

    async def mrtr_many(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        if {"user_name", "greeting", "client_roots"} <= (params.input_responses or {}).keys():
            return result(text("All three inputs arrived."))
        requests: dict[str, types.InputRequest] = {
            "user_name": ask("What is your name?", NAME_SCHEMA),
            "greeting": sample("Generate a greeting", 50),
            "client_roots": types.ListRootsRequest(),
        }
        return types.InputRequiredResult(input_requests=requests, request_state="three-inputs")

    async def mrtr_rounds(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        responses = params.input_responses or {}
        state: dict[str, Any] = json.loads(params.request_state) if params.request_state else {}
        step1, step2 = responses.get("step1"), responses.get("step2")
        if state.get("round") == 2 and isinstance(step2, types.ElicitResult):
            color = (step2.content or {}).get("color")
            return result(text(f"{state.get('name')}'s favourite colour is {color}."))
        if state.get("round") == 1 and isinstance(step1, types.ElicitResult):
            color_question = ask("Step 2: What is your favorite color?", object_schema({"color": STRING}, ["color"]))
            next_state = json.dumps({"round": 2, "name": (step1.content or {}).get("name")})
            return types.InputRequiredResult(input_requests={"step2": color_question}, request_state=next_state)
        first = ask("Step 1: What is your name?", NAME_SCHEMA)
        return types.InputRequiredResult(input_requests={"step1": first}, request_state=json.dumps({"round": 1}))

    async def mrtr_sealed(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        # The SDK's RequestStateBoundary refuses an altered echo before this handler runs.
        if params.request_state is None:
            confirm = ask("Please confirm", object_schema({"ok": {"type": "boolean"}}, ["ok"]))
            return types.InputRequiredResult(input_requests={"confirm": confirm}, request_state="first-round")
        return result(text(f"state-ok: {params.request_state}"))

    async def mrtr_capabilities(self, ctx: Context, params: types.CallToolRequestParams) -> ToolResult:
        capabilities = ctx.session.client_capabilities
        requests: dict[str, types.InputRequest] = {}
        if capabilities is not None and capabilities.sampling is not None:
            requests["sample"] = sample("Say hello", 50)
        if capabilities is not None and capabilities.elicitation is not None:
            requests["ask"] = ask("What is your name?", NAME_SCHEMA)
        if not requests:
            return result(text("The client declared neither sampling nor elicitation."))
        return types.InputRequiredResult(input_requests=requests, request_state="capability-gated")

    # --- resources --------------------------------------------------------------------------------------

    async def list_resources(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        listed = [
            types.Resource(uri=r.uri, name=r.name, description=r.description, mime_type=r.mime_type)
            for r in self.resources.values()
        ]
        return types.ListResourcesResult(resources=listed)

    async def list_resource_templates(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template=TEMPLATE,
            name="template-data",
            description="JSON data for an id",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read_resource(self, ctx: Context, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        found = self.resources.get(uri)
        contents: types.TextResourceContents | types.BlobResourceContents
        if found is not None and found.blob is not None:
            blob = base64.b64encode(found.blob).decode()
            contents = types.BlobResourceContents(uri=uri, mime_type=found.mime_type, blob=blob)
        elif found is not None:
            contents = types.TextResourceContents(uri=uri, mime_type=found.mime_type, text=found.text or "")
        elif (identifier := _template_id(uri)) is not None:
            document = json.dumps({"id": identifier, "templateTest": True, "data": f"Data for ID: {identifier}"})
            contents = types.TextResourceContents(uri=uri, mime_type="application/json", text=document)
        else:
            raise MCPError(types.INVALID_PARAMS, "Resource not found", data={"uri": uri})
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(self, ctx: Context, params: types.SubscribeRequestParams) -> types.EmptyResult:
        state = self.sessions.of(ctx)
        state.subscriptions = state.subscriptions | {str(params.uri)}
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Context, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        state = self.sessions.of(ctx)
        state.subscriptions = state.subscriptions - {str(params.uri)}
        return types.EmptyResult()

    async def set_logging_level(self, ctx: Context, params: types.SetLevelRequestParams) -> types.EmptyResult:
        self.sessions.of(ctx).log_threshold = params.level
        return types.EmptyResult()

    # --- prompts and completion -------------------------------------------------------------------------

    async def list_prompts(self, ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=list(self.prompts.values()))

    async def get_prompt(
        self, ctx: Context, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        arguments = params.arguments or {}
        prompt = self.prompts.get(params.name)
        if prompt is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in arguments]
        if missing:
            raise MCPError(types.INVALID_PARAMS, f"Missing required arguments: {', '.join(missing)}")

        def user(content: types.ContentBlock) -> types.PromptMessage:
            return types.PromptMessage(role="user", content=content)

        match params.name:
            case "test_simple_prompt":
                messages = [user(text("This is a simple prompt for testing."))]
            case "test_prompt_with_arguments":
                messages = [
                    user(text(f"Prompt with arguments: arg1='{arguments['arg1']}', arg2='{arguments['arg2']}'"))
                ]
            case "test_prompt_with_embedded_resource":
                resource = embedded(arguments["resourceUri"], "text/plain", "Embedded resource content for testing.")
                messages = [user(resource), user(text("Please process the embedded resource above."))]
            case "test_prompt_with_image":
                messages = [user(image()), user(text("Please analyze the image above."))]
            case _:  # test_input_required_result_prompt
                answer = (params.input_responses or {}).get("user_context")
                if not isinstance(answer, types.ElicitResult):
                    question = ask(
                        "What context should the prompt use?", object_schema({"context": STRING}, ["context"])
                    )
                    return types.InputRequiredResult(input_requests={"user_context": question})
                messages = [user(text(f"Use this context: {(answer.content or {}).get('context', '')}"))]
        return types.GetPromptResult(description=prompt.description, messages=messages)

    async def complete(self, ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
        words = ("paris", "park", "party", "hello", "world")
        values = [word for word in words if word.startswith(params.argument.value)]
        return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


def _template_id(uri: str) -> str | None:
    if uri.startswith(TEMPLATE_PREFIX) and uri.endswith(TEMPLATE_SUFFIX):
        identifier = uri[len(TEMPLATE_PREFIX) : -len(TEMPLATE_SUFFIX)]
        if identifier and "/" not in identifier:
            return identifier
    return None


# --- running it -------------------------------------------------------------------------------------------


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket. Made with ``IPPROTO_TCP`` so that asyncio turns Nagle off on accept."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


async def serve(host: str, port: int) -> None:
    sock = listening_socket(host, port)
    config = uvicorn.Config(ConformanceTarget().app(), log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    if server.started:
        bound_host, bound_port = sock.getsockname()[:2]
        print(f"listening on http://{bound_host}:{bound_port}{ENDPOINT}", flush=True)
    await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: a free port)")
    args = parser.parse_args(argv)
    # Logging, sampling and roots are deprecated from 2026-07-28 on (SEP-2577), and the SDK warns on each use;
    # this target serves them on purpose, for the 2025-11-25 scenarios.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
