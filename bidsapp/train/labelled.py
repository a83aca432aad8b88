"""Real labelled series for fine-tuning: read once, then drawn as training inputs.

A ``labels.tsv`` (tab-separated, header line, columns ``path`` and ``label``; the format of the
real development set) names NIfTI files or DICOM series folders relative to a root. Users' own
labelled data are as often DICOM as NIfTI, so both load the way the App loads them
(``labels_file.load_any``). A column such as ``source_repo`` or ``site`` groups series that share a
scanner or a preprocessing pipeline, so a cross-validation can hold a whole source out.

Each draw is a fresh set of slice positions along a fresh view (any of ``volume.view_axes``:
the App averages a 3D volume's three views, so training shows it all three), normalised exactly
as at inference; the training augmentation is applied afterwards by ``train.train_step``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset

from ..classes import LABELS
from ..records import Volume
from ..volume import SPEC, InputSpec, native_slices, normalise_stack, view_axes, volume_geometry
from . import simulate
from .labels_file import load_any, read_label_rows

log = logging.getLogger("mrclass.train")


@dataclass(frozen=True)
class LabelledVolume:
    """One real series, loaded, with its label and the source it came from."""

    name: str
    label: str
    group: str
    volume: Volume


def load_labelled(labels_tsv: str | Path, root: str | Path, group_column: str | None = None) -> list[LabelledVolume]:
    """Every labelled series under ``root``, loaded once (NIfTI files and DICOM folders)."""
    items = []
    for row in read_label_rows(labels_tsv, group_column):
        source = Path(root) / row["path"]
        if not source.exists():
            raise FileNotFoundError(f"{labels_tsv}: {row['path']} not found under {root}")
        group = row[group_column] if group_column else row["path"]
        items.append(LabelledVolume(row["path"], row["label"], group, load_any(source)))
    log.info("fine-tuning on %d labelled real series", len(items))
    return items


def one_hot(label: str) -> np.ndarray:
    """Training target of one series: one-vs-all, all zeros for the open set."""
    target = np.zeros(len(LABELS), np.float32)
    idx = simulate.label_index(label)
    if idx >= 0:
        target[idx] = 1.0
    return target


def labelled_sample(rng: np.random.Generator, item: LabelledVolume, n_slices: int,
                    spec: InputSpec = SPEC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stack, geometry, target) of one draw: random view, random slice positions."""
    axes = view_axes(item.volume)
    axis = axes[rng.integers(len(axes))]
    slices, (row_mm, col_mm) = native_slices(item.volume, n_slices, spec.coverage, rng, axis=axis)
    stack = normalise_stack(slices, row_mm, col_mm, spec).astype(np.float32)
    return stack, volume_geometry(item.volume), one_hot(item.label)


class LabelledSeries(IterableDataset):
    """An endless stream of draws from real labelled series, uniformly over series (seeded)."""

    def __init__(self, items: list[LabelledVolume], n_slices: int, seed: int, spec: InputSpec = SPEC):
        if not items:
            raise ValueError("no labelled series to fine-tune on")
        self.items, self.n_slices, self.seed, self.spec = items, n_slices, seed, spec

    def __iter__(self):
        rng = np.random.default_rng([self.seed, 7])
        while True:
            yield labelled_sample(rng, self.items[rng.integers(len(self.items))], self.n_slices, self.spec)
