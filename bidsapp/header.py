"""Header facts (DICOM or BIDS sidecar) and the text witness.

Reading never raises: a missing or malformed value becomes ``None`` / ``""`` / ``()``.

The **text witness** is what a person typed or a file is called (SeriesDescription,
ProtocolName, a BIDS input's file name): it is compared with the decision and flagged, never
decides (``bidsapp.decide``). Scanner-written physics is the other witness, ``bidsapp.physics``.
Rule precedence (first matching rule in ``RULES`` wins): non-MR modality → other; keywords,
"other" words first (localizer, BOLD, field map, PD, ...). A keyword rule carries the physics
compatible with it; a value that is present and outside that range vetoes the rule (absent
values never veto), so "T1" with IR/TI 2500 ms/TE 120 ms is no T1w claim.

The rules produce a region-free *kind* (T1w, T2w-fs, arterial, ...); ``REGIONAL`` maps it to a
class label for the region (brain by default, body when BodyPartExamined or body words say so).
"""

from __future__ import annotations

import re
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bidsapp.classes import ALL_LABELS, OTHER
from bidsapp.records import HeaderFacts

UNKNOWN = "unknown"

# ----------------------------------------------------------------------------------------------
# Value coercion: every reader goes through these, so odd values degrade to None / "" / ().


def _text(value: Any) -> str:
    """One string from a DICOM/JSON value (multi-values joined with backslash)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    if isinstance(value, str):
        return value.replace("\x00", "").strip()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(_text(v) for v in value)
    return str(value).strip()


def _strings(value: Any) -> tuple[str, ...]:
    """Multi-valued strings (ImageType, SequenceVariant) as upper-case tokens."""
    text = _text(value)
    return tuple(t.strip().upper() for t in re.split(r"[\\/]", text) if t.strip())


def _float(value: Any) -> float | None:
    """A finite float, or None (first value of a multi-value; bytes decoded as text or binary)."""
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return _float(value[0]) if len(value) else None
        if isinstance(value, bytes):
            return _float_from_bytes(value)
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _float_from_bytes(raw: bytes) -> float | None:
    """Private tags read without a dictionary arrive as bytes: text (IS/DS) or binary (FL/FD)."""
    text = raw.replace(b"\x00", b"").strip()
    if text and all(32 <= c < 127 for c in text):
        number = _float(text.decode("ascii").split("\\")[0])
        if number is not None:  # else binary that happens to print: FL 1000.0 is b"\0\0zD"
            return number
    for size, fmt in ((8, "<d"), (4, "<f")):
        if len(raw) >= size and len(raw) % size == 0:
            return _float(struct.unpack(fmt, raw[:size])[0])
    return None


def _int(value: Any) -> int | None:
    number = _float(value)
    try:
        return int(number) if number is not None else None
    except (ValueError, OverflowError):
        return None


def _s_to_ms(value: Any) -> float | None:
    """BIDS sidecars store times in seconds; a value > 100 is taken as already in ms."""
    seconds = _float(value)
    if seconds is None:
        return None
    return seconds if seconds > 100 else seconds * 1000.0


# ----------------------------------------------------------------------------------------------
# DICOM reading (classic and enhanced multi-frame).

_FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")


def _get(ds: Any, keyword: str) -> Any:
    """A top-level value, or the first one found in the shared then first per-frame groups."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - malformed element: treat as absent
        value = None
    if value not in (None, ""):
        return value
    for group_name in _FUNCTIONAL_GROUPS:
        try:
            group = ds.get(group_name)
            item = group[0] if group else None
            if item is None:
                continue
            for element in item:
                if element.VR != "SQ" or not element.value:
                    continue
                found = element.value[0].get(keyword)
                if found not in (None, ""):
                    return found
        except Exception:  # noqa: BLE001
            continue
    return None


def _private(ds: Any, tag: tuple[int, int]) -> Any:
    try:
        return ds[tag].value if tag in ds else None
    except Exception:  # noqa: BLE001
        return None


def _vendor_b_value(ds: Any, manufacturer: str) -> float | None:
    """b-value from the vendor's private tag, trusted only on that vendor's data."""
    vendor = manufacturer.upper()
    if "SIEMENS" in vendor:
        return _float(_private(ds, (0x0019, 0x100C)))
    if "GE" in vendor.split() or vendor.startswith("GE"):
        b = _float(_private(ds, (0x0043, 0x1039)))
        return b % 1_000_000_000 if b is not None else None  # GE adds 1e9 on some releases
    if "PHILIPS" in vendor:
        return _float(_private(ds, (0x2001, 0x1003)))
    return None


