"""Find the series of an input tree and give each one a BIDS subject/session.

Two inputs are understood (ARCHITECTURE.md section 1):

* a DICOM tree of any nesting: one :class:`Series` per SeriesInstanceUID, subject from PatientID,
  session from StudyDate (only when a subject has several studies);
* an unsorted or misnamed BIDS dataset: one :class:`Series` per NIfTI file under ``sub-*/``,
  subject/session from the path entities, facts from the JSON sidecar.

Nothing here reads pixels; the output is deterministic (sorted) for a given input tree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from bidsapp import header
from bidsapp.deidentified import readable_or_empty
from bidsapp.header_index import HeaderIndex
from bidsapp.naming import ENTITY_FILES, IMAGE_SUFFIXES, SIDECAR_SUFFIXES, companion, image_core, sanitize_label
from bidsapp.records import HeaderFacts, Series

if TYPE_CHECKING:
    from bidsapp.identities import Assignment, IdentityPolicy

log = logging.getLogger(__name__)


# Header reads touch only these tags; the full header of one file per series is read later.
_INDEX_TAGS = [
    "SOPClassUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "StudyDate",
    "StudyTime",  # orders a patient's studies into sessions (bidsapp.identities)
    "SeriesNumber",
    "Rows",
    "Columns",
    "Modality",
    "SOPInstanceUID",  # one file per instance: re-sent or truncated copies are duplicates
    "InstanceNumber",
] + header.TALLY_TAGS  # per-series physics from every file, in this same pass

# Transfer syntaxes whose pixel data element has a declared length: a file ending before it is cut.
_NATIVE_SYNTAXES = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}

# SOP classes that never carry an image, whatever else the header says (reason is logged).
_NON_IMAGE_SOP_PREFIXES = {
    "1.2.840.10008.1.3.10": "DICOMDIR",
    "1.2.840.10008.5.1.4.1.1.88.59": "key object selection (KO)",
    "1.2.840.10008.5.1.4.1.1.88.": "structured report (SR)",
    "1.2.840.10008.5.1.4.1.1.11.": "presentation state (PR)",
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated document",
    "1.2.840.10008.5.1.4.1.1.66": "raw data / registration object",
    "1.2.840.10008.5.1.4.1.1.481.": "RT object",
}


DICOMDIR = "DICOMDIR (media directory)"  # an index of other files: never a series of its own


@dataclass(frozen=True)
class Skipped:
    """A file that is not part of any series, and why."""

    path: str  # relative to the input directory
    reason: str


@dataclass
class Discovery:
    """What discovery found: the series, the files left out, and how studies map to BIDS ids.

    ``problems`` names image series that are known to fail before any conversion (a file cut
    short): they keep their row (status "error", this message) but are not handed to the
    converter, so they cannot take the participant's other series down. ``not_images`` names
    objects that are no image series (SR, PR, KO, ...): nothing of them was lost, so their row
    says "skipped" and what they are, and they are not converted either.
    """

    series: list[Series]
    skipped: list[Skipped] = field(default_factory=list)
    # StudyInstanceUID -> (subject, session); DICOM only. Lets heudiconv reuse these decisions.
    study_ids: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    identities: Assignment | None = None  # DICOM: every label decision, for --write-subject-map
    problems: dict[str, str] = field(default_factory=dict)  # SeriesInstanceUID -> one-line reason
    not_images: dict[str, str] = field(default_factory=dict)  # SeriesInstanceUID -> what it is


# --------------------------------------------------------------------------- labels


def short_hash(text: str, n: int = 6) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def subject_labels(patient_ids: list[str]) -> dict[str, str]:
    """Map raw PatientIDs to BIDS labels; IDs that sanitise alike get a short hash each.

    Without the hash, "AB-1" and "AB_1" would silently become one subject ("AB1"). A hashed
    label may itself equal another raw ID ("AB1815daf"), so clashes are resolved until none is
    left, with longer hashes each round: distinct raw IDs never share a label.
    """
    mapping = {raw: sanitize_label(raw) for raw in sorted(set(patient_ids))}
    n = 6
    while True:
        by_label: dict[str, list[str]] = defaultdict(list)
        for raw, label in mapping.items():
            by_label[label].append(raw)
        clashes = [raws for raws in by_label.values() if len(raws) > 1]
        if not clashes or n > 40:
            return mapping
        for raws in clashes:
            for raw in raws:
                mapping[raw] = f"{sanitize_label(raw)}{short_hash(raw, n)}"
        n += 4


def session_labels(studies: dict[str, str]) -> dict[str, str | None]:
    """Sessions of one subject from {StudyInstanceUID: StudyDate}: none when a single study.

    StudyDate is the readable choice; a study with no date, or sharing its date with another
    study, gets a short hash of its UID appended so sessions never merge.
    """
    if len(studies) <= 1:
        return {uid: None for uid in studies}
    date_count: dict[str, int] = defaultdict(int)
    for date in studies.values():
        date_count[sanitize_label(date, "")] += 1
    labels: dict[str, str | None] = {}
    for uid, date in studies.items():
        d = sanitize_label(date, "")
        labels[uid] = d if d and date_count[d] == 1 else f"{d}{short_hash(uid)}"
    return labels


# --------------------------------------------------------------------------- DICOM


def _non_image_reason(ds: pydicom.Dataset, path: Path) -> str | None:
    """Why a DICOM object is not an image by definition (SOP class), or None."""
    if path.name.upper() == "DICOMDIR":
        return DICOMDIR
    meta = getattr(ds, "file_meta", None)
    sop = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    for prefix, what in _NON_IMAGE_SOP_PREFIXES.items():
        if sop.startswith(prefix):
            return DICOMDIR if what == "DICOMDIR" else f"{what}, no pixel data"
    return None


@dataclass(frozen=True)
class _PixelElement:
    """Where the pixel data element's value starts in the file and the length it declares."""

    start: int
    length: int  # 0xFFFFFFFF: undefined (encapsulated, compressed pixels)


