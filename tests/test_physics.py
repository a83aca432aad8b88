"""The physics witness (``bidsapp.physics``) on synthetic headers of every vendor, and on the
development set's real DICOM series.

Synthetic headers are pydicom Datasets written the way each vendor writes them (classic
single-frame, and enhanced multi-frame with per-frame functional groups), read through the same
path as a run: ``header.facts_from_datasets`` (the first object's facts widened by the
``SeriesTally`` of every object) and then ``physics.witness``. Each case pins the labels and the
rule that decides, so a reordered or loosened table fails here.

``python tests/test_physics.py`` prints the per-vendor tables of ``docs/physics.md``.
"""

from __future__ import annotations

import csv
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bidsapp import discover, header, physics
from bidsapp.classes import ALL_LABELS, OTHER
from bidsapp.records import HeaderFacts

AX = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
COR = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
SAG = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]

T1_BRAIN = ("T1w", "T1wce")
T1_BODY = ("body-T1w", "body-T1w-arterial", "body-T1w-venous", "body-T1w-delayed")
T2_BODY = ("body-T2w", "body-T2w-fs")
SILENT: tuple[str, ...] = ()

SIEMENS_COIL = (0x0051, 0x100F)  # coil element string ("HE1-4", "HEA;HEP", "BO1,2;SP5")
SIEMENS_B = (0x0019, 0x100C)  # IS, b-value
GE_SEQUENCE = (0x0019, 0x109C)  # LO, pulse sequence name ("efgre3d", "epi2", "B0map")
GE_B = (0x0043, 0x1039)  # IS, first value b (+1e9 on some releases)
PHILIPS_TECHNIQUE = (0x2001, 0x1020)  # LO, scanning technique ("T1TFE", "DwiSE", "FEEPI")
PHILIPS_B = (0x2001, 0x1003)  # FL, b-value


# ----------------------------------------------------------------------------------------------
# Header builders


def _dataset(tags: dict) -> Dataset:
    ds = Dataset()
    ds.Modality = "MR"
    for key, value in tags.items():
        if key != "private":
            setattr(ds, key, value)
    for tag, (vr, value) in tags.get("private", {}).items():
        ds.add_new(tag, vr, value)
    return ds


def classic(tags: dict, volumes: tuple[dict, ...] = ({},), slices: int = 2,
            orientations: tuple[list[float], ...] = (AX,)) -> Callable[[], list[Dataset]]:
    """One file per slice, per orientation, per volume (echo, b-value, time point)."""

    def build() -> list[Dataset]:
        out = []
        for extra in volumes:
            merged = {**tags, **extra, "private": {**tags.get("private", {}), **extra.get("private", {})}}
            for o, orientation in enumerate(orientations):
                for z in range(slices):
                    ds = _dataset(merged)
                    ds.ImageOrientationPatient = orientation
                    ds.ImagePositionPatient = [100.0 * o, 0.0, 5.0 * z]
                    out.append(ds)
        return out

    return build


def _item(**values) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def enhanced(tags: dict, frame_type: list[str], contrast: str = "", positions: int = 2,
             per_position: tuple[dict, ...] = ({},), orientations: tuple[list[float], ...] = (AX,),
             tr: float | None = None, flip: float | None = None, ti: float | None = None) -> Callable[[], list[Dataset]]:
    """One enhanced MR object: shared timing, per-frame FrameType/AcquisitionContrast, b, TE, plane."""

    def build() -> list[Dataset]:
        ds = _dataset(tags)
        ds.ImageType = frame_type
        shared = Dataset()
        timing = {k: v for k, v in (("RepetitionTime", tr), ("FlipAngle", flip)) if v is not None}
        if timing:
            shared.MRTimingAndRelatedParametersSequence = Sequence([_item(**timing)])
        if ti is not None:
            shared.MRModifierSequence = Sequence([_item(InversionTimes=[ti])])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        frames = []
        for o, orientation in enumerate(orientations):
            for extra in per_position:
                for z in range(positions):
                    frame = Dataset()
                    kind = _item(FrameType=extra.get("type", frame_type))
                    if contrast:
                        kind.AcquisitionContrast = contrast
                    frame.MRImageFrameTypeSequence = Sequence([kind])
                    if "b" in extra:
                        frame.MRDiffusionSequence = Sequence([_item(DiffusionBValue=extra["b"])])
                    frame.MREchoSequence = Sequence([_item(EffectiveEchoTime=extra.get("te", 3.0))])
                    frame.PlanePositionSequence = Sequence([_item(ImagePositionPatient=[100.0 * o, 0.0, 5.0 * z])])
                    frame.PlaneOrientationSequence = Sequence([_item(ImageOrientationPatient=orientation)])
                    frames.append(frame)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
        ds.NumberOfFrames = len(frames)
        return [ds]

    return build


def siemens(coil: str = "HE1-4", **tags) -> dict:
    return {"Manufacturer": "SIEMENS", "private": {SIEMENS_COIL: ("LO", coil)}, **tags}


def ge(sequence: str = "", **tags) -> dict:
    private = {GE_SEQUENCE: ("LO", sequence)} if sequence else {}
    return {"Manufacturer": "GE MEDICAL SYSTEMS", "private": private, **tags}


def philips(technique: str = "", **tags) -> dict:
    private = {PHILIPS_TECHNIQUE: ("LO", technique)} if technique else {}
    return {"Manufacturer": "Philips Medical Systems", "private": private, **tags}


def b_siemens(*bs: float) -> tuple[dict, ...]:
    return tuple({"private": {SIEMENS_B: ("IS", int(b))}} for b in bs)


def b_ge(*raw: str) -> tuple[dict, ...]:
    return tuple({"private": {GE_B: ("IS", value.split("\\"))}} for value in raw)


def b_philips(*bs: float, raw: bool = False) -> tuple[dict, ...]:
    if raw:  # an implicit-VR file read without the private dictionary: FL arrives as bytes
        return tuple({"private": {PHILIPS_B: ("UN", struct.pack("<f", b))}} for b in bs)
    return tuple({"private": {PHILIPS_B: ("FL", b)}} for b in bs)


def b_standard(*bs: float) -> tuple[dict, ...]:
    return tuple({"DiffusionBValue": b} for b in bs)


def echoes(*tes: float) -> tuple[dict, ...]:
    return tuple({"EchoTime": te, "EchoNumbers": i + 1} for i, te in enumerate(tes))


ORIG = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
GE_ORIG = ["ORIGINAL", "PRIMARY", "OTHER"]
PH_FFE = ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]
PH_SE = ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"]
SE = {"ScanningSequence": "SE", "SequenceVariant": ["SK", "SP", "OSP"], "MRAcquisitionType": "2D"}
IR = {"ScanningSequence": ["SE", "IR"], "SequenceVariant": ["SK", "SP", "MP", "OSP"], "MRAcquisitionType": "2D"}
SPGR3D = {"ScanningSequence": "GR", "SequenceVariant": ["SK", "SP", "OSP"], "MRAcquisitionType": "3D"}
EPI = {"ScanningSequence": "EP", "SequenceVariant": ["SK", "SP"], "MRAcquisitionType": "2D"}
BODY = {"BodyPartExamined": "ABDOMEN"}
XA = {"Manufacturer": "Siemens Healthineers", "ReceiveCoilName": "HeadNeck_20", "MRAcquisitionType": "2D"}
XA_BODY = {**XA, "ReceiveCoilName": "Body_18", "BodyPartExamined": "PELVIS"}
PH_ENH = {"Manufacturer": "Philips", "BodyPartExamined": "BRAIN", "MRAcquisitionType": "2D"}


