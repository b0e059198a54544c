"""Bindings for the official MCP Python SDK (``mcp`` 2.x): signed servers and agents.

Install with the ``mcp`` extra (``pip install 'mcps-security[mcp]'``).

* Server: :func:`serve_stdio` (or :func:`signed_stdio_server` / :func:`secure_server_streams` around any
  transport's streams); tools read the verified sender with :func:`current_caller`.
* Agent: :func:`signed_stdio_client`, or :class:`SignedTransport` around any SDK client transport, passed to
  ``mcp.Client`` (or their streams to ``ClientSession``).
* Streamable HTTP: :class:`McpsHttpMiddleware` (or :func:`signed_streamable_http_app`) in front of the SDK's
  app; :func:`signed_streamable_http_client` for ``mcp.Client``.
* Both ends are configured by one :class:`ChannelSecurity`: own key, identity and passport, trusted keys or
  trust anchors (:class:`~mcps.identity.PassportResolver`), nonce store, and for a server the tools that need a
  per-call grant (:class:`GrantRequirement`).
* Tools: servers sign every tool they list; an agent pins them with a :class:`ToolGuard` built from
  ``mcps.lock`` (:func:`load_lockfile`), passed as ``tools=`` to the client transport. Without one, a client
  verifies the signatures and pins the first listing for that connection only (:meth:`ToolGuard.session_pins`).
* :class:`UnsafeTrustOnFirstUse`: for a server whose key is not known in advance, trusts the first key it sees
  (from the server's passport) and warns on every use (:class:`UnsafeTrustWarning`).
"""

from mcps.bindings.caller import Caller, NoVerifiedCaller, current_caller
from mcps.bindings.channel import ChannelSecurity, SecureChannel
from mcps.bindings.grants import GrantRequirement
from mcps.bindings.http import McpsHttpMiddleware, signed_streamable_http_app
from mcps.bindings.http_client import signed_streamable_http_client
from mcps.bindings.mcp_client import SignedTransport, signed_stdio_client
from mcps.bindings.mcp_server import secure_server_streams, serve_stdio, signed_stdio_server
from mcps.bindings.tofu import UnsafeTrustOnFirstUse, UnsafeTrustWarning
from mcps.bindings.tools import (
    ToolDecision,
    ToolGuard,
    ToolReport,
    hold_unpinned,
    load_lockfile,
    save_lockfile,
)

__all__ = [
    "Caller",
    "ChannelSecurity",
    "GrantRequirement",
    "McpsHttpMiddleware",
    "NoVerifiedCaller",
    "SecureChannel",
    "SignedTransport",
    "ToolDecision",
    "ToolGuard",
    "ToolReport",
    "UnsafeTrustOnFirstUse",
    "UnsafeTrustWarning",
    "current_caller",
    "hold_unpinned",
    "load_lockfile",
    "save_lockfile",
    "secure_server_streams",
    "serve_stdio",
    "signed_stdio_client",
    "signed_stdio_server",
    "signed_streamable_http_app",
    "signed_streamable_http_client",
]
