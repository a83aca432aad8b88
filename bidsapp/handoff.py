"""What the heudiconv heuristic and the BIDS-App tell each other (environment + JSON files).

heudiconv imports the heuristic as a plain module and calls it with its own arguments only, so
the App passes context through environment variables, and the heuristic leaves one JSON file per
series (classification, header facts, decided BIDS name) in a results folder. The App then
writes derivatives from those files without classifying any series twice. Without these
variables the heuristic works on its own (``heudiconv -f heuristics/mrclass.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bidsapp.records import Classification, HeaderFacts

ENV_RESULTS_DIR = "MRCLASS_RESULTS_DIR"  # folder for one JSON per series
ENV_SERIES_MAP = "MRCLASS_SERIES_MAP"  # JSON file {SeriesInstanceUID: [subject, session|null]}
ENV_DEVICE = "MRCLASS_DEVICE"  # "cpu" | "cuda"
ENV_THRESHOLD = "MRCLASS_THRESHOLD"  # float, overrides the model card's threshold
ENV_WORK_DIR = "MRCLASS_WORK_DIR"  # scratch for dcm2niix inside volume.load_dicom
ENV_RELABEL = "MRCLASS_RELABEL"  # JSON file {SeriesInstanceUID: label}: a person's corrections
ENV_SERIES_FACTS = "MRCLASS_SERIES_FACTS"  # JSON file {SeriesInstanceUID: HeaderFacts}: discovery's per-series physics
ENV_DECIDE_BY = "MRCLASS_DECIDE_BY"  # "both" | "content" (``bidsapp.decide``)


@dataclass
class SeriesOutcome:
    """One series as seen inside heudiconv: verdict, facts and (after infotodict) its name."""

    series_uid: str
    series_id: str  # heudiconv's id of the group ("<SeriesNumber>-<ProtocolName>")
    files: list[str]
    header: HeaderFacts
    header_label: str = "unknown"
    classification: Classification | None = None
    has_directions: bool = True
    status: str = "ok"  # ok | other | error
    message: str = ""
    stem: str = ""  # BIDS path without extension, relative to the output root
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SeriesOutcome":
        d = dict(d)
        header = facts_from_dict(d.pop("header"))
        c = d.pop("classification")
        if c:
            c["physics_reasons"] = tuple(c.get("physics_reasons", ()))
        return cls(header=header, classification=Classification(**c) if c else None, **d)


def facts_from_dict(h: dict) -> HeaderFacts:
    return HeaderFacts(**{k: tuple(v) if isinstance(v, list) else v for k, v in h.items()})


def outcome_path(results_dir: Path, series_uid: str, files: list[str]) -> Path:
    """File of one series; the file list is part of the key because heudiconv may split a UID."""
    key = hashlib.sha1(series_uid.encode()).hexdigest()[:16]
    part = hashlib.sha1("\n".join(sorted(os.path.basename(f) for f in files)).encode()).hexdigest()[:8]
    return Path(results_dir) / f"{key}-{part}.json"


def save(results_dir: Path, outcome: SeriesOutcome) -> None:
    path = outcome_path(results_dir, outcome.series_uid, outcome.files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(outcome.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def load(path: Path) -> SeriesOutcome:
    return SeriesOutcome.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def load_all(results_dir: Path) -> list[SeriesOutcome]:
    return [load(p) for p in sorted(Path(results_dir).glob("*.json"))]


def results_dir() -> Path | None:
    value = os.environ.get(ENV_RESULTS_DIR)
    return Path(value) if value else None


def series_map() -> dict[str, tuple[str, str | None]]:
    value = os.environ.get(ENV_SERIES_MAP)
    if not value:
        return {}
    return {uid: (sub, ses) for uid, (sub, ses) in json.loads(Path(value).read_text(encoding="utf-8")).items()}


def relabels() -> dict[str, str]:
    """A person's corrections (``--relabel``), ``{SeriesInstanceUID: label}``."""
    value = os.environ.get(ENV_RELABEL)
    return json.loads(Path(value).read_text(encoding="utf-8")) if value else {}


def write_relabels(path: Path, mapping: dict[str, str]) -> None:
    Path(path).write_text(json.dumps(dict(sorted(mapping.items())), indent=1), encoding="utf-8")


def write_series_map(path: Path, mapping: dict[str, tuple[str, str | None]]) -> None:
    Path(path).write_text(json.dumps({k: list(v) for k, v in sorted(mapping.items())}, indent=1), encoding="utf-8")


def write_series_facts(path: Path, facts: dict[str, HeaderFacts]) -> None:
    """Discovery's per-series facts (echoes, b-values, volumes of every file) for the heuristic."""
    Path(path).write_text(json.dumps({k: dataclasses.asdict(v) for k, v in sorted(facts.items())}), encoding="utf-8")


def series_facts() -> dict[str, HeaderFacts]:
    value = os.environ.get(ENV_SERIES_FACTS)
    if not value:
        return {}
    return {uid: facts_from_dict(h) for uid, h in json.loads(Path(value).read_text(encoding="utf-8")).items()}


def decide_by() -> str:
    return os.environ.get(ENV_DECIDE_BY) or "both"
