"""Every name the gateway takes from the MCP Python SDK (``mcp`` 2.3), in one place.

All are public (exported modules and documented classes); none is private. When the SDK moves one, this is the
only file to change. The gateway relies on:

* ``StreamableHTTPServerTransport`` and its ``EventStore`` interface: the SDK's own server side of a 2025-era
  Streamable HTTP session (SSE framing, event ids, ``Last-Event-ID`` resumption, the standalone GET stream,
  ``Mcp-Session-Id`` checks, DELETE), driven through a pair of message streams;
* the message envelope it speaks (``SessionMessage``, ``ServerMessageMetadata.related_request_id`` to put a
  message on the SSE stream of the request it belongs to);
* the 2026-07-28 inbound ladder (``mcp.shared.inbound``): envelope and header checks, ``Mcp-Param-*`` checks and
  the JSON-RPC error → HTTP status table, so the gateway answers exactly as an SDK server would;
* ``get_default_environment``: the environment a stdio server inherits by default.
"""

from __future__ import annotations

from mcp.client.stdio import get_default_environment
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
    check_accept_headers,
)
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    InboundLadderRejection,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    unsupported_protocol_version_rejection,
    validate_mcp_param_headers,
)
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

__all__ = [
    "CLIENT_CAPABILITIES_META_KEY",
    "CLIENT_INFO_META_KEY",
    "ERROR_CODE_HTTP_STATUS",
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MCP_PARAM_HEADER_PREFIX",
    "MCP_PROTOCOL_VERSION_HEADER",
    "MCP_SESSION_ID_HEADER",
    "PARSE_ERROR",
    "PROTOCOL_VERSION_META_KEY",
    "ErrorData",
    "EventCallback",
    "EventId",
    "EventMessage",
    "EventStore",
    "InboundLadderRejection",
    "InboundModernRoute",
    "JSONRPCError",
    "JSONRPCMessage",
    "JSONRPCNotification",
    "JSONRPCRequest",
    "JSONRPCResponse",
    "RequestId",
    "ServerMessageMetadata",
    "SessionMessage",
    "StreamId",
    "StreamableHTTPServerTransport",
    "check_accept_headers",
    "classify_inbound_request",
    "find_duplicated_routing_header",
    "get_default_environment",
    "jsonrpc_message_adapter",
    "unsupported_protocol_version_rejection",
    "validate_mcp_param_headers",
]
