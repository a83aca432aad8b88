"""A saved header index: discovery through it sees what it sees without it, and reads only what changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from badinputs import build_export
from dicomgen import write_series
from pydicom.dataset import Dataset

from bidsapp.discover import discover_dicom


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Every bad case of tests/badinputs.py, plus a big-endian and an implicit-VR series."""
    root = tmp_path_factory.mktemp("index") / "in"
    build_export(root)
    for syntax, name in (("1.2.840.10008.1.2.2", "big"), ("1.2.840.10008.1.2", "implicit")):
        for path in write_series(root / "syntax" / name, patient_id="BAD01", series_number=90 + len(name),
                                 series_description=name, n_slices=2):
            read = pydicom.dcmread(path)
            ds = Dataset()
            ds.update(read)
            ds.file_meta = read.file_meta
            ds.file_meta.TransferSyntaxUID = syntax
            if name == "big":
                ds.PixelData = np.frombuffer(read.PixelData, "<u2").astype(">u2").tobytes()
            ds.save_as(path, enforce_file_format=True)
    return root


def test_index_gives_the_same_discovery_and_skips_the_reads(export: Path, tmp_path: Path, monkeypatch):
    index = tmp_path / "index.json"
    plain = discover_dicom(export)
    built = discover_dicom(export, index)
    import bidsapp.discover as discover

    reads = []
    original = discover._index_file
    monkeypatch.setattr(discover, "_index_file", lambda p: reads.append(p) or original(p))
    reused = discover_dicom(export, index)
    assert plain == built == reused
    assert reads == []  # nothing changed: no header read again
    assert json.loads(index.read_text())["root"] == str(export.resolve())


def test_changed_new_and_removed_files_are_read_again(export: Path, tmp_path: Path, monkeypatch):
    tree = tmp_path / "in"
    shutil.copytree(export, tree)
    index = tmp_path / "index.json"
    discover_dicom(tree, index)
    import bidsapp.discover as discover

    reads = []
    original = discover._index_file
    monkeypatch.setattr(discover, "_index_file", lambda p: reads.append(p.relative_to(tree).as_posix()) or original(p))
    changed = next((tree / "BAD01" / "good" / "t1").iterdir())
    ds = pydicom.dcmread(changed)
    ds.PatientID, ds.SeriesInstanceUID = "MOVED", "1.2.3.4"  # a series of its own now
    ds.save_as(changed, enforce_file_format=True)
    os.utime(changed, ns=(1, 1))
    write_series(tree / "new", patient_id="NEW01", n_slices=1)
    shutil.rmtree(tree / "ids")
    found = discover_dicom(tree, index)
    assert sorted(reads) == sorted([changed.relative_to(tree).as_posix(), "new/IM001_0000.dcm"])
    assert {"MOVED", "NEW01"} <= {s.subject for s in found.series}
    assert found == discover_dicom(tree)
    saved = json.loads(index.read_text())["files"]
    assert "new/IM001_0000.dcm" in saved and not any(k.startswith("ids/") for k in saved)


def test_index_of_another_tree_or_broken_is_not_used(export: Path, tmp_path: Path):
    index = tmp_path / "index.json"
    discover_dicom(export, index)
    other = tmp_path / "other"
    write_series(other, patient_id="OTHER", n_slices=1)
    assert {s.subject for s in discover_dicom(other, index).series} == {"OTHER"}
    index.write_text("{not json")
    assert discover_dicom(other, index) == discover_dicom(other)
