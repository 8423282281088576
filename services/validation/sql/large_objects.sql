-- Large objects: oid and an md5 of the content (lo_get reads the whole object inside the snapshot).
SELECT m.oid::bigint AS oid, md5(lo_get(m.oid)) AS digest
  FROM pg_largeobject_metadata m
 ORDER BY m.oid;
