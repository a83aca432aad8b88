"""Bad input: a messy synthetic PACS export and a broken BIDS input; every case observed.

One run over an export holding every bad case beside good series. What each case became is
checked here and written as the table of docs/reliability.md (``MRCLASS_UPDATE_DOCS=1`` rewrites
it; otherwise the test fails when the documented table and the observed one differ).
"""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from badinputs import PHI, build_export, nifti
from e2e_helpers import require_model, validator_errors

from bidsapp.cli.run import main
from bidsapp.derivatives import SKIPPED_TSV, TSV_COLUMNS, read_tsv
from bidsapp.volume import load_nifti

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
BEGIN, END = "<!-- observed:begin -->", "<!-- observed:end -->"

# Cases that must fail (status=error) and the words their one-line message must contain.
MUST_FAIL = {
    "image IOD without PixelData": "no pixel data",
    "last file cut inside pixel data": "cut inside the pixel data",
    "enhanced multi-frame, no DimensionIndexSequence": "heudiconv cannot parse",
    "no SeriesNumber": "no SeriesNumber",
}
NON_IMAGE = {"BAD01/misc/sr.dcm": ("structured report (SR)", "structured report"),
             "BAD01/misc/pr.dcm": ("presentation state (PR)", "presentation state"),
             "BAD01/misc/ko.dcm": ("key object selection (KO)", "key object")}
SKIPPED = {"DICOMDIR": "DICOMDIR", "BAD01/misc/notes.txt": "not a DICOM file", "BAD01/misc/Thumbs.db": "not a DICOM file",
           "BAD01/misc/.DS_Store": "not a DICOM file", "BAD01/misc/empty.dcm": "not a DICOM file",
           "BAD01/misc/cut_header.dcm": "incomplete header"}


@pytest.fixture(scope="module")
def export_run(tmp_path_factory):
    require_model()
    tmp = tmp_path_factory.mktemp("bad_export")
    cases = build_export(tmp / "in")
    out = tmp / "out"
    # threshold 0: every convertible series gets a BIDS name, so naming and the validator see
    # every odd geometry (accuracy is not the point here)
    rc = main([str(tmp / "in"), str(out), "participant", "--threshold", "0", "--work-dir", str(tmp / "work")])
    rows = [r for p in sorted((out / "derivatives" / "mrclass").glob("sub-*/sub-*_classifications.tsv")) for r in read_tsv(p)]
    return {"tmp": tmp, "out": out, "rc": rc, "cases": cases, "rows": {r["source"]: r for r in rows}, "all_rows": rows}


def test_exit_code_says_some_failed(export_run):
    assert export_run["rc"] == 1


def test_non_image_objects_are_skipped_rows_and_exit_0(tmp_path: Path):
    """SR, PR and KO beside an image series: nothing was lost, so a Slurm task must not fail."""
    require_model()
    from badinputs import key_object, presentation_state, series
    from dicomgen import write_sr

    series(tmp_path / "in" / "t1", 1, "t1_se_tra")
    write_sr(tmp_path / "in" / "sr.dcm", patient_id="BAD01")
    presentation_state(tmp_path / "in" / "pr.dcm")
    key_object(tmp_path / "in" / "ko.dcm")
    out = tmp_path / "out"
    assert main([str(tmp_path / "in"), str(out), "participant", "--work-dir", str(tmp_path / "work")]) == 0
    rows = {r["source"]: r for r in read_tsv(out / "derivatives" / "mrclass" / "sub-BAD01" / "sub-BAD01_classifications.tsv")}
    assert rows["t1"]["status"] in ("ok", "other")
    for source, what in {"sr.dcm": "structured report (SR)", "pr.dcm": "presentation state (PR)",
                         "ko.dcm": "key object selection (KO)"}.items():
        assert (rows[source]["status"], rows[source]["bids_path"]) == ("skipped", "n/a") and what in rows[source]["message"]
    page = (out / "derivatives" / "mrclass" / "sub-BAD01.html").read_text()
    assert page.count('data-status="skipped"') == 3


def test_one_row_per_series(export_run):
    rows = export_run["all_rows"]
    assert len({r["series_uid"] for r in rows}) == len(rows)
    for case in export_run["cases"].values():
        assert case.source in export_run["rows"], case
    assert all(list(r) == list(TSV_COLUMNS) for r in rows[:1])


