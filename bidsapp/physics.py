"""The physics witness: which classes the scanner's own acquisition fields allow.

Reads only what the machine writes (ImageType/FrameType, ScanningSequence, SequenceVariant,
ScanOptions, MRAcquisitionType, sequence names, TR/TE/TI, flip angle, echoes, b-values,
volumes, slice orientations, AcquisitionContrast, coil and BodyPartExamined). Typed text
(SeriesDescription, ProtocolName, file names, ContrastBolusAgent) never reaches it: rules see
an :class:`Acquisition`, which has no field for text.

It speaks only on positive, specific evidence and is otherwise **silent**: a missing value,
``DERIVED\\SECONDARY`` alone, or "EPI" alone proves nothing (a T1w rebuilt from NIfTI has no
physics; an SE-EPI field map and a b=0 volume are EPI too). The first rule of ``RULES`` whose
every condition holds decides; ranges and vendor conventions are cited in ``docs/physics.md``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from bidsapp.classes import OTHER
from bidsapp.records import HeaderFacts

SILENT = "unknown"

Range = tuple[float | None, float | None]  # inclusive lower, exclusive upper; None = open

#: A kind (what the acquisition is) → the classes it allows in each region.
KIND_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "T1": {"brain": ("T1w", "T1wce"),
           "body": ("body-T1w", "body-T1w-arterial", "body-T1w-venous", "body-T1w-delayed")},
    "T2": {"brain": ("T2w",), "body": ("body-T2w", "body-T2w-fs")},
    "T2fs": {"brain": ("T2w",), "body": ("body-T2w-fs",)},
    "STIR": {"body": ("body-T2w-fs",)},
    "FLAIR": {"brain": ("FLAIR",)},
    "SWI": {"brain": ("SWI",)},
    "DWI": {"brain": ("DWI",), "body": ("body-DWI",)},
    "ADC": {"brain": ("ADC",), "body": ("body-ADC",)},
    OTHER: {"brain": (OTHER,), "body": (OTHER,)},
    # "other" for the content classes, but BIDS has a place for them (``naming.PLACED_OTHER``)
    "bold": {"brain": (OTHER,), "body": (OTHER,)},
    "fmap_magnitude": {"brain": (OTHER,), "body": (OTHER,)},
    "fmap_phasediff": {"brain": (OTHER,), "body": (OTHER,)},
    "fmap_epi": {"brain": (OTHER,), "body": (OTHER,)},
    "fmap_fieldmap": {"brain": (OTHER,), "body": (OTHER,)},
    # "other", and a BIDS place (perf/) whose required fields scanners rarely write (``naming.placement_problem``)
    "asl": {"brain": (OTHER,), "body": (OTHER,)},
}


@dataclass(frozen=True)
class Acquisition:
    """The scanner-written physics of a series; deliberately no typed text."""

    modality: str = "MR"
    manufacturer: str = ""
    image_type: tuple[str, ...] = ()  # every ImageType/FrameType token of the series
    scanning_sequence: str = ""
    sequence_variant: str = ""
    scan_options: str = ""
    mr_acquisition_type: str = ""
    sequence_name: str = ""
    repetition_time: float | None = None
    echo_times: tuple[float, ...] = ()
    inversion_time: float | None = None
    flip_angle: float | None = None
    b_values: tuple[float, ...] = ()
    n_volumes: int | None = None
    n_orientations: int | None = None
    acquisition_contrast: tuple[str, ...] = ()
    receive_coil: str = ""
    body_part: str = ""
    labeling_type: str = ""  # ArterialSpinLabelingType of a converter's sidecar

    @classmethod
    def of(cls, facts: HeaderFacts) -> "Acquisition":
        echoes = facts.echo_times or ((facts.echo_time,) if facts.echo_time is not None else ())
        return cls(
            modality=facts.modality, manufacturer=facts.manufacturer.upper(),
            image_type=tuple(dict.fromkeys(facts.image_type + facts.frame_types)),
            scanning_sequence=facts.scanning_sequence, sequence_variant=facts.sequence_variant,
            scan_options=facts.scan_options, mr_acquisition_type=facts.mr_acquisition_type,
            sequence_name=facts.sequence_name, repetition_time=facts.repetition_time, echo_times=echoes,
            inversion_time=facts.inversion_time, flip_angle=facts.flip_angle, b_values=facts.b_values,
            n_volumes=facts.n_volumes, n_orientations=facts.n_orientations,
            acquisition_contrast=facts.acquisition_contrast, receive_coil=facts.receive_coil,
            body_part=facts.body_part, labeling_type=facts.labeling_type,
        )

    # ---- derived evidence, each a plain reading of the fields above

    def tokens(self, value: str) -> frozenset[str]:
        return frozenset(t for t in re.split(r"[\\/ ,]+", value.upper()) if t)

    @property
    def inversion(self) -> bool:
        """An inversion pulse, as ScanningSequence (IR), GE's ScanOptions (IR_GEMS) or a recorded
        inversion time of 50 ms or more say (vendors write 0 or nothing without one)."""
        return "IR" in self.tokens(self.scanning_sequence) or bool(
            {"IR", "IR_GEMS"} & self.tokens(self.scan_options)) or (self.inversion_time or 0.0) >= 50.0

    @property
    def diffusion_weighted(self) -> bool:
        """Some b-value above 50 s/mm² (Philips writes b≈0.001 on b=0 frames)."""
        return any(b > 50 for b in self.b_values)

    @property
    def flip_over_ernst(self) -> float | None:
        """Flip angle over the Ernst angle of a T1 = 1000 ms tissue at this TR.

        A spoiled gradient echo is T1-weighted well above the Ernst angle and proton-density
        weighted well below it (Ernst 1966; variable-flip-angle references use a few degrees)."""
        if self.flip_angle is None or not self.repetition_time or self.repetition_time <= 0:
            return None
        ernst = math.degrees(math.acos(math.exp(-self.repetition_time / 1000.0)))
        return self.flip_angle / ernst if ernst > 0 else None

    def used(self) -> dict[str, Any]:
        """The fields that were present, for the sidecar's record of what was read."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, "", ())}


