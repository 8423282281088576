-- Every table that holds rows (ordinary tables, partitions, inheritance children), with what a
-- copy needs: size, row estimate, persistence, primary key, an integer key to split by, owner.
SELECT n.nspname                                   AS schema,
       c.relname                                   AS name,
       c.oid::bigint                               AS oid,
       c.relkind::text                             AS relkind,
       c.relpersistence = 'u'                      AS unlogged,
       c.relispartition                            AS is_partition,
       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AND NOT c.relispartition AS is_inheritance_child,
       pg_table_size(c.oid)                        AS bytes,
       greatest(c.reltuples, 0)::bigint            AS row_estimate,
       pg_get_userbyid(c.relowner)                 AS owner,
       (SELECT array_agg(a.attname ORDER BY array_position(k.conkey, a.attnum))
          FROM pg_constraint k
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
         WHERE k.conrelid = c.oid AND k.contype = 'p') AS primary_key,
       (SELECT a.attname
          FROM pg_constraint k
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
         WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u') AND array_length(k.conkey, 1) = 1
           AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) AND a.attnotnull
         ORDER BY k.contype LIMIT 1)               AS int_key
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY pg_table_size(c.oid) DESC, n.nspname, c.relname;
