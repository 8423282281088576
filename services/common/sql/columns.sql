-- Columns of the given tables (by oid) in attnum order; dropped columns are skipped.
-- binary_ok: the type's binary form carries no database-specific OIDs (built-in scalar or array of one).
SELECT a.attrelid::bigint                 AS oid,
       a.attname                          AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attgenerated <> ''               AS generated,
       a.attidentity <> ''                AS identity,
       a.attnotnull                       AS not_null,
       (a.atttypid < 16384 AND (t.typelem = 0 OR t.typelem < 16384)) AS binary_ok
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = ANY (%(oids)s::oid[])
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum;
