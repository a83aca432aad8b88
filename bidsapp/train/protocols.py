"""What each class's series is: the ``Protocol`` record and the per-class acquisition draws.

A protocol fixes sequence, parameters, geometry and storage of one simulated series before any
image is made; ``CLASS_PROTOCOLS`` draws one per class label. The open set draws its own
(``open_set``) from the same geometry helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .draws import _u


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
    single_shot: bool = False  # whole image from one echo train (HASTE/SSFSE): T2 decay blurs the phase axis
    computed: bool = False  # calculated from a fit (high-b DWI): no noise floor outside the body


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


#: b-value (s/mm²) of the diffusion-weighted images an ADC map is fitted from, by region: brain
#: 700-1600 (b = 1000 is the clinical standard, 1500 common at 3 T), body 400-1000 (prostate and
#: liver protocols fit b 50-800 or 50-1000).
ADC_B = {"brain": (700.0, 1600.0), "body": (400.0, 1000.0)}


def _adc(rng, label: str) -> Protocol:
    """An ADC map, with the spin-echo EPI it is fitted from (``artefacts.fitted_adc``)."""
    region = "body" if label.startswith("body") else "brain"
    return Protocol(label, "adc", "adc", tr=_u(rng, 3000, 9000), te=_u(rng, 60, 110), b=_u(rng, *ADC_B[region]),
                    **_epi_geometry(rng, res=DIFFUSION_RES[region]))


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


#: Share of body T2w series acquired single-shot (HASTE / SSFSE), by label: the abdomen's
#: breath-hold T2, often coronal. Up to 0.15.0 every body T2w was a multi-shot TSE, and a real
#: coronal renal HASTE was named body-DWI (blurred, grainy, bright fluid: what EPI looks like).
SINGLE_SHOT_P = {"body-T2w": 0.35, "body-T2w-fs": 0.2}


def _body_t2(rng, label: str) -> Protocol:
    g = _geometry(rng, p3d=0.1, thick2d=(3, 8), res=(0.5, 1.6))
    fs = _u(rng, 0.02, 0.2) if label == "body-T2w-fs" else 1.0
    if label == "body-T2w-fs" and rng.random() < 0.3:  # STIR
        return Protocol(label, "stir", "ir", tr=_u(rng, 3000, 6000), te=_u(rng, 40, 80), ti=-2.0, flow="void", **g)
    if rng.random() < SINGLE_SHOT_P[label]:
        return Protocol(label, "haste", "se", tr=_u(rng, 1000, 2500), te=_u(rng, 70, 120), fat_sat=fs, flow="void",
                        single_shot=True, **{**g, "is3d": False, "thickness": _u(rng, 4, 8), "res": _u(rng, 1.0, 1.8),
                                             "snr": _u(rng, 10, 40)})
    return Protocol(label, "body_tse_t2", "se", tr=_u(rng, 1200, 6000), te=_u(rng, 70, 140), fat_sat=fs,
                    flow="void", **g)


#: Share of body DWI series that are calculated high-b images (PI-RADS asks b >= 1400, usually
#: extrapolated from b 50-1000 on the scanner): smooth, no noise floor outside the body. Both real
#: ProstateX calculated b1400 images were refused by 0.15.0, which never saw one.
COMPUTED_B = {"p": 0.25, "b": (1400.0, 2000.0), "snr": (40.0, 120.0)}


def _body_dwi(rng, label: str) -> Protocol:
    p = replace(_dwi(rng, label), kind="body_dwi", b=_u(rng, 400, 2000), raw_direction=False,
                **_epi_geometry(rng, thick=(3, 8), res=DIFFUSION_RES["body"]))
    if rng.random() < COMPUTED_B["p"]:
        return replace(p, kind="body_dwi_calc", b=_u(rng, *COMPUTED_B["b"]), b0_mix=0.0, computed=True,
                       snr=_u(rng, *COMPUTED_B["snr"]))
    return p


#: Class label → protocol generator. Body and brain classes draw from their own anatomy.
CLASS_PROTOCOLS = {
    "T1w": _t1_brain, "T1wce": _t1_brain, "T2w": _t2_brain, "FLAIR": _flair, "ADC": _adc,
    "SWI": _swi, "DWI": _dwi, "body-T1w": _body_t1, "body-T1w-arterial": _body_t1,
    "body-T1w-venous": _body_t1, "body-T1w-delayed": _body_t1, "body-T2w": _body_t2,
    "body-T2w-fs": _body_t2, "body-DWI": _body_dwi, "body-ADC": _adc,
}