def _b_values(ds: Any, manufacturer: str) -> tuple[float, ...]:
    """Unique b-values of one object: standard tag, every frame of a multi-frame, vendor tag."""
    found: list[float | None] = [_float(_get(ds, "DiffusionBValue"))]
    try:
        for frame in ds.get("PerFrameFunctionalGroupsSequence") or ():
            for item in frame.get("MRDiffusionSequence") or ():
                found.append(_float(item.get("DiffusionBValue")))
    except Exception:  # noqa: BLE001
        pass
    if found[0] is None:
        found.append(_vendor_b_value(ds, manufacturer))
    return tuple(sorted({b for b in found if b is not None and 0 <= b < 100_000}))


def _scanning_sequence(ds: Any) -> str:
    """ScanningSequence, or its enhanced-MR equivalent built from the pulse-sequence flags."""
    classic = _text(_get(ds, "ScanningSequence"))
    if classic:
        return classic.upper()
    tokens = {"SPIN": "SE", "GRADIENT": "GR", "BOTH": "SE\\GR"}
    parts = [tokens.get(_text(_get(ds, "EchoPulseSequence")).upper(), "")]
    if _text(_get(ds, "InversionRecovery")).upper() == "YES":
        parts.append("IR")
    if _text(_get(ds, "EchoPlanarPulseSequence")).upper() == "YES":
        parts.append("EP")
    return "\\".join(p for p in parts if p)


# Vendor private tags that name the pulse sequence when SequenceName is empty (scanner-written).
_PRIVATE_SEQUENCE_NAMES = (("GE", (0x0019, 0x109C)), ("PHILIPS", (0x2001, 0x1020)))
# Siemens writes the coil elements in use here ("HE1-4", "BO1,2;SP5") when ReceiveCoilName is empty.
_SIEMENS_COIL_ELEMENTS = (0x0051, 0x100F)


def _vendor_text(ds: Any, manufacturer: str, tags: tuple[tuple[str, tuple[int, int]], ...]) -> str:
    vendor = manufacturer.upper()
    for name, tag in tags:
        if name in vendor.split() or vendor.startswith(name):
            return _text(_private(ds, tag))
    return ""


def _sequence_name(ds: Any, manufacturer: str) -> str:
    return (_text(_get(ds, "SequenceName")) or _text(_get(ds, "PulseSequenceName"))
            or _vendor_text(ds, manufacturer, _PRIVATE_SEQUENCE_NAMES))


def _receive_coil(ds: Any, manufacturer: str) -> str:
    coil = _text(_get(ds, "ReceiveCoilName"))
    if not coil and "SIEMENS" in manufacturer.upper():
        coil = _text(_private(ds, _SIEMENS_COIL_ELEMENTS))
    return coil.upper()


def _frames(ds: Any) -> list[Any]:
    try:
        return list(ds.get("PerFrameFunctionalGroupsSequence") or ())
    except Exception:  # noqa: BLE001
        return []


def _frame_value(frame: Any, sequence: str, keyword: str) -> Any:
    try:
        items = frame.get(sequence) or ()
        return items[0].get(keyword) if items else None
    except Exception:  # noqa: BLE001
        return None


def _normal(orientation: Any) -> tuple[float, float, float] | None:
    """The slice normal of an ImageOrientationPatient, rounded so that one plane gives one key."""
    try:
        r = [float(v) for v in orientation]
        if len(r) != 6:
            return None
        n = (r[1] * r[5] - r[2] * r[4], r[2] * r[3] - r[0] * r[5], r[0] * r[4] - r[1] * r[3])
        sign = -1.0 if max(n, key=abs) < 0 else 1.0  # a plane read in either direction is one plane
        return tuple(round(sign * v, 1) + 0.0 for v in n)
    except (TypeError, ValueError):
        return None


def _position(position: Any) -> tuple[float, ...] | None:
    try:
        values = tuple(round(float(v), 1) for v in position)
        return values if len(values) == 3 else None
    except (TypeError, ValueError):
        return None


