-- Named statements of the event query service (core/query), loaded with
-- Database.sql("query", name). The queries themselves are composed by
-- SQLAlchemy Core (core/query/compiler.py); these are the fixed statements
-- around them. {schema} is the quoted schema; %s / %(name)s are parameters.

-- name: set_timeout
-- The statement timeout of this transaction only (EVENT_STORE_QUERY_TIMEOUT_MS).
SELECT set_config('statement_timeout', %s, true);

-- name: explain
-- {statement} is a statement compiled by SQLAlchemy (its values stay parameters).
EXPLAIN (FORMAT JSON, ANALYZE {analyze}, BUFFERS {analyze}) {statement}

-- name: check_jsonpath
-- A malformed SQL/JSON path fails here, with the server's own words.
SELECT %s::jsonpath::text;

-- name: check_text_config
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_ts_config WHERE cfgname = %s);

-- name: event_indexes
-- The indexes of the events table (the partitioned parent): name and definition.
SELECT c.relname, pg_catalog.pg_get_indexdef(i.indexrelid)
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = '{schema}.events'::regclass
 ORDER BY c.relname;

-- name: hypopg_installed
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'hypopg');

-- name: rate_buckets
-- Events per (bucket, key) in [from, to): key is the event type, the aggregate
-- (type and id) or a metadata field's text, as %(by)s says.
SELECT to_timestamp(floor(extract(epoch FROM created_at) / %(bucket)s) * %(bucket)s) AS bucket,
       CASE %(by)s
            WHEN 'event_type' THEN event_type
            WHEN 'aggregate' THEN aggregate_type || '-' || aggregate_id
            ELSE event_type || ' for ' || coalesce(metadata ->> %(field)s, '?')
       END AS key,
       count(*)
  FROM {schema}.events
 WHERE created_at >= %(from)s AND created_at < %(to)s
 GROUP BY 1, 2
 ORDER BY 1, 2;

-- name: create_fulltext_index
-- Optional (its append cost): {config} is the validated EVENT_STORE_TEXT_SEARCH_CONFIG.
CREATE INDEX IF NOT EXISTS events_fulltext_idx ON {schema}.events USING gin
    ((to_tsvector('{config}'::regconfig, coalesce(event_data, '{}'::jsonb))
      || to_tsvector('{config}'::regconfig, metadata)));

-- name: drop_fulltext_index
DROP INDEX IF EXISTS {schema}.events_fulltext_idx;

-- name: forgotten_lately
-- Whether a subject was forgotten within the cache's lifetime (the parameter, in
-- seconds): then no cached answer is served once anything was written (events_between).
SELECT EXISTS (SELECT 1 FROM {schema}.forgotten_subjects
                WHERE forgotten_at > now() - make_interval(secs => %s));

-- name: events_between
-- Whether any event was written by a transaction in [old horizon, new horizon):
-- a cached result read under the old horizon holds under the new one when none was.
-- A forget rewrites or unseals events without writing any: a subject forgotten
-- within the cache's lifetime (the third parameter, in seconds) counts as a change,
-- so no process serves a cached answer read before that forget.
SELECT EXISTS (SELECT 1 FROM {schema}.events
                WHERE transaction_id >= %s::text::xid8 AND transaction_id < %s::text::xid8)
    OR EXISTS (SELECT 1 FROM {schema}.forgotten_subjects
                WHERE forgotten_at > now() - make_interval(secs => %s));

-- name: page_at_horizon
-- One statement: the global-order horizon and the page below it, in one snapshot
-- (a statement's own, or its REPEATABLE READ transaction's). {horizon} is the block
-- statement_horizon below; {statement}: the page compiled by SQLAlchemy, bounded
-- by (SELECT h.x FROM h); {direction}: ASC or DESC. The horizon and whether it
-- ended are the last two columns; nothing matching gives one row of NULLs and them. So a query makes no
-- round trip for the horizon and needs no transaction of its own.
WITH h AS MATERIALIZED ({horizon})
SELECT page.*, h.x::text, h.ended
  FROM h LEFT JOIN ({statement}) page ON true
 ORDER BY page.transaction_id {direction}, page.global_position {direction};

-- name: statement_horizon
-- write_horizon() (docs/global-order.md) as a subquery of the page's statement: the
-- function is STABLE (migration 0012), so it reads that statement's snapshot, the
-- same one the page's rows are read in. ended: as in store.sql read_horizon (the
-- horizon's transaction finished since the snapshot: the page is read again).
-- OFFSET 0: one call of write_horizon() for both columns (see read_horizon).
SELECT w.x, CASE WHEN w.x < pg_snapshot_xmax(pg_current_snapshot())
                 THEN pg_xact_status(w.x) <> 'in progress' ELSE false END AS ended
  FROM (SELECT {schema}.write_horizon() AS x OFFSET 0) w;
