-- The roles of the server (cluster-wide), without the predefined pg_* roles; whether the connected
-- user is a member of each (it may then make it the owner of objects).
SELECT rolname AS name, rolsuper AS superuser, rolcanlogin AS can_login,
       pg_has_role(current_user, oid, 'MEMBER') AS current_user_is_member
  FROM pg_roles
 WHERE rolname NOT LIKE 'pg\_%'
 ORDER BY 1;
