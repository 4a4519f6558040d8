-- Named queries of the storage core, loaded by evstore.core.queries.
-- {schema} is the quoted schema; %(name)s / %s are psycopg parameters.

-- name: lock_stream
-- Serialises writers of one stream *before* any of them takes a transaction id,
-- so transaction ids of one stream's appends follow its positions.
SELECT pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0));

-- name: create_stream
INSERT INTO {schema}.streams (stream_id, aggregate_id, aggregate_type, version)
VALUES (%(stream_id)s, %(aggregate_id)s, %(aggregate_type)s, %(new_version)s)
ON CONFLICT (stream_id) DO NOTHING
RETURNING version;

-- name: advance_stream
UPDATE {schema}.streams
   SET version = %(new_version)s, updated_at = now()
 WHERE stream_id = %(stream_id)s
   AND version = %(expected)s
   AND aggregate_id = %(aggregate_id)s
   AND aggregate_type = %(aggregate_type)s
RETURNING version;

-- name: stream_head
SELECT version, aggregate_id, aggregate_type FROM {schema}.streams WHERE stream_id = %s;

-- name: stream_event_ids
SELECT stream_position, event_id, checksum, global_position, transaction_id
  FROM {schema}.events
 WHERE stream_id = %s AND event_id = ANY(%s)
 ORDER BY stream_position;

-- name: remember_event_type
INSERT INTO {schema}.event_types (event_type) VALUES (%s) ON CONFLICT DO NOTHING;

-- name: known_event_types
SELECT event_type FROM {schema}.event_types ORDER BY event_type;

-- name: allocate_positions
SELECT nextval('{schema}.events_global_position_seq') FROM generate_series(1, %s);

-- name: read_all
SELECT {columns} FROM {schema}.events
 WHERE (transaction_id, global_position) > (%(tx)s::text::xid8, %(pos)s)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
   {filters}
 ORDER BY transaction_id, global_position
 LIMIT %(limit)s;

-- name: partitions
SELECT c.relname,
       pg_get_expr(c.relpartbound, c.oid),
       coalesce(s.n_live_tup, 0)::bigint,
       pg_total_relation_size(c.oid)
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_class p ON p.oid = i.inhparent
  JOIN pg_namespace n ON n.oid = p.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE n.nspname = %s AND p.relname = 'events'
 ORDER BY c.relname;

-- name: append_exact
-- One round trip for an append with an exact expected version: the stream's
-- advisory lock (a one-time filter, taken before this transaction writes and
-- so before it is given an id), the stream's row, then the events only if the
-- row moved. No row back: the stream was not at the expected version.
WITH s AS (
    {stream_write}
){types_cte}
INSERT INTO {schema}.events ({columns})
SELECT v.* FROM s, (VALUES {rows}) AS v
RETURNING stream_position, global_position, transaction_id;

-- name: append_stream_create
INSERT INTO {schema}.streams (stream_id, aggregate_id, aggregate_type, version)
SELECT %(stream_id)s, %(aggregate_id)s, %(aggregate_type)s, %(new_version)s
 WHERE (SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0))) AS l) = 1
ON CONFLICT (stream_id) DO NOTHING
RETURNING version

-- name: append_stream_advance
UPDATE {schema}.streams
   SET version = %(new_version)s, updated_at = now()
 WHERE stream_id = %(stream_id)s
   AND version = %(expected)s
   AND aggregate_id = %(aggregate_id)s
   AND aggregate_type = %(aggregate_type)s
   AND (SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0))) AS l) = 1
RETURNING version

-- name: append_types_cte
, t AS (
    INSERT INTO {schema}.event_types (event_type)
    SELECT x FROM s, unnest(%(new_types)s::text[]) AS x
    ON CONFLICT DO NOTHING
)