def _enhanced_facts(ds: Any) -> dict[str, Any]:
    """Per-frame physics of an enhanced multi-frame object (classic tags are empty there),
    tallied frame by frame as discovery tallies the files of a classic series."""
    frames = _frames(ds)
    if not frames:
        return {}
    tally = SeriesTally()
    contrasts: set[str] = set()
    for frame in frames:
        tally.count(_strings(_frame_value(frame, "MRImageFrameTypeSequence", "FrameType")),
                    _float(_frame_value(frame, "MREchoSequence", "EffectiveEchoTime")),
                    _position(_frame_value(frame, "PlanePositionSequence", "ImagePositionPatient")),
                    _normal(_frame_value(frame, "PlaneOrientationSequence", "ImageOrientationPatient")))
        contrast = _text(_frame_value(frame, "MRImageFrameTypeSequence", "AcquisitionContrast")).upper()
        if contrast:
            contrasts.add(contrast)
    return {
        "frame_types": tuple(tally.types),
        "acquisition_contrast": tuple(sorted(contrasts)),
        "echo_times": tuple(sorted(tally.echoes)),
        "n_volumes": tally.volumes,
        "n_orientations": len(tally.normals) or None,
    }


def facts_from_dicom(ds: Any) -> HeaderFacts:
    """Header facts of one DICOM object (one file of a series); never raises."""
    manufacturer = _text(_get(ds, "Manufacturer"))
    echo = _get(ds, "EchoTime")
    if echo is None:
        echo = _get(ds, "EffectiveEchoTime")
    inversion = _get(ds, "InversionTime")
    if inversion is None:
        inversion = _get(ds, "InversionTimes")
    image_type = _strings(_get(ds, "ImageType")) or _strings(_get(ds, "FrameType"))
    enhanced = _enhanced_facts(ds)
    echo_time = _float(echo)
    contrast = _text(_get(ds, "AcquisitionContrast")).upper()
    return HeaderFacts(
        series_description=_text(_get(ds, "SeriesDescription")),
        protocol_name=_text(_get(ds, "ProtocolName")),
        scanning_sequence=_scanning_sequence(ds),
        sequence_variant=_text(_get(ds, "SequenceVariant")).upper(),
        image_type=image_type,
        repetition_time=_float(_get(ds, "RepetitionTime")),
        echo_time=echo_time,
        inversion_time=_float(inversion),
        flip_angle=_float(_get(ds, "FlipAngle")),
        b_values=_b_values(ds, manufacturer),
        contrast_agent=_text(_get(ds, "ContrastBolusAgent")),
        series_number=_int(_get(ds, "SeriesNumber")),
        manufacturer=manufacturer,
        field_strength=_float(_get(ds, "MagneticFieldStrength")),
        body_part=_text(_get(ds, "BodyPartExamined")).upper(),
        modality=_text(_get(ds, "Modality")).upper() or "MR",
        sequence_name=_sequence_name(ds, manufacturer),
        scan_options=_text(_get(ds, "ScanOptions")).upper(),
        mr_acquisition_type=_text(_get(ds, "MRAcquisitionType")).upper(),
        echo_train_length=_int(_get(ds, "EchoTrainLength")),
        echo_times=enhanced.get("echo_times") or ((echo_time,) if echo_time is not None else ()),
        frame_types=tuple(dict.fromkeys(image_type + enhanced.get("frame_types", ()))),
        acquisition_contrast=enhanced.get("acquisition_contrast") or ((contrast,) if contrast else ()),
        n_volumes=enhanced.get("n_volumes") or _int(_get(ds, "NumberOfTemporalPositions")),
        n_orientations=enhanced.get("n_orientations"),
        receive_coil=_receive_coil(ds, manufacturer),
    )


#: What discovery reads of every file (besides its own index tags), so a series' physics is
#: known from all its files in the one pass that opens them: echoes, b-values, image types,
#: slice positions and orientations (``SeriesTally``).
TALLY_TAGS = [
    "ImageType",
    "EchoTime",
    "DiffusionBValue",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "Manufacturer",
    0x0019100C,  # Siemens b-value
    0x00431039,  # GE b-value
    0x20011003,  # Philips b-value
]


