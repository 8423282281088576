-- What a database holds, by kind, for the rollback baseline: objects outside the system schemas
-- and not members of an extension (extensions are listed, and dropped, as a whole).
WITH ext_members AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
)
SELECT 'schema' AS kind, n.nspname::text AS name  -- text: a union of "name" columns would cut every row to 63 bytes
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
SELECT 'operator', o.oid::regoperator::text
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_operator'::regclass AND e.objid = o.oid)
UNION ALL
SELECT 'collation', quote_ident(n.nspname) || '.' || quote_ident(c.collname)
  FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_collation'::regclass AND e.objid = c.oid)
UNION ALL
SELECT 'text_search_configuration', quote_ident(n.nspname) || '.' || quote_ident(c.cfgname)
  FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_ts_config'::regclass AND e.objid = c.oid)
UNION ALL
SELECT 'text_search_dictionary', quote_ident(n.nspname) || '.' || quote_ident(d.dictname)
  FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_ts_dict'::regclass AND e.objid = d.oid)
UNION ALL
SELECT 'event_trigger', quote_ident(t.evtname) FROM pg_event_trigger t
 WHERE NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_event_trigger'::regclass AND e.objid = t.oid)
UNION ALL
SELECT 'foreign_server', quote_ident(s.srvname) FROM pg_foreign_server s
 WHERE NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_foreign_server'::regclass AND e.objid = s.oid)
UNION ALL
-- default privileges: role, schema (empty for every schema), kind of object, then the grants
SELECT 'default_acl', concat_ws('|', quote_ident(pg_get_userbyid(d.defaclrole)), coalesce(quote_ident(n.nspname), ''),
                                d.defaclobjtype, d.defaclacl::text)
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
UNION ALL
-- the database's own privileges: grantee (empty = PUBLIC), privilege, grantable
SELECT 'database_privilege', concat_ws('|', CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END,
                                       a.privilege_type, a.is_grantable::text)
  FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
 WHERE d.datname = current_database() AND a.grantee <> d.datdba
UNION ALL
SELECT 'extension', x.extname FROM pg_extension x WHERE x.extname <> 'plpgsql'
UNION ALL
SELECT 'large_object', m.oid::text FROM pg_largeobject_metadata m;
