"""Physics-based MR simulator: label maps of real anatomy → native-plane slice stacks.

One training example is made in four steps, each randomised (domain randomisation, SynthSeg-style
but with MR physics so contrast *relationships* are right):

1. ``Protocol``: a class (or an "other" kind) picks a sequence and its parameters: spin echo, spoiled
   gradient echo, inversion recovery (FLAIR nulls the CSF T1 *drawn for this image*), MPRAGE-like,
   diffusion EPI (b, trace or raw direction), ADC map, SWI (long-TE GRE, minIP), gadolinium phases.
2. Tissue parameters: every tissue's PD/T1/T2/T2*/ADC from ``tissues.TISSUES`` jittered ±20%, at
   1.5 T or 3 T; gadolinium shortens T1/T2 by relaxivity × concentration (R1 = R1₀ + r1·C).
3. Geometry: plane (axial/sagittal/coronal) plus oblique tilt, anatomy scaling, slice thickness
   0.8-7 mm (sub-planes averaged, or minimum for SWI minIP), in-plane resolution, FOV; the
   tissue map is sampled on each slice grid (nearest label) and the signal equation applied per
   sub-plane, so partial volume arises from the geometry.
4. Artefacts and storage: texture, bias field, Rician noise, ghosting, skull stripping, uint8 /
   int16 rescaling, z-scoring with a constant background (BraTS-like pre-processed data).

The stack then goes through ``bidsapp.volume.normalise_stack``, the same function inference uses.
Signal equations and literature values: docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..classes import LABELS
from ..volume import SPEC, InputSpec, geometry_features, normalise_stack
from .tissues import (BRAIN_TISSUES, BRAINWEB, SYNTHSEG, TISSUE_INDEX, TISSUE_NAMES,
                      TISSUES, TOTALSEG)

N_TISSUES = len(TISSUE_NAMES)
_T = {name: np.array([getattr(TISSUES[n], name) for n in TISSUE_NAMES], np.float64)
      for name in ("pd", "t1_15", "t1_3", "t2_15", "t2_3", "t2s_3", "adc", "ve", "vp", "fat")}
_ARTERIAL = np.array([TISSUES[n].supply == "a" for n in TISSUE_NAMES])
_FLOW = np.array([TISSUES[n].flow for n in TISSUE_NAMES])
_IS_BRAIN = np.array([n in BRAIN_TISSUES for n in TISSUE_NAMES])
#: Tissues whose macromolecules saturate under magnetisation-transfer pulses (TOF background suppression).
_MT_SUPPRESSED = np.isin(TISSUE_NAMES, ("gm", "wm", "deep_gm", "wm_lesion", "muscle"))


def _idx(*names: str) -> np.ndarray:
    return np.array([TISSUE_INDEX[n] for n in names])


# ------------------------------------------------------------------------------------- anatomy
@dataclass
class Anatomy:
    """A tissue-index map (uint8, indices into ``TISSUE_NAMES``) in RAS world space."""

    name: str
    region: str  # "brain" | "body"
    tissue: np.ndarray
    affine: np.ndarray
    fg_points: np.ndarray = field(repr=False, default=None)  # (n, 3) world coords of tissue voxels

    def __post_init__(self):
        if self.fg_points is None:
            self.fg_points = self._sample_points(self.tissue != TISSUE_INDEX["air"])

    @cached_property
    def brain_points(self) -> np.ndarray:
        """(n, 3) world coordinates of a sample of brain voxels: the coverage of a 2D brain series."""
        brain = _IS_BRAIN[self.tissue]
        return self._sample_points(brain) if brain.any() else self.fg_points

    def _sample_points(self, mask: np.ndarray, n: int = 20000) -> np.ndarray:
        """World coordinates of up to ``n`` voxels of ``mask``, a fixed (seeded) sample."""
        ijk = np.argwhere(mask)
        ijk = ijk[np.random.default_rng(0).choice(len(ijk), size=min(len(ijk), n), replace=False)]
        return nib.affines.apply_affine(self.affine, ijk)

    @cached_property
    def brain_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Voxel bounding box (low, high corners) of the brain tissue: the frame in which
        ``BOLD_DROPOUT`` places the air-tissue interfaces the label maps do not draw."""
        brain = _IS_BRAIN[self.tissue]
        ends = []
        for axis in range(3):
            present = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
            ends.append((present[0], present[-1]) if present.size else (0, self.tissue.shape[axis] - 1))
        lo, hi = np.array(ends, float).T
        return lo, hi


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
        labels = np.asanyarray(seg.dataobj).astype(np.int32)
        unlabeled = labels == 0
        labels[unlabeled & (ct > -190) & (ct <= -30)] = 250
        labels[unlabeled & (ct > -30) & (ct <= 180)] = 251
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


# ------------------------------------------------------------------------------------ protocol
@dataclass(frozen=True)
class Protocol:
    """What one simulated series is: sequence, parameters, geometry and storage."""

    label: str  # a class label or "other"
    kind: str  # name of the generator, for bookkeeping
    seq: str  # se | gre | ir | mprage | dwi | adc | fa | swi | fmap_phase | asl | ct | noise
    tr: float = 500.0
    te: float = 15.0
    ti: float = 0.0
    flip: float = 90.0
    b: float = 0.0
    b0_mix: float = 0.0  # fraction of b=0 signal mixed into a DWI image (4D mean without bvals)
    echo_spacing: float = 8.0  # MPRAGE readout: ms between the train's small flips
    train_length: int = 176  # MPRAGE readout: flips per inversion (k-space centre in the middle)
    raw_direction: bool = False
    fat_sat: float = 1.0  # remaining fat signal fraction (1 = none)
    opposed_phase: bool = False
    gd_phase: str = ""  # "" | brain | arterial | venous | delayed
    flow: str = "none"  # none | void | inflow | csf_inflow (BOLD) | tof
    combine: str = "mean"  # how sub-planes of a thick slice combine: mean | min (minIP) | max (MIP)
    thickness: float = 5.0
    res: float = 1.0
    is3d: bool = False
    epi: bool = False
    snr: float = 30.0
    field: float = 3.0
    mixed_planes: bool = False  # tri-plane localizer


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _geometry(rng, p3d: float, thick2d=(3.0, 6.5), thick3d=(0.8, 1.5), res=(0.5, 1.2)) -> dict:
    is3d = bool(rng.random() < p3d)
    return dict(is3d=is3d, thickness=_u(rng, *(thick3d if is3d else thick2d)), res=_u(rng, *res),
                snr=_u(rng, 20, 90) if is3d else _u(rng, 15, 80), field=float(rng.choice([1.5, 3.0])))


