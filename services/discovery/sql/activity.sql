-- Write traffic: cumulative row changes in user tables, commits, and the sessions (other than
-- ours) that are busy or hold a transaction that has written (backend_xid is set). DBMigrate's own
-- sessions (the sample test migration reads the source while discovery runs) are not counted busy.
SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables)
                                                                           AS tuples_changed,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS xact_commit,
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'
           AND application_name NOT LIKE 'dbmigrate%')::int                AS active_sessions,
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend' AND backend_xid IS NOT NULL)::int AS writing_sessions,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
       (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())::int AS prepared_xacts,
       (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())::int AS replication_slots,
       (SELECT count(*) FROM pg_publication)::int                          AS publications,
       clock_timestamp()::text                                             AS sampled_at,
       extract(epoch FROM clock_timestamp())::float8                       AS sampled_epoch;
