"""Physics-based MR simulator: label maps of real anatomy → native-plane slice stacks.

This module composes the pieces. Each lives in its own module and imports only those listed
before it, so imports run one way: ``tissues``, ``draws``, ``anatomy``, ``phantom``,
``label_maps``, ``protocols``, ``open_set``, ``sequences``, ``geometry``, ``appearance``,
``artefacts``, then this module. One training example is made in four steps, each randomised
(domain randomisation, SynthSeg-style but with MR physics so contrast *relationships* are right):

1. ``Protocol`` (``protocols``, ``open_set``): a class (or an "other" kind) picks a sequence and
   its parameters: spin echo, spoiled gradient echo, inversion recovery (FLAIR nulls the CSF T1
   *drawn for this image*), MPRAGE-like, diffusion EPI (b, trace or raw direction), ADC map, SWI
   (long-TE GRE, minIP), gadolinium phases.
2. Tissue parameters (``tissues``, ``sequences``): every tissue's PD/T1/T2/T2*/ADC from
   ``tissues.TISSUES`` jittered ±20%, at 1.5 T or 3 T; gadolinium shortens T1/T2 by
   relaxivity × concentration (R1 = R1₀ + r1·C).
3. Geometry (``geometry``): plane (axial/sagittal/coronal) plus oblique tilt, anatomy scaling,
   slice thickness 0.8-7 mm (sub-planes averaged, or minimum for SWI minIP), in-plane
   resolution, FOV (an organ-targeted body series centred on its organ, body series often with a
   reduced phase FOV); the tissue map is sampled on each slice grid (nearest label) and the signal
   equation applied per sub-plane, so partial volume arises from the geometry.
4. Appearance, artefacts and storage (``appearance``, ``artefacts``): texture, bias field, Rician
   noise, ghosting, skull stripping, uint8 / int16 rescaling, z-scoring with a constant
   background (BraTS-like pre-processed data).

The stack then goes through ``bidsapp.volume.normalise_stack``, the same function inference uses.
Signal equations and literature values: docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..classes import LABELS
from ..volume import SPEC, InputSpec, geometry_features, normalise_stack
from .anatomy import Anatomy, with_lesions
from .appearance import TEXTURE, _mix_lumped_soft_tissue, _tissue_texture, _with_arteries, directional_diffusion
from .artefacts import (BIAS_CORRECTED_P, PARTIAL_SLAB, _artefacts, _storage, bold_dropout, draw_skull_stripped, fitted_adc,
                        slab_coverage, stored_voxel_size)
from .draws import _smooth_field
from .geometry import (_PLANES, SliceGeometry, crop_phase_fov, draw_fov, draw_target, plan_geometry, plane_probabilities,
                       sample_tissue_slices)
from .label_maps import split_heads, training_anatomies  # noqa: F401  benchmarks/studies read them from here
from .open_set import _other
from .protocols import CLASS_PROTOCOLS, Protocol
from .sequences import tissue_signal
from .tissues import _IS_BRAIN, TISSUE_INDEX, TissueParams, _idx, draw_tissue_params


def draw_geometry(rng, anat: Anatomy, proto: Protocol, n_slices: int, plane: str | None = None,
                  fov: float | None = None) -> tuple[SliceGeometry, np.ndarray]:
    """Where one series' slices lie, as training draws it: plane (unless given), field of view,
    planning on a target, then the anatomy's scaling (±12% per axis). ``render`` draws with it, and
    probes that need the slices' tissue as well call it themselves with the same ``rng``."""
    plane = plane or str(rng.choice(list(_PLANES), p=plane_probabilities(anat, proto)))
    fov = fov or draw_fov(rng, anat)
    geo = plan_geometry(rng, anat, proto, n_slices, plane, fov, target=draw_target(rng, anat, fov))
    return geo, np.diag(rng.uniform(0.88, 1.12, size=3))


