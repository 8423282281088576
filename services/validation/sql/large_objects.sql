-- Large objects: oid, an md5 of the content (lo_get reads the whole object inside the snapshot) and
-- of the comment, the owner, and the privileges as objects.sql writes them ((owner) for the owner's own).
SELECT m.oid::bigint AS oid,
       md5(lo_get(m.oid)) || coalesce(' comment ' || md5(obj_description(m.oid, 'pg_largeobject')), '') AS digest,
       pg_get_userbyid(m.lomowner) AS owner,
       (SELECT coalesce(string_agg(e, ', ' ORDER BY e), '(none)') FROM (
          SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' WHEN a.grantee = m.lomowner THEN '(owner)'
                               ELSE pg_get_userbyid(a.grantee) END
                          || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS e
            FROM aclexplode(coalesce(m.lomacl, acldefault('L', m.lomowner))) a) x) AS privileges
  FROM pg_largeobject_metadata m
 ORDER BY m.oid;
