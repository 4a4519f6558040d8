-- The whole evstore schema as the migrations leave it (0001 .. 0006), in one
-- readable file. {schema} stands for the quoted schema name (EVENT_STORE_SCHEMA).
--
-- This file is a reference: the code never applies it. `evstore init`
-- (core/migrations.py) applies core/sql/migrations/NNNN_*.sql in order and
-- records each one in schema_migrations. tests/integration/core/
-- test_schema_matches_migrations.py builds one schema from the migrations and one
-- from this file and compares their catalogs, so a new migration must be
-- mirrored here (and the other way round).
--
-- Not here, on purpose: the month partitions of events (events_YYYY_MM), which
-- the store creates at run time (create_partitions_ahead in
-- core/store/partitions.py), and the rows of schema_migrations.
--
-- Column order is the order the migrations produce (columns added by a later
-- ALTER TABLE come last), so `SELECT *` reads the same from both.
--
-- Words: a *partition* is a month partition of events; a *shard* is one of the
-- shard_count hash slices (md5(stream_id)) a consumer group splits streams into.


-- ---------------------------------------------------------------------------
-- Migrations bookkeeping (core/migrations.py creates it before migration 1).
-- ---------------------------------------------------------------------------

CREATE TABLE {schema}.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);


-- ---------------------------------------------------------------------------
-- The store (core/store/, core/sql/store.sql): streams, events, event types.
-- ---------------------------------------------------------------------------

-- One row per stream; `version` is the stream's last aggregate version. An
-- append locks this row and checks the expected version (optimistic
-- concurrency) before inserting events.
CREATE TABLE {schema}.streams (
    stream_id       text        PRIMARY KEY,
    aggregate_id    text        NOT NULL,
    aggregate_type  text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The times of the stream's first and last events: a stream read opens
    -- only the month partitions between them (stream_events below).
    first_event_at  timestamptz,
    last_event_at   timestamptz
);
CREATE INDEX streams_aggregate_idx ON {schema}.streams (aggregate_type, aggregate_id);

-- Not owned by a column: events' default draws from it.
CREATE SEQUENCE {schema}.events_global_position_seq AS bigint;

-- One partition a month on created_at (the event's own time). The global read
-- order is (transaction_id, global_position): see docs/global-order.md.
-- Exactly one of event_data (plain JSON) and payload (compressed and/or
-- encrypted bytes) is set.
CREATE TABLE {schema}.events (
    event_id           uuid        NOT NULL,
    aggregate_id       text        NOT NULL,
    aggregate_type     text        NOT NULL,
    event_type         text        NOT NULL,
    event_version      integer     NOT NULL DEFAULT 1,
    aggregate_version  bigint      NOT NULL,
    stream_id          text        NOT NULL,
    stream_position    bigint      NOT NULL,
    global_position    bigint      NOT NULL DEFAULT nextval('{schema}.events_global_position_seq'),
    transaction_id     xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_data         jsonb,
    payload            bytea,
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL,
    stored_at          timestamptz NOT NULL DEFAULT now(),
    status             text        NOT NULL DEFAULT 'active',
    compression        text        NOT NULL DEFAULT 'none',
    encryption         text        NOT NULL DEFAULT 'none',
    checksum           text        NOT NULL,
    original_size      integer     NOT NULL,
    stored_size        integer     NOT NULL,
    PRIMARY KEY (event_id, created_at),
    CONSTRAINT events_one_payload CHECK ((event_data IS NULL) <> (payload IS NULL))
) PARTITION BY RANGE (created_at);

CREATE INDEX events_stream_idx ON {schema}.events (stream_id, stream_position);
CREATE INDEX events_order_idx ON {schema}.events (transaction_id, global_position);
CREATE INDEX events_global_idx ON {schema}.events (global_position);

-- Every event type ever appended: lets a filter with a typo fail loudly.
CREATE TABLE {schema}.event_types (
    event_type  text        PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now()
);


-- ---------------------------------------------------------------------------
-- Integrity (migration 0006; docs/security.md, docs/global-order.md): one row
-- per stored event in event_index (an event id once in the store, a position
-- once per stream), append-only triggers, month partitions created through a
-- SECURITY DEFINER function, the write horizon and month-pruned stream reads.
-- ---------------------------------------------------------------------------

CREATE TABLE {schema}.event_index (
    event_id         uuid        PRIMARY KEY,
    stream_id        text        NOT NULL,
    stream_position  bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT event_index_stream_position UNIQUE (stream_id, stream_position)
);

-- Every INSERT into events takes the store's append lock (shared; appends take
-- it before their transaction has an id, this is the safety net for other
-- writers) and indexes its rows. A conflicting id or position fails the INSERT.
CREATE FUNCTION {schema}.index_new_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('evstore-append:{schema}', 0));
    INSERT INTO {schema}.event_index (event_id, stream_id, stream_position, created_at)
    SELECT event_id, stream_id, stream_position, created_at FROM new_events;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_index AFTER INSERT ON {schema}.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.index_new_events();

