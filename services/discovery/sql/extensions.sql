-- Extensions installed in this database and those the server could install.
SELECT coalesce(e.extname, a.name)            AS name,
       e.extname IS NOT NULL                  AS installed,
       e.extversion                           AS installed_version,
       n.nspname                              AS schema,
       a.name IS NOT NULL                     AS available,
       a.default_version                      AS default_version
  FROM pg_available_extensions a
  FULL JOIN pg_extension e ON e.extname = a.name
  LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
 ORDER BY 1;
