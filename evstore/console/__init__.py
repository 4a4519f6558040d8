"""The operator's web console (see docs/console.md)."""

from __future__ import annotations

from .app import create_console_app

__all__ = ["create_console_app"]
