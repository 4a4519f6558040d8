"""EventArchiver: the spec's archiving API over one store.

``run_policy`` runs a whole archive in this process (segments uploaded by a
small thread pool); the ``archive`` job kind of the workers calls the same
three steps — :func:`plan_run`, :func:`export_segment` per segment,
:func:`finalize_run` — so segments are uploaded by worker processes in
parallel. Either way a failure leaves every event in place and the run
resumable: running the policy again resumes its unfinished run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError, ArchiveTargetError
from ..privacy.gdpr import GdprCleanupResult, cleanup_gdpr_data
from .export import SegmentResult, export_segment
from .finalize import finalize_run
from .policies import ArchivalPolicy, get_policy, list_policies, register_policy
from .restore import ArchiveVerifyReport, RestoreResult, restore_archive, verify_archive
from .runs import ArchiveRun, list_segments, plan_run, set_run_error
from .selection import ArchivePreview, preview
from .targets import ArchiveTarget

if TYPE_CHECKING:
    from ..store.persistence import EventStore


@dataclass(frozen=True)
class ArchiveResult:
    run: ArchiveRun
    resumed: bool
    segments_uploaded: int
    segments_skipped: int
    events: int
    raw_bytes: int
    stored_bytes: int
    seconds: float

    @property
    def compression_ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


def run_policy(
    store: EventStore,
    policy: ArchivalPolicy,
    *,
    workers: int = 2,
    now: datetime | None = None,
    on_segment: Callable[[SegmentResult], None] | None = None,
    target: ArchiveTarget | None = None,
    snapshot_classes: Iterable[type[Any]] | None = None,
) -> ArchiveResult:
    """Plan (or resume) a run of ``policy``, upload its segments here, then finalize it.

    ``on_segment`` is called after each segment (in completion order of
    submission); ``target`` replaces the one opened from the policy's URL.
    """
    started = time.perf_counter()
    run, resumed = plan_run(store, policy, now=now)
    target = target or ArchiveTarget(run.target_url)
    numbers = [s.number for s in list_segments(store, run.run_id) if s.status != "deleted"]
    results: list[SegmentResult] = []
    errors: list[BaseException] = []
    if numbers:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(export_segment, store, run.run_id, n, target) for n in numbers]
            for future in futures:
                try:
                    result = future.result()
                except Exception as exc:  # every segment gets its chance; report the first
                    errors.append(exc)
                    continue
                results.append(result)
                if on_segment:
                    on_segment(result)
    if errors:
        message = f"{len(errors)} of {len(numbers)} segment(s) failed: {errors[0]}"
        set_run_error(store, run.run_id, message)
        # A target that is down is a service unavailable (the command exits 3).
        unavailable = all(isinstance(e, ArchiveTargetError) for e in errors)
        raise (ArchiveTargetError if unavailable else ArchiveError)(
            f"archive run {run.run_id} of policy {policy.name!r} is incomplete, nothing was "
            f"deleted ({message}); run the policy again to resume it"
        ) from errors[0]
    try:
        done = finalize_run(store, run.run_id, target, snapshot_classes)
    except ArchiveError as exc:
        set_run_error(store, run.run_id, str(exc))
        raise
    uploaded = [r for r in results if not r.skipped]
    return ArchiveResult(
        run=done, resumed=resumed, segments_uploaded=len(uploaded),
        segments_skipped=len(results) - len(uploaded), events=done.event_count,
        raw_bytes=sum(r.raw_bytes for r in results),
        stored_bytes=sum(r.stored_bytes for r in results),
        seconds=time.perf_counter() - started,
    )


class EventArchiver:
    """Archive, restore and verify events of one store by policy (the spec's EventArchiver)."""

    def __init__(self, store: EventStore, workers: int = 2) -> None:
        self.store = store
        self.workers = workers

    def register_policy(self, policy: ArchivalPolicy) -> ArchivalPolicy:
        return register_policy(policy)

    def policies(self) -> dict[str, ArchivalPolicy]:
        return list_policies()

    def _policy(self, policy: str | ArchivalPolicy) -> ArchivalPolicy:
        return policy if isinstance(policy, ArchivalPolicy) else get_policy(policy)

    def preview(self, policy: str | ArchivalPolicy, now: datetime | None = None) -> ArchivePreview:
        return preview(self._policy(policy), self.store, now)

    def archive(
        self, policy: str | ArchivalPolicy, now: datetime | None = None, **kwargs: Any
    ) -> ArchiveResult:
        return run_policy(self.store, self._policy(policy), workers=self.workers, now=now, **kwargs)

    def restore(self, url: str, trust_unsigned: bool = False) -> RestoreResult:
        return restore_archive(self.store, url, trust_unsigned)

    def verify(self, url: str, trust_unsigned: bool = False) -> ArchiveVerifyReport:
        return verify_archive(url, trust_unsigned)

    def cleanup_gdpr_data(self, user_id: str, anonymize: bool = True) -> GdprCleanupResult:
        """Forget a data subject everywhere (a forget job: core/privacy/gdpr.py); its counts
        (``events_anonymized``, ``snapshots_rewritten``, ``archive_segments_rewritten``,
        ``keys_destroyed``, ...; ``as_dict()``)."""
        return cleanup_gdpr_data(self.store, str(user_id), anonymize=anonymize)

    def target(self, policy: str | ArchivalPolicy) -> ArchiveTarget:
        return ArchiveTarget(self._policy(policy).target_url)
