-- Indexes of user tables and materialized views, with whether they depend on a collation
-- (text keys: a collation provider or version change means REINDEX).
SELECT n.nspname                          AS schema,
       t.relname                          AS table,
       ic.relname                         AS name,
       am.amname                          AS method,
       i.indisunique                      AS is_unique,
       i.indisprimary                     AS is_primary,
       i.indisvalid                       AS is_valid,
       t.relkind = 'p'                    AS partitioned,  -- invalid until every partition's index is attached
       EXISTS (SELECT 1 FROM unnest(i.indcollation::oid[]) co WHERE co <> 0) AS uses_collation,
       pg_relation_size(ic.oid)           AS bytes,
       pg_get_indexdef(i.indexrelid)      AS definition
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
 WHERE t.relkind IN ('r', 'p', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = t.oid AND d.deptype = 'e')
 ORDER BY 1, 2, 3;
