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
   -- a multirange type goes with its range type
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                                               AND d.deptype = 'i')
UNION ALL
-- (a zero-argument aggregate is named with (*), which DROP AGGREGATE needs; a function that is part of
-- another object, such as a range type's constructors, goes with it and is left out)
SELECT 'function:' || p.prokind::text,
       CASE WHEN p.prokind = 'a' AND p.pronargs = 0 THEN regexp_replace(p.oid::regprocedure::text, '\(\)$', '(*)')
            ELSE p.oid::regprocedure::text END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                               AND d.deptype = 'i')
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
SELECT 'access_method', quote_ident(a.amname) FROM pg_am a
 WHERE a.oid >= 16384  -- not built in
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_am'::regclass AND e.objid = a.oid)
UNION ALL
SELECT 'shell_type', quote_ident(n.nspname) || '.' || quote_ident(t.typname)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'p' AND NOT t.typisdefined
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_type'::regclass AND e.objid = t.oid)
UNION ALL
SELECT 'operator_family', quote_ident(n.nspname) || '.' || quote_ident(f.opfname) || ' USING ' || quote_ident(a.amname)
  FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_opfamily'::regclass AND e.objid = f.oid)
UNION ALL
SELECT 'foreign_data_wrapper', quote_ident(w.fdwname) FROM pg_foreign_data_wrapper w
 WHERE NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_foreign_data_wrapper'::regclass AND e.objid = w.oid)
UNION ALL
SELECT 'transform', format_type(t.trftype, NULL) || ' LANGUAGE ' || quote_ident(l.lanname)
  FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang
 WHERE NOT EXISTS (SELECT 1 FROM ext_members e WHERE e.classid = 'pg_transform'::regclass AND e.objid = t.oid)
UNION ALL
-- which kinds this inventory has: a baseline without this row was taken before the kinds above
SELECT 'inventory', 'shell types, operator families, foreign-data wrappers, transforms, access methods'
UNION ALL
SELECT 'inventory', 'database comment'
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
-- the database's own settings (ALTER DATABASE / ROLE ... IN DATABASE ... SET): role (empty = every role)|name=value
SELECT 'database_setting', concat_ws('|', coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), ''), x.item)
  FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS x(item)
 WHERE d.datname = current_database()
UNION ALL
-- the database's comment (none: no row)
SELECT 'database_comment', shobj_description(d.oid, 'pg_database')
  FROM pg_database d WHERE d.datname = current_database() AND shobj_description(d.oid, 'pg_database') IS NOT NULL
UNION ALL
SELECT 'extension', x.extname FROM pg_extension x WHERE x.extname <> 'plpgsql'
UNION ALL
SELECT 'large_object', m.oid::text FROM pg_largeobject_metadata m;
