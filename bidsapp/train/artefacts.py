"""Scanner and storage effects: bias and coil shading, EPI distortion and dropout, ghosts, Rician noise,
skull stripping, partial slabs, stored value scaling and stored voxel sizes.

Everything between the ideal image and the file a site shares, drawn per series.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
from scipy import ndimage

from .anatomy import Anatomy
from .draws import _smooth_field, _u
from .geometry import SliceGeometry, slice_voxels
from .protocols import Protocol


#: Share of brain series shown skull-stripped (pre-processed datasets), by sequence; SWI is
#: rarely distributed stripped, and a stripped SWI is hard to tell from a stripped T1w.
STRIPPED_P = {"swi": 0.15, "ct": 0.0, "noise": 0.0, "fmap_phase": 0.0}


def draw_skull_stripped(rng, anat: Anatomy, proto: Protocol) -> bool:
    """Whether a brain series is shown skull-stripped: 45% of them unless ``STRIPPED_P`` says."""
    return anat.region == "brain" and rng.random() < STRIPPED_P.get(proto.seq, 0.45)


#: Skull-stripped research series are mostly co-registered to a 1 mm template (BraTS-like), and a
#: source slab that did not cover the whole brain leaves a flat cut across it there: the missing
#: vertex or skull base of a 2D axial stack, or a half brain of a coronal or oblique slab (the
#: deepmedic pat0006 pair). Share of stripped series so cut, and the share of the brain cut away.
#: 0.13.0, never shown one, lost up to 0.6 of the true-class probability of real stripped series
#: when a third of the brain was cut from them (benchmarks/studies/coverage_probe.py).
PARTIAL_SLAB = {"p": 0.3, "cut": (0.08, 0.5)}


def slab_coverage(rng, anat: Anatomy, proto: Protocol, geo: SliceGeometry, scale: np.ndarray | None = None) -> np.ndarray:
    """(n, H, W) bool: the pixels a source slab covered, a half-space cutting off
    ``PARTIAL_SLAB["cut"]`` of the brain. The cut plane is tilted more than 45 degrees from the
    slices, so it crosses them as a straight edge: a cut parallel to the slices only removes
    slices, which inference skips anyway (``volume.native_slices`` reads the foreground extent).
    Half of the cuts drawn are near-axial (a 2D axial stack's missing top or bottom, seen across
    sagittal or coronal slices; axial slices reject them), the rest any direction."""
    while True:
        edge = rng.normal(size=3)
        if rng.random() < 0.5:
            edge = np.array([0.0, 0.0, np.sign(edge[2])]) + 0.2 * edge
        edge /= np.linalg.norm(edge)
        if abs(edge @ geo.normal) < 0.7:
            break
    brain = anat.brain_points @ edge
    level = np.quantile(brain, _u(rng, *PARTIAL_SLAB["cut"]))
    mid = [vox[len(vox) // 2] for vox in slice_voxels(anat, proto, geo, scale)]  # (H, W, 3) voxel coords
    return np.stack([nib.affines.apply_affine(anat.affine, v) @ edge >= level for v in mid])


#: Where gradient-echo EPI (BOLD) loses signal to air next to tissue, which a spin echo (b=0
#: diffusion) refocuses: the frontal sinus and orbits over the orbitofrontal cortex, the mastoid air
#: cells and ear canals under the inferior temporal lobes (Ojemann 1997). Centre and radii in
#: fractions of the brain's bounding box, RAS: x left→right, y back→front, z bottom→top.
BOLD_DROPOUT = {
    "orbitofrontal": ((0.5, 0.84, 0.32), (0.28, 0.14, 0.10)),
    "temporal_left": ((0.12, 0.60, 0.22), (0.10, 0.14, 0.09)),
    "temporal_right": ((0.88, 0.60, 0.22), (0.10, 0.14, 0.09)),
}


def bold_dropout(rng, anat: Anatomy, proto: Protocol, geo: SliceGeometry, scale: np.ndarray | None = None) -> np.ndarray:
    """(n, H, W) signal kept on each slice under susceptibility dephasing: near-total loss at the
    ``BOLD_DROPOUT`` interfaces (moved, sized and deepened at random per series), none elsewhere.
    Random patches at the head's edge, its first version, did not transfer to real fMRI."""
    lo, hi = anat.brain_box
    extent = hi - lo
    regions = [(lo + (np.array(c) + rng.normal(scale=0.03, size=3)) * extent,
                np.array(r) * extent * rng.uniform(0.7, 1.4, size=3), _u(rng, 0.6, 1.0))
               for c, r in BOLD_DROPOUT.values()]
    keep = []
    for vox in slice_voxels(anat, proto, geo, scale):
        centre_plane = vox.mean(axis=0)
        k = np.ones(centre_plane.shape[:2])
        for centre, radii, depth in regions:
            k *= 1 - depth * np.exp(-((((centre_plane - centre) / radii) ** 2).sum(-1)) ** 2)
        keep.append(k)
    return np.stack(keep).astype(np.float32)


