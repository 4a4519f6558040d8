"""Per-subject encryption and forgetting: encryption on against off in the same run.

    .venv/bin/python -m benchmarks.privacy [--events 20000] [--rounds 3] [--forget-events 10000] [--json]

Works in a scratch database of its own (DATABASE_URL, default the local
server). Two stores share it: one with EVENT_STORE_ENCRYPTION off, one on
(declared fields: three of a UserRegistered, two of a PageViewed, blind index
on). Rounds alternate off / on so drift hits both alike. Reported:

- append: events/s appending batches of 10 events to fresh streams (each
  stream one subject, so each on-batch makes a data key, like a new user);
- again: a second batch to each of those streams (the subject's key known);
- read_stream: events/s reading those streams back (each record decrypted);
- the ratio on/off of each (the issue aims at >= 70%);
- forget of one subject with ``--forget-events`` encrypted events (and 10%
  more written before encryption, in plain text): the key destruction alone
  (the ``keys`` step) and the whole forget job run in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.scratch import DEFAULT_URL, scratch_database

DECLARATIONS = """
[privacy.UserRegistered]
fields = ["data.email", "data.name", "data.addresses[].street"]
subject = "aggregate_id"
aggregate_type = "User"

[privacy.PageViewed]
fields = ["metadata.ip_address", "data.referrer"]
"""
BATCH = 10


def batch(prefix: str, n: int) -> list[Any]:
    from evstore.core import EventMetadata, EventRecord

    user = f"{prefix}{n}"
    events = [EventRecord(user, "User", "UserRegistered", {
        "email": f"{user}@example.com", "name": f"Name {user}", "plan": "pro",
        "addresses": [{"street": f"{n} Main Street", "city": "Lyon"}]})]
    events += [EventRecord(user, "User", "PageViewed", {"referrer": f"https://ex.com/{n}/{i}", "n": i},
                           metadata=EventMetadata(user_id=user, extra={"ip_address": f"10.0.{n % 250}.{i}"}))
               for i in range(BATCH - 1)]
    return events


def append_round(store: Any, prefix: str, streams: int) -> float:
    started = time.perf_counter()
    for n in range(streams):
        store.append_events(f"User-{prefix}{n}", batch(prefix, n))
    return streams * BATCH / (time.perf_counter() - started)


def read_round(store: Any, prefix: str, streams: int, per_stream: int = BATCH) -> float:
    started = time.perf_counter()
    total = 0
    for n in range(streams):
        total += len(store.read_stream(f"User-{prefix}{n}"))
    assert total == streams * per_stream
    return total / (time.perf_counter() - started)


def forget_bench(url: str, events: int) -> dict[str, float]:
    from evstore.core import EventMetadata, EventRecord
    from evstore.core.config import load_settings
    from evstore.core.privacy.forget import plan_steps, run_step
    from evstore.core.privacy.forget_job import run_here

    from evstore import PostgreSQLEventStore

    def views(k: int, start: int) -> list[Any]:
        return [EventRecord("page", "Page", "PageViewed", {"referrer": f"r{start + i}"},
                            metadata=EventMetadata(user_id="big", extra={"ip_address": "10.1.1.1"}))
                for i in range(k)]

    off = load_settings(database_url=url, encryption="off")
    on = load_settings(database_url=url, encryption="on", master_key="33" * 32, key_cache_seconds=0)
    with PostgreSQLEventStore(url, settings=off) as store:
        for start in range(0, events // 10, 1000):
            store.append_events(f"Page-plain{start}", views(min(1000, events // 10 - start), start))
    with PostgreSQLEventStore(url, settings=on) as store:
        for start in range(0, events, 1000):
            store.append_events(f"Page-enc{start}", views(min(1000, events - start), start))
        [keys_step] = [s for s in plan_steps(store, "big") if s["step"] == "keys"]
        started = time.perf_counter()
        with store.db.connection() as conn, conn.transaction():
            destroyed = run_step(store, conn, "big", keys_step)["keys_destroyed"]
        key_seconds = time.perf_counter() - started
        assert destroyed == 1
        started = time.perf_counter()
        result = run_here(store, "big", "benchmark")
        job_seconds = time.perf_counter() - started
        assert result.events_crypto_shredded == events and result.events_anonymized == events // 10
    return {"events": events + events // 10, "key_destruction_ms": key_seconds * 1000,
            "forget_job_seconds": job_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events appended per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--forget-events", type=int, default=10000)
    parser.add_argument("--no-blind-index", action="store_true",
                        help="encryption on without the blind index (EVENT_STORE_BLIND_INDEX=false)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "evstore.toml"
        config.write_text(DECLARATIONS)
        os.environ["EVSTORE_CONFIG"] = str(config)
        os.environ.setdefault("EVSTORE_HOME", home)
        from evstore.core.config import load_settings

        from evstore import PostgreSQLEventStore

        with scratch_database(os.environ.get("DATABASE_URL", DEFAULT_URL)) as url:
            with PostgreSQLEventStore(url) as store:
                store.initialize_schema()
            streams = max(1, args.events // BATCH)
            rates: dict[str, list[float]] = {"append off": [], "append on": [], "again off": [],
                                             "again on": [], "read off": [], "read on": []}
            settings = {"off": load_settings(database_url=url, encryption="off"),
                        "on": load_settings(database_url=url, encryption="on", master_key="33" * 32,
                                            blind_index=not args.no_blind_index)}
            cpu_us: dict[str, list[float]] = {"off": [], "on": []}
            append_cpu_us: dict[str, list[float]] = {"off": [], "on": []}
            stores = {mode: PostgreSQLEventStore(url, settings=s) for mode, s in settings.items()}
            try:
                append_round(stores["on"], "warm-on", 20)
                append_round(stores["off"], "warm-off", 20)
                for r in range(args.rounds):
                    for mode in ("off", "on"):
                        prefix = f"r{r}{mode}-"
                        cpu = time.process_time()
                        rates[f"append {mode}"].append(append_round(stores[mode], prefix, streams))
                        rates[f"again {mode}"].append(append_round(stores[mode], prefix, streams))
                        append_cpu_us[mode].append((time.process_time() - cpu) / (streams * 2 * BATCH) * 1e6)
                        cpu = time.process_time()
                        rates[f"read {mode}"].append(read_round(stores[mode], prefix, streams,
                                                                per_stream=2 * BATCH))
                        cpu_us[mode].append((time.process_time() - cpu) / (streams * 2 * BATCH) * 1e6)
            finally:
                for s in stores.values():
                    s.close()
            forget = forget_bench(url, args.forget_events)
    medians = {k: statistics.median(v) for k, v in rates.items()}
    out = {
        "events_per_round": streams * BATCH, "rounds": args.rounds,
        "medians_events_per_s": medians,
        "append_ratio_on_off": medians["append on"] / medians["append off"],
        "append_existing_ratio_on_off": medians["again on"] / medians["again off"],
        "read_ratio_on_off": medians["read on"] / medians["read off"],
        "read_client_cpu_us_per_event": {m: statistics.median(v) for m, v in cpu_us.items()},
        "append_client_cpu_us_per_event": {m: statistics.median(v) for m, v in append_cpu_us.items()},
        "forget": forget,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{streams * BATCH:,} events per round, {args.rounds} rounds (medians)")
    for key, value in medians.items():
        print(f"  {key:<11} {value:>10,.0f} events/s")
    print(f"  append on/off {out['append_ratio_on_off']:.0%} (new subjects), "
          f"{out['append_existing_ratio_on_off']:.0%} (existing: 'again')   "
          f"read_stream on/off {out['read_ratio_on_off']:.0%}")
    cpu = out["read_client_cpu_us_per_event"]
    print(f"  read_stream client CPU per event: {cpu['off']:.0f} us off, {cpu['on']:.0f} us on")
    cpu = out["append_client_cpu_us_per_event"]
    print(f"  append (both passes) client CPU per event: {cpu['off']:.0f} us off, {cpu['on']:.0f} us on"
          f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"forget of a subject with {forget['events']:,} events: key destruction "
          f"{forget['key_destruction_ms']:.1f} ms, whole forget job {forget['forget_job_seconds']:.2f} s")


if __name__ == "__main__":
    main()
