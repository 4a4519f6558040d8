-- evstore schema, migration 5: consumer groups split streams into "shards".
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).

-- "Partition" now names only the monthly table partitions of events; the hash
-- split of a consumer group is a shard. Renames only: the data, the primary key
-- (checkpoint_name, consumer_group, shard) and the range check are unchanged.
ALTER TABLE {schema}.stream_checkpoints RENAME COLUMN partition TO shard;
ALTER TABLE {schema}.stream_checkpoints RENAME COLUMN partition_count TO shard_count;
ALTER TABLE {schema}.stream_checkpoints
    RENAME CONSTRAINT stream_checkpoints_partition_range TO stream_checkpoints_shard_range;