def test_bad_series_fail_with_one_line_message(export_run):
    rows, cases = export_run["rows"], export_run["cases"]
    for name, needle in MUST_FAIL.items():
        r = rows[cases[name].source]
        assert r["status"] == "error" and needle in r["message"], (name, r)
    for source, (_, needle) in NON_IMAGE.items():
        assert rows[source]["status"] == "skipped" and needle in rows[source]["message"], rows[source]
    for r in export_run["all_rows"]:
        assert "\n" not in r["message"] and len(r["message"]) <= 320, r
        if r["status"] == "error":
            assert r["message"] != "n/a", r


def test_everything_else_is_converted(export_run):
    rows, cases, out = export_run["rows"], export_run["cases"], export_run["out"]
    for name, case in cases.items():
        if name in MUST_FAIL:
            continue
        r = rows[case.source]
        assert r["status"] in ("ok", "other"), (name, r)
        assert (out / r["bids_path"]).is_file(), (name, r)
        img = nib.load(str(out / r["bids_path"]))
        if r["bids_path"].startswith("sub-") and "/anat/" in r["bids_path"]:
            assert len(img.shape) == 3 or img.shape[3] == 1, (name, img.shape)  # anat stays 3D


def test_old_files_without_preamble_are_converted(export_run):
    """ACR-NEMA-style files are rewritten into the work dir for dcm2niix; the input is untouched."""
    case = export_run["cases"]["no 128-byte preamble / DICM prefix"]
    row = export_run["rows"][case.source]
    assert row["status"] in ("ok", "other") and (export_run["out"] / row["bids_path"]).is_file(), row
    originals = sorted((export_run["tmp"] / "in" / case.source).glob("*"))
    assert originals and all(p.read_bytes()[128:132] != b"DICM" for p in originals)


def test_skipped_files_are_listed(export_run):
    table = {r["path"]: r["reason"] for r in read_tsv(export_run["out"] / "derivatives" / "mrclass" / SKIPPED_TSV)}
    for path, needle in SKIPPED.items():
        assert needle in table[path], (path, table)
    text = (export_run["out"] / "derivatives" / "mrclass" / SKIPPED_TSV).read_text()
    assert not any(v in text for v in PHI.values())


def test_subject_labels_are_safe(export_run):
    out = export_run["out"]
    subjects = {r["participant_id"] for r in export_run["all_rows"]}
    assert all(re.fullmatch(r"sub-[a-zA-Z0-9]+", s) for s in subjects), subjects
    assert {"sub-MllerJrg", "sub-etc", "sub-unknown", "sub-BAD01"} <= subjects
    assert len([s for s in subjects if s.startswith("sub-AB1")]) == 2  # AB-1 and AB_1 kept apart
    assert not list(export_run["tmp"].glob("etc*")) and sorted(p.name for p in export_run["tmp"].iterdir()) == ["in", "out", "work"]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_validator_passes(export_run):
    assert validator_errors(export_run["out"]) == []


def _observed_table(export_run) -> str:
    rows, lines = export_run["rows"], ["| bad input | status | what the tool did |", "|---|---|---|"]
    for name, case in export_run["cases"].items():
        r = rows[case.source]
        several = "unnamed images" in r["message"] or "gave" in r["message"]
        did = r["message"] if r["status"] == "error" else "converted" + (
            " (several images: kept under sourcedata/unclassified)" if several else "")
        did = re.sub(r"\d+ of \d+ bytes", "N of M bytes", did)
        lines.append(f"| {name} | {'error' if r['status'] == 'error' else 'ok/other'} | {did} |")
    for source, (label, _) in NON_IMAGE.items():
        lines.append(f"| {label} | {rows[source]['status']} | {rows[source]['message']} |")
    skipped = {r["path"]: r["reason"] for r in read_tsv(export_run["out"] / "derivatives" / "mrclass" / SKIPPED_TSV)}
    for path in SKIPPED:
        lines.append(f"| file `{path.rsplit('/', 1)[-1]}` | no row | logged, listed in `{SKIPPED_TSV}`: {skipped[path]} |")
    return "\n".join(lines)


