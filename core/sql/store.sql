-- Named statements of the event store (core/store, core/db.py, core/migrations.py),
-- loaded with Database.sql("store", name) (or evstore.core.sql.load before a
-- Database exists). {schema} is the quoted schema; other {fragments} are trusted
-- text filled in by the caller; %(name)s / %s are psycopg parameters.

-- name: lock_stream
-- Serialises writers of one stream *before* any of them takes a transaction id,
-- so transaction ids of one stream's appends follow its positions; and takes
-- the store's append lock (shared), which write_horizon() looks for.
SELECT pg_advisory_xact_lock_shared(hashtextextended('evstore-append:{schema}', 0)),
       pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0));

-- name: create_stream
INSERT INTO {schema}.streams (stream_id, aggregate_id, aggregate_type, version,
                              first_event_at, last_event_at)
VALUES (%(stream_id)s, %(aggregate_id)s, %(aggregate_type)s, %(new_version)s,
        %(first_at)s, %(last_at)s)
ON CONFLICT (stream_id) DO NOTHING
RETURNING version;

-- name: advance_stream
UPDATE {schema}.streams
   SET version = %(new_version)s, updated_at = now(),
       first_event_at = least(first_event_at, %(first_at)s),
       last_event_at = greatest(last_event_at, %(last_at)s)
 WHERE stream_id = %(stream_id)s
   AND version = %(expected)s
   AND aggregate_id = %(aggregate_id)s
   AND aggregate_type = %(aggregate_type)s
RETURNING version;

-- name: stream_head
SELECT version, aggregate_id, aggregate_type FROM {schema}.streams WHERE stream_id = %s;

-- name: stream_event_ids
-- Which of these events the stream holds already (a retry), found through the
-- index so that only their month partitions are probed.
SELECT e.stream_position, e.event_id, e.checksum, e.global_position, e.transaction_id,
       e.created_at
  FROM {schema}.event_index i
  JOIN {schema}.events e ON e.event_id = i.event_id AND e.created_at = i.created_at
 WHERE i.stream_id = %s AND i.event_id = ANY(%s)
 ORDER BY e.stream_position;

-- name: remember_event_type
INSERT INTO {schema}.event_types (event_type) VALUES (%s) ON CONFLICT DO NOTHING;

-- name: known_event_types
SELECT event_type FROM {schema}.event_types ORDER BY event_type;

-- name: allocate_positions
SELECT nextval('{schema}.events_global_position_seq') FROM generate_series(1, %s);

-- name: read_all
-- At most %(limit)s events, and no more than %(max_bytes)s bytes of event data
-- (the first event always): the running total is of original_size.
SELECT {columns} FROM (
    SELECT *, sum(original_size::bigint) OVER (ORDER BY transaction_id, global_position) AS page_bytes
      FROM {schema}.events
     WHERE (transaction_id, global_position) > (%(tx)s::text::xid8, %(pos)s)
       AND transaction_id < %(horizon)s::text::xid8
       {filters}
     ORDER BY transaction_id, global_position
     LIMIT %(limit)s
) AS page
 WHERE page_bytes - original_size < %(max_bytes)s
 ORDER BY transaction_id, global_position;

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
INSERT INTO {schema}.streams (stream_id, aggregate_id, aggregate_type, version,
                              first_event_at, last_event_at)
SELECT %(stream_id)s, %(aggregate_id)s, %(aggregate_type)s, %(new_version)s,
       %(first_at)s::timestamptz, %(last_at)s::timestamptz
 WHERE (SELECT 1 FROM (SELECT pg_advisory_xact_lock_shared(
                                  hashtextextended('evstore-append:{schema}', 0)),
                              pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0))) AS l) = 1
ON CONFLICT (stream_id) DO NOTHING
RETURNING version

-- name: append_stream_advance
UPDATE {schema}.streams
   SET version = %(new_version)s, updated_at = now(),
       first_event_at = least(first_event_at, %(first_at)s::timestamptz),
       last_event_at = greatest(last_event_at, %(last_at)s::timestamptz)
 WHERE stream_id = %(stream_id)s
   AND version = %(expected)s
   AND aggregate_id = %(aggregate_id)s
   AND aggregate_type = %(aggregate_type)s
   AND (SELECT 1 FROM (SELECT pg_advisory_xact_lock_shared(
                                  hashtextextended('evstore-append:{schema}', 0)),
                              pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0))) AS l) = 1
RETURNING version

-- name: append_types_cte
, t AS (
    INSERT INTO {schema}.event_types (event_type)
    SELECT x FROM s, unnest(%(new_types)s::text[]) AS x
    ON CONFLICT DO NOTHING
)

-- name: insert_events_values
-- The insert of an append inside its transaction (lock and version check done);
-- {blind_cte} is empty or insert_blind_cte (the same statement writes both).
{blind_cte}INSERT INTO {schema}.events ({columns}) VALUES {rows}
RETURNING global_position, transaction_id;

-- name: append_blind_cte
-- Blind-index entries of an encrypted append (core/store/fieldcipher.py), in
-- append_exact after append_types_cte: written only if the stream's row moved,
-- in the append's own statement (so its transaction).
, b AS (
    INSERT INTO {schema}.blind_index (field, digest, subject_ref, event_id)
    SELECT u.* FROM s, unnest(%(b_fields)s::text[], %(b_digests)s::text[],
                              %(b_subject_refs)s::text[], %(b_event_ids)s::uuid[])
                       AS u(field, digest, subject_ref, event_id)
    ON CONFLICT DO NOTHING
)

