"""End to end on the real NIfTI series laid out as a misnamed BIDS dataset (all named _T1w)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from e2e_helpers import check_row_path, require_model, tree_digest

from bidsapp.cli.run import main
from bidsapp.derivatives import read_tsv


@pytest.fixture(scope="module")
def bids_run(real_data: Path, tmp_path_factory):
    require_model()
    tmp = tmp_path_factory.mktemp("e2e_bids")
    src = tmp / "in"
    niftis = sorted((real_data / "nifti").rglob("*.nii.gz"))
    for i, path in enumerate(niftis):
        sub = "".join(ch for ch in path.parent.name if ch.isalnum())
        dst = src / f"sub-{sub}" / "anat" / f"sub-{sub}_run-{i + 1}_T1w.nii.gz"  # every file misnamed T1w
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dst)
    (src / "dataset_description.json").write_text('{"Name": "messy", "BIDSVersion": "1.10.0"}')
    before = tree_digest(src)
    out = tmp / "out"
    rc = main([str(src), str(out), "participant"])
    first = tree_digest(out)
    rc2 = main([str(src), str(out), "participant"])
    rc_group = main([str(src), str(out), "group"])
    return {"src": src, "out": out, "n": len(niftis), "rc": (rc, rc2, rc_group), "before": before, "first": first}


def test_rows_and_paths(bids_run):
    rc, rc2, rc_group = bids_run["rc"]
    assert rc == 0 and rc2 == 0 and rc_group == 0
    table = read_tsv(bids_run["out"] / "group_classifications.tsv")
    assert len(table) == bids_run["n"]
    assert sorted(r["source"] for r in table) == sorted(str(p.relative_to(bids_run["src"])) for p in bids_run["src"].rglob("*.nii.gz"))
    for r in table:
        check_row_path(r, bids_run["out"])
        out_file, in_file = bids_run["out"] / r["bids_path"], bids_run["src"] / r["source"]
        assert out_file.read_bytes() == in_file.read_bytes()
        assert os.path.samefile(out_file, in_file)  # hard link on the same file system
        sidecar = json.loads((bids_run["out"] / (r["bids_path"].rsplit(".nii", 1)[0] + "_mrclass.json")).read_text())
        assert sidecar["Label"] == r["label"] and sidecar["Sources"] == [f"bids::{r['bids_path']}"]


def test_derivative_description(bids_run):
    desc = json.loads((bids_run["out"] / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "mrclass-bids"


def test_rerun_identical_and_input_untouched(bids_run):
    now = tree_digest(bids_run["out"])
    group_outputs = ("group_classifications.tsv", "group.html")  # written by the group level after `first`
    assert now == {**bids_run["first"], **{k: now[k] for k in group_outputs}}
    assert tree_digest(bids_run["src"]) == bids_run["before"]


def test_input_names_are_cross_checked(bids_run):
    """Every input was named _T1w and has no sidecar: that name is the header claim, so each
    series the content calls something else is a disagreement, and no T1w call is."""
    table = read_tsv(bids_run["out"] / "group_classifications.tsv")
    assert {r["header_label"] for r in table} == {"T1w"}
    for r in table:
        assert r["header_agrees"] == ("true" if r["label"] == "T1w" else "false"), r


def test_validator_passes(bids_run):
    """The derivative dataset validates: every image says SkullStripped (the input is raw, so
    false), and the App's own files are listed in .bidsignore."""
    from e2e_helpers import validator_errors

    assert validator_errors(bids_run["out"]) == []
    for r in read_tsv(bids_run["out"] / "group_classifications.tsv"):
        if r["status"] == "ok":
            sidecar = json.loads((bids_run["out"] / (r["bids_path"].rsplit(".nii", 1)[0] + ".json")).read_text())
            assert sidecar["SkullStripped"] is False
