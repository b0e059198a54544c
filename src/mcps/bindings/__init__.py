"""Bindings for the official MCP Python SDK (``mcp`` 2.x): signed servers and agents.

Install with the ``mcp`` extra (``pip install 'mcps[mcp]'``).

* Server: :func:`serve_stdio` (or :func:`signed_stdio_server` / :func:`secure_server_streams` around any
  transport's streams); tools read the verified sender with :func:`current_caller`.
* Agent: :func:`signed_stdio_client`, or :class:`SignedTransport` around any SDK client transport, passed to
  ``mcp.Client`` (or their streams to ``ClientSession``).
* Both ends are configured by one :class:`ChannelSecurity`: own key and identity, trusted keys, nonce store.
"""

from mcps.bindings.caller import Caller, NoVerifiedCaller, current_caller
from mcps.bindings.channel import ChannelSecurity, SecureChannel
from mcps.bindings.mcp_client import SignedTransport, signed_stdio_client
from mcps.bindings.mcp_server import secure_server_streams, serve_stdio, signed_stdio_server

__all__ = [
    "Caller",
    "ChannelSecurity",
    "NoVerifiedCaller",
    "SecureChannel",
    "SignedTransport",
    "current_caller",
    "secure_server_streams",
    "serve_stdio",
    "signed_stdio_client",
    "signed_stdio_server",
]
