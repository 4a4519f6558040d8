-- evstore schema, migration 14: archive_items loses its foreign key to
-- archive_segments. {schema} is replaced with the quoted schema name.
--
-- A run's items are written once, in the planning transaction that writes its
-- segments, and deleted when the run completes (drop_items); no code deletes
-- segments or runs, so the key's cascade never ran, while its per-row check cost
-- planning about 3.7 µs of every archived event (0.37 s of 0.8 s for 100,000
-- events: docs/archive.md, "Export speed, issue 13").
ALTER TABLE {schema}.archive_items
    DROP CONSTRAINT IF EXISTS archive_items_run_id_segment_no_fkey;
