-- Named queries of evstore.core.privacy, loaded by Database.sql("privacy", name).
-- {schema} is the quoted schema; %(name)s are psycopg parameters. A data
-- subject's events are those whose metadata user_id or aggregate id is theirs.

-- name: subject_events_for_update
SELECT event_id, created_at, stream_id, stream_position, aggregate_id, aggregate_type,
       event_type, event_version, aggregate_version, event_data::text AS event_data, payload,
       metadata::text AS metadata, compression
  FROM {schema}.events
 WHERE (metadata->>'user_id' = %(user)s OR aggregate_id = %(user)s)
   FOR UPDATE;

-- name: anonymize_event
UPDATE {schema}.events
   SET event_data = %(data)s::jsonb, payload = NULL, metadata = %(metadata)s::jsonb,
       compression = 'none', checksum = %(checksum)s, original_size = %(size)s,
       stored_size = %(size)s, status = 'anonymized'
 WHERE event_id = %(event_id)s AND created_at = %(created_at)s;

-- name: delete_subject_events
DELETE FROM {schema}.events
 WHERE (metadata->>'user_id' = %(user)s OR aggregate_id = %(user)s);

-- name: delete_subject_snapshots
DELETE FROM {schema}.event_snapshots WHERE aggregate_id = %(user)s;

-- name: log_access
INSERT INTO {schema}.event_access_log (subject_id, accessor, action, purpose, details)
VALUES (%(subject)s, %(accessor)s, %(action)s, %(purpose)s, %(details)s::jsonb);
