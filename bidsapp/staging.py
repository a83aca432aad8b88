"""Give old DICOM files the Part 10 wrapper dcm2niix needs, on a scratch copy.

ACR-NEMA-style exports lack the 128-byte preamble and the "DICM" prefix (and often the file
meta group). pydicom reads them; dcm2niix does not. Such files are rewritten once into the
work directory with a preamble and file meta; the input is never touched, and well-formed files
are passed through as they are (no copy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

PREFIX_AT, PREFIX = 128, b"DICM"


def has_part10_prefix(path: Path) -> bool:
    """True when the file has the preamble and "DICM" (what dcm2niix looks for)."""
    with open(path, "rb") as fh:
        head = fh.read(PREFIX_AT + len(PREFIX))
    return head[PREFIX_AT:] == PREFIX


def write_part10(src: Path, dest: Path) -> Path:
    """``src`` rewritten with preamble and a complete file meta group (same data set)."""
    ds = pydicom.dcmread(src, force=True)
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        implicit = ds.original_encoding[0] if ds.original_encoding[0] is not None else True
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", pydicom.uid.generate_uid())
    ds.preamble = b"\0" * PREFIX_AT
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


def convertible_files(files: list[Path], scratch: Path) -> list[Path]:
    """The same files, with those lacking the Part 10 prefix replaced by rewritten copies."""
    out = []
    for f in files:
        if has_part10_prefix(f):
            out.append(f)
        else:
            key = hashlib.sha1(str(Path(f).resolve()).encode()).hexdigest()[:16]
            out.append(write_part10(f, scratch / key / Path(f).name))
    return out
