"""dcm2niix's PhaseEncodingDirection → the BIDS ``dir-`` label of an SE-EPI field map.

PhaseEncodingDirection names a voxel axis of the NIfTI file (``i``, ``j``, ``k``; ``-``: from the
highest index down). The file's affine says where that axis points in the patient (RAS+), so the
label is the anatomical direction phase encoding *runs*, from → to, on the nearest patient axis:
``j`` along an axis that points anterior is ``PA``, ``j-`` there is ``AP`` (the labels fMRIPrep,
QSIPrep and the scanner's own "A>>P" use). dcm2niix writes only ``PhaseEncodingAxis`` when the
header does not give the polarity; then there is no label: a direction is never guessed. Nor is
there one without ``TotalReadoutTime``, which BIDS requires of every ``_epi`` (bids-validator:
TOTAL_READOUT_TIME_MUST_DEFINE) and dcm2niix derives only from the vendor's bandwidth fields.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.image_sidecar import metadata
from bidsapp.naming import missing_requirements

#: RAS+ axis → (label when encoding runs towards +, label when towards −)
_LABELS = (("LR", "RL"), ("PA", "AP"), ("IS", "SI"))
_AXES = {"i": 0, "j": 1, "k": 2}


def dir_label(direction: str, affine: np.ndarray) -> str:
    """``AP``/``PA``/``LR``/``RL``/``IS``/``SI`` for a PhaseEncodingDirection and the image's
    affine; "" when the direction is missing or not a BIDS value."""
    axis = _AXES.get(direction[:1]) if direction in ("i", "j", "k", "i-", "j-", "k-") else None
    if axis is None:
        return ""
    towards = np.asarray(affine, float)[:3, axis] * (-1.0 if direction.endswith("-") else 1.0)
    nearest = int(np.argmax(np.abs(towards)))
    return _LABELS[nearest][0 if towards[nearest] > 0 else 1]


def label_of(image: Path, sidecar: Path | None) -> str:
    """The ``dir-`` label of an image from its JSON sidecar and its header; "" when unknown or when
    the sidecar lacks a field BIDS requires of an ``_epi`` (``naming.REQUIRED_FIELDS``: the image
    could not be a valid ``_epi``)."""
    meta = metadata(sidecar) or {}
    direction = meta.get("PhaseEncodingDirection")
    if not isinstance(direction, str) or missing_requirements("epi", meta, None)[1]:
        return ""
    try:
        return dir_label(direction, nib.load(str(image)).affine)
    except (OSError, ValueError):
        return ""
