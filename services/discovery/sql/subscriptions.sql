-- Subscriptions a DBMigrate migration made (the name begins with the prefix), in any database of the
-- server. Only columns PUBLIC may read (subconninfo, which may hold a password, is not one).
SELECT s.subname::text                               AS name,
       d.datname::text                               AS database,
       s.subenabled                                  AS enabled,
       s.subslotname::text                           AS slot_name,
       pg_get_userbyid(s.subowner)                   AS owner
  FROM pg_subscription s
  LEFT JOIN pg_database d ON d.oid = s.subdbid
 WHERE starts_with(s.subname::text, %(prefix)s)
 ORDER BY 1;