def _epi_geometry(rng, thick=(3.0, 6.0), res=(1.2, 2.8)) -> dict:
    """Echo-planar geometry. EPI is always fat-suppressed: fat's chemical shift would otherwise
    land centimetres away along the phase axis."""
    return dict(is3d=False, epi=True, thickness=_u(rng, *thick), res=_u(rng, *res), snr=_u(rng, 8, 40),
                field=float(rng.choice([1.5, 3.0])), fat_sat=_u(rng, 0.02, 0.2))


def _ernst(tr: float, t1: float) -> float:
    return math.degrees(math.acos(math.exp(-tr / t1)))


def _t1_flip(rng, tr: float, t1_wm: float = 900.0, times_ernst=(2.2, 4.0), max_flip: float = 45) -> float:
    """T1-weighted spoiled GRE flips sit well above the Ernst angle (near it the image is PD-like)."""
    return float(np.clip(_ernst(tr, t1_wm) * _u(rng, *times_ernst), 10, max_flip))


def _t1_brain(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=0.55)
    gd = "brain" if label == "T1wce" else ""
    r = rng.random()
    if g["is3d"] and r < 0.6:
        ti = _u(rng, 850, 1150) if g["field"] >= 2 else _u(rng, 700, 1000)  # past the GM null point
        return Protocol(label, "mprage", "mprage", tr=_u(rng, 1800, 2500), te=_u(rng, 2, 4), ti=ti,
                        flip=_u(rng, 7, 10), echo_spacing=_u(rng, 6, 10), train_length=int(rng.integers(128, 225)),
                        gd_phase=gd, flow="none", **g)
    if g["is3d"] or r < 0.8:
        tr = _u(rng, 6, 30)
        return Protocol(label, "spgr", "gre", tr=tr, te=_u(rng, 2, 6), flip=_t1_flip(rng, tr),
                        gd_phase=gd, flow=str(rng.choice(["none", "inflow"])), **g)
    return Protocol(label, "se_t1", "se", tr=_u(rng, 350, 750), te=_u(rng, 8, 20), gd_phase=gd,
                    flow=str(rng.choice(["void", "none"])), **g)


def _t2_brain(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=0.15)
    return Protocol(label, "tse_t2", "se", tr=_u(rng, 2500, 7000), te=_u(rng, 80, 130), flow="void", **g)


def _flair(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=0.4, thick3d=(0.9, 1.6))
    return Protocol(label, "flair", "ir", tr=_u(rng, 5000, 11000), te=_u(rng, 90, 140), ti=-1.0, flow="void", **g)


#: In-plane resolution of diffusion EPI and its ADC maps, in mm: 64-192 matrices over a 200-260 mm
#: head or a larger body field of view. (Brain was 1.2-2.8: a real 3 mm DWI fell in the fMRI range
#: only and was refused as "other".)
DIFFUSION_RES = {"brain": (1.2, 3.5), "body": (1.5, 3.5)}


#: Largest share of b=0 signal in a DWI target (the mean of a 4D series whose b-values were lost):
#: DTI protocols acquire one b=0 per 6-64 directions (1.5-14%). Up to 0.8.0's simulator it was 30%,
#: and above about 16% CSF outshines grey matter, so one DWI target in nine (11%) showed BOLD's
#: bright-CSF contrast: the network learned that CSF does not tell BOLD from diffusion.
B0_MIX_MAX = 0.12


def _dwi(rng, label: str) -> Protocol:
    # Part b=0 (see B0_MIX_MAX), never a b=0 image alone: that is a T2-weighted EPI, and labelling
    # it DWI (8% up to 0.7.0) taught that any EPI with bright CSF is diffusion, which is how single
    # real BOLD volumes were named DWI.
    r = rng.random()
    b0_mix = _u(rng, 0.0, B0_MIX_MAX) if r < 0.35 else 0.0
    return Protocol(label, "dwi", "dwi", tr=_u(rng, 3000, 9000), te=_u(rng, 60, 110), b=_u(rng, 500, 1500),
                    b0_mix=b0_mix, raw_direction=bool(rng.random() < 0.35),
                    **_epi_geometry(rng, res=DIFFUSION_RES["brain"]))


def _adc(rng, label: str) -> Protocol:
    region = "body" if label.startswith("body") else "brain"
    return Protocol(label, "adc", "adc", **_epi_geometry(rng, res=DIFFUSION_RES[region]))


def _swi(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=1.0, thick3d=(1.0, 2.5), res=(0.5, 1.0))
    minip = rng.random() < 0.6
    g["thickness"] = _u(rng, 6, 16) if minip else g["thickness"]
    return Protocol(label, "swi", "swi", tr=_u(rng, 25, 50), te=_u(rng, 18, 40), flip=_u(rng, 12, 20),
                    combine="min" if minip else "mean", **g)


def _body_t1(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=0.7, thick2d=(4, 8), thick3d=(1.5, 4.0), res=(0.7, 1.8))
    phase = {"body-T1w": "", "body-T1w-arterial": "arterial", "body-T1w-venous": "venous",
             "body-T1w-delayed": "delayed"}[label]
    fs = _u(rng, 0.03, 0.25) if (phase or rng.random() < 0.5) else 1.0
    opposed = not phase and fs == 1.0 and rng.random() < 0.4
    if not g["is3d"] and rng.random() < 0.3:
        return Protocol(label, "body_se_t1", "se", tr=_u(rng, 400, 700), te=_u(rng, 8, 15), fat_sat=fs,
                        gd_phase=phase, **g)
    tr = _u(rng, 3, 200)
    return Protocol(label, "body_gre_t1", "gre", tr=tr, te=_u(rng, 1.1, 4.8), flip=_t1_flip(rng, tr, 800.0, (1.8, 3.5), 80),
                    fat_sat=fs, opposed_phase=opposed, gd_phase=phase, flow="none", **g)


def _body_t2(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=0.1, thick2d=(3, 8), res=(0.5, 1.6))
    fs = _u(rng, 0.02, 0.2) if label == "body-T2w-fs" else 1.0
    if label == "body-T2w-fs" and rng.random() < 0.3:  # STIR
        return Protocol(label, "stir", "ir", tr=_u(rng, 3000, 6000), te=_u(rng, 40, 80), ti=-2.0, flow="void", **g)
    return Protocol(label, "body_tse_t2", "se", tr=_u(rng, 1200, 6000), te=_u(rng, 70, 140), fat_sat=fs,
                    flow="void", **g)


