-- Named statements of the event store (core/store, core/db.py, core/migrations.py),
-- loaded with Database.sql("store", name) (or evstore.core.sql.load before a
-- Database exists). {schema} is the quoted schema; other {fragments} are trusted
-- text filled in by the caller; %(name)s / %s are psycopg parameters.

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

-- name: month_partitions
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

-- name: insert_events_values
-- The insert of an append inside its transaction (lock and version check done).
INSERT INTO {schema}.events ({columns}) VALUES {rows}
RETURNING global_position, transaction_id;

-- name: copy_events
-- The insert of a large append: COPY with positions allocated beforehand.
COPY {schema}.events ({columns}, global_position) FROM STDIN;

-- name: current_transaction_id
SELECT pg_current_xact_id();

-- name: any_stored_event_id
-- Which of these event ids is stored already (in any stream).
SELECT event_id FROM {schema}.events WHERE event_id = ANY(%s) LIMIT 1;

-- name: read_stream_forwards
SELECT {columns} FROM {schema}.events
 WHERE stream_id = %s AND stream_position >= %s
 ORDER BY stream_position ASC {limit};

-- name: read_stream_backwards
SELECT {columns} FROM {schema}.events
 WHERE stream_id = %s AND stream_position <= %s
 ORDER BY stream_position DESC {limit};

-- name: limit_rows
 LIMIT %s

-- name: aggregate_streams
SELECT stream_id FROM {schema}.streams WHERE aggregate_id = %s ORDER BY stream_id;

-- name: aggregate_streams_of_type
SELECT stream_id FROM {schema}.streams
 WHERE aggregate_id = %s AND aggregate_type = %s
 ORDER BY stream_id;

-- name: filter_event_types
AND event_type = ANY(%(event_types)s)

-- name: filter_aggregate_types
AND aggregate_type = ANY(%(aggregate_types)s)

-- name: begin_read_snapshot
-- Database.read_only_snapshot: the statements inside share one snapshot
-- (read_all's horizon and rows, a replay's plan, an archive preview).
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- name: read_horizon
SELECT pg_snapshot_xmin(pg_current_snapshot());

-- name: commit
COMMIT;

-- name: verify_chunk
SELECT {columns} FROM {schema}.events
 WHERE global_position > %s AND global_position <= %s
 ORDER BY global_position
 LIMIT %s;

-- name: server_version
SHOW server_version;

-- name: metrics_totals
SELECT count(*) AS events,
       coalesce(sum(original_size), 0) AS original_bytes,
       coalesce(sum(stored_size), 0) AS stored_bytes,
       count(*) FILTER (WHERE compression <> 'none') AS compressed
  FROM {schema}.events;

-- name: metrics_events_by_type
SELECT event_type, count(*) FROM {schema}.events GROUP BY 1 ORDER BY 2 DESC;

-- name: metrics_streams
SELECT count(*) FROM {schema}.streams;

-- name: advisory_lock
-- A transaction-scoped lock on a text key: month partition creation
-- ("evstore-partitions:<schema>": concurrent writers that need the same new
-- month do not race each other's CREATE) and migrations ("evstore-migrate:<schema>").
SELECT pg_advisory_xact_lock(hashtextextended(%s, 0));

-- name: month_partition_exists
SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s;

-- name: create_month_partition
-- {partition} is the quoted table name, {range_start} and {range_end} literals.
CREATE TABLE {schema}.{partition} PARTITION OF {schema}.events
   FOR VALUES FROM ({range_start}) TO ({range_end});

-- name: month_partition_count
SELECT count(*) FROM {schema}.{partition};

-- name: migrations_table_exists
SELECT to_regclass(%s);

-- name: migrated_version
SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations;

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: record_migration
INSERT INTO {schema}.schema_migrations (version, name) VALUES (%s, %s);

-- name: set_utc
SET TIME ZONE 'UTC';

-- name: ping
SELECT 1;
