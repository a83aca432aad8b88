"""The two random draws every stage of the simulator shares: a uniform float and a smooth field.

Its own module so that protocols, physics, geometry and artefacts can use them without importing
one another.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _smooth_field(rng, shape, scale_px: float, amplitude: float) -> np.ndarray:
    small = [max(2, int(s / scale_px)) for s in shape]
    f = rng.normal(size=small)
    f = ndimage.zoom(f, [s / m for s, m in zip(shape, small)], order=3)[tuple(slice(0, s) for s in shape)]
    f = f / (np.abs(f).max() + 1e-6)
    return amplitude * f
