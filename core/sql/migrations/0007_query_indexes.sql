-- evstore schema, migration 7: indexes of the event query service (core/query,
-- docs/query.md). {schema} is replaced with the quoted schema name.
--
-- Each index is created on the partitioned events table, so PostgreSQL builds
-- it on every month partition now and clones it onto every partition created
-- later (create_month_partition of migration 0006 makes them with
-- CREATE TABLE ... PARTITION OF, which attaches the parent's indexes).
-- Each one ends with the global order (transaction_id, global_position), so a
-- query in the global order reads one partition's index in order and merges.
--
-- The full-text index depends on a setting (EVENT_STORE_TEXT_SEARCH_CONFIG) and
-- costs the most on appends: it is optional, created by
-- `evstore query indexes --fulltext` (benchmarks/query.py measures each cost).

-- criteria.event_types (and type + time range: the partition prunes the time).
CREATE INDEX events_type_order_idx
    ON {schema}.events (event_type, transaction_id, global_position);

-- criteria.user_id / correlation_id, written as the query compiler writes them.
CREATE INDEX events_user_order_idx
    ON {schema}.events ((metadata ->> 'user_id'), transaction_id, global_position);
CREATE INDEX events_correlation_order_idx
    ON {schema}.events ((metadata ->> 'correlation_id'), transaction_id, global_position);

-- Equality on any path of the event data (compiled with @>) and SQL/JSON path
-- filters (@?, @@) on event data.
CREATE INDEX events_data_gin_idx
    ON {schema}.events USING gin (event_data jsonb_path_ops);

-- Compressed events (a payload SQL cannot read): a data filter lets them all
-- through to be judged after decoding, and this small partial index finds
-- them, so such a filter is an OR of two index scans, not a sequential scan.
CREATE INDEX events_payload_order_idx
    ON {schema}.events (transaction_id, global_position) WHERE payload IS NOT NULL;
