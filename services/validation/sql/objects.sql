-- Every schema object Verify compares, one row each: (kind, schema, relation, name, definition);
-- for columns, indexes, constraints and triggers `name` is the object's own name within `relation`.
-- `relation` is the table or view an object belongs to (NULL for functions and extensions), so the
-- caller can apply the include/exclude patterns. Runs with search_path = pg_catalog on both sides,
-- so every name inside a definition is schema-qualified the same way whatever the sessions' settings.
-- Objects owned by extensions and the system schemas are skipped.
WITH rels AS (
    SELECT c.oid, c.relname, c.relkind, c.relpersistence, n.nspname
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
)
-- tables (ordinary and partitioned)
SELECT 'table' AS kind, r.nspname AS schema, r.relname AS relation, r.relname AS name,
       CASE r.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END
       || CASE r.relpersistence WHEN 'u' THEN ', unlogged' ELSE '' END AS definition
  FROM rels r
 WHERE r.relkind IN ('r', 'p')

UNION ALL
-- columns of tables: type, not null, default, generated, identity
SELECT 'column', r.nspname, r.relname, a.attname,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
       || CASE WHEN a.attgenerated <> '' THEN ' generated as ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
               WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_get_expr(ad.adbin, ad.adrelid)
               ELSE '' END
  FROM rels r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE r.relkind IN ('r', 'p')

UNION ALL
-- indexes of tables and materialized views
SELECT 'index', r.nspname, r.relname, i.relname, pg_get_indexdef(x.indexrelid)
  FROM rels r
  JOIN pg_index x ON x.indrelid = r.oid
  JOIN pg_class i ON i.oid = x.indexrelid
 WHERE r.relkind IN ('r', 'p', 'm')

UNION ALL
-- table constraints (primary key, unique, check, foreign key, exclusion)
SELECT 'constraint', r.nspname, r.relname, k.conname, pg_get_constraintdef(k.oid)
  FROM rels r
  JOIN pg_constraint k ON k.conrelid = r.oid

UNION ALL
-- user triggers (not the internal ones behind foreign keys)
SELECT 'trigger', r.nspname, r.relname, t.tgname,
       pg_get_triggerdef(t.oid) || CASE t.tgenabled WHEN 'D' THEN ' (disabled)' ELSE '' END
  FROM rels r
  JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal

UNION ALL
-- views and materialized views
SELECT CASE r.relkind WHEN 'v' THEN 'view' ELSE 'materialized_view' END, r.nspname, r.relname, r.relname,
       pg_get_viewdef(r.oid)
  FROM rels r
 WHERE r.relkind IN ('v', 'm')

UNION ALL
-- sequences: their definition (values are read separately, see sequence_values)
SELECT 'sequence', r.nspname, r.relname, r.relname,
       format('%s start %s increment %s min %s max %s cache %s%s', format_type(s.seqtypid, NULL), s.seqstart,
              s.seqincrement, s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END)
  FROM rels r
  JOIN pg_sequence s ON s.seqrelid = r.oid

UNION ALL
-- functions and procedures: signature, and an md5 of the full definition (aggregates: signature only)
SELECT 'function', n.nspname, NULL, p.oid::regprocedure::text,
       CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE 'md5 ' || md5(pg_get_functiondef(p.oid)) END
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')

UNION ALL
-- extensions and their versions
SELECT 'extension', NULL, NULL, e.extname, 'version ' || e.extversion || ' in schema ' || n.nspname
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace;
