"""Large objects copied in 1 MiB chunks with their owners, privileges and comments; each object in one
target transaction, so a retry is clean. (pg_dump's pre-data of a large object is its metadata, which
newer versions write in other sections: the comment is set here whatever the version.)"""
from __future__ import annotations

import psycopg
from psycopg import sql

CHUNK = 1 << 20
INV_WRITE = 0x20000

_SOURCE = """SELECT m.oid, pg_get_userbyid(m.lomowner),
                    (SELECT array_agg(ARRAY[CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END,
                                            a.privilege_type, a.is_grantable::text])
                       FROM aclexplode(m.lomacl) a WHERE a.grantee <> m.lomowner),
                    obj_description(m.oid, 'pg_largeobject')
               FROM pg_largeobject_metadata m ORDER BY m.oid"""


def copy_large_objects(source: psycopg.Connection, target_conn_factory, *, owners: bool = True,
                       privileges: bool = True) -> int:
    """`source` is inside the snapshot; `target_conn_factory()` opens a target connection."""
    objects = source.execute(_SOURCE).fetchall()
    if not objects:
        return 0
    with target_conn_factory() as target:
        for oid, owner, grants, comment in objects:
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
                if owners:
                    target.execute(sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(
                        sql.SQL(str(int(oid))), sql.Identifier(owner)))
                if comment is not None:
                    target.execute(sql.SQL("COMMENT ON LARGE OBJECT {} IS {}").format(
                        sql.SQL(str(int(oid))), sql.Literal(comment)))
                for grantee, privilege, grantable in (grants or []) if privileges else []:
                    to = sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee)
                    target.execute(sql.SQL("GRANT {} ON LARGE OBJECT {} TO {}{}").format(
                        sql.SQL(privilege), sql.SQL(str(int(oid))), to,
                        sql.SQL(" WITH GRANT OPTION" if grantable == "true" else "")))
    return len(objects)