@dataclass(frozen=True)
class Case:
    vendor: str
    id: str
    build: Callable[[], list[Dataset]]
    expect: tuple[str, ...]  # exact labels; () = silent
    why: str = ""  # a fragment of the deciding rule's ``why``

    def facts(self) -> HeaderFacts:
        built = self.build()  # DICOM datasets, or a converter's sidecar and the image's volume count
        return header.facts_from_sidecar(*built) if isinstance(built, tuple) else header.facts_from_datasets(built)


CASES: tuple[Case, ...] = (
    # ---- Siemens classic (ImageType M/P/ND/NORM/MOSAIC, SequenceName, private coil and b-value)
    Case("Siemens", "mprage", classic(siemens(
        ImageType=ORIG, ScanningSequence=["GR", "IR"], SequenceVariant=["SK", "SP", "MP"], MRAcquisitionType="3D",
        SequenceName="*tfl3d1_16ns", RepetitionTime=2300, EchoTime=2.98, InversionTime=900, FlipAngle=9)),
        T1_BRAIN, "inversion-prepared, TI 300-1400"),
    Case("Siemens", "t2-tse-head32", classic(siemens(
        "HEA;HEP", ImageType=ORIG, **SE, SequenceName="*tse2d1_25", RepetitionTime=5000, EchoTime=98,
        FlipAngle=150)), ("T2w",), "spin echo, TE ≥ 70 ms, TR ≥ 800 ms (T2"),
    Case("Siemens", "flair-tir2d", classic(siemens(
        ImageType=ORIG, **IR, SequenceName="*tir2d1_21", RepetitionTime=9000, EchoTime=81, InversionTime=2500,
        FlipAngle=150)), ("FLAIR",), "TI ≥ 1500 ms"),
    Case("Siemens", "t1-se", classic(siemens(
        ImageType=ORIG, **SE, SequenceName="*se2d1", RepetitionTime=550, EchoTime=9.1, FlipAngle=90)),
        T1_BRAIN, "spin echo, TE < 30 ms, TR < 1000 ms"),
    Case("Siemens", "pd-tse", classic(siemens(
        ImageType=ORIG, **SE, SequenceName="*tse2d1_5", RepetitionTime=3000, EchoTime=12, FlipAngle=150)),
        (OTHER,), "proton-density weighted"),
    Case("Siemens", "dual-echo-pd-t2", classic(siemens(
        ImageType=ORIG, **SE, SequenceName="*tse2d2_5", RepetitionTime=3000, FlipAngle=150), echoes(12, 96)),
        SILENT),
    Case("Siemens", "stir-body", classic(siemens(
        "BO1,2;SP5", ImageType=ORIG, **IR, SequenceName="*tir2d1_15", RepetitionTime=4000, EchoTime=60,
        InversionTime=160)), ("body-T2w-fs",), "TI 80-300 ms"),
    Case("Siemens", "stir-brain-no-class", classic(siemens(
        ImageType=ORIG, **IR, SequenceName="*tir2d1_15", RepetitionTime=4000, EchoTime=60, InversionTime=160)),
        SILENT),
    Case("Siemens", "t2-fs-body", classic(siemens(
        "BO1,2;SP5", ImageType=ORIG, **SE, ScanOptions=["FS", "PFP"], SequenceName="*tse2d1_21",
        RepetitionTime=4000, EchoTime=90, **BODY)), ("body-T2w-fs",), "fat saturation"),
    Case("Siemens", "vibe-body", classic(siemens(
        "BO1,2;SP5", ImageType=ORIG, **SPGR3D, SequenceName="*fl3d1", RepetitionTime=4.0, EchoTime=1.9,
        FlipAngle=10, **BODY)), T1_BODY, "flip ≥ 1.5 × Ernst"),
    Case("Siemens", "pd-ref-low-flip", classic(siemens(
        "BO1,2;SP5", ImageType=ORIG, **SPGR3D, SequenceName="*tfl3d1_16", RepetitionTime=5.0, EchoTime=1.5,
        FlipAngle=2, BodyPartExamined="PROSTATE")), (OTHER,), "flip ≤ 0.6 × Ernst"),
    Case("Siemens", "trufi-bssfp", classic(siemens(
        "BO1,2;SP5", ImageType=ORIG, ScanningSequence="GR", SequenceVariant="SK", MRAcquisitionType="2D",
        SequenceName="*tfi2d1_192", RepetitionTime=3.6, EchoTime=1.5, FlipAngle=60, **BODY)), SILENT),
    Case("Siemens", "tracew-body", classic(siemens(
        "BO1,2;SP5", ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW", "ND"], **EPI,
        SequenceName="*ep_b1000t", RepetitionTime=2700, EchoTime=63, BodyPartExamined="PROSTATE"),
        b_siemens(50, 400, 800)), ("body-DWI",), "trace / calculated-b"),
    Case("Siemens", "calc-bvalue-body", classic(siemens(
        "BO1,2;SP5", ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "CALC_BVALUE", "ND"], **EPI,
        SequenceName="*ep_b50_800", RepetitionTime=2700, EchoTime=63, BodyPartExamined="PROSTATE"),
        b_siemens(1400)), ("body-DWI",), "trace / calculated-b"),
    Case("Siemens", "adc-brain", classic(siemens(
        ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"], **EPI, SequenceName="*ep_b0_1000",
        RepetitionTime=6000, EchoTime=90), b_siemens(1000)), ("ADC",), "ADC map"),
    Case("Siemens", "adc-body", classic(siemens(
        "BO1,2;SP5", ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"], **EPI, **BODY),
        b_siemens(800)), ("body-ADC",), "ADC map"),
    Case("Siemens", "dwi-mosaic-raw", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "MOSAIC"], **EPI, SequenceName="*ep_b1000#1",
        RepetitionTime=8000, EchoTime=90), b_siemens(0, 1000, 1000, 1000), slices=1),
        ("DWI",), "ImageType says diffusion, with b > 50"),
    Case("Siemens", "fa-map", classic(siemens(ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "FA", "ND"], **EPI),
                                      b_siemens(1000)), (OTHER,), "derived or non-anatomical"),
    Case("Siemens", "exp-adc", classic(siemens(ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "EXP", "ND"], **EPI),
                                       b_siemens(1000)), (OTHER,), "derived or non-anatomical"),
    Case("Siemens", "bold-mosaic-one-file", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"], ScanningSequence="EP", SequenceVariant="SK",
        SequenceName="*epfid2d1_64", RepetitionTime=2000, EchoTime=30, FlipAngle=90), slices=1),
        (OTHER,), "Siemens gradient-echo EPI (epfid) without diffusion, no time series"),
    Case("Siemens", "bold-mosaic-vb-se-ep", classic(siemens(  # syngo VB writes SE\EP on epfid (the real FMRI)
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"], ScanningSequence=["SE", "EP"], SequenceVariant="SK",
        SequenceName="*epfid2d1_64", RepetitionTime=2200, EchoTime=30, FlipAngle=90), slices=1),
        (OTHER,), "Siemens gradient-echo EPI (epfid) without diffusion, no time series"),
    Case("Siemens", "bold-time-series", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"], ScanningSequence=["SE", "EP"], SequenceVariant="SK",
        SequenceName="*epfid2d1_64", RepetitionTime=2000, EchoTime=30, FlipAngle=77), tuple({} for _ in range(6)),
        slices=1), (OTHER,), "Siemens gradient-echo EPI (epfid) time series"),
    Case("Siemens", "pcasl-epi", classic(siemens(  # the BOLD readout, its images marked ASL: no BOLD run
        ImageType=["ORIGINAL", "PRIMARY", "ASL", "NONE", "ND", "MOSAIC"], **EPI, SequenceName="*epfid2d1_64",
        RepetitionTime=4000, EchoTime=14, FlipAngle=90), tuple({} for _ in range(8)), slices=1),
        (OTHER,), "ImageType says ASL / perfusion"),
    Case("Siemens", "asl-relcbf-map", classic(siemens(
        ImageType=["DERIVED", "PRIMARY", "ASL", "RELCBF", "ND"], **EPI, SequenceName="*epfid2d1_64")),
        (OTHER,), "derived or non-anatomical"),
    Case("Siemens", "fieldmap-magnitude", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], ScanningSequence="GR", SequenceVariant="SP",
        SequenceName="*fm2d2r", RepetitionTime=500, FlipAngle=60), echoes(4.92, 7.38)), (OTHER,), "fm2d"),
    Case("Siemens", "fieldmap-phase", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "P", "ND"], ScanningSequence="GR", SequenceVariant="SP",
        SequenceName="*fm2d2r", RepetitionTime=500, EchoTime=7.38, FlipAngle=60)), (OTHER,), "phase difference image"),
    Case("Siemens", "flash-2d-t1", classic(siemens(  # 2D FLASH T1: TR 250 ms, flip 70° (Ernst 39°)
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], ScanningSequence="GR", SequenceVariant=["SP", "OSP"],
        MRAcquisitionType="2D", SequenceName="*fl2d1", RepetitionTime=250, EchoTime=2.5, FlipAngle=70)), T1_BRAIN,
        "spoiled gradient echo (not 3D)"),
    Case("Siemens", "tof-like-3d-gre-without-tone-name", classic(siemens(  # TR 23 ms 3D GRE: T1 or TOF? silent
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], ScanningSequence="GR", SequenceVariant=["SP", "OSP"],
        MRAcquisitionType="3D", SequenceName="*fl3d1r", RepetitionTime=23, EchoTime=3.6, FlipAngle=18)), SILENT),
    Case("Siemens", "fieldmap-without-image-type", classic(siemens(  # neither M nor P: still a field map
        ImageType=["ORIGINAL", "PRIMARY"], ScanningSequence="GR", SequenceVariant="SP",
        SequenceName="*fm2d2r", RepetitionTime=500, FlipAngle=60), echoes(4.92, 7.38)), (OTHER,),
        "Siemens gradient-echo field map sequence (fm2d/fm3d)"),
    Case("Siemens", "swi-magnitude", classic(siemens(
        ImageType=ORIG, ScanningSequence="GR", SequenceVariant="SP", MRAcquisitionType="3D",
        SequenceName="*swi3d1r", RepetitionTime=28, EchoTime=20, FlipAngle=15)), ("SWI",), "Siemens SWI sequence"),
    Case("Siemens", "swi-mnip", classic(siemens(ImageType=["DERIVED", "PRIMARY", "MNIP", "ND"], SequenceName="*swi3d1r")),
         ("SWI",), "minimum-intensity"),
    Case("Siemens", "localizer-3-plane", classic(siemens(
        ImageType=ORIG, ScanningSequence="GR", SequenceVariant="SP", SequenceName="*fl2d1", RepetitionTime=8.6,
        EchoTime=4.0, FlipAngle=20), orientations=(AX, COR, SAG)), (OTHER,), "several orientations"),
    Case("Siemens", "asl-tgse", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], ScanningSequence=["GR", "SE"], MRAcquisitionType="3D",
        SequenceName="*tgse3d1_512", RepetitionTime=4600, EchoTime=16)), (OTHER,), "GRASE"),
    Case("Siemens", "tof-tone", classic(siemens(
        ImageType=ORIG, **SPGR3D, SequenceName="*fl3d1r_t70", RepetitionTime=22, EchoTime=3.6, FlipAngle=18)),
        (OTHER,), "TONE ramp"),
    Case("Siemens", "tof-mip", classic(siemens(ImageType=["DERIVED", "PRIMARY", "MIP_SAG", "ND"], **SPGR3D,
                                               SequenceName="*fl3d1r_t70")), (OTHER,), "derived or non-anatomical"),
    Case("Siemens", "se-epi-b0-fieldmap", classic(siemens(  # a b-value written: a diffusion b=0, not a field map
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], **EPI, SequenceName="*epse2d1_86", RepetitionTime=8000,
        EchoTime=66), b_siemens(0)), SILENT),
    Case("Siemens", "se-epi-fieldmap", classic(siemens(
        ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], **EPI, SequenceName="*epse2d1_86", RepetitionTime=8000,
        EchoTime=66), ({}, {}, {})), (OTHER,), "Siemens spin-echo EPI (epse)"),
    Case("Siemens", "derived-secondary-only", classic(siemens(ImageType=["DERIVED", "SECONDARY"])), SILENT),
    # ---- Siemens XA enhanced multi-frame (FrameType, AcquisitionContrast, per-frame b/TE/plane)
    Case("Siemens XA", "mprage", enhanced(
        {**XA, "MRAcquisitionType": "3D", "EchoPulseSequence": "GRADIENT", "InversionRecovery": "YES",
         "PulseSequenceName": "*tfl3d1_16ns"}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "T1", tr=2300, flip=8,
        ti=900), T1_BRAIN, "inversion-prepared"),
    Case("Siemens XA", "t1-by-contrast-only", enhanced(  # no sequence flags: the contrast value speaks
        {**XA}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "T1", per_position=({"te": 2.5},)), T1_BRAIN,
        "AcquisitionContrast T1, TE < 30 ms"),
    Case("Siemens XA", "t2-by-contrast-only", enhanced(
        {**XA}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "T2", per_position=({"te": 95},)), ("T2w",),
        "AcquisitionContrast T2, TE ≥ 60 ms"),
    Case("Siemens XA", "t2-contrast-short-te", enhanced(  # "T2" with a 10 ms echo is no T2 weighting
        {**XA}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "T2", per_position=({"te": 10},)), SILENT),
    Case("Siemens XA", "dwi", enhanced(
        {**XA, "EchoPulseSequence": "SPIN", "EchoPlanarPulseSequence": "YES"},
        ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"], "DIFFUSION", per_position=({"b": 0}, {"b": 1000}), tr=7000),
        ("DWI",), "ImageType says diffusion, with b > 50"),
    Case("Siemens XA", "trace-by-contrast", enhanced(
        {**XA, "EchoPulseSequence": "SPIN", "EchoPlanarPulseSequence": "YES"},
        ["DERIVED", "PRIMARY", "M", "NONE"], "DIFFUSION", per_position=({"b": 1000},)),
        ("DWI",), "AcquisitionContrast DIFFUSION"),
    Case("Siemens XA", "adc", enhanced(
        {**XA, "EchoPulseSequence": "SPIN", "EchoPlanarPulseSequence": "YES"},
        ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"], "DIFFUSION", per_position=({"b": 1000},)), ("ADC",), "ADC map"),
    Case("Siemens XA", "b0-only", enhanced(
        {**XA, "EchoPulseSequence": "SPIN", "EchoPlanarPulseSequence": "YES"},
        ["ORIGINAL", "PRIMARY", "M", "NONE"], "DIFFUSION", per_position=({"b": 0},)), SILENT),
    Case("Siemens XA", "flair", enhanced(
        {**XA, "EchoPulseSequence": "SPIN", "InversionRecovery": "YES"}, ["ORIGINAL", "PRIMARY", "M", "NONE"],
        "FLUID_ATTENUATED", per_position=({"te": 81},), tr=9000, ti=2500), ("FLAIR",), "FLUID_ATTENUATED"),
    Case("Siemens XA", "t2-body", enhanced(
        {**XA_BODY, "EchoPulseSequence": "SPIN"}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "T2",
        per_position=({"te": 104},), tr=5000), T2_BODY, "spin echo, TE ≥ 70 ms"),
    Case("Siemens XA", "stir-body", enhanced(
        {**XA_BODY, "EchoPulseSequence": "SPIN", "InversionRecovery": "YES"}, ["ORIGINAL", "PRIMARY", "M", "NONE"],
        "STIR", per_position=({"te": 60},), tr=4000, ti=160), ("body-T2w-fs",), "AcquisitionContrast STIR"),
    Case("Siemens XA", "pd", enhanced(
        {**XA, "EchoPulseSequence": "SPIN"}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "PROTON_DENSITY",
        per_position=({"te": 12},), tr=3000), (OTHER,), "non-target series"),
    Case("Siemens XA", "asl-by-contrast", enhanced(
        {**XA, "EchoPulseSequence": "GRADIENT", "EchoPlanarPulseSequence": "YES"},
        ["ORIGINAL", "PRIMARY", "M", "NONE"], "PERFUSION", per_position=tuple({"te": 14} for _ in range(6)), tr=4000),
        (OTHER,), "AcquisitionContrast PERFUSION"),
    Case("Siemens XA", "localizer-3-plane", enhanced(
        {**XA, "EchoPulseSequence": "GRADIENT"}, ["ORIGINAL", "PRIMARY", "M", "NONE"], "T1",
        orientations=(AX, COR, SAG)), (OTHER,), "several orientations"),
    Case("Siemens XA", "phase", enhanced(
        {**XA, "EchoPulseSequence": "GRADIENT"}, ["ORIGINAL", "PRIMARY", "P", "NONE"], "T2_STAR"),
        (OTHER,), "phase / field-map"),
    Case("Siemens XA", "bold-time-series", enhanced(
        {**XA, "EchoPulseSequence": "GRADIENT", "EchoPlanarPulseSequence": "YES"},
        ["ORIGINAL", "PRIMARY", "M", "NONE"], per_position=tuple({"te": 30} for _ in range(8)), tr=800),
        (OTHER,), "five or more volumes"),
    # ---- GE (private sequence name 0019,109C; b-value 0043,1039 with +1e9; ScanOptions *_GEMS)
    Case("GE", "bravo", classic(ge(
        "efgre3d", ImageType=GE_ORIG, ScanningSequence="GR", SequenceVariant=["SS", "SK"], MRAcquisitionType="3D",
        ScanOptions=["FAST_GEMS", "EDR_GEMS", "IR_GEMS", "ACC_GEMS"], RepetitionTime=8.2, EchoTime=3.2,
        InversionTime=450, FlipAngle=12, ReceiveCoilName="8HRBRAIN")), T1_BRAIN, "inversion-prepared"),
    Case("GE", "flair", classic(ge(
        "fsefr", ImageType=GE_ORIG, ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SS"],
        RepetitionTime=9000, EchoTime=120, InversionTime=2200, ReceiveCoilName="32Ch Head")),
        ("FLAIR",), "TI ≥ 1500 ms"),
    Case("GE", "t2-fse-torso", classic(ge(
        "fse-xl", ImageType=GE_ORIG, ScanningSequence="SE", SequenceVariant=["SK", "OSP"], RepetitionTime=4000,
        EchoTime=100, ReceiveCoilName="8CH TORSO")), T2_BODY, "(T2-weighted)"),
    Case("GE", "dwi-b-plus-1e9", classic(ge(
        "epi2", ImageType=GE_ORIG, ScanningSequence=["SE", "EP"], RepetitionTime=8000, EchoTime=80,
        ReceiveCoilName="32Ch Head"), b_ge("1000000000\\8\\0\\0", "1000001000\\8\\0\\0")),
        ("DWI",), "two or more b-values"),
    Case("GE", "dwi-b-plain", classic(ge(
        "epi2", ImageType=GE_ORIG, ScanningSequence=["SE", "EP"], RepetitionTime=8000, EchoTime=80,
        ReceiveCoilName="32Ch Head"), b_ge("0\\8\\0\\0", "1000\\8\\0\\0")), ("DWI",), "two or more b-values"),
    Case("GE", "adc-like-derived-epi", classic(ge(
        "epi2", ImageType=["DERIVED", "PRIMARY"], ScanningSequence=["SE", "EP"], RepetitionTime=8000,
        EchoTime=80), b_ge("1000001000\\8\\0\\0")), SILENT),
    Case("GE", "adc-like-derived-se", classic(ge(
        ImageType=["DERIVED", "SECONDARY"], ScanningSequence="SE", RepetitionTime=8000, EchoTime=80),
        b_ge("1000001000\\8\\0\\0")), SILENT),
    Case("GE", "se-epi-fieldmap", classic(ge(
        "epi", ImageType=GE_ORIG, ScanningSequence=["SE", "EP"], RepetitionTime=6000, EchoTime=70,
        ReceiveCoilName="32Ch Head"), ({}, {})), (OTHER,), "ScanningSequence SE and EP"),
    Case("GE", "localizer", classic(ge(
        "fgre", ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"], ScanningSequence="GR", SequenceVariant="SS")),
        (OTHER,), "localizer"),
    Case("GE", "b0map", classic(ge(
        "B0map", ImageType=GE_ORIG, ScanningSequence="RM", RepetitionTime=200, EchoTime=4.6, FlipAngle=20,
        BodyPartExamined="BRAIN")), (OTHER,), "GE B0 field map"),
    Case("GE", "b0rf", classic(ge(  # the development set's GE B0 map (DV27), the name its files carry
        "B0rf", ImageType=GE_ORIG, ScanningSequence="RM", SequenceVariant="NONE", ScanOptions="VB_GEMS",
        RepetitionTime=200, EchoTime=4.608, FlipAngle=20, MRAcquisitionType="2D", BodyPartExamined="BRAIN")),
        (OTHER,), "GE B0 field map"),
    Case("GE", "b0map-hz-image-alone", classic(ge(  # one image of it, as a dcm2niix sidecar lists its type (NIfTI input)
        "B0map", ImageType=GE_ORIG + ["FIELDMAPHZ"], ScanningSequence="RM", RepetitionTime=200, EchoTime=4.6)),
        (OTHER,), "one of its two images converted already"),
    Case("GE", "bold-time-series", classic(ge(
        "epiRT", ImageType=GE_ORIG, ScanningSequence=["EP", "GR"], RepetitionTime=2000, EchoTime=30,
        FlipAngle=77), tuple({} for _ in range(6))), (OTHER,), "EPI time series"),
    Case("GE", "dce-time-series", classic(ge(  # repeated spoiled GRE phases: a time series, not EPI
        "fgre3d", ImageType=GE_ORIG, ScanningSequence="GR", SequenceVariant=["SS", "SP"], RepetitionTime=4,
        EchoTime=1.5, FlipAngle=12), tuple({} for _ in range(6))), (OTHER,), "(BOLD/ASL/DCE)"),
    Case("GE", "bold-temporal-positions", classic(ge(
        "epiRT", ImageType=GE_ORIG, ScanningSequence=["EP", "GR"], RepetitionTime=2000, EchoTime=30,
        NumberOfTemporalPositions=200)), (OTHER,), "five or more volumes"),
    Case("GE", "swan-like-3d-gre", classic(ge(
        "swan", ImageType=GE_ORIG, ScanningSequence="GR", SequenceVariant=["SS", "SP"], MRAcquisitionType="3D",
        RepetitionTime=40, EchoTime=25, FlipAngle=15, ReceiveCoilName="HNS Head")), ("SWI",), "long TE and short TR"),
    # ---- Philips classic (ImageType M_FFE/M/FFE, private technique 2001,1020, b 2001,1003 FL)
    Case("Philips", "t1tfe", classic(philips(
        "T1TFE", ImageType=PH_FFE, ScanningSequence="GR", SequenceVariant="MP", MRAcquisitionType="3D",
        RepetitionTime=6.5, EchoTime=2.9, FlipAngle=9, BodyPartExamined="BRAIN")), T1_BRAIN, "MPRAGE / TFE"),
    Case("Philips", "dwise", classic(philips(
        "DwiSE", ImageType=PH_SE, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=4000, EchoTime=70,
        BodyPartExamined="BRAIN"), b_philips(0.0, 1000.0)), ("DWI",), "two or more b-values"),
    Case("Philips", "dwise-b-as-raw-bytes", classic(philips(
        "DwiSE", ImageType=PH_SE, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=4000, EchoTime=70,
        BodyPartExamined="BRAIN"), b_philips(0.0, 1000.0, raw=True)), ("DWI",), "two or more b-values"),
    Case("Philips", "adc", classic(philips(
        "DwiSE", ImageType=["DERIVED", "PRIMARY", "ADC", "ADC"], ScanningSequence="SE", BodyPartExamined="LIVER"),
        b_philips(800.0)), ("body-ADC",), "ADC map"),
    Case("Philips", "phase-map", classic(philips(
        "T1FFE", ImageType=["ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"], ScanningSequence="GR",
        SequenceVariant="SP", MRAcquisitionType="3D", RepetitionTime=20, FlipAngle=10), echoes(2.3, 4.6)),
        (OTHER,), "phase / field-map"),
    Case("Philips", "perfusion", classic(philips(
        "GraSE", ImageType=["ORIGINAL", "PRIMARY", "PERFUSION_FFE", "PERFUSION", "FFE"], ScanningSequence="GR",
        MRAcquisitionType="3D", RepetitionTime=4250, EchoTime=9)), (OTHER,), "ImageType says ASL / perfusion"),
    Case("sidecar", "asl-labeling-type-only", lambda: (  # a GE-style pCASL EPI sidecar without an ASL token
        {"Manufacturer": "GE", "ImageType": ["ORIGINAL", "PRIMARY"], "ScanningSequence": "EP", "EchoTime": 0.012,
         "RepetitionTime": 4.0, "ArterialSpinLabelingType": "PCASL"}, (), 8),
        (OTHER,), "sidecar's ArterialSpinLabelingType"),
    Case("Philips", "feepi-bold", classic(philips(
        "FEEPI", ImageType=PH_FFE, ScanningSequence="GR", RepetitionTime=2000, EchoTime=30, FlipAngle=90)),
        (OTHER,), "Philips field-echo EPI (FEEPI) without diffusion, no time series"),
    Case("Philips", "feepi-bold-time-series", classic(philips(  # Philips writes GR, no EP: the technique tells
        "FEEPI", ImageType=PH_FFE, ScanningSequence="GR", RepetitionTime=2000, EchoTime=30, FlipAngle=90),
        tuple({} for _ in range(6))), (OTHER,), "Philips field-echo EPI (FEEPI) time series"),
    Case("Philips", "seepi-fieldmap", classic(philips(
        "SEEPI", ImageType=PH_SE, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=5000, EchoTime=65,
        BodyPartExamined="BRAIN")), (OTHER,), "Philips spin-echo EPI (SEEPI)"),
    Case("Philips", "flair", classic(philips(
        "TIR", ImageType=PH_SE, ScanningSequence=["SE", "IR"], RepetitionTime=11000, EchoTime=125,
        InversionTime=2800, BodyPartExamined="BRAIN")), ("FLAIR",), "TI ≥ 1500 ms"),
    Case("Philips", "enhanced-dti", enhanced(
        {**PH_ENH, "EchoPulseSequence": "SPIN", "EchoPlanarPulseSequence": "YES", "PulseSequenceName": "DwiSE"},
        ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"], "DIFFUSION", per_position=({"b": 0.001}, {"b": 1000.0}),
        tr=4000), ("DWI",), "AcquisitionContrast DIFFUSION"),
    Case("Philips", "enhanced-b0-0.001", enhanced(
        {**PH_ENH, "EchoPulseSequence": "SPIN", "EchoPlanarPulseSequence": "YES", "PulseSequenceName": "DwiSE"},
        ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"], "DIFFUSION", per_position=({"b": 0.001},)), SILENT),
    Case("Philips", "enhanced-t2-abdomen", enhanced(
        {**PH_ENH, "BodyPartExamined": "ABDOMEN", "EchoPulseSequence": "SPIN", "PulseSequenceName": "TSE"},
        ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"], "T2", per_position=({"te": 80},), tr=1200),
        T2_BODY, "spin echo, TE ≥ 70 ms"),
    # ---- Canon (CANON_MEC; standard DiffusionBValue; SequenceName SEEPI2D)
    Case("Canon", "dti", classic({
        "Manufacturer": "CANON_MEC", "ImageType": ["ORIGINAL", "PRIMARY"], "ScanningSequence": ["SE", "EP"],
        "SequenceName": "SEEPI2D+0.7", "RepetitionTime": 10000, "EchoTime": 79, "ReceiveCoilName": "32CH HEAD SPDR"},
        b_standard(0, 1500, 1500)), ("DWI",), "two or more b-values"),
    Case("Canon", "seepi-b0-only", classic({
        "Manufacturer": "CANON_MEC", "ImageType": ["ORIGINAL", "PRIMARY"], "ScanningSequence": ["SE", "EP"],
        "SequenceName": "SEEPI2D", "RepetitionTime": 10000, "EchoTime": 79}, b_standard(0)), SILENT),
    Case("Canon", "t2-fse", classic({
        "Manufacturer": "CANON_MEC", "ImageType": ["ORIGINAL", "PRIMARY"], "ScanningSequence": "SE",
        "SequenceName": "FSE2D", "RepetitionTime": 4500, "EchoTime": 100, "ReceiveCoilName": "32CH HEAD SPDR"}),
        ("T2w",), "(T2-weighted)"),
    # ---- UIH (standard tags)
    Case("UIH", "t1-gre-3d", classic({
        "Manufacturer": "UIH", "ImageType": ["ORIGINAL", "PRIMARY", "M"], "ScanningSequence": "GR",
        "SequenceVariant": "SP", "MRAcquisitionType": "3D", "RepetitionTime": 7.0, "EchoTime": 3.0, "FlipAngle": 15,
        "BodyPartExamined": "HEAD"}), T1_BRAIN, "flip ≥ 1.5 × Ernst"),
    Case("UIH", "dwi", classic({
        "Manufacturer": "UIH", "ImageType": ["ORIGINAL", "PRIMARY", "M"], "ScanningSequence": ["SE", "EP"],
        "RepetitionTime": 5000, "EchoTime": 75, "BodyPartExamined": "HEAD"}, b_standard(0, 1000)),
        ("DWI",), "two or more b-values"),
    Case("UIH", "flair", classic({
        "Manufacturer": "UIH", "ImageType": ["ORIGINAL", "PRIMARY", "M"], "ScanningSequence": ["SE", "IR"],
        "RepetitionTime": 9000, "EchoTime": 110, "InversionTime": 2500, "BodyPartExamined": "HEAD"}),
        ("FLAIR",), "TI ≥ 1500 ms"),
    # ---- Hyperfine (0.064 T, standard tags only; values constructed, not from Hyperfine files)
    Case("Hyperfine", "t2-fse", classic({
        "Manufacturer": "Hyperfine", "MagneticFieldStrength": 0.064, "ImageType": ["ORIGINAL", "PRIMARY", "M"],
        "ScanningSequence": "SE", "RepetitionTime": 2500, "EchoTime": 180, "BodyPartExamined": "BRAIN"}),
        ("T2w",), "(T2-weighted)"),
    Case("Hyperfine", "t1-ir-fse-no-region", classic({
        "Manufacturer": "Hyperfine", "MagneticFieldStrength": 0.064, "ImageType": ["ORIGINAL", "PRIMARY", "M"],
        "ScanningSequence": ["SE", "IR"], "RepetitionTime": 1500, "EchoTime": 6, "InversionTime": 400}),
        T1_BRAIN + T1_BODY, "inversion-prepared"),
    Case("Hyperfine", "flair-short-tr-ti1400", classic({
        "Manufacturer": "Hyperfine", "MagneticFieldStrength": 0.064, "ImageType": ["ORIGINAL", "PRIMARY", "M"],
        "ScanningSequence": ["SE", "IR"], "RepetitionTime": 4000, "EchoTime": 180, "InversionTime": 1400,
        "BodyPartExamined": "BRAIN"}), SILENT),
    # ---- no vendor needed
    Case("any", "no-physics", classic({"Manufacturer": "SIEMENS"}), SILENT),
    Case("any", "ct", classic({"Manufacturer": "GE MEDICAL SYSTEMS", "Modality": "CT"}), (OTHER,), "not MR"),
)


def _verdict(case: Case) -> physics.PhysicsVerdict:
    return physics.witness(case.facts())


@pytest.mark.parametrize("case", CASES, ids=[f"{c.vendor}-{c.id}" for c in CASES])
def test_synthetic_header(case: Case):
    verdict = _verdict(case)
    assert verdict.labels == case.expect, verdict.reasons
    assert set(verdict.labels) <= set(ALL_LABELS)
    if case.expect:
        assert case.why and case.why in verdict.reasons[0], verdict.reasons
        assert verdict.label == "|".join(case.expect)
    else:
        assert verdict.silent and verdict.label == physics.SILENT


def test_every_rule_is_exercised():
    """Each row of the table decides at least one synthetic case, and rows are told apart by ``why``."""
    whys = [rule.why for rule in physics.RULES]
    assert len(set(whys)) == len(whys)
    decided = {_verdict(case).reasons[0] for case in CASES if case.expect}
    assert [why for why in whys if why not in decided] == []


# ----------------------------------------------------------------------------------------------
# Reading details the rules depend on


@pytest.mark.parametrize("raw, expected", [
    (struct.pack("<f", 1000.0), 1000.0),  # b"\0\0zD": prints, yet binary
    (struct.pack("<f", 800.0), 800.0),  # b"\0\0HD"
    (struct.pack("<f", 50.0), 50.0),
    (struct.pack("<f", 0.0), 0.0),
    (struct.pack("<d", 1500.0), 1500.0),
    (b"1000", 1000.0),
    (b"1000000000\\8\\0\\0 ", 1e9),
])
def test_private_bytes(raw, expected):
    assert header._float_from_bytes(raw) == pytest.approx(expected)


def test_tally_widens_first_file():
    """The first file of a classic DWI holds b=0 only: the series' b-values come from every file."""
    datasets = CASES_BY_ID["Siemens-dwi-mosaic-raw"].build()
    assert header.facts_from_dicom(datasets[0]).b_values == (0,)
    facts = header.facts_from_datasets(datasets)
    assert facts.b_values == (0, 1000) and facts.n_volumes == 4
    assert header.facts_from_datasets(CASES_BY_ID["Siemens-localizer-3-plane"].build()).n_orientations == 3


def test_siemens_coil_string_is_read_only_from_siemens():
    tags = {"ImageType": ORIG, "private": {SIEMENS_COIL: ("LO", "HE1-4")}}
    assert header.facts_from_dicom(_dataset({**tags, "Manufacturer": "SIEMENS"})).receive_coil == "HE1-4"
    assert header.facts_from_dicom(_dataset({**tags, "Manufacturer": "GE MEDICAL SYSTEMS"})).receive_coil == ""


@pytest.mark.parametrize("meta, bvals, expect", [
    # dcm2niix joins multi-valued CS with "_" and writes Siemens' coil elements as CoilString
    ({"ScanningSequence": "GR_IR", "SequenceVariant": "SK_SP_MP", "ScanOptions": "IR", "MRAcquisitionType": "3D",
      "RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9, "FlipAngle": 9, "CoilString": "HEA;HEP"},
     (), T1_BRAIN),
    ({"ScanningSequence": "SE_IR", "SequenceVariant": "SK_SP_MP", "RepetitionTime": 9, "EchoTime": 0.081,
      "InversionTime": 2.5, "ReceiveCoilName": "Head_32"}, (), ("FLAIR",)),
    ({"ScanningSequence": "SE", "ScanOptions": "PFP_FS", "RepetitionTime": 4, "EchoTime": 0.09,
      "BodyPartExamined": "PELVIS"}, (), ("body-T2w-fs",)),
    ({"ScanningSequence": "EP", "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "MOSAIC"],
      "CoilString": "HE1-4"}, ("0", "1000", "1000"), ("DWI",)),
    ({}, (), SILENT),  # a T1w rebuilt from NIfTI: no physics, no claim
    ({"SeriesDescription": "t1_mprage_sag", "ProtocolName": "T1w"}, (), SILENT),
])
def test_sidecar(meta, bvals, expect):
    assert physics.witness(header.facts_from_sidecar(meta, bvals)).labels == expect


# ----------------------------------------------------------------------------------------------
# Region: BodyPartExamined first, then the receive coil; neither → both regions' labels


@pytest.mark.parametrize("body_part, coil, region", [
    ("ABDOMEN", "", "body"), ("PROSTATE", "HE1-4", "body"), ("HEAD", "BO1,2;SP5", "brain"),
    ("BRAIN", "", "brain"), ("", "HE1-4", "brain"), ("", "HEA;HEP", "brain"), ("", "T:HEA;HEP", "brain"),
    ("", "HC1-7", "brain"), ("", "HE1-4;NE1,2", "brain"), ("", "8HRBRAIN", "brain"), ("", "32CH HEAD SPDR", "brain"),
    ("", "HEADNECK_20", "brain"), ("", "BO1,2;SP5", "body"), ("", "8CH TORSO", "body"), ("", "SENSE-TORSO", "body"),
    ("", "32CH BODY", "body"), ("", "BODY", None), ("", "", None), ("", "HEART", None), ("", "MULTI COIL", None),
])
def test_region(body_part, coil, region):
    acq = physics.Acquisition(body_part=body_part, receive_coil=coil)
    assert physics.region_of(acq) == region


@pytest.mark.parametrize("kind", sorted(physics.KIND_LABELS))
def test_no_region_allows_both_regions_labels(kind):
    both = physics.labels_for(kind, None)
    assert set(both) == set(physics.labels_for(kind, "brain")) | set(physics.labels_for(kind, "body"))
    assert len(both) == len(set(both))


def test_witness_without_region_names_both_regions():
    facts = HeaderFacts(scanning_sequence="SE", repetition_time=5000, echo_time=100)
    assert physics.region_of(physics.Acquisition.of(facts)) is None
    verdict = physics.witness(facts)
    assert verdict.labels == ("T2w", "body-T2w", "body-T2w-fs")
    assert not any(reason.startswith("region") for reason in verdict.reasons)
    assert physics.witness(replace(facts, body_part="HEAD")).labels == ("T2w",)


# ----------------------------------------------------------------------------------------------
# What the witness never reads: typed text


def test_acquisition_has_no_text_fields():
    names = {f.name for f in fields(physics.Acquisition)}
    assert not names & {"series_description", "protocol_name", "contrast_agent", "input_name"}


_TEXT = st.one_of(
    st.sampled_from(["T1 post contrast", "FLAIR", "ADC", "t2_tse_fs", "localizer", "DWI b1000", "SWI", "PD",
                     "arterial", "Gadovist", "", "BOLD rest", "T1w_ce", "field map"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\\"), max_size=30))
VENDOR_CASES = [c for c in CASES if c.vendor not in ("any", "sidecar")]  # DICOM cases: text is typed in


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(VENDOR_CASES), description=_TEXT, protocol=_TEXT, agent=_TEXT, name=_TEXT)
def test_typed_text_never_changes_the_verdict(case, description, protocol, agent, name):
    baseline = _verdict(case)
    datasets = case.build()
    for ds in datasets:
        ds.SeriesDescription, ds.ProtocolName, ds.ContrastBolusAgent = description, protocol, agent
    facts = header.facts_from_datasets(datasets)
    assert (facts.series_description, facts.contrast_agent) == (description.strip(), agent.strip())
    verdict = physics.witness(replace(facts, input_name=name))
    assert (verdict.labels, verdict.kind, verdict.reasons, verdict.fields) == (
        baseline.labels, baseline.kind, baseline.reasons, baseline.fields)


_num = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**9))


@settings(max_examples=150, deadline=None)
@given(sequence=st.text(max_size=12), variant=st.text(max_size=12), types=st.lists(st.text(max_size=8), max_size=4),
       tr=_num, te=st.lists(st.floats(allow_nan=False), max_size=3), ti=_num, flip=_num,
       b=st.lists(st.floats(allow_nan=False), max_size=3), volumes=st.one_of(st.none(), st.integers(-3, 50)),
       body=st.text(max_size=10), coil=st.text(max_size=10))
def test_witness_is_total(sequence, variant, types, tr, te, ti, flip, b, volumes, body, coil):
    facts = HeaderFacts(
        scanning_sequence=sequence, sequence_variant=variant, image_type=tuple(types), repetition_time=tr,
        echo_times=tuple(te), inversion_time=ti, flip_angle=flip, b_values=tuple(b), n_volumes=volumes,
        body_part=body, receive_coil=coil)
    verdict = physics.witness(facts)
    assert not any(reason.startswith("physics rules failed") for reason in verdict.reasons), verdict.reasons
    assert set(verdict.labels) <= set(ALL_LABELS)
    assert verdict.label == ("|".join(verdict.labels) or physics.SILENT)


# ----------------------------------------------------------------------------------------------
# The development set's real headers, read the way discovery reads them

SPEAK_FLOOR = 0.75


def real_verdicts(real: Path) -> list[tuple[str, str, str, physics.PhysicsVerdict]]:
    """(folder, vendor, true label, verdict) of each labelled DICOM series."""
    rows = []
    with open(real / "labels.tsv", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["format"] != "dicom":
                continue
            for series in discover.discover_dicom(real / row["path"]).series:
                rows.append((row["path"], row["vendor"], row["label"], physics.witness(series.header)))
    return rows


@pytest.fixture(scope="module")
def real_rows(real_data: Path):
    rows = real_verdicts(real_data)
    if not rows:
        pytest.skip("no labelled DICOM series")
    return rows


def test_real_headers_never_contradict_truth(real_rows):
    wrong = [(path, truth, v.label, v.reasons) for path, _, truth, v in real_rows if v.labels and truth not in v.labels]
    assert wrong == []


def test_real_headers_speak_often(real_rows):
    spoken = sum(1 for *_, v in real_rows if v.labels)
    assert spoken / len(real_rows) >= SPEAK_FLOOR, [(p, v.reasons) for p, *_, v in real_rows if not v.labels]


CASES_BY_ID = {f"{c.vendor.replace(' ', '-')}-{c.id}": c for c in CASES}


def _print_tables() -> None:  # python tests/test_physics.py: the tables of docs/physics.md
    print("| vendor | case | witness | deciding rule |\n|---|---|---|---|")
    for case in CASES:
        verdict = _verdict(case)
        print(f"| {case.vendor} | {case.id} | {verdict.label} | {verdict.reasons[0] if verdict.labels else '—'} |")
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import SHARED_DATA  # noqa: PLC0415

    real = SHARED_DATA / "real"
    if (real / "labels.tsv").is_file():
        print("\n| series | vendor | truth | witness | agrees | deciding rule |\n|---|---|---|---|---|---|")
        for path, vendor, truth, verdict in real_verdicts(real):
            agrees = "silent" if verdict.silent else ("yes" if truth in verdict.labels else "NO")
            print(f"| {path.split('/')[1]} | {vendor} | {truth} | {verdict.label} | {agrees} | "
                  f"{verdict.reasons[0] if verdict.labels else '—'} |")


if __name__ == "__main__":
    _print_tables()


def test_repeated_long_te_epi_is_no_time_series_and_a_recorded_ti_is_an_inversion():
    """A DWI whose b-values went unread (30 volumes, TE 85 ms) must not be called a BOLD run;
    a FLAIR whose ScanningSequence omits IR still has its inversion time."""
    from bidsapp.physics import witness
    from bidsapp.records import HeaderFacts

    dwi = HeaderFacts(scanning_sequence="EP", echo_times=(85.0,), repetition_time=6000, n_volumes=30,
                      image_type=("ORIGINAL", "PRIMARY", "OTHER"), body_part="BRAIN")
    assert witness(dwi).silent
    bold = HeaderFacts(scanning_sequence="EP", echo_times=(30.0,), repetition_time=2000, n_volumes=30)
    assert witness(bold).labels == ("other",)
    flair = HeaderFacts(scanning_sequence="SE", echo_times=(110.0,), repetition_time=9000, inversion_time=2500,
                        body_part="BRAIN")
    assert witness(flair).labels == ("FLAIR",)


@pytest.mark.parametrize("case_id", ["Siemens-se-epi-fieldmap", "GE-se-epi-fieldmap", "Philips-seepi-fieldmap"])
def test_se_epi_field_maps_are_named_by_kind(case_id):
    """Each vendor's SE-EPI field map is "other" for the content classes, of kind ``fmap_epi``
    (what ``naming.PLACED_OTHER`` puts in fmap/)."""
    assert _verdict(CASES_BY_ID[case_id]).kind == "fmap_epi"


@pytest.mark.parametrize("case_id", [
    "Siemens-se-epi-b0-fieldmap",  # a b=0 image of a diffusion sequence: the b-value is written
    "Canon-seepi-b0-only",
    "Siemens-XA-b0-only",
    "Canon-dti",  # a DWI whose first file is its b=0: the other files' b-values count
    "GE-dwi-b-plain",
    "Siemens-t2-tse-head32",  # a 2D spin echo without EPI
    "GE-t2-fse-torso",
])
def test_diffusion_b0_and_spin_echo_are_no_se_epi_field_map(case_id):
    assert _verdict(CASES_BY_ID[case_id]).kind != "fmap_epi"


def test_a_spin_echo_epi_time_series_is_no_field_map():
    """More than a few volumes (an SE-EPI time series, a DWI whose b-values went unread) is no field map."""
    facts = CASES_BY_ID["GE-se-epi-fieldmap"].facts()
    assert physics.witness(replace(facts, n_volumes=physics.FMAP_EPI_MAX_VOLUMES)).kind == "fmap_epi"
    assert physics.witness(replace(facts, n_volumes=physics.FMAP_EPI_MAX_VOLUMES + 1)).kind != "fmap_epi"
    assert physics.witness(replace(facts, n_volumes=None)).kind != "fmap_epi"  # unknown count: no claim
    derived = ("DERIVED", "PRIMARY")
    assert physics.witness(replace(facts, image_type=derived, frame_types=derived)).kind != "fmap_epi"


@pytest.mark.parametrize(("case_id", "kind"), [
    ("Siemens-bold-time-series", "bold"),  # syngo VB's SE\EP on an epfid run: the name wins over 12c's SE + EP
    ("Philips-feepi-bold-time-series", "bold"),
    ("GE-bold-time-series", "bold"),
    ("Siemens-bold-mosaic-one-file", OTHER),  # one volume is no time series, and no SE-EPI field map either
    ("Siemens-bold-mosaic-vb-se-ep", OTHER),
    ("Philips-feepi-bold", OTHER),
    ("Siemens-pcasl-epi", "asl"),  # an ASL EPI time series is no BOLD run
    ("Siemens-asl-tgse", "asl"),
    ("Siemens-XA-asl-by-contrast", "asl"),
    ("Philips-perfusion", "asl"),
    ("sidecar-asl-labeling-type-only", "asl"),  # without the labeling type: an EPI time series, named BOLD
    ("Siemens-asl-relcbf-map", OTHER),  # a perfusion map computed from ASL is no label/control series
])
def test_epi_time_series_and_asl_kinds(case_id, kind):
    """Which "other" series BIDS has a place for: gradient-echo EPI runs of five or more volumes
    (``func/``), ASL label/control series (``perf/``, left unplaced by ``naming.placement_problem``)."""
    assert _verdict(CASES_BY_ID[case_id]).kind == kind


@pytest.mark.parametrize("case_id", ["GE-b0map", "GE-b0rf"])
def test_ge_b0_map_is_a_direct_field_map(case_id):
    """A GE B0 map series (B0map/B0rf) is of kind ``fmap_fieldmap``: ``naming.PLACED_OTHER`` writes it as
    fmap/_fieldmap (Hz) with its _magnitude. One of its images converted already (a NIfTI input with
    dcm2niix's FIELDMAPHZ or MAGNITUDE token) is plain "other": alone it is no field map."""
    facts = CASES_BY_ID[case_id].facts()
    assert physics.witness(facts).kind == "fmap_fieldmap"
    for token in ("FIELDMAPHZ", "MAGNITUDE"):
        one_image = replace(facts, image_type=(*facts.image_type, token))
        assert (physics.witness(one_image).kind, physics.witness(one_image).labels) == (OTHER, (OTHER,))


def test_real_epfid_volume_and_pcasl_kinds(real_rows):
    """The development set's Siemens fMRI (one mosaic volume, SE\\EP written) is no SE-EPI field map
    and no time series; its Philips pCASL is ASL; its GE B0 map (B0rf) a direct field map."""
    kinds = {path.split("/")[1]: v.kind for path, _, _, v in real_rows}
    expected = {"siemens_12bit_FMRI_AX_ASC": OTHER, "philips_enh_1901_3DpCASL": "asl",
                "ge_fmap_6_CV_Neuro_B0map": "fmap_fieldmap"}
    if not expected.keys() <= kinds.keys():
        pytest.skip("development series absent")
    assert {name: kinds[name] for name in expected} == expected
