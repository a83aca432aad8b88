"""heudiconv heuristic that names series by image content (the mrclass-bids CNN).

Use on its own::

    heudiconv --files DICOM_DIR -f heuristics/mrclass.py -o OUT -c dcm2niix -b

* ``custom_seqinfo`` loads each series' pixels (dcm2niix via ``bidsapp.volume.load_dicom``),
  classifies them and fuses that with the physics witness of its headers (``bidsapp.decide``,
  the App's own decision; standalone, the series' files are header-read for echoes, b-values and
  volumes); a series that fails becomes status "error" and is named as "other" instead of
  stopping the whole conversion;
* ``infotodict`` turns the verdicts into BIDS keys with ``bidsapp.naming`` (explicit run numbers,
  never heudiconv's ``{item}``); "other" goes to ``sourcedata/unclassified/``, except what BIDS
  still has a place for (BOLD runs in ``func/``, field maps in ``fmap/``);
* ``infotoids`` gives the subject from PatientID (sanitised like ``bidsapp.discover``).

Standalone, each study is one subject without a session (use heudiconv's ``-ss`` for sessions).
Driven by the BIDS-App, context arrives through ``MRCLASS_*`` environment variables (see
``bidsapp.handoff``): the App's own subject/session decisions, device, threshold, and a folder
where every verdict is saved so the App writes derivatives without classifying twice.
"""

from __future__ import annotations

import json
import logging
import os
from typing import NamedTuple

from bidsapp import decide, handoff, header, naming, physics, relabel
from bidsapp.classes import OTHER
from bidsapp.naming import sanitize_label
from bidsapp.linkbids import dimension_problem

lgr = logging.getLogger("heudiconv.mrclass")
#: Why a series the App would place (a GE B0 map: ``naming.renamed_after_conversion``) stays under
#: sourcedata when heudiconv runs this heuristic alone: heudiconv only numbers its two images.
STANDALONE_UNPLACED = ("its images get BIDS names only from mrclass-bids (heudiconv alone numbers them "
                       "_fieldmap1/_fieldmap2); kept under sourcedata")

# heudiconv refuses any sidecar whose text contains "Date" ("There must be no dates in .json
# sidecar"), after removing the acquisition/study/series dates itself, and that stops the whole
# participant. De-identified data trip it without carrying a date: the
# DeidentificationMethodCodeSequence of TCIA / PS3.15 profiles means "... Modified Dates Option",
# and DeidentificationMethod texts often say so too. Fields whose name or value says "Date" are
# dropped first (what heudiconv's guard wants gone anyway); every other field stays.


def _mentions_date(key: str, value) -> bool:
    return "Date" in key or "Date" in json.dumps(value)


