-- evstore schema, migration 2: the job engine (jobs, their batches, failed attempts).
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).
-- See docs/jobs.md for the life of a job and why a batch runs at most once.

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
