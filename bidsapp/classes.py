"""The content classes and how each one is named in BIDS: one table, read by every stage.

The order of ``CLASSES`` is the order of the network's output heads; changing it invalidates
the shipped weights (the model card stores the list and ``predict`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

OTHER = "other"


@dataclass(frozen=True)
class ContentClass:
    """One content class and its BIDS naming (ARCHITECTURE.md sections 2 and 3)."""

    label: str
    region: str  # "brain" | "body"
    meaning: str
    datatype: str  # BIDS datatype folder: "anat" | "dwi"
    suffix: str  # BIDS suffix
    acq: str | None = None  # acq-<value> entity
    contrast: bool = False  # ce-<agent> entity (agent from ContrastBolusAgent)


CLASSES: tuple[ContentClass, ...] = (
    ContentClass("T1w", "brain", "T1-weighted, no contrast agent", "anat", "T1w"),
    ContentClass("T1wce", "brain", "T1-weighted after gadolinium", "anat", "T1w", contrast=True),
    ContentClass("T2w", "brain", "T2-weighted (TSE/FSE)", "anat", "T2w"),
    ContentClass("FLAIR", "brain", "T2-FLAIR, CSF nulled", "anat", "FLAIR"),
    ContentClass("ADC", "brain", "apparent diffusion coefficient map", "dwi", "ADC"),
    ContentClass("SWI", "brain", "susceptibility-weighted magnitude / minIP", "anat", "T2starw", acq="swi"),
    ContentClass("DWI", "brain", "diffusion-weighted (raw directions or trace)", "dwi", "dwi"),
    ContentClass("body-T1w", "body", "T1-weighted pre-contrast (in/opposed phase, Dixon)", "anat", "T1w"),
    ContentClass("body-T1w-arterial", "body", "post-contrast arterial phase", "anat", "T1w", acq="arterial", contrast=True),
    ContentClass("body-T1w-venous", "body", "post-contrast portal-venous phase", "anat", "T1w", acq="venous", contrast=True),
    ContentClass("body-T1w-delayed", "body", "post-contrast delayed phase", "anat", "T1w", acq="delayed", contrast=True),
    ContentClass("body-T2w", "body", "T2-weighted (HASTE/SSFSE/TSE)", "anat", "T2w"),
    ContentClass("body-T2w-fs", "body", "fat-suppressed T2-weighted", "anat", "T2w", acq="fs"),
    ContentClass("body-DWI", "body", "diffusion-weighted", "dwi", "dwi"),
    ContentClass("body-ADC", "body", "ADC map", "dwi", "ADC"),
)

LABELS: tuple[str, ...] = tuple(c.label for c in CLASSES)
BY_LABEL: dict[str, ContentClass] = {c.label: c for c in CLASSES}
ALL_LABELS: tuple[str, ...] = LABELS + (OTHER,)


def region_of(label: str) -> str:
    """Region of a label; "any" for other/unknown."""
    return BY_LABEL[label].region if label in BY_LABEL else "any"
