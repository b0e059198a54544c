"""The notes server of signed_server.py, served over Streamable HTTP by uvicorn on 127.0.0.1.

Run:  python examples/signed_http_server.py      (http://127.0.0.1:8000/mcp; MCPS_EXAMPLE_PORT picks another port)
Then: python examples/signed_http_agent.py
Every request must be signed by the example agent's key and addressed to urn:example:notes; every response and
notification is signed by the server's key. Keys: examples/keys/ (test keys, made on first use).
"""

import os

import uvicorn
from signed_server import security, server

from mcps.bindings import signed_streamable_http_app

PORT = int(os.environ.get("MCPS_EXAMPLE_PORT", "8000"))
app = signed_streamable_http_app(server, security)  # the SDK's Streamable HTTP app behind McpsHttpMiddleware

if __name__ == "__main__":
    print(f"serving urn:example:notes on http://127.0.0.1:{PORT}/mcp", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