#: Share of series shaded by phased-array receive coils (no intensity normalisation), and the
#: range of the extra gain at the skin relative to depth, by region: body arrays sit on the
#: skin of a large cross-section, head arrays closer around a smaller one. 3 T heads get their
#: own row: 20-64 channel arrays brighten cortex, scalp and face well above the centre when the
#: scanner does not normalise (real 3 T MPRAGEs with neck and face were refused by 0.15.0, which
#: drew every head at 1.5 T's gains).
COIL_SHADING = {"body": (0.85, (0.5, 3.0)), "brain": (0.4, (0.15, 0.7)), "brain_3t": (0.5, (0.2, 1.5))}

#: Share of skull-stripped series whose bias field was removed before sharing (N4 in the BraTS
#: and TCGA pre-processing); the rest keep the scanner's shading.
BIAS_CORRECTED_P = 0.6


def _coil_sensitivity(rng, mask: np.ndarray, res: float, gain: tuple[float, float]) -> np.ndarray:
    """Receive profile of a phased-array coil: bright next to the elements on the body surface,
    falling off with depth over a few centimetres, unevenly around the outline (where elements
    sit). A smooth random bias field has no such link to the anatomy; real pelvic T2 and 3 T
    MPRAGE show it plainly. One coil for the whole series."""
    n, h, w = mask.shape
    extra = _u(rng, *gain) * np.clip(1 + _smooth_field(rng, (h, w), _u(rng, 30, 80), 0.8), 0.2, None)
    decay_px = _u(rng, 25, 80) / res
    out = np.ones(mask.shape, np.float32)
    for k in range(n):
        if mask[k].any():
            depth = ndimage.distance_transform_edt(ndimage.binary_fill_holes(mask[k]))
            out[k] = 1 + extra * np.exp(-depth / decay_px)
    return out


#: Scanners and converters often write exact zeros wherever the magnitude is under a noise-scaled
#: threshold, leaving the whole head (scalp, neck) on a constant background: 7 of the 17 scanner
#: series of the development set (the Philips and Canon DTI, the Philips MPRAGE and pCASL, the niivue
#: T1w and DWI) are stored so; the simulator drew it only for skull-stripped and fitted images.
#: 0.19.0 read the Philips DTI as DWI at 0.55 masked and 0.88 with its zeros filled with noise,
#: the Philips MPRAGE 0.69 against 0.88 (session 36). Share of other scanner series so stored,
#: and the threshold in noise standard deviations (dark CSF of a b=1000 image goes with the air).
SCANNER_MASKED = {"p": 0.3, "noise_multiple": (2.0, 6.0)}


