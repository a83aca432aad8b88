#!/usr/bin/env python3
"""Accuracy of the decision the App writes, on the development set's DICOM series, as a user runs it.

    python benchmarks/decision_accuracy.py --json benchmarks/results/decision_accuracy.json

Runs ``mrclass-bids IN OUT participant`` (heudiconv, dcm2niix, the heuristic: the product path)
under four conditions and scores each TSV row against ``labels.tsv``:

* ``both``: the DICOM folders as they are, default decision (content + physics);
* ``content``: the same, ``--decide-by content`` (the image alone);
* ``lying-text``: copies whose SeriesDescription and ProtocolName name another class's series
  (text must change nothing);
* ``bids-sidecars``: the files the ``both`` run wrote, renamed ``sub-X/anat/sub-X_run-N_T2w`` with
  their dcm2niix sidecars, run as a misnamed BIDS input (physics from the sidecars).

Prints accuracy with a 95% Wilson interval, "other" rejected, and per-class recall per condition.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

CONDITIONS = ("both", "content", "lying-text", "bids-sidecars")


def dicom_truth(data: Path) -> dict[str, str]:
    """{series folder name: true label} for the DICOM rows of labels.tsv."""
    return {Path(r["path"]).name: r["label"] for r in benchlib.read_labels(data) if r["format"] == "dicom"}


def run_app(src: Path, out: Path, *extra: str) -> list[dict]:
    cmd = [benchlib.tool("mrclass-bids"), str(src), str(out), "participant", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=benchlib.tool_env())
    if proc.returncode not in (0, 1):
        sys.exit(f"error: {' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    from bidsapp.derivatives import read_tsv

    root = out / "derivatives" / "mrclass" if (out / "derivatives" / "mrclass").is_dir() else out
    return [row for path in sorted(root.glob("sub-*/sub-*_classifications.tsv")) for row in read_tsv(path)]


def lying_copy(data: Path, names: list[str], truth: dict[str, str], dest: Path) -> None:
    """Each series copied with the description of the next series (in name order) of another class."""
    import pydicom

    descriptions = {}
    for name in names:
        first = benchlib.series_files(data / "dicom" / name)[0]
        descriptions[name] = str(pydicom.dcmread(first, stop_before_pixels=True).get("SeriesDescription", ""))
    for i, name in enumerate(names):
        liar = next(other for other in names[i + 1:] + names[:i] if truth[other] != truth[name])
        benchlib.copy_series(data / "dicom" / name, dest / name, protocol=descriptions[liar] or "T1")


def misnamed_bids(out_both: Path, rows: list[dict], dest: Path) -> dict[str, str]:
    """The ``both`` run's images renamed ``anat/..._run-N_T2w``; {new source: the row's source}."""
    sources: dict[str, str] = {}
    counter: dict[str, int] = defaultdict(int)
    for row in rows:
        path = row.get("bids_path") or ""
        if not path.endswith((".nii.gz", ".nii")):
            continue
        sub = row["participant_id"]
        counter[sub] += 1
        stem_new = f"{sub}/anat/{sub}_run-{counter[sub]}_T2w"
        old_core = path[: -len(".nii.gz")] if path.endswith(".nii.gz") else path[: -len(".nii")]
        target = dest / (stem_new + ".nii.gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_both / path, target)
        for ext in (".json", ".bval", ".bvec"):
            if (out_both / (old_core + ext)).is_file():
                shutil.copyfile(out_both / (old_core + ext), dest / (stem_new + ext))
        sources[stem_new + ".nii.gz"] = row["source"]
    (dest / "dataset_description.json").write_text('{"Name": "misnamed", "BIDSVersion": "1.10.1"}')
    return sources


def score(rows: list[dict], truth_of) -> dict:
    """Accuracy, Wilson interval, 'other' rejected and per-class recall of TSV rows."""
    from bidsapp.train.metrics import wilson

    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    items = []
    for row in rows:
        truth = truth_of(row)
        if truth is None:
            continue
        right = row.get("label") == truth
        per_class[truth][0] += right
        per_class[truth][1] += 1
        items.append({"source": row["source"], "truth": truth, "label": row.get("label"),
                      "decided_by": row.get("decided_by"), "physics_label": row.get("physics_label"),
                      "content_label": row.get("content_label"), "right": right})
    k, n = sum(i["right"] for i in items), len(items)
    others = per_class.get("other", [0, 0])
    return {"right": k, "n": n, "accuracy": k / n if n else None, "wilson95": wilson(k, n) if n else None,
            "other_rejected": (others[0] / others[1]) if others[1] else None,
            "per_class": {c: {"right": r, "n": m} for c, (r, m) in sorted(per_class.items())}, "series": items}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--json", type=Path, help="write the result as JSON")
    p.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = benchlib.resolve_data(args.data)
    truth = dicom_truth(data)
    names = sorted(truth)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mrclass-decision-") as tmp:
        tmp = Path(tmp)
        by_source = lambda row: truth.get(Path(row["source"]).name)  # noqa: E731
        both_rows = run_app(data / "dicom", tmp / "both") if {"both", "bids-sidecars"} & set(args.conditions) else []
        if "both" in args.conditions:
            results["both"] = score(both_rows, by_source)
        if "content" in args.conditions:
            results["content"] = score(run_app(data / "dicom", tmp / "content", "--decide-by", "content"), by_source)
        if "lying-text" in args.conditions:
            lying_copy(data, names, truth, tmp / "lying")
            results["lying-text"] = score(run_app(tmp / "lying", tmp / "lying-out"), by_source)
        if "bids-sidecars" in args.conditions:
            origin = misnamed_bids(tmp / "both", both_rows, tmp / "bids-in")
            rows = run_app(tmp / "bids-in", tmp / "bids-out", "--input-type", "bids")
            results["bids-sidecars"] = score(rows, lambda row: truth.get(Path(origin.get(row["source"], "")).name))
    for name, r in results.items():
        low, high = r["wilson95"] or (0, 0)
        print(f"{name:14s} {r['right']:3d}/{r['n']:<3d} = {r['accuracy']:.0%} (95% CI {low:.0%}-{high:.0%}); "
              f"'other' rejected {r['other_rejected']:.0%}" if r["n"] else f"{name}: no series")
        for item in r["series"]:
            if not item["right"]:
                print(f"    wrong: {item['source']} truth {item['truth']} -> {item['label']} "
                      f"(content {item['content_label']}, physics {item['physics_label']})")
    payload = {"benchmark": "decision_accuracy", "meta": benchlib.machine_info(),
               "config": {"data": benchlib.display_path(data), "conditions": list(results)}, "results": results}
    benchlib.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