def render(rng, anat: Anatomy, proto: Protocol, n_slices: int, plane: str | None = None,
           fov: float | None = None, *, geometry: SliceGeometry | None = None, scale: np.ndarray | None = None,
           tissue_params: TissueParams | None = None, stripped: bool | None = None, storage: bool = True):
    """Simulate ``n_slices`` slices of one series: (n, H, W) magnitude images and their geometry.

    Training draws everything (``draw_geometry``). The example study passes a fixed ``geometry``
    and ``tissue_params`` so that every volume of a 4D series shares slices and tissue values; a
    probe passes the ``geometry`` and ``scale`` it drew to know which tissue the slices hold."""
    if geometry is None:
        geo, scale = draw_geometry(rng, anat, proto, n_slices, plane, fov)
    else:
        geo = geometry
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
        sub = directional_diffusion(rng, sub, tissue, proto.b, geo.res)
    if proto.seq == "fa":  # fibre coherence: tracts near 0.8, crossings and the periphery near 0.3
        wm = np.isin(tissue, _idx("wm"))
        field_ = _smooth_field(rng, tissue.shape[2:], 4, 1.0)[None, None]
        sub = np.where(wm, np.clip(sub * (1.0 + 0.5 * field_), 0.2, 0.95), sub)
        scalp = ~_IS_BRAIN[tissue] & (tissue != TISSUE_INDEX["air"])  # little signal at b=1000: speckled FA
        sub = np.where(scalp, rng.uniform(0.05, 0.7, sub.shape).astype(np.float32), sub)
    sub = _tissue_texture(rng, sub, geo.res, TEXTURE[anat.region])
    combine = {"mean": np.mean, "min": np.min, "max": np.max}[proto.combine]
    brain_mask = (tissue != TISSUE_INDEX["air"]).any(axis=1)
    if proto.seq == "adc":  # fitted from the b=0 and diffusion-weighted signal (sub holds each tissue's ADC)
        s0 = tissue_signal(rng, replace(proto, seq="dwi", b=0.0, b0_mix=0.0), tp)[tissue]
        img = fitted_adc(rng, combine(s0, axis=1), combine(s0 * np.exp(-proto.b / 1000 * sub), axis=1), proto, brain_mask)
    else:
        img = combine(sub, axis=1)
        if proto.epi and proto.seq == "gre" and anat.region == "brain":
            img = img * bold_dropout(rng, anat, proto, geo, scale)
        img = _artefacts(rng, img, proto, brain_mask, anat.region, geo.res,
                         bias_corrected=stripped and rng.random() < BIAS_CORRECTED_P, stripped=stripped)
    if stripped:
        img[~_IS_BRAIN[tissue].any(axis=1)] = 0.0
        if rng.random() < PARTIAL_SLAB["p"]:
            img[~slab_coverage(rng, anat, proto, geo, scale)] = 0.0
    return (_storage(rng, img, stripped) if storage else img), geo


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


def draw_weights(emphasis: dict[str, float] | None = None) -> tuple[list[str], np.ndarray]:
    """Training targets and their draw probabilities: ``TARGET_WEIGHTS`` times the
    ``emphasis`` factors (``mrclass-bids-train --class-weight``; none: the simulator's own mix,
    which validation always keeps)."""
    emphasis = emphasis or {}
    targets = list(TARGET_WEIGHTS)
    w = np.array([TARGET_WEIGHTS[t] * emphasis.get(t, 1.0) for t in targets])
    return targets, w / w.sum()


def simulate_sample(rng, anatomies: list[Anatomy], n_slices: int, spec: InputSpec = SPEC,
                    label: str | None = None, protocol: Protocol | None = None,
                    emphasis: dict[str, float] | None = None) -> Sample:
    """One random training example of any class or of the open set (of ``label`` when given,
    else drawn by ``draw_weights(emphasis)``; acquired with ``protocol`` when given, e.g. one
    open-set kind for a diagnostic, whose label is then the protocol's)."""
    if protocol is not None:
        label = protocol.label
    if label is None:
        targets, p = draw_weights(emphasis)
        label = str(rng.choice(targets, p=p))
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
    slices = crop_phase_fov(rng, slices, anat.region, geo.res)
    geometry = geometry_features(*stored_voxel_size(rng, proto, stripped))
    return Sample(normalise_stack(slices, geo.res, geo.res, spec), geometry, label, proto)


def label_index(label: str) -> int:
    """Training target: index into classes.LABELS, or -1 for the open set."""
    return LABELS.index(label) if label in LABELS else -1
