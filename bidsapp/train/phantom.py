"""A procedural head phantom: a tissue map the package can make without any external data.

Nested ellipsoids (scalp, fat, skull with marrow, CSF, cortex, white matter) whose boundaries are
perturbed by smooth noise so the cortex folds, plus ventricles with choroid plexus, deep grey
nuclei, eyes, a superior sagittal sinus and dura. It drives the bundled example study and adds
shape variety to training; it is not meant to be anatomically exact.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .simulate import Anatomy
from .tissues import TISSUE_INDEX

SHAPE = (160, 192, 168)  # x (R), y (A), z (S) at 1 mm


def _ellipsoid_distance(shape, centre, radii) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    return np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)))


def make_phantom(seed: int = 0) -> Anatomy:
    rng = np.random.default_rng(seed)
    c = np.array(SHAPE) / 2 + np.array([0, 0, 8])
    head = np.array([68, 88, 78]) * rng.uniform(0.93, 1.07, 3)
    d = _ellipsoid_distance(SHAPE, c, head)
    noise = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.5)
    noise /= noise.std()
    t = np.full(SHAPE, TISSUE_INDEX["air"], np.uint8)
    layers = [(1.0, "skin"), (0.965, "fat"), (0.93, "bone"), (0.915, "marrow"), (0.895, "bone"),
              (0.875, "dura"), (0.865, "csf")]
    for r, tissue in layers:
        t[d <= r] = TISSUE_INDEX[tissue]
    t[d + 0.012 * noise <= 0.845] = TISSUE_INDEX["gm"]
    # gyri: white matter reaches out in fingers, sulci (CSF) reach in from the surface
    t[(d + 0.07 * noise <= 0.74) & (d <= 0.82)] = TISSUE_INDEX["wm"]
    t[(d - 0.05 * noise >= 0.80) & (d <= 0.845)] = TISSUE_INDEX["csf"]
    # the brain sits on a flat skull base: below it, soft tissue and muscle of the neck
    below = np.ogrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]][2] < c[2] - 0.55 * head[2]
    t[(d <= 1.0) & below] = TISSUE_INDEX["muscle"]
    for side in (-1, 1):
        vent = _ellipsoid_distance(SHAPE, c + [side * 10, 2, 8], [7, 30, 11])
        t[vent <= 1] = TISSUE_INDEX["csf"]
        t[_ellipsoid_distance(SHAPE, c + [side * 9, -4, 2], [2.5, 6, 3]) <= 1] = TISSUE_INDEX["choroid"]
        t[_ellipsoid_distance(SHAPE, c + [side * 20, 4, -4], [7, 11, 8]) <= 1] = TISSUE_INDEX["deep_gm"]
        t[_ellipsoid_distance(SHAPE, c + [side * 30, 0.8 * head[1], -0.35 * head[2]], [11, 11, 11]) <= 1] = TISSUE_INDEX["vitreous"]
    midline = np.abs(np.arange(SHAPE[0]) - c[0])[:, None, None] <= 2.5
    t[midline & (d > 0.85) & (d <= 0.875)] = TISSUE_INDEX["vein"]  # superior sagittal sinus
    t[midline & (d <= 0.845) & (t == TISSUE_INDEX["gm"])] = TISSUE_INDEX["csf"]  # interhemispheric fissure
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -np.array(SHAPE) / 2
    return Anatomy(f"phantom/{seed}", "brain", t, affine)