-- Deleted events (forget, row-by-row archive) leave the index too.
CREATE FUNCTION {schema}.unindex_old_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM {schema}.event_index i USING old_events o
     WHERE i.event_id = o.event_id AND i.created_at = o.created_at;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_unindex AFTER DELETE ON {schema}.events
    REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.unindex_old_events();

CREATE FUNCTION {schema}.refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('evstore.rewrite', true), '') <> 'on' THEN
        RAISE EXCEPTION 'evstore events are append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'events change only through the store''s forget, archive and checksum-upgrade paths';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

-- Row triggers are cloned to every partition, so a statement on a partition
-- is refused too.
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_rewrite();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_rewrite();
CREATE TRIGGER event_index_append_only BEFORE UPDATE OR DELETE ON {schema}.event_index
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_rewrite();
CREATE TRIGGER event_index_no_truncate BEFORE TRUNCATE ON {schema}.event_index
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_rewrite();

-- The month partition holding `month` (any day of it); false when it existed.
CREATE FUNCTION {schema}.create_month_partition(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    name text := 'events_y' || to_char(first_day, 'YYYY') || 'm' || to_char(first_day, 'MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('evstore-partitions:{schema}', 0));
    IF to_regclass(format('{schema}.%I', name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE {schema}.%I PARTITION OF {schema}.events FOR VALUES FROM (%L) TO (%L)',
                   name, first_day::timestamp AT TIME ZONE 'UTC',
                   (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    RETURN true;
END
$$;

-- The horizon of the global order: every transaction below it that can write
-- events to this store has finished. A transaction can write events when its
-- session holds the store's append lock, which appends take before their
-- transaction has an id. Transactions of other databases, and idle ones that
-- never append here, do not hold the horizon back. Transactions running at
-- the snapshot that have finished by the time the locks are read are counted
-- (conservatively: they may have appended). See docs/global-order.md.
-- STABLE (migration 0012): it runs in the snapshot of the statement that calls it.
CREATE FUNCTION {schema}.write_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $$
    WITH snap AS MATERIALIZED (
        SELECT pg_current_snapshot() AS s
    ), key AS (
        SELECT hashtextextended('evstore-append:{schema}', 0) AS k
    ), locks AS MATERIALIZED (
        SELECT l.locktype, l.pid, l.transactionid::text::bigint AS x32
          FROM pg_catalog.pg_locks l, key
         WHERE l.granted
           AND ((l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock')
             OR (l.locktype = 'advisory' AND l.objsubid = 1
                 AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                    WHERE datname = current_database())
                 AND l.classid::text::bigint = ((key.k >> 32) & 4294967295)
                 AND l.objid::text::bigint = (key.k & 4294967295)))
    ), running AS (
        SELECT t.x32, EXISTS (SELECT 1 FROM locks a
                               WHERE a.locktype = 'advisory' AND a.pid = t.pid) AS appends
          FROM locks t WHERE t.locktype = 'transactionid'
    )
    SELECT least(pg_snapshot_xmax(snap.s),
                 (SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x
                   WHERE NOT EXISTS (SELECT 1 FROM running r
                                      WHERE r.x32 = x::text::bigint % 4294967296 AND NOT r.appends)))
      FROM snap
$$;

-- One stream's events from a position on (or back from it, newest first), at
-- most max_count (NULL: all). Only the month partitions between the stream's
-- first and last events are opened: the plan is made for these values each
-- time (force_custom_plan), so the others are pruned before they are touched.
CREATE FUNCTION {schema}.stream_events(p_stream_id text, p_from bigint, p_max_count bigint,
                                       p_backwards boolean)
RETURNS SETOF {schema}.events
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    first_at timestamptz;
    last_at timestamptz;
BEGIN
    SELECT s.first_event_at, s.last_event_at INTO first_at, last_at
      FROM {schema}.streams s WHERE s.stream_id = p_stream_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF first_at IS NULL THEN
        first_at := '-infinity';
        last_at := 'infinity';
    END IF;
    IF p_backwards THEN
        RETURN QUERY SELECT * FROM {schema}.events e
         WHERE e.stream_id = p_stream_id AND e.stream_position <= p_from
           AND e.created_at >= first_at AND e.created_at <= last_at
         ORDER BY e.stream_position DESC LIMIT p_max_count;
    ELSE
        RETURN QUERY SELECT * FROM {schema}.events e
         WHERE e.stream_id = p_stream_id AND e.stream_position >= p_from
           AND e.created_at >= first_at AND e.created_at <= last_at
         ORDER BY e.stream_position LIMIT p_max_count;
    END IF;
END
$$;


-- ---------------------------------------------------------------------------
-- Snapshots (core/snapshots/, core/sql/snapshots.sql).
-- ---------------------------------------------------------------------------

CREATE TABLE {schema}.event_snapshots (
    snapshot_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_id       text        NOT NULL,
    aggregate_type     text        NOT NULL,
    aggregate_version  bigint      NOT NULL,
    state_schema       integer     NOT NULL DEFAULT 1,
    state              bytea       NOT NULL,
    compression        text        NOT NULL DEFAULT 'zstd',
    checksum           text        NOT NULL,
    original_size      integer     NOT NULL,
    stored_size        integer     NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

-- Measured aggregate load costs per aggregate type (the ADAPTIVE strategy).
CREATE TABLE {schema}.snapshot_load_stats (
    aggregate_type  text             PRIMARY KEY,
    loads           bigint           NOT NULL DEFAULT 0,
    events_applied  bigint           NOT NULL DEFAULT 0,
    ms_per_event    double precision NOT NULL,
    base_ms         double precision NOT NULL,
    updated_at      timestamptz      NOT NULL DEFAULT now()
);


-- ---------------------------------------------------------------------------
-- Readers and consumer groups (core/reader/, core/sql/reader.sql).
-- ---------------------------------------------------------------------------

-- A checkpoint is one row per (name, group, shard). A reader without a group
-- has one shard (0). A consumer group splits streams into shard_count shards
-- by md5(stream_id); each shard row is also that shard's lease: only its
-- owner, while the lease lasts (lease_expires_at), moves its checkpoint.
-- The checkpoint itself is the last (transaction_id, global_position) read.
CREATE TABLE {schema}.stream_checkpoints (
    checkpoint_name   text        NOT NULL,
    consumer_group    text        NOT NULL DEFAULT '',
    transaction_id    bigint      NOT NULL DEFAULT 0,
    global_position   bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    shard             integer     NOT NULL DEFAULT 0,
    shard_count       integer     NOT NULL DEFAULT 1,
    owner             text,
    lease_expires_at  timestamptz,
    events_processed  bigint      NOT NULL DEFAULT 0,
    event_types       text[],
    aggregate_types   text[],
    PRIMARY KEY (checkpoint_name, consumer_group, shard),
    CONSTRAINT stream_checkpoints_shard_range CHECK (shard >= 0 AND shard < shard_count)
);

-- The live members of each group, renewed by heartbeats. A member whose
-- expires_at has passed is dead: anyone removes it and frees its shards.
CREATE TABLE {schema}.consumer_members (
    checkpoint_name  text        NOT NULL,
    consumer_group   text        NOT NULL,
    member_id        text        NOT NULL,
    host             text        NOT NULL,
    identity         text        NOT NULL,
    pid              integer     NOT NULL,
    listening        boolean     NOT NULL DEFAULT false,
    started_at       timestamptz NOT NULL DEFAULT now(),
    heartbeat_at     timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    events_processed bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (checkpoint_name, consumer_group, member_id)
);

-- Live readers LISTEN on 'evstore_events_<schema>'. An insert statement
-- notifies only while some live reader listens: NOTIFY takes a database-wide
-- lock at commit, so writers pay for it only when someone is waiting.
CREATE FUNCTION {schema}.evstore_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {schema}.consumer_members
                WHERE listening AND expires_at > now()) THEN
        PERFORM pg_notify('evstore_events_' || TG_TABLE_SCHEMA, '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.evstore_notify_events();


-- ---------------------------------------------------------------------------
-- Privacy (core/privacy/): what was done with a data subject's events.
-- ---------------------------------------------------------------------------

CREATE TABLE {schema}.event_access_log (
    id           bigserial   PRIMARY KEY,
    subject_id   text,
    accessor     text        NOT NULL,
    action       text        NOT NULL,
    purpose      text,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_access_log_subject_idx ON {schema}.event_access_log (subject_id, occurred_at);


-- ---------------------------------------------------------------------------
-- The job engine (core/jobs/, core/sql/jobs.sql). See docs/jobs.md for the
-- life of a job and why a batch runs at most once.
-- ---------------------------------------------------------------------------

-- One background job (a replay, a snapshot build, an archive run, ...). Its
-- status and counts are derived from its batches and refreshed, under this
-- row's lock, in the same transaction as every batch outcome.
CREATE TABLE {schema}.jobs (
    job_id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                 text        NOT NULL,
    params               jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status               text        NOT NULL DEFAULT 'starting'
        CHECK (status IN ('starting', 'queued', 'running', 'cancelling',
                          'succeeded', 'failed', 'cancelled')),
    created_by           text,
    items_total          bigint      NOT NULL DEFAULT 0,
    items_done           bigint      NOT NULL DEFAULT 0,
    items_failed         bigint      NOT NULL DEFAULT 0,
    batches_total        integer     NOT NULL DEFAULT 0,
    batches_succeeded    integer     NOT NULL DEFAULT 0,
    batches_failed       integer     NOT NULL DEFAULT 0,
    batches_running      integer     NOT NULL DEFAULT 0,
    batches_cancelled    integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    cancel_requested_at  timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_status_idx ON {schema}.jobs (status, job_id);
CREATE INDEX jobs_kind_idx ON {schema}.jobs (kind, job_id);

-- One batch: one Dramatiq message. `params` says what it covers (kind-specific,
-- e.g. the streams of a replay batch); `attempts` counts the runs that started.
-- A batch's effects in PostgreSQL commit in the transaction that sets it
-- 'succeeded', and a run only commits if the batch is still 'running' at the
-- attempt it started: a redelivered message never applies them twice.
CREATE TABLE {schema}.job_batches (
    job_id           bigint      NOT NULL REFERENCES {schema}.jobs ON DELETE CASCADE,
    number           integer     NOT NULL CHECK (number >= 1),
    params           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    label            text        NOT NULL DEFAULT '',
    items_total      bigint      NOT NULL DEFAULT 0,
    items_done       bigint      NOT NULL DEFAULT 0,
    status           text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'queued', 'running', 'retrying',
                          'succeeded', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    worker           text,
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    last_error       text,
    error_item       text,
    error_traceback  text,
    queued_at        timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (job_id, number)
);
CREATE INDEX job_batches_active_idx ON {schema}.job_batches (status)
    WHERE status IN ('queued', 'running', 'retrying');

-- Every failed attempt, kept for on-call engineers (the batch row holds the last one).
CREATE TABLE {schema}.job_errors (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       bigint      NOT NULL,
    number       integer     NOT NULL,
    attempt      integer     NOT NULL,
    final        boolean     NOT NULL DEFAULT false,
    worker       text,
    error        text        NOT NULL,
    item         text,
    traceback    text,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (job_id, number) REFERENCES {schema}.job_batches ON DELETE CASCADE
);
CREATE INDEX job_errors_batch_idx ON {schema}.job_errors (job_id, number, id);


-- ---------------------------------------------------------------------------
-- Archives (core/archive/, core/sql/archive.sql). See docs/archive.md.
-- ---------------------------------------------------------------------------

-- One run of an archival policy. The policy as it was when planned is kept in
-- `policy_spec`, so workers and re-runs never depend on a registry.
CREATE TABLE {schema}.archive_runs (
    run_id          uuid        PRIMARY KEY,
    policy          text        NOT NULL,
    strategy        text        NOT NULL,
    target_url      text        NOT NULL,
    policy_spec     jsonb       NOT NULL,
    -- pg_snapshot_xmin when planned (for the record: the selection is the
    -- committed rows the planning snapshot saw, fixed in archive_items).
    horizon         xid8        NOT NULL,
    cutoff          timestamptz,
    -- month partitions of events the run covers
    partitions      text[]      NOT NULL DEFAULT '{}',
    event_count     bigint      NOT NULL DEFAULT 0,
    segment_count   integer     NOT NULL DEFAULT 0,
    -- planned -> exported (every segment verified) -> completed; or failed.
    status          text        NOT NULL DEFAULT 'planned',
    deleted_events  bigint      NOT NULL DEFAULT 0,
    dropped_partitions text[]   NOT NULL DEFAULT '{}',
    manifest_url    text,
    job_id          text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX archive_runs_policy_idx ON {schema}.archive_runs (policy, created_at);

-- A run's batches: each one file of zstd JSON lines plus its manifest.
CREATE TABLE {schema}.archive_segments (
    run_id          uuid        NOT NULL REFERENCES {schema}.archive_runs ON DELETE CASCADE,
    segment_no      integer     NOT NULL,
    event_count     integer     NOT NULL,
    -- pending -> verified (uploaded, read back, checked) -> deleted
    status          text        NOT NULL DEFAULT 'pending',
    data_path       text,
    manifest_path   text,
    sha256          text,
    raw_bytes       bigint,
    stored_bytes    bigint,
    first_position  text,
    last_position   text,
    min_created_at  timestamptz,
    max_created_at  timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    verified_at     timestamptz,
    PRIMARY KEY (run_id, segment_no)
);

-- The exact events of each segment, fixed when the run is planned; removed
-- when the run completes.
CREATE TABLE {schema}.archive_items (
    run_id          uuid        NOT NULL,
    segment_no      integer     NOT NULL,
    event_id        uuid        NOT NULL,
    created_at      timestamptz NOT NULL,
    FOREIGN KEY (run_id, segment_no) REFERENCES {schema}.archive_segments ON DELETE CASCADE
);
CREATE INDEX archive_items_segment_idx ON {schema}.archive_items (run_id, segment_no);


-- ---------------------------------------------------------------------------
-- Schedules (schedules/, core/jobs/firings.py). See docs/schedules.md.
-- ---------------------------------------------------------------------------

-- One row per (policy, scheduled time): the scheduler replica whose INSERT
-- wins is the one that enqueues the job, so each period fires once.
CREATE TABLE {schema}.schedule_firings (
    policy          text        NOT NULL,
    scheduled_for   timestamptz NOT NULL,
    fired_at        timestamptz NOT NULL DEFAULT now(),
    replica         text        NOT NULL,
    job_kind        text,
    job_id          text,
    status          text        NOT NULL DEFAULT 'claimed',
    detail          text,
    PRIMARY KEY (policy, scheduled_for)
);

-- migration 0009 (issue 13: archive catalog)

-- Which archived segment holds which positions of which stream: one row per
-- (run, segment, stream), written when a run that deletes its events
-- completes (before the first event leaves PostgreSQL), so a read that needs
-- archived events is an index lookup, not a scan of the archive.
CREATE TABLE {schema}.archive_catalog (
    run_id          uuid        NOT NULL,
    segment_no      integer     NOT NULL,
    stream_id       text        NOT NULL,
    first_position  bigint      NOT NULL,
    last_position   bigint      NOT NULL,
    event_count     integer     NOT NULL,
    min_global_position bigint  NOT NULL,
    max_global_position bigint  NOT NULL,
    min_created_at  timestamptz NOT NULL,
    max_created_at  timestamptz NOT NULL,
    bytes           bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_id, first_position, run_id, segment_no),
    FOREIGN KEY (run_id, segment_no) REFERENCES {schema}.archive_segments ON DELETE CASCADE
);
CREATE INDEX archive_catalog_segment_idx ON {schema}.archive_catalog (run_id, segment_no);

-- migration 0011 (issue 16: console action audit)
-- One row per action an operator took in the console (requeue, cancel, reset,
-- restore, login, refused attempts): who, what, on what, when, and the outcome.
-- Never a stream id or any event data (they may carry personal data).
CREATE TABLE {schema}.console_actions (
    action_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    operator    text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    client      text        NOT NULL DEFAULT ''
);
CREATE INDEX console_actions_time_idx ON {schema}.console_actions (occurred_at DESC);

-- migration 0010 (issue 11: access log in the spec's shape, hash-chained; legal holds; consent)
ALTER TABLE {schema}.event_access_log RENAME COLUMN action TO access_type;
ALTER TABLE {schema}.event_access_log RENAME COLUMN occurred_at TO accessed_at;
ALTER TABLE {schema}.event_access_log
    ADD COLUMN access_id    uuid   NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN event_id     uuid,
    ADD COLUMN aggregate_id text,
    ADD COLUMN event_ids    uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN subject_ids  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN ip_address   inet,
    ADD COLUMN user_agent   text,
    ADD COLUMN seq          bigint,
    ADD COLUMN chain_hash   text;
CREATE UNIQUE INDEX event_access_log_seq_idx ON {schema}.event_access_log (seq);
CREATE UNIQUE INDEX event_access_log_access_id_idx ON {schema}.event_access_log (access_id);
CREATE INDEX event_access_log_subjects_idx ON {schema}.event_access_log USING gin (subject_ids);
CREATE INDEX event_access_log_event_idx ON {schema}.event_access_log (event_id);

CREATE TABLE {schema}.event_access_log_head (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint      NOT NULL DEFAULT 0,
    chain_hash  text        NOT NULL DEFAULT '',
    head_mac    text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {schema}.event_access_log_head (singleton) VALUES (true);

CREATE TABLE {schema}.legal_holds (
    hold_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id   text        NOT NULL,
    reason       text        NOT NULL,
    placed_by    text        NOT NULL,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    released_by  text,
    released_at  timestamptz
);
CREATE UNIQUE INDEX legal_holds_active_idx ON {schema}.legal_holds (subject_id)
    WHERE released_at IS NULL;

CREATE TABLE {schema}.subject_consents (
    consent_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id   text        NOT NULL,
    purpose      text        NOT NULL,
    granted      boolean     NOT NULL,
    recorded_by  text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    note         text
);
CREATE INDEX subject_consents_idx ON {schema}.subject_consents (subject_id, purpose, consent_id DESC);
CREATE INDEX subject_consents_purpose_idx ON {schema}.subject_consents (purpose, consent_id DESC);

-- migration 0008 (issue 10: privacy keys, blind index, tombstone)
CREATE TABLE {schema}.subject_keys (
    key_ref      text        PRIMARY KEY,
    master_kid   text        NOT NULL,
    wrapped_key  bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);

-- Keyed equality index of declared fields: HMAC(field, value) -> event.
CREATE TABLE {schema}.blind_index (
    field        text        NOT NULL,
    digest       text        NOT NULL,
    subject_ref  text        NOT NULL,
    event_id     uuid        NOT NULL,
    PRIMARY KEY (field, digest, event_id)
);
CREATE INDEX blind_index_subject_idx ON {schema}.blind_index (subject_ref);

-- Subjects forgotten: a restore or an import anonymizes their events.
CREATE TABLE {schema}.forgotten_subjects (
    subject_ref  text        PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    job_id       bigint
);

-- The audit of each forget: counts, who, when; no personal data.
CREATE TABLE {schema}.forget_requests (
    request_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_ref  text        NOT NULL,
    job_id       bigint,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    counts       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX forget_requests_subject_idx ON {schema}.forget_requests (subject_ref);


-- migration 0007 (issue 12: the event query service, core/query, docs/query.md)
-- Indexes on the partitioned events table: built on every month partition and
-- cloned onto partitions created later. The full-text index is optional
-- (`evstore query indexes --fulltext`): it depends on EVENT_STORE_TEXT_SEARCH_CONFIG.
CREATE INDEX events_type_order_idx
    ON {schema}.events (event_type, transaction_id, global_position);
CREATE INDEX events_user_order_idx
    ON {schema}.events ((metadata ->> 'user_id'), transaction_id, global_position);
CREATE INDEX events_correlation_order_idx
    ON {schema}.events ((metadata ->> 'correlation_id'), transaction_id, global_position);
CREATE INDEX events_data_gin_idx
    ON {schema}.events USING gin (event_data jsonb_path_ops);

-- Compressed events (a payload SQL cannot read): a data filter lets them all
-- through to be judged after decoding, and this small partial index finds
-- them, so such a filter is an OR of two index scans, not a sequential scan.
CREATE INDEX events_payload_order_idx
    ON {schema}.events (transaction_id, global_position) WHERE payload IS NOT NULL;

-- migration 0013 (issue 13: a segment's range in the global order, fixed at
-- planning; the export scans the global-order index over it)
ALTER TABLE {schema}.archive_segments
    ADD COLUMN first_tx xid8,
    ADD COLUMN first_gp bigint,
    ADD COLUMN last_tx  xid8,
    ADD COLUMN last_gp  bigint;

-- migration 0014 (issue 13: planning without a per-item foreign key check; items
-- are written with their segments and dropped when the run completes)
ALTER TABLE {schema}.archive_items
    DROP CONSTRAINT IF EXISTS archive_items_run_id_segment_no_fkey;
