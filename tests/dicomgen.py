"""Write small synthetic DICOM series (and junk) for edge cases real data does not cover.

The slices carry full geometry so dcm2niix converts them like real scanner output.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR

# Siemens headers of acquisitions the physics witness recognises (docs/physics.md), for ``write_series(tags=...)``.
# EPI: phase encoded along the columns (j), its polarity in the CSA header (write_series(csa=...)), as dcm2niix reads it.
_SIEMENS_EPI = {"ScanningSequence": "EP", "SequenceVariant": "SK", "InPlanePhaseEncodingDirection": "COL",
                "MRAcquisitionType": "2D"}
SIEMENS_BOLD = {**_SIEMENS_EPI, "SequenceName": "*epfid2d1_64", "RepetitionTime": 2000, "EchoTime": 30, "FlipAngle": 77}
SIEMENS_SE_EPI = {**_SIEMENS_EPI, "SequenceName": "*epse2d1_86", "RepetitionTime": 8000, "EchoTime": 66, "FlipAngle": 90}
# a 2D pCASL EPI: the same readout as BOLD, its images marked ASL by the scanner
SIEMENS_PCASL = {**SIEMENS_BOLD, "RepetitionTime": 4000, "EchoTime": 14, "FlipAngle": 90,
                 "ImageType": ["ORIGINAL", "PRIMARY", "ASL", "NONE", "ND"]}
# a dual-echo turbo spin echo (``write_series(echo_times=(12, 96))``): proton density and T2 in one series
SIEMENS_DUAL_ECHO_TSE = {"ScanningSequence": "SE", "SequenceVariant": "SK", "SequenceName": "*tse2d2_5",
                         "RepetitionTime": 3500, "FlipAngle": 150, "MRAcquisitionType": "2D"}


def uid(*parts: object) -> str:
    """Deterministic DICOM UID from arbitrary parts (2.25 + decimal of a hash)."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


def _base(sop_class: str, sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def write_series(
    directory: Path,
    *,
    patient_id: str = "P01",
    study_date: str = "20240101",
    study_time: str = "120000",
    study_uid: str | None = None,
    series_description: str = "t1_se_tra",
    series_number: int = 1,
    contrast_agent: str | None = None,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND"),
    n_slices: int = 4,
    size: int = 16,
    seed: int = 0,
    series_uid: str | None = None,
    n_volumes: int = 1,
    echo_times: tuple[float, ...] = (),
    tags: dict | None = None,
    csa: dict[str, object] | None = None,
) -> list[Path]:
    """Write an axial few-slice MR series, one file per slice and volume; returns the file paths.

    ``echo_times`` makes one volume per echo (EchoTime, EchoNumbers), as a multi-echo acquisition
    stores them; ``tags`` overrides or adds attributes of every file (keyword → value); ``csa`` writes
    a Siemens CSA image header with these items (dcm2niix reads e.g. PhaseEncodingDirectionPositive there)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or uid("study", patient_id, study_date)
    series_uid = series_uid or uid("series", study_uid, series_number, series_description)
    rng = np.random.default_rng(seed)
    n_volumes = len(echo_times) or n_volumes
    paths = []
    for v, k in ((v, k) for v in range(n_volumes) for k in range(n_slices)):
        sop_uid = uid(series_uid, v, k) if v else uid(series_uid, k)
        ds = _base(MRImageStorage, sop_uid)
        ds.Modality = "MR"
        ds.PatientID = patient_id
        ds.PatientName = "Test^Subject"
        ds.StudyDate = study_date
        ds.StudyTime = study_time
        ds.SeriesTime = f"12{series_number % 60:02d}00"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = uid("for", study_uid)
        ds.SeriesDescription = series_description
        ds.ProtocolName = series_description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = v * n_slices + k + 1
        if n_volumes > 1 and not echo_times:  # the same slice positions again, one acquisition per volume
            ds.AcquisitionNumber = ds.TemporalPositionIdentifier = v + 1
        ds.ImageType = list(image_type)
        ds.Manufacturer = "SIEMENS"
        ds.MagneticFieldStrength = 3
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.RepetitionTime = 500
        ds.EchoTime = 12
        ds.FlipAngle = 90
        if echo_times:
            ds.EchoTime, ds.EchoNumbers = echo_times[v], v + 1
        if contrast_agent is not None:
            ds.ContrastBolusAgent = contrast_agent
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(k) * 5.0]
        ds.SliceLocation = float(k) * 5.0
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 5.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = size
        ds.Columns = size
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = rng.integers(0, 4000, (size, size), dtype=np.uint16).tobytes()
        for keyword, value in (tags or {}).items():
            setattr(ds, keyword, value)
        if csa:
            ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", siemens_csa(csa))
        path = directory / f"IM{series_number:03d}_{v * n_slices + k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def siemens_csa(items: dict[str, object]) -> bytes:
    """A Siemens CSA header (SV10 layout, as nibabel.nicom.csareader reads it), one value per item."""
    out = b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(items), 77)
    for name, value in items.items():
        vr = "IS" if isinstance(value, int) else ("DS" if isinstance(value, float) else "LO")
        out += name.encode().ljust(64, b"\0") + struct.pack("<i4sii", 1, vr.encode().ljust(4, b"\0"), 6, 1)
        data = str(value).encode() + b"\0"
        out += struct.pack("<i", 77) + struct.pack("<4i", len(data), len(data), 77, len(data))
        out += data.ljust(-(-len(data) // 4) * 4, b"\0")
    return out


def write_sr(path: Path, *, patient_id: str = "P01", study_uid: str | None = None) -> Path:
    """A structured report: a valid DICOM object without pixel data."""
    ds = _base(SR_STORAGE, uid("sr", path))
    ds.Modality = "SR"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid or uid("study", patient_id, "20240101")
    ds.SeriesInstanceUID = uid("sr-series", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_junk(directory: Path) -> list[Path]:
    """Files a real export tree contains besides images."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "notes.txt": b"scanner export\n",
        "Thumbs.db": bytes(range(256)),
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return [directory / n for n in files]


def write_truncated(src: Path, dst: Path, keep: int = 300) -> Path:
    """Copy of a DICOM file cut inside its header."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
