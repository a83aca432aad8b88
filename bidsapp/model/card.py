"""The model card: a JSON file beside the weights (``X.json`` for ``X.pt``), read without torch so
that benchmarks and provenance records can describe a model without loading it."""

from __future__ import annotations

import json
from pathlib import Path

#: The weights the App ships (``predict.DEFAULT_WEIGHTS``, named here without importing torch).
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "mrclass.pt"


def card_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_card(weights: str | Path) -> dict | None:
    """The card beside ``weights``, or None when there is none."""
    path = card_path(weights)
    return json.loads(path.read_text()) if path.is_file() else None