def _drop_fields(json_files) -> None:
    for path in json_files or ():
        try:
            with open(path, encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            continue
        dropped = [k for k, v in meta.items() if _mentions_date(k, v)]
        if dropped:
            lgr.info("%s: fields mentioning dates dropped: %s", os.path.basename(path), ", ".join(dropped))
            with open(path, "w", encoding="utf-8") as fh:
                json.dump({k: v for k, v in meta.items() if k not in dropped}, fh, indent=2)


def _sidecar_fix(original):
    def tuneup_bids_json_files(json_files):
        _drop_fields(json_files)
        return original(json_files)

    return tuneup_bids_json_files


def _date_fix(original):
    """heudiconv parses acquisition dates (scans.tsv) and stops the participant on one it cannot
    read (a de-identified "***"); such a date counts as absent instead. The App removes these
    values before heudiconv runs (``bidsapp.deidentified``); this covers plain heudiconv."""

    def get_datetime_from_dcm(dcm_data):
        try:
            return original(dcm_data)
        except ValueError as exc:
            lgr.warning("unreadable acquisition date/time taken as absent (%s)", exc)
            return None

    return get_datetime_from_dcm


def _patch(module, name: str, make) -> None:
    """Replace ``module.name`` by ``make(original)``, once (heudiconv may load us twice)."""
    original = getattr(module, name)
    if not getattr(original, "_mrclass", False):
        patched = make(original)
        patched._mrclass = True
        setattr(module, name, patched)


try:
    import heudiconv.convert as _hconvert
    import heudiconv.dicoms as _hdicoms
except ImportError:  # imported outside heudiconv (tests, tools)
    pass
else:
    _patch(_hconvert, "tuneup_bids_json_files", _sidecar_fix)
    _patch(_hdicoms, "get_datetime_from_dcm", _date_fix)


class Verdict(NamedTuple):
    """Hashable summary of a series that heudiconv carries in ``SeqInfo.custom``."""

    label: str
    confidence: float
    best_label: str
    contrast_agent: str
    image_type: tuple[str, ...]
    has_directions: bool
    status: str
    message: str
    outcome_file: str  # where the full verdict is saved ("" when standalone)
    convertible: bool = True  # False: dcm2niix made no image, so heudiconv must not try (it would raise)
    physics_kind: str = ""  # what physics recognised: an "other" BIDS still places (``naming.PLACED_OTHER``)
    phase_encoding: str = ""  # ``dir-`` label from dcm2niix's PhaseEncodingDirection ("" unknown)


def create_key(template: str, outtype: tuple[str, ...] = ("nii.gz",), annotation_classes=None):
    if not template:
        raise ValueError("Template must be a valid format string")
    return template, outtype, annotation_classes


def _threshold() -> float | None:
    value = os.environ.get(handoff.ENV_THRESHOLD)
    return float(value) if value else None


def _classify(series_files: list[str]):
    from bidsapp.volume import load_dicom

    volume = load_dicom(series_files, work_dir=os.environ.get(handoff.ENV_WORK_DIR) or None)
    from bidsapp.model.predict import shared_classifier

    classifier = shared_classifier(os.environ.get(handoff.ENV_DEVICE, "cpu"))
    classification = classifier.classify(volume, threshold=_threshold())
    return volume, classification


def _series_facts(wrapper, series_files: list[str], uid: str) -> header.HeaderFacts:
    """The series' facts: discovery's (every file tallied) when the App drives us; standalone,
    the first file's widened by a header-only read of the others (echoes, b-values, volumes)."""
    known = handoff.series_facts().get(uid)
    if known is not None:
        return known
    import pydicom

    tally = header.SeriesTally()
    for path in series_files:
        try:
            tally.add(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=header.TALLY_TAGS))
        except Exception:  # noqa: BLE001  (an unreadable file tells nothing; conversion reports it)
            continue
    return tally.apply(header.facts_from_dicom(wrapper.dcm_data))


def custom_seqinfo(wrapper, series_files: list[str]) -> Verdict:
    """Classify one series from its pixels and its physics (``bidsapp.decide``); never raises
    (errors become status "error")."""
    uid = str(wrapper.dcm_data.get("SeriesInstanceUID", ""))
    facts = _series_facts(wrapper, series_files, uid)
    convertible, phase_encoding = True, ""
    outcome = handoff.SeriesOutcome(
        series_uid=uid,
        series_id="",
        files=sorted(str(f) for f in series_files),
        header=facts,
        header_label=header.header_label(facts),
    )
    try:
        volume, c = _classify(series_files)
        c = decide.fuse(c, physics.witness(facts), handoff.decide_by())
        if uid in (corrections := handoff.relabels()):
            c = relabel.apply(c, corrections[uid])
        b_values = volume.b_values or facts.b_values
        has_bvec = volume.n_volumes > 1 and any(b > 0 for b in b_values)
        outcome.classification = c
        outcome.has_directions = not naming.is_trace(facts.image_type, has_bvec=has_bvec)
        outcome.status = "other" if c.label == OTHER else "ok"
        outcome.message = c.reason
        phase_encoding = volume.phase_encoding
        if why := dimension_problem(c.label, volume.n_volumes, facts.echo_times):
            outcome.status, outcome.message = "other", why
        elif c.label == OTHER and (why := naming.placement_problem(c.physics_kind, phase_encoding)):
            outcome.message = "; ".join(m for m in (outcome.message, why) if m)
    except Exception as exc:  # one bad series must not stop the others
        from bidsapp.volume import NotConvertible

        msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        lgr.warning("series %s (%s) failed: %s", facts.series_number, facts.series_description, msg)
        outcome.status, outcome.message = "error", msg
        convertible = not isinstance(exc, NotConvertible)
    results = handoff.results_dir()
    c = outcome.classification
    placed_kind = c.physics_kind if c and outcome.status in ("ok", "other") else ""
    if results is None and naming.renamed_after_conversion(placed_kind):  # standalone: nobody renames after us
        placed_kind = ""
        outcome.message = "; ".join(m for m in (outcome.message, STANDALONE_UNPLACED) if m)
    outcome_file = ""
    if results is not None:
        outcome_file = str(handoff.outcome_path(results, uid, outcome.files))
        handoff.save(results, outcome)
    return Verdict(
        label=c.label if c and outcome.status == "ok" else OTHER,
        confidence=round(float(c.confidence), 4) if c else 0.0,
        best_label=c.best_label if c else "",
        contrast_agent=facts.contrast_agent,
        image_type=tuple(facts.image_type),
        has_directions=outcome.has_directions,
        status=outcome.status,
        message=outcome.message,
        outcome_file=outcome_file,
        convertible=convertible,
        physics_kind=placed_kind,
        phase_encoding=phase_encoding,
    )


