-- Named statements of the operations endpoints (evstore/http: /readyz, /metrics),
-- loaded with Database.sql("ops", name). {schema} is the quoted schema.

-- name: horizon_status
-- The global-order horizon, the next transaction id, and how long the oldest
-- transaction holding the store's append lock has been running: a horizon held
-- back by a wedged writer shows as a growing age, whatever the traffic.
SELECT {schema}.write_horizon()::text::bigint AS horizon,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_xid,
       coalesce(extract(epoch FROM clock_timestamp() - min(a.xact_start)), 0)::float8 AS oldest_append_seconds
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
   AND l.classid::text::bigint = ((hashtextextended('evstore-append:{schema}', 0) >> 32) & 4294967295)
   AND l.objid::text::bigint = (hashtextextended('evstore-append:{schema}', 0) & 4294967295);

-- name: recovery_status
-- On a hot standby: true, and the seconds since the last replayed commit
-- (NULL before the first), and the WAL position replayed.
SELECT pg_is_in_recovery(),
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8,
       pg_last_wal_replay_lsn()::text;

-- name: current_wal_lsn
SELECT pg_current_wal_flush_lsn()::text;

-- name: wal_bytes_behind
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint;

-- name: batch_durations
-- Finished batches per kind and status, with the sum of their run times.
SELECT j.kind, b.status, count(*),
       coalesce(sum(extract(epoch FROM b.finished_at - b.started_at)), 0)::float8
  FROM {schema}.job_batches b JOIN {schema}.jobs j USING (job_id)
 WHERE b.finished_at IS NOT NULL AND b.started_at IS NOT NULL
 GROUP BY j.kind, b.status;

-- name: queue_depth
-- Batches waiting for a worker and batches running, per kind (the autoscaler's input).
SELECT j.kind,
       count(*) FILTER (WHERE b.status IN ('queued', 'retrying')),
       count(*) FILTER (WHERE b.status = 'running')
  FROM {schema}.job_batches b JOIN {schema}.jobs j USING (job_id)
 WHERE b.status IN ('queued', 'retrying', 'running')
 GROUP BY j.kind;

-- name: archive_runs
-- Archive runs per status: how many, the run time of finished ones, and the
-- bytes of their segments (raw JSON lines and stored, compressed).
SELECT r.status, count(*),
       count(*) FILTER (WHERE r.finished_at IS NOT NULL),
       coalesce(sum(extract(epoch FROM r.finished_at - r.created_at))
                FILTER (WHERE r.finished_at IS NOT NULL), 0)::float8,
       coalesce(sum(s.raw), 0)::bigint, coalesce(sum(s.stored), 0)::bigint
  FROM {schema}.archive_runs r
  LEFT JOIN (SELECT run_id, sum(raw_bytes) AS raw, sum(stored_bytes) AS stored
               FROM {schema}.archive_segments GROUP BY run_id) s USING (run_id)
 GROUP BY r.status;

-- name: replica_lag
-- On the standby: WAL bytes not yet replayed of what the primary had flushed
-- (%s: the primary's pg_current_wal_flush_lsn), and the seconds since its last
-- replayed commit.
SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::bigint,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8;

-- name: current_wal_insert_lsn
-- The primary's WAL insert position: every commit visible now is before it
-- (with synchronous_commit off a visible commit may not be flushed yet).
SELECT pg_current_wal_insert_lsn()::text;

-- name: replayed_past
-- On the standby: whether it has replayed the WAL up to %s.
SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0, false);

-- name: horizon_and_lsn
-- On the primary, in this order: the global-order horizon, then the WAL insert
-- position. Every append transaction below the horizon had finished, so its
-- commit is before that position: a standby that has replayed past it shows
-- every event below the horizon.
SELECT {schema}.write_horizon()::text, pg_current_wal_insert_lsn()::text;
