"""Decided label → BIDS path (ARCHITECTURE.md section 3). Pure functions, no I/O.

The entities come from the class table in :mod:`bidsapp.classes`; the two things the table cannot
know are decided here from header facts: the contrast agent (``ce-``) and whether a diffusion
series has gradient directions (``_dwi``) or is a scanner-derived trace (``_trace``).
``run-`` is added only where two series of one subject/session would otherwise share a name,
numbered in SeriesNumber order, so a rerun on the same input gives the same names.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace

from bidsapp.classes import BY_LABEL

DEFAULT_AGENT = "gadolinium"
UNCLASSIFIED_DIR = "sourcedata/unclassified"
IMAGE_SUFFIXES = (".nii.gz", ".nii")
SIDECAR_SUFFIXES = (".json", ".bval", ".bvec")  # files that share an image's core (``image_core``)
ENTITY_FILES = ("_aslcontext.tsv",)  # files that share an image's entities, its core less the suffix (``companion``)


def image_core(path: str) -> str:
    """An image path without its extension: ``sub-01/anat/sub-01_T1w.nii.gz`` → ``sub-01/anat/sub-01_T1w``
    (the part its sidecars share)."""
    for ext in IMAGE_SUFFIXES:
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


# ImageType values that mark a scanner-computed diffusion trace (no usable gradient table).
TRACE_IMAGE_TYPES = frozenset({"TRACE", "TRACEW"})
# Suffix used for a "dwi" class, keyed by "has gradient directions".
DWI_SUFFIX_BY_DIRECTIONS = {True: "dwi", False: "trace"}


@dataclass(frozen=True)
class NameRequest:
    """What naming needs to know about one series."""

    key: str  # unique id of the series (SeriesInstanceUID / NIfTI path hash)
    subject: str
    session: str | None
    label: str  # a classes label, or "other" (also used for series that failed)
    series_number: int | None = None
    series_description: str = ""
    contrast_agent: str = ""
    has_directions: bool = True  # diffusion only: False → scanner-derived trace
    physics_kind: str = ""  # an "other" series the physics witness recognised ("bold"): ``PLACED_OTHER``
    protocol: str = ""  # typed protocol text: it may name a task, never classify
    image_type: tuple[str, ...] = ()  # scanner ImageType: reformats and reconstruction twins (``rec-``)
    phase_encoding: str = ""  # ``dir-`` label of an SE-EPI field map (``phase_encoding.dir_label``), "" unknown
    rec: str | None = None  # rec- label set by ``assign_names`` for the twin of another series
    supplied: frozenset[str] | None = None  # BIDS input: ``ENTITY_FILES`` beside the image; None for DICOM


@dataclass(frozen=True)
class Entities:
    datatype: str
    suffix: str
    acq: str | None = None
    ce: str | None = None
    task: str | None = None
    rec: str | None = None
    dir: str | None = None


#: "other" series (no content class) that BIDS still has a place for, by physics kind:
#: (datatype, suffix); their task label comes from the protocol text (``task_label``).
PLACED_OTHER: dict[str, tuple[str, str]] = {
    "bold": ("func", "bold"),
    "fmap_magnitude": ("fmap", "magnitude"),  # two echoes: heudiconv numbers them magnitude1, magnitude2
    "fmap_phasediff": ("fmap", "phasediff"),
    "fmap_epi": ("fmap", "epi"),  # the dir- label from the phase-encoding direction (``DIRECTED_SUFFIXES``)
    "fmap_fieldmap": ("fmap", "fieldmap"),  # a GE B0 map: the Hz map, with its _magnitude (``SPLIT_SERIES``)
    "asl": ("perf", "asl"),  # only where a BIDS input supplies what no header gives (``UNPLACED_OTHER``)
    "m0scan": ("perf", "m0scan"),  # no physics kind: the M0 scan a placed ASL series has (``linkbids``)
}
TASK_SUFFIXES = frozenset({"bold"})  # suffixes that take a task- entity
DIRECTED_SUFFIXES = frozenset({"epi"})  # suffixes BIDS requires a dir- entity for
#: "other" series physics recognises whose BIDS place needs what a scanner's header does not say:
#: kind → why it stays under sourcedata (the row's message). Nothing is guessed to fill the gap; a BIDS
#: input may supply it (``placement_problem``'s ``files``), and is then checked field by field.
UNPLACED_OTHER: dict[str, str] = {
    "asl": ("ASL series, not placed in perf/: BIDS requires an _aslcontext.tsv (which volume is control, label or "
            "M0), which no converter writes, and the sidecar fields ArterialSpinLabelingType, PostLabelingDelay, "
            "BackgroundSuppression, M0Type, TotalAcquiredPairs, RepetitionTimePreparation (and LabelingDuration "
            "or BolusCutOffFlag), which classic DICOM headers rarely give; none is guessed; "
            f"kept under {UNCLASSIFIED_DIR}"),
}
#: ImageType tokens of an image computed from another acquisition: named once, marked ``rec-``
#: (a reformat or a subtraction is not a second acquisition of its contrast).
DERIVED_RECONSTRUCTIONS = {"MPR": "mpr", "MPR_THICK": "mpr", "REFORMATTED": "mpr", "SUB": "sub", "SUBTRACTION": "sub"}
#: Twins the scanner writes of one acquisition, (token of the plain one, token of the twin, rec- of the
#: twin): Siemens stores a series with and without distortion correction (DIS2D/DIS3D vs ND) and
#: with and without prescan normalisation (NORM vs none). The corrected image keeps the plain name.
RECONSTRUCTION_TWINS = (({"DIS2D", "DIS3D"}, "ND", "nd"), ({"NORM"}, None, "nonorm"))
#: Series that BIDS writes as several images: the suffix of the series' name → its images' suffixes, each
#: keyed by what tells it among the images heudiconv only numbers (``_fieldmap1``, ``_fieldmap2``): the
#: counter where heudiconv numbers as BIDS does (a Siemens field map's two magnitude echoes), else the
#: ImageType token dcm2niix writes in the image's sidecar (a GE B0 map's Hz map and magnitude).
SPLIT_SERIES: dict[str, dict[str, str]] = {
    "_magnitude": {"1": "_magnitude1", "2": "_magnitude2"},
    "_fieldmap": {"FIELDMAPHZ": "_fieldmap", "MAGNITUDE": "_magnitude"},
}
#: Sidecar fields BIDS requires of a placed image that a converter may leave out, by suffix: checked once
#: the image is written (``convert``); a series without them stays under sourcedata (``placement_problem``).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "fieldmap": ("Units",),
    "epi": ("PhaseEncodingDirection", "TotalReadoutTime"),  # checked before naming: no dir- without them (``phase_encoding``)
    "asl": ("ArterialSpinLabelingType", "PostLabelingDelay", "BackgroundSuppression", "M0Type", "TotalAcquiredPairs",
            "RepetitionTimePreparation", "EchoTime", "MagneticFieldStrength", "MRAcquisitionType"),
    "m0scan": ("RepetitionTimePreparation", "EchoTime"),  # and IntendedFor, which names its ASL series (``linkbids``)
}
#: Fields BIDS requires once another has one of some values, by suffix: (field, values, required fields).
REQUIRED_WHEN: dict[str, tuple[tuple[str, tuple, tuple[str, ...]], ...]] = {
    "asl": (("ArterialSpinLabelingType", ("CASL", "PCASL"), ("LabelingDuration",)),
            ("ArterialSpinLabelingType", ("PASL",), ("BolusCutOffFlag",)),
            ("BolusCutOffFlag", (True,), ("BolusCutOffDelayTime", "BolusCutOffTechnique")),
            ("M0Type", ("Estimate",), ("M0Estimate",)),
            ("MRAcquisitionType", ("2D",), ("SliceTiming",))),
    "m0scan": (("MRAcquisitionType", ("2D",), ("SliceTiming",)),),
}
#: Files that belong beside an image of some suffixes only, by how their name ends: the suffixes that
#: take them (a BIDS input's are placed beside those alone), and the files BIDS requires of a suffix.
SUFFIX_FILES: dict[str, frozenset[str]] = {".bval": frozenset({"dwi"}), ".bvec": frozenset({"dwi"}),
                                            "_aslcontext.tsv": frozenset({"asl"})}
REQUIRED_FILES: dict[str, tuple[str, ...]] = {"asl": ("_aslcontext.tsv",)}


def entity_prefix(core: str) -> str:
    """An image core less its suffix (``…/sub-01_run-2_T2w`` → ``…/sub-01_run-2``); a core whose
    last part is an entity (``sub-01_run-2``) has no suffix and is kept."""
    head, _, last = core.rpartition("_")
    return head if head and "-" not in last and "/" not in last else core


def companion(core: str, ending: str) -> str:
    """The path of an image's file that ends so: its core's (``.json``) or its entities' (``_aslcontext.tsv``)."""
    return (entity_prefix(core) if ending in ENTITY_FILES else core) + ending


