"""What the label maps do not draw: angiography's arteries, the scalp's and neck's fat, fine tissue texture.

Applied to the sampled tissue slices and their signal, before the scanner's artefacts.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .draws import _smooth_field, _u
from .tissues import _IS_BRAIN, TISSUE_INDEX


def _with_arteries(rng, tissue: np.ndarray) -> np.ndarray:
    """Arteries for angiography, which the label maps lack (SynthSeg has none, BrainWeb one vessel
    label): short pieces of the zero set of a smooth random field (vessels running in the slice)
    and dots (vessels crossing it), inside the brain, the same through a slice's sub-planes.
    Without them a simulated TOF of a SynthSeg head is a T1w image labelled "other"."""
    n, m, h, w = tissue.shape
    brain = _IS_BRAIN[tissue].any(axis=1)
    out = tissue.copy()
    for k in range(n):
        run = np.abs(_smooth_field(rng, (h, w), _u(rng, 8, 20), 1.0)) < _u(rng, 0.02, 0.05)
        pieces = _smooth_field(rng, (h, w), _u(rng, 6, 15), 1.0) > _u(rng, 0.1, 0.5)
        dots = ndimage.binary_dilation(rng.random((h, w)) < _u(rng, 0.0005, 0.003))
        vessel = ((run & pieces) | dots) & ndimage.binary_erosion(brain[k], iterations=2)
        out[k][:, vessel] = TISSUE_INDEX["artery"]
    return out


#: Depth under the air boundary (mm; the skin label included) within which SynthSeg's lumped soft
#: tissue is subcutaneous fat, and that fat's share. Real scalps are a bright fat ring on T1w, T2w
#: and FLAIR alike; a depth-blind mixture (mostly muscle, as the neck needs) gave simulated heads a
#: dark, blotchy scalp (the 2D TIR FLAIR with its bright scalp was read as T1wce by every model).
SUBCUTANEOUS_FAT = {"depth_mm": (5.0, 12.0), "fraction": (0.75, 0.95)}


def _mix_lumped_soft_tissue(rng, sub: np.ndarray, tissue: np.ndarray, lut: np.ndarray, res: float = 1.0) -> np.ndarray:
    """SynthSeg's label 507 lumps scalp and neck fat with muscle. A per-image constant mixture
    paints it as one flat slab (a look no real scan has); a smooth random fat fraction per pixel
    gives the patchy fat/muscle of a real neck, and fat dominates a layer under the skin
    (``SUBCUTANEOUS_FAT``), the scalp's and the neck's subcutaneous fat."""
    soft = tissue == TISSUE_INDEX["head_soft"]
    if not soft.any():
        return sub
    h, w = tissue.shape[2:]
    frac = 1 / (1 + np.exp(-(_smooth_field(rng, (h, w), _u(rng, 4, 12), 6.0) + _u(rng, -3, 1))))
    middle = tissue[:, tissue.shape[1] // 2] != TISSUE_INDEX["air"]  # sub-planes of a slice lie ~1 mm apart
    depth = np.stack([ndimage.distance_transform_edt(plane, sampling=res) for plane in middle])[:, None]
    shell = 1 / (1 + np.exp((depth - _u(rng, *SUBCUTANEOUS_FAT["depth_mm"])) / 1.5))
    frac = shell * _u(rng, *SUBCUTANEOUS_FAT["fraction"]) + (1 - shell) * frac[None, None]
    mixed = frac * lut[TISSUE_INDEX["fat"]] + (1 - frac) * lut[TISSUE_INDEX["muscle"]]
    return np.where(soft, mixed.astype(np.float32), sub)


#: Range of the fine texture's amplitude by region: body fat has septa and muscle striations that
#: the label maps do not draw, so body tissue is grainier than brain.
TEXTURE = {"brain": (0.01, 0.06), "body": (0.02, 0.12)}


def _tissue_texture(rng, sub: np.ndarray, res: float, amplitude: tuple[float, float] = TEXTURE["brain"]) -> np.ndarray:
    """Real tissue is not piecewise constant: fine multiplicative texture (cells, vessels,
    susceptibility; 1-2 mm grain, ``amplitude``) and partial-volume blur across the crisp label edges."""
    n, m, h, w = sub.shape
    grain = ndimage.gaussian_filter(rng.normal(size=(n, 1, h, w)), sigma=(0, 0, _u(rng, 0.6, 1.5) / res, _u(rng, 0.6, 1.5) / res))
    grain /= grain.std() + 1e-6
    sub = sub * (1 + _u(rng, *amplitude) * grain).astype(np.float32)
    sigma = _u(rng, 0.4, 1.3) / max(res, 0.5)
    return ndimage.gaussian_filter(sub, sigma=(0, 0, sigma, sigma)).astype(np.float32)
