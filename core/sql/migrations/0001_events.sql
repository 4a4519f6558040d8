-- evstore schema, migration 1: events, streams, snapshots, checkpoints, access log.
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).

CREATE TABLE {schema}.streams (
    stream_id       text        PRIMARY KEY,
    aggregate_id    text        NOT NULL,
    aggregate_type  text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streams_aggregate_idx ON {schema}.streams (aggregate_type, aggregate_id);

CREATE SEQUENCE {schema}.events_global_position_seq AS bigint;

-- One partition a month on created_at (the event's own time). The global read
-- order is (transaction_id, global_position): see docs/global-order.md.
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

CREATE TABLE {schema}.stream_checkpoints (
    checkpoint_name  text        NOT NULL,
    consumer_group   text        NOT NULL DEFAULT '',
    transaction_id   bigint      NOT NULL DEFAULT 0,
    global_position  bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (checkpoint_name, consumer_group)
);

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