@dataclass(frozen=True)
class PhysicsRule:
    """One row of the physics table: every condition given must hold, with the values present.

    ``flags``: any of these ImageType/FrameType tokens (``flag_prefixes``: a token starting so);
    ``sequence``/``variant``: any of these ScanningSequence/SequenceVariant tokens; ``not_*``:
    none of them; ``name``: a regex on the scanner's sequence name; ``vendor``: Manufacturer
    contains it; numeric ranges need the value present (absent never satisfies a rule)."""

    kind: str
    why: str
    flags: frozenset[str] = frozenset()
    flag_prefixes: tuple[str, ...] = ()
    not_flags: frozenset[str] = frozenset()
    contrast: frozenset[str] = frozenset()  # AcquisitionContrast values
    sequence: frozenset[str] = frozenset()
    sequence_all: frozenset[str] = frozenset()  # every one of these ScanningSequence tokens
    not_sequence: frozenset[str] = frozenset()
    variant: frozenset[str] = frozenset()
    not_variant: frozenset[str] = frozenset()
    name: str = ""
    vendor: str = ""
    dims: str = ""  # MRAcquisitionType "2D" | "3D"
    not_dims: str = ""  # any MRAcquisitionType but this one (absent included)
    inversion: bool | None = None
    diffusion: bool | None = None  # some b > 50
    b_distinct: int = 0  # at least this many distinct b-values
    b_recorded: bool | None = None  # some b-value written at all (a diffusion sequence writes b = 0 too)
    tr: Range | None = None
    te: Range | None = None  # every echo time in range
    ti: Range | None = None
    flip_over_ernst: Range | None = None
    min_volumes: int = 0
    max_volumes: int | None = None  # at most this many (the count must be known)
    min_orientations: int = 0
    single_echo: bool = False
    fat_suppressed: bool | None = None  # ScanOptions FS / SFS / FAT / SPAIR / SPIR
    labeled: bool | None = None  # an ArterialSpinLabelingType written (dcm2niix reads it from the sequence)


