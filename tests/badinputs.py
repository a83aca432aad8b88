"""Generate the messy things real PACS exports contain, one small case per function.

Every case is a few kilobytes: it is the *shape* of the badness that matters (a missing tag, a
cut file, a second frame size), not the size. ``build_export`` lays them all out in one tree
for one patient plus a few patients with awkward IDs, and returns what each case is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from dicomgen import _base, uid, write_junk, write_series, write_sr, write_truncated
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless

PR_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"  # grayscale softcopy presentation state
KO_STORAGE = "1.2.840.10008.5.1.4.1.1.88.59"  # key object selection
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"

# Planted in every synthetic header: none of them may appear in derivatives, reports or logs.
PHI = {
    "PatientName": "Zyxwvut^Qwertyuiop",
    "PatientBirthDate": "19230417",
    "InstitutionName": "Xanadu Secret Clinic",
    "ReferringPhysicianName": "Dr^Mabuse^Kwyjibo",
    "InstitutionAddress": "42 Plughstrasse Nowhere",
    "OperatorsName": "Opname^Vorlonian",
}


def plant_phi(ds: Dataset) -> None:
    for key, value in PHI.items():
        setattr(ds, key, value)


def rewrite(paths: list[Path], change: Callable[[int, Dataset], None]) -> list[Path]:
    """Apply ``change(index, dataset)`` to each file of a series, in place."""
    for i, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        change(i, ds)
        ds.save_as(path, enforce_file_format=True)
    return paths


def series(directory: Path, number: int, description: str, **kw) -> list[Path]:
    """A synthetic series with PHI planted; 24×24 pixels, 6 slices unless told otherwise."""
    kw.setdefault("n_slices", 6)
    kw.setdefault("size", 24)
    kw.setdefault("patient_id", "BAD01")
    paths = write_series(directory, series_number=number, series_description=description, seed=number, **kw)
    return rewrite(paths, lambda i, ds: plant_phi(ds))


def _orient(paths: list[Path], row: list[float], col: list[float], thickness: float = 5.0) -> list[Path]:
    normal = np.cross(row, col)

    def change(i, ds):
        ds.ImageOrientationPatient = [round(v, 6) for v in row + col]
        ds.ImagePositionPatient = [round(float(v), 4) for v in normal * thickness * i]
        ds.SliceLocation = float(i) * thickness

    return rewrite(paths, change)


# --------------------------------------------------------------------------- image cases
def single_slice(d: Path, n: int) -> list[Path]:
    return series(d, n, "single_slice", n_slices=1)


def four_d(d: Path, n: int, positions: int = 3, timepoints: int = 4) -> list[Path]:
    """Same slice positions repeated over time (fMRI-like), one file per slice per timepoint."""
    paths = series(d, n, "ep2d_bold_4d", n_slices=positions * timepoints)

    def change(i, ds):
        t, z = divmod(i, positions)
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * 5.0]
        ds.SliceLocation = float(z) * 5.0
        ds.AcquisitionNumber = t + 1
        ds.TemporalPositionIdentifier = t + 1
        ds.AcquisitionTime = f"1200{t:02d}.000000"

    return rewrite(paths, change)


def mixed_size(d: Path, n: int) -> list[Path]:
    """One series whose last slices have a different matrix (a re-scan stitched into the UID)."""
    paths = series(d, n, "mixed_matrix", n_slices=6)

    def change(i, ds):
        if i >= 3:
            ds.Rows = ds.Columns = 32
            ds.PixelData = np.full((32, 32), 100 * i, np.uint16).tobytes()

    return rewrite(paths, change)


def no_geometry(d: Path, n: int) -> list[Path]:
    """Orientation, position, spacing and thickness tags removed."""
    tags = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "SliceThickness", "SliceLocation")

    def change(i, ds):
        for t in tags:
            if t in ds:
                delattr(ds, t)

    return rewrite(series(d, n, "no_geometry"), change)


def oblique(d: Path, n: int) -> list[Path]:
    a = math.radians(25)
    return _orient(series(d, n, "t2_tse_obl"), [1.0, 0.0, 0.0], [0.0, math.cos(a), math.sin(a)])


def sagittal(d: Path, n: int) -> list[Path]:
    return _orient(series(d, n, "t1_sag"), [0.0, 1.0, 0.0], [0.0, 0.0, -1.0])


def coronal(d: Path, n: int) -> list[Path]:
    return _orient(series(d, n, "t1_cor"), [1.0, 0.0, 0.0], [0.0, 0.0, -1.0])


def rle(d: Path, n: int) -> list[Path]:
    """RLE Lossless, the compressed syntax pydicom encodes without plugins."""
    return rewrite(series(d, n, "t1_rle"), lambda i, ds: ds.compress(RLELossless))


def all_zero(d: Path, n: int) -> list[Path]:
    return rewrite(series(d, n, "blank_zero"), lambda i, ds: setattr(ds, "PixelData", bytes(len(ds.PixelData))))


def no_pixel_data(d: Path, n: int) -> list[Path]:
    """An MR image IOD (Rows/Columns present) whose PixelData element is missing."""
    return rewrite(series(d, n, "no_pixels", n_slices=3), lambda i, ds: delattr(ds, "PixelData"))


def truncated_pixels(d: Path, n: int) -> list[Path]:
    """A series whose last file is cut inside the pixel data (the header still parses)."""
    paths = series(d, n, "cut_pixels")
    data = paths[-1].read_bytes()
    paths[-1].write_bytes(data[: len(data) - 400])
    return paths


def secondary_capture(d: Path, n: int) -> list[Path]:
    """A screenshot-like RGB secondary capture: no geometry, no MR parameters."""
    path = d / f"SC{n:03d}.dcm"
    d.mkdir(parents=True, exist_ok=True)
    ds = _base(SC_STORAGE, uid("sc", path))
    ds.Modality = "OT"
    ds.PatientID = "BAD01"
    ds.StudyInstanceUID = uid("study", "BAD01", "20240101")
    ds.SeriesInstanceUID = uid("sc-series", path)
    ds.SeriesNumber = n
    ds.SeriesDescription = "screen_save"
    ds.StudyDate = "20240101"
    ds.InstanceNumber = 1
    plant_phi(ds)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows = ds.Columns = 32
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.random.default_rng(n).integers(0, 255, (32, 32, 3), dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return [path]


def enhanced_multiframe(d: Path, n: int, frames: int = 6, size: int = 24, dimensions: bool = True) -> list[Path]:
    """One Enhanced MR file holding every slice as a frame (functional groups); without
    ``dimensions`` its DimensionIndexSequence is missing (a malformed export)."""
    path = d / f"EMR{n:03d}.dcm"
    d.mkdir(parents=True, exist_ok=True)
    ds = _base(ENHANCED_MR, uid("emr", path))
    ds.Modality = "MR"
    ds.PatientID = "BAD01"
    ds.StudyInstanceUID = uid("study", "BAD01", "20240101")
    ds.SeriesInstanceUID = uid("emr-series", path)
    ds.FrameOfReferenceUID = uid("for", ds.StudyInstanceUID)
    ds.SeriesNumber = n
    ds.SeriesDescription = ds.ProtocolName = "t1_enhanced"
    ds.StudyDate = ds.ContentDate = ds.AcquisitionDateTime = "20240101"
    ds.StudyTime = ds.ContentTime = "120000"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Manufacturer = "Philips"
    ds.MagneticFieldStrength = 3
    plant_phi(ds)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.NumberOfFrames = frames
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness, pm.SpacingBetweenSlices = [1.0, 1.0], 5.0, 5.0
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    timing = Dataset()
    timing.RepetitionTime, timing.FlipAngle = 500, 90
    echo = Dataset()
    echo.EffectiveEchoTime = 12
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PlaneOrientationSequence = Sequence([po])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    shared.MREchoSequence = Sequence([echo])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(frames):
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        fc = Dataset()
        fc.DimensionIndexValues = [1, k + 1]
        fc.TemporalPositionIndex = 1
        fc.InStackPositionNumber = k + 1
        fc.StackID = "1"
        fg.PlanePositionSequence = Sequence([pp])
        fg.FrameContentSequence = Sequence([fc])
        per_frame.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    if dimensions:
        stack, position = Dataset(), Dataset()
        stack.DimensionIndexPointer, stack.FunctionalGroupPointer = 0x00209056, 0x00209111  # StackID
        position.DimensionIndexPointer, position.FunctionalGroupPointer = 0x00209057, 0x00209111  # InStack
        ds.DimensionIndexSequence = Sequence([stack, position])
    ds.PixelData = np.random.default_rng(n).integers(0, 4000, (frames, size, size), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return [path]


# --------------------------------------------------------------------------- non-image objects
def presentation_state(path: Path, patient_id: str = "BAD01") -> Path:
    return _non_image(path, PR_STORAGE, "PR", patient_id)


def key_object(path: Path, patient_id: str = "BAD01") -> Path:
    return _non_image(path, KO_STORAGE, "KO", patient_id)


def _non_image(path: Path, sop_class: str, modality: str, patient_id: str) -> Path:
    ds = _base(sop_class, uid(modality, path))
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.StudyInstanceUID = uid("study", patient_id, "20240101")
    ds.SeriesInstanceUID = uid(modality, "series", path)
    ds.SeriesNumber = 900 + len(modality)
    ds.SeriesDescription = f"{modality} object"
    plant_phi(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def no_preamble(d: Path, n: int) -> list[Path]:
    """Files written without the 128-byte preamble and "DICM" (old ACR-NEMA style exports)."""
    paths = series(d, n, "t1_nopreamble")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False)
        data = path.read_bytes()
        if data[128:132] == b"DICM":
            path.write_bytes(data[132:])
    return paths


# Placeholders de-identification tools write over dates (none of them parses as a DICOM date).
BLANKED_DATES = ("***", "", "00000000", "1900")
DATE_KEYS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate")


def set_raw(ds: Dataset, keyword: str, value: str) -> None:
    """Store ``value`` as it is, even where pydicom would refuse or warn (an invalid DA, DS, ...)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    raw = value.encode("ascii") + (b" " if len(value) % 2 else b"")
    ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, False, True)


