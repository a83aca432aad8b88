"""Field maps are linked to the BOLD runs they were acquired for (bidsapp.fieldmaps)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bidsapp.fieldmaps import link_fieldmaps
from bidsapp.records import Classification, HeaderFacts, Series, SeriesResult


def _result(out: Path, number: int, kind: str, image: str, session: str | None = "1") -> SeriesResult:
    for path in ([image] if "magnitude1" not in image else [image, image.replace("magnitude1", "magnitude2")]):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(b"nii")
        (out / path.replace(".nii.gz", ".json")).write_text(json.dumps({"EchoTime": 0.03}))
    series = Series("01", session, f"uid{number}", str(number), (), "dicom", HeaderFacts(series_number=number))
    c = Classification("other", 0.9, {}, True, 0.4, physics_kind=kind)
    return SeriesResult(series, c, bids_path=image, status="other")


def _meta(out: Path, image: str) -> dict:
    return json.loads((out / image.replace(".nii.gz", ".json")).read_text())


def test_each_run_takes_the_field_map_acquired_last_before_it(tmp_path):
    f = "sub-01/ses-1/fmap/sub-01_ses-1_"
    b = "sub-01/ses-1/func/sub-01_ses-1_task-rest_"
    results = [
        _result(tmp_path, 3, "fmap_magnitude", f + "run-1_magnitude1.nii.gz"),
        _result(tmp_path, 4, "fmap_phasediff", f + "run-1_phasediff.nii.gz"),
        _result(tmp_path, 5, "bold", b + "run-1_bold.nii.gz"),
        _result(tmp_path, 6, "bold", b + "run-2_bold.nii.gz"),
        _result(tmp_path, 7, "fmap_magnitude", f + "run-2_magnitude1.nii.gz"),
        _result(tmp_path, 8, "fmap_phasediff", f + "run-2_phasediff.nii.gz"),
        _result(tmp_path, 9, "bold", b + "run-3_bold.nii.gz"),
        _result(tmp_path, 2, "bold", "sub-01/ses-2/func/sub-01_ses-2_task-rest_bold.nii.gz", session="2"),
    ]
    assert link_fieldmaps(tmp_path, results) == 3  # the other session has no field map: left alone
    assert [_meta(tmp_path, b + f"run-{k}_bold.nii.gz")["B0FieldSource"] for k in (1, 2, 3)] == \
        ["phasediff4", "phasediff4", "phasediff8"]
    first = _meta(tmp_path, f + "run-1_magnitude2.nii.gz")
    assert first["B0FieldIdentifier"] == "phasediff4"
    assert first["IntendedFor"] == [f"bids::{b}run-1_bold.nii.gz", f"bids::{b}run-2_bold.nii.gz"]
    assert _meta(tmp_path, f + "run-2_phasediff.nii.gz")["IntendedFor"] == [f"bids::{b}run-3_bold.nii.gz"]
    assert "B0FieldSource" not in _meta(tmp_path, "sub-01/ses-2/func/sub-01_ses-2_task-rest_bold.nii.gz")
    assert _meta(tmp_path, b + "run-1_bold.nii.gz")["EchoTime"] == 0.03  # the rest of the sidecar kept


def test_linking_never_writes_through_a_hard_link(tmp_path):
    """BIDS input is hard-linked into the output: the input's own sidecar must stay as it was."""
    out = tmp_path / "out"
    results = [_result(out, 1, "bold", "sub-01/func/sub-01_task-rest_bold.nii.gz", session=None),
               _result(out, 2, "fmap_phasediff", "sub-01/fmap/sub-01_phasediff.nii.gz", session=None)]
    source = tmp_path / "input_bold.json"
    os.link(out / "sub-01/func/sub-01_task-rest_bold.json", source)
    before = source.read_text()
    link_fieldmaps(out, results)
    assert source.read_text() == before
    assert _meta(out, "sub-01/func/sub-01_task-rest_bold.nii.gz")["B0FieldSource"] == "phasediff2"