FAT_SAT_OPTIONS = frozenset({"FS", "SFS", "FAT", "FAT_SAT", "FATSAT", "SPAIR", "SPIR", "FSAT"})

# Perfusion maps computed from an ASL or DSC series: derived images, not the label/control series BIDS perf/ holds
_PERFUSION_MAPS = frozenset({"CBF", "RELCBF", "CBV", "RELCBV", "MTT", "TTP"})
# An ASL rule's exclusion: a derived image or a computed perfusion map is no label/control series
_NOT_A_MAP = frozenset({"DERIVED"}) | _PERFUSION_MAPS
_OTHER_MAPS = frozenset({
    "FA", "COLFA", "EXP", "EADC", "TENSOR", "TENSOR_B0", "PERFUSION", "ASL", "MOCO", "FMRI", "T1 MAP", "T2 MAP",
    "T2_MAP", "T1_MAP", "T2* MAP", "R2*", "PROJECTION IMAGE", "CSA REPORT", "CSAPARALLEL", "SCREENSHOT",
}) | _PERFUSION_MAPS
_PHASE = frozenset({"P", "PHASE", "PHASE MAP", "B0 MAP", "B0", "FIELD_MAP", "FIELDMAP", "REAL", "IMAGINARY"})
_NO_SPIN_PREP = frozenset({"IR", "EP"})
# SequenceVariant SP (spoiled): the Ernst-angle reading holds for spoiled gradient echo only; a
# balanced SSFP (TrueFISP / FIESTA / bFFE: GR without SP) at a high flip angle is not T1-weighted.
_SPOILED = frozenset({"SP"})
# An SE-EPI field map ("pepolar"/topup pair): original spin-echo EPI images, a few volumes, no
# inversion, and no b-value written at all: a diffusion sequence writes b = 0 on its b=0 images, so
# a b=0-only diffusion series stays with the diffusion rules and the content (docs/physics.md).
FMAP_EPI_MAX_VOLUMES = 10
_SE_EPI = dict(flags=frozenset({"ORIGINAL"}), not_flags=frozenset({"DIFFUSION"}), b_recorded=False, inversion=False,
               min_volumes=1, max_volumes=FMAP_EPI_MAX_VOLUMES)
# dcm2niix's ImageType tokens for one image of a series it split (a GE B0 map's Hz map and magnitude):
# a NIfTI input holds one of them, which alone makes no field map (sdcflows needs both), so it stays "other"
_ONE_CONVERTED_IMAGE = frozenset({"FIELDMAPHZ", "MAGNITUDE"})
# A BOLD-like time series: five or more volumes of the same slices at one echo under 50 ms, no diffusion
# (a DWI whose b-values went unread has TE ≥ 50 ms; multi-echo and long-TE EPI are no BOLD run here).
_TIME_SERIES = dict(min_volumes=5, single_echo=True, diffusion=False, te=(None, 50.0),
                    not_flags=frozenset({"DIFFUSION"}))

