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


#: Directional diffusion: a series of raw DTI volumes is read as the mean of its highest shell
#: (``volume.representative``), so what the network sees is the mean of K single-direction images,
#: K drawn here: one volume, the three orthogonal axes of a 3-scan protocol, or 6-32 directions
#: spread over the sphere. λ∥ − λ⊥ of coherent white matter is about 1.0e-3 mm²/s at FA 0.5-0.7
#: (Pierpaoli 1996 Radiology 201:637); deep grey matter keeps a third of it.
DTI_DIRECTIONS = {"one": 0.3, "orthogonal": 0.35, "spread": 0.35}
DTI_DELTA = {"wm": (0.7, 1.3), "deep_gm": (0.2, 0.45)}  # λ∥ − λ⊥, 1e-3 mm²/s


def fibre_orientation(rng, tissue: np.ndarray, res: float) -> np.ndarray:
    """Unit fibre direction per pixel of each slice, (n, H, W, 3) in (row, column, through-plane).

    Tracts follow white matter's shape: in a slice, along its extent's edges (gyral blades run
    into the gyrus, the callosum across the midline), read with the structure tensor of the
    white-matter fraction (so a thin tract's middle, where the gradient vanishes, follows its
    edges too). That is where one gradient direction shows a tract bright or dark along its
    course. Where white matter has no orientation of its own (deep, wide) a smooth random one
    takes over, with a through-plane component (the corona radiata). Until session 32 a smooth
    random field alone modulated white matter: no tracts."""
    n, _, h, w = tissue.shape
    wm = (tissue == TISSUE_INDEX["wm"]).mean(axis=1, dtype=np.float32)
    smooth = ndimage.gaussian_filter(wm, sigma=(0, 1.5 / res, 1.5 / res))
    gy, gx = np.gradient(smooth, axis=(1, 2))
    rho = (0, _u(rng, 3.0, 5.0) / res, _u(rng, 3.0, 5.0) / res)
    jxx, jyy, jxy = (ndimage.gaussian_filter(a, sigma=rho) for a in (gx * gx, gy * gy, gx * gy))
    # orientations are axial (f = -f): work with doubled angles; the fibre is the normal + 90 deg
    c2, s2 = jyy - jxx, -2 * jxy
    strength = np.hypot(c2, s2)
    core = wm > 0.5
    along = np.clip(strength / (np.percentile(strength[core], 75) + 1e-9), 0.0, 1.0) if core.any() else 0 * strength
    wander = 2 * np.pi * _smooth_field(rng, (h, w), _u(rng, 8, 16) / res, 1.0)[None]
    phi = 0.5 * np.arctan2(along * s2 / (strength + 1e-9) + (1 - along) * np.sin(wander),
                           along * c2 / (strength + 1e-9) + (1 - along) * np.cos(wander))
    through = (1 - along) * np.abs(_smooth_field(rng, (h, w), _u(rng, 6, 12) / res, 1.0))[None]
    in_plane = np.sqrt(1 - through ** 2)
    return np.stack([in_plane * np.sin(phi), in_plane * np.cos(phi), through], axis=-1).astype(np.float32)


def _gradient_directions(rng) -> np.ndarray:
    kind = str(rng.choice(list(DTI_DIRECTIONS), p=list(DTI_DIRECTIONS.values())))
    if kind == "orthogonal":
        return np.eye(3)
    k = 1 if kind == "one" else int(rng.integers(6, 33))
    g = rng.normal(size=(k, 3))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def directional_diffusion(rng, sub: np.ndarray, tissue: np.ndarray, b: float, res: float,
                          directions: np.ndarray | None = None) -> np.ndarray:
    """Raw DTI volumes averaged against the scanner's trace: a tensor with its long axis along
    ``fibre_orientation`` scales each gradient direction's signal by exp(−b·Δ·((g·f)² − 1/3))
    around the trace's; the mean over ``directions`` (unit rows in (row, column, through-plane);
    drawn by ``DTI_DIRECTIONS`` when not given) is what is read."""
    f = fibre_orientation(rng, tissue, res)
    g = _gradient_directions(rng) if directions is None else np.asarray(directions, dtype=np.float32)
    cos2 = np.einsum("nhwc,kc->knhw", f, g) ** 2
    out = sub
    for name, (lo, hi) in DTI_DELTA.items():
        factor = np.exp(-b / 1000 * _u(rng, lo, hi) * (cos2 - 1 / 3)).mean(axis=0)[:, None]
        out = np.where(tissue == TISSUE_INDEX[name], out * factor, out)
    return out.astype(np.float32)
