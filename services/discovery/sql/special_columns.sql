-- Columns that need a feature a server may be built without: the xml type (libxml) and lz4
-- compression (attcompression 'l', PostgreSQL 14+, read through to_jsonb so older servers answer;
-- inventory.py reads the column itself on 14 and newer).
-- Domains over xml, arrays of xml and arrays of such domains count as xml.
SELECT n.nspname AS schema, c.relname AS table, a.attname AS name,
       CASE WHEN 'xml'::regtype IN (a.atttypid, t.typelem, t.typbasetype, bt.typelem, et.typbasetype) THEN 'xml'
            ELSE 'lz4' END AS needs,
       greatest(c.reltuples, 0)::bigint AS row_estimate
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
  LEFT JOIN pg_type et ON et.oid = t.typelem
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
   AND ('xml'::regtype IN (a.atttypid, t.typelem, t.typbasetype, bt.typelem, et.typbasetype)
        OR coalesce(to_jsonb(a) ->> 'attcompression', '') = 'l')
 ORDER BY 1, 2, 3;