@dataclass
class SeriesTally:
    """Per-series physics gathered file by file during discovery (``TALLY_TAGS`` of each file).

    The first file alone misleads: a classic DWI file holds one b-value, a field map's first
    file one echo, a 3-plane localizer's first file one orientation, a BOLD run's one volume."""

    files: int = 0
    types: dict[str, None] = field(default_factory=dict)
    echoes: set[float] = field(default_factory=set)
    b_values: set[float] = field(default_factory=set)
    per_position: dict[tuple, int] = field(default_factory=lambda: defaultdict(int))
    normals: set[tuple] = field(default_factory=set)
    mosaic: bool = False

    def count(self, types: tuple[str, ...], echo: float | None, position: tuple | None, normal: tuple | None) -> None:
        """Count one image (a file, or a frame of an enhanced object) in; absent values count nothing."""
        for token in types:
            self.types[token] = None
        if echo is not None:
            self.echoes.add(echo)
        if position is not None:
            self.per_position[position] += 1
        if normal is not None:
            self.normals.add(normal)

    def add(self, ds: Any) -> None:
        """Count one file's index dataset in; never raises."""
        self.files += 1
        self.count(_strings(_get(ds, "ImageType")), _float(_get(ds, "EchoTime")),
                   _position(_get(ds, "ImagePositionPatient")), _normal(_get(ds, "ImageOrientationPatient")))
        self.mosaic = self.mosaic or "MOSAIC" in self.types
        self.b_values.update(_b_values(ds, _text(_get(ds, "Manufacturer"))))

    @property
    def volumes(self) -> int | None:
        """Images per slice position (a mosaic file holds every slice of one volume)."""
        if self.mosaic:
            return self.files
        return max(self.per_position.values()) if self.per_position else None

    def apply(self, facts: HeaderFacts) -> HeaderFacts:
        """``facts`` (of one file, or of an enhanced object) widened to the whole series."""
        if not self.files:
            return facts
        volumes = self.volumes
        return replace(
            facts,
            b_values=tuple(sorted(self.b_values.union(facts.b_values))),
            echo_times=tuple(sorted(self.echoes.union(facts.echo_times))),
            frame_types=tuple(dict.fromkeys(facts.frame_types + tuple(self.types))),
            n_volumes=max(v for v in (volumes, facts.n_volumes, 1) if v is not None),
            n_orientations=max(len(self.normals), facts.n_orientations or 0) or None,
        )


def facts_from_datasets(datasets: Iterable[Any]) -> HeaderFacts:
    """Facts of a whole series: the first object's facts widened by every object's tally.

    One file of a classic DWI series often holds b=0 only; the union tells DWI from EPI.
    """
    first: HeaderFacts | None = None
    tally = SeriesTally()
    for ds in datasets:
        first = first or facts_from_dicom(ds)
        tally.add(ds)
    return tally.apply(first) if first is not None else HeaderFacts()


def facts_from_sidecar(meta: Mapping[str, Any], b_values: Iterable[Any] = (), n_volumes: int | None = None) -> HeaderFacts:
    """Header facts of a BIDS / dcm2niix JSON sidecar (times in s → ms); never raises.

    ``b_values`` come from the ``.bval`` file when there is one (the sidecar has none), and
    ``n_volumes`` from the image's own shape.
    """
    if not isinstance(meta, Mapping):
        meta = {}
    bvals = []
    try:
        for b in b_values or ():
            number = _float(b)
            if number is not None and 0 <= number < 100_000:
                bvals.append(number)
    except TypeError:
        pass
    return HeaderFacts(
        series_description=_text(meta.get("SeriesDescription")),
        protocol_name=_text(meta.get("ProtocolName")),
        scanning_sequence=_sidecar_terms(meta.get("ScanningSequence")),
        sequence_variant=_sidecar_terms(meta.get("SequenceVariant")),
        image_type=_strings(meta.get("ImageType")),
        repetition_time=_s_to_ms(meta.get("RepetitionTime")),
        echo_time=_s_to_ms(meta.get("EchoTime")),
        inversion_time=_s_to_ms(meta.get("InversionTime")),
        flip_angle=_float(meta.get("FlipAngle")),
        b_values=tuple(sorted(set(bvals))),
        contrast_agent=_text(meta.get("ContrastBolusAgent")),
        series_number=_int(meta.get("SeriesNumber")),
        manufacturer=_text(meta.get("Manufacturer")),
        field_strength=_float(meta.get("MagneticFieldStrength")),
        body_part=_text(meta.get("BodyPartExamined") or meta.get("BodyPart")).upper(),  # dcm2niix: BodyPart
        modality=_text(meta.get("Modality")).upper() or "MR",
        sequence_name=_text(meta.get("SequenceName")) or _text(meta.get("PulseSequenceName")),
        scan_options=_sidecar_terms(meta.get("ScanOptions")),
        mr_acquisition_type=_text(meta.get("MRAcquisitionType")).upper(),
        echo_train_length=_int(meta.get("EchoTrainLength")),
        echo_times=tuple(sorted({t for k in ("EchoTime", "EchoTime1", "EchoTime2")
                                 if (t := _s_to_ms(meta.get(k))) is not None})),
        frame_types=_strings(meta.get("ImageType")),
        n_volumes=n_volumes,
        receive_coil=(_text(meta.get("ReceiveCoilName")) or _text(meta.get("CoilString"))).upper(),
        labeling_type=_text(meta.get("ArterialSpinLabelingType")).upper(),
    )


