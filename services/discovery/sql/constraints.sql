-- Check, unique, exclusion and constraint triggers on user tables (primary and foreign keys have
-- their own lists), plus domain check constraints.
SELECT n.nspname                   AS schema,
       coalesce(c.relname, t.typname) AS table,
       CASE WHEN k.contypid <> 0 THEN 'domain' ELSE 'table' END AS on_kind,
       k.conname                   AS name,
       CASE k.contype WHEN 'c' THEN 'check' WHEN 'u' THEN 'unique' WHEN 'x' THEN 'exclusion'
                      WHEN 't' THEN 'trigger' ELSE k.contype::text END AS type,
       k.convalidated              AS validated,
       pg_get_constraintdef(k.oid) AS definition
  FROM pg_constraint k
  JOIN pg_namespace n ON n.oid = k.connamespace
  LEFT JOIN pg_class c ON c.oid = k.conrelid
  LEFT JOIN pg_type t ON t.oid = k.contypid
 WHERE k.contype IN ('c', 'u', 'x', 't') AND k.conparentid = 0
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.objid IN (k.conrelid, k.contypid) AND d.deptype = 'e'
                      AND d.classid IN ('pg_class'::regclass, 'pg_type'::regclass))
 ORDER BY 1, 2, 4;
