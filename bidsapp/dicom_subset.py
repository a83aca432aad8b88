"""Pick the files of a huge DICOM series that classification needs, so dcm2niix stays small.

dcm2niix holds a whole series in memory (measured: peak RSS ≈ 1.0× the series' bytes). The
network looks at a dozen slices, so for classification a series above ``MAX_SERIES_BYTES`` is
cut to evenly spaced slice *positions*, keeping every file at each chosen position: a 4D series
(fMRI, DWI) keeps all its volumes and b-values, only with fewer slices. Conversion into BIDS
still gets every file. Series whose files do not each hold one slice position (multi-frame,
mosaics, missing geometry) are left whole.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom

log = logging.getLogger(__name__)

MAX_SERIES_BYTES = 256 << 20  # above this, classification reads a subset of slice positions
MIN_POSITIONS = 24  # never fewer slices than this (the network samples 12 from the central 70%)
_GEOMETRY = ["ImagePositionPatient", "ImageOrientationPatient", "NumberOfFrames"]


def slice_position(path: Path) -> float | None:
    """Distance of the file's slice along its normal (mm), or None without single-slice geometry."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_GEOMETRY, force=True)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return None
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    except (AttributeError, ValueError, TypeError, OSError, pydicom.errors.InvalidDicomError):
        return None
    return float(ipp @ np.cross(iop[:3], iop[3:]))


def classification_files(files: list[Path], max_bytes: int = MAX_SERIES_BYTES,
                         min_positions: int = MIN_POSITIONS) -> list[Path]:
    """``files`` when small enough; otherwise the files at evenly spaced slice positions."""
    files = [Path(f) for f in files]
    total = sum(f.stat().st_size for f in files)
    if total <= max_bytes or len(files) < 2 * min_positions:
        return files
    by_position: dict[float, list[Path]] = defaultdict(list)
    for f in files:
        pos = slice_position(f)
        if pos is None:
            return files
        by_position[round(pos, 2)].append(f)
    positions = sorted(by_position)
    per_position = total / len(positions)
    keep = max(min_positions, int(max_bytes // per_position))
    if 2 * keep > len(positions):  # a stride of 1 is no subset
        return files
    step = -(-len(positions) // keep)
    offset = (len(positions) - 1) % step // 2  # centre the picked positions on the extent
    chosen = positions[offset::step]  # a constant stride: dcm2niix sees even slice spacing
    subset = [f for p in chosen for f in by_position[p]]
    log.info("series of %d MB: classifying %d of %d slice positions (%d files)", total >> 20, len(chosen),
             len(positions), len(subset))
    return subset
