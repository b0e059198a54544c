"""mcps core demo: one signed tool call accepted, then six attacks on it refused, each with its code.

An agent signs a ``tools/call`` for the payments server; the server verifies it with ``MessageVerifier``
(pinned agent key, in-memory nonce store). Run it with ``make demo``. It exits non-zero if any step
misbehaves: an attack accepted, a wrong code, or the genuine call refused.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mcps import McpsError, MemoryNonceStore, MessageSigner, MessageVerifier, PinnedKeys, PrivateKey
from mcps.core.keys import load_private_key, load_public_jwk, save_private_key

PAYMENTS = "mcp://payments.example"
CALL = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "transfer_funds", "arguments": {"amount": 100, "currency": "EUR", "to": "ACME-42"}},
}


def dump(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def make_keys(directory: Path) -> tuple[PrivateKey, PrivateKey]:
    """The agent's key, saved and loaded back as `mcps keygen` would; and an impostor's key (ES256)."""
    save_private_key(PrivateKey.generate("EdDSA"), directory / "agent.pem")  # PKCS#8 PEM, mode 0600
    agent = load_private_key(directory / "agent.pem")
    (directory / "agent.pub.jwk").write_text(json.dumps(agent.public_key.to_jwk()))
    return agent, PrivateKey.generate("ES256")


async def main() -> int:
    console = Console()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        agent_key, impostor_key = make_keys(Path(tmp))
        agent_public = load_public_jwk(Path(tmp) / "agent.pub.jwk")  # what the server was given

    agent, impostor = MessageSigner(agent_key), MessageSigner(impostor_key)
    server = MessageVerifier(audience=PAYMENTS, keys=PinnedKeys([agent_public]), nonces=MemoryNonceStore())

    genuine = agent.sign(CALL, audience=PAYMENTS, now=now)
    tampered = json.loads(json.dumps(genuine))
    tampered["params"]["arguments"]["amount"] = 100_000
    smuggled = dump(genuine).replace(b'"name":"transfer_funds"', b'"name":"transfer_funds","name":"rm_rf"')

    # (step, bytes the server receives, expected code or None for "accepted")
    steps: list[tuple[str, bytes, str | None]] = [
        ("genuine transfer_funds call", dump(genuine), None),
        ("tampered: amount 100 → 100000", dump(tampered), "MCPS-004"),
        ("replay of the genuine call", dump(genuine), "MCPS-005"),
        ("signed for mcp://other.example", dump(agent.sign(CALL, audience="mcp://other.example", now=now)), "MCPS-011"),
        ("expired (signed 10 minutes ago)", dump(agent.sign(CALL, audience=PAYMENTS, now=now - 600)), "MCPS-006"),
        ('duplicate key "name": transfer_funds / rm_rf', smuggled, "MCPS-020"),
        ("signed by an unknown key", dump(impostor.sign(CALL, audience=PAYMENTS, now=now)), "MCPS-029"),
    ]

    console.print(f"[bold]agent key[/]  {agent_key.kid} ({agent_key.alg.value})")
    console.print(f"[bold]server[/]     {PAYMENTS}, pinned agent key, in-memory nonce store")
    console.print("[bold]signature block of the genuine call[/] (params._meta.mcps/sig):")
    console.print_json(json.dumps(genuine["params"]["_meta"]["mcps/sig"]))

    table = Table(title="what the payments server does with each message")
    table.add_column("step")
    table.add_column("outcome")
    table.add_column("code", no_wrap=True)
    all_good = True
    for name, raw, expected in steps:
        try:
            verified = await server.verify(raw, now=now)
            outcome, code = f"accepted: {verified.method} {verified.message['params']['name']}", None
        except McpsError as exc:
            outcome, code = f"refused: {exc.message}", exc.code.mcps
        if code == expected:
            outcome = f"[green]✓[/] {outcome}"
        else:
            all_good = False
            outcome = f"[bold red]✗ {outcome} (expected {expected or 'acceptance'})[/]"
        table.add_row(name, outcome, code or "—")
    console.print(table)
    console.print("[green]all steps behaved as expected[/]" if all_good else "[bold red]a step misbehaved[/]")
    return 0 if all_good else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
