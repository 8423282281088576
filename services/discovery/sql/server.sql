-- The server and the database we are connected to: one row.
-- Works on PostgreSQL 11 and later (sources older than the target are the usual case).
SELECT current_setting('server_version')                       AS version,
       current_setting('server_version_num')::int              AS version_num,
       current_database()                                      AS database,
       d.oid::bigint                                           AS database_oid,
       shobj_description(d.oid, 'pg_database') IS NOT NULL     AS has_database_comment,
       pg_encoding_to_char(d.encoding)                         AS encoding,
       d.datcollate                                            AS collation,
       d.datctype                                              AS ctype,
       -- datlocprovider, daticulocale and datcollversion exist from PostgreSQL 15 on: read them
       -- through to_jsonb so that an older server answers NULL (libc) instead of an error.
       CASE coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu'
            WHEN 'b' THEN 'builtin' ELSE to_jsonb(d) ->> 'datlocprovider' END AS collation_provider,
       -- daticulocale in 15 and 16, datlocale from 17 on
       coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') AS icu_locale,
       -- initdb makes und-x-icu only on a server built with ICU
       EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu') AS icu_supported,
       to_jsonb(d) ->> 'datcollversion'                        AS collation_version,
       pg_database_size(d.oid)                                 AS size_bytes,
       pg_get_userbyid(d.datdba)                               AS database_owner,
       current_setting('max_connections')::int                AS max_connections,
       current_setting('superuser_reserved_connections')::int  AS superuser_reserved_connections,
       current_setting('wal_level')                            AS wal_level,
       current_setting('TimeZone')                             AS timezone,
       pg_size_bytes(current_setting('max_wal_size'))          AS max_wal_size_bytes,
       pg_size_bytes(current_setting('maintenance_work_mem'))  AS maintenance_work_mem_bytes,
       pg_size_bytes(current_setting('shared_buffers'))        AS shared_buffers_bytes,
       current_setting('default_transaction_read_only')        AS default_transaction_read_only,
       pg_is_in_recovery()                                     AS in_recovery,
       pg_postmaster_start_time()::text                        AS started_at,
       current_user                                            AS current_user,
       r.rolsuper                                              AS is_superuser,
       r.rolcreaterole                                         AS can_create_role,
       r.rolbypassrls                                          AS bypass_rls,
       has_database_privilege(d.oid, 'CREATE')                 AS can_create_schema,
       d.datacl IS NOT NULL                                    AS database_privileges_set,
       r.rolsuper OR pg_has_role(d.datdba, 'MEMBER')           AS can_set_database_privileges,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
                                                               AS connections,
       -- The shared lock table holds max_locks_per_transaction * (max_connections + max_prepared_transactions)
       -- locks; pg_dump and a snapshot's reads take one per relation.
       current_setting('max_locks_per_transaction')::int      AS max_locks_per_transaction,
       current_setting('max_locks_per_transaction')::bigint
         * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)
                                                               AS lock_slots,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm', 'f', 'S', 'v')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
           AND n.nspname NOT LIKE 'pg\_temp%')::int          AS lockable_relations
  FROM pg_database d, pg_roles r
 WHERE d.datname = current_database()
   AND r.rolname = current_user;
