"""Thumbnail mosaics of a series, in the plane it was acquired, as small grayscale PNGs.

A person checks a label by looking at the images the way they were acquired, so the slice
axis is the one with the coarsest spacing (the through-plane axis of a 2D acquisition), or the
shortest dimension when the voxels are isotropic. Slices are shown in radiological convention
(patient right on image left, anterior/superior up) after reorienting to RAS.

PNG is written by a 30-line encoder (zlib + struct): no imaging dependency for a few thumbnails.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..volume import slice_axis


@dataclass(frozen=True)
class MosaicSpec:
    """How a mosaic looks: how many slices, from which central fraction, tile size in pixels."""

    n_slices: int = 6
    coverage: float = 0.7  # slices are spread over the central 70% of the slice axis
    tile: int = 160  # longest side of a tile, pixels
    gap: int = 2  # dark separator between tiles, pixels
    low_pct: float = 1.0  # robust window: percentiles of the volume's foreground
    high_pct: float = 99.0
    crop_level: float = 0.1  # crop to voxels brighter than this fraction of the window


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a 2D uint8 array as an 8-bit grayscale PNG."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"need a non-empty 2D image, got shape {image.shape}")
    height, width = image.shape
    raw = np.empty((height, width + 1), dtype=np.uint8)
    raw[:, 0] = 0  # filter type "none" for every row
    raw[:, 1:] = image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def slice_indices(n: int, spec: MosaicSpec = MosaicSpec()) -> list[int]:
    """``spec.n_slices`` distinct indices spread over the central ``coverage`` of ``n`` slices."""
    margin = (1.0 - spec.coverage) / 2.0
    positions = np.linspace(margin, 1.0 - margin, spec.n_slices) * (n - 1)
    return sorted({int(round(p)) for p in positions})


#: Voxels sampled (evenly strided) for the display window: percentiles of 200 000 voxels sit
#: within a grey level of the whole volume's, at a tenth of the cost of 2 million (a report
#: renders one thumbnail per series).
WINDOW_SAMPLE = 200_000


def window(data: np.ndarray, spec: MosaicSpec = MosaicSpec()) -> tuple[float, float]:
    """Robust display window: percentiles of the foreground (background = the volume minimum)."""
    flat = data.reshape(-1)
    values = flat[:: max(1, flat.size // WINDOW_SAMPLE)]  # a sample is plenty for two percentiles
    values = values[np.isfinite(values)]
    if values.size == 0:  # the stride may miss a few finite voxels among NaNs
        values = flat[np.isfinite(flat)]
    if values.size == 0:
        return 0.0, 1.0
    foreground = values[values > values.min()]
    if foreground.size > 0.01 * values.size:
        values = foreground
    low, high = np.percentile(values, [spec.low_pct, spec.high_pct])
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def crop_to_object(data: np.ndarray, level: float, margin: float = 0.05) -> np.ndarray:
    """Crop a 3D volume to the bounding box of voxels above ``level`` (plus a margin), so the
    anatomy fills the thumbnail and the slices come from the object rather than the field of view.
    """
    mask = data > level
    if mask.sum() < 0.001 * mask.size:
        return data
    box = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        pad = int(round(margin * data.shape[axis]))
        box.append(slice(max(hits[0] - pad, 0), min(hits[-1] + pad + 1, data.shape[axis])))
    return data[tuple(box)]


def _tile(data: np.ndarray, axis: int, index: int, spacing: tuple[float, ...], size: int) -> np.ndarray:
    """One slice, rows/columns flipped to radiological display, resampled to square pixels."""
    plane = np.take(data, index, axis=axis).T[::-1, ::-1]
    in_plane = [s for i, s in enumerate(spacing[:3]) if i != axis][::-1]  # rows, cols
    extent = [n * s for n, s in zip(plane.shape, in_plane)]
    scale = size / max(extent)
    zoom = [max(s * scale, 1e-3) for s in in_plane]
    return ndimage.zoom(plane, zoom, order=1, prefilter=False)


def mosaic(data: np.ndarray, spacing: tuple[float, ...], spec: MosaicSpec = MosaicSpec()) -> np.ndarray:
    """A one-row mosaic (uint8) of a 3D volume, or of the mean of a 4D one."""
    data = np.asarray(data, dtype=np.float32)
    while data.ndim > 3:
        data = data.reshape(*data.shape[:3], -1).mean(axis=3)
    while data.ndim < 3:
        data = data[..., np.newaxis]
    spacing = tuple(abs(float(s)) or 1.0 for s in tuple(spacing[:3]) + (1.0,) * (3 - len(spacing[:3])))
    axis = slice_axis(data.shape, spacing)  # before cropping: a property of the acquisition
    low, high = window(data, spec)
    data = crop_to_object(data, low + spec.crop_level * (high - low))
    tiles = [_tile(data, axis, i, spacing, spec.tile) for i in slice_indices(data.shape[axis], spec)]
    height = max(t.shape[0] for t in tiles)
    width = sum(t.shape[1] for t in tiles) + spec.gap * (len(tiles) - 1)
    canvas = np.zeros((height, width), dtype=np.float32)
    canvas[:] = low
    x = 0
    for t in tiles:
        top = (height - t.shape[0]) // 2
        canvas[top : top + t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1] + spec.gap
    scaled = np.clip((canvas - low) / (high - low), 0.0, 1.0) * 255.0
    return np.nan_to_num(scaled).round().astype(np.uint8)


def write_mosaic(nifti_path: Path | str, out_png: Path | str, spec: MosaicSpec = MosaicSpec()) -> Path:
    """Render ``nifti_path`` (reoriented to RAS) to ``out_png``; returns the PNG path."""
    image = nib.as_closest_canonical(nib.load(str(nifti_path)))
    spacing = image.header.get_zooms()[:3]
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_png.write_bytes(png_bytes(mosaic(np.asanyarray(image.dataobj), spacing, spec)))
    return out_png
