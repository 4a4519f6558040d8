-- evstore schema, migration 6: the integrity of the stored events.
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).
--
-- 1. event_index: one row per stored event, in a table that is not
--    partitioned, so the database itself keeps an event id once in the whole
--    store and a stream position once per stream (a unique index of the
--    partitioned events table must hold created_at, so it cannot). A trigger
--    fills it from every INSERT into events, whoever runs it.
-- 2. streams know the times of their first and last events, so a stream read
--    opens only the month partitions that can hold the stream.
-- 3. events are append-only: UPDATE, DELETE and TRUNCATE are refused unless
--    the transaction is one of the store's own rewriting paths (forget,
--    archive, checksum upgrade), which set evstore.rewrite = 'on' for
--    themselves. A least-privilege writer has no UPDATE or DELETE privilege
--    at all (evstore roles); the trigger also stops the owner's accidents.
-- 4. create_month_partition(month): writers create next month's partition
--    through this SECURITY DEFINER function, without owning the table.
-- 5. write_horizon(): the global-order horizon counts only transactions that
--    can write events to this store (they hold its append lock), not every
--    transaction of the cluster.
--
-- Checksums of version 2 (keyed, core/checksums.py) need no column: the
-- checksum text says its version.

ALTER TABLE {schema}.streams
    ADD COLUMN first_event_at timestamptz,
    ADD COLUMN last_event_at  timestamptz;

UPDATE {schema}.streams s
   SET first_event_at = m.first_at, last_event_at = m.last_at
  FROM (SELECT stream_id, min(created_at) AS first_at, max(created_at) AS last_at
          FROM {schema}.events GROUP BY stream_id) m
 WHERE m.stream_id = s.stream_id;

CREATE TABLE {schema}.event_index (
    event_id         uuid        PRIMARY KEY,
    stream_id        text        NOT NULL,
    stream_position  bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT event_index_stream_position UNIQUE (stream_id, stream_position)
);

-- Events stored twice before this migration (an id reused with another time)
-- keep their first row here; `evstore verify` reports the others.
INSERT INTO {schema}.event_index (event_id, stream_id, stream_position, created_at)
SELECT event_id, stream_id, stream_position, created_at
  FROM {schema}.events
 ORDER BY global_position
ON CONFLICT DO NOTHING;

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
CREATE FUNCTION {schema}.write_horizon() RETURNS xid8
LANGUAGE sql VOLATILE AS $$
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
