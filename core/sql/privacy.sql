-- Named queries of evstore.core.privacy, loaded by Database.sql("privacy", name).
-- {schema} is the quoted schema; %(name)s are psycopg parameters. Subjects are
-- found by their declared subject path (core/privacy/declarations.py), one
-- event type (and aggregate type) at a time; refs are keyed HMACs of subject ids.

-- name: subject_events_for_update
-- {subject} is one of: aggregate_id, metadata #>> %(path)s, event_data #>> %(path)s.
SELECT event_id, created_at, stream_id, stream_position, aggregate_id, aggregate_type,
       event_type, event_version, aggregate_version, event_data::text AS event_data, payload,
       metadata::text AS metadata, compression, original_size
  FROM {schema}.events
 WHERE event_type = %(event_type)s
   AND (%(aggregate_type)s::text IS NULL OR aggregate_type = %(aggregate_type)s)
   AND event_version >= %(version)s AND event_version < %(next_version)s
   AND {subject} = %(subject)s
 ORDER BY global_position
   FOR UPDATE;

-- name: packed_events_for_update
-- Compressed events of a type whose subject is inside the (packed) data.
SELECT event_id, created_at, stream_id, stream_position, aggregate_id, aggregate_type,
       event_type, event_version, aggregate_version, event_data::text AS event_data, payload,
       metadata::text AS metadata, compression, original_size
  FROM {schema}.events
 WHERE event_type = %(event_type)s
   AND (%(aggregate_type)s::text IS NULL OR aggregate_type = %(aggregate_type)s)
   AND event_version >= %(version)s AND event_version < %(next_version)s
   AND payload IS NOT NULL
 ORDER BY global_position
   FOR UPDATE;

-- name: anonymize_event
UPDATE {schema}.events
   SET event_data = %(data)s::jsonb, payload = NULL, metadata = %(metadata)s::jsonb,
       compression = 'none', checksum = %(checksum)s, original_size = %(size)s,
       stored_size = %(size)s, status = 'anonymized'
 WHERE event_id = %(event_id)s AND created_at = %(created_at)s;

-- name: delete_snapshots_of
DELETE FROM {schema}.event_snapshots s
 USING (SELECT unnest(%(types)s::text[]) AS aggregate_type,
               unnest(%(ids)s::text[]) AS aggregate_id) a
 WHERE s.aggregate_type = a.aggregate_type AND s.aggregate_id = a.aggregate_id;

-- name: keys_table
-- The data-key table in the database of EVENT_STORE_KEYS_URL (the main
-- database gets it from migration 0008).
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.subject_keys (
    key_ref      text        PRIMARY KEY,
    master_kid   text        NOT NULL,
    wrapped_key  bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);

-- name: keys_get
SELECT key_ref, master_kid, wrapped_key FROM {schema}.subject_keys
 WHERE key_ref = ANY(%(refs)s::text[]);

-- name: keys_get_or_create
-- One round trip: the candidate keys are inserted where none exists; the keys
-- that exist are returned (a key a concurrent writer committed meanwhile is
-- read again by the caller).
WITH candidate AS (
    SELECT * FROM unnest(%(refs)s::text[], %(kids)s::text[], %(wrapped)s::bytea[])
                  AS c(key_ref, master_kid, wrapped_key)
), inserted AS (
    INSERT INTO {schema}.subject_keys (key_ref, master_kid, wrapped_key)
    SELECT key_ref, master_kid, wrapped_key FROM candidate
    ON CONFLICT (key_ref) DO NOTHING
    RETURNING key_ref, master_kid, wrapped_key
)
SELECT key_ref, master_kid, wrapped_key FROM inserted
UNION ALL
SELECT k.key_ref, k.master_kid, k.wrapped_key FROM {schema}.subject_keys k
 WHERE k.key_ref = ANY(%(refs)s::text[])
   AND k.key_ref NOT IN (SELECT key_ref FROM inserted);

-- name: keys_destroy
DELETE FROM {schema}.subject_keys WHERE key_ref = ANY(%(refs)s::text[]);

-- name: keys_to_rewrap
SELECT key_ref, master_kid, wrapped_key FROM {schema}.subject_keys
 WHERE master_kid <> %(kid)s
 ORDER BY key_ref
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: keys_rewrap
UPDATE {schema}.subject_keys
   SET master_kid = %(kid)s, wrapped_key = %(wrapped)s, rewrapped_at = now()
 WHERE key_ref = %(ref)s;

