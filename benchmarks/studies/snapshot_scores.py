#!/usr/bin/env python3
"""Does the simulated validation score that chose a checkpoint track real accuracy?

    python benchmarks/studies/snapshot_scores.py runs/v16              # every snapshot of a --select-every run
    python benchmarks/studies/snapshot_scores.py runs/v16 --json snapshots.json

``mrclass-bids-train --select-every N`` keeps each scored snapshot and lists it, with the
threshold and accuracy it got on the run's simulated validation set, in ``selection.tsv``.
This scores every listed snapshot, at that same threshold, on the real development set and on
the brain maps derived from its real DTI (``derived_maps.py``). For the record only: choosing a
snapshot by these columns would tune to 34 real series, the thing the held-out test punishes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/studies/: ensemble_probe
import benchlib  # noqa: E402
from ensemble_probe import add_real_set_arguments, real_inputs, series_logits  # noqa: E402

from bidsapp.classes import LABELS, OTHER  # noqa: E402
from bidsapp.model.network import SliceStackClassifier  # noqa: E402
from bidsapp.model.open_set_score import card_score  # noqa: E402
from bidsapp.train.metrics import decide_labels  # noqa: E402
from bidsapp.train.train import CheckpointSelection  # noqa: E402
from bidsapp.volume import SPEC  # noqa: E402


def read_selection(run: Path) -> list[dict]:
    with open(run / "selection.tsv", newline="") as f:
        return [{"step": int(r["step"]), "threshold": float(r["threshold"]), "accuracy": float(r["accuracy"]),
                 "other_rejected": r["other_rejected"]} for r in csv.DictReader(f, delimiter="\t")]


def load_snapshot(run: Path, step: int, architecture) -> SliceStackClassifier:
    net = SliceStackClassifier(len(LABELS), architecture)
    net.load_state_dict(CheckpointSelection(run).state(step))
    return net.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder with selection.tsv and snapshots/")
    add_real_set_arguments(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data_root = benchlib.resolve_data(args.data)
    card = json.loads((args.run / "mrclass.json").read_text()) if (args.run / "mrclass.json").is_file() else {}
    selected = card.get("training", {}).get("selected_step")

    inputs, truth, names, n_dev = real_inputs(data_root, SPEC, derived=not args.no_derived)
    other_idx = [i for i in range(n_dev) if truth[i] == OTHER]

    results = []
    print(f"{'step':>6}{'threshold':>10}{'sim acc':>9}{'dev':>7}{'other':>7}{'derived':>9}{'total':>7}")
    for snap in read_selection(args.run):
        net = load_snapshot(args.run, snap["step"], card.get("architecture"))
        probs = torch.sigmoid(torch.from_numpy(series_logits(net, inputs, [1.0])[:, 0])).numpy()
        predicted = decide_labels(probs, snap["threshold"], card_score(card))  # the score the run chose on
        right = np.array([p_ == t for p_, t in zip(predicted, truth)])
        row = {**snap, "dev_right": int(right[:n_dev].sum()), "dev_n": n_dev,
               "other_rejected_real": int(right[other_idx].sum()), "other_n": len(other_idx),
               "derived_right": int(right[n_dev:].sum()), "derived_n": len(right) - n_dev,
               "selected": snap["step"] == selected,
               "errors": [f"{n}: {t} -> {p_}" for n, t, p_ in zip(names, truth, predicted) if p_ != t]}
        results.append(row)
        print(f"{row['step']:>6}{row['threshold']:>10.3f}{row['accuracy']:>9.3f}{row['dev_right']:>4}/{n_dev}"
              f"{row['other_rejected_real']:>5}/{len(other_idx)}{row['derived_right']:>6}/{row['derived_n']}"
              f"{int(right.sum()):>4}/{len(right)}{'  <- selected' if row['selected'] else ''}")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "snapshots": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
