-- The roles of the server (cluster-wide), without the predefined pg_* roles.
SELECT rolname AS name, rolsuper AS superuser, rolcanlogin AS can_login
  FROM pg_roles
 WHERE rolname NOT LIKE 'pg\_%'
 ORDER BY 1;
