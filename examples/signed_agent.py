"""A signed MCP agent: an ordinary mcp.Client, with a transport that signs and verifies every message.

Keys (once):  mcps keygen --out server.pem   and   mcps keygen --out agent.pem
Run:          python examples/signed_agent.py
"""

import sys
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, signed_stdio_client
from mcps.core.keys import load_private_key, load_public_jwk

KEYS = Path(__file__).parent
security = ChannelSecurity(
    key=load_private_key(KEYS / "agent.pem"),  # signs every request
    trusted=PinnedKeys([load_public_jwk(KEYS / "server.pem.pub.jwk")]),  # the only server key we accept
    nonces=MemoryNonceStore(),  # a replayed response is refused
)
server = StdioServerParameters(command=sys.executable, args=[str(KEYS / "signed_server.py")])


async def main() -> None:
    transport = signed_stdio_client(server, security, server_identity="urn:example:notes")
    async with Client(transport) as client:
        await client.list_tools()  # verifies each tool's signature and pins the listing; calls need it first
        result = await client.call_tool("add_note", {"text": "ship it"})
        print(result.content[0].text)


if __name__ == "__main__":
    anyio.run(main)