RULES: tuple[PhysicsRule, ...] = (
    # -- non-target objects the scanner labels as such
    PhysicsRule(OTHER, "ImageType says localizer", flags=frozenset({"LOCALIZER", "SCOUT"})),
    PhysicsRule(OTHER, "slices in several orientations (3-plane localizer)", min_orientations=2),
    PhysicsRule("fmap_phasediff", "Siemens gradient-echo field map sequence (fm2d/fm3d), phase difference image",
                vendor="SIEMENS", name=r"fm[23]d", flags=frozenset({"P", "PHASE"})),
    PhysicsRule("fmap_magnitude", "Siemens gradient-echo field map sequence (fm2d/fm3d), magnitude images",
                vendor="SIEMENS", name=r"fm[23]d", flags=frozenset({"M", "MAGNITUDE"})),
    PhysicsRule(OTHER, "ImageType says phase / field-map image", flags=_PHASE),
    PhysicsRule("asl", "ImageType says ASL / perfusion, not a derived map (label/control series)",
                flags=frozenset({"ASL", "PERFUSION"}), not_flags=_NOT_A_MAP),
    PhysicsRule("asl", "sidecar's ArterialSpinLabelingType (written from the sequence), not a derived map",
                labeled=True, not_flags=_NOT_A_MAP),
    PhysicsRule(OTHER, "ImageType says derived or non-anatomical map (FA, exp. ADC, perfusion, BOLD)",
                flags=_OTHER_MAPS, flag_prefixes=("MIP",)),
    # -- diffusion, as the scanner labels its own images
    PhysicsRule("ADC", "ImageType says ADC map", flags=frozenset({"ADC", "DADC"})),
    PhysicsRule("DWI", "ImageType says trace / calculated-b diffusion image",
                flags=frozenset({"TRACEW", "TRACE", "CALC_BVALUE", "ISOTROPIC"})),
    PhysicsRule("DWI", "ImageType says diffusion, with b > 50", flags=frozenset({"DIFFUSION"}), diffusion=True),
    PhysicsRule("DWI", "AcquisitionContrast DIFFUSION, with b > 50", contrast=frozenset({"DIFFUSION"}),
                diffusion=True),
    PhysicsRule("DWI", "original images at two or more b-values, one above 50", flags=frozenset({"ORIGINAL"}),
                diffusion=True, b_distinct=2),
    # -- non-target acquisitions recognised by their physics
    PhysicsRule("asl", "enhanced MR AcquisitionContrast PERFUSION, not a derived map",
                contrast=frozenset({"PERFUSION"}), not_flags=_NOT_A_MAP),
    PhysicsRule(OTHER, "enhanced MR AcquisitionContrast of a non-target series (PD, perfusion, flow, TOF)",
                contrast=frozenset({"PROTON_DENSITY", "PERFUSION", "FLOW_ENCODED", "TOF", "TAGGING"})),
    PhysicsRule(OTHER, "Siemens gradient-echo field map sequence (fm2d/fm3d)", vendor="SIEMENS", name=r"fm[23]d"),
    PhysicsRule("fmap_fieldmap", "GE B0 field map sequence (B0map/B0rf): a field map in Hz and its magnitude",
                vendor="GE", name=r"^b0(map|rf)", not_flags=_ONE_CONVERTED_IMAGE),
    PhysicsRule(OTHER, "GE B0 field map sequence, one of its two images converted already", vendor="GE",
                name=r"^b0(map|rf)"),
    # gradient-echo EPI by its vendor name, before the spin-echo EPI rows: Siemens VB writes
    # ScanningSequence SE\EP on epfid BOLD runs (real data), and the name is the more specific field
    PhysicsRule("bold", "Siemens gradient-echo EPI (epfid) time series: five or more volumes at one echo under "
                "50 ms, no diffusion (BOLD)", vendor="SIEMENS", name=r"epfid", **_TIME_SERIES),
    PhysicsRule(OTHER, "Siemens gradient-echo EPI (epfid) without diffusion, no time series (a single BOLD "
                "volume, a multi-echo or DSC/PASL readout)", vendor="SIEMENS", name=r"epfid", diffusion=False),
    PhysicsRule("bold", "Philips field-echo EPI (FEEPI) time series: five or more volumes at one echo under 50 ms, "
                "no diffusion (BOLD)", vendor="PHILIPS", name=r"^feepi", **_TIME_SERIES),
    PhysicsRule(OTHER, "Philips field-echo EPI (FEEPI) without diffusion, no time series", vendor="PHILIPS",
                name=r"^feepi", diffusion=False),
    PhysicsRule("fmap_epi", "Siemens spin-echo EPI (epse), ≤ 10 volumes, no b-value written (SE-EPI field map)",
                vendor="SIEMENS", name=r"epse", **_SE_EPI),
    PhysicsRule("fmap_epi", "Philips spin-echo EPI (SEEPI), ≤ 10 volumes, no b-value written (SE-EPI field map)",
                vendor="PHILIPS", name=r"^seepi", **_SE_EPI),
    PhysicsRule("fmap_epi", "spin-echo EPI (ScanningSequence SE and EP), ≤ 10 volumes, no b-value written "
                "(SE-EPI field map)", sequence_all=frozenset({"SE", "EP"}), **_SE_EPI),
    PhysicsRule("asl", "Siemens 3D GRASE (tgse), the ASL readout", vendor="SIEMENS", name=r"tgse"),
    PhysicsRule(OTHER, "Siemens 3D FLASH with a TONE ramp (time-of-flight angiography)", vendor="SIEMENS",
                name=r"fl3d\d*r?_t\d"),
    PhysicsRule("bold", "EPI time series: five or more volumes at one echo under 50 ms, no diffusion (BOLD)",
                sequence=frozenset({"EP"}), **_TIME_SERIES),
    PhysicsRule(OTHER, "five or more volumes of the same slices at one echo under 50 ms, no diffusion (BOLD/ASL/DCE)",
                **_TIME_SERIES),
    # -- contrast, from enhanced MR's own AcquisitionContrast
    PhysicsRule("FLAIR", "AcquisitionContrast FLUID_ATTENUATED", contrast=frozenset({"FLUID_ATTENUATED"})),
    PhysicsRule("STIR", "AcquisitionContrast STIR", contrast=frozenset({"STIR"})),
    # -- susceptibility
    PhysicsRule("SWI", "ImageType says SWI / minimum-intensity projection", flags=frozenset({"SWI", "MNIP", "SWAN"})),
    PhysicsRule("SWI", "Siemens SWI sequence", vendor="SIEMENS", name=r"swi\d"),
    PhysicsRule("SWI", "3D spoiled gradient echo with long TE and short TR (susceptibility-weighted)",
                sequence=frozenset({"GR"}), not_sequence=_NO_SPIN_PREP, dims="3D", te=(15.0, None),
                tr=(None, 80.0), inversion=False),
    # -- inversion recovery: TI decides which tissue is nulled
    PhysicsRule("FLAIR", "inversion recovery, TI ≥ 1500 ms, TE ≥ 60 ms (fluid nulled, T2-weighted)",
                inversion=True, ti=(1500.0, 4000.0), te=(60.0, None), diffusion=False),
    PhysicsRule("STIR", "inversion recovery, TI 80-300 ms, TE ≥ 30 ms (fat nulled, T2-weighted)",
                inversion=True, ti=(80.0, 300.0), te=(30.0, None), diffusion=False),
    PhysicsRule("T1", "inversion-prepared, TI 300-1400 ms, TE < 30 ms (MPRAGE / IR-SPGR / T1-FLAIR)",
                inversion=True, ti=(300.0, 1400.0), te=(None, 30.0), not_sequence=frozenset({"EP"})),
    PhysicsRule("T1", "magnetization-prepared 3D gradient echo, TE < 10 ms (MPRAGE / TFE)",
                sequence=frozenset({"GR"}), variant=frozenset({"MP"}), dims="3D", te=(None, 10.0),
                not_sequence=frozenset({"EP"})),
    # -- spin echo without inversion: TE and TR decide
    PhysicsRule("T2fs", "spin echo, TE ≥ 70 ms, TR ≥ 800 ms, fat saturation", sequence=frozenset({"SE"}),
                not_sequence=_NO_SPIN_PREP, inversion=False, diffusion=False, te=(70.0, None),
                tr=(800.0, None), fat_suppressed=True),
    PhysicsRule("T2", "spin echo, TE ≥ 70 ms, TR ≥ 800 ms (T2-weighted)", sequence=frozenset({"SE"}),
                not_sequence=_NO_SPIN_PREP, inversion=False, diffusion=False, te=(70.0, None),
                tr=(800.0, None)),
    PhysicsRule("T1", "spin echo, TE < 30 ms, TR < 1000 ms (T1-weighted)", sequence=frozenset({"SE"}),
                not_sequence=_NO_SPIN_PREP, inversion=False, diffusion=False, te=(None, 30.0), tr=(None, 1000.0)),
    PhysicsRule(OTHER, "spin echo, TE < 30 ms, TR ≥ 1500 ms (proton-density weighted)", sequence=frozenset({"SE"}),
                not_sequence=_NO_SPIN_PREP, inversion=False, diffusion=False, te=(None, 30.0), tr=(1500.0, None)),
    # -- spoiled gradient echo without preparation: flip angle against the Ernst angle
    PhysicsRule("T1", "spoiled gradient echo (not 3D), TE < 10 ms, flip ≥ 1.5 × Ernst angle (T1-weighted)",
                sequence=frozenset({"GR"}), variant=_SPOILED, not_sequence=_NO_SPIN_PREP,
                not_variant=frozenset({"MP"}), not_dims="3D",
                inversion=False, te=(None, 10.0), flip_over_ernst=(1.5, None), diffusion=False),
    # 3D: only the short TR of today's T1 GRE (VIBE, LAVA, SPGR); TR 15-50 ms with a T1-like flip is
    # also time-of-flight angiography, which no vendor field but Siemens' sequence name tells apart
    PhysicsRule("T1", "3D spoiled gradient echo, TR < 15 ms, TE < 10 ms, flip ≥ 1.5 × Ernst angle (T1-weighted)",
                sequence=frozenset({"GR"}), variant=_SPOILED, not_sequence=_NO_SPIN_PREP,
                not_variant=frozenset({"MP"}), dims="3D", tr=(None, 15.0),
                inversion=False, te=(None, 10.0), flip_over_ernst=(1.5, None), diffusion=False),
    PhysicsRule(OTHER, "spoiled gradient echo, TE < 10 ms, flip ≤ 0.6 × Ernst angle (proton-density weighted)",
                sequence=frozenset({"GR"}), variant=_SPOILED, not_sequence=_NO_SPIN_PREP,
                not_variant=frozenset({"MP"}),
                inversion=False, te=(None, 10.0), flip_over_ernst=(None, 0.6), diffusion=False),
    # -- enhanced MR's own AcquisitionContrast, when the sequence fields above said nothing, and
    #    only with an echo time that weighting needs (a FLAIR filed under "T2" has a TI rule above)
    PhysicsRule("T2", "AcquisitionContrast T2, TE ≥ 60 ms", contrast=frozenset({"T2"}), diffusion=False,
                inversion=False, te=(60.0, None)),
    PhysicsRule("T1", "AcquisitionContrast T1, TE < 30 ms", contrast=frozenset({"T1"}), te=(None, 30.0)),
)

