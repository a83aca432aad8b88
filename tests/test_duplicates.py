"""Instances present twice (PACS re-sends, overlapping exports), one copy cut short: the intact
copy is converted, the other is listed in skipped_files.tsv. A series that really misses a slice
keeps its error row (tests/test_bad_input.py, "last file cut inside pixel data")."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import pydicom
import pytest
from dicomgen import write_series
from e2e_helpers import link_tree, require_model

from bidsapp.cli.run import main
from bidsapp.derivatives import SKIPPED_TSV, read_tsv
from bidsapp.discover import discover_dicom


def cut_copies(files: list[Path], folder: Path) -> list[Path]:
    """A copy of every file cut inside its pixel data (what an interrupted transfer leaves)."""
    folder.mkdir(parents=True)
    copies = []
    for f in files:
        data = f.read_bytes()
        copies.append(folder / f"cut_{f.name}")
        copies[-1].write_bytes(data[: len(data) - 100])
    return copies


def test_discovery_keeps_the_intact_copy_of_each_instance(tmp_path: Path):
    intact = write_series(tmp_path / "in" / "a", n_slices=5)
    cut = cut_copies(intact, tmp_path / "in" / "b")
    shutil.copy(intact[2], tmp_path / "in" / "resent.dcm")
    found = discover_dicom(tmp_path / "in")
    assert len(found.series) == 1 and not found.problems
    assert list(found.series[0].files) == [p.resolve() for p in intact]
    skipped = {s.path: s.reason for s in found.skipped}
    assert set(skipped) == {f"b/{p.name}" for p in cut} | {"resent.dcm"}
    for p in cut:
        assert skipped[f"b/{p.name}"].startswith(f"duplicate of a/{p.name[4:]} (same SOPInstanceUID): file cut inside"), skipped
    assert skipped["resent.dcm"] == f"duplicate of a/{intact[2].name} (same SOPInstanceUID)"


def test_cut_file_without_intact_copy_still_fails_its_series(tmp_path: Path):
    files = write_series(tmp_path / "in", n_slices=4)
    files[-1].write_bytes(files[-1].read_bytes()[:-100])
    found = discover_dicom(tmp_path / "in")
    assert "1 of 4 files unusable" in found.problems[found.series[0].series_uid] and not found.skipped


def test_reused_sop_uid_with_other_instance_number_is_not_a_duplicate(tmp_path: Path):
    """A tool that gives every slice one SOPInstanceUID must not cost slices."""
    files = write_series(tmp_path / "in", n_slices=3)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
        ds.save_as(f, enforce_file_format=True)
    found = discover_dicom(tmp_path / "in")
    assert len(found.series[0].files) == 3 and not found.skipped


def _convert(src: Path, out: Path) -> tuple[int, list[dict]]:
    rc = main([str(src), str(out), "participant", "--threshold", "0", "--work-dir", str(out.parent / f"{out.name}-work")])
    rows = [r for p in sorted((out / "derivatives" / "mrclass").glob("sub-*/sub-*_classifications.tsv")) for r in read_tsv(p)]
    return rc, rows


def _same_conversion(intact_root: Path, doubled_root: Path, tmp: Path) -> list[dict]:
    """Convert both trees; the doubled one must give the intact one's rows and image shapes."""
    rc_a, rows_a = _convert(intact_root, tmp / "out-intact")
    rc_b, rows_b = _convert(doubled_root, tmp / "out-doubled")
    assert rc_a == rc_b == 0 and len(rows_a) == len(rows_b) == 1, (rows_a, rows_b)
    keys = ("series_uid", "status", "label", "bids_path")
    assert [{k: r[k] for k in keys} for r in rows_b] == [{k: r[k] for k in keys} for r in rows_a]
    for r in rows_a:
        a, b = nib.load(tmp / "out-intact" / r["bids_path"]), nib.load(tmp / "out-doubled" / r["bids_path"])
        assert a.shape == b.shape and (a.get_fdata() == b.get_fdata()).all()
    return read_tsv(tmp / "out-doubled" / "derivatives" / "mrclass" / SKIPPED_TSV)


def test_series_with_cut_duplicates_converts_like_the_intact_folder(tmp_path: Path):
    require_model()
    intact = write_series(tmp_path / "intact" / "t1", n_slices=6, size=24)
    doubled = tmp_path / "doubled"
    shutil.copytree(tmp_path / "intact", doubled)
    cut_copies(sorted((doubled / "t1").iterdir()), doubled / "resend")
    skipped = _same_conversion(tmp_path / "intact", doubled, tmp_path)
    assert len(skipped) == len(intact) and all("duplicate of t1/" in r["reason"] for r in skipped)


def test_development_series_with_cut_duplicates(real_data: Path, tmp_path: Path):
    require_model()
    series = real_data / "dicom" / "ProstateX-0000_7_ADC"
    link_tree([series], tmp_path / "intact")
    link_tree([series], tmp_path / "doubled")
    files = sorted(p for p in series.rglob("*") if p.is_file())
    cut_copies(files, tmp_path / "doubled" / "resend")
    skipped = _same_conversion(tmp_path / "intact", tmp_path / "doubled", tmp_path)
    assert len(skipped) == len(files) and all("file cut inside the pixel data" in r["reason"] for r in skipped)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_cut_copy_found_before_the_intact_one_is_replaced(tmp_path: Path, keep: float):
    """Path order must not matter: a cut copy seen first gives way to the intact one."""
    intact = write_series(tmp_path / "in" / "z", n_slices=2)
    data = intact[0].read_bytes()
    (tmp_path / "in" / "a").mkdir()
    (tmp_path / "in" / "a" / "x.dcm").write_bytes(data[: int(len(data) * keep)])
    found = discover_dicom(tmp_path / "in")
    assert list(found.series[0].files) == [p.resolve() for p in intact] and not found.problems
    assert [s.path for s in found.skipped] == ["a/x.dcm"] and "duplicate of z/" in found.skipped[0].reason
