-- Foreign keys: which table references which, deferrable or not, validated or not.
-- Constraints a partition inherits from its parent (conparentid <> 0) are left out.
SELECT n.nspname                  AS schema,
       c.relname                  AS table,
       k.conname                  AS name,
       rn.nspname                 AS ref_schema,
       r.relname                  AS ref_table,
       k.condeferrable            AS deferrable,
       k.convalidated             AS validated,
       pg_get_constraintdef(k.oid) AS definition
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class r ON r.oid = k.confrelid
  JOIN pg_namespace rn ON rn.oid = r.relnamespace
 WHERE k.contype = 'f' AND k.conparentid = 0
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2, 3;
