"""Least-privilege roles (evstore roles): each component's real code runs as its role,
and what a role must not do is refused by PostgreSQL as a permission error.

The fixtures (conftest.py) give a schema created by its owner role with the
roles applied; every store and connection below logs in as one role.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from evstore.core.jobs.batch_runs import BatchRun
from evstore.core.jobs.model import BatchPlan
from evstore.core.jobs.repository import JobRepository
from evstore.core.privacy.gdpr import cleanup_gdpr_data
from evstore.core.reader.checkpoints import CheckpointStore
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode
from evstore.core.roles import role_names, scram_verifier
from evstore.core.snapshots.aggregate import Aggregate
from evstore.core.snapshots.store import SnapshotStore
from evstore.core.store.persistence import EventMetadata
from psycopg import errors as pgerrors

from evstore import EventRecord, PermissionDeniedError

from .conftest import Secured, drop_roles, unique_prefix

ROOT = Path(__file__).resolve().parents[3]
DENIED = pgerrors.InsufficientPrivilege
# The same refusal through the store: one evstore error, no driver error (the command prints one line).
STORE_DENIED = PermissionDeniedError
# A month no partition exists for (initialize_schema creates this month and 3 ahead).
FAR_MONTH = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)


def ev(event_type: str = "ItemAdded", data: dict[str, Any] | None = None, *,
       aggregate_id: str = "cart-1", created_at: datetime | None = None,
       metadata: dict[str, Any] | None = None) -> EventRecord:
    return EventRecord(aggregate_id=aggregate_id, aggregate_type="Cart", event_type=event_type,
                       event_data=data or {"sku": "a"},
                       metadata=EventMetadata.from_dict(metadata),
                       **({"created_at": created_at} if created_at else {}))


def refused(conn: psycopg.Connection, statement: str, *params: Any) -> None:
    """``statement`` is refused by the role's grants: a permission error from PostgreSQL's
    privilege checks ("permission denied for ...", "must be owner of ..."), not from the
    append-only trigger, which raises the same SQLSTATE but would let a role that holds
    the privilege through."""
    with pytest.raises(DENIED) as refusal:
        conn.execute(statement, params or None)
    message = refusal.value.diag.message_primary or ""
    assert message.startswith(("permission denied", "must be owner")), refusal.value


def partitions(secured: Secured) -> dict[str, tuple[str, str]]:
    """Month partitions of events: {"YYYY-MM": (table name, owner)}, read as the administrator."""
    with psycopg.connect(secured.admin_url) as admin:
        admin.execute("SET TIME ZONE 'UTC'")
        rows = admin.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner), pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE n.nspname = %s AND p.relname = 'events'", [secured.schema]).fetchall()
    return {bound.split("'")[1][:7]: (name, owner) for name, owner, bound in rows}


# -- the writer -----------------------------------------------------------------


def test_writer_appends_reads_and_appends_into_a_new_month(secured: Secured) -> None:
    assert "2031-05" not in partitions(secured)
    with secured.store("writer") as writer:
        first = writer.append_events("cart-1", [ev(), ev("ItemRemoved")], expected_version=0)
        writer.append_events("cart-1", [ev("CheckedOut")], expected_version=2)
        # A month with no partition yet: created by the owner's SECURITY DEFINER function.
        writer.append_events("cart-2", [ev(aggregate_id="cart-2", created_at=FAR_MONTH)])
        assert first.version == 2
        assert [e.event_type for e in writer.read_stream("cart-1")] == [
            "ItemAdded", "ItemRemoved", "CheckedOut"]
        assert writer.get_stream_version("cart-2") == 1
        page = writer.read_all(limit=10)
        assert len(page.events) == 4
        assert writer.known_event_types() == ["CheckedOut", "ItemAdded", "ItemRemoved"]
    assert partitions(secured)["2031-05"][1] == secured.names["owner"]


def test_writer_cannot_rewrite_history_or_touch_other_tables(secured: Secured) -> None:
    with secured.store("writer") as writer:
        writer.append_events("cart-1", [ev()])
    s = secured.schema
    with secured.connect("writer") as conn:
        refused(conn, f"UPDATE {s}.events SET event_data = '{{}}'")
        refused(conn, f"DELETE FROM {s}.events")
        refused(conn, f"TRUNCATE {s}.events")
        refused(conn, f"UPDATE {s}.streams SET aggregate_id = 'x'")  # only version may move
        refused(conn, f"DELETE FROM {s}.streams")
        refused(conn, f"SELECT * FROM {s}.jobs")
        refused(conn, f"INSERT INTO {s}.jobs (kind) VALUES ('partitions')")
        refused(conn, f"SELECT * FROM {s}.event_snapshots")
        refused(conn, f"SELECT * FROM {s}.stream_checkpoints")
        refused(conn, f"SELECT host FROM {s}.consumer_members")
        refused(conn, f"SELECT * FROM {s}.event_access_log")
        # Archive runs and the catalog are readable (read-through of archived history)
        # but never writable, and the items of a run are not even readable.
        refused(conn, f"SELECT * FROM {s}.archive_items")
        refused(conn, f"DELETE FROM {s}.archive_runs")
        refused(conn, f"DELETE FROM {s}.archive_catalog")
        refused(conn, f"CREATE TABLE {s}.mine (x int)")
        refused(conn, f"ALTER TABLE {s}.events DISABLE TRIGGER USER")
        # The month partitions themselves are not reachable around the parent's grants.
        (month, _) = partitions(secured)[datetime.now(UTC).strftime("%Y-%m")]
        refused(conn, f"UPDATE {s}.{month} SET event_data = '{{}}'")
        refused(conn, f"DELETE FROM {s}.{month}")


# -- the reader -----------------------------------------------------------------


def test_reader_reads_and_keeps_its_checkpoints_and_leases(secured: Secured) -> None:
    with secured.store("writer") as writer:
        for i in range(5):
            writer.append_events(f"cart-{i}", [ev(aggregate_id=f"cart-{i}")])
    seen: list[str] = []
    with secured.store("reader") as reader:
        assert len(reader.read_all(limit=100).events) == 5
        assert len(reader.read_stream("cart-3")) == 1
        cfg = StreamConfig("projection", consumer_group="g", mode=StreamReadMode.BATCH, shards=2)
        EventStreamReader(reader, cfg).run(lambda e: seen.append(e.stream_id))
        shards = CheckpointStore(reader).shards("projection", "g")
    assert sorted(seen) == [f"cart-{i}" for i in range(5)]
    assert len(shards) == 2 and sum(s.events_processed for s in shards) == 5


def test_reader_cannot_append_or_write_events(secured: Secured) -> None:
    with secured.store("reader") as reader, pytest.raises(STORE_DENIED, match="permission denied"):
        reader.append_events("cart-9", [ev(aggregate_id="cart-9")])
    s = secured.schema
    with secured.connect("reader") as conn:
        refused(conn, f"UPDATE {s}.events SET event_data = '{{}}'")
        refused(conn, f"DELETE FROM {s}.events")
        refused(conn, f"INSERT INTO {s}.event_types (event_type) VALUES ('X')")
        refused(conn, f"SELECT * FROM {s}.jobs")
        refused(conn, f"SELECT {s}.create_month_partition('2040-01-01')")


# -- the worker -----------------------------------------------------------------


class Cart(Aggregate):
    aggregate_type = "Cart"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.items = 0

    def apply(self, event: EventRecord) -> None:
        self.items += 1

    def save(self) -> dict[str, Any]:
        return {"items": self.items}

    def restore(self, state: dict[str, Any]) -> None:
        self.items = state["items"]


def test_worker_claims_a_batch_and_completes_it_with_a_snapshot(secured: Secured) -> None:
    with secured.store("writer") as writer:
        writer.append_events("cart-1", [ev(), ev()])
    sent: list[tuple[int, list[int]]] = []
    with secured.store("worker") as worker:
        repo = JobRepository(worker)
        job_id = repo.create("snapshots", {}, [BatchPlan({"ids": ["cart-1"]}, 1, "one")])
        assert repo.queue(job_id, ["pending"], lambda j, n: sent.append((j, n))) == [1]
        with BatchRun.claim(repo, job_id, 1, "w1") as run:
            assert run is not None and run.start() is not None
            with run.transaction() as conn:
                snap = SnapshotStore(worker).create_snapshot(Cart, "cart-1", conn=conn)
                status = run.complete(1, {"snapshot": str(snap.snapshot_id if snap else None)})
        assert status == "succeeded" and repo.get(job_id).status == "succeeded"
        assert sent == [(job_id, [1])]
        assert SnapshotStore(worker).latest(Cart, "cart-1") is not None
        # Partition upkeep (the 'partitions' job) through the SECURITY DEFINER function.
        worker.create_partitions_ahead(2, now=FAR_MONTH)
        assert len(worker.read_all(limit=10).events) == 2
    assert partitions(secured)["2031-07"][1] == secured.names["owner"]


def test_worker_cannot_append_or_rewrite_events(secured: Secured) -> None:
    with secured.store("worker") as worker, pytest.raises(STORE_DENIED, match="permission denied"):
        worker.append_events("cart-9", [ev(aggregate_id="cart-9")])
    s = secured.schema
    with secured.connect("worker") as conn:
        refused(conn, f"UPDATE {s}.events SET event_data = '{{}}'")
        refused(conn, f"INSERT INTO {s}.streams (stream_id, aggregate_id, aggregate_type, version)"
                      " VALUES ('s', 'a', 'A', 1)")
        refused(conn, f"SELECT * FROM {s}.stream_checkpoints")
        refused(conn, f"SELECT * FROM {s}.event_access_log")
        refused(conn, f"CREATE TABLE {s}.mine (x int)")


# -- the privacy operator ---------------------------------------------------------


def test_privacy_operator_forgets_a_subject(secured: Secured, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # What is personal is declared (issue 10): the e-mail of ItemAdded, whose subject is
    # metadata.user_id; the forget runs as a job (its rows) under this role's grants.
    config = tmp_path / "evstore.toml"
    config.write_text('[privacy.ItemAdded]\nfields = ["data.email"]\n')
    monkeypatch.setenv("EVSTORE_CONFIG", str(config))
    personal = {"email": "ada@example.com", "sku": "a"}
    with secured.store("writer") as writer:
        writer.append_events("cart-1", [ev(data=personal, metadata={"user_id": "ada"})])
        writer.append_events("cart-2", [ev(aggregate_id="cart-2", metadata={"user_id": "bob"})])
    with secured.store("privacy") as privacy:
        result = cleanup_gdpr_data(privacy, "ada", anonymize=True, accessor="test")
    assert result.events_anonymized == 1 and result.job_id is not None
    with secured.store("reader") as reader:
        (forgotten,) = reader.read_stream("cart-1")
        assert forgotten.event_data["email"] == "[forgotten]"
        assert reader.read_stream("cart-2")[0].metadata.user_id == "bob"
    with secured.store("privacy") as privacy, pytest.raises(ValueError, match="deletes no events"):
        cleanup_gdpr_data(privacy, "bob", anonymize=False, accessor="test")


def test_privacy_operator_cannot_append_or_read_jobs(secured: Secured) -> None:
    with secured.store("privacy") as privacy, pytest.raises(STORE_DENIED, match="permission denied"):
        privacy.append_events("cart-9", [ev(aggregate_id="cart-9")])
    s = secured.schema
    with secured.connect("privacy") as conn:
        refused(conn, f"DELETE FROM {s}.jobs")  # (it runs its own forget jobs: issue 10)
        refused(conn, f"INSERT INTO {s}.event_types (event_type) VALUES ('X')")
        refused(conn, f"SELECT * FROM {s}.event_access_log")


# -- the command ------------------------------------------------------------------


def roles_cli(args: list[str], url: str | None, schema: str = "shop",
              **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": "/usr/bin:/bin", "EVENT_STORE_SCHEMA": schema, "COLUMNS": "200", **env}
    if url:
        full["DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "evstore.cli", "roles", *args], env=full,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_apply_as_the_owner_is_idempotent_and_grants_nothing_more(owner_only: Secured) -> None:
    s = owner_only
    for _ in range(2):
        done = roles_cli(["--apply", "--prefix", s.prefix, "--json"], s.url("owner"))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"applied": True, "schema": "shop", "roles": s.names}
    with psycopg.connect(s.admin_url) as admin:
        rows = admin.execute(
            "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE table_schema = 'shop' AND grantee = %s ORDER BY 2, 3",
            [s.names["writer"]]).fetchall()
    tables = {(t, p) for _, t, p in rows}
    assert tables == {("events", "INSERT"), ("events", "SELECT"), ("streams", "INSERT"),
                      ("streams", "SELECT"), ("event_types", "INSERT"),
                      ("event_types", "SELECT"), ("event_index", "SELECT"),
                      ("schema_migrations", "SELECT"),
                      # the access log (issue 11): appends chained entries, never reads the log
                      ("event_access_log", "INSERT"), ("event_access_log_head", "SELECT"),
                      ("event_access_log_head", "UPDATE"), ("subject_consents", "SELECT"),
                      ("legal_holds", "SELECT"),
                      # per-subject encryption (issue 10): data keys read or made, blind index
                      ("subject_keys", "SELECT"), ("subject_keys", "INSERT"),
                      ("blind_index", "INSERT"),
                      # read-through of archived history (issue 13): the catalog lookup
                      ("archive_catalog", "SELECT"), ("archive_runs", "SELECT"),
                      ("archive_segments", "SELECT")}


def test_apply_by_a_user_who_cannot_create_roles_fails_clearly(secured: Secured) -> None:
    other = unique_prefix()
    try:
        done = roles_cli(["--apply", "--prefix", other], secured.url("writer"))
        assert done.returncode == 1
        assert "cannot create roles" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        with psycopg.connect(secured.admin_url) as admin:
            assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s",
                                 [other + "%"]).fetchone() == (0,)
    finally:
        drop_roles(secured.admin_url, list(role_names(other).values()))


def test_apply_refuses_a_schema_owned_by_another_role(owner_only: Secured) -> None:
    done = roles_cli(["--apply", "--prefix", unique_prefix()], owner_only.admin_url)
    assert done.returncode == 1
    assert "is owned by" in done.stderr and "Traceback" not in done.stderr


def test_apply_without_a_server_is_unavailable() -> None:
    done = roles_cli(["--apply"], "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 3 and "Traceback" not in done.stderr


def test_print_needs_no_database_and_never_shows_a_password(tmp_path: Path) -> None:
    secret = tmp_path / "writer.pw"
    secret.write_text("correct horse battery\n")
    done = roles_cli(["--password-file", f"writer={secret}"], None, schema="shop")
    assert done.returncode == 0, done.stderr
    assert "correct horse" not in done.stdout
    assert "ALTER ROLE \"shop_writer\" PASSWORD 'SCRAM-SHA-256$4096:" in done.stdout
    assert done.stdout.startswith("BEGIN;") and done.stdout.rstrip().endswith("COMMIT;")
    as_json = json.loads(roles_cli(["--json"], None, schema="shop").stdout)
    assert as_json["roles"]["privacy"] == "shop_privacy"
    assert [s["purpose"] for s in as_json["statements"]][-1] == "grants of the privacy"


@pytest.mark.parametrize("args, expected", [
    (["--prefix", "Bad-Name"], "role prefix"),
    (["--prefix", "x" * 60], "role prefix"),
    (["--password-file", "writer"], "COMPONENT=PATH"),
    (["--password-file", "writer=/nonexistent/pw"], "cannot read the writer password file"),
    (["--password-file", "admin=/dev/null"], "unknown component"),
    (["--password-file", "writer=/dev/null"], "is empty"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], expected: str) -> None:
    done = roles_cli(args, None)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_password_is_sent_as_a_scram_verifier_libpq_agrees_with(secured: Secured,
                                                               tmp_path: Path) -> None:
    # Given libpq's own verifier for a password, ours with the same salt is identical.
    with psycopg.connect(secured.admin_url) as admin:
        theirs = admin.pgconn.encrypt_password(b"pencil", b"u", b"scram-sha-256").decode()
    salt = theirs.split("$")[1].split(":")[1]
    assert scram_verifier("pencil", base64.b64decode(salt)) == theirs
    # And --apply stores a verifier, never the password, in pg_authid.
    pw = tmp_path / "reader.pw"
    pw.write_text("pencil")
    done = roles_cli(["--apply", "--prefix", secured.prefix, "--password-file", f"reader={pw}"],
                     secured.url("owner"))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(secured.admin_url) as admin:
        (stored,) = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                  [secured.names["reader"]]).fetchone() or (None,)
    assert stored.startswith("SCRAM-SHA-256$4096:") and "pencil" not in stored


def test_real_worker_processes_run_a_job_as_the_worker_role(
        secured: Secured, redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from evstore.workers.broker import make_broker
    from evstore.workers.engine import JobEngine
    from evstore.workers.pool import WorkerPool, wait_for

    monkeypatch.setenv("EVENT_STORE_SCHEMA", secured.schema)
    before = partitions(secured)
    # Given a pool of real `dramatiq` worker processes logged in as the worker role,
    pool = WorkerPool(secured.url("worker"), redis_url, processes=1, threads=1,
                      env={"EVENT_STORE_SCHEMA": secured.schema, "EVSTORE_JOB_SWEEP_INTERVAL": "0.5",
                           "dramatiq_worker_timeout": "250"},
                      log_path=tmp_path / "workers.log", cwd=ROOT).start()
    broker = make_broker(redis_url)
    try:
        with secured.store("worker") as worker:
            # when the worker role starts a partition-upkeep job,
            engine = JobEngine(worker, broker)
            job_id = engine.start("partitions", {"months_ahead": 5})
            # then a worker process claims and completes its batch.
            job = wait_for(lambda: (j := engine.repo.get(job_id)).status in
                           ("succeeded", "failed") and j, timeout=120, what="the job to finish")
            assert job.status == "succeeded", (tmp_path / "workers.log").read_text()[-3000:]
    finally:
        pool.terminate()
        pool.stop(timeout=20)
        broker.client.close()
    created = set(partitions(secured)) - set(before)
    assert len(created) == 2  # this month and 3 ahead existed; 4 and 5 ahead are new
    assert {partitions(secured)[m][1] for m in created} == {secured.names["owner"]}


def test_scheduler_firings_run_as_the_worker_role(secured: Secured) -> None:
    from evstore.core.jobs import firings

    at = datetime(2031, 1, 1, tzinfo=UTC)
    with secured.store("worker") as worker:
        assert firings.claim_firing(worker, "nightly", at, "replica-a")
        assert not firings.claim_firing(worker, "nightly", at, "replica-b")
        assert firings.stale_claims(worker, ["nightly"], 0) == [("nightly", at)]
        assert firings.take_over_firing(worker, "nightly", at, "replica-b", 0) is not None
        assert firings.record_firing(worker, "nightly", at, status="enqueued", job_kind="partitions",
                                     job_id="1", replica="replica-b")
        assert firings.last_firings(worker)["nightly"].status == "enqueued"
    with secured.store("writer") as writer, pytest.raises(STORE_DENIED, match="permission denied"):
        firings.claim_firing(writer, "nightly", at, "intruder")


def test_worker_archives_and_deletes_archived_events(
        secured: Secured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evstore.core.archive import ArchivalPolicy, EventArchiver

    target = tmp_path / "archive"
    monkeypatch.setenv("EVSTORE_ARCHIVE_TARGETS", str(target))
    with secured.store("writer") as writer:
        writer.append_events("cart-1", [ev(), ev(), ev()])
    policy = ArchivalPolicy(name="keep-one", strategy="count_based", keep_events=1,
                            target_url=str(target))
    with secured.store("worker") as worker:
        result = EventArchiver(worker).archive(policy)
        assert result.events == 2 and result.run.status == "completed"
    with psycopg.connect(secured.admin_url) as admin:
        live = admin.execute(f"SELECT stream_position FROM {secured.schema}.events "
                             "WHERE stream_id = 'cart-1'").fetchall()
    assert live == [(3,)]
    # The writer still reads the whole history: positions 1 and 2 through the archive.
    with secured.store("writer") as writer:
        assert [e.stream_position for e in writer.read_stream("cart-1")] == [1, 2, 3]


def test_apply_refuses_an_existing_role_with_more_than_least_privilege(owner_only: Secured) -> None:
    s = owner_only
    with psycopg.connect(s.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{s.names["worker"]}" LOGIN CREATEDB BYPASSRLS')
    done = roles_cli(["--apply", "--prefix", s.prefix], s.url("owner"))
    assert done.returncode == 1
    assert "CREATEDB, BYPASSRLS" in done.stderr and "nothing was changed" in done.stderr
    with psycopg.connect(s.admin_url) as admin:
        assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                             [s.names["writer"]]).fetchone() == (0,)


def test_no_login_makes_group_roles(owner_only: Secured) -> None:
    s = owner_only
    done = roles_cli(["--apply", "--prefix", s.prefix, "--no-login"], s.url("owner"))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(s.admin_url) as admin:
        rows = dict(admin.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)",
                                  [list(s.names.values())]).fetchall())
    assert rows == {**{s.names[c]: False for c in ("writer", "reader", "worker", "privacy")},
                    s.names["owner"]: True}