_UNDEFINED_LENGTH = 0xFFFFFFFF
#: Explicit-VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}


def _pixel_element_at(fp, syntax: str) -> _PixelElement | None:
    """The pixel data element starting at ``fp``'s position, where a header read that stopped
    before the pixels left it, or None when the file ends first (also inside the element's own
    header) or another element is there.

    Parsing the element header ourselves spares a second read of every file (discovery reads
    each file once: on network file systems of clusters that is the cost of a run)."""
    start = fp.tell()
    head = fp.read(12)
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    if len(head) < 8 or struct.unpack(order + "HH", head[:4]) != (0x7FE0, 0x0010):
        return None
    if syntax == ImplicitVRLittleEndian:  # tag, 4-byte length
        return _PixelElement(start + 8, struct.unpack("<I", head[4:8])[0])
    if head[4:6] not in _LONG_VRS:  # tag, VR, 2-byte length
        return _PixelElement(start + 8, struct.unpack(order + "H", head[6:8])[0])
    if len(head) < 12:
        return None
    return _PixelElement(start + 12, struct.unpack(order + "I", head[8:12])[0])


def _broken_image_reason(ds: pydicom.Dataset, path: Path, pixels: _PixelElement | None) -> str | None:
    """Why an image object cannot be converted as it is (cut short, no pixels), or None.

    Native (uncompressed) pixel data has a declared length: a file that ends before it is cut.
    Compressed data can only be checked by decoding it (the converter reports that failure).
    """
    if "Rows" not in ds or "Columns" not in ds:
        return "incomplete header (no Rows/Columns): truncated file or not an image"
    if _syntax(ds) not in _NATIVE_SYNTAXES:
        return None
    if pixels is None:
        return "no pixel data element: truncated file or image without pixels"
    size = path.stat().st_size
    if pixels.length != _UNDEFINED_LENGTH and pixels.start + pixels.length > size:
        return f"file cut inside the pixel data ({size} of {pixels.start + pixels.length} bytes)"
    return None


def _syntax(ds: pydicom.Dataset) -> str:
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or ExplicitVRLittleEndian)


def _read_index(path: Path) -> tuple[pydicom.Dataset, _PixelElement | None]:
    """Index tags only, never the pixels (a 2 GB file costs a header read), and where the pixel
    data element starts (native transfer syntaxes).

    Files without the 128-byte preamble (old exports) are accepted when, read leniently, they
    name an SOP class and a series; anything else is not DICOM.
    """
    with open(path, "rb") as fp:
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=False, specific_tags=_INDEX_TAGS)
        except InvalidDicomError:
            fp.seek(0)
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True, specific_tags=_INDEX_TAGS)
            if "SOPClassUID" not in ds or "SeriesInstanceUID" not in ds:
                raise
        syntax = _syntax(ds)
        return ds, (_pixel_element_at(fp, syntax) if syntax in _NATIVE_SYNTAXES else None)


def _iter_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


@dataclass(frozen=True)
class _Instance:
    """One file of a series and what is wrong with it (None: intact)."""

    path: Path
    problem: str | None
    number: str  # InstanceNumber as written, "" when absent


