"""SkullStripped, which BIDS requires of every image in a derivative dataset, comes from the input."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np

from bidsapp.classes import LABELS
from bidsapp.discover import discover_bids
from bidsapp.linkbids import sort_participant
from bidsapp.records import Classification


def t1w(_series) -> Classification:
    return Classification("T1w", 0.9, {label: 0.0 for label in LABELS} | {"T1w": 0.9}, False, 0.4, best_label="T1w")


def make_input(root, dataset_type: str | None, sidecars: dict[str, dict | None]):
    root.mkdir(parents=True)
    description = {"Name": "in", "BIDSVersion": "1.10.1"} | ({"DatasetType": dataset_type} if dataset_type else {})
    (root / "dataset_description.json").write_text(json.dumps(description))
    for sub, meta in sidecars.items():
        image = root / f"sub-{sub}" / "anat" / f"sub-{sub}_T2w.nii.gz"  # misnamed: sorted to _T1w
        image.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), image)
        if meta is not None:
            image.with_name(f"sub-{sub}_T2w.json").write_text(json.dumps(meta))


def sort_all(src, out) -> dict[str, dict | None]:
    sidecars = {}
    for s in discover_bids(src).series:
        (result,) = sort_participant([s], out, t1w)
        path = out / result.bids_path.replace(".nii.gz", ".json")
        sidecars[s.subject] = json.loads(path.read_text()) if path.exists() else None
    return sidecars


def test_raw_input_images_are_not_skull_stripped(tmp_path):
    make_input(tmp_path / "in", None, {"01": {"EchoTime": 0.1}, "02": None, "03": {"SkullStripped": True}})
    before = (tmp_path / "in/sub-01/anat/sub-01_T2w.json").read_text()
    assert sort_all(tmp_path / "in", tmp_path / "out") == {
        "01": {"EchoTime": 0.1, "SkullStripped": False},
        "02": {"SkullStripped": False},
        "03": {"SkullStripped": True},  # the input says: kept (a hard link)
    }
    assert (tmp_path / "in/sub-01/anat/sub-01_T2w.json").read_text() == before  # never written through a link
    assert os.path.samefile(tmp_path / "in/sub-03/anat/sub-03_T2w.json", tmp_path / "out/sub-03/anat/sub-03_T1w.json")


def test_derivative_input_that_does_not_say_is_left_as_it_is(tmp_path):
    make_input(tmp_path / "in", "derivative", {"01": {"EchoTime": 0.1}, "02": None})
    assert sort_all(tmp_path / "in", tmp_path / "out") == {"01": {"EchoTime": 0.1}, "02": None}
