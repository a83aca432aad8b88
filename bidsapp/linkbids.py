"""BIDS input → sorted derivatives dataset: classify each NIfTI, name it, hard-link it.

The input tree is only read: images and their JSON/bval/bvec sidecars are hard-linked (copied
when linking is impossible, e.g. across file systems) under their content-based names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from bidsapp import derivatives, header, image_sidecar, naming, perf, phase_encoding
from bidsapp.classes import BY_LABEL, OTHER
from bidsapp.records import Classification, Series, SeriesResult

log = logging.getLogger(__name__)

Classify = Callable[[Series], Classification]


#: Echoes of one series that are images of different contrasts: the longest at least this long (ms,
#: T2- or T2*-weighted) and at least twice the shortest (proton-density or T1-weighted). A dual-echo
#: PD/T2 TSE (12/96 ms) is; the in- and opposed-phase echoes of a body T1w (2.3/4.6 ms) and the
#: echoes of a multi-echo MPRAGE (1.7-7.4 ms) are one contrast each, named ``echo-N`` as before.
MIXED_WEIGHTING_TE = 40.0


def dimension_problem(label: str, n_volumes: int, echo_times: tuple[float, ...] = ()) -> str | None:
    """Why a series with ``n_volumes`` volumes and these echo times cannot take this label's BIDS
    name, or None.

    BIDS anat images are 3D and hold one contrast: a 4D series (fMRI, a repeated scan) that looks
    like a T1w, or one series whose echoes are different contrasts (``MIXED_WEIGHTING_TE``: a
    dual-echo PD/T2, which dcm2niix writes as ``_e1`` and ``_e2`` and heudiconv would name
    ``echo-1``/``echo-2`` of one label), is kept whole as "other": no echo is named as a contrast
    it does not have.
    """
    ent = BY_LABEL.get(label)
    if ent is None or ent.datatype != "anat":
        return None
    if len(echo_times) > 1 and max(echo_times) >= MIXED_WEIGHTING_TE and max(echo_times) >= 2 * min(echo_times):
        tes = ", ".join(f"{t:g}" for t in echo_times)
        return (f"one series at {len(echo_times)} echo times (TE {tes} ms) looks like {label}, but its echoes are "
                f"images of different contrasts (a dual-echo PD/T2 is two); kept whole as other, none of it named {label}")
    if n_volumes > 1:
        return f"4D series ({n_volumes} volumes) looks like {label}, but BIDS anat images are 3D; kept as other"
    return None


def image_extension(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"


def place(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (copy as fallback); an identical existing file is kept."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        if dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
            return
    tmp = dst.with_name(f".{dst.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _sidecar(s: Series) -> Path | None:
    return next((f for f in s.files[1:] if f.suffix == ".json"), None)


def _name_request(s: Series, c: Classification | None, physics_kind: str, direction: str) -> naming.NameRequest:
    """What naming needs of one series (``c`` None: named as other, whatever the classifier said)."""
    has_bvec = any(f.name.endswith(".bvec") for f in s.files)
    return naming.NameRequest(
        key=s.series_uid,
        subject=s.subject,
        session=s.session,
        label=c.label if c else OTHER,
        series_number=s.header.series_number,
        series_description=s.header.series_description or naming.image_core(s.files[0].name),
        contrast_agent=s.header.contrast_agent or naming.agent_in_name(s.files[0].name),  # an earlier sorting's ce-
        has_directions=not naming.is_trace(s.header.image_type, has_bvec=has_bvec),
        physics_kind=physics_kind,
        protocol=s.header.protocol_name,
        image_type=s.header.image_type,
        phase_encoding=direction,
        supplied=frozenset(perf.beside(s)),
    )


def _write_series(s: Series, stem: str, out_dir: Path, own_sidecar: str | None) -> None:
    """The image and the files that go with its name (sidecar, .bval/.bvec, _aslcontext.tsv) under ``stem``;
    ``own_sidecar`` replaces the input's sidecar where the App rewrote it."""
    place(s.files[0], out_dir / (stem + image_extension(s.files[0])))
    sidecar = _sidecar(s)
    for extra in s.files[1:]:
        ending = next(e for e in naming.SIDECAR_SUFFIXES + naming.ENTITY_FILES if extra.name.endswith(e))
        if naming.takes(stem, ending) and not (extra == sidecar and own_sidecar):
            place(extra, out_dir / naming.companion(stem, ending))
    if own_sidecar:
        derivatives.write_if_changed(out_dir / (stem + ".json"), own_sidecar)


