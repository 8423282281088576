-- What a database holds, by kind, for the rollback baseline: objects outside the system schemas
-- and not members of an extension (extensions are listed, and dropped, as a whole).
WITH ext_members AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
)
SELECT 'schema' AS kind, n.nspname AS name
  FROM pg_namespace n
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_namespace'::regclass AND e.objid = n.oid)
UNION ALL
SELECT 'relation:' || c.relkind::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid)
UNION ALL
SELECT 'type:' || t.typtype::text, quote_ident(n.nspname) || '.' || quote_ident(t.typname)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'r', 'm', 'c')
   AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_type'::regclass AND e.objid = t.oid)
UNION ALL
SELECT 'function:' || p.prokind::text, p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid)
UNION ALL
SELECT 'extension', x.extname FROM pg_extension x WHERE x.extname <> 'plpgsql'
UNION ALL
SELECT 'large_object', m.oid::text FROM pg_largeobject_metadata m;
