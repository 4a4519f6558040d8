"""Bad input to the command: one line on stderr, exit 2, and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import evstore


def _line(agg: str, **data: object) -> str:
    return json.dumps({"aggregate_type": "User", "aggregate_id": agg, "event_type": "UserSeen",
                       "event_data": data})


def _stored(env: dict[str, str]) -> int:
    out = evstore(["read-all", "--json", "--limit", "1000"], env)
    assert out.returncode == 0, out.stderr
    return len(json.loads(out.stdout)["events"])


@pytest.mark.parametrize("bad", ["\\ud800", "\\u0000"], ids=["lone-surrogate", "nul"])
def test_a_line_that_cannot_be_stored_at_line_101_writes_nothing(env: dict[str, str], bad: str) -> None:
    # Given 100 good lines of one stream, then a line of another stream whose
    # data passes the line check but cannot be stored (jsonb refuses it)
    good = [_line("1", n=i) for i in range(100)]
    bad_line = '{"aggregate_type": "User", "aggregate_id": "2", "event_type": "UserSeen", ' \
               '"event_data": {"name": "x' + bad + 'y"}}'
    # When they are appended
    out = evstore(["append", "-"], env, stdin="\n".join([*good, bad_line, _line("3", n=1)]))
    # Then the command names line 101, and nothing at all was stored
    assert out.returncode == 2, out.stderr
    assert "line 101" in out.stderr and "Traceback" not in out.stderr
    assert _stored(env) == 0


def test_every_bad_line_is_reported_before_anything_is_written(env: dict[str, str]) -> None:
    lines = [_line("1", n=1), _line("2", s="a\ud800"), _line("2", n=2), _line("3", s="\u0000")]
    text = "\n".join(json.dumps(json.loads(x), ensure_ascii=True) for x in lines)
    out = evstore(["append", "-"], env, stdin=text)
    assert out.returncode == 2
    assert "line 2" in out.stderr and "line 4" in out.stderr and "surrogate" in out.stderr
    assert _stored(env) == 0


def test_append_of_a_missing_file_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    out = evstore(["append", str(missing)], env)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "missing.jsonl" in out.stderr and "no such file" in out.stderr.lower()


def test_append_of_a_folder_or_a_binary_file_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    binary = tmp_path / "events.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for source in (str(tmp_path), str(binary)):
        out = evstore(["append", source], env)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert _stored(env) == 0


BAD_NUMBERS = [
    (["verify", "--from", "-5"], "--from"),
    (["verify", "--to", "-1"], "--to"),
    (["verify", "--from", "10", "--to", "5"], "--to"),
    (["read", "User-1", "--from", "-1"], "--from"),
    (["read", "User-1", "--max", "0"], "--max"),
    (["read", "User-1", "--max", "-3"], "--max"),
    (["read-all", "--limit", "0"], "--limit"),
    (["read-all", "--limit", "-1"], "--limit"),
    (["read-all", "--limit", "100000000"], "--limit"),
    (["tail", "--interval", "-1"], "--interval"),
    (["tail", "--max-events", "0"], "--max-events"),
    (["tail", "--idle-timeout", "-1"], "--idle-timeout"),
    (["init", "--months-ahead", "-1"], "--months-ahead"),
    (["partitions", "ensure", "--months-ahead", "-2"], "--months-ahead"),
    (["partitions", "ensure", "--months-ahead", "1000"], "--months-ahead"),
    (["snapshots", "build", "nomodule:Nothing", "--every", "0"], "--every"),
    (["snapshots", "build", "nomodule:Nothing", "--batch-size", "-1"], "--batch-size"),
    (["snapshots", "build", "nomodule:Nothing", "--max-age", "-1"], "--max-age"),
    (["snapshots", "build", "nomodule:Nothing", "--budget-ms", "0"], "--budget-ms"),
    (["snapshots", "build", "nomodule:Nothing", "--min-events", "-1"], "--min-events"),
    (["demo", "--users", "-1"], "--users"),
    (["demo", "--writers", "0"], "--writers"),
    (["demo", "--power-users", "-1"], "--power-users"),
    (["demo", "--power-logins", "-1"], "--power-logins"),
    (["demo", "--worker-processes", "0"], "--worker-processes"),
]


@pytest.mark.parametrize(("args", "option"), BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_a_number_out_of_range_is_refused(env: dict[str, str], args: list[str], option: str) -> None:
    out = evstore(args, env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
