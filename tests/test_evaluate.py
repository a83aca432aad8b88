"""The evaluation CLI on real labelled series: the numbers it prints are the ones it stores."""

from __future__ import annotations

import json

from bidsapp.train import evaluate

ROWS = [  # a 2D stack, a 3D volume (three views), a DICOM series folder
    ("nifti/TCGA-FG-6692/MRHR_T2_AX_OtherEXampleTCIA_TCGA-FG-6692_Si_TCGA-FG-6692_MRHR_T2_AX_SE_2_tse2d1_11_t2.nii.gz", "T2w"),
    ("nifti/BraTS-GLI-00001/BraTS-GLI-00001-000-t1c.nii.gz", "T1wce"),
    ("dicom/ge_fmap_6_CV_Neuro_B0map", "other"),
]


def _labels(tmp_path, rows):
    path = tmp_path / "labels.tsv"
    path.write_text("path\tformat\tlabel\n" + "".join(f"{p}\tx\t{lab}\n" for p, lab in rows))
    return path


def test_evaluate_prints_and_stores_the_same_metrics(real_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main([str(real_data), "--labels", str(_labels(tmp_path, ROWS)), "--threads", "1",
                          "--json", str(out)]) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    summary, outcomes = result["summary"], result["outcomes"]
    assert summary["n"] == len(outcomes) == 3
    assert [o["truth"] for o in outcomes] == [lab for _, lab in ROWS]
    correct = sum(o["truth"] == o["predicted"] for o in outcomes)
    assert abs(summary["accuracy"] - correct / 3) < 1e-9
    lo, hi = summary["accuracy_ci95"]
    assert 0 <= lo <= summary["accuracy"] <= hi <= 1
    assert sum(sum(row.values()) for row in summary["confusion"].values()) == 3
    assert f"accuracy: {summary['accuracy']:.3f}" in text and "Wilson 95% CI" in text
    assert "confusion (rows: truth, columns: predicted)" in text and "seconds per series" in text
    for o in outcomes:  # every wrong answer is listed under errors, and only those
        assert (f"{o['path']}: {o['truth']} -> " in text) == (o["truth"] != o["predicted"])
    known = [o for o in outcomes if o["truth"] != "other"]
    r = summary["ranking"]
    assert r["best_class_right"] == sum(o["best_label"] == o["truth"] for o in known)
    assert r["errors"] == 3 - correct
    assert f"best class right for {r['best_class_right']} of {len(known)} known-class series" in text


def test_native_plane_ablation_changes_only_3d_volumes(real_data, tmp_path):
    labels = _labels(tmp_path, ROWS[:2])
    runs = {}
    for flag in ([], ["--native-plane"]):
        out = tmp_path / f"eval{len(flag)}.json"
        evaluate.main([str(real_data), "--labels", str(labels), "--threads", "1", "--threshold", "0", "--json", str(out), *flag])
        runs[bool(flag)] = json.loads(out.read_text())["outcomes"]
    two_d, three_d = zip(runs[False], runs[True])
    assert two_d[0]["confidence"] == two_d[1]["confidence"]  # a 2D stack has one view either way
    assert three_d[0]["confidence"] != three_d[1]["confidence"]


def test_unknown_label_is_a_usage_error(real_data, tmp_path, capsys):
    labels = _labels(tmp_path, [(ROWS[0][0], "T3w")])
    assert evaluate.main([str(real_data), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert "T3w" in err and f"{labels}:2:" in err  # the line to fix