def sort_participant(series: list[Series], out_dir: Path, classify: Classify, progress=None) -> list[SeriesResult]:
    """Classify, name and place every NIfTI series of one participant; one result each."""
    verdicts: dict[str, tuple[Classification | None, str]] = {}
    directions: dict[str, str] = {}  # dir- labels of the SE-EPI field maps, from the input's sidecars
    decided: dict[str, Classification] = {}
    for s in series:
        try:
            c = decided[s.series_uid] = classify(s)
            if c.label == OTHER and naming.needs_direction(c.physics_kind):
                directions[s.series_uid] = phase_encoding.label_of(s.files[0], _sidecar(s))
        except Exception as exc:  # one unreadable file must not stop the others
            text = str(exc).replace(str(s.files[0]), s.source)  # no absolute paths in rows
            msg = " ".join(f"{type(exc).__name__}: {text}".split())[:300]
            log.warning("%s failed: %s", s.source, msg)
            verdicts[s.series_uid] = (None, msg)
        if progress:
            progress(s)

    metas = {s.series_uid: image_sidecar.metadata(_sidecar(s)) or {} for s in series}
    kinds = {uid: c.physics_kind for uid, c in decided.items() if c.label == OTHER}
    m0_of = perf.m0_scans([s for s in series if s.series_uid in decided], kinds, metas)
    unplaced_perf = perf.problems(series, kinds, metas, m0_of)
    placed = {uid: "m0scan" for uid in m0_of} | {uid: "" for uid, why in unplaced_perf.items() if why}  # kinds named otherwise
    by_uid = {s.series_uid: s for s in series}
    for s in (s for s in series if s.series_uid in decided):
        c, uid = decided[s.series_uid], s.series_uid
        if uid in m0_of:  # named by its relation to an ASL series, whatever the content said
            verdicts[uid] = (c, unplaced_perf[uid] or f"M0 scan of {by_uid[m0_of[uid]].source}: its IntendedFor names that ASL series")
            continue
        unplaced = unplaced_perf.get(uid) if uid in unplaced_perf else (
            naming.placement_problem(c.physics_kind, directions.get(uid, "")) if c.label == OTHER else None)
        verdicts[uid] = (c, dimension_problem(c.label, s.header.n_volumes or 1) or unplaced or c.reason)

    requests = []
    for s in series:
        c, why = verdicts[s.series_uid]
        kind = placed.get(s.series_uid, c.physics_kind if c else "")  # an "other" physics recognised keeps its BIDS place
        requests.append(_name_request(s, None if why else c, kind, directions.get(s.series_uid, "")))  # why: named as other
    names = naming.assign_names(requests)
    for m0, asl in m0_of.items():  # an M0 scan shares its ASL series' entities (BIDS pairs them so)
        if not unplaced_perf[m0]:
            names[m0] = naming.entity_prefix(names[asl]) + "_m0scan"

    results = []
    raw_input = bool(series) and image_sidecar.input_is_raw(image_sidecar.input_root(series[0]))
    for s in series:
        c, msg = verdicts[s.series_uid]
        stem = names[s.series_uid]
        bids_path = stem + image_extension(s.files[0])
        asl = by_uid.get(m0_of.get(s.series_uid, ""))
        changes = {"IntendedFor": f"bids::{names[asl.series_uid]}{image_extension(asl.files[0])}"} if asl and not unplaced_perf[s.series_uid] else None
        own_sidecar = None if stem.startswith(naming.UNCLASSIFIED_DIR) else image_sidecar.derivative_text(_sidecar(s), raw_input, changes)
        try:
            _write_series(s, stem, Path(out_dir), own_sidecar)
        except OSError as exc:
            msg = msg or f"could not write {bids_path}: {exc}"
            bids_path = ""
        status = "error" if (c is None or not bids_path) else ("other" if c.label == OTHER or msg else "ok")
        results.append(
            SeriesResult(
                series=s,
                classification=c,
                header_label=header.header_label(s.header),
                bids_path=bids_path,
                status=status,
                message=msg,
            )
        )
    return results
