"""Tell a time series (BOLD fMRI, ASL control/label pairs, perfusion runs) by its volumes.

A time series repeats one image: every voxel keeps its signal from volume to volume within a few
per cent (BOLD temporal SNR is 20-100). Diffusion volumes do not: b=0 images are 2-4 times as
bright as diffusion-weighted ones, and even diffusion-weighted volumes alone differ voxel by voxel
with the gradient direction (real DTI here: median voxel variation 16%). The network sees one
representative 3D image, and the temporal mean of a BOLD run is an echo-planar T2*-weighted
image that it can take for a b=0-like DWI; the volumes themselves say what it is. This is read
from the pixels, not from any header claim, so it holds for NIfTI input without sidecars too.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Fewer volumes than this say nothing about repetition (a DWI trace with 3 b-values, dual echoes).
MIN_VOLUMES = 5
#: Voxel time courses kept per series: enough for a stable median, small whatever the run's length.
MAX_VOXELS = 10_000
#: Volumes whose mean signal is this many times above (or below) the median volume's are set
#: aside before measuring: b=0 images among diffusion volumes, an M0 image in an ASL run,
#: non-steady-state volumes at the start of a BOLD run.
OUTLIER_RATIO = 1.3
#: A series is a time series when the median voxel's temporal coefficient of variation, over the
#: volumes kept, is below this. BOLD: 0.01-0.05; diffusion-weighted volumes alone: 0.15 and up.
MAX_TEMPORAL_CV = 0.10
#: b-values above this (s/mm^2) make a series diffusion-weighted.
DIFFUSION_MIN_B = 50.0
#: Without b-values, a series whose brightest volume has at least this many times the signal of its
#: dimmest one carries diffusion weighting (brain b=0 against b=1000: 2-4x; prostate b=50 against
#: b=800: 2.2x). A BOLD run's volumes differ by a few per cent; where its first, non-steady-state
#: volumes are this much brighter, they are set aside like b=0 images and the run keeps the rest.
DIFFUSION_CONTRAST = 1.5
#: ...and its most attenuated shell is every volume within this factor of the dimmest one (the
#: directions of one b-value differ by up to ~12% in mean signal).
SHELL_SPREAD = 1.15


def is_diffusion(b_values: tuple[float, ...]) -> bool:
    """The one rule for "these b-values make a diffusion series": ``volume`` reads such a series by
    its highest shell, and it is never a time series."""
    return bool(b_values) and max(b_values) > DIFFUSION_MIN_B


class TimecourseSampler:
    """Collects the signal of up to ``max_voxels`` foreground voxels, one volume at a time (a
    long run is never held whole). The voxels are the first volume's foreground (above a tenth
    of its 99th percentile), evenly thinned."""

    def __init__(self, max_voxels: int = MAX_VOXELS):
        self.max_voxels = max_voxels
        self.picked: np.ndarray | None = None
        self.rows: list[np.ndarray] = []

    def add(self, volume: np.ndarray) -> None:
        flat = np.nan_to_num(np.asarray(volume, dtype=np.float32).ravel())
        if self.picked is None:
            fg = np.flatnonzero(flat > 0.1 * np.percentile(flat, 99))
            self.picked = fg[np.linspace(0, fg.size - 1, min(self.max_voxels, fg.size)).astype(int)]
        self.rows.append(flat[self.picked])

    def result(self) -> np.ndarray | None:
        """(volumes, voxels), or None when nothing was added or the first volume had no foreground."""
        if not self.rows or self.picked is None or self.picked.size == 0:
            return None
        return np.stack(self.rows)


def sample_timecourses(volumes: Iterable[np.ndarray], max_voxels: int = MAX_VOXELS) -> np.ndarray | None:
    """``TimecourseSampler`` over ``volumes``."""
    sampler = TimecourseSampler(max_voxels)
    for vol in volumes:
        sampler.add(vol)
    return sampler.result()


def most_attenuated(timecourses: np.ndarray | None) -> list[int] | None:
    """Volumes that stand for a 4D series read *without* b-values, or None for all of them.

    A DWI whose ``.bval`` was lost (a bare NIfTI) still shows its diffusion weighting in its
    volumes: b=0 images are several times brighter than diffusion-weighted ones. Averaging them all
    would blend a T2-weighted b=0 into the trace the network knows, so the dimmest shell is kept,
    as b-values would keep the highest one. A run of one repeated image (BOLD, ASL) has no such
    spread and keeps every volume; bright non-steady-state volumes at its start are set aside."""
    if timecourses is None or len(timecourses) < 2:
        return None
    means = timecourses.mean(axis=1)
    low = float(means.min())
    if low <= 0 or float(means.max()) < DIFFUSION_CONTRAST * low:
        return None
    return [int(i) for i in np.flatnonzero(means <= SHELL_SPREAD * low)]


def time_series_reason(timecourses: np.ndarray | None, b_values: tuple[float, ...] = ()) -> str:
    """Why this series is a time series ("" when it is not, or when nothing can be said).

    Diffusion series (``is_diffusion``) are never time series, whatever their volumes look like."""
    if timecourses is None or len(timecourses) < MIN_VOLUMES or is_diffusion(b_values):
        return ""
    means = timecourses.mean(axis=1)
    median = float(np.median(means))
    if median <= 0:
        return ""
    ratio = means / median
    kept = timecourses[(ratio < OUTLIER_RATIO) & (ratio > 1 / OUTLIER_RATIO)]
    if len(kept) < max(MIN_VOLUMES, 0.6 * len(timecourses)):
        return ""
    cv = float(np.median(kept.std(axis=0) / np.maximum(kept.mean(axis=0), 1e-6)))
    if cv >= MAX_TEMPORAL_CV:
        return ""
    return (f"time series: {len(timecourses)} volumes of one image (voxel signal varies {cv:.1%} "
            f"between volumes): repeated acquisitions (fMRI, ASL, b=0 field-map runs) are kept as other")
