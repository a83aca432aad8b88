"""Discovery: DICOM trees of any shape and misnamed BIDS inputs → Series records."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from dicomgen import write_junk, write_series, write_sr, write_truncated

from bidsapp.discover import (
    detect_input_type,
    discover,
    discover_bids,
    discover_dicom,
    sanitize_label,
    session_labels,
    subject_labels,
)


def test_sanitize_label():
    assert sanitize_label("ProstateX-0000") == "ProstateX0000"
    assert sanitize_label("../../etc/passwd") == "etcpasswd"
    assert sanitize_label("Müller Jörg") == "MllerJrg"
    assert sanitize_label("") == "unknown"
    assert sanitize_label(None) == "unknown"
    assert sanitize_label("äöü") == "unknown"


def test_subject_labels_never_merge_distinct_ids():
    mapping = subject_labels(["AB-1", "AB_1", "CD", "", "--"])
    assert mapping["CD"] == "CD"
    assert len(set(mapping.values())) == 5  # "" and "--" both sanitise to "unknown" too
    assert mapping["AB-1"].startswith("AB1") and mapping["AB_1"].startswith("AB1")
    assert all(v.isalnum() for v in mapping.values())
    assert subject_labels(["AB_1", "AB-1"]) == {k: mapping[k] for k in ("AB_1", "AB-1")}  # order-free


def test_session_labels():
    assert session_labels({"1.2": "20240101"}) == {"1.2": None}
    assert session_labels({"1.2": "20240101", "1.3": "20240202"}) == {"1.2": "20240101", "1.3": "20240202"}
    same_day = session_labels({"1.2": "20240101", "1.3": "20240101", "1.4": ""})
    assert len(set(same_day.values())) == 3
    assert all(v and v.isalnum() for v in same_day.values())
    assert same_day["1.2"].startswith("20240101")


@pytest.fixture()
def messy_tree(tmp_path: Path) -> Path:
    """Two patients (one with two studies), deep nesting, junk, an SR, a truncated file."""
    root = tmp_path / "in"
    a1 = write_series(root / "export" / "2024" / "A" / "s1", patient_id="A-1", study_date="20240101", series_number=3)
    write_series(root / "export" / "2024" / "A" / "s2", patient_id="A-1", study_date="20240101", series_number=1, series_description="t2_tse")
    write_series(root / "export" / "2025" / "A", patient_id="A-1", study_date="20250505", series_number=1)
    write_series(root / "B", patient_id="A_1", study_date="20240101", series_number=1, contrast_agent="Gadovist")
    write_junk(root / "export")
    write_sr(root / "export" / "2024" / "A" / "report.dcm", patient_id="A-1")
    shutil.copy(a1[0], root / "DICOMDIR")
    write_truncated(a1[0], root / "export" / "broken.dcm")
    return root


def test_dicom_tree(messy_tree: Path):
    found = discover_dicom(messy_tree)
    reports = [s for s in found.series if s.series_uid in found.not_images]
    assert [s.source for s in reports] == ["export/2024/A/report.dcm"]  # an SR keeps a (skipped) row
    assert "SR" in found.not_images[reports[0].series_uid] and not found.problems
    found.series = [s for s in found.series if s not in reports]
    assert len(found.series) == 4
    subjects = {s.subject for s in found.series}
    assert len(subjects) == 2 and all(s.startswith("A1") for s in subjects)  # A-1 vs A_1 kept apart
    by_source = {s.source: s for s in found.series}
    assert set(by_source) == {"export/2024/A/s1", "export/2024/A/s2", "export/2025/A", "B"}
    # two studies for A-1 → sessions by date; B has one study → no session
    assert by_source["export/2024/A/s1"].session == "20240101"
    assert by_source["export/2025/A"].session == "20250505"
    assert by_source["B"].session is None
    assert by_source["B"].header.contrast_agent == "Gadovist"
    assert all(s.kind == "dicom" and len(s.files) == 4 and all(f.is_absolute() for f in s.files) for s in found.series)
    reasons = {k.path: k.reason for k in found.skipped}
    assert "notes.txt" in reasons["export/notes.txt"] or reasons["export/notes.txt"] == "not a DICOM file"
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert "export/broken.dcm" in reasons
    assert len(found.study_ids) == 3


def test_dicom_order_is_deterministic(messy_tree: Path, tmp_path: Path):
    first = discover_dicom(messy_tree)
    moved = tmp_path / "moved"
    shutil.copytree(messy_tree, moved)
    second = discover_dicom(moved)
    assert [(s.subject, s.session, s.series_uid, s.source) for s in first.series] == [
        (s.subject, s.session, s.series_uid, s.source) for s in second.series
    ]
    # within a subject/session: SeriesNumber order
    a24 = [s for s in first.series if s.session == "20240101" and s.series_uid not in first.not_images]
    assert [s.header.series_number for s in a24] == [1, 3]


def test_series_split_over_folders_is_one_series(tmp_path: Path):
    files = write_series(tmp_path / "in" / "x", n_slices=6)
    (tmp_path / "in" / "y").mkdir()
    for f in files[3:]:
        f.rename(tmp_path / "in" / "y" / f.name)
    found = discover_dicom(tmp_path / "in")
    assert len(found.series) == 1
    assert len(found.series[0].files) == 6
    assert found.series[0].source == "."


def test_empty_patient_id_is_unknown(tmp_path: Path):
    write_series(tmp_path / "in", patient_id="")
    assert [s.subject for s in discover_dicom(tmp_path / "in").series] == ["unknown"]


def test_participant_filter_accepts_prefix(messy_tree: Path):
    all_series = discover(messy_tree, "dicom").series
    label = all_series[0].subject
    for given in (label, f"sub-{label}"):
        picked = discover(messy_tree, "dicom", participants=[given]).series
        assert picked and {s.subject for s in picked} == {label}


def _nifti(path: Path, shape=(8, 8, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), str(path))
    return path


@pytest.fixture()
def bids_tree(tmp_path: Path) -> Path:
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    _nifti(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _nifti(root / "sub-01" / "anat" / "sub-01_run-2_T1w.nii.gz")
    (root / "sub-01" / "anat" / "sub-01_run-2_T1w.json").write_text(json.dumps({"SeriesDescription": "AX FLAIR", "SeriesNumber": 5}))
    _nifti(root / "sub-01" / "dwi" / "sub-01_dwi.nii", shape=(8, 8, 4, 3))
    (root / "sub-01" / "dwi" / "sub-01_dwi.bval").write_text("0 1000 1000\n")
    (root / "sub-01" / "dwi" / "sub-01_dwi.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    _nifti(root / "sub-02" / "ses-b" / "whatever" / "scan.nii.gz")
    (root / "sub-02" / "ses-b" / "whatever" / "notes.txt").write_text("x")
    _nifti(root / "derivatives" / "x" / "sub-01" / "anat" / "sub-01_T1w.nii.gz")  # not input
    _nifti(root / "stray.nii.gz")  # outside sub-*
    return root


def test_bids_tree(bids_tree: Path):
    found = discover_bids(bids_tree)
    sources = [s.source for s in found.series]
    assert sorted(sources) == sorted(
        ["sub-01/anat/sub-01_T1w.nii.gz", "sub-01/anat/sub-01_run-2_T1w.nii.gz", "sub-01/dwi/sub-01_dwi.nii", "sub-02/ses-b/whatever/scan.nii.gz"]
    )
    by_source = {s.source: s for s in found.series}
    flair = by_source["sub-01/anat/sub-01_run-2_T1w.nii.gz"]
    assert flair.header.series_description == "AX FLAIR" and flair.header.series_number == 5
    assert [f.name for f in flair.files] == ["sub-01_run-2_T1w.nii.gz", "sub-01_run-2_T1w.json"]
    dwi = by_source["sub-01/dwi/sub-01_dwi.nii"]
    assert [f.name for f in dwi.files] == ["sub-01_dwi.nii", "sub-01_dwi.bval", "sub-01_dwi.bvec"]
    assert dwi.header.b_values == (0.0, 1000.0)
    scan = by_source["sub-02/ses-b/whatever/scan.nii.gz"]
    assert (scan.subject, scan.session, scan.kind) == ("02", "b", "nifti")
    assert len({s.series_uid for s in found.series}) == 4
    assert discover_bids(bids_tree).series == found.series  # stable ids
    # the name's claim for the cross-check, without subject or session (a label could read as anatomy)
    assert {s.source: s.header.input_name for s in found.series} == {
        "sub-01/anat/sub-01_T1w.nii.gz": "T1w", "sub-01/anat/sub-01_run-2_T1w.nii.gz": "run-2_T1w",
        "sub-01/dwi/sub-01_dwi.nii": "dwi", "sub-02/ses-b/whatever/scan.nii.gz": "scan"}


def test_detect_input_type(bids_tree: Path, messy_tree: Path, tmp_path: Path):
    assert detect_input_type(bids_tree) == "bids"
    (bids_tree / "dataset_description.json").unlink()
    assert detect_input_type(bids_tree) == "bids"  # sub-*/ with NIfTIs is enough
    assert detect_input_type(messy_tree) == "dicom"
    assert discover(bids_tree).series[0].kind == "nifti"


def test_real_dicom(real_data: Path):
    found = discover_dicom(real_data / "dicom")
    folders = sorted(p.name for p in (real_data / "dicom").iterdir() if p.is_dir())
    assert sorted(s.source for s in found.series) == folders  # one series per folder
    for s in found.series:
        n_files = sum(1 for p in (real_data / "dicom" / s.source).rglob("*") if p.is_file())
        assert len(s.files) == n_files, s.source
        assert s.subject.isalnum() and s.session is None
        assert s.series_uid.startswith("1.") or s.series_uid.startswith("2.")
    prostate = [s for s in found.series if s.source.startswith("ProstateX")]
    assert {s.subject for s in prostate} == {"ProstateX0000"}
    assert [s.header.series_number for s in prostate] == [4, 6, 7, 8, 9]


def test_real_nifti_as_bids(real_data: Path, tmp_path: Path):
    root = tmp_path / "bids"
    for i, src in enumerate(sorted((real_data / "nifti").rglob("*.nii.gz"))):
        dst = root / f"sub-{src.parent.name.replace('-', '').replace('_', '')}" / "anat" / f"x{i}_T1w.nii.gz"
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    found = discover(root)
    assert len(found.series) == len(list((real_data / "nifti").rglob("*.nii.gz")))


def test_hashed_label_never_equals_another_raw_id():
    hashed = subject_labels(["AB-1", "AB_1"])["AB-1"]
    mapping = subject_labels(["AB-1", "AB_1", hashed])
    assert len(set(mapping.values())) == 3


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=12))
def test_subject_labels_property(ids):
    """Any unicode PatientIDs: BIDS-safe labels, distinct IDs never merge, order does not matter."""
    mapping = subject_labels(ids)
    assert set(mapping) == set(ids)
    assert all(re.fullmatch(r"[a-zA-Z0-9]+", label) for label in mapping.values()), mapping
    assert len(set(mapping.values())) == len(mapping)
    assert subject_labels(list(reversed(ids))) == mapping
    for raw in ids:
        assert sanitize_label(raw) == sanitize_label(raw) and re.fullmatch(r"[a-zA-Z0-9]+", sanitize_label(raw))
        if mapping[raw] != sanitize_label(raw):
            assert mapping[raw].startswith(sanitize_label(raw))  # still readable


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pid=st.text(max_size=20), date=st.text(alphabet="0123456789", max_size=8))
def test_discover_labels_any_patient_id(tmp_path_factory, pid, date):
    """Through discovery itself (real DICOM files): any PatientID gives a safe label and the
    same label on a second look."""
    root = tmp_path_factory.mktemp("pid")
    write_series(root, patient_id=pid, study_date=date, n_slices=1, size=4)
    first, second = discover_dicom(root), discover_dicom(root)
    assert [s.subject for s in first.series] == [s.subject for s in second.series]
    assert len(first.series) == 1 and re.fullmatch(r"[a-zA-Z0-9]+", first.series[0].subject)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"])
def test_one_header_read_finds_cut_pixels_in_every_native_transfer_syntax(tmp_path, syntax):
    """Discovery reads each file once and parses the pixel element's header itself: implicit,
    explicit little- and big-endian files, whole, cut inside the pixels, or cut before them."""
    import pydicom

    from bidsapp.discover import _index_file

    src = write_series(tmp_path / "src", n_slices=1, size=32)[0]
    read = pydicom.dcmread(src)
    ds = pydicom.Dataset()  # a fresh dataset: pydicom will not re-encode a read one in another byte order
    ds.update(read)
    ds.file_meta = read.file_meta
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax == "1.2.840.10008.1.2.2":
        ds.PixelData = np.frombuffer(read.PixelData, "<u2").astype(">u2").tobytes()
    whole = tmp_path / "whole.dcm"
    ds.save_as(whole, enforce_file_format=True)
    data = whole.read_bytes()
    pixel_start = len(data) - 32 * 32 * 2
    assert _index_file(whole)[1:] == (None, True)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-100])
    assert f"file cut inside the pixel data ({len(data) - 100} of {len(data)} bytes)" == _index_file(cut)[1]
    headless = tmp_path / "headless.dcm"  # ends where the pixel element would begin
    headless.write_bytes(data[:pixel_start - (8 if syntax == "1.2.840.10008.1.2" else 12)])
    assert _index_file(headless)[1] == "no pixel data element: truncated file or image without pixels"
    if syntax != "1.2.840.10008.1.2":  # explicit VR, cut inside the element's own header: pydicom's read fails
        headless.write_bytes(data[:pixel_start - 4])
        assert _index_file(headless)[1].startswith("unreadable DICOM header")


@pytest.mark.parametrize("placeholder", ["00000000", "1900", "***"])
def test_unreadable_study_dates_do_not_name_sessions(tmp_path: Path, placeholder: str):
    """A de-identified StudyDate is no date: two such studies get hashed sessions, not the placeholder."""
    import pydicom
    from badinputs import set_raw

    for n, study in enumerate(("1.2.1", "1.2.2"), start=1):
        for path in write_series(tmp_path / study, study_uid=study, series_number=n, n_slices=1):
            ds = pydicom.dcmread(path)
            set_raw(ds, "StudyDate", placeholder)
            ds.save_as(path, enforce_file_format=True)
    sessions = sorted(s.session for s in discover_dicom(tmp_path).series)
    assert len(set(sessions)) == 2 and not any(placeholder.strip("*") and placeholder in s for s in sessions), sessions


def test_bids_input_physics_is_the_files_own_sidecar_and_inheritance_only_a_claim(tmp_path):
    """A top-level T1w.json reaches every *_T1w file through its name, rightly named or not
    (pybids resolves it): those values are listed as inherited, never read as physics."""
    import json

    import nibabel as nib
    import numpy as np

    from bidsapp.discover import discover_bids
    from bidsapp.physics import witness

    anat = tmp_path / "sub-01" / "anat"
    anat.mkdir(parents=True)
    image = nib.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.eye(4))
    for name in ("sub-01_run-1_T1w", "sub-01_run-2_T1w"):
        nib.save(image, anat / f"{name}.nii.gz")
    # a T2 TSE misnamed T1w: its own dcm2niix sidecar says so
    (anat / "sub-01_run-1_T1w.json").write_text(json.dumps(
        {"ScanningSequence": "SE", "SequenceVariant": "SK_SP", "RepetitionTime": 5.6, "EchoTime": 0.104,
         "BodyPart": "BRAIN"}))
    (tmp_path / "T1w.json").write_text(json.dumps(
        {"ScanningSequence": "GR_IR", "InversionTime": 0.9, "RepetitionTime": 2.3, "EchoTime": 0.003}))
    found = {s.source: s.header for s in discover_bids(tmp_path).series}
    own = found["sub-01/anat/sub-01_run-1_T1w.nii.gz"]
    assert own.inversion_time is None and own.echo_time == 104.0  # the inherited TI/TE are not its physics
    assert own.inherited == ("InversionTime",)
    assert witness(own).labels == ("T2w",)
    bare = found["sub-01/anat/sub-01_run-2_T1w.nii.gz"]  # no sidecar of its own: no physics at all
    assert witness(bare).silent
    assert set(bare.inherited) == {"EchoTime", "InversionTime", "RepetitionTime", "ScanningSequence"}
