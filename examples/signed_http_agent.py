"""A signed MCP agent over Streamable HTTP: mcp.Client with signed_streamable_http_client.

Run:  python examples/signed_http_server.py &  then  python examples/signed_http_agent.py
It waits (up to 15 s) for the server to listen, lists the tools (verifying each tool's signature) and calls one.
"""

import os
import socket
import time

import anyio
from example_keys import private_key, public_key
from mcp import Client

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, signed_streamable_http_client

PORT = int(os.environ.get("MCPS_EXAMPLE_PORT", "8000"))
URL = f"http://127.0.0.1:{PORT}/mcp"
security = ChannelSecurity(
    key=private_key("agent"),  # signs every request
    trusted=PinnedKeys([public_key("server")]),  # the only server key we accept
    nonces=MemoryNonceStore(),  # a replayed response is refused
)


def wait_for_server(timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no server listening on 127.0.0.1:{PORT}") from None
            time.sleep(0.1)


async def main() -> None:
    transport = signed_streamable_http_client(URL, security, server_identity="urn:example:notes")
    async with Client(transport) as client:
        await client.list_tools()  # verifies each tool's signature and pins the listing; calls need it first
        result = await client.call_tool("add_note", {"text": "ship it over HTTP"})
        print(result.content[0].text)


if __name__ == "__main__":
    wait_for_server()
    anyio.run(main)
