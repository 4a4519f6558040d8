-- evstore schema, migration 9 (issue 13): the archive catalog.
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).

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
