#!/usr/bin/env python3
"""Where do the body post-contrast phases go? (issue 41: the delayed phase is the class closest to
failing a release's E2)

    python benchmarks/studies/phase_confusion.py --val-cache runs/valcache \\
        --weights bidsapp/model/weights/mrclass.pt --weights runs/base016.pt      # ~3 min per model

No real series checks the arterial, venous and delayed phases, and physics cannot tell them apart
(the same T1 gradient echo before and after injection), so a release's only evidence for them is
the simulated set. ``weight_soup.py`` reports each phase's sensitivity; this says where the misses
go: refused, or named a neighbouring phase (a boundary that moved between runs rather than a
phase lost). Each ``--weights`` is read at its own card's threshold and open-set score, on the
study's cached set (``open_set_study.simulated_set``: the set rethresholding reads).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
sys.path.insert(0, str(Path(__file__).resolve().parent))  # studies/: ensemble_probe, open_set_study
import benchlib  # noqa: E402
from ensemble_probe import add_simulated_set_arguments, simulated_logits  # noqa: E402
from open_set_study import simulated_set  # noqa: E402

from bidsapp.model.predict import Classifier, decide  # noqa: E402

PHASES = ("body-T1w", "body-T1w-arterial", "body-T1w-venous", "body-T1w-delayed")


def confusion(truth: list[str], predicted: list[str], classes=PHASES) -> dict[str, dict[str, int]]:
    """For each of ``classes``: how its series were named (every name that occurs, "other" included)."""
    return {c: dict(Counter(p for t, p in zip(truth, predicted) if t == c).most_common()) for c in classes}


def named(clf: Classifier, z: np.ndarray) -> list[str]:
    """The content decision for each row of logits (``predict.decide``, as inference decides), at
    the card's threshold on the card's score."""
    return [decide(p, clf.threshold, clf.open_set_score).label for p in 1.0 / (1.0 + np.exp(-z))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, action="append", help="weights with their card (repeat; default: shipped)")
    add_simulated_set_arguments(p, val_size=4000, seed=20261261)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    x, g, truth, _ = simulated_set(args.anatomy, args.val_size, args.seed, args.val_cache)
    rows = []
    for weights in args.weights or [None]:
        clf = Classifier.load("cpu", weights)
        table = confusion(truth, named(clf, simulated_logits(clf.network, x, g, [1.0])[:, 0]))
        rows.append({"weights": benchlib.display_path(clf.card["path"]), "version": clf.card["version"],
                     "threshold": clf.threshold, "confusion": table})
        print(f"\n{rows[-1]['weights']} ({clf.card['version']}, threshold {clf.threshold})")
        for c, names in table.items():
            n = sum(names.values())
            print(f"  {c:<19} n={n:<4} right {names.get(c, 0) / n:.3f}   "
                  + ", ".join(f"{k} {v}" for k, v in names.items() if k != c))
    print(f"\n{time.time() - t0:.0f} s")
    benchlib.write_json(args.json, {"val_size": args.val_size, "seed": args.seed, "models": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
