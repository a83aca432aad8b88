"""The header a scanner would have written for a simulated series (issue 39).

The fused decision (``bidsapp.decide``) hears two witnesses: the image and the scanner-written
acquisition fields. To choose its margin and threshold without real data, each simulated series
gets the header its ``protocols.Protocol`` implies: ScanningSequence, SequenceVariant,
ScanOptions, MRAcquisitionType, sequence name, TR/TE/TI/flip, echoes, b-values, ImageType,
volumes, slice orientations, body part and coil.

Realism over coverage. A vendor is drawn per series and writes in its own style (``STYLES``;
Siemens, GE and Philips conventions as the development set's real headers and docs/physics.md
show them). Fields go missing as they do on real data (``DROP_P``: de-identification strips private
tags, sidecars carry no slice orientations) and a share of series carry no physics at all
(``SOURCE_P``: NIfTI without a sidecar, DICOMs rebuilt from NIfTI), so the physics witness is
silent as often as it is on real inputs. Typed text (SeriesDescription, ProtocolName) is never
written: it is no witness, and a simulated one would only echo the label.

Sequence names are illustrative except where a physics rule reads them (Siemens ``fm2d``,
``epfid``, ``tgse``, ``fl3d…_t``, ``swi3d``; GE ``B0map``; Philips ``FEEPI``): those are the
vendors' own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..records import HeaderFacts
from .open_set import OTHER_KINDS
from .protocols import Protocol
from .tissues import TISSUES

SIEMENS, GE, PHILIPS = "SIEMENS", "GE MEDICAL SYSTEMS", "Philips Medical Systems"
#: Vendor shares of a drawn series (installed base, roughly).
VENDOR_P = {SIEMENS: 0.45, GE: 0.30, PHILIPS: 0.25}

#: Where the header comes from. "dicom": every field the discovery tally reads; "sidecar": a
#: dcm2niix JSON beside a NIfTI (no slice orientations); "none": no physics at all (a NIfTI
#: without a sidecar, a pre-processed dataset, a DICOM rebuilt from NIfTI as DERIVED\\SECONDARY).
#: The development set's 29 real series are 16 bare NIfTI and 13 DICOM; a clinical archive has
#: fewer bare series, so a quarter.
SOURCE_P = {"dicom": 0.60, "sidecar": 0.15, "none": 0.25}

#: Chance that one field is missing from a header that has physics: private tags (the sequence
#: name of GE and Philips) go with de-identification, anonymisers blank BodyPartExamined and the
#: coil, converters drop ScanOptions or MRAcquisitionType. b-values are never dropped: they are
#: public DICOM and dcm2niix writes them, and a DWI without them reads as a T2 spin echo.
DROP_P = {"sequence_name": 0.3, "scan_options": 0.15, "sequence_variant": 0.1, "mr_acquisition_type": 0.1,
          "repetition_time": 0.05, "echo_times": 0.05, "inversion_time": 0.1, "flip_angle": 0.05,
          "n_volumes": 0.1, "body_part": 0.4, "receive_coil": 0.4}
SIDECAR_LACKS = ("n_orientations",)


@dataclass(frozen=True)
class Style:
    """How one vendor writes one family of acquisitions (one alternative drawn where several)."""

    sequence: str  # ScanningSequence
    variant: str  # SequenceVariant
    names: tuple[str, ...]  # sequence names ("{b}": the b-value)
    image_types: tuple[tuple[str, ...], ...]  # ImageType alternatives
    options: str = ""  # ScanOptions beside FS


_S_M = ("ORIGINAL", "PRIMARY", "M", "ND")
_GE_M = ("ORIGINAL", "PRIMARY", "OTHER")
_P_SE = ("ORIGINAL", "PRIMARY", "M_SE", "M", "SE")
_P_FFE = ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE")

#: Family → vendor → style. Families are what the header tells apart, not the simulator's kinds.
STYLES: dict[str, dict[str, Style]] = {
    "se": {SIEMENS: Style("SE", "SK\\SP\\OSP", ("*tse2d1_15", "*se2d1", "*spc3d1"), (_S_M,), "PFP"),
           GE: Style("SE", "SK", ("fse-xl", "fse"), (_GE_M,), "FAST_GEMS"),
           PHILIPS: Style("SE", "SK", ("TSE", "SE"), (_P_SE,))},
    "ir": {SIEMENS: Style("SE\\IR", "SK\\SP\\MP", ("*tir2d1_21", "*spcir_278"), (_S_M,)),
           GE: Style("SE\\IR", "SK", ("fse-ir", "Cube"), (_GE_M,), "FAST_GEMS\\IR_GEMS"),
           PHILIPS: Style("IR", "SK", ("TSE", "IR"), (_P_SE,))},
    "mprage": {SIEMENS: Style("GR\\IR", "SK\\SP\\MP", ("*tfl3d1_16ns",), (_S_M,)),
               GE: Style("GR", "SS\\SK", ("efgre3d", "BRAVO"), (_GE_M,), "FAST_GEMS\\EDR_GEMS\\IR_GEMS"),
               PHILIPS: Style("GR", "MP", ("T1TFE",), (_P_FFE,), "OTHER")},
    "spgr": {SIEMENS: Style("GR", "SP", ("*fl2d1", "*fl3d1", "*tfl3d1_16"), (_S_M,)),
             GE: Style("GR", "SS\\SP", ("fspgr", "efgre3d"), (_GE_M,), "FAST_GEMS"),
             PHILIPS: Style("GR", "SP", ("T1FFE", "FFE"), (_P_FFE,))},
    "dwi": {SIEMENS: Style("EP", "SK\\SP\\OSP", ("*ep_b{b}t", "*ep_b0_{b}"), (
                ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"), ("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW")), "PFP"),
            GE: Style("EP\\SE", "NONE", ("epi2",), (_GE_M,), "EPI_GEMS"),
            PHILIPS: Style("SE", "SK", ("DwiSE",), (_P_SE, ("DERIVED", "PRIMARY", "ISOTROPIC", "M", "SE")), "PFP")},
    "adc": {SIEMENS: Style("EP", "SK\\SP\\OSP", ("*ep_b0_{b}",), (("DERIVED", "PRIMARY", "DIFFUSION", "ADC"),), "PFP"),
            GE: Style("EP\\SE", "NONE", ("epi2",), (("DERIVED", "PRIMARY", "ADC"), ("DERIVED", "SECONDARY"))),
            PHILIPS: Style("SE", "SK", ("DwiSE",), (("DERIVED", "PRIMARY", "ADC", "ADC"),), "PFP")},
    "fa": {SIEMENS: Style("EP", "SK\\SP\\OSP", ("*ep_b0_{b}",), (("DERIVED", "PRIMARY", "DIFFUSION", "FA"),), "PFP"),
           GE: Style("EP\\SE", "NONE", ("epi2",), (("DERIVED", "PRIMARY", "FA"), ("DERIVED", "SECONDARY"))),
           PHILIPS: Style("SE", "SK", ("DwiSE",), (("DERIVED", "PRIMARY", "FA", "FA"),), "PFP")},
    "swi": {SIEMENS: Style("GR", "SP", ("*swi3d1r",), (("ORIGINAL", "PRIMARY", "M", "SWI"), ("DERIVED", "PRIMARY", "MNIP"))),
            GE: Style("GR", "SS\\SP", ("swan",), (("ORIGINAL", "PRIMARY", "SWAN"), ("DERIVED", "PRIMARY", "SWAN", "MNIP"))),
            PHILIPS: Style("GR", "SP", ("FFE", "T2FFE"), (_P_FFE,))},
    "fmap": {SIEMENS: Style("GR", "SP", ("*fm2d2r",), (_S_M,)),
             GE: Style("RM", "NONE", ("B0map", "B0rf"), (_GE_M,), "VB_GEMS"),
             PHILIPS: Style("GR", "SP", ("T1FFE", "FFE"), (_P_FFE,))},
    "fmap_phase": {SIEMENS: Style("GR", "SP", ("*fm2d2r",), (("ORIGINAL", "PRIMARY", "P", "ND"),)),
                   GE: Style("RM", "NONE", ("B0map",), (_GE_M,), "VB_GEMS"),
                   PHILIPS: Style("GR", "SP", ("T1FFE", "FFE"), (("ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"),))},
    "epi_gre": {SIEMENS: Style("EP", "SK", ("*epfid2d1_64",), (("ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"),)),
                GE: Style("EP\\GR", "SS", ("epiRT", "epi"), (_GE_M,), "EPI_GEMS"),
                PHILIPS: Style("GR", "SK", ("FEEPI",), (_P_FFE,))},
    "asl": {SIEMENS: Style("EP", "SK", ("*epfid2d1_64", "tgse3d1_512"), (_S_M, ("DERIVED", "PRIMARY", "ASL"))),
            GE: Style("GR", "NONE", ("3dasl",), (_GE_M, ("DERIVED", "PRIMARY", "CBF"))),
            PHILIPS: Style("GR", "SK", ("GraSE", "FEEPI"), (
                _P_FFE, ("ORIGINAL", "PRIMARY", "PERFUSION_FFE", "PERFUSION", "FFE")))},
    "tof": {SIEMENS: Style("GR", "SP", ("*fl3d1r_t70",), (_S_M, ("DERIVED", "PRIMARY", "MIP_TRA"))),
            GE: Style("GR", "SS\\SP", ("tof3d",), (_GE_M,), "FAST_GEMS\\MT_GEMS"),
            PHILIPS: Style("GR", "SP", ("FFE", "T1FFE"), (_P_FFE,))},
    "localizer": {SIEMENS: Style("GR", "SP", ("*fl2d1",), (("ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"),)),
                  GE: Style("GR", "SS\\SP", ("3-plane",), (("ORIGINAL", "PRIMARY", "LOCALIZER"),)),
                  PHILIPS: Style("GR", "SP", ("FFE",), (_P_FFE,))},
    "unknown": {v: Style("", "", ("",), (("ORIGINAL", "PRIMARY"),)) for v in VENDOR_P},
}

#: Protocol kind → header family where the kind decides what a scanner writes; else its seq does.
_FAMILY_OF_KIND = {"tof": "tof", "fmap_mag": "fmap", "localizer": "localizer", "fmri": "epi_gre",
                   "b0_epi_short": "epi_gre", "asl_m0": "asl"}
_FAMILY_OF_SEQ = {"se": "se", "ir": "ir", "mprage": "mprage", "gre": "spgr", "dwi": "dwi", "adc": "adc", "fa": "fa",
                  "swi": "swi", "fmap_phase": "fmap_phase", "asl": "asl", "noise": "unknown", "ct": "unknown"}

#: Volumes at one slice position (time points, directions, label/control pairs), by family.
VOLUMES = {"epi_gre": (100, 600), "asl": (20, 120), "dwi": (7, 65), "fmap": (2, 3)}

BODY_PARTS = {"brain": ("HEAD", "BRAIN"), "body": ("ABDOMEN", "PELVIS", "PROSTATE", "LIVER")}
COILS = {SIEMENS: {"brain": ("HEA;HEP", "Head_32", "HC1-7"), "body": ("BO1,2;SP5", "Body_18")},
         GE: {"brain": ("8HRBRAIN", "HNS Head"), "body": ("TORSOPA", "32Ch Body")},
         PHILIPS: {"brain": ("SENSE-Head-8", "MULTI COIL"), "body": ("SENSE-Torso", "MULTI COIL")}}
#: Share of "other" series drawn on the body (``simulate.simulate_sample``'s 0.3).
BODY_OTHER_SHARE = 0.3


def header_of(protocol: Protocol, rng: np.random.Generator, region: str | None = None) -> HeaderFacts:
    """The header a scanner would write for a series rendered with ``protocol`` (see module doc).
    ``region``: "brain" | "body"; by default the label's, or for "other" drawn as the simulator does."""
    source = _pick(rng, SOURCE_P)
    if source == "none":
        return HeaderFacts(image_type=("DERIVED", "SECONDARY") if rng.random() < 0.5 else ())
    vendor = _pick(rng, VENDOR_P)
    if protocol.seq == "ct":
        return HeaderFacts(modality="CT", manufacturer=vendor, image_type=("ORIGINAL", "PRIMARY", "AXIAL"))
    fields = scanner_fields(protocol, vendor, region or region_of(protocol, rng), rng)
    drop = set(SIDECAR_LACKS if source == "sidecar" else ())
    drop |= {name for name, p in DROP_P.items() if rng.random() < p}
    return HeaderFacts(**{k: v for k, v in fields.items() if k not in drop})


