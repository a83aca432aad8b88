"""Link field maps to the runs they correct, so fMRIPrep and QSIPrep use them without a person.

Three kinds of field map are recognised by physics and placed in ``fmap/``:

* a gradient-echo phase-difference map (``_phasediff`` with its ``_magnitude1/2``), which corrects
  the BOLD runs;
* a direct field map in Hz (GE's B0 map: ``_fieldmap`` with its ``_magnitude``), which corrects the
  BOLD runs; a lone Hz map is no field map (sdcflows needs its magnitude);
* an SE-EPI ("pepolar", topup) field map: consecutive ``_dir-<label>_epi`` series, with no run or
  other field map between them, in at least two phase-encoding directions (one direction alone
  estimates nothing, and sdcflows refuses such an identifier), which corrects the BOLD and the DWI
  runs (QSIPrep corrects diffusion with the same pair).

Every image of a field map gets a ``B0FieldIdentifier`` and ``IntendedFor``; each run of the same
session names in ``B0FieldSource`` the one field map that may correct it and was acquired last
before it (else the first one after it), by SeriesNumber, as field maps are acquired for the
runs that follow them. Both fields are written (BIDS 1.7+ pipelines read the identifiers, older
ones IntendedFor). Sidecars are replaced atomically: a BIDS input's hard-linked files are never
written through.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bidsapp.derivatives import atomic_write_text
from bidsapp.naming import IMAGE_SUFFIXES, image_core, series_cores, series_stem
from bidsapp.records import SeriesResult

RUN_KINDS = ("bold", "dwi")
FIELDMAP_KINDS = ("fmap_phasediff", "fmap_magnitude", "fmap_epi", "fmap_fieldmap")


@dataclass(frozen=True)
class _Placed:
    """A written series that takes part in field-map linking."""

    kind: str  # "bold" | "dwi" | one of FIELDMAP_KINDS
    number: int  # SeriesNumber (acquisition order)
    images: tuple[str, ...]  # relative to the dataset root
    direction: str = ""  # dir- label of an _epi


@dataclass(frozen=True)
class _FieldMap:
    """One field map: the series that carry its identifier, and the run kinds it corrects."""

    identifier: str
    number: int  # SeriesNumber the runs are compared with: the field map is complete there
    sources: tuple[_Placed, ...]
    corrects: tuple[str, ...]


def _kind(r: SeriesResult) -> str:
    kind = r.classification.physics_kind if r.classification else ""
    return "dwi" if image_core(r.bids_path).endswith("_dwi") else kind


def _placed(results: list[SeriesResult], out: Path) -> dict[str | None, list[_Placed]]:
    """By session, the written runs and field-map series, in acquisition order."""
    by_session: dict[str | None, list[_Placed]] = defaultdict(list)
    for r in results:
        kind = _kind(r)
        if kind not in RUN_KINDS + FIELDMAP_KINDS or not r.bids_path or r.bids_path.startswith("sourcedata"):
            continue
        core = image_core(r.bids_path)
        cores = series_cores(series_stem(core))
        images = sorted(f"{c}{ext}" for c in cores for ext in IMAGE_SUFFIXES if (out / f"{c}{ext}").is_file())
        direction = m.group(1) if (m := re.search(r"_dir-([a-zA-Z0-9]+)_", core)) else ""
        by_session[r.series.session].append(_Placed(kind, r.series.header.series_number or 0, tuple(images), direction))
    return {s: sorted(p, key=lambda x: x.number) for s, p in by_session.items()}


def _nearest(candidates: list, number: int):
    """The candidate (sorted by ``.number``) acquired last before ``number``, else the first after."""
    before = [c for c in candidates if c.number < number]
    return before[-1] if before else (candidates[0] if candidates else None)


def _gradient_echo_maps(placed: list[_Placed]) -> list[_FieldMap]:
    magnitudes = [p for p in placed if p.kind == "fmap_magnitude"]
    maps = []
    for phasediff in (p for p in placed if p.kind == "fmap_phasediff"):
        magnitude = _nearest(magnitudes, phasediff.number + 1)  # Siemens stores magnitude just before phase
        maps.append(_FieldMap(f"phasediff{phasediff.number}", phasediff.number,
                              (phasediff,) + ((magnitude,) if magnitude else ()), ("bold",)))
    return maps


def _direct_maps(placed: list[_Placed]) -> list[_FieldMap]:
    """GE B0 maps with both images written, the Hz map and its magnitude (sdcflows needs the magnitude)."""
    return [_FieldMap(f"fieldmap{p.number}", p.number, (p,), ("bold",))
            for p in placed if p.kind == "fmap_fieldmap" and len(p.images) == 2]


def _epi_maps(placed: list[_Placed]) -> list[_FieldMap]:
    groups: list[list[_Placed]] = []
    previous = ""
    for p in placed:
        if p.kind == "fmap_epi":
            if previous != "fmap_epi":
                groups.append([])
            groups[-1].append(p)
        previous = p.kind
    return [_FieldMap(f"epi{g[0].number}", g[-1].number, tuple(g), RUN_KINDS)
            for g in groups if len({p.direction for p in g}) >= 2]


def _update(out: Path, image: str, fields: dict) -> None:
    sidecar = out / (image_core(image) + ".json")
    meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    if any(meta.get(k) != v for k, v in fields.items()):
        atomic_write_text(sidecar, json.dumps({**meta, **fields}, indent=2) + "\n")


def link_fieldmaps(out: Path, results: list[SeriesResult]) -> int:
    """Write the links for one participant's written series; returns how many runs were linked."""
    out = Path(out)
    linked = 0
    for placed in _placed(results, out).values():
        maps = sorted(_gradient_echo_maps(placed) + _direct_maps(placed) + _epi_maps(placed), key=lambda m: m.number)
        runs_of: dict[_FieldMap, list[_Placed]] = defaultdict(list)
        for run in (p for p in placed if p.kind in RUN_KINDS):
            if (fieldmap := _nearest([m for m in maps if run.kind in m.corrects], run.number)) is not None:
                runs_of[fieldmap].append(run)
        for fieldmap, runs in runs_of.items():
            targets = sorted(image for run in runs for image in run.images)
            for image in (image for source in fieldmap.sources for image in source.images):
                _update(out, image, {"B0FieldIdentifier": fieldmap.identifier,
                                     "IntendedFor": [f"bids::{t}" for t in targets]})
            for image in (image for run in runs for image in run.images):
                _update(out, image, {"B0FieldSource": fieldmap.identifier})
            linked += len(runs)
    return linked
