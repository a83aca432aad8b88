"""Signal equations: each tissue's signal under a protocol (spin echo, GRE, IR, MPRAGE, diffusion, maps, CT).

The per-tissue lookup table that rendering paints onto the sampled tissue maps, including
gadolinium relaxation, fat suppression and flow. Equations and sources: docs/simulator.md.
"""

from __future__ import annotations

import math

import numpy as np

from .draws import _u
from .protocols import Protocol
from .tissues import (_ARTERIAL, _FLOW, _IS_BRAIN, _MT_SUPPRESSED, _T, N_TISSUES, TISSUE_INDEX, TISSUE_NAMES,
                      TissueParams)


#: Gadolinium excreted into urine in the delayed phase (mM): share of delayed series that show it
#: and the concentration range. The kidneys filter the agent from the first pass on; from about
#: 2-3 minutes it reaches the calyces, pelvis and bladder (the excretory phase; CT and MR
#: urography image it), concentrated far above plasma: bright on T1w gradient echo, dark where
#: so concentrated that T2* wins; in the bladder diluted by the urine already there (``ex`` 0.03).
#: Arterial and venous images (under 90 s) show none.
EXCRETION = {"p": 0.75, "mM": (1.0, 15.0)}


def gd_concentration(rng, phase: str) -> np.ndarray:
    """Tissue gadolinium concentration (mM) per tissue: vp·C_blood + ve·C_extracellular, plus
    ex·C_urine in the delayed phase (``EXCRETION``)."""
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
    c_urine = _u(rng, *EXCRETION["mM"]) if phase == "delayed" and rng.random() < EXCRETION["p"] else 0.0
    c_blood = np.where(_ARTERIAL, c_a, c_v)
    return _T["vp"] * c_blood + _T["ve"] * c_e + _T["ex"] * c_urine


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
      "oedema": 0.2, "tumour": 0.15, "necrosis": 0.08, "fluid": 0.05, "urine": 0.05, "bladder_urine": 0.05}


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
        hu = {"air": -1000, "bone": 1200, "marrow": 300, "fat": -100, "csf": 5, "lung": -800, "fluid": 5, "urine": 5, "bladder_urine": 5,
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
