"""De-identified headers: values that do not parse become absent before heudiconv sees them.

Unit checks of the value rules and of staging on synthetic files; then the development set's
DICOM series with their dates blanked the ways de-identification tools blank them, converted
beside the same series undated: every series converts, with the label it has undated.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from badinputs import BLANKED_DATES, blank_dates, set_raw
from dicomgen import write_series
from e2e_helpers import link_tree, require_model
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bidsapp.cli.run import main
from bidsapp.deidentified import READABLE, remove_unreadable
from bidsapp.derivatives import read_tsv
from bidsapp.staging import stage


@pytest.mark.parametrize(
    ("vr", "value", "readable"),
    [
        ("DA", "20240229", True), ("DA", "***", False), ("DA", "00000000", False), ("DA", "1900", False),
        ("DA", "20230229", False), ("DA", "2024.01.01", False),
        ("TM", "12", True), ("TM", "1230", True), ("TM", "123059.123456", True), ("TM", "***", False),
        ("TM", "250000", False), ("TM", "12:30:00", False),
        ("DT", "2024", True), ("DT", "20240101123000.5+0100", True), ("DT", "20241301", False), ("DT", "***", False),
        ("AS", "063Y", True), ("AS", "63Y", False), ("AS", "***", False),
        ("DS", "-1.5e3", True), ("DS", ".5", True), ("DS", "nan", False), ("DS", "***", False),
        ("IS", "+12", True), ("IS", "1.5", False), ("IS", "n/a", False),
    ],
)
def test_value_rules(vr, value, readable):
    assert READABLE[vr](value) is readable


def test_unreadable_elements_are_removed_at_any_depth():
    ds = Dataset()
    ds.PatientName = "***"  # text: never judged
    set_raw(ds, "StudyDate", "***")
    set_raw(ds, "SeriesDate", "")  # empty is absent already: kept
    set_raw(ds, "ImagePositionPatient", "0\\***\\2")  # one bad value spoils the element
    ds.PixelSpacing = [1.0, 1.0]
    item = Dataset()
    set_raw(item, "FrameAcquisitionDateTime", "***")
    item.FrameReferenceDateTime = "20240101120000"
    ds.PerFrameFunctionalGroupsSequence = Sequence([item])
    assert sorted(remove_unreadable(ds)) == ["FrameAcquisitionDateTime", "ImagePositionPatient", "StudyDate"]
    assert "StudyDate" not in ds and "ImagePositionPatient" not in ds and "FrameAcquisitionDateTime" not in item
    assert ds.PatientName == "***" and "SeriesDate" in ds and "FrameReferenceDateTime" in item
    assert remove_unreadable(ds) == []


def test_intact_files_are_not_copied(tmp_path: Path):
    path = write_series(tmp_path / "in", n_slices=1)[0]
    staged = stage(path, tmp_path / "scratch")
    assert staged.path == path and staged.removed == () and not (tmp_path / "scratch").exists()


def test_blanked_file_is_staged_without_the_placeholders(tmp_path: Path):
    path = write_series(tmp_path / "in", n_slices=1)[0]
    ds = pydicom.dcmread(path)
    blank_dates(ds, "***")
    ds.save_as(path, enforce_file_format=True)
    before = path.read_bytes()
    staged = stage(path, tmp_path / "scratch")
    assert staged.path != path and staged.path.is_relative_to(tmp_path / "scratch")
    assert set(staged.removed) == {"StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate"}
    copy = pydicom.dcmread(staged.path)
    assert "StudyDate" not in copy and copy.AcquisitionTime == ds.AcquisitionTime and copy.PixelData == ds.PixelData
    assert path.read_bytes() == before  # the input is never written


# --------------------------------------------------------------------------- development set

DEIDENTIFIED_KEYS = ("PatientID", "PatientName")
# Default: the small ProstateX diffusion series and ADC map, blanked two ways (each way one
# participant: heudiconv used to stop after its first series, so the others were lost);
# -m slow: every DICOM series of the development set with every blanking.
FAST_SERIES = ("ProstateX-0000_6_ep2d_diff_tra", "ProstateX-0000_8_calc_bval", "ProstateX-0000_7_ADC")
FAST_BLANKINGS = ("***", "00000000")


def blanked_copy(src: Path, dst: Path, value: str) -> None:
    """``src`` as a de-identification tool leaves it: dates and patient identity overwritten."""
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path, force=True)
        blank_dates(ds, value)
        for key in DEIDENTIFIED_KEYS:
            set_raw(ds, key, value or "***")
        target = dst / path.relative_to(src.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)


def labels(src: Path, out: Path) -> dict[str, tuple[str, str]]:
    """Convert ``src``; {series_uid: (status, label)} of every row."""
    main([str(src), str(out), "participant", "--work-dir", str(out.parent / f"{out.name}-work")])
    rows = [r for p in sorted((out / "derivatives" / "mrclass").glob("sub-*/sub-*_classifications.tsv")) for r in read_tsv(p)]
    return {r["series_uid"]: (r["status"], r["label"]) for r in rows}


def check_blanked_like_undated(real_data: Path, tmp: Path, plan: list[tuple[str, str]]) -> None:
    """Each (series, placeholder) of ``plan`` converts blanked with the label it has undated."""
    names = sorted({name for name, _ in plan})
    link_tree([real_data / "dicom" / name for name in names], tmp / "undated")
    expected = labels(tmp / "undated", tmp / "out-undated")
    assert len(expected) == len(names) and all(status != "error" for status, _ in expected.values()), expected
    for value in sorted({v for _, v in plan}):
        src = tmp / f"blanked{BLANKED_DATES.index(value)}"
        for name, _ in (p for p in plan if p[1] == value):
            blanked_copy(real_data / "dicom" / name, src, value)
        out = tmp / f"out{BLANKED_DATES.index(value)}"
        got = labels(src, out)
        assert {uid: expected[uid] for uid in got} == got and got, (value, got)
        for sidecar in out.rglob("*.json"):
            assert "***" not in sidecar.read_text(), sidecar


def test_development_series_with_blanked_dates_convert_like_undated(real_data: Path, tmp_path: Path):
    require_model()
    plan = [(name, value) for name in FAST_SERIES for value in FAST_BLANKINGS]
    check_blanked_like_undated(real_data, tmp_path, plan)


@pytest.mark.slow
def test_every_development_series_with_every_blanking(real_data: Path, tmp_path: Path):
    require_model()
    names = sorted(p.name for p in (real_data / "dicom").iterdir() if p.is_dir())
    check_blanked_like_undated(real_data, tmp_path, [(n, v) for n in names for v in BLANKED_DATES])
