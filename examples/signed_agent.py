"""A signed MCP agent: an ordinary mcp.Client, with a transport that signs and verifies every message.

Run:  python examples/signed_agent.py      (starts examples/signed_server.py over stdio and calls one tool)
Keys: examples/keys/ (test keys, made on first use by example_keys.py).
"""

import sys
from pathlib import Path

import anyio
from example_keys import private_key, public_key
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, signed_stdio_client

security = ChannelSecurity(
    key=private_key("agent"),  # signs every request
    trusted=PinnedKeys([public_key("server")]),  # the only server key we accept
    nonces=MemoryNonceStore(),  # a replayed response is refused
)
server = StdioServerParameters(command=sys.executable, args=[str(Path(__file__).with_name("signed_server.py"))])


async def main() -> None:
    transport = signed_stdio_client(server, security, server_identity="urn:example:notes")
    async with Client(transport) as client:
        await client.list_tools()  # verifies each tool's signature and pins the listing; calls need it first
        result = await client.call_tool("add_note", {"text": "ship it"})
        print(result.content[0].text)


if __name__ == "__main__":
    anyio.run(main)
