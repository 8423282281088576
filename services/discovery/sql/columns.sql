-- Columns of every user table, view and foreign table, with type, nullability, default, collation.
SELECT n.nspname                                   AS schema,
       c.relname                                   AS table,
       a.attnum::int                               AS position,
       a.attname                                   AS name,
       format_type(a.atttypid, a.atttypmod)        AS type,
       a.attnotnull                                AS not_null,
       pg_get_expr(ad.adbin, ad.adrelid)           AS "default",
       coalesce(to_jsonb(a) ->> 'attgenerated', '') <> '' AS generated,  -- PG 12+
       a.attidentity <> ''                         AS identity,
       CASE WHEN a.attcollation <> 0 AND co.collname <> 'default' THEN co.collname END AS collation
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attnum > 0 AND NOT a.attisdropped
   AND c.relkind IN ('r', 'p', 'f', 'v', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY n.nspname, c.relname, a.attnum;
