-- Named queries of the access log, legal holds, consent and subject export
-- (core/privacy/access_log.py, holds.py, consent.py, export.py; migration 0010).
-- {schema} is the quoted schema; %(name)s are psycopg parameters.

-- name: lock_head
SELECT seq, chain_hash, head_mac FROM {schema}.event_access_log_head FOR UPDATE;

-- name: read_head
SELECT seq, chain_hash, head_mac FROM {schema}.event_access_log_head;

-- name: update_head
UPDATE {schema}.event_access_log_head
   SET seq = %(seq)s, chain_hash = %(chain_hash)s, head_mac = %(head_mac)s, updated_at = now();

-- name: unchained_rows
SELECT id, access_id, event_id, aggregate_id, subject_id, event_ids, subject_ids, accessor,
       access_type, purpose, host(ip_address) AS ip_address, user_agent, accessed_at,
       details::text AS details
  FROM {schema}.event_access_log
 WHERE seq IS NULL
 ORDER BY id;

-- name: chain_row
UPDATE {schema}.event_access_log SET seq = %(seq)s, chain_hash = %(chain_hash)s WHERE id = %(id)s;

-- name: insert_entries
-- A batch in one statement: each parameter is the array of one column's values
-- (event_ids as uuid[] literals, subject_ids and details as JSON text).
INSERT INTO {schema}.event_access_log
       (access_id, event_id, aggregate_id, subject_id, event_ids, subject_ids, accessor,
        access_type, purpose, ip_address, user_agent, accessed_at, details, seq, chain_hash)
SELECT r.access_id, r.event_id, r.aggregate_id, r.subject_id, r.event_ids::uuid[],
       ARRAY(SELECT jsonb_array_elements_text(r.subject_ids::jsonb)), r.accessor, r.access_type,
       r.purpose, r.ip_address::inet, r.user_agent, r.accessed_at, r.details::jsonb, r.seq,
       r.chain_hash
  FROM unnest(%(access_id)s::uuid[], %(event_id)s::uuid[], %(aggregate_id)s::text[],
              %(subject_id)s::text[], %(event_ids)s::text[], %(subject_ids)s::text[],
              %(accessor)s::text[], %(access_type)s::text[], %(purpose)s::text[],
              %(ip_address)s::text[], %(user_agent)s::text[], %(accessed_at)s::timestamptz[],
              %(details)s::text[], %(seq)s::bigint[], %(chain_hash)s::text[])
       AS r(access_id, event_id, aggregate_id, subject_id, event_ids, subject_ids, accessor,
            access_type, purpose, ip_address, user_agent, accessed_at, details, seq, chain_hash);

-- name: chained_rows
SELECT id, access_id, event_id, aggregate_id, subject_id, event_ids, subject_ids, accessor,
       access_type, purpose, host(ip_address) AS ip_address, user_agent, accessed_at,
       details::text AS details, seq, chain_hash
  FROM {schema}.event_access_log
 WHERE seq > %(after)s
 ORDER BY seq
 LIMIT %(limit)s;

-- name: unchained_ids
SELECT id FROM {schema}.event_access_log WHERE seq IS NULL ORDER BY id LIMIT 20;

-- name: count_unchained
SELECT count(*) FROM {schema}.event_access_log WHERE seq IS NULL;

-- name: subject_entries
SELECT access_id, seq, accessed_at, accessor, access_type, purpose, host(ip_address) AS ip_address,
       user_agent, subject_id, event_id, aggregate_id, event_ids, subject_ids, details
  FROM {schema}.event_access_log
 WHERE subject_id = %(subject)s OR subject_ids @> ARRAY[%(subject)s]::text[]
 ORDER BY seq NULLS LAST, id
 LIMIT %(limit)s;

-- name: subject_hold_lock
-- Taken by a hold being placed and by each batch of a forget job, in their
-- transactions: a batch either commits before the hold exists or sees it.
SELECT pg_advisory_xact_lock(hashtextextended('evstore-legal-hold:{schema}:' || %(subject)s, 0));

