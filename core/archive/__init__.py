"""Archival of events to files, S3, GCS and Azure through fsspec (see docs/archive.md).

The invariant: nothing leaves PostgreSQL before its archive is read back and
checked. A run is planned (``runs``), its segments exported and verified on
the target (``export``, ``targets``), and only ``finalize`` deletes rows or
drops partitions, after checking every segment once more. Every statement is
a named block of ``sql/archive.sql`` loaded with ``store.db.sql("archive", name)``.

Importing this package imports no fsspec back-end: s3fs, gcsfs and adlfs are
loaded when a target URL needs them.
"""

from __future__ import annotations

from ..privacy.gdpr import GdprCleanupResult, cleanup_gdpr_data, get_anonymizer, register_anonymizer
from .archiver import ArchiveResult, EventArchiver, run_policy
from .export import SegmentResult, export_segment
from .finalize import finalize_run
from .policies import (
    ArchivalPolicy,
    ArchivalStrategy,
    get_policy,
    list_policies,
    register_policy,
    unregister_policy,
)
from .readthrough import install as _install_read_through
from .restore import ArchiveVerifyReport, RestoreResult, restore_archive, verify_archive
from .runs import ArchiveRun, ArchiveSegment, get_run, list_runs, list_segments, plan_run
from .selection import ArchivePreview, preview
from .targets import ArchiveTarget

_install_read_through()  # read_stream completes archived history (readthrough.py)

__all__ = [
    "ArchivalPolicy",
    "ArchivalStrategy",
    "ArchivePreview",
    "ArchiveResult",
    "ArchiveRun",
    "ArchiveSegment",
    "ArchiveTarget",
    "ArchiveVerifyReport",
    "EventArchiver",
    "GdprCleanupResult",
    "RestoreResult",
    "SegmentResult",
    "cleanup_gdpr_data",
    "export_segment",
    "finalize_run",
    "get_anonymizer",
    "get_policy",
    "get_run",
    "list_policies",
    "list_runs",
    "list_segments",
    "plan_run",
    "preview",
    "register_anonymizer",
    "register_policy",
    "restore_archive",
    "run_policy",
    "unregister_policy",
    "verify_archive",
]
