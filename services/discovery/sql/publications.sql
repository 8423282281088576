-- Publications in this database (all of them: a FOR ALL TABLES one also publishes the tables the
-- migration adds), whether DBMigrate made it (name prefix), and its owner.
SELECT p.pubname::text                              AS name,
       pg_get_userbyid(p.pubowner)                  AS owner,
       p.puballtables                               AS all_tables,
       starts_with(p.pubname::text, %(prefix)s)     AS ours
  FROM pg_publication p
 ORDER BY 1;
