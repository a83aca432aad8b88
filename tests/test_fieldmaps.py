"""Field maps are linked to the BOLD runs they were acquired for (bidsapp.fieldmaps)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bidsapp.fieldmaps import link_fieldmaps
from bidsapp.naming import image_core, series_cores, series_stem
from bidsapp.records import Classification, HeaderFacts, Series, SeriesResult


def _result(out: Path, number: int, kind: str, image: str, session: str | None = "1") -> SeriesResult:
    """A written series: every image of it (a field map's _magnitude1/2, or its Hz map and _magnitude)."""
    for core in series_cores(series_stem(image_core(image))):
        (out / core).parent.mkdir(parents=True, exist_ok=True)
        (out / f"{core}.nii.gz").write_bytes(b"nii")
        (out / f"{core}.json").write_text(json.dumps({"EchoTime": 0.03}))
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


def test_a_ge_b0_map_corrects_the_bold_runs_nearest_to_it_beside_an_se_epi_pair(tmp_path):
    """A GE B0 map (_fieldmap in Hz and its _magnitude) is one field map: both images carry its
    identifier, the BOLD run after it names it as its source. Where the session also has an SE-EPI
    pair, each run takes the nearest field map acquired before it (DWI only the pair), one source per
    run. A Hz map whose magnitude is missing is no field map (sdcflows needs both)."""
    f, func = "sub-01/ses-1/fmap/sub-01_ses-1_", "sub-01/ses-1/func/sub-01_ses-1_task-"
    dwi = "sub-01/ses-1/dwi/sub-01_ses-1_dwi.nii.gz"
    results = [
        _result(tmp_path, 6, "fmap_fieldmap", f + "run-1_fieldmap.nii.gz"),
        _result(tmp_path, 7, "bold", func + "a_bold.nii.gz"),
        _result(tmp_path, 8, "fmap_epi", f + "dir-AP_epi.nii.gz"),
        _result(tmp_path, 9, "fmap_epi", f + "dir-PA_epi.nii.gz"),
        _result(tmp_path, 10, "bold", func + "b_bold.nii.gz"),
        _result(tmp_path, 11, "DWI", dwi),
        _result(tmp_path, 12, "fmap_fieldmap", f + "run-2_fieldmap.nii.gz"),
        _result(tmp_path, 13, "bold", func + "c_bold.nii.gz"),
    ]
    (tmp_path / (f + "run-2_magnitude.nii.gz")).unlink()
    assert link_fieldmaps(tmp_path, results) == 4
    sources = {run: _meta(tmp_path, path).get("B0FieldSource") for run, path in (
        ("a", func + "a_bold.nii.gz"), ("b", func + "b_bold.nii.gz"), ("c", func + "c_bold.nii.gz"), ("dwi", dwi))}
    assert sources == {"a": "fieldmap6", "b": "epi8", "c": "epi8", "dwi": "epi8"}
    for image in ("run-1_fieldmap", "run-1_magnitude"):
        meta = _meta(tmp_path, f + image + ".nii.gz")
        assert meta["B0FieldIdentifier"] == "fieldmap6" and meta["IntendedFor"] == [f"bids::{func}a_bold.nii.gz"]
    assert "B0FieldIdentifier" not in _meta(tmp_path, f + "run-2_fieldmap.nii.gz")


# --------------------------------------------------------------------------- heudiconv's numbered images

B0_SIDECARS = {"1": {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "MAGNITUDE"], "EchoTime": 0.0046},
               "2": {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "FIELDMAPHZ"], "Units": "Hz"}}


def _heudiconv_wrote(out: Path, sidecars: dict[str, dict], stem: str = "sub-01/fmap/sub-01_fieldmap"):
    """What heudiconv leaves of a GE B0 map named ``stem``: images told apart by a counter only, a
    scans row each (added to the rows a previous run left); returns the series and its outcome."""
    from bidsapp.handoff import SeriesOutcome

    (out / stem).parent.mkdir(parents=True, exist_ok=True)
    scans = out / "sub-01/sub-01_scans.tsv"
    rows = scans.read_text().splitlines() if scans.is_file() else ["filename\tacq_time"]
    for counter, meta in sidecars.items():
        (out / f"{stem}{counter}.nii.gz").write_bytes(b"nii")
        (out / f"{stem}{counter}.json").write_text(json.dumps(meta))
        rows.append(f"{stem.split('/', 1)[1]}{counter}.nii.gz\tn/a")
    scans.write_text("\n".join(rows) + "\n")
    header = HeaderFacts(series_number=6, series_description="B0map")
    series = Series("01", None, "uid6", "6", (), "dicom", header)
    c = Classification("other", 0.9, {}, True, 0.4, physics_kind="fmap_fieldmap")
    return series, SeriesOutcome("uid6", "6-B0map", [], header, classification=c, status="other", stem=stem)


