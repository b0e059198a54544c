"""Tamper-evident audit log: RFC 9162 Merkle tree, signed checkpoints (C2SP), proofs, receipts, stores.

Start with :class:`SqliteAuditLog` (one file) or :class:`PostgresAuditLog` (replicas, needs the ``postgres``
extra; psycopg is imported when one is opened); both implement :class:`AuditLog`.
"""

from mcps.audit.checkpoint import Checkpoint, open_checkpoint, verifier_key
from mcps.audit.entry import AuditEvent, json_hash
from mcps.audit.evidence import VerifiedEvidence, build_evidence, check_evidence
from mcps.audit.log import AuditLog, Receipt, StoredEntry
from mcps.audit.postgres_log import PostgresAuditLog
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.audit.verify import AuditLogDefect, Defect, DefectKind, VerifiedLog, verify_log

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditLogDefect",
    "Checkpoint",
    "Defect",
    "DefectKind",
    "PostgresAuditLog",
    "Receipt",
    "SqliteAuditLog",
    "StoredEntry",
    "VerifiedEvidence",
    "VerifiedLog",
    "build_evidence",
    "check_evidence",
    "json_hash",
    "open_checkpoint",
    "verifier_key",
    "verify_log",
]
