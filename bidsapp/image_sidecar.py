"""An image's JSON sidecar in the derivative dataset a BIDS input is sorted into.

BIDS requires ``SkullStripped`` of every image in a derivative dataset. The App does not touch
the images, so the value is the input's: its sidecar's when it says, else ``false`` when the
input is a raw dataset (unprocessed by definition; raw is the default DatasetType). An input
derivative that does not say keeps its sidecar as it is: nothing here can tell.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from bidsapp.records import Series


def input_root(series: Series) -> Path:
    """The input dataset's folder: the image path without its input-relative ``source``."""
    return series.files[0].parents[len(PurePosixPath(series.source).parts) - 1]


def input_is_raw(root: Path) -> bool:
    try:
        description = json.loads((root / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(description, dict) or description.get("DatasetType", "raw") == "raw"


def metadata(sidecar: Path | None) -> dict | None:
    """An image's sidecar fields ({} without one), or None when it cannot be read (discovery warned)."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar else {}
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def derivative_text(sidecar: Path | None, raw_input: bool, changes: dict | None = None) -> str | None:
    """The sidecar to write for an image, or None where the input's may be linked as it is.
    ``changes``: fields the output must say otherwise (an M0 scan's ``IntendedFor``, renamed)."""
    meta = metadata(sidecar)
    if meta is None:  # unreadable: keep it as it is
        return None
    skull = {"SkullStripped": False} if raw_input and "SkullStripped" not in meta else {}
    if not (skull or changes):
        return None
    return json.dumps({**meta, **skull, **(changes or {})}, indent=2, ensure_ascii=False) + "\n"