def family_of(protocol: Protocol) -> str:
    return _FAMILY_OF_KIND.get(protocol.kind) or _FAMILY_OF_SEQ[protocol.seq]


def region_of(protocol: Protocol, rng: np.random.Generator) -> str:
    """The label's region; for "other", body with the posterior share of its kind (``OTHER_KINDS``)."""
    if protocol.label != "other":
        return "body" if protocol.label.startswith("body-") else "brain"
    brain_w, body_w = (OTHER_KINDS.get(protocol.kind, (1.0, 1.0))[i] / sum(w[i] for w in OTHER_KINDS.values())
                       for i in (0, 1))
    p_body = BODY_OTHER_SHARE * body_w / (BODY_OTHER_SHARE * body_w + (1 - BODY_OTHER_SHARE) * brain_w)
    return "body" if rng.random() < p_body else "brain"


def scanner_fields(p: Protocol, vendor: str, region: str, rng) -> dict:
    """Every HeaderFacts field ``vendor`` writes for ``p``, before anything is lost."""
    family = family_of(p)
    style = STYLES[family][vendor]
    b = int(round(p.b or 1000))
    image_type = _image_type(p, family, style, rng)
    return dict(
        manufacturer=vendor, field_strength=p.field,
        scanning_sequence=style.sequence, sequence_variant=style.variant,
        scan_options="\\".join(filter(None, (style.options, "FS" if p.fat_sat < 1 else ""))),
        mr_acquisition_type="3D" if p.is3d else "2D",
        sequence_name=str(rng.choice(style.names)).format(b=b),
        image_type=image_type, repetition_time=_tr(p), echo_times=_echoes(p, family),
        inversion_time=_ti(p, vendor), flip_angle=None if family == "unknown" else round(p.flip, 1),
        b_values={"dwi": (0.0, float(b)), "adc": (float(b),), "fa": (float(b),)}.get(family, ()),
        n_volumes=_volumes(p, family, image_type, rng), n_orientations=3 if p.mixed_planes else 1,
        body_part=str(rng.choice(BODY_PARTS[region])), receive_coil=str(rng.choice(COILS[vendor][region])),
    )


