"""Find the segments an archive URL names: a run, a segment, or a folder of runs.

Accepted URLs (any target protocol, or a plain local path):

- ``…/<run>/run.json`` or ``…/<run>``: the run's segments, from its manifest;
- ``…/segment-00001.manifest.json``, ``…/segment-00001.tsv.zst`` (or a format-1
  ``…/segment-00001.jsonl.zst``): one segment;
- any other folder: every segment manifest below it (several runs, a policy).

A run manifest is accepted (signature, plain names) before any segment
manifest it lists is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .segments import DATA_SUFFIXES, MANIFEST_SUFFIX, RUN_MANIFEST, RunManifest, sha256
from .targets import ArchiveTarget


@dataclass(frozen=True)
class Located:
    target: ArchiveTarget  # opened at the folder holding the files
    manifests: list[str]  # segment manifests, relative to the target
    run: RunManifest | None
    problems: list[str]  # found while locating (a run manifest that lists a changed segment)


def _split(url: str) -> tuple[str, str]:
    folder, _, name = url.rstrip("/").rpartition("/")
    return folder, name


def locate(url: str, trust_unsigned: bool = False) -> Located:
    url = url.rstrip("/")
    _, name = _split(url)
    suffix = next((s for s in DATA_SUFFIXES if name.endswith(s)), None)
    if suffix is not None:
        folder, name = _split(url)
        return Located(ArchiveTarget(folder), [name[: -len(suffix)] + MANIFEST_SUFFIX],
                       None, [])
    if name.endswith(MANIFEST_SUFFIX):
        folder, name = _split(url)
        return Located(ArchiveTarget(folder), [name], None, [])
    if name == RUN_MANIFEST:
        url, _ = _split(url)
    target = ArchiveTarget(url)
    if target.exists(RUN_MANIFEST):
        run = RunManifest.from_bytes(
            target.read(RUN_MANIFEST), target.url_of(RUN_MANIFEST), trust_unsigned
        )
        problems = []
        for seg in run.segments:
            if not target.exists(seg["manifest"]):
                problems.append(f"{target.url_of(seg['manifest'])}: missing")
            elif sha256(target.read(seg["manifest"])) != seg["manifest_sha256"]:
                problems.append(
                    f"{target.url_of(seg['manifest'])}: differs from the run manifest's SHA-256"
                )
        return Located(target, [s["manifest"] for s in run.segments], run, problems)
    return Located(target, target.find("", MANIFEST_SUFFIX), None, [])