def _body_dwi(rng, label: str) -> Protocol:
    return replace(_dwi(rng, label), kind="body_dwi", b=_u(rng, 400, 2000), raw_direction=False,
                   **_epi_geometry(rng, thick=(3, 8), res=DIFFUSION_RES["body"]))


#: Class label → protocol generator. Body and brain classes draw from their own anatomy.
CLASS_PROTOCOLS = {
    "T1w": _t1_brain, "T1wce": _t1_brain, "T2w": _t2_brain, "FLAIR": _flair, "ADC": _adc,
    "SWI": _swi, "DWI": _dwi, "body-T1w": _body_t1, "body-T1w-arterial": _body_t1,
    "body-T1w-venous": _body_t1, "body-T1w-delayed": _body_t1, "body-T2w": _body_t2,
    "body-T2w-fs": _body_t2, "body-DWI": _body_dwi, "body-ADC": _adc,
}


#: BOLD echo time by field (1.5 T, 3 T), ms: near grey matter's T2*, where BOLD sensitivity peaks
#: (40-60 ms at 1.5 T, 25-40 ms at 3 T). Up to the 0.9.0 candidate every field drew 25-40 ms,
#: too short at 1.5 T for the bright CSF of real BOLD volumes.
BOLD_TE = {False: (40.0, 60.0), True: (25.0, 40.0)}

#: SNR of a single BOLD volume, drawn like diffusion's (``_epi_geometry``: 8-40). Real single BOLD
#: volumes are as grainy as real diffusion ones (``benchmarks/studies/epi_grain.py``: high-frequency residual
#: 0.010-0.029 of the median tissue signal against 0.006-0.026 for real DWI); BOLD drawn at SNR 20-80
#: (up to the 0.11.0 candidate) was smoother than both (median 0.007), so grain alone said "diffusion".
BOLD_SNR = (6.0, 40.0)


#: Open-set kinds and their sampling weights by region (brain, body). Body "other" series are
#: what a body protocol holds beside its classes: proton-density references (the DCE T1-mapping
#: GRE, PD TSE), scouts, field maps; brain-only acquisitions (TOF, BOLD, ASL, FA maps) are not
#: drawn there. Up to 0.14.0 both regions shared the brain weights, so a body PD gradient echo was
#: one body "other" in fifteen, and the real ProstateX PD reference was named body T1w (0.56).
OTHER_KINDS = {
    "pd": (3.0, 3.0), "pd_gre": (1.5, 3.0), "tof": (2.0, 0.0), "fmri": (3.0, 0.0), "fmap_phase": (2.0, 1.0),
    "fmap_mag": (1.0, 1.0), "asl": (2.0, 0.0), "localizer": (2.0, 2.0), "noise": (1.0, 1.0), "ct": (2.0, 2.0),
    "b0_epi_short": (1.0, 1.0), "fa": (1.5, 0.0),
}


def _other(rng, region: str) -> Protocol:
    """Series the model must not force into a class (open set), drawn by ``OTHER_KINDS``."""
    kinds = list(OTHER_KINDS)
    weights = np.array([OTHER_KINDS[k][region == "body"] for k in kinds])
    kind = str(rng.choice(kinds, p=weights / weights.sum()))
    g = _geometry(rng, p3d=0.3)
    if kind == "pd":  # long TR, short TE: up to TE 30 it shaded into T2w, an ambiguous target
        return Protocol("other", kind, "se", tr=_u(rng, 2500, 6000), te=_u(rng, 8, 20), flow="void", **g)
    if kind == "pd_gre":  # 3D low-flip reference for T1 mapping before DCE: flip below Ernst, PD-weighted
        g3 = _geometry(rng, p3d=1.0, thick3d=(1.5, 4.0), res=(0.8, 2.0))
        tr = _u(rng, 3, 10)
        return Protocol("other", kind, "gre", tr=tr, te=_u(rng, 1.0, 3.0), flip=max(1.5, _ernst(tr, 800.0) * _u(rng, 0.2, 0.6)),
                        flow="none", **g3)
    if kind == "tof":
        g3 = _geometry(rng, p3d=1.0, thick3d=(0.5, 1.2), res=(0.3, 0.8))
        mip = rng.random() < 0.25
        return Protocol("other", kind, "gre", tr=_u(rng, 18, 35), te=_u(rng, 3, 7), flip=_u(rng, 15, 25),
                        flow="tof", combine="max" if mip else "mean",
                        **{**g3, "thickness": _u(rng, 20, 60) if mip else g3["thickness"]})
    if kind == "fmri":  # single-band (TR 2-3 s, 3-4 mm) to multiband (TR 0.7-1 s, 2 mm); flip near Ernst for grey matter
        tr = _u(rng, 700, 3000)
        flip = float(np.clip(_ernst(tr, 1500.0) * _u(rng, 0.85, 1.2), 35, 90))
        g = {**_epi_geometry(rng, thick=(2.0, 4.5), res=(1.8, 4.0)), "snr": _u(rng, *BOLD_SNR)}
        te = _u(rng, *BOLD_TE[g["field"] >= 2])
        return Protocol("other", kind, "gre", tr=tr, te=te, flip=flip, flow="csf_inflow", **g)
    if kind == "b0_epi_short":
        return Protocol("other", kind, "gre", tr=_u(rng, 500, 1500), te=_u(rng, 15, 30), flip=_u(rng, 40, 70),
                        **_epi_geometry(rng, thick=(3, 5), res=(2.5, 4.0)))
    if kind == "fmap_phase":
        return Protocol("other", kind, "fmap_phase", **{**g, "res": _u(rng, 1.5, 3.5)})
    if kind == "fmap_mag":
        return Protocol("other", kind, "gre", tr=_u(rng, 400, 800), te=_u(rng, 4, 8), flip=_u(rng, 40, 60),
                        **{**g, "res": _u(rng, 2.0, 3.5), "thickness": _u(rng, 2.5, 4)})
    if kind == "asl":
        return Protocol("other", kind, "asl", **{**_epi_geometry(rng, thick=(3, 6), res=(2.5, 4.0)),  # a subtraction:
                                                 "snr": _u(rng, 1.5, 8)})  # speckled (SNR vs grey matter)
    if kind == "localizer":  # tri-plane scouts; a single-plane one is told from a T1w by being thick and coarse
        mixed = bool(rng.random() < 0.7)
        return Protocol("other", kind, "gre", tr=_u(rng, 3, 10), te=_u(rng, 1.5, 5), flip=_u(rng, 20, 60),
                        mixed_planes=mixed, is3d=False, thickness=_u(rng, 5, 10) if mixed else _u(rng, 8, 15),
                        res=_u(rng, 1.0, 2.5) if mixed else _u(rng, 1.8, 3.5), snr=_u(rng, 8, 30), field=g["field"])
    if kind == "fa":  # fractional anisotropy map, exported beside every DTI: white matter bright, like no class
        return Protocol("other", kind, "fa", **{**_epi_geometry(rng, thick=(1.5, 3.5), res=(1.5, 2.8)), "fat_sat": 1.0})
    if kind == "noise":
        return Protocol("other", kind, "noise", **g)
    return Protocol("other", kind, "ct", **g)


