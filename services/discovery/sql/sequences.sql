-- Sequences, their current value and the column that owns them (serial / identity).
SELECT n.nspname                           AS schema,
       c.relname                           AS name,
       format_type(s.seqtypid, NULL)       AS type,
       pg_get_userbyid(c.relowner)         AS owner,
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT') THEN pg_sequence_last_value(c.oid) END AS last_value,
       dn.nspname || '.' || dc.relname || '.' || da.attname AS owned_by,
       d.deptype = 'i'                     AS identity
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LEFT JOIN pg_class dc ON dc.oid = d.refobjid
  LEFT JOIN pg_namespace dn ON dn.oid = dc.relnamespace
  LEFT JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend e
                    WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
 ORDER BY 1, 2;
