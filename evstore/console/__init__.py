"""The operator's web console (see docs/console.md)."""

from __future__ import annotations