# Region from scanner fields only: BodyPartExamined first, then the receive coil's name.
BODY_PARTS = frozenset(
    "ABDOMEN PELVIS PROSTATE LIVER KIDNEY PANCREAS ABDOMENPELVIS CHEST BREAST RECTUM UTERUS BLADDER BODY".split())
BRAIN_PARTS = frozenset("HEAD BRAIN SKULL NEURO".split())
HEAD_COIL = re.compile(r"HEAD|BRAIN|NEURO|\bHE(?:\d|[AP]\b)|\bHC\d|HNS|\d+HR?BRAIN|NV")  # Siemens HEA;HEP: head 32
BODY_COIL = re.compile(r"TORSO|ABD|PELV|CARDIAC|BREAST|\bBO\d|\bPA\d|\bSP\d|SPINE|BODY")


def region_of(acq: Acquisition) -> str | None:
    """"brain" | "body" from BodyPartExamined or the receive coil; None when neither says."""
    part = re.sub(r"[^A-Z]", "", acq.body_part.upper())
    if part in BODY_PARTS:
        return "body"
    if part in BRAIN_PARTS:
        return "brain"
    coil = acq.receive_coil.upper()
    if HEAD_COIL.search(coil):
        return "brain"
    if BODY_COIL.search(coil) and coil.strip() != "BODY":  # the body coil alone receives for any region
        return "body"
    return None


