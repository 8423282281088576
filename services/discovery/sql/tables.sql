-- Every relation that holds or routes rows: ordinary tables, partitioned tables, partitions,
-- inheritance children and foreign tables, with size, estimate, key, persistence, owner and RLS.
SELECT n.nspname                                          AS schema,
       c.relname                                          AS name,
       CASE WHEN c.relkind = 'p' THEN 'partitioned'
            WHEN c.relkind = 'f' THEN 'foreign'
            WHEN c.relispartition THEN 'partition'
            WHEN inh.inhparent IS NOT NULL THEN 'inheritance_child'
            ELSE 'table' END                              AS kind,
       pn.nspname || '.' || p.relname                     AS parent,
       greatest(c.reltuples, 0)::bigint                   AS row_estimate,
       c.reltuples < 0                                    AS never_analyzed,
       CASE WHEN c.relkind = 'f' THEN 0
            ELSE pg_table_size(c.oid) + pg_indexes_size(c.oid) END AS bytes,
       CASE WHEN c.relkind = 'f' THEN 0 ELSE pg_table_size(c.oid) END AS table_bytes,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
                                                          AS has_primary_key,
       c.relpersistence = 'u'                             AS unlogged,
       pg_get_userbyid(c.relowner)                        AS owner,
       c.relrowsecurity                                   AS rls_enabled,
       c.relforcerowsecurity                              AS rls_forced,
       (SELECT count(*) FROM pg_policy pol WHERE pol.polrelid = c.oid)::int AS policies,
       fs.srvname                                         AS foreign_server
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN LATERAL (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid
                      ORDER BY i.inhseqno LIMIT 1) inh ON true
  LEFT JOIN pg_class p ON p.oid = inh.inhparent
  LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
  LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
  LEFT JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
 WHERE c.relkind IN ('r', 'p', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY n.nspname, c.relname;
