"""The anatomies training draws from: real label maps read into tissue maps, beside procedural phantoms.

BrainWeb and SynthSeg heads and the TotalSegmentator abdomen, each label table mapped to the
simulator's tissues (``tissues``), plus the phantom heads and pelvises; and the split of heads held
out for validation.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .anatomy import Anatomy
from .phantom import make_pelvis_phantom, make_phantom
from .tissues import BRAINWEB, SYNTHSEG, TISSUE_INDEX, TOTALSEG, _idx


def _to_tissue(labels: np.ndarray, table: dict[int, str], default: str = "soft") -> np.ndarray:
    lut = np.full(int(labels.max()) + 1, TISSUE_INDEX[default], np.uint8)
    for label, tissue in table.items():
        if label < lut.size:
            lut[label] = TISSUE_INDEX[tissue]
    return lut[labels]


#: Tissues BrainWeb draws around its air cavities, where real heads have mucosa.
_CAVITY_WALL = _idx("skin", "connective", "muscle", "fat")


def _line_air_cavities(tissue: np.ndarray, depth: int = 3, lining: int = 2) -> np.ndarray:
    """``tissue`` (RAS voxels, ~1 mm) with the air cavities inside the head lined by mucosa.

    BrainWeb draws the paranasal sinuses and the nasal cavity as air lined by skin; real sinuses are
    lined by mucosa, bright on T2w and FLAIR, which is what separates a skull-base FLAIR slice from a
    T1w one (SynthSeg's maps carry it as label 509). An air voxel is internal where, in its axial
    slice, it lies at least ``depth`` voxels inside the closed outline of the head; the soft tissue
    within ``lining`` voxels of internal air becomes mucosa."""
    air = tissue == TISSUE_INDEX["air"]
    internal = np.zeros_like(air)
    for k in range(tissue.shape[2]):
        head = np.pad(~air[:, :, k], depth)
        head = ndimage.binary_fill_holes(ndimage.binary_closing(head, iterations=2))
        inside = ndimage.binary_erosion(head, iterations=depth)[depth:-depth, depth:-depth]
        internal[:, :, k] = inside & air[:, :, k]
    wall = ndimage.binary_dilation(internal, iterations=lining) & np.isin(tissue, _CAVITY_WALL)
    return np.where(wall, np.uint8(TISSUE_INDEX["mucosa"]), tissue).astype(tissue.dtype)


#: CT numbers (HU) of fat, which the fill of unlabelled voxels and the collecting systems share: air
#: below it, soft tissue and water above it (marrow over 180 HU).
FAT_HU = (-190, -30)
#: TotalSegmentator's kidney labels and the fill label of the collecting systems drawn inside them.
KIDNEYS = (2, 3)
COLLECTING_SYSTEM = 254


def _collecting_systems(labels: np.ndarray, ct: np.ndarray, closing: int = 6) -> np.ndarray:
    """Renal sinus voxels that are not fat, as the collecting systems (label ``COLLECTING_SYSTEM``).

    The segmentation draws each kidney's parenchyma; the sinus, the hilar notch it wraps around,
    holds the calyces and pelvis in fat. Per axial slice, what closing and filling each kidney adds
    to it is its sinus; of that, the voxels denser than fat (``FAT_HU``) are urine, which the
    delayed phase fills with excreted gadolinium (``sequences.EXCRETION``)."""
    out = labels.copy()
    for kidney in KIDNEYS:
        mask = labels == kidney
        for k in np.flatnonzero(mask.any(axis=(0, 1))):
            hull = ndimage.binary_fill_holes(ndimage.binary_closing(np.pad(mask[:, :, k], closing), iterations=closing))
            sinus = hull[closing:-closing, closing:-closing] & ~mask[:, :, k]
            out[:, :, k][sinus & (ct[:, :, k] > FAT_HU[1]) & (labels[:, :, k] == 0)] = COLLECTING_SYSTEM
    return out


def _crop_to_content(tissue: np.ndarray, affine: np.ndarray, pad: int = 4):
    nz = np.argwhere(tissue != TISSUE_INDEX["air"])
    lo = np.maximum(nz.min(axis=0) - pad, 0)
    hi = np.minimum(nz.max(axis=0) + pad + 1, tissue.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    shifted = affine.copy()
    shifted[:3, 3] = nib.affines.apply_affine(affine, lo)
    return np.ascontiguousarray(tissue[crop]), shifted


N_PHANTOMS = 3  # procedural heads mixed into the real anatomies: shape variety, and the bundled example
N_PELVIS = 2  # procedural pelvises beside the one abdominal label map: 2 of 3 body series


def training_anatomies(anatomy_dir: str | Path) -> list[Anatomy]:
    """The anatomies training and its validation set draw from: the label maps plus
    ``N_PHANTOMS`` procedural heads and ``N_PELVIS`` procedural pelvises."""
    return load_anatomies(anatomy_dir, N_PHANTOMS, N_PELVIS)


def load_anatomies(anatomy_dir: str | Path, n_phantoms: int = 0, n_pelvis: int = 0) -> list[Anatomy]:
    """BrainWeb and SynthSeg heads and the TotalSegmentator abdomen (CT values fill fat/muscle/bone),
    plus ``n_phantoms`` procedural heads and ``n_pelvis`` procedural pelvises (the label maps have
    no pelvis). ``anatomy_dir="phantom"`` uses the phantom heads only (tests, demos)."""
    from .phantom import make_pelvis_phantom, make_phantom

    phantoms = [make_phantom(seed) for seed in range(n_phantoms)]
    if str(anatomy_dir) == "phantom":
        return phantoms or [make_phantom(0)]
    root = Path(anatomy_dir)
    out: list[Anatomy] = list(phantoms)
    for f in sorted((root / "brainweb").glob("*.nii.gz")):
        img = nib.as_closest_canonical(nib.load(str(f)))
        t, aff = _crop_to_content(_to_tissue(np.asanyarray(img.dataobj).astype(np.int32), BRAINWEB), img.affine)
        out.append(Anatomy(f"brainweb/{f.name}", "brain", _line_air_cavities(t), aff))
    for f in sorted((root / "synthseg").glob("*.nii.gz")):
        img = nib.as_closest_canonical(nib.load(str(f)))
        t, aff = _crop_to_content(_to_tissue(np.asanyarray(img.dataobj).astype(np.int32), SYNTHSEG), img.affine)
        out.append(Anatomy(f"synthseg/{f.name}", "brain", t, aff))
    ts = root / "totalseg"
    if (ts / "example_ct.nii.gz").is_file():
        seg = nib.as_closest_canonical(nib.load(str(ts / "example_seg_fast_force_split.nii.gz")))
        ct = np.asanyarray(nib.as_closest_canonical(nib.load(str(ts / "example_ct.nii.gz"))).dataobj)
        labels = _collecting_systems(np.asanyarray(seg.dataobj).astype(np.int32), ct)
        unlabeled = labels == 0
        labels[unlabeled & (ct > FAT_HU[0]) & (ct <= FAT_HU[1])] = 250
        labels[unlabeled & (ct > FAT_HU[1]) & (ct <= 180)] = 251
        labels[unlabeled & (ct > 180)] = 252
        t, aff = _crop_to_content(_to_tissue(labels, TOTALSEG), seg.affine)
        out.append(Anatomy("totalseg/example_ct", "body", t, aff))
    if len(out) == len(phantoms):
        raise FileNotFoundError(f"no label maps under {root}")
    return out + [make_pelvis_phantom(seed) for seed in range(n_pelvis)]


#: Label-map sources whose heads can be held out of training for validation (the body has too few maps).
HEAD_SOURCES = ("brainweb/", "synthseg/")


def split_heads(anatomies: list[Anatomy], n_holdout: int) -> tuple[list[Anatomy], list[Anatomy]]:
    """(training, held-out) anatomies: the last ``n_holdout`` heads of each ``HEAD_SOURCES`` by name
    are held out; everything else (procedural heads, body maps) trains. A validation set drawn from
    held-out heads measures generalisation to unseen anatomy, not to unseen draws of known heads."""
    held = set()
    for source in HEAD_SOURCES:
        names = sorted(a.name for a in anatomies if a.name.startswith(source))
        if n_holdout and len(names) <= n_holdout:
            raise ValueError(f"cannot hold out {n_holdout} of {len(names)} {source.rstrip('/')} heads")
        held.update(names[len(names) - n_holdout:] if n_holdout else [])
    return [a for a in anatomies if a.name not in held], [a for a in anatomies if a.name in held]