def _artefacts(rng, img: np.ndarray, proto: Protocol, mask: np.ndarray, region: str = "brain",
               res: float = 1.0, bias_corrected: bool = False, stripped: bool = False) -> np.ndarray:
    n, h, w = img.shape
    if proto.seq == "fmap_phase":  # phase difference: smooth field inside the head, uniform noise outside
        inside = np.stack([_smooth_field(rng, (h, w), 20, math.pi) for _ in range(n)])
        return np.where(mask, inside, rng.uniform(-math.pi, math.pi, size=img.shape)).astype(np.float32)
    if proto.seq == "noise":
        return np.abs(rng.normal(size=img.shape)).astype(np.float32)
    if proto.seq == "ct":
        return img + rng.normal(scale=_u(rng, 2, 15), size=img.shape).astype(np.float32)
    img = img * (1 + _smooth_field(rng, (h, w), _u(rng, 3, 8), _u(rng, 0.02, 0.08))[None])  # texture
    if proto.seq == "fa":  # FA maps: fit noise biases FA up; background zeroed by the scanner, or noise FA
        img = np.abs(img + rng.normal(scale=_u(rng, 0.02, 0.08), size=img.shape))
        outside = rng.uniform(0.15, 0.9, size=img.shape) if rng.random() < 0.4 else np.zeros_like(img)
        return np.clip(np.where(mask, img, outside), 0, 1).astype(np.float32)
    if not bias_corrected:
        img = img * np.exp(_smooth_field(rng, (h, w), _u(rng, 40, 100), _u(rng, 0.0, 0.35)))[None]
        p_coil, gain = COIL_SHADING["brain_3t" if region == "brain" and proto.field >= 2 else region]
        if rng.random() < p_coil:
            img = img * _coil_sensitivity(rng, mask, res, gain)
    phase_axis = 1 if rng.random() < 0.5 else 2
    if proto.epi:
        img = _epi_distortion(rng, img, phase_axis)
        # T2* decay during the long echo-planar readout blurs along the phase axis
        img = ndimage.gaussian_filter1d(img, sigma=_u(rng, 0.3, 1.2), axis=phase_axis)
    elif proto.single_shot:  # T2 decay over a 60-130 echo train: a wider point spread along phase
        img = ndimage.gaussian_filter1d(img, sigma=_u(rng, 0.6, 1.8), axis=phase_axis)
    if proto.epi or rng.random() < 0.1:  # Nyquist / motion ghost along the phase axis
        g = _u(rng, 0.02, 0.12)
        img = img + g * np.roll(img, h // 2, axis=phase_axis)
    # noise relative to the typical tissue signal; a perfusion subtraction has signal in grey
    # matter only, so its median over the head would be near zero and its noise invisible
    level = np.percentile(img[mask], 90 if proto.seq == "asl" else 50) if mask.any() else img.mean()
    sigma = level / proto.snr
    img = np.sqrt((img + rng.normal(scale=sigma, size=img.shape)) ** 2 + rng.normal(scale=sigma, size=img.shape) ** 2)
    if proto.computed:  # a fitted image: the scanner writes zero where the fit had no signal
        img = np.where(ndimage.binary_erosion(mask, np.ones((1, 3, 3), bool), iterations=2), img, 0.0)
    elif not stripped and rng.random() < SCANNER_MASKED["p"]:  # stripped: zeroed outside the brain anyway
        img = np.where(img > _u(rng, *SCANNER_MASKED["noise_multiple"]) * sigma, img, 0.0)
    return img.astype(np.float32)


#: ADC maps as scanners compute them: ln(S0 / Sb) / b from a b=0 image and the trace of
#: ``directions`` diffusion-weighted ones (their geometric mean), each a magnitude image with its
#: own noise, both distorted and blurred alike (one echo-planar acquisition); stored in
#: 10^-6 mm²/s. Where S0 is under ``mask`` times the noise the scanner writes 0 (a threshold on
#: the 99th percentile blanked the body around a bright bladder), except in ``p_unmasked`` of
#: maps (the fit of noise outside the head); values are clipped at ``max``.
#: Until session 32 a map was tissue ADC with multiplicative noise: crisp, CSF 3-4 times
#: parenchyma, where a real map fitted at b=1500 has its CSF near the noise floor (underestimated,
#: ventricles barely above parenchyma) and its source's grain and blur (the Canon DTI's map).
ADC_FIT = {"directions": (1, 3, 6), "mask": (2.0, 6.0), "p_unmasked": 0.15, "max": (3500.0, 10000.0)}


def fitted_adc(rng, s0: np.ndarray, sb: np.ndarray, proto: Protocol, mask: np.ndarray) -> np.ndarray:
    """The ADC map fitted from noise-free b=0 (``s0``) and diffusion-weighted (``sb``) signal,
    (n, H, W) each, at ``proto.b`` and ``proto.snr`` (``ADC_FIT``)."""
    if proto.b <= 0:
        raise ValueError(f"an ADC map is fitted from diffusion-weighted images: b = {proto.b}")
    axis, blur, seed = (1 if rng.random() < 0.5 else 2), _u(rng, 0.3, 1.2), int(rng.integers(2 ** 31))

    def acquire(img):  # the same off-resonance field and readout blur for both images
        img = _epi_distortion(np.random.default_rng(seed), img, axis)
        return ndimage.gaussian_filter1d(img, sigma=blur, axis=axis)

    s0, sb = acquire(s0), acquire(sb)
    sigma = (np.percentile(s0[mask], 50) if mask.any() else float(s0.mean())) / proto.snr

    def magnitude(img):
        return np.sqrt((img + rng.normal(scale=sigma, size=img.shape)) ** 2 + rng.normal(scale=sigma, size=img.shape) ** 2)

    k = int(rng.choice(ADC_FIT["directions"]))
    s0 = magnitude(s0)
    trace = np.exp(np.mean([np.log(magnitude(sb) + 1e-6) for _ in range(k)], axis=0))
    adc = np.log(np.maximum(s0, 1e-6) / np.maximum(trace, 1e-6)) / proto.b * 1e6
    if rng.random() >= ADC_FIT["p_unmasked"]:
        adc = np.where(s0 > _u(rng, *ADC_FIT["mask"]) * sigma, adc, 0.0)
    return np.clip(adc, 0.0, _u(rng, *ADC_FIT["max"])).astype(np.float32)


def _epi_distortion(rng, img: np.ndarray, phase_axis: int) -> np.ndarray:
    """Echo-planar images shift pixels along the phase axis in proportion to the off-resonance
    field (a few pixels, smooth); where the shift compresses the image, intensity piles up."""
    n, h, w = img.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(img)
    for k in range(n):
        shift = _smooth_field(rng, (h, w), _u(rng, 15, 40), _u(rng, 0.5, 4.0))
        jacobian = np.clip(1 + np.gradient(shift, axis=phase_axis - 1), 0.2, 3.0)
        coords = [rows + shift, cols] if phase_axis == 1 else [rows, cols + shift]
        out[k] = ndimage.map_coordinates(img[k], coords, order=1, mode="nearest") * jacobian
    return out


def _storage(rng, img: np.ndarray, stripped: bool) -> np.ndarray:
    """How the series was stored: float, int16 with an arbitrary scale, uint8, or z-scored."""
    r = rng.random()
    fg = img != 0 if stripped else None
    if stripped and r < 0.25 and fg.any():
        z = (img - img[fg].mean()) / (img[fg].std() + 1e-6)
        return np.where(fg, z, z[fg].min()).astype(np.float32)
    if r < 0.4:
        return np.round(img / (np.percentile(img, 99.9) + 1e-6) * 255).clip(0, 255).astype(np.float32)
    if r < 0.85:
        return np.round(img * _u(rng, 0.5, 4000) / (img.max() + 1e-6)).astype(np.float32)
    return img


#: Share of series stored resampled to an isotropic grid (1 mm, else ``RESAMPLED_MM``), by storage.
#: 0.8.0 drew 8% of native series and 0.8-1.6 mm, and its prior then held a 1.6 mm T1w (niivue,
#: rescaled) 1.35 logits less likely T1w than a 1 mm one: shared and converted data come resampled
#: to many grids, and outside the simulated range the prior should shrug, not veto.
RESAMPLED_P = {"stripped": 0.4, "native": 0.15}
RESAMPLED_MM = (0.7, 2.0)


def stored_voxel_size(rng, proto: Protocol, stripped: bool) -> tuple[float, float]:
    """(in-plane, slice) mm that the series' header would carry.

    Not always the acquired size: scanners interpolate (zero-filled echo-planar reconstructions
    at half the acquired pixel are common), slices have gaps, and pre-processed datasets
    (skull-stripped BraTS-like data above all) are resampled to 1 mm isotropic whatever the
    sequence. Drawing these cases keeps the geometry prior from becoming a brittle rule."""
    if rng.random() < RESAMPLED_P["stripped" if stripped else "native"]:
        iso = 1.0 if rng.random() < 0.6 else _u(rng, *RESAMPLED_MM)
        return iso, iso
    in_plane = proto.res
    if proto.epi and rng.random() < 0.35:
        in_plane /= 2
    elif rng.random() < 0.15:
        in_plane *= _u(rng, 0.5, 0.8)
    gap = 0.0 if proto.is3d else _u(rng, 0.0, 0.3)
    return in_plane, proto.thickness * (1 + gap)