# ------------------------------------------------------------------------------------- physics
@dataclass
class TissueParams:
    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    t2s: np.ndarray
    adc: np.ndarray


def draw_tissue_params(rng, field_t: float, jitter: float = 0.2, tissue_jitter: float = 0.05) -> TissueParams:
    """Per-image tissue parameters around the literature values.

    Each parameter gets one shared factor (±``jitter``: field strength, method and population
    differences move all tissues together) times a small per-tissue factor (±``tissue_jitter``).
    Independent ±20% per tissue would swap white and grey matter T1 at 1.5 T (a 27% gap) and
    teach the network T1w images with inverted contrast."""
    def j(v):
        return v * rng.uniform(1 - jitter, 1 + jitter) * rng.uniform(1 - tissue_jitter, 1 + tissue_jitter, size=v.shape)
    t1 = _T["t1_3"] if field_t >= 2 else _T["t1_15"]
    t2 = _T["t2_3"] if field_t >= 2 else _T["t2_15"]
    t2s = _T["t2s_3"] * (1.0 if field_t >= 2 else 1.3)
    return TissueParams(j(_T["pd"]), j(t1), j(t2), np.minimum(j(t2s), j(t2)), j(_T["adc"]))


def gd_concentration(rng, phase: str) -> np.ndarray:
    """Tissue gadolinium concentration (mM) per tissue: vp·C_blood + ve·C_extracellular."""
    if not phase:
        return np.zeros(N_TISSUES)
    if phase == "brain":
        c_a = c_v = _u(rng, 0.4, 1.3)
        c_e = c_v / 0.55 * _u(rng, 0.6, 1.0)
    elif phase == "arterial":
        c_a, c_v, c_e = _u(rng, 2.5, 7.0), _u(rng, 0.1, 0.8), _u(rng, 0.05, 0.3)
    elif phase == "venous":
        c_a, c_v, c_e = _u(rng, 0.8, 1.8), _u(rng, 1.0, 2.0), _u(rng, 0.5, 1.0)
    else:  # delayed / equilibrium
        c_a = c_v = _u(rng, 0.3, 0.7)
        c_e = _u(rng, 0.35, 0.7)
    c_blood = np.where(_ARTERIAL, c_a, c_v)
    return _T["vp"] * c_blood + _T["ve"] * c_e


def _tse_decay(rng, te: float, t2: np.ndarray, mixing: tuple[float, float]) -> np.ndarray:
    """T2 decay of a turbo spin echo at effective TE: not one echo but a k-space mixture (the
    early echoes of the train fill part of k-space; stimulated echoes), which keeps short-T2
    tissue such as muscle grey instead of black; and J-coupled fat, whose apparent T2 lengthens
    under the closely spaced refocusing pulses (bright fat on TSE; Henkelman 1992)."""
    t2 = t2 * (1 + _T["fat"] * (_u(rng, 1.5, 2.5) - 1))
    k = _u(rng, *mixing)
    return (1 - k) * np.exp(-te / t2) + k * np.exp(-_u(rng, 10, 30) / t2)


def mprage_centre_mz(t1: np.ndarray, proto: Protocol, cycles: int = 6) -> np.ndarray:
    """Longitudinal magnetisation at the k-space centre of an MPRAGE readout, per tissue.

    Inversion, recovery to the start of the train, ``train_length`` small flips ``echo_spacing``
    apart (centre in the middle, at ``ti``), recovery to ``tr``; iterated to the periodic steady
    state. The train pulls every tissue towards its own gradient-echo steady state, so the image
    is not the pure inversion-recovery contrast (Deichmann 2000): modelling it this way keeps
    white/grey contrast and fat brightness where real MPRAGE images have them."""
    a = math.radians(proto.flip)
    e = np.exp(-proto.echo_spacing / t1)
    q = math.cos(a) * e
    steady = (1 - e) / (1 - q)  # fixed point of m -> m cos(a) e + (1 - e)
    half = proto.train_length // 2
    t_start = max(proto.ti - half * proto.echo_spacing, 10.0)
    t_rest = max(proto.tr - t_start - proto.train_length * proto.echo_spacing, 0.0)
    mz = np.ones_like(t1)
    for _ in range(cycles):
        start = 1 - (1 + mz) * np.exp(-t_start / t1)  # inverted, then recovering
        centre = steady + (start - steady) * q ** half
        end = steady + (start - steady) * q ** proto.train_length
        mz = 1 - (1 - end) * np.exp(-t_rest / t1)
    return centre


#: Fractional anisotropy by tissue (Pierpaoli 1996 Radiology 201:637; Mukherjee 2008 AJNR 29:632):
#: white matter 0.4-0.8 with fibre coherence, deep grey 0.2-0.3, cortex 0.1-0.2, CSF near 0;
#: oedema and tumour lower white matter's. Tissues not listed (scalp, muscle, bone: low SNR at
#: b=1000) show the positive bias of FA in noise, about 0.3.
FA = {"wm": 0.5, "deep_gm": 0.25, "gm": 0.14, "csf": 0.06, "choroid": 0.15, "vitreous": 0.05, "wm_lesion": 0.3,
      "oedema": 0.2, "tumour": 0.15, "necrosis": 0.08, "fluid": 0.05}


