-- Named queries of the web console (evstore/console; docs/console.md).
-- {schema} is the quoted schema; %(name)s are psycopg parameters.

-- name: record_action
-- Migration 0011: who did what, on what, when, and how it ended.
INSERT INTO {schema}.console_actions (operator, action, target, outcome, detail, client)
VALUES (%(operator)s, %(action)s, %(target)s, %(outcome)s, %(detail)s, %(client)s)
RETURNING action_id;

-- name: list_actions
SELECT action_id, occurred_at, operator, action, target, outcome, detail, client
  FROM {schema}.console_actions
 ORDER BY action_id DESC
 LIMIT %(limit)s;

-- name: recent_appends
-- Events stored in the last %(seconds)s seconds (created_at bounds the partitions scanned;
-- an event is created before it is stored).
SELECT count(*)
  FROM {schema}.events
 WHERE created_at > now() - make_interval(secs => %(seconds)s) - interval '1 hour'
   AND stored_at > now() - make_interval(secs => %(seconds)s);

-- name: oldest_open_write
-- Seconds the oldest transaction that holds a transaction id has been open: the
-- global order's readable horizon waits for it (docs/global-order.md).
SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8
  FROM pg_stat_activity
 WHERE backend_xid IS NOT NULL AND datname = current_database() AND pid <> pg_backend_pid();

-- name: batch_overview
-- Failed batches, and the workers that started a batch in the last hour.
SELECT count(*) FILTER (WHERE status = 'failed'),
       count(DISTINCT worker) FILTER (WHERE started_at > now() - interval '1 hour')
  FROM {schema}.job_batches;

-- name: stream_range
-- The global positions of one page of a stream (the range `verify` checks for it).
SELECT min(global_position), max(global_position), count(*)
  FROM {schema}.events
 WHERE stream_id = %(stream_id)s AND stream_position BETWEEN %(first)s AND %(last)s;
