-- Columns of the given tables (by oid) in attnum order; dropped columns are skipped.
-- binary_ok: the type's binary form carries no database-specific OIDs: a built-in scalar or array of
-- one, not an OID alias (regclass, regtype, ...: their binary form is the OID, which names another
-- object, or nothing, in another database; their text form is the name), with binary send/receive.
SELECT a.attrelid::bigint                 AS oid,
       a.attname                          AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attgenerated <> ''               AS generated,
       a.attidentity <> ''                AS identity,
       a.attnotnull                       AS not_null,
       (a.atttypid < 16384 AND (t.typelem = 0 OR t.typelem < 16384)
        AND coalesce(e.typname, t.typname) NOT LIKE 'reg%%'
        AND t.typsend <> 0 AND t.typreceive <> 0 AND coalesce(e.typsend, 1) <> 0) AS binary_ok
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
 WHERE a.attrelid = ANY (%(oids)s::oid[])
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum;