def blank_dates(ds: Dataset, value: str) -> None:
    """What a de-identification tool does to a header: every date overwritten by ``value``,
    acquisition times kept (heudiconv parses AcquisitionDate only beside AcquisitionTime)."""
    ds.AcquisitionTime = ds.get("AcquisitionTime") or "120000.000000"
    for key in DATE_KEYS:
        set_raw(ds, key, value)


def blanked_dates(d: Path, n: int, value: str = "***") -> list[Path]:
    return rewrite(series(d, n, "ep2d_diff_deid"), lambda i, ds: blank_dates(ds, value))


def unreadable_numbers(d: Path, n: int) -> list[Path]:
    """Times, ages and numbers a tool overwrote (TM, AS, DS, IS), beside valid dates."""

    def change(i, ds):
        ds.AcquisitionDate = "20240101"
        for key, value in (("AcquisitionTime", "***"), ("PatientAge", "***"), ("EchoTime", "***"),
                           ("AcquisitionNumber", "n/a"), ("PatientWeight", "unknown")):
            set_raw(ds, key, value)

    return rewrite(series(d, n, "t1_deid_numbers"), change)


def no_series_number(d: Path, n: int) -> list[Path]:
    return rewrite(series(d, n, "no_series_number"), lambda i, ds: delattr(ds, "SeriesNumber"))


