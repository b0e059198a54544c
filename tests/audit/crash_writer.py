"""Writer for the crash test: appends forever, printing "index leaf" for every acknowledged append.

Run as ``python crash_writer.py DB KEY``. A line is printed only after ``append`` returned, so every printed line
is an acknowledged, supposedly durable entry.
"""

from __future__ import annotations

import asyncio
import sys

from mcps.audit.entry import AuditEvent
from mcps.audit.log import load_or_create_log_key
from mcps.audit.sqlite_log import SqliteAuditLog
from mcps.core.encoding import b64u_encode


async def main(db: str, key_path: str) -> None:
    log = SqliteAuditLog(db, key=load_or_create_log_key(key_path), max_batch=64)

    async def worker(n: int) -> None:
        i = 0
        while True:
            receipt = await log.append(AuditEvent(event="call", tool="crash", request_id=f"{n}-{i}"))
            sys.stdout.write(f"{receipt.index} {b64u_encode(receipt.leaf)}\n")
            sys.stdout.flush()
            i += 1

    await asyncio.gather(*(worker(n) for n in range(32)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
