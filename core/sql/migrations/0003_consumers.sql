-- evstore schema, migration 3: stream readers and consumer groups, live-read
-- notifications, and snapshot load statistics (docs/reader.md, docs/snapshots.md).
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).

-- A checkpoint is one row per (name, group, partition). A reader without a group
-- has one partition (0). A consumer group splits streams into partition_count
-- partitions by md5(stream_id); each partition row is also that partition's
-- lease: only its owner, while the lease lasts, moves its checkpoint.
ALTER TABLE {schema}.stream_checkpoints
    ADD COLUMN partition         integer     NOT NULL DEFAULT 0,
    ADD COLUMN partition_count   integer     NOT NULL DEFAULT 1,
    ADD COLUMN owner             text,
    ADD COLUMN lease_expires_at  timestamptz,
    ADD COLUMN events_processed  bigint      NOT NULL DEFAULT 0,
    ADD COLUMN event_types       text[],
    ADD COLUMN aggregate_types   text[];
ALTER TABLE {schema}.stream_checkpoints DROP CONSTRAINT stream_checkpoints_pkey;
ALTER TABLE {schema}.stream_checkpoints
    ADD PRIMARY KEY (checkpoint_name, consumer_group, partition),
    ADD CONSTRAINT stream_checkpoints_partition_range
        CHECK (partition >= 0 AND partition < partition_count);

-- The live members of each group, renewed by heartbeats. A member whose
-- expires_at has passed is dead: anyone removes it and frees its partitions.
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

-- Measured aggregate load costs per aggregate type (the ADAPTIVE strategy).
CREATE TABLE {schema}.snapshot_load_stats (
    aggregate_type  text             PRIMARY KEY,
    loads           bigint           NOT NULL DEFAULT 0,
    events_applied  bigint           NOT NULL DEFAULT 0,
    ms_per_event    double precision NOT NULL,
    base_ms         double precision NOT NULL,
    updated_at      timestamptz      NOT NULL DEFAULT now()
);
