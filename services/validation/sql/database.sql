-- The privileges of the database itself (CONNECT, CREATE, TEMPORARY), the owner's own left out,
-- defaults written out where the catalog holds NULL; (none) when only the owner has any.
SELECT (SELECT coalesce(string_agg(e, ', ' ORDER BY e), '(none)') FROM (
          SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                          || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS e
            FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
           WHERE a.grantee <> d.datdba) x)
  FROM pg_database d
 WHERE d.datname = current_database();