def test_se_epi_pairs_correct_bold_and_dwi_runs_with_one_source_each(tmp_path):
    """An AP/PA pair corrects the BOLD and DWI runs after it; a gradient-echo map acquired later
    takes over the BOLD run after it, never the DWI; a lone direction is no field map."""
    f = "sub-01/ses-1/fmap/sub-01_ses-1_"
    results = [
        _result(tmp_path, 2, "fmap_epi", f + "dir-PA_run-1_epi.nii.gz"),  # alone before a run: estimates nothing
        _result(tmp_path, 3, "bold", "sub-01/ses-1/func/sub-01_ses-1_task-a_bold.nii.gz"),
        _result(tmp_path, 4, "fmap_epi", f + "dir-AP_epi.nii.gz"),
        _result(tmp_path, 5, "fmap_epi", f + "dir-PA_run-2_epi.nii.gz"),
        _result(tmp_path, 6, "bold", "sub-01/ses-1/func/sub-01_ses-1_task-b_bold.nii.gz"),
        _result(tmp_path, 7, "DWI", "sub-01/ses-1/dwi/sub-01_ses-1_dwi.nii.gz"),
        _result(tmp_path, 8, "fmap_magnitude", f + "magnitude1.nii.gz"),
        _result(tmp_path, 9, "fmap_phasediff", f + "phasediff.nii.gz"),
        _result(tmp_path, 10, "bold", "sub-01/ses-1/func/sub-01_ses-1_task-c_bold.nii.gz"),
        _result(tmp_path, 11, "DWI", "sub-01/ses-1/dwi/sub-01_ses-1_acq-b_dwi.nii.gz"),
    ]
    assert link_fieldmaps(tmp_path, results) == 5
    source = {name: _meta(tmp_path, path).get("B0FieldSource") for name, path in (
        ("a", "sub-01/ses-1/func/sub-01_ses-1_task-a_bold.nii.gz"), ("b", "sub-01/ses-1/func/sub-01_ses-1_task-b_bold.nii.gz"),
        ("c", "sub-01/ses-1/func/sub-01_ses-1_task-c_bold.nii.gz"), ("dwi", "sub-01/ses-1/dwi/sub-01_ses-1_dwi.nii.gz"),
        ("dwi2", "sub-01/ses-1/dwi/sub-01_ses-1_acq-b_dwi.nii.gz"))}
    # run a comes before the pair (the first after it), b and both DWIs after it; c after the GRE map
    assert source == {"a": "epi4", "b": "epi4", "c": "phasediff9", "dwi": "epi4", "dwi2": "epi4"}
    for epi in ("dir-AP_epi", "dir-PA_run-2_epi"):
        meta = _meta(tmp_path, f + epi + ".nii.gz")
        assert meta["B0FieldIdentifier"] == "epi4"
        assert meta["IntendedFor"] == [
            "bids::sub-01/ses-1/dwi/sub-01_ses-1_acq-b_dwi.nii.gz", "bids::sub-01/ses-1/dwi/sub-01_ses-1_dwi.nii.gz",
            "bids::sub-01/ses-1/func/sub-01_ses-1_task-a_bold.nii.gz", "bids::sub-01/ses-1/func/sub-01_ses-1_task-b_bold.nii.gz"]
    assert "B0FieldIdentifier" not in _meta(tmp_path, f + "dir-PA_run-1_epi.nii.gz")
    assert _meta(tmp_path, f + "phasediff.nii.gz")["IntendedFor"] == ["bids::sub-01/ses-1/func/sub-01_ses-1_task-c_bold.nii.gz"]


def test_se_epi_pair_from_dicom_lands_in_fmap_linked_to_the_bold_run(tmp_path):
    """A generated study: an AP/PA SE-EPI pair, a BOLD run, and an SE-EPI whose header gives no
    polarity. The pair is written as fmap/_dir-AP_epi and _dir-PA_epi (directions from dcm2niix's
    PhaseEncodingDirection), linked both ways with the BOLD run; the third stays in sourcedata
    with its reason; the dataset validates."""
    from dicomgen import SIEMENS_BOLD, SIEMENS_SE_EPI, write_series
    from e2e_helpers import check_row_path, require_model, validator_errors

    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv

    require_model()
    src = tmp_path / "dicom"
    # a Siemens SE-EPI as dcm2niix reads it: polarity and bandwidth from the CSA image header
    # (TotalReadoutTime, required of an _epi, comes from the bandwidth)
    for number, desc, positive in ((3, "se_epi_ap", 1), (4, "se_epi_pa", 0), (7, "se_epi_nopolarity", None)):
        polarity = {} if positive is None else {"PhaseEncodingDirectionPositive": positive}
        csa = {**polarity, "BandwidthPerPixelPhaseEncode": 30.0}
        write_series(src / desc, series_description=desc, series_number=number, seed=number, tags=SIEMENS_SE_EPI,
                     csa=csa)
    write_series(src / "bold", series_description="ep2d_bold_rest", series_number=5, n_volumes=6, tags=SIEMENS_BOLD,
                 csa={"PhaseEncodingDirectionPositive": 1})
    out = tmp_path / "bids"
    assert main([str(src), str(out), "participant", "--work-dir", str(tmp_path / "work")]) == 0
    rows = {r["series_description"]: r for r in read_tsv(out / "derivatives/mrclass/sub-P01/sub-P01_classifications.tsv")}
    fmap, bold = "sub-P01/fmap/sub-P01_", "sub-P01/func/sub-P01_task-rest_bold.nii.gz"
    assert rows["se_epi_ap"]["bids_path"] == fmap + "dir-AP_epi.nii.gz"
    assert rows["se_epi_pa"]["bids_path"] == fmap + "dir-PA_epi.nii.gz"
    assert rows["ep2d_bold_rest"]["bids_path"] == bold
    for name, direction in (("dir-AP_epi", "j-"), ("dir-PA_epi", "j")):
        meta = _meta(out, fmap + name + ".nii.gz")
        assert meta["PhaseEncodingDirection"] == direction and meta["TotalReadoutTime"] > 0
        assert meta["B0FieldIdentifier"] == "epi3" and meta["IntendedFor"] == [f"bids::{bold}"]
    assert _meta(out, bold)["B0FieldSource"] == "epi3"
    unplaced = rows["se_epi_nopolarity"]
    assert unplaced["bids_path"].startswith("sourcedata/unclassified/sub-P01/7_")
    assert "PhaseEncodingDirection" in unplaced["message"] and "not guessed" in unplaced["message"]
    for row in rows.values():  # the placed "other" rows pass the end-to-end tests' path check too
        check_row_path(row, out)
    assert validator_errors(out) == []