def takes(core: str, ending: str) -> bool:
    """Whether the image named ``core`` keeps a file ending so beside it (``SUFFIX_FILES``)."""
    return ending not in SUFFIX_FILES or core.rpartition("_")[2] in SUFFIX_FILES[ending]


def companions(core: str) -> tuple[str, ...]:
    """Every file an image named ``core`` may have beside it in the output."""
    return tuple(companion(core, e) for e in SIDECAR_SUFFIXES + ENTITY_FILES if takes(core, e))


def missing_requirements(suffix: str, sidecar: dict | None, files: frozenset[str] | None) -> tuple[list[str], list[str]]:
    """(files, sidecar fields) BIDS requires of an image with this suffix that are not there: files
    (``REQUIRED_FILES``) when ``files`` lists those present, fields (``REQUIRED_FIELDS``, ``REQUIRED_WHEN``)
    when there is a ``sidecar``."""
    absent = [e for e in REQUIRED_FILES.get(suffix, ()) if files is not None and e not in files]
    meta = sidecar if sidecar is not None else {}
    conditional = tuple(f for key, values, needed in REQUIRED_WHEN.get(suffix, ()) if meta.get(key) in values for f in needed)
    fields = [f for f in REQUIRED_FIELDS.get(suffix, ()) + conditional if meta.get(f) in (None, "")]
    return absent, fields if sidecar is not None else []


