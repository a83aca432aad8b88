"""Typed records passed between the stages: discover → load → classify → name → write → report.

Each stage takes the previous stage's records and returns new ones; none mutates its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class HeaderFacts:
    """What the header says about a series (DICOM tags or BIDS JSON sidecar). Times in ms."""

    series_description: str = ""
    protocol_name: str = ""
    scanning_sequence: str = ""
    sequence_variant: str = ""
    image_type: tuple[str, ...] = ()
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    b_values: tuple[float, ...] = ()
    contrast_agent: str = ""
    series_number: int | None = None
    manufacturer: str = ""
    field_strength: float | None = None
    body_part: str = ""
    modality: str = "MR"
    input_name: str = ""  # a BIDS input's file name: an earlier sorting's claim, checked when nothing else speaks
    # Acquisition physics beyond the first file (``header.SeriesTally`` fills the per-series ones)
    sequence_name: str = ""  # SequenceName / PulseSequenceName / the vendor's private sequence name
    scan_options: str = ""
    mr_acquisition_type: str = ""  # "2D" | "3D"
    echo_train_length: int | None = None
    echo_times: tuple[float, ...] = ()  # distinct echo times of the whole series (ms)
    frame_types: tuple[str, ...] = ()  # every ImageType / FrameType token of every file and frame
    acquisition_contrast: tuple[str, ...] = ()  # enhanced MR AcquisitionContrast values
    n_volumes: int | None = None  # repetitions of the same slice positions (time points, echoes, b-values)
    n_orientations: int | None = None  # distinct slice orientations (3-plane localizers have 3)
    receive_coil: str = ""  # ReceiveCoilName, or Siemens' coil element string
    inherited: tuple[str, ...] = ()  # BIDS input: sidecar fields reached only by name inheritance (a claim)
    labeling_type: str = ""  # ArterialSpinLabelingType a converter wrote (CASL, PCASL, PASL): the sequence's, not typed


@dataclass(frozen=True)
class Series:
    """One input series: a DICOM SeriesInstanceUID, or one NIfTI file of a BIDS input."""

    subject: str  # sanitised BIDS label, no "sub-" prefix
    session: str | None  # sanitised BIDS label, no "ses-" prefix
    series_uid: str  # DICOM SeriesInstanceUID, or a stable id derived from the NIfTI path
    source: str  # path relative to the input directory (series folder or file)
    files: tuple[Path, ...]  # absolute paths of every file of the series
    kind: str  # "dicom" | "nifti"
    header: HeaderFacts = field(default_factory=HeaderFacts)


@dataclass
class Volume:
    """A loaded series, reduced to one representative 3D image.

    ``data`` is float32 in voxel order (i, j, k) of ``affine``; 4D inputs are reduced by
    ``volume.representative`` (diffusion: mean of the highest b-shell, or of the dimmest volumes
    when b-values are missing; others: temporal mean).
    """

    data: np.ndarray
    affine: np.ndarray
    n_volumes: int = 1
    b_values: tuple[float, ...] = ()
    timecourses: np.ndarray | None = None  # 4D: (volumes, voxels) of sampled foreground voxels (``timeseries``)
    phase_encoding: str = ""  # ``dir-`` label (``AP``, ``PA`` ...) of the converted file (``phase_encoding``); "" unknown

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))


@dataclass(frozen=True)
class Classification:
    """The classifier's verdict on one series."""

    label: str  # a label of classes.LABELS, or "other"
    confidence: float  # probability of the decided class (for "other": 1 - best probability)
    probabilities: dict[str, float]  # every class of classes.LABELS
    open_set_rejected: bool  # True when the open-set score fell below the threshold
    threshold: float  # the model card's threshold on the open-set score
    best_label: str = ""  # the highest-probability class, even when rejected
    decided_by: str = "content"  # who carried the label: "content", "content+physics", "physics" (``decide``) or "person"
    reason: str = ""  # why the series is "other" when its probabilities alone do not say (e.g. a time series)
    # The witnesses beside the decision (``bidsapp.decide``): content's own label, physics' testimony.
    content_label: str = ""
    physics_label: str = "unknown"  # allowed classes joined by "|", or "unknown" when physics is silent
    physics_reasons: tuple[str, ...] = ()
    physics_kind: str = ""  # what physics recognised (e.g. "bold": an "other" series BIDS still has a place for)
    physics_fields: dict = field(default_factory=dict)
    low_confidence: bool = False  # the content barely chose between the classes physics allows
    open_set_score: float | None = None  # how much the image looks like any known class (``model.open_set_score``)


@dataclass(frozen=True)
class SeriesResult:
    """Everything known about one series after the run; one row of the classifications TSV."""

    series: Series
    classification: Classification | None
    header_label: str = "unknown"
    bids_path: str = ""  # relative to the output dataset root; "" when nothing was written
    status: str = "ok"  # "ok" | "other" | "skipped" (no image: SR, PR, KO) | "error"
    message: str = ""

    @property
    def header_agrees(self) -> bool | None:
        if self.classification is None or self.header_label == "unknown":
            return None
        return self.header_label == self.classification.label