def test_documented_table_is_what_was_observed(export_run, bids_run):
    table = _observed_table(export_run) + "\n" + "\n".join(bids_run["table"])
    text = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    if os.environ.get("MRCLASS_UPDATE_DOCS"):
        head, _, rest = text.partition(BEGIN)
        tail = rest.partition(END)[2]
        DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")
        return
    assert f"{BEGIN}\n{table}\n{END}" in text, "docs/reliability.md is stale: rerun with MRCLASS_UPDATE_DOCS=1"


# --------------------------------------------------------------------------- BIDS input

BIDS_CASES = {
    "NIfTI full of NaN": ("nan", "ok/other"),
    "NIfTI all zeros": ("zeros", "ok/other"),
    "NIfTI with Inf and huge values": ("inf", "ok/other"),
    "4D NIfTI named T1w": ("fourd", "ok/other"),
    "NIfTI cut short (truncated .nii.gz)": ("cut", "error"),
    "2D NIfTI (single slice)": ("flat", "ok/other"),
}


@pytest.fixture(scope="module")
def bids_run(tmp_path_factory):
    require_model()
    tmp = tmp_path_factory.mktemp("bad_bids")
    src = tmp / "in"
    rng = np.random.default_rng(0)
    anat = src / "sub-01" / "anat"
    good = nifti(anat / "sub-01_T1w.nii.gz", (rng.random((24, 24, 8)) * 1000).astype(np.float32))
    nifti(anat / "sub-01_acq-nan_T1w.nii.gz", np.full((24, 24, 8), np.nan, np.float32))
    nifti(anat / "sub-01_acq-zeros_T1w.nii.gz", np.zeros((24, 24, 8), np.int16))
    wild = (rng.random((24, 24, 8)) * 1000).astype(np.float32)
    wild[0, 0, :] = np.inf
    wild[1, 1, :] = 3e38
    nifti(anat / "sub-01_acq-inf_T1w.nii.gz", wild)
    nifti(anat / "sub-01_acq-fourd_T1w.nii.gz", (rng.random((24, 24, 8, 5)) * 1000).astype(np.float32))
    nifti(anat / "sub-01_acq-flat_T1w.nii.gz", (rng.random((24, 24)) * 1000).astype(np.float32))
    cut = anat / "sub-01_acq-cut_T1w.nii.gz"
    cut.write_bytes(good.read_bytes()[:300])
    (src / "dataset_description.json").write_text('{"Name": "bad", "BIDSVersion": "1.10.0"}')
    out = tmp / "out"
    rc = main([str(src), str(out), "participant", "--threshold", "0"])
    rows = {r["source"].rsplit("acq-", 1)[-1].split("_")[0]: r for r in read_tsv(out / "sub-01" / "sub-01_classifications.tsv")}
    table = []
    for name, (key, expected) in BIDS_CASES.items():
        r = rows[key]
        table.append(f"| {name} (BIDS input) | {'error' if r['status'] == 'error' else 'ok/other'} | "
                     f"{r['message'] if r['status'] == 'error' else 'sorted (hard link)'} |")
    return {"rc": rc, "rows": rows, "out": out, "table": table}


def test_bids_input_bad_files(bids_run):
    assert bids_run["rc"] == 1
    rows = bids_run["rows"]
    for name, (key, expected) in BIDS_CASES.items():
        r = rows[key]
        assert (r["status"] == "error") == (expected == "error"), (name, r)
        if expected != "error":
            assert (bids_run["out"] / r["bids_path"]).is_file()
            if "/anat/" in r["bids_path"]:
                assert key != "fourd", r  # a 4D image never takes an anat name
    assert rows["sub-01/anat/sub-01"]["status"] != "error"  # the good file beside them


# --------------------------------------------------------------------------- memory


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_large_series_memory_is_bounded(tmp_path: Path):
    """A series larger than the budget is read a slice subset at a time: peak memory follows
    the budget, not the series (here 12M voxels read with a 1M-voxel budget)."""
    data = np.zeros((200, 200, 300), np.int16)
    data[40:160, 40:160, :] = 1000
    path = nifti(tmp_path / "big.nii", data, zooms=(1.0, 1.0, 1.5))
    full = _peak_mb(lambda: load_nifti(path))
    bounded = _peak_mb(lambda: load_nifti(path, max_voxels=1 << 20))
    assert bounded < full / 4 and bounded < 40, (bounded, full)
    small = load_nifti(path, max_voxels=1 << 20)
    assert small.data.shape[2] * 200 * 200 <= 1 << 20 and small.spacing[2] > 1.5


