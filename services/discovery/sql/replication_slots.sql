-- Replication slots a DBMigrate migration made (the name begins with the prefix), in any database of
-- the server: an abandoned one keeps WAL (retained_wal_bytes) and a slot and catalog rows forever.
-- A standby has no current WAL position: its last received one stands in.
SELECT s.slot_name::text                                            AS name,
       s.slot_type                                                  AS type,
       s.database::text                                             AS database,
       s.active                                                     AS active,
       s.active_pid                                                 AS active_pid,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint AS retained_wal_bytes,
       to_jsonb(s) ->> 'wal_status'                                 AS wal_status  -- PG 13+
  FROM pg_replication_slots s
 WHERE starts_with(s.slot_name::text, %(prefix)s)
 ORDER BY 1;
