-- PRIMARY KEY and UNIQUE constraints whose index can be built first (a SHARE lock, beside other
-- builds and reads of the table) and attached after (ADD CONSTRAINT ... USING INDEX, a brief lock):
-- plain tables outside partitioning, the index in the default tablespace and named as the constraint.
-- Run with search_path = pg_catalog, so every name in the index definition comes out qualified.
SELECT n.nspname, c.relname, con.conname, pg_get_indexdef(con.conindid), con.contype = 'p',
       con.condeferrable, con.condeferred
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class i ON i.oid = con.conindid
WHERE con.contype IN ('p', 'u')
  AND c.relkind = 'r' AND NOT c.relispartition
  AND i.reltablespace = 0 AND i.relname = con.conname
