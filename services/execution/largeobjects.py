"""Large objects copied in 1 MiB chunks; each object in one target transaction, so a retry is clean."""
from __future__ import annotations

import psycopg

CHUNK = 1 << 20
INV_WRITE = 0x20000


def copy_large_objects(source: psycopg.Connection, target_conn_factory) -> int:
    """`source` is inside the snapshot; `target_conn_factory()` opens a target connection."""
    oids = [r[0] for r in source.execute("SELECT oid FROM pg_largeobject_metadata ORDER BY oid")]
    if not oids:
        return 0
    with target_conn_factory() as target:
        for oid in oids:
            with target.transaction():
                if not target.execute("SELECT 1 FROM pg_largeobject_metadata WHERE oid = %s", (oid,)).fetchone():
                    target.execute("SELECT lo_create(%s)", (oid,))
                offset = 0
                while True:
                    chunk = source.execute("SELECT lo_get(%s, %s, %s)", (oid, offset, CHUNK)).fetchone()[0]
                    if chunk:
                        target.execute("SELECT lo_put(%s, %s, %s)", (oid, offset, chunk))
                        offset += len(chunk)
                    if not chunk or len(chunk) < CHUNK:
                        break
                target.execute("SELECT lo_truncate64(lo_open(%s, %s), %s)", (oid, INV_WRITE, offset))
    return len(oids)
