-- Named queries of stream readers and consumer groups (evstore.core.reader:
-- checkpoints, groups, reader). {schema} is the quoted schema.
-- A consumer group splits streams into shards ("partition" names only the
-- monthly table partitions of events).
-- Checkpoint transaction ids are bigint in stream_checkpoints and xid8 in events:
-- they meet through ::text::xid8.
-- A stream's shard is mod(('x' || substr(md5(stream_id), 1, 8))::bit(32)::bigint, n),
-- the twin of evstore.core.reader.streams.shard_of.

-- name: ensure_shards
INSERT INTO {schema}.stream_checkpoints
       (checkpoint_name, consumer_group, shard, shard_count)
SELECT %(name)s, %(group)s, p, %(count)s FROM generate_series(0, %(count)s - 1) AS p
ON CONFLICT (checkpoint_name, consumer_group, shard) DO NOTHING;

-- name: shard_counts
SELECT DISTINCT shard_count FROM {schema}.stream_checkpoints
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s;

-- name: set_filters
UPDATE {schema}.stream_checkpoints
   SET event_types = %(event_types)s, aggregate_types = %(aggregate_types)s
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s;

-- name: shard_rows
SELECT shard, shard_count, transaction_id, global_position, owner,
       lease_expires_at, coalesce(lease_expires_at > now(), false) AS leased,
       updated_at, events_processed, event_types, aggregate_types
  FROM {schema}.stream_checkpoints
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
 ORDER BY shard;

-- name: all_checkpoints
SELECT checkpoint_name, consumer_group, shard, shard_count, transaction_id,
       global_position, owner, coalesce(lease_expires_at > now(), false) AS leased,
       updated_at, events_processed, event_types, aggregate_types
  FROM {schema}.stream_checkpoints
 ORDER BY checkpoint_name, consumer_group, shard;

-- name: save_checkpoint
-- Fenced: only the shards this member still owns move; never backwards.
UPDATE {schema}.stream_checkpoints AS c
   SET transaction_id = CASE WHEN (c.transaction_id, c.global_position) < (%(tx)s, %(pos)s)
                             THEN %(tx)s ELSE c.transaction_id END,
       global_position = CASE WHEN (c.transaction_id, c.global_position) < (%(tx)s, %(pos)s)
                              THEN %(pos)s ELSE c.global_position END,
       events_processed = c.events_processed + u.n,
       updated_at = now()
  FROM unnest(%(shards)s::integer[], %(counts)s::bigint[]) AS u(shard, n)
 WHERE c.checkpoint_name = %(name)s AND c.consumer_group = %(group)s
   AND c.shard = u.shard AND c.owner = %(member)s
RETURNING c.shard;

-- name: reset_checkpoint
UPDATE {schema}.stream_checkpoints
   SET transaction_id = %(tx)s, global_position = %(pos)s, updated_at = now()
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
RETURNING shard;

-- name: delete_checkpoint
DELETE FROM {schema}.stream_checkpoints
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s;

-- name: join_member
INSERT INTO {schema}.consumer_members
       (checkpoint_name, consumer_group, member_id, host, identity, pid, listening, expires_at)
VALUES (%(name)s, %(group)s, %(member)s, %(host)s, %(identity)s, %(pid)s, %(listening)s,
        now() + make_interval(secs => %(ttl)s))
ON CONFLICT (checkpoint_name, consumer_group, member_id) DO UPDATE
   SET heartbeat_at = now(), expires_at = excluded.expires_at, listening = excluded.listening,
       pid = excluded.pid, host = excluded.host, identity = excluded.identity;

-- name: heartbeat
UPDATE {schema}.consumer_members
   SET heartbeat_at = now(), expires_at = now() + make_interval(secs => %(ttl)s),
       events_processed = %(processed)s
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s AND member_id = %(member)s
RETURNING member_id;

-- name: renew_leases
UPDATE {schema}.stream_checkpoints
   SET lease_expires_at = now() + make_interval(secs => %(ttl)s)
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s AND owner = %(member)s
RETURNING shard;

