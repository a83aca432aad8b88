"""Hand the converter files it can read: scratch copies of those it cannot, the input as is else.

Two kinds of file are rewritten once into the work directory (the input is never touched):

* ACR-NEMA-style exports without the 128-byte preamble and "DICM" prefix (often without a file
  meta group): pydicom reads them, dcm2niix does not. The copy gets a preamble and file meta.
* de-identified files whose dates, times, ages or numbers are placeholders that do not parse
  (``***``): heudiconv stops on them. The copy leaves those elements out
  (``bidsapp.deidentified``).

Every file's header is read once here (heudiconv reads it again); well-formed files are passed
through as they are, with no copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from bidsapp.deidentified import remove_unreadable

PREAMBLE = 128  # bytes before "DICM"; pydicom reads it only when the prefix follows


@dataclass(frozen=True)
class Staged:
    """One input file as the converter will read it."""

    path: Path  # the input file, or its rewritten copy in the work directory
    header: pydicom.Dataset  # its header without pixels, as the converter sees it
    removed: tuple[str, ...] = ()  # unreadable elements the copy leaves out (keywords)


def write_part10(src: Path, dest: Path) -> Path:
    """``src`` rewritten with preamble, a complete file meta group and no unreadable values."""
    ds = pydicom.dcmread(src, force=True)
    remove_unreadable(ds)
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        implicit = ds.original_encoding[0] if ds.original_encoding[0] is not None else True
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", pydicom.uid.generate_uid())
    ds.preamble = b"\0" * PREAMBLE
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


def stage(src: Path, scratch: Path) -> Staged:
    """``src`` itself when the converter reads it as it is, else its rewritten copy."""
    header = pydicom.dcmread(src, stop_before_pixels=True, force=True)
    removed = tuple(remove_unreadable(header))
    if header.preamble is not None and not removed:
        return Staged(Path(src), header)
    key = hashlib.sha1(str(Path(src).resolve()).encode()).hexdigest()[:16]
    return Staged(write_part10(src, scratch / key / Path(src).name), header, removed)
