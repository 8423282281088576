-- Roles that own something in this database (schemas, relations, functions, types, large
-- objects, the database itself), how many objects each, and whether the role exists.
WITH owned AS (
    SELECT n.nspowner AS role, 'schema' AS kind FROM pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e')
    UNION ALL
    SELECT c.relowner, 'relation' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT p.proowner, 'function' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT t.typowner, 'type' FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('e', 'd', 'c', 'r', 'm')
       AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
    UNION ALL
    SELECT lomowner, 'large_object' FROM pg_largeobject_metadata
    UNION ALL
    SELECT datdba, 'database' FROM pg_database WHERE datname = current_database()
)
SELECT coalesce(r.rolname, 'unknown (OID=' || o.role || ')') AS role,
       r.oid IS NOT NULL                                     AS exists,
       count(*)::int                                         AS objects,
       array_agg(DISTINCT o.kind ORDER BY o.kind)            AS kinds
  FROM owned o
  LEFT JOIN pg_roles r ON r.oid = o.role
 GROUP BY 1, 2
 ORDER BY 1;
