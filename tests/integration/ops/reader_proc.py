"""A reader process of a consumer group with its HTTP endpoints (what an operator's reader does).

    python reader_proc.py NAME GROUP MEMBER   (DATABASE_URL, EVSTORE_HTTP_PORT from the environment)

Handled events go to public.ops_seen; SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import psycopg
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from evstore import PostgreSQLEventStore
from evstore.http.server import start_process_ops

TABLE = "CREATE TABLE IF NOT EXISTS public.ops_seen (event_id uuid PRIMARY KEY, member text NOT NULL)"
INSERT = "INSERT INTO public.ops_seen (event_id, member) VALUES (%s, %s)"


def main(name: str, group: str, member: str) -> None:
    ops, server = start_process_ops("reader")  # first: /livez answers while the reader starts
    url = os.environ["DATABASE_URL"]
    out = psycopg.connect(url, autocommit=True)
    out.execute(TABLE)

    def handle(event: Any) -> None:
        out.execute(INSERT, [event.event_id, member])

    with PostgreSQLEventStore(url) as store:
        cfg = StreamConfig(name, consumer_group=group, mode=StreamReadMode.CATCH_UP, batch_size=50,
                           shards=2, lease_ttl=2.0, poll_interval=0.2, member_id=member)
        reader = EventStreamReader(store, cfg)
        signal.signal(signal.SIGTERM, lambda *_: reader.stop())
        ops.readiness.mark_started()
        reader.run(handle)
    if server is not None:
        server.stop()


if __name__ == "__main__":
    import sys

    main(*sys.argv[1:4])
