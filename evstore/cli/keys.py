"""``evstore keys``: make a secret for keyed checksums and signed manifests, and
say which one this configuration uses (by its key id, never the secret itself)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import add_group, console, err_console, plain, print_json, settings


def generate() -> None:
    """Print a new random secret (hex) to give every process as EVSTORE_SECRET_KEY."""
    from evstore.core.keys import generate_secret

    sys.stdout.write(generate_secret() + "\n")
    sys.stdout.flush()
    err_console.print(
        "set it as EVSTORE_SECRET_KEY (or in a 0600 file named by EVSTORE_SECRET_KEY_FILE) "
        "for every process that shares the database; keep it out of the database and of git",
        style="dim", highlight=False, markup=False, soft_wrap=True,
    )


def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The key id of the configured secret and where it comes from (never the secret)."""
    from evstore.core.keys import key_id, keyring

    cfg = settings()
    if cfg.secret_key is not None:
        source, path, created = "EVSTORE_SECRET_KEY", None, False
    elif cfg.secret_key_file is not None:
        source, path, created = "EVSTORE_SECRET_KEY_FILE", Path(cfg.secret_key_file), False
    else:
        path = Path(cfg.home) / "secret.key"
        source, created = "EVSTORE_HOME", not path.exists()
    ring = keyring(cfg)
    previous = [key_id(s) for s in ring.previous]
    if as_json:
        print_json({"kid": ring.kid, "source": source, "file": str(path) if path else None,
                    "created": created, "previous_kids": previous})
        return
    where = source if path is None else f"{source}: {path}"
    console.print(plain(f"key id {ring.kid} (from {where}{', created now' if created else ''})"))
    if previous:
        console.print(plain(f"previous keys (verify only): {', '.join(previous)}"))


def register(app: typer.Typer) -> None:
    add_group(app, "keys",
              "The store's secret: keyed event checksums and signed archive manifests.",
              {"generate": generate, "show": show})