def dicomdir(path: Path) -> Path:
    """A minimal DICOMDIR (media storage directory), by file name and SOP class."""
    ds = _base("1.2.840.10008.1.3.10", uid("dicomdir", path))
    ds.FileSetID = "EXPORT"
    ds.DirectoryRecordSequence = Sequence([])
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- NIfTI (BIDS input)
def nifti(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 3.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), str(path))
    return path


# --------------------------------------------------------------------------- the whole export
IMAGE_CASES: dict[str, Callable[[Path, int], list[Path]]] = {
    "single-slice series": single_slice,
    "4D series (repeated positions)": four_d,
    "mixed matrix sizes in one series": mixed_size,
    "no orientation/position/spacing tags": no_geometry,
    "oblique acquisition": oblique,
    "sagittal acquisition": sagittal,
    "coronal acquisition": coronal,
    "RLE Lossless transfer syntax": rle,
    "all-zero pixel data": all_zero,
    "image IOD without PixelData": no_pixel_data,
    "last file cut inside pixel data": truncated_pixels,
    "secondary capture (RGB, no geometry)": secondary_capture,
    "enhanced multi-frame MR": enhanced_multiframe,
    "enhanced multi-frame, no DimensionIndexSequence": lambda d, n: enhanced_multiframe(d, n, dimensions=False),
    "no 128-byte preamble / DICM prefix": no_preamble,
    "no SeriesNumber": no_series_number,
    "de-identified dates `***`": blanked_dates,
    "de-identified dates `00000000`": lambda d, n: blanked_dates(d, n, "00000000"),
    "de-identified dates `1900`": lambda d, n: blanked_dates(d, n, "1900"),
    "de-identified dates empty": lambda d, n: blanked_dates(d, n, ""),
    "unreadable time, age, numbers (TM, AS, DS, IS)": unreadable_numbers,
}


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # folder or file, relative to the export root


def build_export(root: Path) -> dict[str, Case]:
    """Every bad case for patient BAD01 (with two good series beside them), plus junk, non-image
    objects, and patients whose IDs are non-ASCII, path-like, empty, or collide once sanitised."""
    cases: dict[str, Case] = {}
    good = root / "BAD01" / "good"
    series(good / "t1", 1, "t1_se_tra")
    series(good / "t2", 2, "t2_tse_tra")
    cases["good series (control)"] = Case("good series (control)", "BAD01/good/t1")
    for i, (name, make) in enumerate(IMAGE_CASES.items(), start=10):
        folder = root / "BAD01" / f"case{i:02d}"
        make(folder, i)
        cases[name] = Case(name, folder.relative_to(root).as_posix())
    misc = root / "BAD01" / "misc"
    write_junk(misc)
    write_sr(misc / "sr.dcm", patient_id="BAD01")
    presentation_state(misc / "pr.dcm")
    key_object(misc / "ko.dcm")
    dicomdir(root / "DICOMDIR")
    write_truncated(good.joinpath("t1").glob("*.dcm").__next__(), misc / "cut_header.dcm", keep=200)
    (misc / "empty.dcm").write_bytes(b"")
    for label, pid in {"non-ASCII PatientID": "Müller^Jörg-ß", "path-like PatientID": "../../etc",
                       "empty PatientID": "", "colliding PatientID A": "AB-1", "colliding PatientID B": "AB_1"}.items():
        folder = root / "ids" / f"p{len(cases):02d}"
        series(folder, 1, "t1_se_tra", patient_id=pid, study_date="20240202")
        cases[label] = Case(label, folder.relative_to(root).as_posix())
    return cases