def _sidecar_terms(value: Any) -> str:
    """ScanningSequence / SequenceVariant / ScanOptions of a sidecar as DICOM writes them.

    dcm2niix joins multi-valued CS with "_" ("GR_IR", "SK_SP_MP", "PFP_FS"); no DICOM defined
    term of these attributes holds "_", so "_" is a separator (GE's "IR_GEMS" keeps its "IR")."""
    return "\\".join(t for t in re.split(r"[\\_]", _text(value).upper()) if t)


# ----------------------------------------------------------------------------------------------
# Rules.

Range = tuple[float | None, float | None]  # inclusive lower, exclusive upper; None = open


@dataclass(frozen=True)
class Rule:
    """One header rule: every condition given must hold. ``strict`` physics rules need the
    values to be present; keyword rules treat a missing value as compatible."""

    kind: str  # a key of REGIONAL, or "unknown" (stop: no guess)
    why: str
    words: str = ""  # regex on normalised description + protocol
    also: str = ""  # second regex that must match too
    unless: str = ""  # regex that must not match
    flags: frozenset[str] = frozenset()  # any of these ImageType tokens
    sequence: frozenset[str] = frozenset()  # any of these ScanningSequence tokens
    tr: Range | None = None
    te: Range | None = None
    ti: Range | None = None
    diffusion: bool | None = None  # True: some b > 0
    contrast: bool | None = None  # True: a contrast agent is recorded
    region: str | None = None  # "brain" | "body": only in that region
    strict: bool = False


# Keyword vocabularies (regex fragments on lower-case text with punctuation turned to spaces).
W_OTHER = (
    r"locali[sz]er|\bloc\b|scout|survey|\baahead|\bbold\b|fmri|\brest\b|resting|\bfunc\b|"
    r"\basl\b|pcasl|\bpasl\b|\bcbf\b|perfusion|\bperf\b|\bdsc\b|\bdce\b|field ?map|fieldmap|"
    r"b0 ?map|\bfmap\b|\btof\b|\bmra\b|angio|\bpd\b|\bpdw|proton density|reference|\bref\b|"
    r"calibration|\bcal\b|spectro|\bsvs\b|\bmrs\b|\bcine\b|\bcolfa\b|\bfa\b|\btensor\b|"
    r"\bexp\b|\beadc\b|\bt2 ?map|\bt1 ?map|\bmoco\b|screen ?save"
)
W_PHASE = r"\bphase\b|\bpha\b|\bph\b"
W_NOT_PHASE = r"in ?phase|opp\w* ?phase|out ?of ?phase|arterial|portal|venous|delayed|equilibrium"
W_ADC = r"\badc\b|apparent|\bavdc\b|\bdadc\b|adc\b"
W_DWI = (
    r"\bdwi|\bdiff|\bdti\b|\bdti|diffusion|\btrace|\bbval|\bb\d{3,4}\b|\bresolve\b|\bhardi\b|"
    r"\bdsi\b|\bdki\b|\bnoddi\b"
)
W_SWI = r"\bswi|\bswan\b|venobold|susceptib|\bmin ?ip\b|\bmnip\b|\bsw\b"
W_T2STAR = r"t2 ?\*|t2 ?star|\bt2s\b|hemo|\bgre\b"
W_FLAIR = r"flair|\btirm|dark ?fluid|\bt2f\b|\bfla\b|\bda ?fl"
W_T1 = (
    r"\bt1|mprage|mp ?rage|\bmpr\b|\btfl\b|spgr|bravo|\bvibe\b|\blava\b|\bthrive\b|dixon|"
    r"in ?phase|opp\w* ?phase|out ?of ?phase|\bflash\b|\bffe\b"
)
W_T2 = (
    r"\bt2|\btse\b|\bfse\b|haste|ssfse|\bssh\b|\bspace\b|\bcube\b|\bblade\b|propeller|"
    r"\bmvxd\b|\bstir\b|\bspair\b"
)
W_FATSAT = r"\bfs\b|fat ?sat|\bfatsat|spair|\bspir\b|\bstir\b|\bfs\w*\b|\bsat\b"
W_CONTRAST = r"\bpost\b|\+ ?c\b|\bc ?\+|\bgad|\bgd\b|\bce\b|contrast|\bt1c|t1gd|\bkm\b|\bmdc\b|enhanc"
W_PRE = r"\bpre\b|precontrast|pre ?contrast|pre ?gad|\bnative\b|\bnat\b|\bt1n\b|non ?contrast"
W_ARTERIAL = r"arterial|\bart\b|\bhat\b"
W_VENOUS = r"portal|venous|\bpvp?\b"
W_DELAYED = r"delay|equilibrium|\bequil|\beq\b|hepatobiliary|\bhbp\b|\b\d+ ?min\b"
W_BODY = (
    r"abdom|liver|hepat|pelvi|prostat|haste|ssfse|\bvibe\b|\blava\b|\bthrive\b|dixon|"
    r"arterial|portal|venous|delayed|equilibrium|kidney|renal|pancrea|rectum|uterus|cervix|"
    r"\bmrcp\b|\babd\b|\bbody\b"
)
BODY_PARTS = frozenset(
    "ABDOMEN PELVIS PROSTATE LIVER KIDNEY PANCREAS ABDOMENPELVIS CHEST BREAST RECTUM UTERUS "
    "BLADDER BODY".split()
)
BRAIN_PARTS = frozenset("HEAD BRAIN SKULL NEURO".split())
NO_AGENT = frozenset({"", "NONE", "NO", "N/A", "NA", "0", "-", "NIL", "NATIVE"})

