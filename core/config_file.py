"""Archive and schedule configuration: one TOML file plus environment overrides.

``EVSTORE_CONFIG`` (or ``evstore --config FILE``) names a TOML file; without
it, ``$EVSTORE_HOME/evstore.toml`` is read when present. Never a file of the
current folder: a stray ``evstore.toml`` where a command happens to run
must not change what it does (nor who it uploads data to)::

    [storage.s3]                       # options for every s3:// target
    endpoint_url = "http://127.0.0.1:5555"
    key = "${AWS_ACCESS_KEY_ID}"        # ${VAR} is read from the environment
    secret = "${AWS_SECRET_ACCESS_KEY}"

    [storage."s3://cold-bucket"]        # a URL prefix: the longest match wins
    endpoint_url = "https://s3.eu-west-1.amazonaws.com"

    [archive.policies.old-months]
    strategy = "time_based"
    retention_days = 90
    target = "s3://cold-bucket/events"
    schedule = "cron: 0 3 * * *"

    [schedules.partitions]
    kind = "partitions"
    schedule = "interval: 1d"
    months_ahead = 3

``EVSTORE_ARCHIVE_STORAGE_OPTIONS`` (JSON: ``{"s3": {...}, "az://box": {...}}``)
adds to and overrides the file's ``[storage]`` tables, so secrets can stay in
the environment of the worker processes. Credentials are never stored in the
database nor in archive manifests.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import default_home
from .errors import ConfigurationError

CONFIG_ENV = "EVSTORE_CONFIG"
STORAGE_ENV = "EVSTORE_ARCHIVE_STORAGE_OPTIONS"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def config_path() -> Path | None:
    """EVSTORE_CONFIG (which must exist), else ``$EVSTORE_HOME/evstore.toml`` when present."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV}: no such file {named!r}")
        return path
    default = home_config_path()
    return default if default.is_file() else None


def home_config_path() -> Path:
    """The configuration file read when EVSTORE_CONFIG is not set."""
    home = os.environ.get("EVSTORE_HOME")
    return (Path(home) if home else default_home()) / "evstore.toml"


def expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigurationError(f"{where}: environment variable {name} is not set")
            return os.environ[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, where) for v in value]
    return value


@cache
def _load_file(path: str, mtime: float) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{CONFIG_ENV}: {path} is not valid TOML: {exc}") from exc


def load_config() -> dict[str, Any]:
    """The parsed configuration file (an empty dict when there is none)."""
    path = config_path()
    if path is None:
        return {}
    return _load_file(str(path), path.stat().st_mtime)


def env_storage() -> dict[str, Any]:
    raw = os.environ.get(STORAGE_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{STORAGE_ENV}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigurationError(
            f'{STORAGE_ENV}: expected an object of objects, e.g. {{"s3": {{"endpoint_url": "..."}}}}'
        )
    return value


def protocol_of(url: str) -> str:
    """The URL's protocol (``file`` for a plain path, Windows drive letters included)."""
    scheme = urlsplit(url).scheme.lower()
    return scheme if scheme and len(scheme) > 1 else "file"  # "C:/..." is a path


def config_source() -> str:
    """The file the configuration comes from, for messages ("no configuration file" if none)."""
    path = config_path()
    return str(path) if path is not None else "no configuration file"


def policy_table(name: str) -> dict[str, Any] | None:
    """One ``[archive.policies.NAME]`` table (None when the file has no such policy).

    A command that uses one policy reads only that one, so that another,
    broken policy of the same file stops only the commands that use it.
    """
    section = load_config().get("archive", {}).get("policies", {})
    if not isinstance(section, dict):
        raise ConfigurationError(f"{config_source()}: [archive.policies] must be a table of policies")
    table = section.get(name)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigurationError(f"{config_source()}: [archive.policies.{name}] must be a table")
    return expand(dict(table), f"archive.policies.{name}")  # type: ignore[no-any-return]


def policy_tables() -> dict[str, dict[str, Any]]:
    """``[archive.policies.NAME]`` tables of the configuration file."""
    section = load_config().get("archive", {}).get("policies", {})
    if not isinstance(section, dict):
        raise ConfigurationError("[archive.policies] must be a table of policies")
    return {name: expand(dict(table), f"archive.policies.{name}") for name, table in section.items()}


def schedule_tables() -> dict[str, dict[str, Any]]:
    """``[schedules.NAME]`` tables of the configuration file."""
    section = load_config().get("schedules", {})
    if not isinstance(section, dict):
        raise ConfigurationError("[schedules] must be a table of schedules")
    return {name: expand(dict(table), f"schedules.{name}") for name, table in section.items()}
