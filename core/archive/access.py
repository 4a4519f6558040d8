"""Which archive targets this process may open, and the storage options of each.

A run's target URL is read back from ``archive_runs`` and a job's policy from
its parameters, so whoever can write a row could otherwise choose where
personal data is uploaded. A target is opened only when the configuration of
*this* process allows it (see docs/archive.md):

- ``EVSTORE_ARCHIVE_TARGETS``: comma-separated URLs or paths;
- the ``[archive] targets`` list of the configuration file;
- the ``target`` of every ``[archive.policies.NAME]`` table of that file;
- ``$EVSTORE_HOME/archive`` (the embedded default).

A URL is allowed when it is one of those or lies below one, compared at a
path boundary on a canonical form (``s3://cold-bucket`` does not allow
``s3://cold-bucket-evil``; a local path is made absolute and resolved, so
``/allowed/../elsewhere`` is not below ``/allowed``). Storage options of
``[storage."<url>"]`` tables match the same way.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import home_dir
from ..config_file import env_storage, expand, load_config, protocol_of
from ..errors import ConfigurationError

ALLOW_ENV = "EVSTORE_ARCHIVE_TARGETS"
# Spellings of one protocol, folded so that an allowed s3:// target also covers s3a://.
ALIASES = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "local": "file"}


def canonical(url: str) -> str:
    """``protocol://rest`` with no trailing slash; local paths absolute and resolved.

    ConfigurationError for an object-store URL with a ``.`` or ``..`` segment
    (a key of that name is legal, but never one evstore writes).
    """
    protocol = protocol_of(url)
    rest = url.split("://", 1)[1] if "://" in url else url
    if protocol in ("file", "local"):
        return "file://" + os.path.realpath(os.path.abspath(rest or "/"))
    parts = rest.split("/")
    if any(part in (".", "..") for part in parts):
        raise ConfigurationError(f"archive target {url!r}: '.' and '..' are not allowed in a URL")
    return f"{ALIASES.get(protocol, protocol)}://{rest.rstrip('/')}"


def within(url: str, prefix: str) -> bool:
    """Whether canonical ``url`` is canonical ``prefix`` or below it (at a '/')."""
    return url == prefix or url.startswith(prefix.rstrip("/") + "/")


def _configured_policy_targets(config: dict[str, Any]) -> list[str]:
    found = []
    policies = config.get("archive", {}).get("policies", {})
    for name, table in policies.items() if isinstance(policies, dict) else ():
        target = (table.get("target") or table.get("target_url")) if isinstance(table, dict) else None
        if not isinstance(target, str):
            continue
        try:
            found.append(str(expand(target, f"archive.policies.{name}.target")))
        except ConfigurationError:
            continue  # a broken policy fails where it is used, not every target check
    return found


def allowed_targets() -> list[str]:
    """The allowed targets, as configured (not canonical)."""
    found = [part.strip() for part in os.environ.get(ALLOW_ENV, "").split(",") if part.strip()]
    config = load_config()
    listed = config.get("archive", {}).get("targets", [])
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
        raise ConfigurationError("[archive] targets must be a list of URLs")
    found += [str(expand(t, "archive.targets")) for t in listed]
    found += _configured_policy_targets(config)
    found.append(str(home_dir() / "archive"))
    return found


def check_allowed(url: str) -> None:
    """ConfigurationError unless the configuration allows the target ``url``."""
    target = canonical(url)
    allowed = allowed_targets()
    if any(within(target, canonical(prefix)) for prefix in allowed):
        return
    raise ConfigurationError(
        f"{url!r} is not an allowed archive target: allow it in {ALLOW_ENV} (comma-separated) "
        f"or in the [archive] targets list of the configuration file (allowed now: "
        f"{', '.join(allowed)})"
    )


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: its protocol's table, then the ``[storage."<url>"]``
    tables it lies within, shortest first (so the longest wins)."""
    tables: dict[str, dict[str, Any]] = {}
    for source in (load_config().get("storage", {}), env_storage()):
        for key, table in source.items():
            tables.setdefault(key, {}).update(table)
    protocol = protocol_of(url)
    options: dict[str, Any] = {}
    for name in dict.fromkeys((ALIASES.get(protocol, protocol), protocol)):
        options.update(tables.get(name, {}))
    target = canonical(url)
    matching = [(len(canonical(key)), key) for key in tables
                if "://" in key and within(target, canonical(key))]
    for _length, key in sorted(matching):
        options.update(tables[key])
    return expand(options, f"storage options for {url}")  # type: ignore[no-any-return]