@dataclass(frozen=True)
class PhysicsVerdict:
    """The physics witness' testimony: allowed classes (empty when silent), why, what it read."""

    labels: tuple[str, ...] = ()
    kind: str = ""
    reasons: tuple[str, ...] = ()
    fields: dict = field(default_factory=dict)

    @property
    def silent(self) -> bool:
        return not self.labels

    @property
    def label(self) -> str:
        """The classes joined by ``|``, or "unknown" when silent."""
        return "|".join(self.labels) if self.labels else SILENT



def _within(value: float | None, bounds: Range | None) -> bool:
    if bounds is None:
        return True
    if value is None:
        return False
    low, high = bounds
    return (low is None or value >= low) and (high is None or value < high)


def _matches(rule: PhysicsRule, acq: Acquisition) -> bool:
    types = frozenset(acq.image_type)
    if (rule.flags or rule.flag_prefixes) and not (
            rule.flags & types or any(t.startswith(rule.flag_prefixes) for t in types if rule.flag_prefixes)):
        return False
    checks = (
        not (rule.not_flags & types),
        not rule.contrast or bool(rule.contrast & frozenset(acq.acquisition_contrast)),
        not rule.sequence or bool(rule.sequence & acq.tokens(acq.scanning_sequence)),
        rule.sequence_all <= acq.tokens(acq.scanning_sequence),
        not (rule.not_sequence & acq.tokens(acq.scanning_sequence)),
        not rule.variant or bool(rule.variant & acq.tokens(acq.sequence_variant)),
        not (rule.not_variant & acq.tokens(acq.sequence_variant)),
        not rule.name or bool(acq.sequence_name and re.search(rule.name, acq.sequence_name, re.IGNORECASE)),
        not rule.vendor or rule.vendor in acq.manufacturer,
        not rule.dims or acq.mr_acquisition_type == rule.dims,
        not rule.not_dims or acq.mr_acquisition_type != rule.not_dims,
        rule.inversion is None or acq.inversion == rule.inversion,
        rule.diffusion is None or acq.diffusion_weighted == rule.diffusion,
        len(set(acq.b_values)) >= rule.b_distinct,
        rule.b_recorded is None or bool(acq.b_values) == rule.b_recorded,
        _within(acq.repetition_time, rule.tr),
        rule.te is None or (bool(acq.echo_times) and all(_within(t, rule.te) for t in acq.echo_times)),
        _within(acq.inversion_time, rule.ti),
        _within(acq.flip_over_ernst, rule.flip_over_ernst),
        (acq.n_volumes or 0) >= rule.min_volumes,
        rule.max_volumes is None or (acq.n_volumes is not None and acq.n_volumes <= rule.max_volumes),
        (acq.n_orientations or 0) >= rule.min_orientations,
        not rule.single_echo or len(acq.echo_times) == 1,
        rule.fat_suppressed is None or bool(FAT_SAT_OPTIONS & acq.tokens(acq.scan_options)) == rule.fat_suppressed,
        rule.labeled is None or bool(acq.labeling_type) == rule.labeled,
    )
    return all(checks)


