-- Per user table that a publication can hold (ordinary tables, partitions, partitioned tables):
-- its replica identity, whether that identity is usable (UPDATE and DELETE on a published table
-- without one fail on the source), a unique not-null index that could serve as one, and whether
-- the connected user owns it (CREATE PUBLICATION ... FOR TABLE needs ownership, or superuser).
SELECT n.nspname                                                    AS schema,
       c.relname                                                    AS name,
       CASE c.relreplident WHEN 'd' THEN 'default' WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full'
                           WHEN 'i' THEN 'index' ELSE c.relreplident::text END AS replica_identity,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_primary_key,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS has_identity_index,
       c.relreplident = 'f'
         OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
         OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))
                                                                    AS identity_usable,
       -- an index REPLICA IDENTITY USING INDEX accepts: unique, immediate, not partial, no
       -- expressions, every column NOT NULL
       (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
           AND i.indpred IS NULL AND i.indexprs IS NULL
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey::int2[])
                              AND NOT a.attnotnull)
         ORDER BY i.indnkeyatts, ic.relname LIMIT 1)                AS identity_index_candidate,
       pg_has_role(current_user, c.relowner, 'USAGE')               AS owned
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2;
