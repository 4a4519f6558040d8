-- Named queries of aggregate snapshots (evstore.core.snapshots: store, policy, stats).
-- {schema} is the quoted schema.

-- name: aggregate_streams
SELECT stream_id, version FROM {schema}.streams
 WHERE aggregate_type = %(aggregate_type)s AND aggregate_id = %(aggregate_id)s
 ORDER BY stream_id;

-- name: latest_snapshot
SELECT snapshot_id, aggregate_version, state_schema, state, compression, checksum,
       original_size, stored_size, created_at
  FROM {schema}.event_snapshots
 WHERE aggregate_type = %(aggregate_type)s AND aggregate_id = %(aggregate_id)s
   AND state_schema = %(state_schema)s
 ORDER BY aggregate_version DESC
 LIMIT 1;

-- name: insert_snapshot
-- A snapshot of a newer state schema replaces one of an older schema at the
-- same version; otherwise the first one written for a version stays.
INSERT INTO {schema}.event_snapshots
       (aggregate_id, aggregate_type, aggregate_version, state_schema, state, compression,
        checksum, original_size, stored_size)
VALUES (%(aggregate_id)s, %(aggregate_type)s, %(aggregate_version)s, %(state_schema)s,
        %(state)s, %(compression)s, %(checksum)s, %(original_size)s, %(stored_size)s)
ON CONFLICT (aggregate_type, aggregate_id, aggregate_version) DO UPDATE
   SET state_schema = excluded.state_schema, state = excluded.state,
       compression = excluded.compression, checksum = excluded.checksum,
       original_size = excluded.original_size, stored_size = excluded.stored_size,
       created_at = now()
 WHERE {schema}.event_snapshots.state_schema < excluded.state_schema
RETURNING snapshot_id, created_at;

-- name: prune_snapshots
-- Keep the newest %(keep)s snapshots of the aggregate's current state schema;
-- those of other schemas are useless to this code and go too.
DELETE FROM {schema}.event_snapshots
 WHERE aggregate_type = %(aggregate_type)s AND aggregate_id = %(aggregate_id)s
   AND (state_schema <> %(state_schema)s
        OR aggregate_version < (
            SELECT min(aggregate_version) FROM (
                SELECT aggregate_version FROM {schema}.event_snapshots
                 WHERE aggregate_type = %(aggregate_type)s AND aggregate_id = %(aggregate_id)s
                   AND state_schema = %(state_schema)s
                 ORDER BY aggregate_version DESC LIMIT %(keep)s) AS newest));

-- name: stream_events_after
-- Through stream_events(): only the month partitions that hold the stream.
SELECT {columns} FROM {schema}.stream_events(%(stream_id)s, %(after)s + 1, NULL, false);

-- name: due_aggregates
-- Aggregates of one type past a threshold: at least %(min_new)s events since
-- their latest usable snapshot, at least %(min_events)s events in all, and
-- (when %(older_than)s is set) a latest snapshot older than that, or none.
SELECT s.aggregate_id, s.version, coalesce(snap.aggregate_version, 0) AS snapshot_version,
       snap.created_at AS snapshot_at
  FROM {schema}.streams AS s
  LEFT JOIN LATERAL (
        SELECT aggregate_version, created_at FROM {schema}.event_snapshots AS e
         WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
           AND e.state_schema = %(state_schema)s
         ORDER BY aggregate_version DESC
         LIMIT 1) AS snap ON true
 WHERE s.aggregate_type = %(aggregate_type)s
   AND s.aggregate_id >= %(first)s::text
   AND (%(after)s::text IS NULL OR s.aggregate_id > %(after)s::text)
   AND (%(upto)s::text IS NULL OR s.aggregate_id <= %(upto)s::text)
   AND s.version >= %(min_events)s
   AND s.version - coalesce(snap.aggregate_version, 0) >= %(min_new)s
   AND (%(older_than)s::timestamptz IS NULL OR snap.created_at IS NULL
        OR snap.created_at < %(older_than)s::timestamptz)
 ORDER BY s.aggregate_id
 LIMIT %(limit)s;

-- name: load_stats
SELECT aggregate_type, loads, events_applied, ms_per_event, base_ms, updated_at
  FROM {schema}.snapshot_load_stats
 WHERE %(aggregate_type)s::text IS NULL OR aggregate_type = %(aggregate_type)s::text;

-- name: record_load_stats
-- Blend the new measurements in, weighting the past by at most 1000 loads so
-- that the estimate follows changes.
INSERT INTO {schema}.snapshot_load_stats AS old
       (aggregate_type, loads, events_applied, ms_per_event, base_ms)
VALUES (%(aggregate_type)s, %(loads)s, %(events)s, %(ms_per_event)s, %(base_ms)s)
ON CONFLICT (aggregate_type) DO UPDATE
   SET ms_per_event = (old.ms_per_event * least(old.loads, 1000) + excluded.ms_per_event * excluded.loads)
                      / (least(old.loads, 1000) + excluded.loads),
       base_ms = (old.base_ms * least(old.loads, 1000) + excluded.base_ms * excluded.loads)
                 / (least(old.loads, 1000) + excluded.loads),
       loads = old.loads + excluded.loads,
       events_applied = old.events_applied + excluded.events_applied,
       updated_at = now();

-- name: snapshot_stats
SELECT aggregate_type, count(*) AS snapshots, count(DISTINCT aggregate_id) AS aggregates,
       coalesce(sum(original_size), 0) AS original_bytes,
       coalesce(sum(stored_size), 0) AS stored_bytes, max(created_at) AS latest,
       array_agg(DISTINCT compression) AS codecs, array_agg(DISTINCT state_schema) AS state_schemas
  FROM {schema}.event_snapshots
 GROUP BY aggregate_type
 ORDER BY aggregate_type;

-- name: aggregates_per_type
SELECT aggregate_type, count(*) AS aggregates, coalesce(sum(version), 0) AS events
  FROM {schema}.streams
 GROUP BY aggregate_type;
