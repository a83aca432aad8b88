"""Load a series into one representative 3D image and turn it into the network's input.

The network sees a *stack of native-plane slices*: K slices taken along the acquisition's
slice axis, resampled in-plane to a fixed millimetre grid and intensity-normalised on the
foreground. The same ``normalise_stack`` serves inference and the training simulator, so what
the model learned on simulated images is exactly what it is shown on real ones.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from .dicom_subset import classification_files
from .phase_encoding import label_of
from .records import Volume
from .timeseries import TimecourseSampler, is_diffusion, most_attenuated, sample_timecourses
from .tools import find_tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    """Geometry of the network input; stored in the model card so weights and input agree."""

    n_slices: int = 12  # slices per series at inference
    size: int = 128  # in-plane pixels (square)
    pixel_mm: float = 2.0  # in-plane pixel size after resampling
    coverage: float = 0.7  # central fraction of the foreground extent the slices are drawn from


SPEC = InputSpec()


# --------------------------------------------------------------------------------------- loading
# Above this many voxels a series is reduced while it is read (slices along the slice axis,
# volumes one at a time), so memory stays bounded whatever the series size: 64 Mi voxels is
# 256 MB as float32. The network needs only SPEC.n_slices slices of one 3D image anyway.
MAX_VOXELS = 1 << 26


def load_nifti(path: str | Path, bval_path: str | Path | None = None, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read a NIfTI (3D or 4D). A ``.bval`` next to the file is used when none is given.

    Up to ``max_voxels`` the whole image is read; larger ones go through ``_load_reduced``.
    """
    path = Path(path)
    if bval_path is None:
        stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
        candidate = path.with_name(stem + ".bval")
        bval_path = candidate if candidate.is_file() else None
    b_values = _read_bvals(bval_path) if bval_path else ()
    img = nib.load(str(path))
    if int(np.prod(img.shape)) > max_voxels:
        return _load_reduced(path, b_values, max_voxels)
    img = nib.as_closest_canonical(img)
    return volume_from_array(_read_proxy(img.dataobj, img.get_data_dtype()), img.affine, b_values)


def _read_proxy(proxy, dtype: np.dtype) -> np.ndarray:
    """float32 straight from disk, except colour (structured) voxels, which ``as_gray`` takes."""
    return np.asanyarray(proxy) if np.dtype(dtype).names else np.asanyarray(proxy, dtype=np.float32)


