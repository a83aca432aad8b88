#!/usr/bin/env python3
"""Where do real series sit relative to the simulated training distribution? A probe.

    python benchmarks/studies/perturbation_probe.py                          # shipped weights, real dev set
    python benchmarks/studies/perturbation_probe.py --weights runs/v9/mrclass.pt --json probe.json

Every known-class series of ``DATA/labels.tsv`` is read as inference reads it (``network_inputs``),
then classified again after one input-space perturbation at a time: a gamma curve, a blur, an
unsharp mask (the training augmentation's own ``blur`` and ``unsharp_mask``, at or beyond the
ranges it draws), a 2x down-and-up sampling, added noise, a global scale, the brightest
15% of the foreground mirrored below its threshold (a change of tissue order). The table gives each
series' probability of its true class under each, and a summary per perturbation.

A perturbation that *raises* the true-class probability of real series on average points at a
way real images differ from simulated ones (e.g. real images sharper than any the network saw);
one that lowers it sharply, at an invariance augmentation should teach. This is a diagnostic for
simulator and augmentation work, not an accuracy figure: the accuracy is ``accuracy.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

from bidsapp.classes import LABELS  # noqa: E402
from bidsapp.model.predict import Classifier  # noqa: E402
from bidsapp.train.evaluate import load_any  # noqa: E402
from bidsapp.train.augment import blur, unsharp_mask  # noqa: E402
from bidsapp.volume import network_inputs, volume_geometry  # noqa: E402


def _per_slice(op, x: np.ndarray, *args) -> np.ndarray:
    """Apply a training-augmentation operation (on (n, H, W) tensors) to a (V, K, H, W) stack."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return op(t.reshape(-1, *t.shape[-2:]), *args).reshape(t.shape).numpy()


def _down_up(x: np.ndarray, factor: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    shape = t.shape
    t = F.avg_pool2d(t.reshape(-1, 1, *shape[-2:]), factor)
    return F.interpolate(t, scale_factor=factor, mode="bilinear").reshape(shape).numpy()


def _invert_brightest(x: np.ndarray, percentile: float = 85) -> np.ndarray:
    """Mirror the brightest tissue below its own threshold (CSF on T2-like images turns darkest
    of the bright): tissue *order* changes, which no training augmentation does. A probability
    that does not move says the network does not read that contrast."""
    fg = x > 0.3 * np.percentile(x, 99)
    hi = np.percentile(x[fg], percentile) if fg.any() else x.max()
    return np.where(x > hi, np.maximum(2 * hi - x, 0), x)


def perturbations(seed: int) -> dict:
    """Name → function of a (V, K, H, W) network input stack."""
    rng = np.random.default_rng(seed)
    return {
        "none": lambda x: x,
        "gamma 0.6": lambda x: np.clip(x, 0, None) ** 0.6,
        "gamma 1.6": lambda x: np.clip(x, 0, None) ** 1.6,
        "blur 1 px": lambda x: _per_slice(blur, x, 1.0),
        "blur 2 px": lambda x: _per_slice(blur, x, 2.0),
        "unsharp": lambda x: _per_slice(unsharp_mask, x, 1.0),
        "down-up 2x": lambda x: _down_up(x, 2),
        "noise 5%": lambda x: x + (x > 0.02) * rng.normal(0, 0.05, x.shape),
        "scale 1.25": lambda x: x * 1.25,
        "brightest 15% inverted": _invert_brightest,
    }


def probe(classifier: Classifier, data: Path, seed: int) -> tuple[list[dict], dict]:
    funcs = perturbations(seed)
    rows = []
    for row in benchlib.read_labels(data):
        if row["label"] not in LABELS:  # "other" has no true-class probability to follow
            continue
        volume = load_any(data / row["path"])
        stack, geometry = network_inputs(volume, classifier.spec), volume_geometry(volume)
        index = LABELS.index(row["label"])
        p = {name: float(classifier.probabilities(f(stack).astype(np.float32), geometry)[index])
             for name, f in funcs.items()}
        rows.append({"path": row["path"], "label": row["label"], "true_class_probability": p})
    threshold = classifier.threshold
    summary = {}
    for name in funcs:
        values = np.array([r["true_class_probability"][name] for r in rows])
        summary[name] = {"mean": float(values.mean()), "median": float(np.median(values)),
                         "at_or_above_threshold": int(np.sum(values >= threshold))}
    return rows, summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_probe_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data, classifier = benchlib.probe_setup(args)
    rows, summary = probe(classifier, data, args.seed)
    names = list(summary)
    print("true-class probability of each known real series under each perturbation")
    print(f"{'label':<18}" + "".join(f"{n:>11}" for n in names) + "  series")
    for r in rows:
        print(f"{r['label']:<18}" + "".join(f"{r['true_class_probability'][n]:>11.2f}" for n in names)
              + f"  {r['path'][:48]}")
    for key in ("mean", "median", "at_or_above_threshold"):
        fmt = "{:>11d}" if key == "at_or_above_threshold" else "{:>11.3f}"
        label = f"≥ {classifier.threshold:g}" if key == "at_or_above_threshold" else key
        print(f"{label:<18}" + "".join(fmt.format(summary[n][key]) for n in names))
    benchlib.write_json(args.json, {"benchmark": "perturbation_probe", "meta": benchlib.machine_info(),
                                    "config": {"data": benchlib.display_path(data), "weights": args.weights,
                                               "seed": args.seed},
                                    "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
