"""Derivative files: TSV columns, sidecar schema, atomic and concurrent shared files."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from bidsapp.classes import LABELS
from bidsapp.derivatives import (
    TSV_COLUMNS,
    add_participants,
    atomic_write_text,
    derivative_description,
    mrclass_sidecar,
    raw_description,
    read_tsv,
    sidecar_path,
    write_group_tsv,
    write_participant_tsv,
)
from bidsapp.records import Classification, HeaderFacts, Series, SeriesResult

CARD = {"name": "mrclass-cnn", "version": "0.1", "sha256": "ab" * 32}


def result(subject="01", session=None, label="T1wce", status="ok", header_label="T1w", uid="1.2.3", desc="t1\tpost\ngd"):
    probs = {k: 0.0 for k in LABELS}
    probs[label if label in probs else "T1w"] = 0.97
    c = Classification(label=label, confidence=0.97, probabilities=probs, open_set_rejected=False, threshold=0.5, best_label=label)
    s = Series(subject, session, uid, f"dicom/{uid}", (Path("/x"),), "dicom", HeaderFacts(series_description=desc, series_number=7))
    return SeriesResult(s, c, header_label=header_label, bids_path=f"sub-{subject}/anat/sub-{subject}_ce-gadolinium_T1w.nii.gz", status=status)


def test_sidecar_schema():
    r = result()
    data = mrclass_sidecar(r, CARD, "bids:raw:" + r.bids_path)
    for key in ("Label", "Region", "Confidence", "OpenSetRejected", "Probabilities", "Threshold", "HeaderLabel", "HeaderAgrees",
                "SeriesInstanceUID", "SeriesDescription", "SeriesNumber", "Sources", "Model"):
        assert key in data
    assert data["Label"] == "T1wce" and data["Region"] == "brain" and data["HeaderAgrees"] is False
    assert set(data["Probabilities"]) == set(LABELS)
    assert data["Model"] == {"Name": "mrclass-cnn", "Version": "0.1", "SHA256": "ab" * 32}
    assert data["Sources"] == ["bids:raw:sub-01/anat/sub-01_ce-gadolinium_T1w.nii.gz"]
    json.dumps(data)
    assert sidecar_path(Path("/d"), r.bids_path) == Path("/d/sub-01/anat/sub-01_ce-gadolinium_T1w_mrclass.json")


def test_sidecar_of_failed_series():
    r = SeriesResult(result().series, None, bids_path="sourcedata/unclassified/sub-01/7_x.nii.gz", status="error", message="boom")
    data = mrclass_sidecar(r, CARD, "bids:raw:x")
    assert data["Label"] is None and data["Status"] == "error" and data["HeaderAgrees"] is None
    json.dumps(data)


def test_participant_and_group_tsv(tmp_path: Path):
    write_participant_tsv(tmp_path, "02", [result("02", "a", uid="9")])
    path = write_participant_tsv(tmp_path, "01", [result(uid="1"), result(uid="2", label="T1w", header_label="T1w")])
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(TSV_COLUMNS)
    assert all(len(line.split("\t")) == len(TSV_COLUMNS) for line in lines)
    rows = read_tsv(path)
    assert [r["series_uid"] for r in rows] == ["1", "2"]
    assert rows[0]["series_description"] == "t1 post gd"  # no tabs/newlines leak into cells
    assert (rows[0]["header_agrees"], rows[1]["header_agrees"]) == ("false", "true")
    assert rows[0]["session_id"] == "n/a" and rows[0]["confidence"] == "0.9700"
    group = read_tsv(write_group_tsv(tmp_path))
    assert [(r["participant_id"], r["series_uid"]) for r in group] == [("sub-01", "1"), ("sub-01", "2"), ("sub-02", "9")]
    assert group[2]["session_id"] == "ses-a"
    # rerun replaces, never appends
    write_participant_tsv(tmp_path, "01", [result(uid="1")])
    assert len(read_tsv(write_group_tsv(tmp_path))) == 2


def test_descriptions():
    assert raw_description()["DatasetType"] == "raw"
    d = derivative_description("../..")
    assert d["DatasetType"] == "derivative"
    assert d["GeneratedBy"][0]["Name"] == "mrclass-bids" and d["GeneratedBy"][0]["Version"]


def test_atomic_write_leaves_no_temp_files(tmp_path: Path):
    target = tmp_path / "a" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["f.txt"]


def _add(args):
    root, subjects = args
    for s in subjects:
        add_participants(Path(root), [s])


def test_participants_tsv_parallel_writers_lose_nothing(tmp_path: Path):
    jobs = [(str(tmp_path), [f"{w:02d}{i:03d}" for i in range(40)]) for w in range(4)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.map(_add, jobs)
    rows = read_tsv(tmp_path / "participants.tsv")
    expected = sorted(f"sub-{s}" for _, subs in jobs for s in subs)
    assert [r["participant_id"] for r in rows] == expected
    add_participants(tmp_path, ["00000"])  # idempotent
    assert len(read_tsv(tmp_path / "participants.tsv")) == len(expected)


def test_participants_tsv_keeps_extra_columns(tmp_path: Path):
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t42\n")
    add_participants(tmp_path, ["02", "01"])
    rows = read_tsv(tmp_path / "participants.tsv")
    assert rows == [{"participant_id": "sub-01", "age": "42"}, {"participant_id": "sub-02", "age": "n/a"}]


@pytest.mark.parametrize("bad", ["participant_id\n", ""])
def test_participants_tsv_from_empty(tmp_path: Path, bad: str):
    (tmp_path / "participants.tsv").write_text(bad)
    add_participants(tmp_path, ["01"])
    assert read_tsv(tmp_path / "participants.tsv") == [{"participant_id": "sub-01"}]
