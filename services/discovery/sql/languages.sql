-- Procedural languages: the ones user functions are written in, and the ones installed; the
-- extension that provides each (plperl, plpython3u, ...), if any.
SELECT l.lanname                                           AS name,
       l.lanpltrusted                                      AS trusted,
       e.extname                                           AS extension,
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prolang = l.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                              AND d.objid = p.oid AND d.deptype = 'e'))::int AS functions
  FROM pg_language l
  LEFT JOIN pg_depend d ON d.classid = 'pg_language'::regclass AND d.objid = l.oid AND d.deptype = 'e'
  LEFT JOIN pg_extension e ON e.oid = d.refobjid
 WHERE l.lanname NOT IN ('internal', 'c', 'sql')
 ORDER BY 1;