@dataclass
class _Indexed:
    """Files of one SeriesInstanceUID while the tree is walked, one per SOPInstanceUID.

    PACS exports and re-sends hold the same instance twice, sometimes once cut short: the intact
    copy is kept (of equals, the first by path) and the other is handed back to be listed as skipped.
    Files sharing a SOPInstanceUID but numbered differently are kept apart (a UID-reusing tool
    must not cost slices).
    """

    instances: dict[str, _Instance] = field(default_factory=dict)
    ds: pydicom.Dataset | None = None  # index tags of the first intact file (else of any file)
    ds_intact: bool = False
    image: bool = True  # False for non-image objects (SR, PR, KO, ...)
    notes: list[str] = field(default_factory=list)  # why the series is no image series
    tally: header.SeriesTally = field(default_factory=header.SeriesTally)  # physics of every instance, once

    @property
    def paths(self) -> list[Path]:
        return [i.path for i in self.instances.values()]

    @property
    def problems(self) -> list[str]:
        return [i.problem for i in self.instances.values() if i.problem] + self.notes

    def add(self, path: Path, ds: pydicom.Dataset, problem: str | None) -> tuple[_Instance, Path] | None:
        """Hold ``path``; when it repeats an instance already held, the copy left out and the
        path of the one kept."""
        new = _Instance(path, problem, _raw_text(ds, "InstanceNumber"))
        key = str(ds.get("SOPInstanceUID", "") or "") or str(path)
        held = self.instances.get(key)
        if held is not None and held.number and new.number and held.number != new.number:
            key, held = f"{key}#{path}", None
        if self.ds is None or (not problem and not self.ds_intact):
            self.ds, self.ds_intact = ds, not problem
        if held is None:
            self.instances[key] = new
            self.tally.add(ds)
            return None
        if (bool(problem), str(path)) < (bool(held.problem), str(held.path)):  # intact first, then by path
            self.instances[key] = new
            return held, path
        return new, held.path


def _raw_text(ds: pydicom.Dataset, keyword: str) -> str:
    """An element's value as stored, never converted (a de-identified "***" IS cannot raise)."""
    elem = ds.get_item(keyword)
    value = getattr(elem, "value", None)
    return (value.decode("latin-1") if isinstance(value, bytes) else str(value or "")).strip(" \0")


def _index_file(path: Path) -> tuple[pydicom.Dataset | None, str | None, bool]:
    """(index dataset or None when skipped, reason, is_image)."""
    try:
        ds, pixels = _read_index(path)
    except InvalidDicomError:
        return None, "not a DICOM file", False
    except Exception as exc:  # corrupt headers: pydicom raises many kinds
        return None, f"unreadable DICOM header: {_one_line(exc)}", False
    reason = _non_image_reason(ds, path)
    if reason:
        return ds, reason, False
    return ds, _broken_image_reason(ds, path, pixels), True


def _walk_dicom(root: Path, saved: HeaderIndex | None = None) -> tuple[dict[str, _Indexed], list[Skipped]]:
    """Index every file under ``root`` by SeriesInstanceUID; files naming no series are skipped.
    With ``saved``, headers read by an earlier run are taken from there when unchanged."""
    by_uid: dict[str, _Indexed] = defaultdict(_Indexed)
    skipped: list[Skipped] = []
    for path in _iter_files(root):
        rel = str(path.relative_to(root))
        ds, reason, is_image = saved.read(path, _index_file) if saved else _index_file(path)
        uid = str(ds.get("SeriesInstanceUID", "") or "") if ds is not None else ""
        if ds is not None and is_image and not uid and not reason:
            uid = f"nouid-{short_hash(str(path.parent))}"
        if ds is None or not uid or reason == DICOMDIR or (not is_image and not ds.get("PatientID")):
            why = reason or "no SeriesInstanceUID"
            log.log(logging.DEBUG if why == "not a DICOM file" else logging.INFO, "skip %s: %s", rel, why)
            skipped.append(Skipped(rel, why if ds is None or uid or reason == DICOMDIR else f"{why} (names no series)"))
            continue
        entry = by_uid[uid]
        entry.image = entry.image and is_image
        if left_out := entry.add(path, ds, reason if is_image else None):
            copy, kept = left_out
            why = f"duplicate of {kept.relative_to(root)} (same SOPInstanceUID)" + (f": {copy.problem}" if copy.problem else "")
            log.info("skip %s: %s", copy.path.relative_to(root), why)
            skipped.append(Skipped(str(copy.path.relative_to(root)), why))
        if not is_image and not entry.problems:
            entry.notes.append(f"not an image: {reason}")
    return by_uid, skipped


