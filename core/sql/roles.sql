-- Least-privilege roles of one store's schema (evstore.core.roles; docs/security.md).
-- {schema} is the quoted schema. {role}, {owner}, {writer}, {reader}, {worker},
-- {privacy} and {roles} are quoted role names; {rolname} is a role name as a string
-- literal; {options} is LOGIN or NOLOGIN; {verifier} is a SCRAM-SHA-256 verifier
-- as a string literal (the password itself never reaches the server or a log).
-- Every grant below is what a component's statements in core/sql/*.sql need,
-- and nothing more; "ALL" is used only for revoking.

-- name: create_role
DO $evstore_roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {rolname}) THEN
        CREATE ROLE {role} {options} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$evstore_roles$;

-- name: set_password
ALTER ROLE {role} PASSWORD {verifier};

-- name: revoke_all
-- Start from nothing, so that applying again after a grant was removed from
-- this file takes it away. Functions are executable by PUBLIC by default: a
-- SECURITY DEFINER function must not be.
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC, {roles};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM PUBLIC, {roles};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM PUBLIC, {roles};
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC, {roles};
GRANT USAGE ON SCHEMA {schema} TO {roles};
-- Every component checks the schema's migration before it starts (open_store).
GRANT SELECT ON {schema}.schema_migrations TO {roles};

-- name: grant_database
-- CONNECT for every role and TEMP for the worker (archive planning and restore
-- use temporary tables). PUBLIC has both by default; granted here for
-- databases where an administrator revoked them, when we may.
DO $evstore_roles$
BEGIN
    IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO {roles}', current_database());
    END IF;
    IF has_database_privilege(current_database(), 'TEMPORARY WITH GRANT OPTION') THEN
        EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO {worker}', current_database());
    END IF;
END
$evstore_roles$;

