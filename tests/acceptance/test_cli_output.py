"""Stored text is printed as text: never read as Rich markup by the command."""

from __future__ import annotations

import json

import pytest

from .helpers import evstore

NASTY = ["[/oops]", "[link=https://evil.example]click me[/link]", "[bold red]loud[/]"]


@pytest.fixture
def nasty_env(env: dict[str, str]) -> dict[str, str]:
    lines = [json.dumps({"aggregate_type": "User", "aggregate_id": f"u{i}[/x]",
                         "event_type": "UserRegistered", "event_data": {"display_name": name}})
             for i, name in enumerate(NASTY)]
    lines.append(json.dumps({"aggregate_type": "[/Agg]", "aggregate_id": "a",
                             "event_type": "[link=https://evil.example]Evt[/link]",
                             "event_data": {}}))
    out = evstore(["append", "-"], env, stdin="\n".join(lines))
    assert out.returncode == 0, out.stderr
    return {**env, "FORCE_COLOR": "1"}  # as on a terminal: links and styles are emitted


def _no_markup_applied(text: str) -> None:
    assert "Traceback" not in text and "MarkupError" not in text
    assert "\x1b]8;" not in text  # no terminal hyperlink


def test_read_prints_markup_in_events_as_text(nasty_env: dict[str, str]) -> None:
    out = evstore(["read", "User-u0[/x]"], nasty_env)
    assert out.returncode == 0, out.stderr
    _no_markup_applied(out.stdout + out.stderr)
    assert "[/oops]" in out.stdout and "User-u0[/x]" in out.stdout


def test_read_all_prints_markup_in_events_as_text(nasty_env: dict[str, str]) -> None:
    out = evstore(["read-all"], nasty_env)
    assert out.returncode == 0, out.stderr
    _no_markup_applied(out.stdout + out.stderr)
    for name in ("[/oops]", "[link=https://evil.example]click me[/link]", "[bold red]loud[/]"):
        assert json.dumps(name)[1:-1] in out.stdout
    assert "[link=https://evil.example]Evt[/link]" in out.stdout


def test_stats_and_snapshot_stats_print_type_names_as_text(nasty_env: dict[str, str]) -> None:
    out = evstore(["stats"], nasty_env)
    assert out.returncode == 0, out.stderr
    _no_markup_applied(out.stdout + out.stderr)
    assert "[link=https://evil.example]Evt[/link]" in out.stdout
    snaps = evstore(["snapshots", "stats"], nasty_env)
    assert snaps.returncode == 0, snaps.stderr
    _no_markup_applied(snaps.stdout + snaps.stderr)
    assert "[/Agg]" in snaps.stdout


def test_an_error_quoting_a_stream_id_prints_it_as_text(nasty_env: dict[str, str]) -> None:
    out = evstore(["read", "nothing[/here]"], nasty_env)
    assert out.returncode == 1
    _no_markup_applied(out.stderr)
    assert "'nothing[/here]' has no events" in out.stderr