-- name: reap_members
DELETE FROM {schema}.consumer_members
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
   AND (expires_at < now() OR member_id = ANY(%(dead)s))
RETURNING member_id;

-- name: free_leases_of
UPDATE {schema}.stream_checkpoints
   SET owner = NULL, lease_expires_at = NULL
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s AND owner = ANY(%(members)s);

-- name: members
SELECT member_id, host, identity, pid, listening, started_at, heartbeat_at, expires_at,
       events_processed, expires_at > now() AS alive
  FROM {schema}.consumer_members
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
 ORDER BY member_id;

-- name: all_members
SELECT checkpoint_name, consumer_group, member_id, host, pid, listening, heartbeat_at,
       events_processed
  FROM {schema}.consumer_members
 WHERE expires_at > now()
 ORDER BY checkpoint_name, consumer_group, member_id;

-- name: claim_shards
UPDATE {schema}.stream_checkpoints
   SET owner = %(member)s, lease_expires_at = now() + make_interval(secs => %(ttl)s)
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
   AND shard = ANY(%(shards)s)
   AND (owner IS NULL OR owner = %(member)s OR lease_expires_at < now())
RETURNING shard, transaction_id, global_position;

-- name: release_shards
UPDATE {schema}.stream_checkpoints
   SET owner = NULL, lease_expires_at = NULL
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
   AND shard = ANY(%(shards)s) AND owner = %(member)s;

-- name: leave_member
DELETE FROM {schema}.consumer_members
 WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s AND member_id = %(member)s;

-- name: listen
-- {channel}: the quoted channel evstore_events_<schema> (notify.channel_for).
LISTEN {channel};

-- name: horizon
-- The store's write horizon (migration 0006; docs/global-order.md).
SELECT {schema}.write_horizon();

-- name: committed_after
-- Rows committed after a checkpoint that read_all may not show yet (an older
-- transaction still runs), or that committed since the last read.
SELECT EXISTS (
    SELECT 1 FROM {schema}.events
     WHERE (transaction_id, global_position) > (%(tx)s::text::xid8, %(pos)s));

-- name: lag
-- Events after each shard's checkpoint (capped), and the oldest one's store time.
WITH cp AS (
    SELECT shard, shard_count, transaction_id, global_position
      FROM {schema}.stream_checkpoints
     WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s
), ahead AS (
    SELECT stream_id, transaction_id, global_position, stored_at
      FROM {schema}.events
     WHERE (transaction_id, global_position) > (%(tx)s::text::xid8, %(pos)s)
       AND (%(event_types)s::text[] IS NULL OR event_type = ANY(%(event_types)s::text[]))
       AND (%(aggregate_types)s::text[] IS NULL
            OR aggregate_type = ANY(%(aggregate_types)s::text[]))
     ORDER BY transaction_id, global_position
     LIMIT %(cap)s
)
SELECT count(*), extract(epoch FROM now() - min(ahead.stored_at))::double precision
  FROM ahead
  JOIN cp ON cp.shard = CASE WHEN cp.shard_count = 1 THEN 0 ELSE
                 mod(('x' || substr(md5(ahead.stream_id), 1, 8))::bit(32)::bigint,
                     cp.shard_count) END
 WHERE (ahead.transaction_id, ahead.global_position)
       > (cp.transaction_id::text::xid8, cp.global_position);

-- name: first_position_stored_since
SELECT transaction_id, global_position FROM {schema}.events
 WHERE stored_at >= %(at)s
 ORDER BY transaction_id, global_position
 LIMIT 1;

-- name: head_position
SELECT transaction_id, global_position FROM {schema}.events
 ORDER BY transaction_id DESC, global_position DESC
 LIMIT 1;

-- name: streaming_start
-- In one snapshot: the horizon, and the transactions above it that already
-- committed (a STREAMING reader skips them: they were appended before it started).
WITH h AS MATERIALIZED (SELECT {schema}.write_horizon() AS x)
SELECT h.x::text::bigint,
       ARRAY(SELECT DISTINCT e.transaction_id::text::bigint FROM {schema}.events e
              WHERE e.transaction_id >= h.x)
  FROM h;
