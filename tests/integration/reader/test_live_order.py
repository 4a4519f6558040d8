"""A live reader never skips an event whose transaction commits late."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from .helpers import Collector, ev, wait_for

LOCK = 4242
BLOCKER = """
CREATE FUNCTION public.block_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(4242);
    RETURN NULL;
END $$;
CREATE TRIGGER block_late AFTER INSERT ON events.events
    FOR EACH ROW WHEN (NEW.event_type = 'Late') EXECUTE FUNCTION public.block_late();
"""


def test_late_committing_transaction_is_not_skipped(database_url: str, pstore: Any) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(BLOCKER)
        got = Collector()
        cfg = StreamConfig("late", mode=StreamReadMode.CATCH_UP, poll_interval=0.2)
        with EventStreamReader(pstore, cfg) as reader:
            reader.start(got)
            wait_for(reader.running.is_set, "the reader to start")

            # Given an append that took its global position and waits to commit
            admin.execute("SELECT pg_advisory_lock(%s)", [LOCK])
            late = threading.Thread(target=pstore.append_events,
                                    args=("User-late", [ev("User-late", 0, "Late")]))
            late.start()
            wait_for(lambda: admin.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())", [LOCK]
            ).fetchone()[0] == 1, "the late append to wait on its lock")

            # When a later append (a higher position) commits and the reader reads past it
            pstore.append_events("User-early", [ev("User-early", 0)])
            reads = reader.reads
            wait_for(lambda: reader.reads >= reads + 2, "the reader to look twice")
            assert len(got) == 0  # the early commit is held back behind the running one

            # Then once the late one commits, both arrive, in the global order
            admin.execute("SELECT pg_advisory_unlock(%s)", [LOCK])
            late.join(timeout=30)
            wait_for(lambda: len(got) == 2, "both events")
        late_event, early_event = got.events
        assert late_event.stream_id == "User-late" and early_event.stream_id == "User-early"
        assert late_event.global_position < early_event.global_position  # the race happened