def tissue_signal(rng, proto: Protocol, tp: TissueParams) -> np.ndarray:
    """Signal of each tissue under this protocol (the per-tissue lookup table)."""
    c = gd_concentration(rng, proto.gd_phase)
    r1 = _u(rng, 3.0, 6.5)
    t1 = 1.0 / (1.0 / tp.t1 + r1 * c / 1000.0)
    t2 = 1.0 / (1.0 / tp.t2 + 1.2 * r1 * c / 1000.0)
    t2s = 1.0 / (1.0 / tp.t2s + 1.5 * r1 * c / 1000.0)
    pd, tr, te = tp.pd, proto.tr, proto.te
    e1 = np.exp(-tr / t1)
    seq = proto.seq
    if seq in ("se", "ir"):  # no early-echo mixing for FLAIR: it would erase its small GM/WM contrast
        decay = _tse_decay(rng, te, t2, (0.05, 0.25) if seq == "se" else (0.0, 0.0)) if te > 40 else np.exp(-te / t2)
    if seq == "se":
        s = pd * (1 - e1) * decay
    elif seq in ("gre", "swi"):
        a = math.radians(proto.flip)
        s = pd * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * np.exp(-te / t2s)
    elif seq == "ir":
        if proto.ti == -1.0:  # FLAIR: null the CSF drawn for this image
            t1n = t1[TISSUE_INDEX["csf"]]
        else:  # STIR: null fat
            t1n = t1[TISSUE_INDEX["fat"]]
        ti = t1n * math.log(2.0 / (1.0 + math.exp(-tr / t1n))) * _u(rng, 0.975, 1.025)  # CSF (long T2) shows any residual
        s = pd * np.abs(1 - 2 * np.exp(-ti / t1) + e1) * decay
    elif seq == "mprage":
        s = pd * np.abs(mprage_centre_mz(t1, proto)) * math.sin(math.radians(proto.flip)) * np.exp(-te / t2s)
    elif seq == "dwi":
        s0 = pd * (1 - e1) * np.exp(-te / t2)
        s = s0 * (proto.b0_mix + (1 - proto.b0_mix) * np.exp(-proto.b * tp.adc / 1000.0))
    elif seq == "adc":
        s = tp.adc * (pd > 0.2)
    elif seq == "fa":  # white matter's coherence is modulated in render; elsewhere a noise-biased low FA
        s = np.array([FA.get(n, 0.3) for n in TISSUE_NAMES]) * rng.uniform(0.85, 1.15, N_TISSUES)
    elif seq == "asl":  # perfusion-weighted: GM 2-3x WM; labelled blood still in arteries (transit artefact)
        s = np.where(_IS_BRAIN, tp.pd, 0.0) * np.array([{"gm": 1.0, "deep_gm": 0.8, "wm": _u(rng, 0.3, 0.5)}.get(n, 0.05)
                                                         for n in TISSUE_NAMES])
        s[TISSUE_INDEX["artery"]] = _u(rng, 0.1, 3.0)
    elif seq == "ct":
        hu = {"air": -1000, "bone": 1200, "marrow": 300, "fat": -100, "csf": 5, "lung": -800, "fluid": 5,
              "vein": 45, "artery": 45, "wm": 28, "gm": 38}
        s = np.array([hu.get(n, 50.0) for n in TISSUE_NAMES]) * _u(rng, 0.9, 1.1) + 1024
    else:  # noise, fmap_phase: the tissue signal is irrelevant; a brightness mask is enough
        s = pd.copy()
    s = np.asarray(s, float)
    # fat suppression and opposed-phase water/fat cancellation
    s = s * (1 - _T["fat"] * (1 - proto.fat_sat))
    if seq in ("gre", "mprage", "swi"):  # fat's several spectral peaks dephase at the gradient echo
        s = s * (1 - _T["fat"] * (1 - _u(rng, 0.35, 0.8)))
    if proto.opposed_phase:
        s = s * np.abs(1 - 2 * _T["fat"])
    # flowing blood: spin-echo flow voids, gradient-echo inflow, TOF bright arteries
    if proto.flow == "void":
        s = np.where(_FLOW, s * _u(rng, 0.0, 0.4), s)
    elif proto.flow == "csf_inflow":  # 2D BOLD EPI: pulsatile CSF carries unsaturated spins into each slice,
        s[TISSUE_INDEX["csf"]] *= _u(rng, 1.0, 1.5)  # the bright ventricles and cisterns of real BOLD volumes
        s = np.where(_FLOW, s * _u(rng, 1.0, 2.5), s)
    elif proto.flow == "inflow":
        s = np.where(_FLOW, s * _u(rng, 1.0, 2.5), s)
    elif proto.flow == "tof":  # saturated stationary tissue, parenchyma darkened further by MT pulses
        s = s * _u(rng, 0.3, 0.6) * np.where(_MT_SUPPRESSED, _u(rng, 0.5, 0.8), 1.0)
        s = np.where(_FLOW, _u(rng, 2.0, 4.0) * s.max(), s)
    if proto.seq == "swi":  # deoxygenated veins: phase-mask darkening beyond T2*
        s[TISSUE_INDEX["vein"]] *= _u(rng, 0.05, 0.4)
    return s


