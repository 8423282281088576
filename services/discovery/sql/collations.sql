-- Collations: every one defined in a user schema, and every other one that user columns, indexes,
-- domains or types use. `locale` is what the provider needs (libc: LC_COLLATE; ICU and builtin:
-- the locale name); `builtin` marks the ones initdb makes (schema pg_catalog). Read on the target
-- as well, where the pg_catalog ones tell which locales the target server has.
-- colliculocale (15, 16) and colllocale (17+) are read through to_jsonb so that any version answers.
WITH used AS (
    SELECT a.attcollation AS oid FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE a.attcollation <> 0 AND a.attnum > 0 AND NOT a.attisdropped
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
    UNION
    SELECT unnest(i.indcollation::oid[]) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
    UNION
    SELECT t.typcollation FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typcollation <> 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
)
SELECT n.nspname                                                   AS schema,
       c.collname                                                  AS name,
       CASE c.collprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin'
            WHEN 'd' THEN 'default' ELSE c.collprovider::text END  AS provider,
       coalesce(to_jsonb(c) ->> 'colllocale', to_jsonb(c) ->> 'colliculocale', c.collcollate) AS locale,
       c.collcollate                                               AS lc_collate,
       c.collctype                                                 AS lc_ctype,
       c.collisdeterministic                                       AS deterministic,
       n.nspname = 'pg_catalog'                                    AS builtin,
       c.oid IN (SELECT oid FROM used)                             AS used
  FROM pg_collation c
  JOIN pg_namespace n ON n.oid = c.collnamespace
 WHERE (n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass
                           AND d.objid = c.oid AND d.deptype = 'e'))
    OR c.oid IN (SELECT oid FROM used)
    OR n.nspname = 'pg_catalog'
 ORDER BY 1, 2;
