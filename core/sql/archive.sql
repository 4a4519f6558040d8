-- Named queries of evstore.core.archive, loaded by Database.sql("archive", name).
-- {schema} is the quoted schema; {predicate} and {join} are fixed fragments of
-- this file chosen by the strategy (never user text); {partition} is a quoted
-- partition name; %(name)s are psycopg parameters.

-- Selection fragments (selection.py), over events e: each strategy picks one
-- predicate, the filters are added with AND.

-- name: before_cutoff
e.created_at < %(cutoff)s

-- name: older_than_kept
e.stream_position <= s.version - %(keep)s

-- name: join_streams
JOIN {schema}.streams s ON s.stream_id = e.stream_id

-- name: of_event_types
e.event_type = ANY(%(event_types)s)

-- name: of_aggregate_types
e.aggregate_type = ANY(%(aggregate_types)s)

-- name: lock_policy
SELECT pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0));

-- name: unfinished_run
SELECT run_id::text AS run_id FROM {schema}.archive_runs
 WHERE policy = %(policy)s AND status IN ('planned', 'exported')
 ORDER BY created_at LIMIT 1;

-- name: horizon
-- The store's write horizon (migration 0006): transactions of other databases
-- and idle ones that never append here do not hold it back.
SELECT {schema}.write_horizon()::text AS horizon;

-- name: preview
SELECT count(*) AS events,
       count(DISTINCT e.stream_id) AS streams,
       coalesce(sum(pg_column_size(e.*)), 0) AS bytes,
       min(e.created_at) AS first_created_at,
       max(e.created_at) AS last_created_at,
       coalesce(sum(e.original_size), 0) AS payload_bytes
  FROM {schema}.events e {join}
 WHERE {predicate};

-- name: plan_table
CREATE TEMP TABLE archive_plan (
    event_id uuid, created_at timestamptz, transaction_id xid8, global_position bigint,
    segment_no integer, ordinal bigint
) ON COMMIT DROP;

-- name: plan_selection
-- ordinal: the event's place in the selection's global order (1, 2, ...).
INSERT INTO archive_plan
SELECT s.event_id, s.created_at, s.transaction_id, s.global_position,
       ((s.ordinal - 1) / %(segment_size)s)::integer + 1 AS segment_no, s.ordinal
  FROM (SELECT e.event_id, e.created_at, e.transaction_id, e.global_position,
               row_number() OVER (ORDER BY e.transaction_id, e.global_position) AS ordinal
          FROM {schema}.events e {join}
         WHERE {predicate}) s;

-- name: insert_run
INSERT INTO {schema}.archive_runs
       (run_id, policy, strategy, target_url, policy_spec, horizon, cutoff, partitions, job_id)
VALUES (%(run_id)s, %(policy)s, %(strategy)s, %(target_url)s, %(policy_spec)s,
        %(horizon)s::xid8, %(cutoff)s, %(partitions)s, %(job_id)s);

