"""Link field maps to the runs they correct, so fMRIPrep and QSIPrep use them without a person.

A phase-difference field map (``fmap/…_phasediff`` with its ``_magnitude1/2``) gets a
``B0FieldIdentifier`` and ``IntendedFor``; each BOLD run of the same session names it in
``B0FieldSource``: the field map acquired last before the run (else the first one after it),
by SeriesNumber, as field maps are acquired for the runs that follow them. Both fields are written
(BIDS 1.7+ pipelines read the identifiers, older ones IntendedFor). Sidecars are replaced
atomically: a BIDS input's hard-linked files are never written through.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bidsapp.derivatives import atomic_write_text
from bidsapp.naming import IMAGE_SUFFIXES, bids_numbered_stem, image_core
from bidsapp.records import SeriesResult


@dataclass(frozen=True)
class _Placed:
    """A written series that takes part in field-map linking."""

    kind: str  # physics kind: "bold" | "fmap_phasediff" | "fmap_magnitude"
    number: int  # SeriesNumber (acquisition order)
    images: tuple[str, ...]  # relative to the dataset root


def _placed(results: list[SeriesResult], out: Path) -> dict[str | None, list[_Placed]]:
    """By session, the written BOLD runs and field-map series, in acquisition order."""
    by_session: dict[str | None, list[_Placed]] = defaultdict(list)
    for r in results:
        c = r.classification
        kind = c.physics_kind if c else ""
        if kind not in ("bold", "fmap_phasediff", "fmap_magnitude") or not r.bids_path or r.bids_path.startswith("sourcedata"):
            continue
        core = image_core(r.bids_path)
        numbered = bids_numbered_stem(core)
        cores = [numbered + "1", numbered + "2"] if numbered else [core]
        images = sorted(f"{c}{ext}" for c in cores for ext in IMAGE_SUFFIXES if (out / f"{c}{ext}").is_file())
        by_session[r.series.session].append(_Placed(kind, r.series.header.series_number or 0, tuple(images)))
    return {s: sorted(p, key=lambda x: x.number) for s, p in by_session.items()}


def _nearest(fieldmaps: list[_Placed], number: int) -> _Placed | None:
    before = [f for f in fieldmaps if f.number < number]
    return before[-1] if before else (fieldmaps[0] if fieldmaps else None)


def _update(out: Path, image: str, fields: dict) -> None:
    sidecar = out / (image_core(image) + ".json")
    meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    if any(meta.get(k) != v for k, v in fields.items()):
        atomic_write_text(sidecar, json.dumps({**meta, **fields}, indent=2) + "\n")


def link_fieldmaps(out: Path, results: list[SeriesResult]) -> int:
    """Write the links for one participant's written series; returns how many runs were linked."""
    linked = 0
    for session, placed in _placed(results, Path(out)).items():
        phasediffs = [p for p in placed if p.kind == "fmap_phasediff"]
        magnitudes = [p for p in placed if p.kind == "fmap_magnitude"]
        runs_of: dict[_Placed, list[_Placed]] = defaultdict(list)
        for run in (p for p in placed if p.kind == "bold"):
            if (fieldmap := _nearest(phasediffs, run.number)) is not None:
                runs_of[fieldmap].append(run)
        for fieldmap, runs in runs_of.items():
            identifier = f"phasediff{fieldmap.number}"
            targets = sorted(image for run in runs for image in run.images)
            magnitude = _nearest(magnitudes, fieldmap.number + 1)  # Siemens stores magnitude just before phase
            for image in fieldmap.images + (magnitude.images if magnitude else ()):
                _update(Path(out), image, {"B0FieldIdentifier": identifier,
                                           "IntendedFor": [f"bids::{t}" for t in targets]})
            for run in runs:
                for image in run.images:
                    _update(Path(out), image, {"B0FieldSource": identifier})
            linked += len(runs)
    return linked
