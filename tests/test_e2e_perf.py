"""ASL of a BIDS input keeps its perf/ place when the input supplies what BIDS requires of it (the
``_aslcontext.tsv`` and every required sidecar field; an ``_m0scan`` its ``IntendedFor`` ties to it),
whatever the files are named; with anything missing it stays under sourcedata, the row naming what."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ASL_SIDECAR = {  # a pCASL run as a person or their converter completed it (BIDS 1.10 "Arterial Spin Labeling")
    "Manufacturer": "Siemens", "MagneticFieldStrength": 3, "MRAcquisitionType": "3D", "ImageType": ["ORIGINAL", "PRIMARY", "ASL"],
    "RepetitionTime": 4.0, "EchoTime": 0.012, "FlipAngle": 90, "ArterialSpinLabelingType": "PCASL",
    "PostLabelingDelay": 1.8, "LabelingDuration": 1.8, "BackgroundSuppression": False, "M0Type": "Included",
    "TotalAcquiredPairs": 4, "RepetitionTimePreparation": 4.0,
}
CONTEXT = "volume_type\n" + "control\nlabel\n" * 4


def _image(path: Path, volumes: int, meta: dict | None, context: str | None = None) -> None:
    """A NIfTI (8 volumes: 4 control/label pairs) with its sidecar and, beside it, an _aslcontext.tsv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    data = (rng.random((24, 24, 12, volumes) if volumes > 1 else (24, 24, 12)) * 800 + 200).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 4.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    core = str(path)[: -len(".nii.gz")]
    if meta is not None:
        Path(core + ".json").write_text(json.dumps(meta))
    if context is not None:
        Path(core.rpartition("_")[0] + "_aslcontext.tsv").write_text(context)


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory):
    from e2e_helpers import require_model

    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv

    require_model()
    src = tmp_path_factory.mktemp("perf") / "in"
    src.mkdir()
    (src / "dataset_description.json").write_text('{"Name": "messy perf", "BIDSVersion": "1.10.0"}')
    # sub-01: the ASL misnamed a T2w in anat/, its separate M0 misnamed a T1w that names it in IntendedFor
    _image(src / "sub-01/anat/sub-01_run-2_T2w.nii.gz", 8, {**ASL_SIDECAR, "M0Type": "Separate"}, CONTEXT)
    _image(src / "sub-01/anat/sub-01_run-3_T1w.nii.gz", 1, {
        **{k: ASL_SIDECAR[k] for k in ("Manufacturer", "MagneticFieldStrength", "MRAcquisitionType", "ImageType", "EchoTime")},
        "RepetitionTime": 6.0, "RepetitionTimePreparation": 6.0, "IntendedFor": "bids::sub-01/anat/sub-01_run-2_T2w.nii.gz"})
    # sub-02: in perf/ under a wrong name; only the ArterialSpinLabelingType (no ASL token) says ASL
    _image(src / "sub-02/perf/sub-02_acq-x_bold.nii.gz", 8, {**ASL_SIDECAR, "ImageType": ["ORIGINAL", "PRIMARY"]}, CONTEXT)
    # sub-03: no _aslcontext.tsv; sub-04: no PostLabelingDelay, nor the LabelingDuration a PCASL run needs
    _image(src / "sub-03/anat/sub-03_T2w.nii.gz", 8, ASL_SIDECAR)
    _image(src / "sub-04/anat/sub-04_T2w.nii.gz", 8,
           {k: v for k, v in ASL_SIDECAR.items() if k not in ("PostLabelingDelay", "LabelingDuration")}, CONTEXT)
    # sub-05: M0Type Separate, but no image names it; sub-06: an _aslcontext.tsv of 6 rows for 8 volumes
    _image(src / "sub-05/perf/sub-05_asl.nii.gz", 8, {**ASL_SIDECAR, "M0Type": "Separate"}, CONTEXT)
    _image(src / "sub-06/perf/sub-06_asl.nii.gz", 8, ASL_SIDECAR, "volume_type\n" + "control\nlabel\n" * 3)
    out = src.parent / "out"
    assert main([str(src), str(out), "participant"]) == 0 and main([str(src), str(out), "group"]) == 0
    return out, {r["source"]: r for r in read_tsv(out / "group_classifications.tsv")}


def test_complete_asl_and_its_m0_land_in_perf(perf_run):
    out, rows = perf_run
    asl, m0 = rows["sub-01/anat/sub-01_run-2_T2w.nii.gz"], rows["sub-01/anat/sub-01_run-3_T1w.nii.gz"]
    assert asl["bids_path"] == "sub-01/perf/sub-01_asl.nii.gz" and asl["status"] == "other", asl
    assert m0["bids_path"] == "sub-01/perf/sub-01_m0scan.nii.gz", m0
    assert "M0 scan of sub-01/anat/sub-01_run-2_T2w.nii.gz" in m0["message"]
    assert (out / "sub-01/perf/sub-01_aslcontext.tsv").read_text() == CONTEXT
    meta = json.loads((out / "sub-01/perf/sub-01_m0scan.json").read_text())
    assert meta["IntendedFor"] == "bids::sub-01/perf/sub-01_asl.nii.gz"  # the ASL's new name, not the input's
    assert json.loads((out / "sub-01/perf/sub-01_asl.json").read_text())["PostLabelingDelay"] == 1.8
    assert not (out / "sub-01/anat").exists()


def test_labeling_type_alone_marks_asl_and_a_wrong_name_in_perf_is_corrected(perf_run):
    out, rows = perf_run
    row = rows["sub-02/perf/sub-02_acq-x_bold.nii.gz"]
    assert row["bids_path"] == "sub-02/perf/sub-02_asl.nii.gz" and row["physics_label"] == "other", row
    witness = json.loads((out / "sub-02/perf/sub-02_asl_mrclass.json").read_text())["Witnesses"]["physics"]
    assert witness["Reasons"][0].startswith("sidecar's ArterialSpinLabelingType"), witness
    assert (out / "sub-02/perf/sub-02_aslcontext.tsv").is_file()
    assert not list((out / "sub-02/perf").glob("*bold*"))


def test_what_is_missing_keeps_the_asl_in_sourcedata_and_is_named(perf_run):
    out, rows = perf_run
    no_context, no_fields = rows["sub-03/anat/sub-03_T2w.nii.gz"], rows["sub-04/anat/sub-04_T2w.nii.gz"]
    for row in (no_context, no_fields):
        assert row["status"] == "other" and row["bids_path"].startswith("sourcedata/unclassified/"), row
        assert "not placed in perf/" in row["message"] and "none is guessed" in row["message"]
    assert "no _aslcontext.tsv beside the image" in no_context["message"]
    assert "in its sidecar" not in no_context["message"]  # every field is there: only the file is named
    assert "no PostLabelingDelay, LabelingDuration in its sidecar" in no_fields["message"]
    assert "aslcontext" not in no_fields["message"] and "M0Type" not in no_fields["message"]
    assert not (out / "sub-03/perf").exists() and not (out / "sub-04/perf").exists()
    assert "M0Type is Separate, but no images of the input name it" in rows["sub-05/perf/sub-05_asl.nii.gz"]["message"]
    assert "_aslcontext.tsv lists 6 volumes, the image has 8" in rows["sub-06/perf/sub-06_asl.nii.gz"]["message"]
    assert not (out / "sub-05/perf").exists() and not (out / "sub-06/perf").exists()


def test_rows_and_validator(perf_run):
    from e2e_helpers import check_row_path, validator_errors

    out, rows = perf_run
    for row in rows.values():
        check_row_path(row, out)
    assert validator_errors(out) == []