def split_images(core: str) -> dict[str, str]:
    """{counter or ImageType token: image core} of the series named ``core`` when BIDS writes it as
    several images (``SPLIT_SERIES``), else {}: ``…_fieldmap`` → ``…_fieldmap``, ``…_magnitude``."""
    suffix = next((s for s in SPLIT_SERIES if core.endswith(s)), None)
    return {key: core[: -len(suffix)] + image for key, image in SPLIT_SERIES[suffix].items()} if suffix else {}


def renamed_after_conversion(physics_kind: str) -> bool:
    """Whether a placed kind's images get their BIDS names only after heudiconv (``SPLIT_SERIES``
    keyed by ImageType: heudiconv alone writes ``_fieldmap1``/``_fieldmap2``, not BIDS names)."""
    place = PLACED_OTHER.get(physics_kind)
    images = SPLIT_SERIES.get(f"_{place[1]}", {}) if place else {}
    return any(not key.isdigit() for key in images)


def series_cores(core: str) -> tuple[str, ...]:
    """The cores of every image of the series named ``core``: itself, or its ``SPLIT_SERIES`` images."""
    return tuple(split_images(core).values()) or (core,)


def series_stem(core: str) -> str:
    """The name of the series an image belongs to (the inverse of ``series_cores``):
    ``…_magnitude1`` → ``…_magnitude``, a GE map's ``…_magnitude`` → ``…_fieldmap``; else ``core``."""
    return next((core[: -len(image)] + suffix for suffix, images in SPLIT_SERIES.items()
                 for image in images.values() if core.endswith(image)), core)


# Protocol words that say how a run was acquired, not what the task was.
_NOT_TASK = re.compile(r"^((mb)?ep[23]d|epi|bold|asc|desc|int|interleaved|fmri|fmr|func|functional|moco|pace|cmrr|mb\d*|sms|ax|tra|sag|cor|"
                       r"fid|gre|ge|se|run\d*|\d+(mm|iso)?|te\d+|tr\d+|p\d|ipat\d*|grappa\d*|task|series)$")


