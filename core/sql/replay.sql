-- Named queries of replay jobs (evstore.core.jobs.replay). {schema} is the quoted
-- schema; {filters} is a conjunction built by ReplaySelection.where() from the fixed
-- filter_* fragments below (values always travel as parameters); {columns} is
-- store.reads.COLUMNS (the order decode_row reads).
--
-- A replay's events are those of transactions visible in the snapshot taken
-- when it was planned (committed by then): a transaction still running then is
-- left out even if it commits later, so the selection never changes.

-- name: snapshot
SELECT pg_current_snapshot()::text;

-- name: plan_streams
-- The streams with events in the selection, roughly in the order of their first event.
SELECT stream_id, count(*), min(global_position), max(global_position)
  FROM {schema}.events
 WHERE pg_visible_in_snapshot(transaction_id, %(snapshot)s::pg_snapshot)
   {filters}
 GROUP BY stream_id
 ORDER BY min(global_position);

-- name: batch_events
-- One batch's events in the global order.
SELECT {columns}
  FROM {schema}.events
 WHERE stream_id = ANY(%(streams)s)
   AND pg_visible_in_snapshot(transaction_id, %(snapshot)s::pg_snapshot)
   {filters}
 ORDER BY transaction_id, global_position;

-- The fragments of {filters}: ReplaySelection.where() joins those whose value is set.

-- name: filter_from_position
AND global_position >= %(from_position)s

-- name: filter_to_position
AND global_position <= %(to_position)s

-- name: filter_from_time
AND created_at >= %(from_time)s

-- name: filter_to_time
AND created_at < %(to_time)s

-- name: filter_aggregate_ids
AND aggregate_id = ANY(%(aggregate_ids)s)

-- name: filter_aggregate_types
AND aggregate_type = ANY(%(aggregate_types)s)

-- name: filter_event_types
AND event_type = ANY(%(event_types)s)
