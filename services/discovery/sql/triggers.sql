-- User triggers (not the internal ones behind foreign keys).
SELECT n.nspname                          AS schema,
       c.relname                          AS table,
       t.tgname                           AS name,
       CASE t.tgenabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                        WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END AS enabled,
       fn.nspname || '.' || f.proname     AS function,
       pg_get_triggerdef(t.oid)           AS definition
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc f ON f.oid = t.tgfoid
  JOIN pg_namespace fn ON fn.oid = f.pronamespace
 WHERE NOT t.tgisinternal
   AND coalesce((to_jsonb(t) ->> 'tgparentid')::oid, 0) = 0  -- clones on partitions (PG 13+) are left out
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2, 3;