def _problem_message(entry: _Indexed) -> str | None:
    if not entry.problems:
        return None
    if not entry.image:
        return entry.problems[0]
    n = len(entry.problems)
    first = entry.problems[0]
    if n == len(entry.paths) == 1:
        return f"{first}; series not converted"
    return f"{n} of {len(entry.paths)} files unusable ({first}); series not converted"


def discover_dicom(root: Path, header_index: str | Path | None = None,
                   identities: IdentityPolicy | None = None) -> Discovery:
    """Group every DICOM object under ``root`` by SeriesInstanceUID.

    Image series become :class:`Series`; so do non-image objects (SR, PR, KO) and series with
    files cut short, which a patient/series names: they get a "skipped" or "error" row instead
    of vanishing.
    Files that name no series (junk, DICOMDIR, headers cut before the UIDs) are ``skipped``.
    ``header_index``: a file keeping the headers read, for the next run (``bidsapp.header_index``).
    Subjects and sessions are what ``identities`` decides (default: PatientID and StudyDate).
    """
    from bidsapp.identities import IdentityPolicy, Study  # it builds on this module's labels

    root = Path(root).resolve()
    saved = HeaderIndex(header_index, root) if header_index else None
    by_uid, skipped = _walk_dicom(root, saved)
    if saved:
        saved.save()
    index = {uid: e.ds for uid, e in by_uid.items()}
    pid_of = {uid: str(ds.get("PatientID", "") or "") for uid, ds in index.items()}
    study_of = {uid: str(ds.get("StudyInstanceUID", "") or "") for uid, ds in index.items()}

    # Sessions come from image series only: a report filed under its own study must not split
    # a patient's images into sessions.
    studies = {(pid_of[uid], study_of[uid]): Study(study_of[uid], pid_of[uid], readable_or_empty("DA", _raw_text(ds, "StudyDate")),
                                                   readable_or_empty("TM", _raw_text(ds, "StudyTime")))
               for uid, ds in index.items() if by_uid[uid].image}
    ids = (identities or IdentityPolicy()).assign(studies.values(), pid_of.values())

    series, problems, not_images = [], {}, {}
    for uid, entry in by_uid.items():
        paths = sorted(entry.paths)
        subject, session = ids.of(study_of[uid], pid_of[uid])
        source = os.path.relpath(os.path.commonpath([str(p.parent) for p in paths]), root)
        if len(paths) == 1 and not entry.image:
            source = os.path.relpath(paths[0], root)
        message = _problem_message(entry)
        if message:
            (problems if entry.image else not_images)[uid] = message
        series.append(
            Series(
                subject=subject,
                session=session,
                series_uid=uid,
                source=source,
                files=tuple(paths),
                kind="dicom",
                header=entry.tally.apply(_dicom_facts(paths[0])),
            )
        )
    return Discovery(series=sorted(series, key=series_sort_key), skipped=skipped, study_ids=ids.by_study(), problems=problems,
                     not_images=not_images, identities=ids)


def _dicom_facts(path: Path) -> HeaderFacts:
    """Header facts of one file; empty facts when the header is too broken to read."""
    try:
        return header.facts_from_dicom(pydicom.dcmread(path, stop_before_pixels=True, force=True))
    except Exception as exc:  # a cut header must cost the series its facts, not the run
        log.debug("no header facts from %s (%s)", path.name, _one_line(exc))
        return HeaderFacts()


def series_sort_key(s: Series) -> tuple:
    number = s.header.series_number
    return (s.subject, s.session or "", number if number is not None else 1 << 30, s.source, s.series_uid)


# --------------------------------------------------------------------------- BIDS


def _path_entity(parts: tuple[str, ...], key: str) -> str | None:
    for part in parts:
        if part.startswith(f"{key}-"):
            return part[len(key) + 1 :]
    return None


def discover_bids(root: Path) -> Discovery:
    """One series per NIfTI file under ``sub-*/``, whatever its name says."""
    root = Path(root).resolve()
    series = []
    layout = _layout(root)
    for sub_dir in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        for path in _iter_files(sub_dir):
            if not path.name.endswith(IMAGE_SUFFIXES) or path.name.startswith("."):
                continue
            rel = path.relative_to(root)
            subject = sanitize_label(sub_dir.name[len("sub-") :])
            session_raw = _path_entity(rel.parts[1:-1], "ses")
            session = sanitize_label(session_raw) if session_raw is not None else None
            stem = path.with_name(image_core(path.name))
            beside = (stem.with_name(companion(stem.name, ending)) for ending in SIDECAR_SUFFIXES + ENTITY_FILES)
            sidecars = tuple(p for p in beside if p.is_file())
            series.append(
                Series(
                    subject=subject,
                    session=session,
                    series_uid="nifti-" + short_hash(rel.as_posix(), 16),
                    source=rel.as_posix(),
                    files=(path,) + sidecars,
                    kind="nifti",
                    header=replace(_sidecar_facts(path, stem, layout), input_name=_name_claim(stem.name)),
                )
            )
    return Discovery(series=sorted(series, key=series_sort_key))


