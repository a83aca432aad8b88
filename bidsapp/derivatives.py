"""Everything written besides the images: dataset descriptions, sidecars, TSVs (section 4).

Files shared between participants (dataset_description.json, README, participants.tsv, the group
TSV) are written atomically (temporary file in the same folder + ``os.replace``), and
participants.tsv is updated under an ``fcntl`` lock, so parallel participant jobs (HPC job
arrays) on one output folder never leave a half-written or row-losing file behind.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import tempfile
from pathlib import Path

from bidsapp import __version__
from bidsapp.classes import region_of
from bidsapp.header import text_field
from bidsapp.model.open_set_score import card_score
from bidsapp.naming import image_core
from bidsapp.records import Classification, SeriesResult

BIDS_VERSION = "1.10.1"  # _trace and _ADC suffixes need 1.10.1
APP_NAME = "mrclass-bids"
TSV_COLUMNS = (
    "participant_id",
    "session_id",
    "source",
    "series_uid",
    "series_description",
    "label",
    "confidence",
    "decided_by",
    "low_confidence",
    "content_label",
    "physics_label",
    "text_label",
    "header_label",  # the text witness' label under its first name (kept for existing readers)
    "header_agrees",
    "bids_path",
    "status",
    "message",
)
MRCLASS_SUFFIX = "_mrclass.json"
GROUP_TSV = "group_classifications.tsv"
SKIPPED_TSV = "logs/skipped_files.tsv"  # input files that name no series (junk, DICOMDIR, cut headers) or repeat an instance
SKIPPED_COLUMNS = ("path", "reason")


# --------------------------------------------------------------------------- atomic files


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def locked(path: Path):
    """Exclusive lock for read-modify-write of ``path`` (hidden lock file next to it).

    The holder deletes the lock file before it unlocks, so none is left in the dataset; a waiter
    that then gets the lock on the deleted file sees that the path no longer names it and retries.
    """
    lock_path = Path(path).with_name(f".{Path(path).name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with open(lock_path, "a") as fh:
            fcntl.lockf(fh, fcntl.LOCK_EX)
            try:
                if not _names(lock_path, fh):
                    continue
                try:
                    yield
                finally:
                    lock_path.unlink(missing_ok=True)
            finally:
                fcntl.lockf(fh, fcntl.LOCK_UN)
        return


def _names(path: Path, fh) -> bool:
    """Whether ``path`` still names the open file ``fh`` (not deleted or replaced since)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fh.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


# --------------------------------------------------------------------------- dataset level


def container_info() -> dict | None:
    """GeneratedBy.Container when running inside Docker / Apptainer, else None."""
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return {"Type": "singularity", "Tag": f"{APP_NAME}:{__version__}"}
    if Path("/.dockerenv").exists():
        return {"Type": "docker", "Tag": f"{APP_NAME}:{__version__}"}
    return None


def generated_by() -> list[dict]:
    entry: dict = {"Name": APP_NAME, "Version": __version__, "Description": "Content-based MRI series classification"}
    container = container_info()
    if container:
        entry["Container"] = container
    return [entry]


def raw_description() -> dict:
    """dataset_description.json of the raw BIDS dataset made from DICOM input."""
    return {
        "Name": "MRI series sorted by image content",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": generated_by(),
    }


def derivative_description(raw_link: str | None) -> dict:
    """dataset_description.json of the classification derivatives.

    ``raw_link``: where the raw dataset is, relative to the derivatives root ("../.." for DICOM
    input); None when the derivatives dataset holds the sorted images itself (BIDS input).
    """
    desc = {
        "Name": "mrclass-bids content classifications",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": generated_by(),
    }
    if raw_link:
        desc["SourceDatasets"] = [{"URL": raw_link}]
    return desc


RAW_README = """\
# MRI series sorted by image content

Converted by mrclass-bids from DICOM. Every series was named by what its images show (a CNN),
not by its SeriesDescription. Series the model could not place with confidence are kept,
converted, under `sourcedata/unclassified/`. Classifications, confidences and the header-based
cross-check are in `derivatives/mrclass/`.
"""

DERIVATIVE_README = """\
# mrclass-bids classifications

Per series `<bids name>_mrclass.json` (label, confidence, class probabilities, header cross-check,
model), per participant `sub-<label>/sub-<label>_classifications.tsv` (one row per input series)
and `group_classifications.tsv` (all participants).
"""


# The App's own files in its derivative dataset, which BIDS has no names for: the validator
# skips what .bidsignore lists (per-series _mrclass.json, TSVs, reports, thumbnails, logs).
BIDSIGNORE = """\
*_mrclass.json
*_classifications.tsv
*.html
sub-*/figures
logs
"""


def write_if_changed(path: Path, text: str) -> None:
    """Atomic write that leaves an identical file untouched (reruns keep mtimes)."""
    path = Path(path)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return
    atomic_write_text(path, text)


def write_dataset_files(root: Path, description: dict, readme: str) -> None:
    write_if_changed(Path(root) / "dataset_description.json", json.dumps(description, indent=2) + "\n")
    readme_path = Path(root) / "README.md"
    if not readme_path.exists():
        write_if_changed(readme_path, readme)


def add_participants(root: Path, subjects: list[str]) -> None:
    """Upsert ``sub-<label>`` rows into participants.tsv, under a lock, atomically."""
    path = Path(root) / "participants.tsv"
    with locked(path):
        rows = read_tsv(path) if path.exists() else []
        columns = list(rows[0]) if rows else ["participant_id"]
        known = {r["participant_id"] for r in rows}
        for subject in subjects:
            pid = f"sub-{subject}"
            if pid not in known:
                rows.append({c: (pid if c == "participant_id" else "n/a") for c in columns})
                known.add(pid)
        rows.sort(key=lambda r: r["participant_id"])
        write_if_changed(path, format_tsv(columns, rows))