def labels_for(kind: str, region: str | None) -> tuple[str, ...]:
    """The classes a kind allows in a region; both regions' when the region is unknown."""
    by_region = KIND_LABELS[kind]
    if region is not None:
        return by_region.get(region, ())
    return tuple(dict.fromkeys(label for labels in by_region.values() for label in labels))


def witness(facts: HeaderFacts, rules: tuple[PhysicsRule, ...] = RULES) -> PhysicsVerdict:
    """What the acquisition physics allows for this series; never raises."""
    try:
        acq = Acquisition.of(facts)
        if acq.modality and acq.modality not in ("MR", ""):
            return PhysicsVerdict((OTHER,), OTHER, (f"modality {acq.modality} is not MR",), {"modality": acq.modality})
        region = region_of(acq)
        for rule in rules:
            if _matches(rule, acq):
                labels = labels_for(rule.kind, region)
                reasons = (rule.why,) + ((f"region {region} from BodyPartExamined/coil",) if region else ())
                if not labels:  # e.g. STIR of the brain: no class of ours, and no claim either
                    return PhysicsVerdict((), rule.kind, reasons + (f"no {rule.kind} class for this region",), acq.used())
                return PhysicsVerdict(labels, rule.kind, reasons, acq.used())
        return PhysicsVerdict((), "", ("no rule's evidence is complete",), acq.used())
    except Exception as exc:  # noqa: BLE001 - a witness must never stop a run
        return PhysicsVerdict((), "", (f"physics rules failed: {exc}",), {})