# ------------------------------------------------------------------------------------ geometry
_PLANES = {  # normal, up (rows towards), right (cols towards); matches volume.native_slices
    "axial": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    "sagittal": ((1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "coronal": ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
}


def _rotation(rng, max_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang = math.radians(_u(rng, -max_deg, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(ang) * k + (1 - math.cos(ang)) * k @ k


@dataclass(frozen=True)
class SliceGeometry:
    """Where the slices of a simulated series lie, in RAS world millimetres."""

    centre: np.ndarray
    normal: np.ndarray
    up: np.ndarray  # rows run from +up (row 0) downwards
    right: np.ndarray  # columns run towards +right
    positions: np.ndarray  # offset of each slice along ``normal``
    planes: tuple[str, ...]  # plane of each slice (differs only for tri-plane localizers)
    res: float
    size: int


def plan_geometry(rng, anat: Anatomy, proto: Protocol, n_slices: int, plane: str, fov: float,
                  even: bool = False, oblique: bool = True) -> SliceGeometry:
    """Slice planes for a series; ``even`` spreads them over the coverage like a real series."""
    res = max(proto.res, 1.0 if anat.region == "brain" else 1.5)
    tilt = _rotation(rng, 15.0 if rng.random() < 0.5 else 4.0) if oblique else np.eye(3)
    normal, up, right = (tilt @ np.array(v, float) for v in _PLANES[plane])
    centre = anat.fg_points.mean(axis=0) + (rng.normal(scale=8.0, size=3) if oblique else 0.0)
    planes = tuple(str(rng.choice(list(_PLANES))) for _ in range(n_slices)) if proto.mixed_planes else (plane,) * n_slices
    pos = _slice_positions(rng, anat, normal, centre, n_slices, even, brain_coverage=_brain_coverage(rng, anat, proto))
    return SliceGeometry(centre, normal, up, right, pos, planes, res, int(round(fov / res)))


def slice_voxels(anat: Anatomy, proto: Protocol, geo: SliceGeometry, scale: np.ndarray | None = None):
    """Anatomy voxel coordinates of every sub-plane pixel, one slice at a time:
    (sub_planes, H, W, 3) per slice. A thick slice is sampled on sub-planes through its thickness."""
    n_sub = int(np.clip(round(proto.thickness / (1.0 if anat.region == "brain" else 2.0)), 1, 9))
    scale = np.eye(3) if scale is None else scale
    tilt = np.column_stack([geo.right, geo.up, geo.normal]) @ np.linalg.inv(
        np.column_stack([np.array(v, float) for v in reversed(_PLANES[geo.planes[0]])]))
    inv = np.linalg.inv(anat.affine)
    world_to_anat = inv[:3, :3] @ np.linalg.inv(scale)
    axis = (np.arange(geo.size) - (geo.size - 1) / 2) * geo.res
    offs = (np.arange(n_sub) - (n_sub - 1) / 2) * (proto.thickness / n_sub)
    for k, pl in enumerate(geo.planes):
        n, up, right = (tilt @ np.array(v, float) for v in _PLANES[pl])
        grid = (geo.centre[None, None, None, :]
                + (geo.positions[k] + offs)[:, None, None, None] * n
                - axis[None, :, None, None] * up
                + axis[None, None, :, None] * right)
        yield (grid - geo.centre) @ world_to_anat.T + (inv[:3, :3] @ geo.centre + inv[:3, 3])


def sample_tissue_slices(rng, anat: Anatomy, proto: Protocol, geo: SliceGeometry, scale: np.ndarray | None = None):
    """Nearest-label tissue indices on each slice: (n_slices, sub_planes, H, W)."""
    return np.stack([
        ndimage.map_coordinates(anat.tissue, np.moveaxis(vox, -1, 0).reshape(3, -1), order=0, mode="constant",
                                cval=TISSUE_INDEX["air"]).reshape(vox.shape[:3])
        for vox in slice_voxels(anat, proto, geo, scale)])


#: Share of 2D brain series whose slices cover the brain (skull base to vertex), as a planned
#: axial TSE or EPI does; the rest, and 3D volumes, span the whole label map, neck included.
#: SynthSeg's maps reach the third cervical vertebra: over the whole map, a third of simulated
#: axial 2D slices showed neck and face, which real 2D brain series hardly contain.
BRAIN_COVERAGE_P = 0.85
#: How far (mm, drawn uniformly up to this) brain coverage reaches below the brain and above it.
BRAIN_COVERAGE_BELOW_MM = 45.0
BRAIN_COVERAGE_ABOVE_MM = 10.0


def _brain_coverage(rng, anat: Anatomy, proto: Protocol) -> bool:
    return anat.region == "brain" and not proto.is3d and bool(rng.random() < BRAIN_COVERAGE_P)


def _slice_positions(rng, anat: Anatomy, normal: np.ndarray, centre: np.ndarray, n: int,
                     even: bool = False, brain_coverage: bool = False) -> np.ndarray:
    """Offsets along the normal inside the central 70% of a coverage window of the anatomy
    (``even``: evenly over 95% of it, as a complete series covers the organ). The window spans
    the brain tissue with ``brain_coverage`` (plus a few millimetres of skull and scalp), else
    every tissue of the map."""
    proj = (anat.fg_points - centre) @ normal
    lo, hi = np.percentile(proj, [2, 98])
    if brain_coverage:
        b_lo, b_hi = np.percentile((anat.brain_points - centre) @ normal, [2, 98])
        lo, hi = max(lo, b_lo - _u(rng, 0, BRAIN_COVERAGE_BELOW_MM)), min(hi, b_hi + _u(rng, 0, BRAIN_COVERAGE_ABOVE_MM))
    if anat.region == "body":  # a body series covers 12-30 cm of a longer trunk
        length = min(hi - lo, _u(rng, 120, 300))
        start = _u(rng, lo, max(lo, hi - length))
        lo, hi = start, start + length
    if even:
        margin = 0.025 * (hi - lo)
        return np.linspace(lo + margin, hi - margin, n)
    margin = 0.15 * (hi - lo)
    return np.sort(rng.uniform(lo + margin, hi - margin, size=n))


# ----------------------------------------------------------------------------------- lesions
def _paint_ellipsoid(tissue: np.ndarray, centre, radii, value: int, replace_only=None) -> None:
    lo = np.maximum((centre - radii).astype(int), 0)
    hi = np.minimum((centre + radii).astype(int) + 1, tissue.shape)
    if np.any(hi <= lo):
        return
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    zz = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(zz, centre, radii)) <= 1.0
    region = tissue[sl]
    if replace_only is not None:
        inside &= np.isin(region, replace_only)
    region[inside] = value


LESION_KINDS = ("tumour", "cavity", "wm_lesions")


def with_lesions(rng, anat: Anatomy, kind_p: tuple[float, float, float] = (0.55, 0.15, 0.3)) -> Anatomy:
    """A copy of a brain with a tumour (enhancing rim, necrosis, oedema), a resection cavity or
    white-matter lesions painted in, in voxel space (``kind_p``: probabilities of ``LESION_KINDS``)."""
    tissue = anat.tissue.copy()
    wm = np.argwhere(tissue[::4, ::4, ::4] == TISSUE_INDEX["wm"]) * 4
    if len(wm) == 0:
        return anat
    brain = _idx("wm", "gm", "deep_gm", "csf")
    kind = rng.choice(LESION_KINDS, p=kind_p)
    if kind == "wm_lesions":
        for _ in range(rng.integers(3, 15)):
            c = wm[rng.integers(len(wm))]
            _paint_ellipsoid(tissue, c, rng.uniform(1.5, 6, 3), TISSUE_INDEX["wm_lesion"], _idx("wm"))
    else:
        c = wm[rng.integers(len(wm))].astype(float)
        r = rng.uniform(6, 22, 3)
        if kind == "tumour":
            _paint_ellipsoid(tissue, c, r * rng.uniform(1.4, 2.2), TISSUE_INDEX["oedema"], _idx("wm", "deep_gm"))
            _paint_ellipsoid(tissue, c, r, TISSUE_INDEX["tumour"], brain)
            if rng.random() < 0.7:
                _paint_ellipsoid(tissue, c, r * rng.uniform(0.4, 0.75), TISSUE_INDEX["necrosis"])
        else:
            _paint_ellipsoid(tissue, c, r, TISSUE_INDEX["csf"], brain)
            _paint_ellipsoid(tissue, c, r * 1.3, TISSUE_INDEX["oedema"] if rng.random() < 0.5 else TISSUE_INDEX["wm_lesion"],
                             _idx("wm"))
    return Anatomy(anat.name, anat.region, tissue, anat.affine, anat.fg_points)


# ------------------------------------------------------------------------------- image making
def _smooth_field(rng, shape, scale_px: float, amplitude: float) -> np.ndarray:
    small = [max(2, int(s / scale_px)) for s in shape]
    f = rng.normal(size=small)
    f = ndimage.zoom(f, [s / m for s, m in zip(shape, small)], order=3)[tuple(slice(0, s) for s in shape)]
    f = f / (np.abs(f).max() + 1e-6)
    return amplitude * f


#: Share of brain series shown skull-stripped (pre-processed datasets), by sequence; SWI is
#: rarely distributed stripped, and a stripped SWI is hard to tell from a stripped T1w.
STRIPPED_P = {"swi": 0.15, "ct": 0.0, "noise": 0.0, "fmap_phase": 0.0}


def draw_skull_stripped(rng, anat: Anatomy, proto: Protocol) -> bool:
    """Whether a brain series is shown skull-stripped: 45% of them unless ``STRIPPED_P`` says."""
    return anat.region == "brain" and rng.random() < STRIPPED_P.get(proto.seq, 0.45)


#: Probability of an axial, sagittal, coronal series, by habit: TOF angiography is acquired as axial
#: slabs, brain echo-planar series (diffusion, ADC, BOLD, ASL) as axial stacks, other 2D brain
#: series mostly axial; 3D brain volumes are read in three views anyway. Up to the simulator of
#: model 0.9, every brain series was 45% sagittal or coronal, echo-planar ones included.
PLANE_P = {"brain_3d": (0.55, 0.2, 0.25), "brain_2d": (0.75, 0.1, 0.15), "brain_epi": (0.92, 0.03, 0.05),
           "body": (0.75, 0.05, 0.2), "tof": (0.9, 0.05, 0.05)}


#: Field of view in mm: (probability, low, high) per region. Body MRI is either a survey of the
#: trunk or organ-targeted: PI-RADS v2.1 asks 12-20 cm for prostate T2W and 16-22 cm for DWI,
#: so a uniform 18-42 cm draw showed a whole pelvis where real prostate series show a gland.
FOV_MM = {
    "brain": ((1.0, 200, 260),),
    "body": ((0.65, 240, 420), (0.35, 140, 240)),
}


def draw_fov(rng, anat: Anatomy) -> float:
    bands = FOV_MM[anat.region]
    _, low, high = bands[rng.choice(len(bands), p=[b[0] for b in bands])]
    return _u(rng, low, high)


def plane_probabilities(anat: Anatomy, proto: Protocol) -> tuple[float, float, float]:
    if proto.kind in PLANE_P:
        return PLANE_P[proto.kind]
    if anat.region != "brain":
        return PLANE_P[anat.region]
    return PLANE_P["brain_epi" if proto.epi else "brain_3d" if proto.is3d else "brain_2d"]


def render(rng, anat: Anatomy, proto: Protocol, n_slices: int, plane: str | None = None,
           fov: float | None = None, *, geometry: SliceGeometry | None = None,
           tissue_params: TissueParams | None = None, stripped: bool | None = None, storage: bool = True):
    """Simulate ``n_slices`` slices of one series: (n, H, W) magnitude images and their geometry.

    Training draws everything. The example study passes a fixed ``geometry`` and
    ``tissue_params`` so that every volume of a 4D series shares slices and tissue values."""
    if geometry is None:
        plane = plane or str(rng.choice(list(_PLANES), p=plane_probabilities(anat, proto)))
        fov = fov or draw_fov(rng, anat)
        geo = plan_geometry(rng, anat, proto, n_slices, plane, fov)
        scale = np.diag(rng.uniform(0.88, 1.12, size=3))
    else:
        geo, scale = geometry, None
    tissue = sample_tissue_slices(rng, anat, proto, geo, scale)
    if stripped is None:
        stripped = draw_skull_stripped(rng, anat, proto)
    if stripped:
        tissue = np.where(_IS_BRAIN[tissue], tissue, TISSUE_INDEX["air"]).astype(np.uint8)
    if proto.flow == "tof":
        tissue = _with_arteries(rng, tissue)
    tp = tissue_params or draw_tissue_params(rng, proto.field)
    lut = tissue_signal(rng, proto, tp)
    sub = lut[tissue].astype(np.float32)  # (n, m, H, W)
    sub = _mix_lumped_soft_tissue(rng, sub, tissue, lut, geo.res)
    if proto.raw_direction:  # anisotropic diffusion: white matter signal varies with fibre direction
        wm = np.isin(tissue, _idx("wm", "deep_gm"))
        field_ = _smooth_field(rng, tissue.shape[2:], 6, 1.0)[None, None]
        sub = np.where(wm, sub * np.exp(-proto.b * tp.adc[TISSUE_INDEX["wm"]] / 1000 * 0.6 * field_), sub)
    if proto.seq == "fa":  # fibre coherence: tracts near 0.8, crossings and the periphery near 0.3
        wm = np.isin(tissue, _idx("wm"))
        field_ = _smooth_field(rng, tissue.shape[2:], 4, 1.0)[None, None]
        sub = np.where(wm, np.clip(sub * (1.0 + 0.5 * field_), 0.2, 0.95), sub)
        scalp = ~_IS_BRAIN[tissue] & (tissue != TISSUE_INDEX["air"])  # little signal at b=1000: speckled FA
        sub = np.where(scalp, rng.uniform(0.05, 0.7, sub.shape).astype(np.float32), sub)
    sub = _tissue_texture(rng, sub, geo.res, TEXTURE[anat.region])
    combine = {"mean": np.mean, "min": np.min, "max": np.max}[proto.combine]
    img = combine(sub, axis=1)
    if proto.epi and proto.seq == "gre" and anat.region == "brain":
        img = img * bold_dropout(rng, anat, proto, geo, scale)
    brain_mask = (tissue != TISSUE_INDEX["air"]).any(axis=1)
    img = _artefacts(rng, img, proto, brain_mask, anat.region, geo.res)
    if stripped:
        img[~_IS_BRAIN[tissue].any(axis=1)] = 0.0
        if rng.random() < PARTIAL_SLAB["p"]:
            img[~slab_coverage(rng, anat, proto, geo, scale)] = 0.0
    return (_storage(rng, img, stripped) if storage else img), geo


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


#: Share of series shaded by phased-array receive coils (no intensity normalisation), and the
#: range of the extra gain at the skin relative to depth, by region: body arrays sit on the
#: skin of a large cross-section, head arrays closer around a smaller one.
COIL_SHADING = {"body": (0.85, (0.5, 3.0)), "brain": (0.4, (0.15, 0.7))}


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


def _artefacts(rng, img: np.ndarray, proto: Protocol, mask: np.ndarray, region: str = "brain",
               res: float = 1.0) -> np.ndarray:
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
    if proto.seq == "adc":  # ADC maps: scaled units, noise in the fit, background often zero
        img = img * 1000 * (1 + rng.normal(scale=_u(rng, 0.02, 0.12), size=img.shape))
        img = np.where(mask | (rng.random(img.shape) < _u(rng, 0, 0.05)), img, 0)
        return np.clip(img, 0, None).astype(np.float32)
    bias = np.exp(_smooth_field(rng, (h, w), _u(rng, 40, 100), _u(rng, 0.0, 0.35)))
    img = img * bias[None]
    p_coil, gain = COIL_SHADING[region]
    if rng.random() < p_coil:
        img = img * _coil_sensitivity(rng, mask, res, gain)
    phase_axis = 1 if rng.random() < 0.5 else 2
    if proto.epi:
        img = _epi_distortion(rng, img, phase_axis)
        # T2* decay during the long echo-planar readout blurs along the phase axis
        img = ndimage.gaussian_filter1d(img, sigma=_u(rng, 0.3, 1.2), axis=phase_axis)
    if proto.epi or rng.random() < 0.1:  # Nyquist / motion ghost along the phase axis
        g = _u(rng, 0.02, 0.12)
        img = img + g * np.roll(img, h // 2, axis=phase_axis)
    # noise relative to the typical tissue signal; a perfusion subtraction has signal in grey
    # matter only, so its median over the head would be near zero and its noise invisible
    level = np.percentile(img[mask], 90 if proto.seq == "asl" else 50) if mask.any() else img.mean()
    sigma = level / proto.snr
    img = np.sqrt((img + rng.normal(scale=sigma, size=img.shape)) ** 2 + rng.normal(scale=sigma, size=img.shape) ** 2)
    return img.astype(np.float32)


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


# ----------------------------------------------------------------------------------- samples
#: Sampling weights per training target: brain classes, body classes, and the open set.
TARGET_WEIGHTS = {
    "T1w": 1.2, "T1wce": 1.4, "T2w": 1.0, "FLAIR": 1.2, "ADC": 0.8, "SWI": 0.7, "DWI": 1.0,
    "body-T1w": 0.5, "body-T1w-arterial": 0.45, "body-T1w-venous": 0.45, "body-T1w-delayed": 0.45,
    "body-T2w": 0.6, "body-T2w-fs": 0.5, "body-DWI": 0.6, "body-ADC": 0.5, "other": 2.6,
}


@dataclass(frozen=True)
class Sample:
    """One training example: the network's two inputs, the target and how it was made."""

    stack: np.ndarray  # (n_slices, size, size) float32, as ``volume.normalise_stack`` makes it
    geometry: np.ndarray  # ``volume.geometry_features`` of the voxel size a scanner would store
    label: str
    protocol: Protocol


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


#: Share of brains that carry a lesion, by storage. Skull-stripped series come from tumour datasets
#: (BraTS-like), where *every* contrast shows the tumour; scanner series are mixed. The same share
#: and the same lesion kinds for every class: when only T1wce carried tumours (90% stripped, 60%
#: native, against 35% for the rest) "a tumour is visible" was itself a T1wce cue, and real
#: stripped tumour FLAIRs were called T1wce or refused.
LESION_P = {"stripped": 0.9, "native": 0.55}
LESION_KIND_P = (0.8, 0.07, 0.13)  # tumour, resection cavity, white-matter lesions (LESION_KINDS)


def _maybe_lesions(rng, anat: Anatomy, stripped: bool) -> Anatomy:
    """A lesion in ``LESION_P`` of brains, whatever the class.

    Without a lesion, a skull-stripped T1wce shows only choroid plexus and a few intracerebral
    vessels enhancing: hard to tell from a native T1w. Real skull-stripped contrast-enhanced
    series come from tumour datasets, hence the high stripped share."""
    p = LESION_P["stripped" if stripped else "native"]
    return with_lesions(rng, anat, kind_p=LESION_KIND_P) if rng.random() < p else anat


def simulate_sample(rng, anatomies: list[Anatomy], n_slices: int, spec: InputSpec = SPEC,
                    label: str | None = None, protocol: Protocol | None = None) -> Sample:
    """One random training example of any class or of the open set (of ``label`` when given;
    acquired with ``protocol`` when given, e.g. one open-set kind for a diagnostic, whose label
    is then the protocol's)."""
    if protocol is not None:
        label = protocol.label
    if label is None:
        targets = list(TARGET_WEIGHTS)
        w = np.array([TARGET_WEIGHTS[t] for t in targets])
        label = str(rng.choice(targets, p=w / w.sum()))
    if label == "other":
        region = "body" if rng.random() < 0.3 else "brain"
    else:
        region = "body" if label.startswith("body-") else "brain"
    pool = [a for a in anatomies if a.region == region] or anatomies
    anat = pool[rng.integers(len(pool))]
    proto = protocol or (_other(rng, region) if label == "other" else CLASS_PROTOCOLS[label](rng, label))
    stripped = draw_skull_stripped(rng, anat, proto)
    if anat.region == "brain":
        anat = _maybe_lesions(rng, anat, stripped)
    slices, geo = render(rng, anat, proto, n_slices, stripped=stripped)
    geometry = geometry_features(*stored_voxel_size(rng, proto, stripped))
    return Sample(normalise_stack(slices, geo.res, geo.res, spec), geometry, label, proto)


def label_index(label: str) -> int:
    """Training target: index into classes.LABELS, or -1 for the open set."""
    return LABELS.index(label) if label in LABELS else -1