-- name: grant_writer
-- Append (store.sql: append_exact, create_stream, advance_stream,
-- insert_events_values, copy_events, allocate_positions, remember_event_type)
-- and read (read_stream through stream_events(), read_all through write_horizon(),
-- stream_head, known_event_types). A stream's row moves only its version and
-- its first/last event times. The events_notify trigger runs as the writer and
-- looks at live listeners (two columns of consumer_members). A new month's
-- partition is created by the owner's SECURITY DEFINER function; event_index is
-- kept by a SECURITY DEFINER trigger, so the writer only reads it.
GRANT SELECT, INSERT ON {schema}.events TO {role};
GRANT SELECT, INSERT ON {schema}.streams TO {role};
GRANT UPDATE (version, updated_at, first_event_at, last_event_at) ON {schema}.streams TO {role};
GRANT SELECT, INSERT ON {schema}.event_types TO {role};
GRANT SELECT ON {schema}.event_index TO {role};
GRANT USAGE ON SEQUENCE {schema}.events_global_position_seq TO {role};
GRANT SELECT (listening, expires_at) ON {schema}.consumer_members TO {role};
GRANT EXECUTE ON FUNCTION {schema}.create_month_partition(date) TO {role};
GRANT EXECUTE ON FUNCTION {schema}.write_horizon() TO {role};
GRANT EXECUTE ON FUNCTION {schema}.stream_events(text, bigint, bigint, boolean) TO {role};
-- The access log (issue 11, privacy_log.sql): every component that reads personal data
-- appends chained entries (insert_entry, under the head's lock) and reads the withdrawn
-- consents and the holds; it never reads the log itself.
GRANT INSERT ON {schema}.event_access_log TO {role};
GRANT USAGE ON SEQUENCE {schema}.event_access_log_id_seq TO {role};
GRANT SELECT, UPDATE ON {schema}.event_access_log_head TO {role};
GRANT SELECT ON {schema}.subject_consents TO {role};
GRANT SELECT ON {schema}.legal_holds TO {role};
-- Per-subject encryption (issue 10, privacy.sql: keys_get_or_create; store.sql
-- append_blind_cte / insert_blind_cte): a subject's data key is read or made, the
-- append writes its blind-index entries.
GRANT SELECT, INSERT ON {schema}.subject_keys TO {role};
GRANT INSERT ON {schema}.blind_index TO {role};
-- Read-through of archived history (issue 13, archive.sql catalog_*): read_stream
-- looks up which archived segment holds a stream's missing positions.
GRANT SELECT ON {schema}.archive_catalog TO {role};
GRANT SELECT ON {schema}.archive_runs TO {role};
GRANT SELECT ON {schema}.archive_segments TO {role};
-- The query cache's check (query.sql events_between): when a subject was last forgotten.
GRANT SELECT (forgotten_at) ON {schema}.forgotten_subjects TO {role};

-- name: grant_reader
-- Reads (store.sql reads, reader.sql) and a reader's own state: checkpoints
-- (ensure_shards, save_checkpoint, reset/delete) and consumer-group members and
-- shard leases (join_member, heartbeat, claim/renew/release, reap_members).
GRANT SELECT ON {schema}.events TO {role};
GRANT SELECT ON {schema}.streams TO {role};
GRANT SELECT ON {schema}.event_types TO {role};
GRANT SELECT ON {schema}.event_index TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.stream_checkpoints TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.consumer_members TO {role};
GRANT EXECUTE ON FUNCTION {schema}.write_horizon() TO {role};
GRANT EXECUTE ON FUNCTION {schema}.stream_events(text, bigint, bigint, boolean) TO {role};
-- The access log (issue 11, privacy_log.sql): every component that reads personal data
-- appends chained entries (insert_entry, under the head's lock) and reads the withdrawn
-- consents and the holds; it never reads the log itself.
GRANT INSERT ON {schema}.event_access_log TO {role};
GRANT USAGE ON SEQUENCE {schema}.event_access_log_id_seq TO {role};
GRANT SELECT, UPDATE ON {schema}.event_access_log_head TO {role};
GRANT SELECT ON {schema}.subject_consents TO {role};
GRANT SELECT ON {schema}.legal_holds TO {role};
-- Per-subject encryption (issue 10): reads open sealed values with the subjects'
-- data keys (keys_get) and look values up in the blind index (blind_lookup).
GRANT SELECT ON {schema}.subject_keys TO {role};
GRANT SELECT ON {schema}.blind_index TO {role};
-- Read-through of archived history (issue 13, archive.sql catalog_*): read_stream
-- looks up which archived segment holds a stream's missing positions.
GRANT SELECT ON {schema}.archive_catalog TO {role};
GRANT SELECT ON {schema}.archive_runs TO {role};
GRANT SELECT ON {schema}.archive_segments TO {role};
-- The query cache's check (query.sql events_between): when a subject was last forgotten.
GRANT SELECT (forgotten_at) ON {schema}.forgotten_subjects TO {role};

-- name: grant_worker
-- The job engine (jobs.sql, firings.sql: workers and the scheduler), replays
-- (replay.sql), snapshots (snapshots.sql), archive runs (archive.sql: planning,
-- export, and finalize's delete of archived rows under the privileged path) and
-- partition upkeep (the SECURITY DEFINER function). Not restore: it writes
-- history and is an operator's command, run with the owner's credential.
-- Identity columns need no sequence grant.
GRANT SELECT, DELETE ON {schema}.events TO {role};
GRANT SELECT ON {schema}.streams TO {role};
GRANT SELECT ON {schema}.event_types TO {role};
GRANT SELECT ON {schema}.event_index TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.jobs TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.job_batches TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.job_errors TO {role};
GRANT SELECT, INSERT, UPDATE ON {schema}.schedule_firings TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.event_snapshots TO {role};
GRANT SELECT, INSERT, UPDATE ON {schema}.snapshot_load_stats TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.archive_runs TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.archive_segments TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.archive_items TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.archive_catalog TO {role};
GRANT EXECUTE ON FUNCTION {schema}.create_month_partition(date) TO {role};
GRANT EXECUTE ON FUNCTION {schema}.write_horizon() TO {role};
GRANT EXECUTE ON FUNCTION {schema}.stream_events(text, bigint, bigint, boolean) TO {role};
-- The access log (issue 11, privacy_log.sql): every component that reads personal data
-- appends chained entries (insert_entry, under the head's lock) and reads the withdrawn
-- consents and the holds; it never reads the log itself.
GRANT INSERT ON {schema}.event_access_log TO {role};
GRANT USAGE ON SEQUENCE {schema}.event_access_log_id_seq TO {role};
GRANT SELECT, UPDATE ON {schema}.event_access_log_head TO {role};
GRANT SELECT ON {schema}.subject_consents TO {role};
GRANT SELECT ON {schema}.legal_holds TO {role};
-- Per-subject encryption (issue 10): replays and snapshot builds open sealed values.
GRANT SELECT ON {schema}.subject_keys TO {role};

-- name: grant_privacy
-- Forgetting a subject (privacy.sql): lock and rewrite or delete the subject's
-- events under the privileged path, delete their snapshots, and record it.
GRANT SELECT, UPDATE, DELETE ON {schema}.events TO {role};
GRANT SELECT ON {schema}.event_index TO {role};
GRANT SELECT, DELETE ON {schema}.event_snapshots TO {role};
GRANT INSERT ON {schema}.event_access_log TO {role};
GRANT USAGE ON SEQUENCE {schema}.event_access_log_id_seq TO {role};
GRANT SELECT, UPDATE ON {schema}.event_access_log_head TO {role};
GRANT SELECT ON {schema}.subject_consents TO {role};
GRANT SELECT ON {schema}.legal_holds TO {role};
-- Forget (issue 10, privacy.sql; core/privacy/forget*.py): a forget job run by this
-- role (cleanup_gdpr_data, evstore privacy forget --here): its job rows, the
-- subject's keys, tombstone, blind-index entries, events, snapshots, archive
-- segments (the rewrite records their new hashes), and the audit row.
GRANT SELECT, INSERT, UPDATE ON {schema}.jobs TO {role};
GRANT SELECT, INSERT, UPDATE ON {schema}.job_batches TO {role};
GRANT SELECT, INSERT ON {schema}.job_errors TO {role};
GRANT SELECT, DELETE ON {schema}.subject_keys TO {role};
GRANT SELECT, DELETE ON {schema}.blind_index TO {role};
GRANT SELECT, INSERT ON {schema}.forgotten_subjects TO {role};
GRANT SELECT, INSERT, UPDATE ON {schema}.forget_requests TO {role};
GRANT SELECT ON {schema}.archive_runs TO {role};
GRANT SELECT, UPDATE ON {schema}.archive_segments TO {role};
GRANT SELECT ON {schema}.archive_catalog TO {role};
GRANT SELECT ON {schema}.event_types TO {role};

-- name: role_attributes
-- The evstore roles that exist, with what would make them more than least privilege.
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin
  FROM pg_catalog.pg_roles WHERE rolname = ANY(%(names)s);

-- name: connecting_user
-- Who we are and what we may do: create roles, own the schema.
SELECT current_user AS username, r.rolsuper AS superuser, r.rolcreaterole AS createrole,
       pg_catalog.pg_get_userbyid(n.nspowner) AS schema_owner
  FROM pg_catalog.pg_roles r
  LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = %(schema)s
 WHERE r.rolname = current_user;

-- name: begin
-- The printed script runs as one transaction (psql -f): all of it or nothing.
BEGIN;

-- name: commit
COMMIT;