-- name: insert_blind_cte
-- The same, before insert_events_values (positional: its four arrays first).
WITH b AS (
    INSERT INTO {schema}.blind_index (field, digest, subject_ref, event_id)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::uuid[])
    ON CONFLICT DO NOTHING
)

-- name: insert_blind_index
-- The same for an append by COPY, inside its transaction.
INSERT INTO {schema}.blind_index (field, digest, subject_ref, event_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::uuid[])
ON CONFLICT DO NOTHING;

-- name: copy_events
-- The insert of a large append: COPY with positions allocated beforehand.
COPY {schema}.events ({columns}, global_position) FROM STDIN;

-- name: current_transaction_id
SELECT pg_current_xact_id();

-- name: any_stored_event_id
-- Which of these event ids is stored already (in any stream), and where.
SELECT event_id, stream_id, stream_position FROM {schema}.event_index
 WHERE event_id = ANY(%s) LIMIT 1;

-- name: read_stream
-- stream_events() opens only the month partitions that hold the stream.
SELECT {columns} FROM {schema}.stream_events(%s, %s, %s, %s);

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
-- Before the rows' snapshot is taken (see write_horizon in migration 0006). The
-- second column: the horizon's transaction has ended since this statement's
-- snapshot. write_horizon() counts a transaction that finished between the
-- snapshot and its read of pg_locks, to be safe, even when it never appended
-- here; a new statement (Database.horizon reads again) gets a later horizon, so
-- a caller sees its own committed append. The CASE keeps pg_xact_status off
-- the snapshot's xmax (not yet assigned: "in the future"). OFFSET 0 keeps the
-- subquery whole: flattened, each reference to w.x called write_horizon() again,
-- reading pg_locks at another moment (the flag could describe another horizon).
SELECT w.x::text,
       CASE WHEN w.x < pg_snapshot_xmax(pg_current_snapshot())
            THEN pg_xact_status(w.x) <> 'in progress' ELSE false END
  FROM (SELECT {schema}.write_horizon() AS x OFFSET 0) w;

-- name: commit
COMMIT;

-- name: verify_chunk
-- The last column: whether event_index holds the event at its place (an event
-- stored twice before migration 0006, or a row written around the trigger, is not).
SELECT {columns},
       EXISTS (SELECT 1 FROM {schema}.event_index i
                WHERE i.event_id = e.event_id AND i.stream_id = e.stream_id
                  AND i.stream_position = e.stream_position AND i.created_at = e.created_at)
       AS indexed
  FROM {schema}.events e
 WHERE global_position > %s AND global_position <= %s
 ORDER BY global_position
 LIMIT %s;

-- name: resign_event
-- `evstore verify --upgrade`: a version-1 checksum, checked, replaced by version 2.
UPDATE {schema}.events SET checksum = %(checksum)s
 WHERE event_id = %(event_id)s AND created_at = %(created_at)s AND checksum = %(old)s;

-- name: server_version
SHOW server_version;

-- name: metrics_totals
-- From the catalog's statistics, not a scan: a scrape costs the same at any size.
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint AS events,
       coalesce(sum(pg_relation_size(c.oid)), 0)::bigint AS heap_bytes
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = '{schema}.events'::regclass;

-- name: metrics_streams
SELECT greatest(reltuples, 0)::bigint FROM pg_catalog.pg_class
 WHERE oid = '{schema}.streams'::regclass;

-- name: metrics_types_estimate
-- Events per type estimated from each partition's planner statistics (the most
-- common values of event_type and their frequencies, times its row estimate).
SELECT v.event_type, round(sum(v.freq * greatest(c.reltuples, 0)))::bigint
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
                            AND s.attname = 'event_type'
 CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
       AS v(event_type, freq)
 WHERE i.inhparent = '{schema}.events'::regclass
 GROUP BY 1 ORDER BY 2 DESC;

-- name: metrics_exact_totals
-- `evstore metrics --exact`: a full scan, on demand only.
SELECT count(*) AS events,
       coalesce(sum(original_size), 0) AS original_bytes,
       coalesce(sum(stored_size), 0) AS stored_bytes,
       count(*) FILTER (WHERE compression <> 'none') AS compressed
  FROM {schema}.events;

-- name: metrics_exact_by_type
SELECT event_type, count(*) FROM {schema}.events GROUP BY 1 ORDER BY 2 DESC;

-- name: metrics_exact_streams
SELECT count(*) FROM {schema}.streams;

-- name: advisory_lock
-- A transaction-scoped lock on a text key: month partition creation
-- ("evstore-partitions:<schema>": concurrent writers that need the same new
-- month do not race each other's CREATE) and migrations ("evstore-migrate:<schema>").
SELECT pg_advisory_xact_lock(hashtextextended(%s, 0));

-- name: create_month_partition
-- Through the SECURITY DEFINER function (migration 0006): a writer may create it.
SELECT {schema}.create_month_partition(%s);

-- name: allow_rewrite
-- The store's own rewriting paths (forget, archive, checksum upgrade) only:
-- the append-only trigger lets this transaction UPDATE and DELETE events.
SELECT set_config('evstore.rewrite', 'on', true);

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
