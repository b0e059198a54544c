"""The same payments server with mcps in it: it verifies the agent end to end, the gateway's hop record and grant.

Behind ``mcps gateway`` a server that runs mcps checks, for every call, what no gateway can forge: the agent's own
signature (so an argument changed by the gateway or on the wire is refused, MCPS-004), that the call came through
the gateway it trusts (its hop record, MCPS-034 without one), and the gateway's per-call grant for exactly this
tool and these arguments (MCPS-017/031/032). Its own answers are signed, so the agent can check them end to end.

    python signed_payments_server.py --port 9002 --key ledger.pem --identity urn:example:ledger \\
        --anchors anchors.jwks --gateway-key gateway.pem.pub.jwk
"""

from __future__ import annotations

import argparse

import uvicorn
from payments_server import server

from mcps import MemoryNonceStore, PinnedKeys
from mcps.bindings import ChannelSecurity, GrantRequirement, signed_streamable_http_app
from mcps.core.keys import load_private_key, load_public_jwk
from mcps.identity import MemoryRevocationStore, PassportResolver, TrustAnchors
from mcps.identity.grants import GrantVerifier
from mcps.identity.levels import TrustLevel
from mcps.verifier import HopTrust


def main() -> None:
    parser = argparse.ArgumentParser(description="the payments server, signed, behind a gateway")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="this server's private key (PEM)")
    parser.add_argument("--identity", required=True, help="this server's identity (what agents address)")
    parser.add_argument("--anchors", required=True, help="the issuers whose agents may call (JWKS)")
    parser.add_argument("--gateway-key", required=True, help="the gateway's public key (JWK)")
    args = parser.parse_args()
    gateway = load_public_jwk(args.gateway_key)
    nonces = MemoryNonceStore()
    security = ChannelSecurity(
        key=load_private_key(args.key),
        identity=args.identity,
        trusted=PassportResolver(
            anchors=TrustAnchors.load(args.anchors),
            audience=args.identity,
            revocations=MemoryRevocationStore(),
            min_level=TrustLevel.L1,
            pinned=PinnedKeys([gateway]),  # the gateway signs for the unsigned clients it admits
        ),
        nonces=nonces,
        gateways=HopTrust(PinnedKeys([gateway]), required=True),  # every call must come through the gateway
        grants=GrantRequirement(GrantVerifier(issuers=[gateway], audience=args.identity, nonces=nonces)),
    )
    app = signed_streamable_http_app(server, security)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
