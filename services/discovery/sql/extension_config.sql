-- Extensions' configuration tables and sequences (pg_extension_config_dump): the rows users add to
-- them are the database's own data, which the migration copies as pg_dump does, so the source's
-- user must be able to read them.
SELECT n.nspname                                AS schema,
       c.relname                                AS name,
       e.extname                                AS extension,
       CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
       has_table_privilege(c.oid, 'SELECT')     AS readable,
       -- row-level security would hide rows from this user (pg_cron's cron.job has it on)
       c.relrowsecurity AND NOT (r.rolsuper OR r.rolbypassrls
                                 OR (pg_has_role(c.relowner, 'USAGE') AND NOT c.relforcerowsecurity)) AS rows_hidden
  FROM pg_extension e
  CROSS JOIN LATERAL unnest(e.extconfig) AS cfg(oid)
  JOIN pg_class c ON c.oid = cfg.oid AND c.relkind IN ('r', 'S')
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_roles r ON r.rolname = current_user
 ORDER BY 3, 1, 2;
