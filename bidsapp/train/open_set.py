"""The "other" kinds: series the model must not force into a class (the open set), and their weights by region.

Kept apart from the class protocols because what counts as "other" grows with what real data
the model is refused on; ``synthetic_header`` reads ``OTHER_KINDS`` to give each kind its header.
"""

from __future__ import annotations

import numpy as np

from .draws import _u
from .protocols import Protocol, _epi_geometry, _ernst, _geometry


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
    "b0_epi_short": (1.0, 1.0), "fa": (1.5, 0.0), "asl_m0": (1.5, 0.0),
}

#: ASL's M0 reference: the readout of the ASL run (2D EPI or 3D GRASE) without labelling, at long TR
#: and short TE, so proton-density weighted and grainy. Two real M0 volumes were named DWI by
#: 0.15.0, whose open set held ASL subtractions but no M0.
ASL_M0 = {"tr": (2000.0, 8000.0), "te": (9.0, 20.0), "grase_p": 0.4}


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
    if kind == "asl_m0":
        seq = "se" if rng.random() < ASL_M0["grase_p"] else "gre"
        return Protocol("other", kind, seq, tr=_u(rng, *ASL_M0["tr"]), te=_u(rng, *ASL_M0["te"]), flip=90.0,
                        **{**_epi_geometry(rng, thick=(3, 6), res=(2.5, 4.0)), "snr": _u(rng, 8, 30)})
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
