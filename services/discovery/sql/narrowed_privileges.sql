-- Objects whose privileges are narrower than PostgreSQL's default for their kind: functions and
-- procedures whose EXECUTE was revoked from PUBLIC, types whose USAGE was. Without their privileges
-- (--no-privileges) they would get the default on the target: wider than on the source.
SELECT 'function ' || p.oid::regprocedure::text AS name
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proacl IS NOT NULL
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                      AND d.deptype = 'e')
UNION ALL
SELECT 'type ' || t.oid::regtype::text
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typacl IS NOT NULL
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM aclexplode(t.typacl) a WHERE a.grantee = 0 AND a.privilege_type = 'USAGE')
 ORDER BY 1;
