-- evstore schema, migration 4: archive runs and segments, and schedule firings.
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).

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