# --------------------------------------------------------------------------- TSV


def _cell(value: object) -> str:
    if value is None or value == "":
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}"
    return " ".join(str(value).split())  # no tabs/newlines inside a cell


def format_tsv(columns: list[str] | tuple[str, ...], rows: list[dict]) -> str:
    out = io.StringIO()
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
    return out.getvalue()


def read_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def result_row(result: SeriesResult) -> dict:
    s, c = result.series, result.classification
    return {
        "participant_id": f"sub-{s.subject}",
        "session_id": f"ses-{s.session}" if s.session else None,
        "source": s.source,
        "series_uid": s.series_uid,
        "series_description": s.header.series_description,
        "label": c.label if c else None,
        "confidence": c.confidence if c else None,
        "decided_by": c.decided_by if c else None,
        "low_confidence": c.low_confidence if c else None,
        "content_label": c.content_label or None if c else None,
        "physics_label": c.physics_label if c else None,
        "text_label": result.header_label,
        "header_label": result.header_label,
        "header_agrees": result.header_agrees,
        "bids_path": result.bids_path,
        "status": result.status,
        "message": result.message,
    }


def participant_tsv_path(deriv_root: Path, subject: str) -> Path:
    return Path(deriv_root) / f"sub-{subject}" / f"sub-{subject}_classifications.tsv"


def write_participant_tsv(deriv_root: Path, subject: str, results: list[SeriesResult]) -> Path:
    """One row per input series of one participant (replaces the previous run's file)."""
    path = participant_tsv_path(deriv_root, subject)
    write_if_changed(path, format_tsv(TSV_COLUMNS, [result_row(r) for r in results]))
    return path


def write_skipped(deriv_root: Path, skipped: list) -> Path:
    """List the input files that belong to no series (path relative to the input, reason).

    Only the path and discovery's reason are written, never header values, so the log carries
    no more than the input tree's own file names. Every participant job of one input finds the
    same list, so parallel jobs write identical content (atomically).
    """
    path = Path(deriv_root) / SKIPPED_TSV
    rows = [{"path": k.path, "reason": k.reason} for k in sorted(skipped, key=lambda k: k.path)]
    write_if_changed(path, format_tsv(SKIPPED_COLUMNS, rows))
    return path


def write_group_tsv(deriv_root: Path) -> Path:
    """Concatenate every participant TSV (sorted by participant) into the group TSV."""
    deriv_root = Path(deriv_root)
    rows: list[dict] = []
    for path in sorted(deriv_root.glob("sub-*/sub-*_classifications.tsv")):
        rows.extend(read_tsv(path))
    out = deriv_root / GROUP_TSV
    write_if_changed(out, format_tsv(TSV_COLUMNS, rows))
    return out


# --------------------------------------------------------------------------- sidecars


def mrclass_sidecar(result: SeriesResult, model_card: dict, source_uri: str) -> dict:
    """Content of ``<bids name>_mrclass.json`` (ARCHITECTURE.md section 4)."""
    c, h = result.classification, result.series.header
    return {
        "Label": c.label if c else None,
        "Region": region_of(c.label) if c else None,
        "Confidence": round(c.confidence, 6) if c else None,
        "OpenSetRejected": c.open_set_rejected if c else None,
        "Probabilities": _probabilities(c),
        "Threshold": c.threshold if c else None,
        "OpenSetScore": c.open_set_score if c else None,
        "OpenSetScoreKind": card_score(model_card),
        "BestLabel": c.best_label if c else None,
        "DecidedBy": c.decided_by if c else None,
        "LowConfidence": c.low_confidence if c else None,
        "HeaderLabel": result.header_label,
        "HeaderAgrees": result.header_agrees,
        "Witnesses": witnesses(result),
        "Status": result.status,
        "Message": result.message,
        "SeriesInstanceUID": result.series.series_uid,
        "SeriesDescription": h.series_description,
        "SeriesNumber": h.series_number,
        "Sources": [source_uri],
        "Model": {
            "Name": model_card.get("name"),
            "Version": model_card.get("version"),
            "SHA256": model_card.get("sha256"),
        },
    }


def witnesses(result: SeriesResult) -> dict:
    """The three witnesses of the decision: content and physics decide, text only testifies."""
    c, h = result.classification, result.series.header
    return {
        "content": {"Label": (c.content_label or c.label) if c else None,
                    "Probabilities": _probabilities(c)},
        "physics": {"Label": c.physics_label if c else "unknown", "Reasons": list(c.physics_reasons) if c else [],
                    "Fields": dict(c.physics_fields) if c else {}},
        "text": {"Label": result.header_label, "Field": text_field(h),
                 **({"Inherited": list(h.inherited)} if h.inherited else {})},
    }


def _probabilities(c: Classification | None) -> dict:
    return {k: round(float(v), 6) for k, v in c.probabilities.items()} if c else {}


def sidecar_path(root: Path, bids_path: str) -> Path:
    """``<root>/<bids name>_mrclass.json`` for an image path like ``sub-01/anat/sub-01_T1w.nii.gz``."""
    return Path(root) / f"{image_core(bids_path)}{MRCLASS_SUFFIX}"


def write_sidecar(root: Path, result: SeriesResult, model_card: dict, source_uri: str) -> Path:
    path = sidecar_path(root, result.bids_path)
    write_if_changed(path, json.dumps(mrclass_sidecar(result, model_card, source_uri), indent=2) + "\n")
    return path