def _pick(rng, shares: dict[str, float]) -> str:
    keys = list(shares)
    w = np.array([shares[k] for k in keys])
    return str(keys[rng.choice(len(keys), p=w / w.sum())])


#: Families whose ImageType alternative (of two) follows the protocol, not chance: the second for
#: trace diffusion, minimum-intensity projections, TOF MIPs.
_SECOND_TYPE = {"dwi": lambda p: not p.raw_direction, "swi": lambda p: p.combine == "min",
                "tof": lambda p: p.combine == "max"}


def _image_type(p: Protocol, family: str, style: Style, rng) -> tuple[str, ...]:
    alternatives = style.image_types
    if family in _SECOND_TYPE and len(alternatives) == 2:
        return alternatives[int(_SECOND_TYPE[family](p))]
    return alternatives[rng.integers(len(alternatives))]


def _tr(p: Protocol) -> float | None:
    return None if p.seq in ("adc", "fa", "noise") else round(p.tr, 2)


def _echoes(p: Protocol, family: str) -> tuple[float, ...]:
    if family in ("adc", "fa", "unknown"):
        return ()
    if family == "fmap":  # dual-echo gradient-echo field map: the second echo 2.46 ms later (in phase at 3 T)
        return (round(p.te, 2), round(p.te + 2.46, 2))
    return (round(p.te, 2),)