def task_label(text: str | None) -> str:
    """A ``task-`` label from typed protocol text (``ep2d_bold_rest`` → ``rest``), ``unknown``
    when it names none. Text may name files; it never decides what a series is."""
    words = [w for w in re.split(r"[^a-z0-9]+", str(text or "").lower()) if w and not _NOT_TASK.match(w)]
    return sanitize_label("".join(words), "unknown")


def sanitize_label(text: str | None, default: str = "unknown") -> str:
    """BIDS label from free text: keep only [a-zA-Z0-9]; ``default`` when nothing is left."""
    cleaned = re.sub(r"[^a-zA-Z0-9]", "", str(text or ""))
    return cleaned or default


def agent_label(contrast_agent: str | None) -> str:
    """``ce-`` value: ContrastBolusAgent reduced to lower-case [a-z0-9], else ``gadolinium``."""
    return sanitize_label(contrast_agent, DEFAULT_AGENT).lower()


def agent_in_name(file_name: str) -> str:
    """The ``ce-`` value of a BIDS file name (``sub-01_ce-gadovist_T1w.nii.gz`` → ``gadovist``), or ""."""
    return next((part[len("ce-"):] for part in image_core(file_name).split("_") if part.startswith("ce-")), "")


def description_label(text: str | None) -> str:
    return sanitize_label(text, "series")


def is_trace(image_type: tuple[str, ...] | list[str], has_bvec: bool = True) -> bool:
    """Scanner-derived diffusion trace: ImageType says TRACE/TRACEW, or there is no bvec."""
    return bool(TRACE_IMAGE_TYPES.intersection(t.upper() for t in image_type)) or not has_bvec


def entities(req: NameRequest) -> Entities | None:
    """BIDS entities of a classified series, or of an "other" one physics places (``PLACED_OTHER``);
    None for the rest of "other" (goes to sourcedata)."""
    cls = BY_LABEL.get(req.label)
    if cls is None:
        if req.physics_kind in PLACED_OTHER and not placement_problem(req.physics_kind, req.phase_encoding,
                                                                      files=req.supplied):
            datatype, suffix = PLACED_OTHER[req.physics_kind]
            task = task_label(req.protocol or req.series_description) if suffix in TASK_SUFFIXES else None
            return Entities(datatype=datatype, suffix=suffix, task=task,
                            dir=req.phase_encoding if suffix in DIRECTED_SUFFIXES else None)
        return None
    suffix = DWI_SUFFIX_BY_DIRECTIONS[req.has_directions] if cls.suffix == "dwi" else cls.suffix
    return Entities(
        datatype=cls.datatype,
        suffix=suffix,
        acq=cls.acq,
        ce=agent_label(req.contrast_agent) if cls.contrast else None,
        rec=req.rec or reconstruction(req.image_type),
    )


def needs_direction(physics_kind: str) -> bool:
    """Whether the BIDS place of a physics kind takes a ``dir-`` label (``DIRECTED_SUFFIXES``)."""
    place = PLACED_OTHER.get(physics_kind)
    return bool(place) and place[1] in DIRECTED_SUFFIXES


def placement_problem(physics_kind: str, phase_encoding: str = "", sidecar: dict | None = None,
                      files: frozenset[str] | None = None) -> str | None:
    """Why a series physics recognised cannot take its BIDS place (``PLACED_OTHER``, ``UNPLACED_OTHER``),
    or None. The message goes into the participant table of a series kept under sourcedata.
    ``sidecar``: the image's, once there is one (``REQUIRED_FIELDS``); ``files``: the endings of the files a
    BIDS input holds beside the image (``ENTITY_FILES``), None where the input can hold none (DICOM)."""
    if physics_kind in UNPLACED_OTHER and files is None:
        return UNPLACED_OTHER[physics_kind]
    if needs_direction(physics_kind) and not phase_encoding:
        return (f"SE-EPI field map whose sidecar lacks PhaseEncodingDirection (the header gives no polarity) or "
                f"TotalReadoutTime, both required of a BIDS _epi: its dir- is not guessed; kept under {UNCLASSIFIED_DIR}")
    datatype, suffix = PLACED_OTHER.get(physics_kind, ("", ""))
    absent, fields = missing_requirements(suffix, sidecar, files)
    if not (absent or fields):
        return None
    if files is None:
        return (f"the converter wrote no {', '.join(fields)} in the sidecar, which BIDS requires of a _{suffix}: "
                f"not guessed; kept under {UNCLASSIFIED_DIR}")
    what = " and ".join(text for text in (absent and f"no {', '.join(absent)} beside the image",
                                          fields and f"no {', '.join(fields)} in its sidecar") if text)
    return (f"not placed in {datatype}/: the input has {what}, which BIDS requires of a _{suffix}: none is guessed; "
            f"kept under {UNCLASSIFIED_DIR}")


