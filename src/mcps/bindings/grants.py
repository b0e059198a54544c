"""Grant enforcement in a signed server: which ``tools/call`` requests must carry a per-call grant.

::

    grants = GrantRequirement(
        GrantVerifier(issuers=[gateway_public_key], audience="urn:example:files", nonces=nonces),
        tools={"delete", "transfer"},        # None (the default): every tool
    )
    security = ChannelSecurity(key=server_key, identity="urn:example:files", trusted=..., nonces=nonces,
                               grants=grants)

For every verified ``tools/call`` (after signature, nonce and revocation, SPEC.md §9.6):

* a request to a tool that requires a grant and carries none is refused (MCPS-017, "grant is missing");
* a request that carries a grant has it verified whether or not the tool requires one — issuer, signature,
  window, ``aud`` = this server, bound to exactly this tool, these arguments and this signed request, ``sub`` =
  the verified sender, unused (:class:`~mcps.identity.grants.GrantVerifier`; MCPS-011, 017, 030, 031, 032) —
  because a grant the server cannot check must not be handed to a tool as if it meant something;
* the verified grant is handed to the tool in ``current_caller().grant``.

A server without a ``GrantRequirement`` does not read ``_meta["mcps/grant"]`` (it is outside the agent's signature
and so proves nothing by itself) and ``current_caller().grant`` is ``None``. Either way the member itself never
reaches the SDK or the tool: the channel removes hop members before delivery (SPEC.md §9.8).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcps.core.envelope import GRANT_KEY
from mcps.core.keys import KeyId
from mcps.identity.grants import GrantVerifier, VerifiedGrant

__all__ = ["GrantRequirement"]


@dataclass(frozen=True, slots=True, init=False)
class GrantRequirement:
    """Grants minted by ``verifier``'s issuers are required for ``tools`` (``None``: for every tool)."""

    verifier: GrantVerifier
    tools: frozenset[str] | None

    def __init__(self, verifier: GrantVerifier, *, tools: Iterable[str] | None = None) -> None:
        object.__setattr__(self, "verifier", verifier)
        object.__setattr__(self, "tools", None if tools is None else frozenset(tools))

    def required_for(self, tool: object) -> bool:
        """Whether a call to ``tool`` must carry a grant (a call without a string name always must)."""
        return self.tools is None or not isinstance(tool, str) or tool in self.tools

    async def check(
        self, request: Mapping[str, Any], *, sender: str | Collection[str], issuer: KeyId | None = None, now: float
    ) -> VerifiedGrant | None:
        """The verified grant of a verified ``tools/call`` from ``sender``; ``None`` when none is needed or sent.

        Raises :class:`~mcps.core.errors.McpsError` when a required grant is missing or a grant is not valid.
        """
        params = request.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        carried = isinstance(meta, dict) and GRANT_KEY in meta
        if not carried and not self.required_for(params.get("name") if isinstance(params, dict) else None):
            return None
        return await self.verifier.verify_request(request, agent=sender, issuer=issuer, now=now)  # 017 when missing