def _load_reduced(path: Path, b_values: tuple[float, ...], max_voxels: int) -> Volume:
    """Memory-bounded ``load_nifti`` for huge series: every ``step``-th slice along the slice
    axis (so one 3D image fits in ``max_voxels``), and the representative volume accumulated
    one volume at a time. Peak memory is about three reduced 3D images, not the series."""
    img = nib.load(str(path), keep_file_open=True)  # sequential reads of a .nii.gz stay linear
    shape = tuple(img.shape) + (1,) * max(0, 3 - len(img.shape))
    zooms = tuple(img.header.get_zooms()[:3]) + (1.0,) * max(0, 3 - len(img.header.get_zooms()))
    axis = slice_axis(shape[:3], zooms)
    plane = int(np.prod(shape[:3])) // shape[axis]
    step = max(1, -(-shape[axis] * plane // max_voxels))
    n_volumes = shape[3] if len(img.shape) >= 4 else 1
    b_values = b_values if len(b_values) == n_volumes else ()
    picked = _representative_indices(n_volumes, b_values)
    spatial = [slice(None)] * 3
    spatial[axis] = slice(None, None, step)
    spatial = tuple(spatial[: len(img.shape)])
    sampler = TimecourseSampler() if n_volumes > 1 else None
    total = _sum_volumes(img, picked, spatial, sampler)
    timecourses = sampler.result() if sampler else None
    if (chosen := _representative_indices(n_volumes, b_values, timecourses)) != picked:
        picked = chosen  # a diffusion series without b-values: a second pass over its dimmest shell
        total = _sum_volumes(img, picked, spatial)
    affine = np.array(img.affine, float)
    affine[:3, axis] *= step
    reduced = nib.as_closest_canonical(nib.Nifti1Image((total / len(picked)).astype(np.float32), affine))
    log.info("%s: %s voxels > %d, read every %d-th slice and %d of %d volumes", path.name, "x".join(map(str, img.shape)),
             max_voxels, step, len(picked), n_volumes)
    return Volume(data=np.asarray(reduced.dataobj, dtype=np.float32), affine=reduced.affine,
                  n_volumes=n_volumes, b_values=tuple(b_values), timecourses=timecourses)


def _sum_volumes(img, indices: list[int], spatial: tuple, sampler: TimecourseSampler | None = None) -> np.ndarray:
    """Sum of the ``indices`` volumes of ``img`` cut by ``spatial``, read one volume at a time
    (each also given to ``sampler``)."""
    extra = (0,) * max(0, len(img.shape) - 4)  # trailing axes: first entry, as volume_from_array
    total = None
    for t in indices:
        index = spatial + ((t,) if len(img.shape) >= 4 else ()) + extra
        vol = np.asarray(as_gray(_read_proxy(img.dataobj[index], img.get_data_dtype())), dtype=np.float64)
        vol = np.nan_to_num(vol.reshape(vol.shape + (1,) * (3 - vol.ndim)), nan=0.0, posinf=0.0, neginf=0.0)
        total = vol if total is None else total + vol
        if sampler is not None:
            sampler.add(vol)
    return total


def _representative_indices(n_volumes: int, b_values: tuple[float, ...],
                            timecourses: np.ndarray | None = None) -> list[int]:
    """Which volumes stand for a 4D series. Diffusion (``is_diffusion``): the highest
    shell, which is what a radiologist reads (trace-like). Without b-values, the most attenuated
    shell when the volumes show diffusion weighting (``timeseries.most_attenuated``, from the
    sampled ``timecourses``). Others (fMRI, multi-echo, ASL): all."""
    if is_diffusion(b_values):
        b = np.asarray(b_values)
        return [int(i) for i in np.flatnonzero(b >= 0.9 * b.max())]
    if not b_values and (dimmest := most_attenuated(timecourses)):
        return dimmest
    return list(range(n_volumes))


def as_gray(data: np.ndarray) -> np.ndarray:
    """Colour voxels (NIfTI RGB24/RGBA32: a structured dtype; e.g. a secondary capture) → the
    mean of their channels, so a screenshot is classified (as "other") instead of crashing."""
    data = np.asanyarray(data)
    if data.dtype.names:
        channels = [n for n in data.dtype.names if n.upper() in ("R", "G", "B")] or list(data.dtype.names)
        return np.mean([data[n].astype(np.float32) for n in channels], axis=0)
    if np.iscomplexobj(data):
        return np.abs(data)
    return data


def volume_from_array(data: np.ndarray, affine: np.ndarray, b_values: tuple[float, ...] = ()) -> Volume:
    """Reduce a 3D/4D array to one representative 3D image (see ``representative``)."""
    data = np.nan_to_num(np.asarray(as_gray(data), dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    while data.ndim > 4:  # e.g. complex or multi-echo trailing singleton axes
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    n_volumes = data.shape[3] if data.ndim == 4 else 1
    if len(b_values) != n_volumes:
        b_values = ()
    timecourses = sample_timecourses(np.moveaxis(data, 3, 0)) if n_volumes > 1 else None
    return Volume(data=representative(data, b_values, timecourses), affine=np.asarray(affine, float),
                  n_volumes=n_volumes, b_values=tuple(b_values), timecourses=timecourses)


def representative(data: np.ndarray, b_values: tuple[float, ...] = (),
                   timecourses: np.ndarray | None = None) -> np.ndarray:
    """One 3D image that shows the series' contrast (volumes chosen by ``_representative_indices``)."""
    if data.ndim == 3:
        return data
    return data[..., _representative_indices(data.shape[3], b_values, timecourses)].mean(axis=3)


def _read_bvals(path: str | Path) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in Path(path).read_text().split())
    except (OSError, ValueError):
        return ()


class NotConvertible(ValueError):
    """dcm2niix made no image of the series: converting it for the BIDS output will fail too."""


def load_dicom(files: list[str | Path] | tuple, work_dir: str | Path | None = None) -> Volume:
    """Convert one DICOM series with dcm2niix (it knows every vendor's mosaic, enhanced and 4D
    layout) into a temporary NIfTI, then load it. Raises ``NotConvertible`` when nothing converts.

    Huge series are converted from a subset of slice positions (``dicom_subset``): memory follows
    ``MAX_SERIES_BYTES``, not the series. dcm2niix's sidecar gives the phase-encoding direction
    (``Volume.phase_encoding``), which only it derives from every vendor's private fields."""
    tmp = Path(tempfile.mkdtemp(prefix="mrclass-dcm-", dir=work_dir))
    try:
        src = tmp / "in"
        src.mkdir()
        for i, f in enumerate(classification_files(list(files))):
            (src / f"{i:06d}.dcm").symlink_to(Path(f).resolve())
        out = tmp / "out"
        out.mkdir()
        proc = subprocess.run(
            [_dcm2niix(), "-z", "n", "-b", "y", "-f", "%s_%e", "-o", str(out), str(src)],
            capture_output=True, text=True, timeout=600,
        )
        niftis = sorted(out.glob("*.nii"), key=_conversion_rank)
        if not niftis:
            last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise NotConvertible(f"dcm2niix produced no image ({last[0].replace(str(src), '<series>')})")
        nii = niftis[0]
        bval, sidecar = nii.with_suffix(".bval"), nii.with_suffix(".json")
        volume = load_nifti(nii, bval if bval.is_file() else None)
        volume.phase_encoding = label_of(nii, sidecar if sidecar.is_file() else None)
        return volume
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _conversion_rank(path: Path) -> tuple[int, int]:
    """Prefer magnitude over phase/real/imaginary outputs, then the largest file."""
    name = path.name.lower()
    derived = any(tag in name for tag in ("_ph", "_real", "_imaginary", "_phmap", "_adc"))
    return (int(derived), -path.stat().st_size)


def _dcm2niix() -> str:
    return find_tool("dcm2niix")


# ---------------------------------------------------------------------------------- slice stack
#: Voxels whose longest side is at most this multiple of the shortest count as isotropic.
ANISOTROPY = 1.25
#: Fewer isotropic slices than this along some axis: a 2D multi-slice acquisition (``view_axes``).
MIN_3D_SLICES = 64
#: Isotropic voxels this coarse are echo-planar 2D slices, however many (a whole-brain 2 mm DWI
#: or BOLD run has 60-80); 3D acquisitions are finer (1-1.6 mm) (``view_axes``).
EPI_MIN_MM = 1.8


def slice_axis(shape: tuple[int, ...], spacing: tuple[float, ...]) -> int:
    """The acquisition's slice axis: the thickest voxel axis, or the smallest one when isotropic."""
    sp = np.asarray(spacing[:3], float)
    if sp.max() > ANISOTROPY * sp.min():
        return int(np.argmax(sp))
    return int(np.argmin(shape[:3]))


def native_slices(volume: Volume, n_slices: int, coverage: float, rng: np.random.Generator | None = None,
                  axis: int | None = None):
    """Pick ``n_slices`` slices along the slice axis (or ``axis``) inside the central foreground extent.

    Returns (slices (n, rows, cols), (row_mm, col_mm)). Slices are oriented so that rows run
    towards superior (or anterior for axial) in RAS space, i.e. the same way for every input.
    ``rng`` jitters the positions (training); without it they are evenly spaced (inference).
    """
    data = volume.data
    axis = slice_axis(data.shape, volume.spacing) if axis is None else axis
    moved = np.moveaxis(data, axis, 0)  # (n, a, b) with a < b the remaining RAS axes
    in_plane = [volume.spacing[i] for i in range(3) if i != axis]
    lo, hi = _foreground_extent(moved, coverage)
    if rng is None:
        idx = np.linspace(lo, hi, num=min(n_slices, hi - lo + 1)).round().astype(int)
    else:
        idx = np.sort(rng.integers(lo, hi + 1, size=n_slices))
    # (a, b) → rows = b (towards S or A), cols = a; flip rows so superior/anterior is up.
    slices = np.ascontiguousarray(moved[idx].transpose(0, 2, 1)[:, ::-1, :])
    return slices, (float(in_plane[1]), float(in_plane[0]))


def _foreground_extent(stack: np.ndarray, coverage: float) -> tuple[int, int]:
    n = stack.shape[0]
    if n == 1:
        return 0, 0
    fg = foreground_mask(stack)
    per_slice = fg.reshape(n, -1).mean(axis=1)
    present = np.flatnonzero(per_slice >= 0.25 * per_slice.max()) if per_slice.max() > 0 else np.arange(n)
    first, last = int(present[0]), int(present[-1])
    margin = (1.0 - coverage) / 2 * (last - first)
    return int(round(first + margin)), int(round(last - margin))


def foreground_mask(stack: np.ndarray) -> np.ndarray:
    """Foreground of an image stack.

    Masked data (skull-stripped, z-scored: a constant background covering >10% of pixels) →
    everything that differs from that constant. Otherwise a threshold at 10% of the robust
    range above the border level, which separates tissue from Rician background noise.
    """
    border = np.concatenate([stack[..., 0, :].ravel(), stack[..., -1, :].ravel(),
                             stack[..., :, 0].ravel(), stack[..., :, -1].ravel()])
    values, counts = np.unique(border, return_counts=True)
    bg = values[np.argmax(counts)]
    if np.mean(stack == bg) > 0.10:
        return stack != bg
    lo, hi = np.percentile(stack, [1, 99.5])
    return stack > lo + 0.1 * (hi - lo)


def normalise_stack(slices: np.ndarray, row_mm: float, col_mm: float, spec: InputSpec = SPEC) -> np.ndarray:
    """Resample slices to ``spec.pixel_mm``, centre on the foreground, crop/pad to ``spec.size``
    and map intensities to roughly [0, 1] with foreground percentiles (1st → 0, 99th → 1).

    Robust to any scaling or offset of the input (raw counts, rescaled uint8, z-scored)."""
    stack = np.asarray(slices, dtype=np.float32)
    fg = foreground_mask(stack)
    values = stack[fg] if fg.any() else stack.ravel()
    lo, hi = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
    scale = float(hi - lo) if hi > lo else 1.0
    out = np.clip((stack - lo) / scale, -0.2, 1.5)
    masked = np.mean(~fg) > 0.10 and _is_constant_background(stack, fg)
    if masked:
        out[~fg] = 0.0
    t = torch.from_numpy(np.ascontiguousarray(out))[:, None]
    fg_t = torch.from_numpy(fg.astype(np.float32))[:, None]
    new_hw = (max(1, round(stack.shape[1] * row_mm / spec.pixel_mm)), max(1, round(stack.shape[2] * col_mm / spec.pixel_mm)))
    antialias = new_hw[0] < stack.shape[1] or new_hw[1] < stack.shape[2]
    t = F.interpolate(t, size=new_hw, mode="bilinear", align_corners=False, antialias=antialias)[:, 0]
    fg_t = F.interpolate(fg_t, size=new_hw, mode="bilinear", align_corners=False)[:, 0]
    return _centre_crop(t.numpy(), fg_t.numpy().mean(axis=0), spec.size)


def _is_constant_background(stack: np.ndarray, fg: np.ndarray) -> bool:
    bg = stack[~fg]
    return bg.size > 0 and float(bg.max() - bg.min()) == 0.0


def _centre_crop(stack: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """Crop/pad (with 0) a (n, h, w) stack to (n, size, size) centred on the foreground mass."""
    n, h, w = stack.shape
    total = weight.sum()
    if total > 0:
        cy = int(round((weight.sum(axis=1) * np.arange(h)).sum() / total))
        cx = int(round((weight.sum(axis=0) * np.arange(w)).sum() / total))
    else:
        cy, cx = h // 2, w // 2
    out = np.zeros((n, size, size), np.float32)
    y0, x0 = cy - size // 2, cx - size // 2
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(h, y0 + size), min(w, x0 + size)
    out[:, sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = stack[:, sy0:sy1, sx0:sx1]
    return out


def to_network_input(volume: Volume, spec: InputSpec = SPEC, axis: int | None = None) -> np.ndarray:
    """The (K, size, size) float32 stack the network classifies for this series (native plane,
    or the plane normal to ``axis``)."""
    slices, (row_mm, col_mm) = native_slices(volume, spec.n_slices, spec.coverage, axis=axis)
    return normalise_stack(slices, row_mm, col_mm, spec)


def view_axes(volume: Volume) -> tuple[int, ...]:
    """The slice axes a series is classified along: its acquisition axis, or all three for a 3D
    volume (isotropic voxels, at least ``MIN_3D_SLICES`` along every axis).

    A 3D volume has no native plane (sagittal 3D T1w, resampled 1 mm datasets), yet the network's
    answer for it moved with the plane it was cut in; averaging the three views removes that
    arbitrary choice, as the left-right mirror does for hemispheres. A 2D multi-slice series with
    isotropic voxels (2 mm EPI diffusion, 32 slices) keeps its one plane: cut across, its slice
    profile, interleaving and distortion are what the network sees, and it refuses them: the real
    Philips 2 mm and Canon 3 mm DTI are DWI in their own plane (0.48, 0.89) and "other" over three
    views (0.21, 0.04). So isotropic voxels of ``EPI_MIN_MM`` or more keep one plane, whatever the
    slice count (a whole-brain 2 mm EPI has more than ``MIN_3D_SLICES``)."""
    spacing = np.asarray(volume.spacing[:3], float)
    shape = volume.data.shape[:3]
    if (spacing.max() <= ANISOTROPY * spacing.min() and min(shape) >= MIN_3D_SLICES
            and spacing.min() < EPI_MIN_MM):
        return (0, 1, 2)
    return (slice_axis(shape, volume.spacing),)


def network_inputs(volume: Volume, spec: InputSpec = SPEC) -> np.ndarray:
    """(V, K, size, size): one ``to_network_input`` stack per view of ``view_axes``."""
    return np.stack([to_network_input(volume, spec, axis) for axis in view_axes(volume)])


# ------------------------------------------------------------------------------ voxel geometry
#: Names of the geometry features, in order; the model card lists them (architecture).
GEOMETRY_FEATURES = ("log2_in_plane_mm", "log2_slice_mm")


def geometry_features(in_plane_mm: float, slice_mm: float) -> np.ndarray:
    """The native voxel size the network is told besides the pixels, as log2 millimetres.

    The stack is resampled to ``SPEC.pixel_mm``, which hides how coarse the acquisition was:
    echo-planar diffusion (2-3.5 mm) and turbo spin echo (0.4-1 mm) then look alike, and that is
    what separated T2w from ADC and FLAIR from DWI on real scans. Voxel size is a property of the
    image, not a header claim; the simulator reports it the same way, interpolated
    reconstructions and resampled (1 mm isotropic) datasets included, so it is a prior, not a rule."""
    return np.clip(np.log2([max(in_plane_mm, 1e-3), max(slice_mm, 1e-3)]), -2.0, 4.0).astype(np.float32)


def volume_geometry(volume: Volume) -> np.ndarray:
    """``geometry_features`` of a loaded series: the finer in-plane axis and the slice axis."""
    spacing = volume.spacing
    axis = slice_axis(volume.data.shape, spacing)
    in_plane = min(s for i, s in enumerate(spacing) if i != axis)
    return geometry_features(in_plane, spacing[axis])
