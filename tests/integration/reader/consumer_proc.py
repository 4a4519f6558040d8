"""A reader in its own process, for the restart, kill and consumer-group tests.

Every event it handles becomes a row of ``delivered`` (who, stream, position,
event id, in handling order). SIGTERM stops it cleanly; SIGKILL does not.

    python consumer_proc.py URL NAME GROUP LABEL [--batch N] [--shards N]
                            [--ttl SECONDS] [--delay SECONDS] [--threads N]
                            [--queue N] [--hold STREAM]

``--hold STREAM`` holds the handler thread that gets STREAM's first event for
good (the slowest thread there can be): the other threads go on with what the
reader admits, and the process must be killed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

import psycopg
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from evstore import PostgreSQLEventStore

TABLE = """CREATE TABLE IF NOT EXISTS public.delivered (
    id bigserial PRIMARY KEY, label text NOT NULL, stream_id text NOT NULL,
    stream_position bigint NOT NULL, event_id uuid NOT NULL)"""


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("url", "name", "group", "label"):
        ap.add_argument(name)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--ttl", type=float, default=2.0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--queue", type=int, default=None, help="queue_size (default: --batch)")
    ap.add_argument("--hold", default=None, help="hold the thread of this stream for good")
    args = ap.parse_args()
    never = threading.Event()

    out = psycopg.connect(args.url, autocommit=True)
    out.execute(TABLE)

    def handle(event: Any) -> None:
        if event.stream_id == args.hold:
            never.wait()
        if args.delay:
            time.sleep(args.delay)
        out.execute(
            "INSERT INTO public.delivered (label, stream_id, stream_position, event_id) "
            "VALUES (%s, %s, %s, %s)",
            [args.label, event.stream_id, event.stream_position, event.event_id],
        )

    with PostgreSQLEventStore(args.url) as store:
        cfg = StreamConfig(args.name, consumer_group="" if args.group == "-" else args.group,
                           mode=StreamReadMode.CATCH_UP, batch_size=args.batch,
                           queue_size=args.queue or args.batch, concurrency=args.threads,
                           shards=args.shards,
                           lease_ttl=args.ttl, poll_interval=0.5, member_id=args.label)
        reader = EventStreamReader(store, cfg)
        signal.signal(signal.SIGTERM, lambda *_: reader.stop())
        reader.run(handle)
    sys.exit(0)


if __name__ == "__main__":
    main()
