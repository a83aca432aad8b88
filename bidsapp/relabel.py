"""A person's corrections: after reading the report, a user lists ``series_uid`` → ``label`` and
reruns with ``--relabel FILE``; those series are named by that label, recorded as decided by a
person (the model's probabilities stay in the sidecar for the record).

The file is any TSV with ``series_uid`` and ``label`` columns, so the rows of a participant's
``_classifications.tsv`` can be copied and edited; other columns are ignored, as are rows with
an empty label.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from bidsapp.classes import LABELS, OTHER
from bidsapp.records import Classification

REQUIRED_COLUMNS = ("series_uid", "label")
ALLOWED_LABELS = (*LABELS, OTHER)
EMPTY = ("", "n/a")


class RelabelError(ValueError):
    """The corrections file cannot be used as it is; the message says where and why."""


def read(path: str | Path) -> dict[str, str]:
    """``{series_uid: label}`` from a corrections TSV (errors name the line)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
            columns = rows and rows[0].keys() or []
    except OSError as exc:
        raise RelabelError(f"cannot read --relabel file {path}: {exc.strerror}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RelabelError(f"{path}: needs tab-separated columns {', '.join(REQUIRED_COLUMNS)} "
                           f"(missing {', '.join(missing)}; or the file has no rows)")
    corrections: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        uid, label = (row.get("series_uid") or "").strip(), (row.get("label") or "").strip()
        if label in EMPTY:
            continue
        if not uid or uid in EMPTY:
            raise RelabelError(f"{path}, line {line}: empty series_uid")
        if label not in ALLOWED_LABELS:
            raise RelabelError(f"{path}, line {line}: unknown label {label!r}; one of {', '.join(ALLOWED_LABELS)}")
        if corrections.get(uid, label) != label:
            raise RelabelError(f"{path}, line {line}: {uid} is given two labels ({corrections[uid]}, {label})")
        corrections[uid] = label
    return corrections


def apply(classification: Classification, label: str) -> Classification:
    """The model's verdict with a person's label: confidence 1 (a person decided), probabilities,
    best guess and threshold kept as the model gave them; the model's reason for "other" no
    longer applies."""
    return dataclasses.replace(classification, label=label, confidence=1.0, decided_by="person", reason="")
