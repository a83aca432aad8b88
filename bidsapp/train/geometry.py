"""Slice planning: plane, tilt, field of view, coverage and the tissue map sampled on each slice grid.

Where the slices of a series lie in the anatomy, drawn as scanners plan them by habit
(``PLANE_P``, ``FOV_MM``, brain coverage of 2D series); partial volume follows from sampling
thick slices on sub-planes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import Anatomy
from .draws import _u
from .protocols import Protocol
from .tissues import TISSUE_INDEX


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
                  even: bool = False, oblique: bool = True, target: np.ndarray | None = None) -> SliceGeometry:
    """Slice planes for a series; ``even`` spreads them over the coverage like a real series.
    ``target`` (world mm, ``draw_target``): an organ the series is centred on and covers."""
    res = max(proto.res, 1.0 if anat.region == "brain" else 1.5)
    tilt = _rotation(rng, 15.0 if rng.random() < 0.5 else 4.0) if oblique else np.eye(3)
    normal, up, right = (tilt @ np.array(v, float) for v in _PLANES[plane])
    target = None if target is None else np.asarray(target, float)
    centre = anat.fg_points.mean(axis=0) if target is None else target
    centre = centre + (rng.normal(scale=8.0, size=3) if oblique else 0.0)
    planes = tuple(str(rng.choice(list(_PLANES))) for _ in range(n_slices)) if proto.mixed_planes else (plane,) * n_slices
    if target is None:
        pos = _slice_positions(rng, anat, normal, centre, n_slices, even, brain_coverage=_brain_coverage(rng, anat, proto))
    else:
        pos = _target_positions(rng, normal, centre, target, n_slices, even)
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


def _target_positions(rng, normal: np.ndarray, centre: np.ndarray, target: np.ndarray, n: int,
                      even: bool = False) -> np.ndarray:
    """Offsets along the normal of slices that cover ``TARGET_COVERAGE_MM`` around an organ."""
    mid = float((target - centre) @ normal)
    half = _u(rng, *TARGET_COVERAGE_MM) / 2
    if even:
        return np.linspace(mid - half, mid + half, n)
    return np.sort(rng.uniform(mid - half, mid + half, size=n))


#: Probability of an axial, sagittal, coronal series, by habit: TOF angiography is acquired as axial
#: slabs, brain echo-planar series (diffusion, ADC, BOLD, ASL) as axial stacks, other 2D brain
#: series mostly axial; 3D brain volumes are read in three views anyway. Up to the simulator of
#: model 0.9, every brain series was 45% sagittal or coronal, echo-planar ones included. The
#: abdomen's single-shot T2 (HASTE) is as often coronal as axial.
PLANE_P = {"brain_3d": (0.55, 0.2, 0.25), "brain_2d": (0.75, 0.1, 0.15), "brain_epi": (0.92, 0.03, 0.05),
           "body": (0.75, 0.05, 0.2), "tof": (0.9, 0.05, 0.05), "haste": (0.5, 0.05, 0.45)}


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


#: An organ-targeted body series (a field of view in ``FOV_MM``'s smaller band,
#: ``TARGETED_FOV_MM``) is planned on an organ of the map where it has one
#: (``Anatomy.organ_centres``): centred on it, its slices covering ``TARGET_COVERAGE_MM`` around
#: it, as a prostate series runs from the seminal vesicles to the apex (ProstateX: 19 slices of
#: 3 mm). Until session 28 the small field of view was centred on the body and its slices fell
#: anywhere in 12-30 cm of pelvis, so simulated prostate series showed bladder and bowel where
#: real ones show the gland between the femoral heads.
TARGETED_FOV_MM = FOV_MM["body"][1][1:]
TARGET_COVERAGE_MM = (40.0, 85.0)


def draw_target(rng, anat: Anatomy, fov: float) -> np.ndarray | None:
    """The organ centre a series of this field of view is planned on, or None (a survey)."""
    if anat.region != "body" or fov > TARGETED_FOV_MM[1] or not anat.organ_centres:
        return None
    organs = sorted(anat.organ_centres)
    return np.asarray(anat.organ_centres[organs[rng.integers(len(organs))]], float)


#: Share of body series acquired with a reduced phase field of view, the fraction drawn, and the
#: least extent kept (mm): the field of view is cut along one in-plane axis. ProstateX's diffusion
#: series are 128 x 84 at 2 mm (65.6% phase field of view, 168 mm left-right), so the network
#: reads a strip through the pelvis, a shape no simulated series had. A head fits inside any
#: such field of view, so brain series are left whole.
PHASE_FOV = {"p": 0.5, "fraction": (0.55, 1.0), "min_mm": 120.0}


def crop_phase_fov(rng, img: np.ndarray, region: str, res: float) -> np.ndarray:
    """``img`` (n, H, W) of ``res`` mm pixels, a body series cut to a reduced phase field of view
    in ``PHASE_FOV["p"]`` of draws."""
    if region != "body" or rng.random() >= PHASE_FOV["p"]:
        return img
    return cut_phase_fov(img, *draw_phase_cut(rng), res)


def draw_phase_cut(rng) -> tuple[int, float]:
    """The image axis a reduced phase field of view cuts (1: rows, 2: columns) and the fraction kept."""
    return 1 + int(rng.integers(2)), _u(rng, *PHASE_FOV["fraction"])


def cut_phase_fov(img: np.ndarray, axis: int, fraction: float, res: float) -> np.ndarray:
    """``img`` (n, H, W) cut along ``axis`` (1: rows, 2: columns) to ``fraction`` of its extent,
    at least ``PHASE_FOV["min_mm"]``, centred."""
    n = img.shape[axis]
    keep = min(n, max(int(round(n * fraction)), int(PHASE_FOV["min_mm"] / res)))
    start = (n - keep) // 2
    return np.take(img, np.arange(start, start + keep), axis=axis)


def plane_probabilities(anat: Anatomy, proto: Protocol) -> tuple[float, float, float]:
    if proto.kind in PLANE_P:
        return PLANE_P[proto.kind]
    if anat.region != "brain":
        return PLANE_P[anat.region]
    return PLANE_P["brain_epi" if proto.epi else "brain_3d" if proto.is3d else "brain_2d"]
