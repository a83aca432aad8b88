"""End to end on real DICOM series: BIDS output that validates, one row per series, reruns stable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_helpers import DICOM_SUBSET, check_row_path, link_tree, require_model, tree_digest, validator_errors

from bidsapp.cli.run import main
from bidsapp.derivatives import TSV_COLUMNS, read_tsv
from bidsapp.discover import discover_dicom


@pytest.fixture(scope="module")
def dicom_run(real_data: Path, tmp_path_factory):
    require_model()
    tmp = tmp_path_factory.mktemp("e2e_dicom")
    sources = [real_data / "dicom" / name for name in DICOM_SUBSET]
    src = tmp / "in"
    link_tree(sources, src)
    before = {s.name: tree_digest(s) for s in sources}
    out = tmp / "out"
    rc = main([str(src), str(out), "participant", "--work-dir", str(tmp / "work")])
    first = tree_digest(out, skip=(".heudiconv",))
    rc2 = main([str(src), str(out), "participant", "--work-dir", str(tmp / "work")])
    rc_group = main([str(src), str(out), "group"])
    after = {s.name: tree_digest(s) for s in sources}
    return {"src": src, "out": out, "rc": (rc, rc2, rc_group), "first": first, "before": before, "after": after}


def rows(out: Path) -> list[dict]:
    return read_tsv(out / "derivatives" / "mrclass" / "group_classifications.tsv")


def test_exit_codes(dicom_run):
    rc, rc2, rc_group = dicom_run["rc"]
    assert rc in (0, 1) and rc2 == rc and rc_group == 0


def test_every_series_exactly_once(dicom_run):
    table = rows(dicom_run["out"])
    expected = sorted(s.series_uid for s in discover_dicom(dicom_run["src"]).series)
    assert len(expected) == len(DICOM_SUBSET)
    assert sorted(r["series_uid"] for r in table) == expected
    assert list(table[0]) == list(TSV_COLUMNS)
    assert {r["source"] for r in table} == set(DICOM_SUBSET)  # relative to the input dir


def test_paths_follow_naming_table(dicom_run):
    out = dicom_run["out"]
    for r in rows(out):
        assert r["status"] != "error", r
        check_row_path(r, out)


def test_sidecars_match_table(dicom_run):
    deriv = dicom_run["out"] / "derivatives" / "mrclass"
    for r in rows(dicom_run["out"]):
        stem = r["bids_path"].rsplit(".nii", 1)[0]
        data = json.loads((deriv / f"{stem}_mrclass.json").read_text())
        assert data["Label"] == r["label"] and data["SeriesInstanceUID"] == r["series_uid"]
        assert data["Sources"] == [f"bids:raw:{r['bids_path']}"]
        assert set(data["Model"]) == {"Name", "Version", "SHA256"} and data["Model"]["SHA256"]
        assert abs(sum(data["Probabilities"].values())) > 0


def test_dwi_gradients_only_with_dwi_suffix(dicom_run):
    out = dicom_run["out"]
    for bvec in out.glob("sub-*/**/*.bvec"):
        assert bvec.name.endswith("_dwi.bvec"), bvec


def test_validator_passes(dicom_run):
    assert validator_errors(dicom_run["out"]) == []


def test_rerun_is_identical(dicom_run):
    second = tree_digest(dicom_run["out"], skip=(".heudiconv",))
    first = dicom_run["first"]
    changed = {k for k in first if second.get(k) != first[k]}
    group_outputs = {"derivatives/mrclass/group_classifications.tsv", "derivatives/mrclass/group.html"}
    assert set(second) - group_outputs == set(first)
    assert not [p for p in second if "run-2" in p and p.replace("run-2", "run-1") not in second]
    assert changed == set(), changed


def test_input_untouched(dicom_run):
    assert dicom_run["after"] == dicom_run["before"]


def test_no_litter_in_the_dataset_root(dicom_run):
    """heudiconv's emptied cache folder and participants.tsv's lock file are not left behind."""
    out = dicom_run["out"]
    assert not (out / ".heudiconv").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
