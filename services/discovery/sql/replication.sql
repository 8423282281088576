-- What an online migration (logical replication) needs of this server and of the connected user:
-- one row, read on both sides. The source: wal_level, free slots and WAL senders, the slots' WAL
-- limit, the right to replicate (superuser, REPLICATION, or a managed service's role such as
-- rds_replication) and to create a publication (CREATE on the database). The target: the right to
-- subscribe (superuser, or pg_create_subscription from 16 on) and its apply workers.
-- Settings come from pg_settings, which has no row for one the version lacks
-- (max_slot_wal_keep_size is 13+): NULL then. Works on PostgreSQL 12 to 18.
SELECT current_setting('server_version_num')::int                               AS version_num,
       current_setting('wal_level')                                             AS wal_level,
       (SELECT setting::int FROM pg_settings WHERE name = 'max_replication_slots') AS max_replication_slots,
       (SELECT count(*) FROM pg_replication_slots)::int                        AS slots_in_use,
       (SELECT setting::int FROM pg_settings WHERE name = 'max_wal_senders')    AS max_wal_senders,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int AS wal_senders_in_use,
       -- -1 = unlimited; else bytes (the setting is in MB)
       (SELECT CASE WHEN setting::bigint < 0 THEN -1 ELSE pg_size_bytes(setting || coalesce(unit, '')) END
          FROM pg_settings WHERE name = 'max_slot_wal_keep_size')              AS max_slot_wal_keep_size_bytes,
       (SELECT setting::int FROM pg_settings WHERE name = 'max_logical_replication_workers')
                                                                                AS max_logical_replication_workers,
       (SELECT setting::int FROM pg_settings WHERE name = 'max_worker_processes') AS max_worker_processes,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type IN ('logical replication worker', 'logical replication parallel worker',
                                'logical replication tablesync worker', 'logical replication apply worker'))::int
                                                                                AS logical_workers_in_use,
       current_user                                                             AS current_user,
       r.rolsuper                                                               AS is_superuser,
       r.rolreplication                                                         AS has_replication,
       ARRAY(SELECT g.rolname::text FROM pg_roles g
              WHERE g.rolname LIKE '%replication%' AND g.oid <> r.oid AND pg_has_role(r.oid, g.oid, 'MEMBER')
              ORDER BY 1)                                                       AS replication_roles,
       has_database_privilege(current_database(), 'CREATE')                    AS can_create_in_database,
       -- pg_create_subscription: a predefined role from 16 on (no row before: NULL)
       (SELECT pg_has_role(r.oid, g.oid, 'MEMBER') FROM pg_roles g
         WHERE g.rolname = 'pg_create_subscription'
           AND current_setting('server_version_num')::int >= 160000)           AS create_subscription_member
  FROM pg_roles r
 WHERE r.rolname = current_user;
