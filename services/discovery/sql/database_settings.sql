-- The database's own settings (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET), one row
-- each: the role they are for (NULL: every role), the parameter and its value. pg_dump writes them
-- only with --create; the migration sets them itself (services/common/dbsettings.py).
SELECT pg_get_userbyid(NULLIF(s.setrole, 0)) AS role, split_part(x.item, '=', 1) AS name,
       substr(x.item, strpos(x.item, '=') + 1) AS value
  FROM pg_db_role_setting s
  JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS x(item)
 WHERE d.datname = current_database()
 ORDER BY 1, 2;
