"""Reruns replace a participant's outputs instead of adding to them.

A series renamed by a rerun (another threshold, a newer model, a person's ``--relabel``) would
otherwise keep its old file beside the new one: two images of one series, a ``scans.tsv`` row
for each, and a sidecar that contradicts the table. What the previous run wrote is read from
its participant table before the rerun replaces it; per series, files it no longer writes are
removed. Conservative by design: a series that fails this time keeps its earlier output, and
a file that any series of this run wrote is never touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from bidsapp.derivatives import participant_tsv_path, read_tsv, sidecar_path
from bidsapp.naming import companions, image_core
from bidsapp.records import SeriesResult

log = logging.getLogger(__name__)


def previous_outputs(deriv_root: Path, subject: str) -> dict[str, str]:
    """``{series_uid: bids_path}`` of the participant's last run (empty on a first run)."""
    path = participant_tsv_path(deriv_root, subject)
    if not path.is_file():
        return {}
    return {row["series_uid"]: row["bids_path"] for row in read_tsv(path) if row.get("bids_path")}


def replaced_files(previous: dict[str, str], results: Iterable[SeriesResult], written_now: set[str],
                   files_of: Callable[[str], list[str]]) -> list[str]:
    """Images the previous run wrote for series that this run wrote elsewhere or set aside.

    ``files_of(bids_path)`` lists every image of the series whose first image is ``bids_path``
    (a multi-echo series has several); ``written_now`` holds every image of this run."""
    stale: set[str] = set()
    for r in results:
        old = previous.get(r.series.series_uid)
        if not old or r.status == "error" or old == r.bids_path:
            continue
        stale.update(p for p in files_of(old) if p not in written_now)
    return sorted(stale)


def remove(out_dir: Path, deriv_root: Path, images: list[str]) -> None:
    """Delete each image (path relative to ``out_dir``), its BIDS sidecars and companions, its ``_mrclass.json``
    under ``deriv_root`` and its row of the session's ``scans.tsv``."""
    for rel in images:
        core = image_core(rel)
        derivative = sidecar_path(deriv_root, rel)
        targets = [Path(out_dir) / rel, *(Path(out_dir) / path for path in companions(core)), derivative]
        for path in targets:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        update_scans_row(Path(out_dir), rel)
        prune_empty(Path(out_dir) / rel, Path(out_dir))
        prune_empty(derivative, Path(deriv_root))
        log.info("removed %s: this run named its series differently", rel)


def prune_empty(path: Path, root: Path) -> None:
    """Remove the folders above ``path`` that are now empty (an anat/ whose last image moved),
    up to but not including ``root``."""
    folder = path.parent
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): stop
            return
        folder = folder.parent


def update_scans_row(out_dir: Path, image: str, renamed: str | None = None) -> None:
    """Remove ``image``'s row from the scans tables above it, or name ``renamed`` (the same folder) in
    it instead of a row a previous run left for that name. heudiconv writes one per subject
    (``sub-X/sub-X_scans.tsv``, rows relative to it) and one for sourcedata/unclassified; a row
    names the file relative to the table's folder."""
    parts = image.split("/")
    for depth in range(len(parts) - 1):
        folder = Path(out_dir).joinpath(*parts[:depth])
        filename = "/".join(parts[depth:])
        new = "/".join(renamed.split("/")[depth:]) if renamed else None
        for scans in folder.glob("*_scans.tsv"):
            lines = scans.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = []
            for ln in lines:
                name = ln.split("\t", 1)[0]
                if name == filename and new:
                    kept.append(new + ln[len(filename):])
                elif name not in (filename, new):
                    kept.append(ln)
            if kept != lines:
                scans.write_text("".join(kept), encoding="utf-8")
