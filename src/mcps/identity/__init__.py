"""Identity and least privilege: trust levels, agent passports, trust anchors and chains, revocation, grants.

Layer 2 of the design (above :mod:`mcps.core`). The modules:

* :mod:`~mcps.identity.levels` — :class:`TrustLevel` L0–L4;
* :mod:`~mcps.identity.jws` — the compact JWS (RFC 7515) profile shared by passports, grants and revocation lists;
* :mod:`~mcps.identity.passports` — issue a passport, parse one (unverified);
* :mod:`~mcps.identity.anchors` — trust anchors from JWKS files, each key with the highest level it may grant;
* :mod:`~mcps.identity.remote_anchors` — trust anchors fetched from an ``issuerKeysUrl``, cached, fail closed;
* :mod:`~mcps.identity.chains` — verify a passport and its delegation chain down to an anchor;
* :mod:`~mcps.identity.resolver` — :class:`PassportResolver`, the ``KeyResolver`` that finds a message's signer
  through its passport, with the verification cache;
* :mod:`~mcps.identity.revocation` — the ``RevocationStore`` protocol, the in-memory backend and revocation lists;
* :mod:`~mcps.identity.grants` — per-call grants: mint and verify.
"""
