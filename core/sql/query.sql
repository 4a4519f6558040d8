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
-- by (SELECT h.x FROM h); {direction}: ASC or DESC. The horizon is the last
-- column; nothing matching gives one row of NULLs and it. So a query makes no
-- round trip for the horizon and needs no transaction of its own.
WITH h AS MATERIALIZED ({horizon})
SELECT page.*, h.x::text
  FROM h LEFT JOIN ({statement}) page ON true
 ORDER BY page.transaction_id {direction}, page.global_position {direction};

-- name: statement_horizon
-- write_horizon() (migration 0006, docs/global-order.md) as a subquery that reads
-- the snapshot of the statement it is part of. The function itself is VOLATILE:
-- called by a READ COMMITTED statement it takes a newer snapshot than the
-- statement's rows, and could count a transaction that committed in between
-- (an event below the horizon the rows do not show). The function's query (mod()
-- for its %: the page has %(name)s parameters);
-- tests/integration/query/test_query_horizon.py checks both agree.
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
                                  WHERE r.x32 = mod(x::text::bigint, 4294967296) AND NOT r.appends))) AS x
  FROM snap;
