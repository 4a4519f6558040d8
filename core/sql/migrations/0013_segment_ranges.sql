-- evstore schema, migration 13: each archive segment's range in the global
-- order, fixed when the run is planned. {schema} is replaced with the quoted
-- schema name.
--
-- The export of a segment (core/archive/fastexport.py) reads its events by one
-- ordered scan of the global-order index over this range, in the order the
-- segment is written, instead of joining the run's items to the events and
-- sorting them; the items still decide which events of the range belong to the
-- segment. Segments planned before this migration have no range and are read
-- the old way.
ALTER TABLE {schema}.archive_segments
    ADD COLUMN first_tx xid8,
    ADD COLUMN first_gp bigint,
    ADD COLUMN last_tx  xid8,
    ADD COLUMN last_gp  bigint;
