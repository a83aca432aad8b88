"""The ``labels.tsv`` format of a labelled directory, read once for evaluation and fine-tuning.

Tab-separated with a header line; ``path`` names a NIfTI file or a folder of one DICOM series
relative to the directory, ``label`` a class of ARCHITECTURE.md section 2 or "other"; other
columns (``source_repo``, ``site``, ...) are kept for grouping and ignored otherwise. Rows are
checked on reading, so a typo in a label stops with its line number instead of scoring a series
against a class no model has.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..classes import ALL_LABELS
from ..records import Volume
from ..volume import load_dicom, load_nifti


def read_label_rows(labels_tsv: str | Path, group_column: str | None = None) -> list[dict]:
    """Rows of a labels.tsv that name a path, each checked: a missing column or an unknown label
    stops with its line."""
    path = Path(labels_tsv)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        needed = {"path", "label"} | ({group_column} if group_column else set())
        if missing := needed - set(reader.fieldnames or ()):
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} (has {reader.fieldnames})")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not (row.get("path") or "").strip():
                continue
            if row["label"] not in ALL_LABELS:
                raise ValueError(f"{path}:{line_no}: unknown label {row['label']!r} (one of {' '.join(ALL_LABELS)})")
            rows.append(row)
    return rows


def load_any(path: Path) -> Volume:
    """A labelled series as the App loads it: a NIfTI file, or every file of a DICOM folder."""
    if path.is_dir():
        return load_dicom(sorted(p for p in path.rglob("*") if p.is_file()))
    return load_nifti(path)
