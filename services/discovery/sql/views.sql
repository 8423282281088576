-- Views and materialized views.
SELECT n.nspname                              AS schema,
       c.relname                              AS name,
       CASE c.relkind WHEN 'm' THEN 'materialized' ELSE 'view' END AS kind,
       pg_get_userbyid(c.relowner)            AS owner,
       c.relispopulated                       AS populated,
       CASE WHEN c.relkind = 'm' THEN pg_total_relation_size(c.oid) ELSE 0 END AS bytes
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2;