-- name: hold_subject
INSERT INTO {schema}.legal_holds (subject_id, reason, placed_by)
VALUES (%(subject)s, %(reason)s, %(by)s)
ON CONFLICT (subject_id) WHERE released_at IS NULL DO NOTHING
RETURNING hold_id, placed_at;

-- name: release_subject
UPDATE {schema}.legal_holds SET released_by = %(by)s, released_at = now()
 WHERE subject_id = %(subject)s AND released_at IS NULL
RETURNING hold_id, reason;

-- name: active_hold
SELECT hold_id, subject_id, reason, placed_by, placed_at
  FROM {schema}.legal_holds WHERE subject_id = %(subject)s AND released_at IS NULL;

-- name: active_holds
SELECT hold_id, subject_id, reason, placed_by, placed_at
  FROM {schema}.legal_holds WHERE released_at IS NULL ORDER BY placed_at;

-- name: held_subjects
SELECT subject_id FROM {schema}.legal_holds WHERE released_at IS NULL;

-- name: held_in_partition
-- d_types/d_roots/d_paths: the declared subject paths other than metadata.user_id
-- and aggregate_id (holds.subject_match).
SELECT count(*) FROM {partition} e
 WHERE e.metadata->>'user_id' = ANY(%(subjects)s) OR e.aggregate_id = ANY(%(subjects)s)
    OR EXISTS (SELECT 1 FROM unnest(%(d_types)s::text[], %(d_roots)s::text[], %(d_paths)s::text[])
                      AS d(event_type, root, path)
                WHERE d.event_type = e.event_type
                  AND (CASE WHEN d.root = 'data' THEN e.event_data ELSE e.metadata END)
                      #>> string_to_array(d.path, '.') = ANY(%(subjects)s));

-- name: record_consent
INSERT INTO {schema}.subject_consents (subject_id, purpose, granted, recorded_by, note)
VALUES (%(subject)s, %(purpose)s, %(granted)s, %(by)s, %(note)s)
RETURNING consent_id, recorded_at;

-- name: withdrawn_for_purpose
SELECT subject_id FROM (
    SELECT DISTINCT ON (subject_id) subject_id, granted
      FROM {schema}.subject_consents
     WHERE purpose = %(purpose)s
     ORDER BY subject_id, consent_id DESC
) latest WHERE NOT granted;

-- name: subject_consents
SELECT DISTINCT ON (purpose) purpose, granted, recorded_by, recorded_at, note
  FROM {schema}.subject_consents
 WHERE subject_id = %(subject)s
 ORDER BY purpose, consent_id DESC;

-- name: subject_event_rows
-- subjects: the one subject, as an array. Metadata user_id and aggregate id (indexed).
SELECT {columns}
  FROM {schema}.events e
 WHERE e.metadata->>'user_id' = ANY(%(subjects)s) OR e.aggregate_id = ANY(%(subjects)s)
 ORDER BY e.transaction_id, e.global_position;

-- name: subject_event_rows_declared
-- The declared subject paths other than those two (holds.subject_match): a scan of the
-- declared event types.
SELECT {columns}
  FROM {schema}.events e
 WHERE e.event_type = ANY(%(d_types)s)
   AND EXISTS (SELECT 1 FROM unnest(%(d_types)s::text[], %(d_roots)s::text[], %(d_paths)s::text[])
                  AS d(event_type, root, path)
                WHERE d.event_type = e.event_type
                  AND (CASE WHEN d.root = 'data' THEN e.event_data ELSE e.metadata END)
                      #>> string_to_array(d.path, '.') = ANY(%(subjects)s))
 ORDER BY e.transaction_id, e.global_position;

-- name: subject_snapshots
SELECT snapshot_id, aggregate_id, aggregate_type, aggregate_version, state_schema, state,
       compression, checksum, created_at
  FROM {schema}.event_snapshots
 WHERE aggregate_id = ANY(%(aggregates)s)
 ORDER BY aggregate_type, aggregate_id, aggregate_version;