def test_a_ge_b0_maps_numbered_images_take_their_bids_names_from_their_sidecars(tmp_path):
    """heudiconv writes the GE B0 map as _fieldmap1, _fieldmap2 (in dcm2niix's file order): the
    image whose sidecar says FIELDMAPHZ is the _fieldmap, the MAGNITUDE one its _magnitude, whatever
    the counter; the scans table follows; every step that lists a series' images finds both. A rerun
    (heudiconv numbers again beside the previous run's names) ends the same."""
    from bidsapp.convert import name_numbered, series_images, written_files

    swapped = {"1": B0_SIDECARS["2"], "2": B0_SIDECARS["1"]}
    for _ in range(2):
        series, outcome = _heudiconv_wrote(tmp_path, swapped)
        name_numbered(tmp_path, outcome, series)
    fmap = "sub-01/fmap/sub-01_"
    assert sorted(p.name for p in (tmp_path / "sub-01/fmap").iterdir()) == [
        "sub-01_fieldmap.json", "sub-01_fieldmap.nii.gz", "sub-01_magnitude.json", "sub-01_magnitude.nii.gz"]
    assert json.loads((tmp_path / f"{fmap}fieldmap.json").read_text())["Units"] == "Hz"
    assert (outcome.stem, outcome.status) == (f"{fmap}fieldmap", "other")
    assert (tmp_path / "sub-01/sub-01_scans.tsv").read_text().splitlines()[1:] == [
        "fmap/sub-01_fieldmap.nii.gz\tn/a", "fmap/sub-01_magnitude.nii.gz\tn/a"]
    both = [f"{fmap}fieldmap.nii.gz", f"{fmap}magnitude.nii.gz"]
    assert written_files(tmp_path, outcome.stem) == both
    assert series_images(tmp_path, f"{fmap}magnitude.nii.gz") == both


@pytest.mark.parametrize(("sidecars", "reason"), [
    ({"1": B0_SIDECARS["1"], "2": {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "FIELDMAPHZ"]}}, "Units"),
    ({"": B0_SIDECARS["1"]}, "Units"),  # only the magnitude converted: no image can be the _fieldmap
    ({"1": B0_SIDECARS["1"], "2": B0_SIDECARS["1"]}, "unnamed images"),  # not told apart
])
def test_a_ge_b0_map_without_units_or_told_apart_by_nothing_stays_in_sourcedata(tmp_path, sidecars, reason):
    """Units is required of a _fieldmap and never guessed: without it (or without two images the
    sidecars tell apart) the series goes to sourcedata/unclassified with the reason."""
    from bidsapp.convert import name_numbered, written_files

    series, outcome = _heudiconv_wrote(tmp_path, sidecars)
    name_numbered(tmp_path, outcome, series)
    assert outcome.stem == "sourcedata/unclassified/sub-01/6_B0map" and outcome.status == "other"
    assert reason in outcome.message and "kept under sourcedata/unclassified" in outcome.message
    assert not list((tmp_path / "sub-01/fmap").iterdir())
    assert len(written_files(tmp_path, outcome.stem)) == sum(1 for c in sidecars)
    assert (tmp_path / "sub-01/sub-01_scans.tsv").read_text().splitlines() == ["filename\tacq_time"]


def test_real_ge_b0_map_lands_in_fmap_linked_to_a_bold_run(real_data, tmp_path):
    """The development set's GE B0 map (B0rf), beside a generated BOLD run of the same study: written
    as fmap/_fieldmap (Units Hz) and _magnitude, both with the identifier the BOLD run names; the
    dataset validates."""
    import pydicom
    from dicomgen import write_series
    from e2e_helpers import check_row_path, link_tree, require_model, validator_errors

    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv
    from bidsapp.discover import discover_dicom

    require_model()
    b0 = real_data / "dicom" / "ge_fmap_6_CV_Neuro_B0map"
    if not b0.is_dir():
        pytest.skip("GE B0 map series absent")
    src = tmp_path / "dicom"
    link_tree([b0], src)
    study = pydicom.dcmread(next(b0.iterdir()), stop_before_pixels=True)
    ge_bold = {"Manufacturer": "GE MEDICAL SYSTEMS", "ScanningSequence": ["EP", "GR"], "SequenceVariant": "SS",
               "MRAcquisitionType": "2D", "RepetitionTime": 2000, "EchoTime": 30, "FlipAngle": 77}
    write_series(src / "bold", patient_id=study.PatientID, study_date=study.StudyDate,
                 study_uid=study.StudyInstanceUID, series_description="rest_bold", series_number=7, n_volumes=6,
                 tags=ge_bold)
    out = tmp_path / "bids"
    assert main([str(src), str(out), "participant", "--work-dir", str(tmp_path / "work")]) == 0
    sub = discover_dicom(src).series[0].subject
    rows = {r["series_description"]: r for r in read_tsv(out / f"derivatives/mrclass/sub-{sub}/sub-{sub}_classifications.tsv")}
    fmap, bold = f"sub-{sub}/fmap/sub-{sub}_", f"sub-{sub}/func/sub-{sub}_task-rest_bold.nii.gz"
    assert rows["B0map"]["bids_path"] == fmap + "fieldmap.nii.gz" and rows["rest_bold"]["bids_path"] == bold
    fieldmap, magnitude = _meta(out, fmap + "fieldmap.nii.gz"), _meta(out, fmap + "magnitude.nii.gz")
    assert fieldmap["Units"] == "Hz" and "FIELDMAPHZ" in fieldmap["ImageType"]
    assert "MAGNITUDE" in magnitude["ImageType"] and magnitude["EchoTime"] == pytest.approx(0.0046, abs=1e-4)
    for meta in (fieldmap, magnitude):
        assert meta["B0FieldIdentifier"] == "fieldmap6" and meta["IntendedFor"] == [f"bids::{bold}"]
    assert _meta(out, bold)["B0FieldSource"] == "fieldmap6"
    scans = (out / f"sub-{sub}/sub-{sub}_scans.tsv").read_text()
    assert "fmap/" + fmap.rsplit("/", 1)[1] + "magnitude.nii.gz" in scans and "fieldmap2" not in scans
    for row in rows.values():
        check_row_path(row, out)
    assert validator_errors(out) == []
