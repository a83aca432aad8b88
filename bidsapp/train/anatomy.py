"""The anatomy a series is rendered from (a tissue-index map in world space) and the lesions painted into it.

Every source of anatomy produces an ``Anatomy``: the label maps (``label_maps``) and the procedural
phantoms (``phantom``); both import it from here, so neither depends on the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import nibabel as nib
import numpy as np

from .tissues import _IS_BRAIN, TISSUE_INDEX, _idx


@dataclass
class Anatomy:
    """A tissue-index map (uint8, indices into ``TISSUE_NAMES``) in RAS world space."""

    name: str
    region: str  # "brain" | "body"
    tissue: np.ndarray
    affine: np.ndarray
    fg_points: np.ndarray = field(repr=False, default=None)  # (n, 3) world coords of tissue voxels
    #: World centres (mm) of the organs an organ-targeted series is planned on (``geometry.draw_target``).
    organ_centres: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        if self.fg_points is None:
            self.fg_points = self._sample_points(self.tissue != TISSUE_INDEX["air"])

    @cached_property
    def brain_points(self) -> np.ndarray:
        """(n, 3) world coordinates of a sample of brain voxels: the coverage of a 2D brain series."""
        brain = _IS_BRAIN[self.tissue]
        return self._sample_points(brain) if brain.any() else self.fg_points

    def _sample_points(self, mask: np.ndarray, n: int = 20000) -> np.ndarray:
        """World coordinates of up to ``n`` voxels of ``mask``, a fixed (seeded) sample."""
        ijk = np.argwhere(mask)
        ijk = ijk[np.random.default_rng(0).choice(len(ijk), size=min(len(ijk), n), replace=False)]
        return nib.affines.apply_affine(self.affine, ijk)

    @cached_property
    def brain_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Voxel bounding box (low, high corners) of the brain tissue: the frame in which
        ``BOLD_DROPOUT`` places the air-tissue interfaces the label maps do not draw."""
        brain = _IS_BRAIN[self.tissue]
        ends = []
        for axis in range(3):
            present = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
            ends.append((present[0], present[-1]) if present.size else (0, self.tissue.shape[axis] - 1))
        lo, hi = np.array(ends, float).T
        return lo, hi


def _paint_ellipsoid(tissue: np.ndarray, centre, radii, value: int, replace_only=None) -> None:
    lo = np.maximum((centre - radii).astype(int), 0)
    hi = np.minimum((centre + radii).astype(int) + 1, tissue.shape)
    if np.any(hi <= lo):
        return
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    zz = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(zz, centre, radii)) <= 1.0
    region = tissue[sl]
    if replace_only is not None:
        inside &= np.isin(region, replace_only)
    region[inside] = value


LESION_KINDS = ("tumour", "cavity", "wm_lesions")


def with_lesions(rng, anat: Anatomy, kind_p: tuple[float, float, float] = (0.55, 0.15, 0.3)) -> Anatomy:
    """A copy of a brain with a tumour (enhancing rim, necrosis, oedema), a resection cavity or
    white-matter lesions painted in, in voxel space (``kind_p``: probabilities of ``LESION_KINDS``)."""
    tissue = anat.tissue.copy()
    wm = np.argwhere(tissue[::4, ::4, ::4] == TISSUE_INDEX["wm"]) * 4
    if len(wm) == 0:
        return anat
    brain = _idx("wm", "gm", "deep_gm", "csf")
    kind = rng.choice(LESION_KINDS, p=kind_p)
    if kind == "wm_lesions":
        for _ in range(rng.integers(3, 15)):
            c = wm[rng.integers(len(wm))]
            _paint_ellipsoid(tissue, c, rng.uniform(1.5, 6, 3), TISSUE_INDEX["wm_lesion"], _idx("wm"))
    else:
        c = wm[rng.integers(len(wm))].astype(float)
        r = rng.uniform(6, 22, 3)
        if kind == "tumour":
            _paint_ellipsoid(tissue, c, r * rng.uniform(1.4, 2.2), TISSUE_INDEX["oedema"], _idx("wm", "deep_gm"))
            _paint_ellipsoid(tissue, c, r, TISSUE_INDEX["tumour"], brain)
            if rng.random() < 0.7:
                _paint_ellipsoid(tissue, c, r * rng.uniform(0.4, 0.75), TISSUE_INDEX["necrosis"])
        else:
            _paint_ellipsoid(tissue, c, r, TISSUE_INDEX["csf"], brain)
            _paint_ellipsoid(tissue, c, r * 1.3, TISSUE_INDEX["oedema"] if rng.random() < 0.5 else TISSUE_INDEX["wm_lesion"],
                             _idx("wm"))
    return replace(anat, tissue=tissue)