def _ids(seqinfo) -> tuple[str, str | None]:
    """(subject, session): the App's decision when it drives us, else PatientID alone."""
    mapped = handoff.series_map().get(str(seqinfo.series_uid))
    if mapped:
        return mapped
    return sanitize_label(seqinfo.patient_id), None


def infotoids(seqinfos, outdir: str) -> dict[str, str | None]:
    seqinfos = list(seqinfos)
    subject, session = _ids(seqinfos[0]) if seqinfos else ("unknown", None)
    return {"locator": None, "session": session, "subject": subject}


def _verdict(seqinfo) -> Verdict:
    v = seqinfo.custom
    if isinstance(v, Verdict):
        return v
    if isinstance(v, tuple) and len(Verdict._fields) - 2 <= len(v) <= len(Verdict._fields):  # from heudiconv's cache
        return Verdict(*v)
    return Verdict(OTHER, 0.0, "", "", (), True, "error", "no classification", "")


def _template(stem: str, subject: str, session: str | None) -> str:
    """Literal path → heudiconv template, so heudiconv's own -s/-ss overrides still apply."""
    sub_dir = f"sub-{subject}" + (f"/ses-{session}" if session else "")
    prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    folder, name = stem.rsplit("/", 1)
    folder = folder.replace(sub_dir, "{bids_subject_session_dir}", 1)
    if name.startswith(prefix + "_"):
        name = "{bids_subject_session_prefix}" + name[len(prefix) :]
    return f"{folder}/{name}"


def infotodict(seqinfos) -> dict:
    """Map each series' verdict to a BIDS key (``bidsapp.naming``); nothing is dropped except
    series dcm2niix cannot convert (their error is already recorded; heudiconv would raise on
    them and abort every later series of the participant)."""
    seqinfos = [s for s in seqinfos if _verdict(s).convertible]
    requests = []
    for s in seqinfos:
        v = _verdict(s)
        subject, session = _ids(s)
        requests.append(
            naming.NameRequest(
                key=s.series_id,
                subject=subject,
                session=session,
                label=v.label,
                series_number=_series_number(s.series_id),
                series_description=s.series_description,
                contrast_agent=v.contrast_agent,
                has_directions=v.has_directions,
                physics_kind=v.physics_kind,
                protocol=getattr(s, "protocol_name", ""),
                image_type=tuple(v.image_type),
                phase_encoding=v.phase_encoding,
            )
        )
    names = naming.assign_names(requests)
    info: dict = {}
    for s, req in zip(seqinfos, requests):
        stem = names[req.key]
        key = create_key(_template(stem, req.subject, req.session))
        info.setdefault(key, []).append(s.series_id)
        _record_name(_verdict(s).outcome_file, s.series_id, stem)
    return info


def _series_number(series_id: str) -> int | None:
    head = str(series_id).split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _record_name(outcome_file: str, series_id: str, stem: str) -> None:
    if not outcome_file or not os.path.isfile(outcome_file):
        return
    outcome = handoff.load(outcome_file)
    outcome.series_id, outcome.stem = series_id, stem
    results_dir = os.path.dirname(outcome_file)
    handoff.save(results_dir, outcome)
