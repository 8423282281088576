-- Large objects: how many, and how much the pg_largeobject table holds.
SELECT count(*)::bigint                                         AS count,
       pg_total_relation_size('pg_catalog.pg_largeobject')      AS bytes,
       count(DISTINCT lomowner)::int                            AS owners
  FROM pg_largeobject_metadata;