def _name_claim(stem: str) -> str:
    """A BIDS file name without its subject and session (``sub-01_ses-1_acq-fs_T2w`` → ``acq-fs_T2w``):
    what the name says about the image, and nothing a subject label could add (``sub-liver03``)."""
    return "_".join(p for p in stem.split("_") if not p.startswith(("sub-", "ses-")))


def _n_volumes(path: Path) -> int | None:
    """Volumes of a NIfTI from its header alone (no pixels read); None when unreadable."""
    try:
        shape = nib.load(str(path)).shape
    except Exception:  # noqa: BLE001  (classification reports an unreadable file)
        return None
    return int(shape[3]) if len(shape) > 3 else 1


def _layout(root: Path):
    """pybids' view of a BIDS input (unvalidated: unsorted input is not valid BIDS), used for
    what it resolves better than a file read: sidecar inheritance. None when pybids cannot index."""
    try:
        from bids import BIDSLayout

        return BIDSLayout(str(root), validate=False)
    except Exception as exc:  # noqa: BLE001  (inheritance is a cross-check: never stop a run for it)
        log.warning("pybids could not index %s (%s): inherited sidecar values are not listed", root, _one_line(exc))
        return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable sidecar %s (%s)", path.name, _one_line(exc))
        return {}
    return data if isinstance(data, dict) else {}


def _inherited(layout, image: Path, own: dict) -> tuple[str, ...]:
    """Sidecar fields the image only inherits through its name (a top-level ``T1w.json`` reaches
    every file called ``*_T1w``, rightly named or not): a name claim, never physics."""
    if layout is None:
        return ()
    try:
        merged = layout.get_metadata(str(image))
    except Exception:  # noqa: BLE001  (a name pybids cannot parse inherits nothing)
        return ()
    return tuple(sorted(k for k in merged if k not in own))


def _sidecar_facts(image: Path, stem: Path, layout=None) -> HeaderFacts:
    """Physics of a NIfTI from its own JSON sidecar, .bval and shape; empty facts when there
    are none. Inherited fields are listed (``HeaderFacts.inherited``), not read as facts."""
    own = _read_json(stem.with_name(stem.name + ".json"))
    bval = stem.with_name(stem.name + ".bval")
    try:
        b_values = bval.read_text(encoding="utf-8").split() if bval.is_file() else []
    except OSError as exc:
        log.warning("ignoring unreadable %s (%s)", bval.name, _one_line(exc))
        b_values = []
    facts = header.facts_from_sidecar(own, b_values, _n_volumes(image))
    return replace(facts, inherited=_inherited(layout, image, own))


# --------------------------------------------------------------------------- entry


def detect_input_type(root: Path) -> str:
    """"bids" when the tree looks like a BIDS dataset (description file or sub-*/ NIfTIs)."""
    root = Path(root)
    if (root / "dataset_description.json").is_file():
        return "bids"
    for sub_dir in root.glob("sub-*"):
        if sub_dir.is_dir() and any(p.name.endswith(IMAGE_SUFFIXES) for p in _iter_files(sub_dir)):
            return "bids"
    return "dicom"


def discover(root: Path, input_type: str = "auto", participants: list[str] | None = None,
             header_index: str | Path | None = None, identities: IdentityPolicy | None = None) -> Discovery:
    """Series of ``root`` (optionally only these participant labels), sorted deterministically;
    ``header_index`` and ``identities`` as in ``discover_dicom`` (BIDS input reads no headers)."""
    kind = detect_input_type(root) if input_type == "auto" else input_type
    found = discover_bids(root) if kind == "bids" else discover_dicom(root, header_index, identities)
    if participants:
        wanted = {normalize_participant(p) for p in participants}
        found.series = [s for s in found.series if s.subject in wanted]
    return found


def normalize_participant(label: str) -> str:
    """'sub-01' and '01' name the same participant."""
    return label[len("sub-") :] if label.startswith("sub-") else label


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
