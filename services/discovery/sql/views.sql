-- Views and materialized views, with the relations each one reads (its rule's direct dependencies:
-- tables, views, materialized views, foreign tables), as [schema, name] pairs.
SELECT n.nspname                              AS schema,
       c.relname                              AS name,
       CASE c.relkind WHEN 'm' THEN 'materialized' ELSE 'view' END AS kind,
       pg_get_userbyid(c.relowner)            AS owner,
       c.relispopulated                       AS populated,
       CASE WHEN c.relkind = 'm' THEN pg_total_relation_size(c.oid) ELSE 0 END AS bytes,
       ARRAY(SELECT DISTINCT ARRAY[rn.nspname::text, r.relname::text]
               FROM pg_rewrite w
               JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                               AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
               JOIN pg_class r ON r.oid = d.refobjid AND r.relkind IN ('r', 'p', 'v', 'm', 'f')
               JOIN pg_namespace rn ON rn.oid = r.relnamespace
              WHERE w.ev_class = c.oid) AS reads
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2;
