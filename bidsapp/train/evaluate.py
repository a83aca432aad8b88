"""Measure the classifier on a labelled directory of real series.

    mrclass-bids-evaluate ../shared/data/real            # reads ../shared/data/real/labels.tsv
    mrclass-bids-evaluate DIR --labels my.tsv --json out.json --weights runs/v2/mrclass.pt

``labels.tsv`` columns: ``path`` (a NIfTI file or a folder of one DICOM series, relative to DIR),
``label`` (a class of ARCHITECTURE.md section 2, or "other"); other columns are ignored.
Prints per-class sensitivity/specificity, accuracy with a Wilson 95% interval, the confusion
matrix, the open-set rejection rate, how often the best class is right at any confidence (and how
many errors are refusals with a right best guess), and seconds per series (loading and
classification apart).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..model.predict import Classifier
from .labels_file import load_any, read_label_rows
from .metrics import ranking, summarise


@dataclass(frozen=True)
class Outcome:
    path: str
    truth: str
    predicted: str
    confidence: float
    best_label: str
    load_s: float
    classify_s: float


def evaluate(root: Path, rows: list[dict], clf: Classifier, threshold: float | None,
             all_views: bool = True) -> list[Outcome]:
    outcomes = []
    for row in rows:
        t0 = time.perf_counter()
        vol = load_any(root / row["path"])
        t1 = time.perf_counter()
        c = clf.classify(vol, threshold, all_views=all_views)
        t2 = time.perf_counter()
        outcomes.append(Outcome(row["path"], row["label"], c.label, c.confidence, c.best_label, t1 - t0, t2 - t1))
    return outcomes


def format_report(outcomes: list[Outcome], summary: dict) -> str:
    lo, hi = summary["accuracy_ci95"]
    lines = [f"series: {summary['n']}   accuracy: {summary['accuracy']:.3f}  (Wilson 95% CI {lo:.3f}-{hi:.3f})"]
    if summary["other_rejected"] is not None:
        lines.append(f"open-set: {summary['other_rejected']:.3f} of 'other' series rejected")
    r = summary["ranking"]
    if r["known"]:
        lines.append(f"best class right for {r['best_class_right']} of {r['known']} known-class series; "
                     f"{r['refused_with_right_best']} of {r['errors']} errors are refusals whose best guess was right")
    load = np.median([o.load_s for o in outcomes])
    cls = np.median([o.classify_s for o in outcomes])
    lines.append(f"seconds per series (median): load {load:.2f}, classify {cls:.2f}")
    lines += ["", f"{'class':<20}{'n':>4}{'sensitivity':>13}{'specificity':>13}"]
    for lab, m in summary["per_class"].items():
        sens = "-" if m["sensitivity"] is None else f"{m['sensitivity']:.2f}"
        spec = "-" if m["specificity"] is None else f"{m['specificity']:.2f}"
        lines.append(f"{lab:<20}{m['n']:>4}{sens:>13}{spec:>13}")
    labels = list(summary["confusion"])
    lines += ["", "confusion (rows: truth, columns: predicted)", " " * 20 + "".join(f"{lab[:7]:>8}" for lab in labels)]
    for t in labels:
        lines.append(f"{t:<20}" + "".join(f"{summary['confusion'][t][p]:>8}" for p in labels))
    lines += ["", "errors:"]
    lines += [f"  {o.path}: {o.truth} -> {o.predicted} ({o.confidence:.2f}, best {o.best_label})"
              for o in outcomes if o.truth != o.predicted] or ["  none"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mrclass-bids-evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="labelled directory")
    p.add_argument("--labels", type=Path, help="labels TSV (default ROOT/labels.tsv)")
    p.add_argument("--weights", type=Path, help="model weights (default: the shipped model)")
    p.add_argument("--threshold", type=float, help="override the model card's open-set threshold")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--native-plane", action="store_true",
                   help="score 3D volumes in their native plane only, not the three-view average (an ablation)")
    p.add_argument("--json", type=Path, help="also write outcomes and metrics as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        rows = read_label_rows(args.labels or args.root / "labels.tsv")
    except ValueError as err:
        print(f"mrclass-bids-evaluate: {err}", file=sys.stderr)
        return 2
    clf = Classifier.load(args.device, args.weights)
    outcomes = evaluate(args.root, rows, clf, args.threshold, all_views=not args.native_plane)
    truth, predicted = [o.truth for o in outcomes], [o.predicted for o in outcomes]
    summary = {**summarise(truth, predicted), "ranking": ranking(truth, predicted, [o.best_label for o in outcomes])}
    print(f"model: {clf.card['name']} {clf.card['version']} sha256 {clf.card['sha256'][:12]}  "
          f"threshold {args.threshold if args.threshold is not None else clf.threshold}"
          f"{'  (3D volumes: native plane only)' if args.native_plane else ''}")
    print(format_report(outcomes, summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "outcomes": [o.__dict__ for o in outcomes]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