-- name: keys_count
SELECT count(*), count(*) FILTER (WHERE master_kid = %(kid)s) FROM {schema}.subject_keys;

-- name: blind_lookup
SELECT DISTINCT b.event_id
  FROM {schema}.blind_index b
  JOIN {schema}.event_index i ON i.event_id = b.event_id
 WHERE b.field = %(field)s AND b.digest = %(digest)s;

-- name: blind_forget
DELETE FROM {schema}.blind_index WHERE subject_ref = ANY(%(refs)s::text[]);

-- name: tombstone_insert
INSERT INTO {schema}.forgotten_subjects (subject_ref, job_id)
SELECT unnest(%(refs)s::text[]), %(job_id)s
ON CONFLICT (subject_ref) DO NOTHING;

-- name: tombstones_among
SELECT subject_ref FROM {schema}.forgotten_subjects WHERE subject_ref = ANY(%(refs)s::text[]);

-- name: tombstone_count
SELECT count(*) FROM {schema}.forgotten_subjects;

-- name: request_insert
INSERT INTO {schema}.forget_requests (subject_ref, job_id, requested_by)
VALUES (%(ref)s, %(job_id)s, %(by)s)
RETURNING request_id;

-- name: request_add
UPDATE {schema}.forget_requests
   SET counts = (SELECT jsonb_object_agg(k, coalesce((counts->>k)::bigint, 0)
                                          + coalesce((%(add)s::jsonb->>k)::bigint, 0))
                   FROM (SELECT jsonb_object_keys(counts || %(add)s::jsonb) AS k) keys)
 WHERE request_id = %(request_id)s;

-- name: request_finish
UPDATE {schema}.forget_requests SET finished_at = now()
 WHERE request_id = %(request_id)s AND finished_at IS NULL
RETURNING counts;

-- name: request_get
SELECT request_id, subject_ref, job_id, requested_by, requested_at, finished_at, counts
  FROM {schema}.forget_requests WHERE request_id = %(request_id)s;

-- name: requests_recent
SELECT request_id, subject_ref, job_id, requested_by, requested_at, finished_at, counts
  FROM {schema}.forget_requests ORDER BY request_id DESC LIMIT %(limit)s;

-- name: archived_segments
-- Every segment uploaded to a target, of every run (each run has its target).
SELECT r.run_id::text AS run_id, r.target_url, r.policy, r.status AS run_status,
       s.segment_no, s.manifest_path, s.data_path, s.sha256
  FROM {schema}.archive_runs r
  JOIN {schema}.archive_segments s ON s.run_id = r.run_id
 WHERE s.sha256 IS NOT NULL AND s.manifest_path IS NOT NULL
 ORDER BY r.created_at, s.segment_no;

-- name: segment_rewritten
UPDATE {schema}.archive_segments
   SET sha256 = %(sha256)s, raw_bytes = %(raw_bytes)s, stored_bytes = %(stored_bytes)s
 WHERE run_id = %(run_id)s::uuid AND segment_no = %(number)s;

-- name: event_types_seen
SELECT event_type FROM {schema}.event_types ORDER BY event_type;

-- name: sample_events
SELECT event_type, event_data::text AS event_data, metadata::text AS metadata
  FROM {schema}.events
 WHERE event_type = %(event_type)s AND event_data IS NOT NULL
 ORDER BY global_position DESC
 LIMIT %(limit)s;

-- name: events_by_id
SELECT {columns} FROM {schema}.events WHERE event_id = ANY(%(ids)s::uuid[]) ORDER BY global_position;

-- name: request_job
UPDATE {schema}.forget_requests SET job_id = %(job_id)s
 WHERE request_id = %(request_id)s AND job_id IS NULL;

-- name: job_forget_subject
-- A finished forget job keeps no subject id: only the request (keyed ref) it served.
UPDATE {schema}.jobs SET params = params - 'subject' WHERE job_id = %(job_id)s;

-- name: lock_run
-- One forget at a time rewrites a run's segments (held to the batch's commit).
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0));

-- name: demo_texts
-- The stored text of every event (the demo searches it for forgotten strings).
SELECT coalesce(event_data::text, '') || ' ' || metadata::text FROM {schema}.events;