def reconstruction(image_type: tuple[str, ...] | list[str]) -> str | None:
    """``rec-`` label of a reformat or subtraction (``DERIVED_RECONSTRUCTIONS``), else None."""
    return next((DERIVED_RECONSTRUCTIONS[t.upper()] for t in image_type if t.upper() in DERIVED_RECONSTRUCTIONS), None)


def twin_rec(req: NameRequest, others: list[NameRequest]) -> str | None:
    """``rec-`` of ``req`` when it is the uncorrected twin of another series with its name."""
    mine = {t.upper() for t in req.image_type}
    for plain, twin, label in RECONSTRUCTION_TWINS:
        is_twin = (twin in mine) if twin else not (plain & mine)
        if is_twin and any(plain & {t.upper() for t in o.image_type} for o in others):
            return label
    return None


def _bids_stem(req: NameRequest, ent: Entities, run: int | None) -> str:
    prefix = f"sub-{req.subject}" + (f"_ses-{req.session}" if req.session else "")
    folder = f"sub-{req.subject}/" + (f"ses-{req.session}/" if req.session else "") + ent.datatype
    pairs = [("task", ent.task), ("acq", ent.acq), ("ce", ent.ce), ("rec", ent.rec), ("dir", ent.dir), ("run", run)]
    middle = "".join(f"_{k}-{v}" for k, v in pairs if v is not None)
    return f"{folder}/{prefix}{middle}_{ent.suffix}"


def _unclassified_stem(req: NameRequest, run: int | None) -> str:
    folder = f"{UNCLASSIFIED_DIR}/sub-{req.subject}/" + (f"ses-{req.session}/" if req.session else "")
    number = f"{req.series_number}_" if req.series_number is not None else ""
    return f"{folder}{number}{description_label(req.series_description)}" + (f"_run-{run}" if run else "")


def path_stem(req: NameRequest, run: int | None = None) -> str:
    """Relative path without extension, e.g. ``sub-01/anat/sub-01_ce-gadolinium_T1w``."""
    ent = entities(req)
    return _unclassified_stem(req, run) if ent is None else _bids_stem(req, ent, run)


def _order(req: NameRequest) -> tuple:
    return (req.series_number is None, req.series_number or 0, req.key)


def assign_names(requests: list[NameRequest]) -> dict[str, str]:
    """{key: relative path stem} for a set of series; ``run-`` only where names collide.

    Names are unique across the whole set (subject/session are part of every name), so the
    set may span several participants.
    """
    requests = _mark_twins(requests)
    groups: dict[str, list[NameRequest]] = defaultdict(list)
    for req in requests:
        groups[path_stem(req)].append(req)
    names: dict[str, str] = {}
    for stem, members in groups.items():
        if len(members) == 1:
            names[members[0].key] = stem
            continue
        for run, req in enumerate(sorted(members, key=_order), start=1):
            names[req.key] = path_stem(req, run)
    return names


def _mark_twins(requests: list[NameRequest]) -> list[NameRequest]:
    """Requests with ``rec`` set where a series is the uncorrected twin of another one that would
    share its name (``RECONSTRUCTION_TWINS``): each acquisition is named once, its twin marked."""
    groups: dict[str, list[NameRequest]] = defaultdict(list)
    for req in requests:
        groups[path_stem(req)].append(req)
    marked = {}
    for stem, members in groups.items():
        if len(members) < 2 or stem.startswith(UNCLASSIFIED_DIR):
            continue
        for req in members:
            label = twin_rec(req, [o for o in members if o is not req])
            if label:
                marked[req.key] = replace(req, rec=label)
    return [marked.get(r.key, r) for r in requests]
