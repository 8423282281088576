-- Functions, procedures and aggregates written by users (not by extensions), with the relations
-- each one needs to be created, as [schema, name] pairs: those a SQL-standard body (BEGIN ATOMIC,
-- PostgreSQL 14+) reads, and those whose row type (or an array of it) is an argument or the result.
SELECT n.nspname                                 AS schema,
       p.proname                                 AS name,
       pg_get_function_identity_arguments(p.oid) AS arguments,
       CASE coalesce(to_jsonb(p) ->> 'prokind', 'f')  -- PG 11+
            WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
            WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window' END AS kind,
       l.lanname                                 AS language,
       pg_get_userbyid(p.proowner)               AS owner,
       p.prosecdef                               AS security_definer,
       CASE WHEN l.lanname = 'c' THEN p.probin END AS library, -- the file a C function is loaded from
       ARRAY(SELECT DISTINCT ARRAY[rn.nspname::text, r.relname::text]
               FROM pg_depend d
               LEFT JOIN pg_type t ON d.refclassid = 'pg_type'::regclass AND t.oid = d.refobjid
               LEFT JOIN pg_type e ON e.oid = t.typelem
               JOIN pg_class r ON r.oid = CASE WHEN d.refclassid = 'pg_class'::regclass THEN d.refobjid
                                               ELSE coalesce(nullif(t.typrelid, 0), e.typrelid) END
                              AND r.relkind IN ('r', 'p', 'v', 'm', 'f')
               JOIN pg_namespace rn ON rn.oid = r.relnamespace
              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'n'
                AND d.refclassid IN ('pg_class'::regclass, 'pg_type'::regclass)) AS reads
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1, 2, 3;