-- name: insert_segments
-- With each segment's first and last event in the global order (its range): the
-- events at ordinals (segment_no - 1) * segment_size + 1 and the segment's last
-- one (its full size, or the selection's end), picked in the one aggregation.
INSERT INTO {schema}.archive_segments
       (run_id, segment_no, event_count, min_created_at, max_created_at,
        first_tx, first_gp, last_tx, last_gp)
SELECT %(run_id)s, p.segment_no, count(*), min(p.created_at), max(p.created_at),
       (array_agg(p.transaction_id) FILTER (WHERE p.ordinal = s.first))[1],
       min(p.global_position) FILTER (WHERE p.ordinal = s.first),
       (array_agg(p.transaction_id) FILTER (WHERE p.ordinal = s.last))[1],
       min(p.global_position) FILTER (WHERE p.ordinal = s.last)
  FROM archive_plan p,
       LATERAL (SELECT (p.segment_no - 1)::bigint * %(segment_size)s + 1 AS first,
                       least(p.segment_no::bigint * %(segment_size)s,
                             (SELECT max(ordinal) FROM archive_plan)) AS last) s
 GROUP BY p.segment_no;

-- name: insert_items
INSERT INTO {schema}.archive_items (run_id, segment_no, event_id, created_at)
SELECT %(run_id)s, segment_no, event_id, created_at FROM archive_plan;

-- name: count_run
UPDATE {schema}.archive_runs r
   SET event_count = coalesce((SELECT sum(event_count) FROM {schema}.archive_segments s
                                WHERE s.run_id = r.run_id), 0),
       segment_count = (SELECT count(*) FROM {schema}.archive_segments s
                         WHERE s.run_id = r.run_id)
 WHERE run_id = %(run_id)s
RETURNING event_count, segment_count;

-- name: run
SELECT run_id::text AS run_id, policy, strategy, target_url, policy_spec,
       horizon::text AS horizon, cutoff, partitions,
       event_count, segment_count, status, deleted_events, dropped_partitions, manifest_url,
       job_id, last_error, created_at, finished_at
  FROM {schema}.archive_runs WHERE run_id = %(run_id)s;

-- name: runs
SELECT run_id::text AS run_id, policy, strategy, target_url, policy_spec,
       horizon::text AS horizon, cutoff, partitions,
       event_count, segment_count, status, deleted_events, dropped_partitions, manifest_url,
       job_id, last_error, created_at, finished_at
  FROM {schema}.archive_runs
 WHERE (%(policy)s::text IS NULL OR policy = %(policy)s)
 ORDER BY created_at DESC LIMIT %(limit)s;

-- name: segments
SELECT segment_no AS number, event_count, status, data_path, manifest_path, sha256, raw_bytes,
       stored_bytes, first_position, last_position, min_created_at, max_created_at,
       attempts, last_error, verified_at, first_tx, first_gp, last_tx, last_gp
  FROM {schema}.archive_segments WHERE run_id = %(run_id)s ORDER BY segment_no;

-- name: segment_rows
-- Every column of events, named as segments.FIELDS (event_data and metadata as
-- the exact JSON text PostgreSQL holds).
SELECT e.event_id, e.aggregate_id, e.aggregate_type, e.event_type, e.event_version,
       e.aggregate_version, e.stream_id, e.stream_position, e.global_position,
       e.transaction_id, e.event_data::text AS event_data, e.payload,
       e.metadata::text AS metadata, e.created_at, e.stored_at, e.status, e.compression,
       e.encryption, e.checksum, e.original_size, e.stored_size
  FROM {schema}.archive_items i
  JOIN {schema}.events e ON e.event_id = i.event_id AND e.created_at = i.created_at
 WHERE i.run_id = %(run_id)s AND i.segment_no = %(segment_no)s
 ORDER BY e.transaction_id, e.global_position;

-- name: segment_verified
UPDATE {schema}.archive_segments
   SET status = 'verified', data_path = %(data_path)s, manifest_path = %(manifest_path)s,
       sha256 = %(sha256)s, raw_bytes = %(raw_bytes)s, stored_bytes = %(stored_bytes)s,
       first_position = %(first_position)s, last_position = %(last_position)s,
       attempts = attempts + 1, last_error = NULL, verified_at = now()
 WHERE run_id = %(run_id)s AND segment_no = %(segment_no)s AND status = 'pending';

-- name: segment_failed
UPDATE {schema}.archive_segments
   SET attempts = attempts + 1, last_error = %(error)s
 WHERE run_id = %(run_id)s AND segment_no = %(segment_no)s;

-- name: segment_reset
UPDATE {schema}.archive_segments
   SET status = 'pending', last_error = %(error)s, verified_at = NULL
 WHERE run_id = %(run_id)s AND segment_no = %(segment_no)s AND status = 'verified';

-- name: delete_segment_events
WITH gone AS (
    DELETE FROM {schema}.events e
     USING {schema}.archive_items i
     WHERE i.run_id = %(run_id)s AND i.segment_no = %(segment_no)s
       AND e.event_id = i.event_id AND e.created_at = i.created_at
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- name: delete_segment_events_unheld
-- delete_segment_events, except the events of subjects under legal hold (their
-- metadata.user_id or aggregate id, or a declared subject path: as
-- privacy_log.sql held_in_partition matches them); they stay in PostgreSQL.
WITH gone AS (
    DELETE FROM {schema}.events e
     USING {schema}.archive_items i
     WHERE i.run_id = %(run_id)s AND i.segment_no = %(segment_no)s
       AND e.event_id = i.event_id AND e.created_at = i.created_at
       AND NOT coalesce(e.metadata->>'user_id' = ANY(%(subjects)s), false)
       AND NOT e.aggregate_id = ANY(%(subjects)s)
       AND NOT EXISTS (
           SELECT 1 FROM unnest(%(d_types)s::text[], %(d_roots)s::text[], %(d_paths)s::text[])
                    AS d(event_type, root, path)
            WHERE d.event_type = e.event_type
              AND (CASE WHEN d.root = 'data' THEN e.event_data ELSE e.metadata END)
                  #>> string_to_array(d.path, '.') = ANY(%(subjects)s))
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- name: segment_deleted
UPDATE {schema}.archive_segments SET status = 'deleted'
 WHERE run_id = %(run_id)s AND segment_no = %(segment_no)s AND status = 'verified';

-- name: run_status
UPDATE {schema}.archive_runs
   SET status = %(status)s, last_error = %(error)s
 WHERE run_id = %(run_id)s;

-- name: run_completed
UPDATE {schema}.archive_runs
   SET status = 'completed', dropped_partitions = %(dropped)s,
       manifest_url = %(manifest_url)s, last_error = %(error)s, finished_at = now()
 WHERE run_id = %(run_id)s;

-- name: run_add_deleted
UPDATE {schema}.archive_runs SET deleted_events = deleted_events + %(deleted)s
 WHERE run_id = %(run_id)s;

-- name: drop_items
DELETE FROM {schema}.archive_items WHERE run_id = %(run_id)s;

-- name: uncovered_rows
-- Rows of a partition that the run did not archive (late arrivals, restores).
SELECT count(*) AS uncovered FROM {partition} p
 WHERE NOT EXISTS (SELECT 1 FROM {schema}.archive_items i
                    WHERE i.run_id = %(run_id)s
                      AND i.event_id = p.event_id AND i.created_at = p.created_at);

-- name: partition_rows
SELECT count(*) AS total FROM {partition};

-- name: partition_exists
SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = %(name)s;

-- name: drop_lock_timeout
SET LOCAL lock_timeout = '30s';

-- name: lock_partition
LOCK TABLE {schema}.events, {partition} IN ACCESS EXCLUSIVE MODE;

-- name: unindex_partition
-- The events of a month partition about to be dropped leave event_index
-- (DROP TABLE fires no DELETE trigger); inside the store's rewrite path.
DELETE FROM {schema}.event_index i USING {partition} p
 WHERE i.event_id = p.event_id AND i.created_at = p.created_at;

-- name: detach_partition
ALTER TABLE {schema}.events DETACH PARTITION {partition};

-- name: drop_partition
DROP TABLE {partition};

-- name: run_job
UPDATE {schema}.archive_runs SET job_id = %(job_id)s WHERE run_id = %(run_id)s;

-- Restore (restore.py): the rows of every segment gather in a session temporary
-- table (dropped at the end), then one transaction checks and inserts them;
-- {columns} is the column list of segments.FIELDS, in that order.

-- name: restore_drop
DROP TABLE IF EXISTS pg_temp.restore_rows;

-- name: restore_table
CREATE TEMP TABLE restore_rows (
    event_id uuid, aggregate_id text, aggregate_type text, event_type text,
    event_version integer, aggregate_version bigint, stream_id text, stream_position bigint,
    global_position bigint, transaction_id xid8, event_data jsonb, payload bytea,
    metadata jsonb, created_at timestamptz, stored_at timestamptz, status text,
    compression text, encryption text, checksum text, original_size integer,
    stored_size integer
);

-- name: restore_copy
COPY restore_rows ({columns}) FROM STDIN;

-- name: restore_analyze
ANALYZE restore_rows;

-- name: restore_conflicts
-- The first archived row that would share a stream position or a global
-- position with another event (stored, or elsewhere in the archive), or whose
-- event id is held at another place. The same event at the same place is no
-- conflict: restoring twice stays idempotent.
WITH conflicts AS (
    SELECT r.event_id, r.stream_id, r.stream_position, r.global_position,
           e.event_id AS other_id, e.stream_id AS other_stream,
           e.stream_position AS other_position, e.global_position AS other_global,
           'in the store' AS place
      FROM restore_rows r
      JOIN {schema}.events e
        ON e.stream_id = r.stream_id AND e.stream_position = r.stream_position
     WHERE e.event_id <> r.event_id
    UNION ALL
    SELECT r.event_id, r.stream_id, r.stream_position, r.global_position,
           e.event_id, e.stream_id, e.stream_position, e.global_position, 'in the store'
      FROM restore_rows r
      JOIN {schema}.events e ON e.event_id = r.event_id
     WHERE (e.stream_id, e.stream_position, e.global_position, e.created_at)
           IS DISTINCT FROM (r.stream_id, r.stream_position, r.global_position, r.created_at)
    UNION ALL
    SELECT r.event_id, r.stream_id, r.stream_position, r.global_position,
           e.event_id, e.stream_id, e.stream_position, e.global_position, 'in the store'
      FROM restore_rows r
      JOIN {schema}.events e ON e.global_position = r.global_position
     WHERE e.event_id <> r.event_id
    UNION ALL
    SELECT r.event_id, r.stream_id, r.stream_position, r.global_position,
           o.event_id, o.stream_id, o.stream_position, o.global_position, 'in the archive'
      FROM restore_rows r
      JOIN restore_rows o
        ON o.stream_id = r.stream_id AND o.stream_position = r.stream_position
     WHERE o.event_id <> r.event_id
    UNION ALL
    SELECT r.event_id, r.stream_id, r.stream_position, r.global_position,
           o.event_id, o.stream_id, o.stream_position, o.global_position, 'in the archive'
      FROM restore_rows r
      JOIN restore_rows o ON o.event_id = r.event_id
     WHERE (o.stream_id, o.stream_position, o.global_position, o.created_at)
           IS DISTINCT FROM (r.stream_id, r.stream_position, r.global_position, r.created_at)
    UNION ALL
    SELECT r.event_id, r.stream_id, r.stream_position, r.global_position,
           o.event_id, o.stream_id, o.stream_position, o.global_position, 'in the archive'
      FROM restore_rows r
      JOIN restore_rows o ON o.global_position = r.global_position
     WHERE o.event_id <> r.event_id
)
SELECT event_id::text AS archived_id, stream_id, stream_position, global_position,
       other_id::text AS other_id, other_stream, other_position, other_global, place
  FROM conflicts
 ORDER BY global_position, event_id, place DESC
 LIMIT 1;

-- name: restore_events
WITH new AS (
    INSERT INTO {schema}.events ({columns})
    SELECT {columns} FROM restore_rows
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS restored FROM new;

-- name: restore_event_types
INSERT INTO {schema}.event_types (event_type)
SELECT DISTINCT event_type FROM restore_rows
ON CONFLICT DO NOTHING;

-- name: restore_streams
INSERT INTO {schema}.streams AS s (stream_id, aggregate_id, aggregate_type, version)
SELECT stream_id, min(aggregate_id), min(aggregate_type), max(stream_position)
  FROM restore_rows GROUP BY stream_id
ON CONFLICT (stream_id) DO UPDATE SET version = GREATEST(s.version, EXCLUDED.version);

-- Archive catalog (migration 0009, catalog.py, readthrough.py): which segment
-- of which run holds which positions of which stream.

-- name: catalog_write
-- From the run's items while its events are still in the store, for the
-- segments the export did not catalog already.
INSERT INTO {schema}.archive_catalog
       (run_id, segment_no, stream_id, first_position, last_position, event_count,
        min_global_position, max_global_position, min_created_at, max_created_at, bytes)
SELECT i.run_id, i.segment_no, e.stream_id, min(e.stream_position), max(e.stream_position),
       count(*), min(e.global_position), max(e.global_position), min(e.created_at),
       max(e.created_at), sum(pg_column_size(e.*))
  FROM {schema}.archive_items i
  JOIN {schema}.events e ON e.event_id = i.event_id AND e.created_at = i.created_at
 WHERE i.run_id = %(run_id)s
   AND i.segment_no IN (SELECT s.segment_no FROM {schema}.archive_segments s
                         WHERE s.run_id = %(run_id)s
                           AND NOT EXISTS (SELECT 1 FROM {schema}.archive_catalog c
                                            WHERE c.run_id = s.run_id
                                              AND c.segment_no = s.segment_no))
 GROUP BY i.run_id, i.segment_no, e.stream_id
ON CONFLICT DO NOTHING;

-- name: catalog_insert_segment
-- A segment's catalog rows in one statement (export.py, when it is verified):
-- the columns as arrays, one element per stream.
INSERT INTO {schema}.archive_catalog
       (run_id, segment_no, stream_id, first_position, last_position, event_count,
        min_global_position, max_global_position, min_created_at, max_created_at, bytes)
SELECT %(run_id)s, %(segment_no)s, c.*
  FROM unnest(%(stream_id)s::text[], %(first_position)s::bigint[], %(last_position)s::bigint[],
              %(event_count)s::integer[], %(min_global_position)s::bigint[],
              %(max_global_position)s::bigint[], %(min_created_at)s::timestamptz[],
              %(max_created_at)s::timestamptz[], %(bytes)s::bigint[]) AS c
ON CONFLICT DO NOTHING;

-- name: catalog_insert_row
INSERT INTO {schema}.archive_catalog
       (run_id, segment_no, stream_id, first_position, last_position, event_count,
        min_global_position, max_global_position, min_created_at, max_created_at, bytes)
VALUES (%(run_id)s, %(segment_no)s, %(stream_id)s, %(first_position)s, %(last_position)s,
        %(event_count)s, %(min_global_position)s, %(max_global_position)s,
        %(min_created_at)s, %(max_created_at)s, %(bytes)s)
ON CONFLICT DO NOTHING;

-- name: catalog_any
SELECT EXISTS (SELECT 1 FROM {schema}.archive_catalog) AS any;

-- name: segment_digests
-- Read-through's cache prune: the SHA-256 of every archived segment file now
-- published (a forget's rewrite replaces a segment's file and its digest).
SELECT sha256 FROM {schema}.archive_segments WHERE sha256 IS NOT NULL;

-- name: catalog_stream
-- The segments holding positions lo..hi of one stream.
SELECT c.run_id::text AS run_id, c.segment_no, c.first_position, c.last_position,
       c.event_count, c.min_global_position, c.max_global_position, c.min_created_at,
       c.max_created_at, c.bytes, r.target_url, r.policy, s.data_path, s.sha256,
       s.raw_bytes, s.stored_bytes, s.event_count AS segment_events
  FROM {schema}.archive_catalog c
  JOIN {schema}.archive_runs r ON r.run_id = c.run_id
  JOIN {schema}.archive_segments s ON s.run_id = c.run_id AND s.segment_no = c.segment_no
 WHERE c.stream_id = %(stream_id)s AND c.last_position >= %(lo)s AND c.first_position <= %(hi)s
 ORDER BY c.first_position, c.run_id, c.segment_no;

-- name: catalog_segments
-- Every cataloged segment whose global positions meet lo..hi, in global order.
SELECT DISTINCT c.run_id::text AS run_id, c.segment_no, r.target_url, s.data_path, s.sha256,
       s.raw_bytes, s.event_count, s.first_position AS first_tx_position,
       min(c.min_global_position) OVER w AS min_global, max(c.max_global_position) OVER w AS max_global
  FROM {schema}.archive_catalog c
  JOIN {schema}.archive_runs r ON r.run_id = c.run_id
  JOIN {schema}.archive_segments s ON s.run_id = c.run_id AND s.segment_no = c.segment_no
 WHERE c.max_global_position >= %(lo)s AND c.min_global_position <= %(hi)s
WINDOW w AS (PARTITION BY c.run_id, c.segment_no)
 ORDER BY 8, 1, 2;

-- name: catalog_runs_missing
-- Completed runs that deleted events but have no catalog rows (made before migration 0009).
SELECT r.run_id::text AS run_id FROM {schema}.archive_runs r
 WHERE r.status = 'completed' AND r.deleted_events > 0
   AND NOT EXISTS (SELECT 1 FROM {schema}.archive_catalog c WHERE c.run_id = r.run_id)
 ORDER BY r.created_at;

-- name: catalog_of_stream
-- The operator's view: every archived range of one stream.
SELECT c.first_position, c.last_position, c.event_count, c.min_created_at, c.max_created_at,
       c.run_id::text AS run_id, r.policy, c.segment_no, r.target_url, s.data_path,
       r.finished_at
  FROM {schema}.archive_catalog c
  JOIN {schema}.archive_runs r ON r.run_id = c.run_id
  JOIN {schema}.archive_segments s ON s.run_id = c.run_id AND s.segment_no = c.segment_no
 WHERE c.stream_id = %(stream_id)s
 ORDER BY c.first_position;

-- name: stats_archived
-- Archived events and bytes per month (from the catalog).
SELECT date_trunc('month', c.min_created_at) AS month, sum(c.event_count) AS events,
       sum(c.bytes) AS bytes
  FROM {schema}.archive_catalog c GROUP BY 1 ORDER BY 1;

-- name: stats_live
-- Live events and bytes per month.
SELECT date_trunc('month', e.created_at) AS month, count(*) AS events,
       sum(pg_column_size(e.*)) AS bytes
  FROM {schema}.events e GROUP BY 1 ORDER BY 1;

-- name: catalog_streams_range
-- Replays across tiers (tiers.py): the streams with archived events in a range
-- of global positions.
SELECT stream_id, sum(event_count)::bigint AS events, min(min_global_position) AS first,
       max(max_global_position) AS last
  FROM {schema}.archive_catalog
 WHERE max_global_position >= %(lo)s AND min_global_position <= %(hi)s
 GROUP BY stream_id;

-- name: catalog_for_streams
-- The archived segments holding events of any of these streams.
SELECT DISTINCT c.run_id::text AS run_id, c.segment_no, r.target_url, s.data_path, s.sha256,
       s.raw_bytes, s.event_count
  FROM {schema}.archive_catalog c
  JOIN {schema}.archive_runs r ON r.run_id = c.run_id
  JOIN {schema}.archive_segments s ON s.run_id = c.run_id AND s.segment_no = c.segment_no
 WHERE c.stream_id = ANY(%(streams)s)
 ORDER BY 1, 2;

-- name: guard_candidates
-- Snapshot guard (guard.py): the aggregates of these types with events in the
-- run and events after it, with the last archived position of each.
SELECT s.aggregate_id, s.aggregate_type, max(c.last_position) AS archived_to, s.version
  FROM {schema}.archive_catalog c
  JOIN {schema}.streams s ON s.stream_id = c.stream_id
 WHERE c.run_id = %(run_id)s AND s.aggregate_type = ANY(%(types)s)
 GROUP BY s.aggregate_id, s.aggregate_type, s.version
HAVING s.version > max(c.last_position)
 ORDER BY s.aggregate_type, s.aggregate_id;

-- name: export_settings
-- Fast export (fastexport.py), for the one COPY of a segment: its rows are found
-- by one index probe per planned item (a segment is a few thousand items, a
-- month partition may hold millions: a hash join would read the partitions
-- whole for every segment), sorted in memory, by this process alone.
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_mergejoin = off;
SET LOCAL max_parallel_workers_per_gather = 0;
SET LOCAL work_mem = '64MB';
SET LOCAL bytea_output = 'hex';

-- name: segment_columns
-- The columns of a segment-format-2 line (archive/rows.py COLUMNS), from events e:
-- the id as the 32 hex digits and the times as microseconds since 1970 that a
-- version-2 checksum covers, so the first eleven joined by NUL are its message.
-- Filled into segment_range_copy and segment_copy ({columns}).
encode(uuid_send(e.event_id), 'hex'), e.stream_id, e.stream_position, e.aggregate_id,
       e.aggregate_type, e.event_type, e.event_version, e.aggregate_version,
       (extract(epoch FROM e.created_at) * 1000000)::bigint, e.event_data, e.metadata,
       e.global_position, e.transaction_id, e.payload,
       (extract(epoch FROM e.stored_at) * 1000000)::bigint, e.status, e.compression,
       e.encryption, e.checksum, e.original_size, e.stored_size

-- name: segment_range_copy
-- Fast export (fastexport.py) of a segment planned with its range (migration
-- 0013): every event of the range, in the global order, by an ordered scan of
-- the global-order index of the partitions its creation times span (so rows
-- stream from the first one, nothing sorted, nothing joined); the columns as
-- segment_copy gives them. The exporter keeps the run's items only (by their
-- ids, segment_item_ids): the range may hold events the run did not select.
COPY (
SELECT {columns}
  FROM {schema}.events e
 WHERE (e.transaction_id, e.global_position) >= (%(first_tx)s::text::xid8, %(first_gp)s)
   AND (e.transaction_id, e.global_position) <= (%(last_tx)s::text::xid8, %(last_gp)s)
   AND e.created_at BETWEEN %(min_created_at)s AND %(max_created_at)s
 ORDER BY e.transaction_id, e.global_position
) TO STDOUT;

-- name: segment_item_ids
-- The events a segment holds (the run's items), as the 32 hex digits the
-- export's rows start with.
COPY (SELECT encode(uuid_send(event_id), 'hex') FROM {schema}.archive_items
       WHERE run_id = %(run_id)s AND segment_no = %(segment_no)s) TO STDOUT;

-- name: export_range_settings
-- For segment_range_copy: the ordered index scans, never a sort of the range.
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL enable_sort = off;
SET LOCAL max_parallel_workers_per_gather = 0;
SET LOCAL bytea_output = 'hex';

-- name: segment_copy
-- Fast export (fastexport.py): the events of a segment, in the global order, as
-- the lines of segment format 2: COPY's text form of segment_columns. Only the
-- rows are sorted (OFFSET 0 keeps the subquery
-- apart): the columns are formatted as the rows stream out.
COPY (
SELECT {columns}
  FROM (SELECT e.* FROM {schema}.archive_items i
          JOIN {schema}.events e ON e.event_id = i.event_id AND e.created_at = i.created_at
         WHERE i.run_id = %(run_id)s AND i.segment_no = %(segment_no)s
         ORDER BY e.transaction_id, e.global_position OFFSET 0) e
) TO STDOUT;

-- name: analyze_items
-- After planning: the planner then joins a segment's items to the events with a
-- hash join instead of one index probe per event.
ANALYZE {schema}.archive_items;

-- name: catalog_segment_ranges
-- Readers across tiers (tiers.py): every cataloged segment with its range in
-- the global order ("tx:pos" of its first and last event).
SELECT DISTINCT c.run_id::text AS run_id, c.segment_no, r.target_url, s.data_path, s.sha256,
       s.raw_bytes, s.event_count, s.first_position, s.last_position
  FROM {schema}.archive_catalog c
  JOIN {schema}.archive_runs r ON r.run_id = c.run_id
  JOIN {schema}.archive_segments s ON s.run_id = c.run_id AND s.segment_no = c.segment_no
 ORDER BY s.first_position;

-- name: guard_plan
-- Snapshot guard batches of an archive job (guard.py plan_guard): what
-- guard_candidates finds, but also before the run's segments are exported: the
-- last archived position of each stream comes from the catalog for the
-- segments cataloged already and from the run's items (whose events are all
-- still in the store) for the others.
WITH archived AS (
    SELECT c.stream_id, max(c.last_position) AS last_position
      FROM {schema}.archive_catalog c
     WHERE c.run_id = %(run_id)s
     GROUP BY c.stream_id
    UNION ALL
    SELECT e.stream_id, max(e.stream_position)
      FROM {schema}.archive_items i
      JOIN {schema}.events e ON e.event_id = i.event_id AND e.created_at = i.created_at
     WHERE i.run_id = %(run_id)s
       AND NOT EXISTS (SELECT 1 FROM {schema}.archive_catalog c
                        WHERE c.run_id = i.run_id AND c.segment_no = i.segment_no)
     GROUP BY e.stream_id
)
SELECT s.aggregate_id, s.aggregate_type, max(a.last_position) AS archived_to, s.version
  FROM archived a
  JOIN {schema}.streams s ON s.stream_id = a.stream_id
 WHERE s.aggregate_type = ANY(%(types)s)
 GROUP BY s.aggregate_id, s.aggregate_type, s.version
HAVING s.version > max(a.last_position)
 ORDER BY s.aggregate_type, s.aggregate_id;
