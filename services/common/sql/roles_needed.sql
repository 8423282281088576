-- The roles this database depends on, one row each: the objects they own, the privileges granted to
-- them (tables, columns, sequences, schemas, functions, types, large objects, foreign servers, the
-- database), the default privileges they set or receive, the policies that name them and the
-- settings the database has for them (ALTER ROLE ... IN DATABASE ... SET); with
-- their attributes and their memberships in one another. Roles are cluster-wide: the target server
-- must have each of them for owners, grants and policies to arrive. Objects of extensions and the
-- system schemas are left out; so is PUBLIC.
WITH user_ns AS (
    SELECT n.oid FROM pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
), owned(role, why) AS (
    SELECT nspowner, 'owner' FROM pg_namespace n
     WHERE n.oid IN (SELECT oid FROM user_ns) AND n.nspname <> 'public'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
    UNION ALL
    SELECT c.relowner, 'owner' FROM pg_class c
     WHERE c.relnamespace IN (SELECT oid FROM user_ns) AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'c')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT p.proowner, 'owner' FROM pg_proc p
     WHERE p.pronamespace IN (SELECT oid FROM user_ns)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT t.typowner, 'owner' FROM pg_type t
     WHERE t.typnamespace IN (SELECT oid FROM user_ns) AND t.typtype IN ('e', 'd', 'r', 'm', 'b')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    UNION ALL
    SELECT o.oprowner, 'owner' FROM pg_operator o
     WHERE o.oprnamespace IN (SELECT oid FROM user_ns)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT c.collowner, 'owner' FROM pg_collation c
     WHERE c.collnamespace IN (SELECT oid FROM user_ns)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT c.cfgowner, 'owner' FROM pg_ts_config c WHERE c.cfgnamespace IN (SELECT oid FROM user_ns)
    UNION ALL
    SELECT d.dictowner, 'owner' FROM pg_ts_dict d WHERE d.dictnamespace IN (SELECT oid FROM user_ns)
    UNION ALL
    SELECT s.srvowner, 'owner' FROM pg_foreign_server s
     WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_foreign_server'::regclass AND d.objid = s.oid AND d.deptype = 'e')
    UNION ALL
    SELECT e.evtowner, 'owner' FROM pg_event_trigger e
    UNION ALL
    SELECT lomowner, 'owner' FROM pg_largeobject_metadata
), acls(acl) AS (
    SELECT n.nspacl FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM user_ns) AND n.nspacl IS NOT NULL
    UNION ALL
    SELECT c.relacl FROM pg_class c
     WHERE c.relnamespace IN (SELECT oid FROM user_ns) AND c.relacl IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace IN (SELECT oid FROM user_ns) AND a.attacl IS NOT NULL AND NOT a.attisdropped
    UNION ALL
    SELECT p.proacl FROM pg_proc p
     WHERE p.pronamespace IN (SELECT oid FROM user_ns) AND p.proacl IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT t.typacl FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM user_ns) AND t.typacl IS NOT NULL
    UNION ALL
    SELECT lomacl FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
    UNION ALL
    SELECT s.srvacl FROM pg_foreign_server s WHERE s.srvacl IS NOT NULL
    UNION ALL
    SELECT d.datacl FROM pg_database d WHERE d.datname = current_database() AND d.datacl IS NOT NULL
), granted(role, why) AS (
    SELECT (aclexplode(acl)).grantee, 'grantee' FROM acls
), defaults(role, why) AS (
    SELECT defaclrole, 'default_privileges' FROM pg_default_acl
    UNION ALL
    SELECT (aclexplode(defaclacl)).grantee, 'default_privileges' FROM pg_default_acl
), policies(role, why) AS (
    SELECT unnest(polroles), 'policy' FROM pg_policy
), mappings(role, why) AS (
    SELECT umuser, 'user_mapping' FROM pg_user_mappings  -- the view: the catalog is for superusers only
), settings(role, why) AS (  -- ALTER ROLE ... IN DATABASE ... SET
    SELECT s.setrole, 'database_setting' FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
     WHERE d.datname = current_database() AND s.setrole <> 0
), direct AS (
    SELECT role, why FROM owned
    UNION ALL SELECT role, why FROM granted
    UNION ALL SELECT role, why FROM defaults
    UNION ALL SELECT role, why FROM policies
    UNION ALL SELECT role, why FROM mappings
    UNION ALL SELECT role, why FROM settings
), needed AS (
    SELECT r.oid, r.rolname FROM pg_roles r
     WHERE r.oid IN (SELECT role FROM direct) AND r.rolname NOT LIKE 'pg\_%'
)
SELECT r.rolname                                               AS name,
       (SELECT array_agg(DISTINCT why ORDER BY why) FROM direct WHERE role = r.oid) AS reasons,
       (SELECT count(*) FROM owned WHERE role = r.oid)::int      AS objects_owned,
       r.rolsuper                                              AS superuser,
       r.rolinherit                                            AS inherit,
       r.rolcreaterole                                         AS createrole,
       r.rolcreatedb                                           AS createdb,
       r.rolcanlogin                                           AS login,
       r.rolreplication                                        AS replication,
       r.rolbypassrls                                          AS bypassrls,
       r.rolconnlimit                                          AS connection_limit,
       r.rolvaliduntil::text                                   AS valid_until,
       -- memberships among the needed roles: [role it is a member of, admin option]
       coalesce((SELECT json_agg(json_build_array(g.rolname, m.admin_option) ORDER BY g.rolname)
                   FROM pg_auth_members m JOIN needed g ON g.oid = m.roleid
                  WHERE m.member = r.oid), '[]'::json)          AS member_of
  FROM pg_roles r
 WHERE r.oid IN (SELECT oid FROM needed)
 ORDER BY 1;
