-- Named queries of replay jobs (evstore.core.replay). {schema} is the quoted
-- schema; {filters} is a conjunction built by evstore.core.replay from fixed
-- fragments (values always travel as parameters); {columns} is postgres.COLUMNS.

-- name: horizon
-- Every transaction below this id has finished: the rows selected under it can
-- never change by a late commit, so a job's selection is fixed when planned.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text;

-- name: plan_streams
-- The streams with events in the selection, roughly in the order of their first event.
SELECT stream_id, count(*), min(global_position), max(global_position)
  FROM {schema}.events
 WHERE transaction_id < %(horizon)s::text::xid8
   {filters}
 GROUP BY stream_id
 ORDER BY min(global_position);

-- name: batch_events
-- One batch's events in the global order.
SELECT {columns}
  FROM {schema}.events
 WHERE stream_id = ANY(%(streams)s)
   AND transaction_id < %(horizon)s::text::xid8
   {filters}
 ORDER BY transaction_id, global_position;