T1_PHYS: dict[str, Range] = {"te": (None, 50.0), "ti": (None, 1500.0)}
T2_PHYS: dict[str, Range] = {"te": (40.0, None), "ti": (None, 1500.0)}

RULES: tuple[Rule, ...] = (
    # keywords, "other" words first
    Rule(OTHER, "description names a non-target series", words=W_OTHER),
    Rule(OTHER, "description names a phase image", words=W_PHASE, unless=W_NOT_PHASE),
    Rule("ADC", "description says ADC", words=W_ADC),
    Rule("DWI", "description says diffusion", words=W_DWI),
    Rule("SWI", "description says SWI", words=W_SWI, te=(10.0, None)),
    Rule(UNKNOWN, "T2*/GRE: no class for it, no guess", words=W_T2STAR, unless=W_SWI),
    Rule("FLAIR", "description says FLAIR", words=W_FLAIR, unless=r"\bt1", te=(60.0, None)),
    Rule("arterial", "body post-contrast arterial phase", words=W_ARTERIAL, unless=W_PRE, region="body"),
    Rule("venous", "body post-contrast portal-venous phase", words=W_VENOUS, unless=W_PRE, region="body"),
    Rule("delayed", "body post-contrast delayed phase", words=W_DELAYED, unless=W_PRE, region="body"),
    Rule("T2w-fs", "T2 with fat suppression", words=W_T2, also=W_FATSAT, unless=r"\bt1", **T2_PHYS),
    Rule("T2w", "description says T2", words=W_T2, unless=r"\bt1", **T2_PHYS),
    Rule("T1w", "description says T1 pre-contrast", words=W_T1, also=W_PRE, **T1_PHYS),
    Rule("T1wce", "description says T1 + contrast", words=W_T1, also=W_CONTRAST, **T1_PHYS),
    Rule("T1wce", "T1 with a contrast agent recorded", words=W_T1, contrast=True, **T1_PHYS),
    Rule("T1w", "description says T1", words=W_T1, **T1_PHYS),
    Rule("T1wce", "description says post-contrast", words=W_CONTRAST, unless=W_PRE + "|" + W_T2,
         region="brain", **T1_PHYS),
)

