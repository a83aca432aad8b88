#!/usr/bin/env python3
"""Does the network read a series' background? (issue 41; session 36)

    python benchmarks/studies/background_probe.py                       # about a minute on 2 cores
    python benchmarks/studies/background_probe.py --weights runs/v38/mrclass.pt

Scanners and converters often store a series with exact zeros wherever the magnitude fell under
a noise threshold: the head and scalp lie on a constant background, which sends the series down
``volume.foreground_mask``'s masked path. Until session 36 the simulator drew that only for
skull-stripped brains and fitted maps. For every real scanner series of the development set
(skull-stripped and z-scored data left out: their zeros are the brain's edge), this prints the
model's open-set evidence (the card's score) as stored, and

* for a masked series (over ``MASKED`` of its voxels exactly zero): with those zeros filled with
  Rayleigh noise at half the 5th percentile of its non-zero voxels, as an unmasked scanner image
  would have them;
* for an unmasked one: with every voxel under ``--cut`` of its 99th percentile set to zero.

If the evidence moves when only the background changes, the network reads the background.
Fitted maps (ADC, calculated b-values) are masked by the fit itself; filling them says nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

from bidsapp.classes import OTHER  # noqa: E402
from bidsapp.model.predict import Classifier, decide  # noqa: E402
from bidsapp.train.evaluate import load_any  # noqa: E402
from bidsapp.volume import network_inputs, volume_geometry  # noqa: E402

#: A series with more than this share of exact zeros is read as stored masked.
MASKED = 0.15
#: Pre-processed research data (skull-stripped, z-scored): not what a scanner writes.
PREPROCESSED = ("BraTS", "subtrMeanDivStd")


def evidence(clf: Classifier, volume) -> tuple[str, float]:
    """(decision, open-set evidence) of one loaded series."""
    d = decide(clf.probabilities(network_inputs(volume, clf.spec), volume_geometry(volume)), clf.threshold,
               clf.open_set_score)
    return d.label, d.open_set_score


def noise_filled(data: np.ndarray, rng) -> np.ndarray:
    """The zeros of a masked series replaced by Rayleigh noise at half its 5th non-zero percentile."""
    sigma = 0.5 * np.percentile(data[data != 0], 5)
    noise = np.hypot(rng.normal(0, sigma, data.shape), rng.normal(0, sigma, data.shape))
    return np.where(data == 0, noise, data).astype(np.float32)


def thresholded(data: np.ndarray, cut: float) -> np.ndarray:
    """Every voxel under ``cut`` of the 99th percentile set to zero, as a scanner mask would."""
    return np.where(data > cut * np.percentile(data, 99), data, 0.0).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, help="weights with their card (default: the shipped ones)")
    p.add_argument("--data", type=Path, help="real development set (default ../shared/data/real)")
    p.add_argument("--cut", type=float, nargs="+", default=[0.05, 0.10], help="thresholds for unmasked series")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = benchlib.resolve_data(args.data)
    clf = Classifier.load("cpu", args.weights)
    rng = np.random.default_rng(args.seed)
    rows = []
    for r in benchlib.read_labels(root):
        if any(m in r["path"] for m in PREPROCESSED):
            continue
        volume = load_any(root / r["path"])
        data = np.asarray(volume.data, np.float32)
        masked = float(np.mean(data == 0)) > MASKED
        variants = ({"noise-filled": noise_filled(data, rng)} if masked
                    else {f"zeroed under {c:g}": thresholded(data, c) for c in args.cut})
        row = {"path": r["path"], "label": r["label"], "masked": masked, "stored": evidence(clf, volume),
               "variants": {k: evidence(clf, dataclasses.replace(volume, data=v)) for k, v in variants.items()}}
        rows.append(row)
        shown = "  ".join(f"{k}: {lab} {e:.3f}" for k, (lab, e) in row["variants"].items())
        print(f"{r['label']:<10} {'masked' if masked else 'noise ':<7} stored: {row['stored'][0]} {row['stored'][1]:.3f}  "
              f"{shown}  {benchlib.display_path(r['path'])}" + ("  (\"other\")" if r["label"] == OTHER else ""))
    benchlib.write_json(args.json, {"model": {"version": clf.card["version"], "sha256": clf.card["sha256"][:12]},
                                    "masked_share": MASKED, "series": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
