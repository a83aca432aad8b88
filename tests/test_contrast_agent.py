"""The contrast agent survives a re-sort: a DICOM T1wce named ``ce-gadovist`` stays ``ce-gadovist``
when the App's own output is sorted again as BIDS input (it used to become ``ce-gadolinium``)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from e2e_helpers import require_model

from bidsapp.classes import LABELS
from bidsapp.cli.run import main
from bidsapp.discover import discover_bids
from bidsapp.linkbids import sort_participant
from bidsapp.naming import agent_in_name
from bidsapp.records import Classification


def test_agent_in_name():
    assert agent_in_name("sub-01_ce-gadovist_T1w.nii.gz") == "gadovist"
    assert agent_in_name("sub-01_acq-arterial_ce-dotarem_run-2_T1w.nii") == "dotarem"
    assert agent_in_name("sub-01_T1w.nii.gz") == ""


def t1wce(_series) -> Classification:
    probabilities = {label: 0.0 for label in LABELS} | {"T1wce": 0.95}
    return Classification("T1wce", 0.95, probabilities, False, 0.4, best_label="T1wce")


def write_image(path, sidecar: dict | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))


def test_agent_from_sidecar_else_from_the_input_name(tmp_path):
    src = tmp_path / "in"
    write_image(src / "sub-01/anat/sub-01_ce-gadovist_T1w.nii.gz")  # an earlier sorting, no sidecar
    write_image(src / "sub-02/anat/sub-02_ce-gadovist_T1w.nii.gz", {"ContrastBolusAgent": "Dotarem"})
    write_image(src / "sub-03/anat/sub-03_T1w.nii.gz")  # nothing says which agent
    paths = {}
    for s in discover_bids(src).series:
        (result,) = sort_participant([s], tmp_path / "out", t1wce)
        paths[s.subject] = result.bids_path
    assert paths == {
        "01": "sub-01/anat/sub-01_ce-gadovist_T1w.nii.gz",
        "02": "sub-02/anat/sub-02_ce-dotarem_T1w.nii.gz",  # the sidecar is the header: it wins
        "03": "sub-03/anat/sub-03_ce-gadolinium_T1w.nii.gz",
    }


def test_example_t1wce_keeps_its_agent_when_its_output_is_sorted_again(tmp_path):
    from bidsapp.example import write_example

    require_model()
    write_example(tmp_path / "dicom")
    first, second = tmp_path / "bids", tmp_path / "resorted"
    assert main([str(tmp_path / "dicom"), str(first), "participant"]) == 0
    (image,) = first.glob("sub-EXAMPLE01/anat/*_ce-*_T1w.nii.gz")
    assert image.name == "sub-EXAMPLE01_ce-gadovist_T1w.nii.gz"
    sidecar = json.loads(image.with_name(image.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["ContrastBolusAgent"] == "Gadovist"  # copied from the DICOM header
    assert main([str(first), str(second), "participant", "--input-type", "bids"]) == 0
    assert [p.name for p in second.glob("sub-EXAMPLE01/anat/*_ce-*_T1w.nii.gz")] == [image.name]


def test_a_4d_series_that_looks_anatomical_is_kept_as_other(tmp_path):
    """BIDS anat images are 3D: a 4D NIfTI the classifier calls T1wce is named as other, its
    volume count taken from discovery's header read (the image is not opened twice)."""
    src = tmp_path / "in"
    path = src / "sub-01/anat/sub-01_T1w.nii.gz"
    path.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), path)
    (series,) = discover_bids(src).series
    assert series.header.n_volumes == 3
    (result,) = sort_participant([series], tmp_path / "out", t1wce)
    assert result.status == "other" and "4D series (3 volumes)" in result.message
    assert result.bids_path.startswith("sourcedata/unclassified/")