# kind → label per region; a kind missing for a region gives "unknown".
REGIONAL: dict[str, dict[str, str]] = {
    "brain": {
        "T1w": "T1w", "T1wce": "T1wce", "T2w": "T2w", "T2w-fs": "T2w", "FLAIR": "FLAIR",
        "SWI": "SWI", "DWI": "DWI", "ADC": "ADC", OTHER: OTHER,
    },
    "body": {
        "T1w": "body-T1w", "T2w": "body-T2w", "T2w-fs": "body-T2w-fs",
        "FLAIR": "body-T2w-fs",  # TIRM/STIR in the body is fat-suppressed T2
        "DWI": "body-DWI", "ADC": "body-ADC", "arterial": "body-T1w-arterial",
        "venous": "body-T1w-venous", "delayed": "body-T1w-delayed", OTHER: OTHER,
        # "T1wce" without a phase word: which phase is unknowable from the header
    },
}


@dataclass(frozen=True)
class HeaderGuess:
    """The header label and the rule that produced it (for reports and debugging)."""

    label: str
    region: str
    why: str


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces (keeping + and * for "+C", "T2*")."""
    return " ".join(re.sub(r"[^a-z0-9+*]+", " ", text.lower()).split())


def region_of_facts(facts: HeaderFacts, text: str) -> str:
    """Body when BodyPartExamined names a body part, or body words appear and it is not a head."""
    part = re.sub(r"[^A-Z]", "", facts.body_part.upper())
    if part in BODY_PARTS:
        return "body"
    if part not in BRAIN_PARTS and re.search(W_BODY, text):
        return "body"
    return "brain"


def _in(value: float | None, bounds: Range | None, strict: bool) -> bool:
    if bounds is None:
        return True
    if value is None:
        return not strict
    low, high = bounds
    return (low is None or value >= low) and (high is None or value < high)


def _matches(rule: Rule, facts: HeaderFacts, text: str, region: str) -> bool:
    if rule.region and rule.region != region:
        return False
    if rule.words and not re.search(rule.words, text):
        return False
    if rule.also and not re.search(rule.also, text):
        return False
    if rule.unless and re.search(rule.unless, text):
        return False
    if rule.flags and not rule.flags.intersection(facts.image_type):
        return False
    if rule.sequence:
        tokens = set(re.split(r"[\\/ ,]+", facts.scanning_sequence.upper()))
        if not rule.sequence & tokens:
            return False
    if rule.diffusion is not None:
        if rule.diffusion != any(b > 0 for b in facts.b_values):
            return False
    if rule.contrast is not None:
        has_agent = facts.contrast_agent.strip().upper() not in NO_AGENT
        if rule.contrast != has_agent:
            return False
    return (
        _in(facts.repetition_time, rule.tr, rule.strict)
        and _in(facts.echo_time, rule.te, rule.strict)
        and _in(facts.inversion_time, rule.ti, rule.strict)
    )


def header_guess(facts: HeaderFacts, rules: Iterable[Rule] = RULES) -> HeaderGuess:
    """The first matching rule's label for the series' region; never raises."""
    try:
        described = facts.series_description.strip() or facts.protocol_name.strip()
        # without a description, a BIDS input's own name (sub-01_T1w) is the claim to check
        text = normalise(f"{facts.series_description} | {facts.protocol_name}" if described else facts.input_name)
        region = region_of_facts(facts, text)
        if facts.modality and facts.modality.upper() not in ("MR", ""):
            return HeaderGuess(OTHER, region, f"modality {facts.modality} is not MR")
        for rule in rules:
            if _matches(rule, facts, text, region):
                why = rule.why if described else f"input file name: {rule.why}"
                if rule.kind == UNKNOWN:
                    return HeaderGuess(UNKNOWN, region, why)
                label = REGIONAL[region].get(rule.kind, UNKNOWN)
                return HeaderGuess(label, region, why)
        return HeaderGuess(UNKNOWN, region, "no rule matched")
    except Exception as exc:  # noqa: BLE001 - a cross-check must never stop a run
        return HeaderGuess(UNKNOWN, "brain", f"header rules failed: {exc}")


def text_field(facts: HeaderFacts) -> str:
    """Which typed field the text witness read: what ``header_guess`` matched its words on."""
    if facts.series_description.strip():
        return "SeriesDescription"
    if facts.protocol_name.strip():
        return "ProtocolName"
    return "FileName" if facts.input_name else ""


def header_label(facts: HeaderFacts) -> str:
    """The text witness' claim: one of ``classes.ALL_LABELS`` or ``"unknown"``."""
    label = header_guess(facts).label
    return label if label in ALL_LABELS else UNKNOWN