def test_reduced_loading_matches_full_loading(tmp_path: Path):
    """Streaming the volumes one by one gives the same representative image as loading all."""
    rng = np.random.default_rng(1)
    path = nifti(tmp_path / "dwi.nii.gz", (rng.random((20, 22, 10, 6)) * 1000).astype(np.int16))
    (tmp_path / "dwi.bval").write_text("0 1000 1000 0 990 500\n")
    full, streamed = load_nifti(path), load_nifti(path, max_voxels=20 * 22 * 10)
    assert np.allclose(full.data, streamed.data, atol=1e-3) and np.allclose(full.affine, streamed.affine)
    assert (full.n_volumes, full.b_values) == (streamed.n_volumes, streamed.b_values)


@pytest.mark.slow
def test_two_gigabyte_series_memory(tmp_path: Path):
    """The real thing: a 2 GB (int16) NIfTI, loaded with the default budget."""
    path = tmp_path / "huge.nii"
    img = nib.Nifti1Image(np.zeros((1, 1, 1), np.int16), np.eye(4))
    img.header.set_data_shape((1024, 1024, 1024))
    with open(path, "wb") as fh:
        img.header.write_to(fh)
        fh.seek(int(img.header.get_data_offset()) + 1024 ** 3 * 2 - 1)
        fh.write(b"\0")
    peak = _peak_mb(lambda: load_nifti(path))
    assert peak < 1500, peak
    json.dumps({"peak_mb": peak})


def test_huge_dicom_series_is_classified_from_a_subset(tmp_path: Path):
    """Above the byte budget dcm2niix sees evenly spaced slice positions only; every volume of a
    4D series stays (its b-values and temporal mean depend on them)."""
    from badinputs import four_d, series

    from bidsapp.dicom_subset import classification_files
    from bidsapp.volume import load_dicom

    stack = series(tmp_path / "t1", 5, "big_t1", n_slices=60, size=64)
    budget = sum(p.stat().st_size for p in stack[:20])
    subset = classification_files(stack, max_bytes=budget, min_positions=8)
    assert 15 <= len(subset) <= 20 and set(subset) <= set(stack)
    index = [stack.index(p) for p in subset]
    assert len(set(np.diff(index))) == 1 and index[0] <= 2 and index[-1] >= 57  # even stride, whole extent
    assert classification_files(stack, max_bytes=10 * budget) == stack  # small series: untouched

    fmri = four_d(tmp_path / "bold", 6, positions=30, timepoints=4)
    picked = classification_files(fmri, max_bytes=sum(p.stat().st_size for p in fmri) // 3, min_positions=8)
    positions = {round(float(pydicom.dcmread(p).ImagePositionPatient[2]), 2) for p in picked}
    assert len(picked) == 4 * len(positions) and 8 <= len(positions) <= 10

    full, reduced = load_dicom(stack), load_dicom(subset)
    assert reduced.data.shape[:2] == full.data.shape[:2] and reduced.data.shape[2] == len(subset)
    assert reduced.spacing[2] > 2.5 * full.spacing[2]


@pytest.mark.slow
def test_two_gigabyte_dicom_series_converter_memory(tmp_path: Path):
    """A 2 GB DICOM series (4000 slices of 512²): dcm2niix, run for classification, stays within
    the subset budget instead of holding 2 GB."""
    import subprocess
    import sys

    from dicomgen import write_series

    paths = write_series(tmp_path / "in", n_slices=4000, size=512, series_description="huge")
    assert sum(p.stat().st_size for p in paths) > 2e9
    code = ("import sys, resource; from pathlib import Path; from bidsapp.volume import load_dicom; "
            "v = load_dicom(sorted(Path(sys.argv[1]).glob('*'))); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, v.data.shape)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in")], capture_output=True, text=True, check=True)
    child_kb = int(out.stdout.split()[0])
    assert child_kb < 400 * 1024, out.stdout