#: Sentinel TIs of ``protocols`` (-1: null CSF, FLAIR; -2: null fat, STIR) → the tissue nulled.
_NULLED = {-1.0: "csf", -2.0: "fat"}


def _ti(p: Protocol, vendor: str) -> float | None:
    """The nominal TI: MPRAGE's own; for FLAIR and STIR the null point of CSF or fat at this TR and
    field, T1·ln(2 / (1 + e^(−TR/T1))), as the simulator renders (Philips T1TFE writes none)."""
    if p.seq == "mprage":
        return None if vendor == PHILIPS else round(p.ti, 1)
    if p.ti not in _NULLED:
        return None
    tissue = TISSUES[_NULLED[p.ti]]
    t1 = tissue.t1_3 if p.field >= 2 else tissue.t1_15
    return round(t1 * math.log(2.0 / (1.0 + math.exp(-p.tr / t1))), 1)


def _volumes(p: Protocol, family: str, image_type: tuple[str, ...], rng) -> int:
    """Volumes at one slice position: acquired time series, directions and field-map echoes have
    several; a derived image (a subtracted ASL, a trace) and one b=0 EPI reference have one."""
    if family not in VOLUMES or image_type[0] != "ORIGINAL" or p.kind == "b0_epi_short":
        return 1
    return int(rng.integers(*VOLUMES[family]))
