#!/usr/bin/env python3
"""How does a partially covered brain fare? Real skull-stripped series, cut by a slab edge.

    python benchmarks/studies/coverage_probe.py                               # shipped weights, real dev set
    python benchmarks/studies/coverage_probe.py --weights runs/v19/mrclass.pt --json coverage.json

Skull-stripped research series are co-registered to a template, and where the source slab missed
part of the brain the template shows a flat cut across it (the deepmedic pat0006 pair keeps only
the front of the brain). Every known-class brain series of ``DATA/labels.tsv`` that is skull-stripped
(a constant background over most of the grid) is classified whole and then with part of its brain set to
that background beyond a plane (``CUTS``: the top or bottom of an axial stack, the front or back
half of a coronal slab, one side, an oblique corner), the way ``simulate.PARTIAL_SLAB`` cuts
simulated ones. The table gives the true-class probability under each cut and a summary.

A model robust to coverage keeps its whole-brain answer under every cut. A diagnostic for the
simulator, not an accuracy figure (that is ``accuracy.py``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

#: Name → (direction in RAS towards the part cut away, share of the brain cut away).
CUTS = {
    "top 30%": ((0, 0, 1), 0.3),
    "bottom 30%": ((0, 0, -1), 0.3),
    "back 50%": ((0, -1, 0), 0.5),
    "front 40%": ((0, 1, 0), 0.4),
    "right 40%": ((1, 0, 0), 0.4),
    "back-top 40%": ((0, -1, 1), 0.4),
}


#: Share of the voxels a constant background covers in a skull-stripped brain on a template grid
#: (0.82-0.88 in the development set); a head with zero-filled air around it stays under 0.6.
STRIPPED_BACKGROUND = 0.7


def stripped_background(data: np.ndarray) -> float | None:
    """The constant background value of a skull-stripped volume, else None: the most common
    value, when it covers more than ``STRIPPED_BACKGROUND`` of the voxels."""
    values, counts = np.unique(data, return_counts=True)
    best = int(np.argmax(counts))
    return float(values[best]) if counts[best] > STRIPPED_BACKGROUND * data.size else None


def voxel_world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """(voxels, 3) RAS world millimetres of every voxel of a grid, in C order."""
    return nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)


def cut(data: np.ndarray, world: np.ndarray, background: float, towards, share: float) -> np.ndarray:
    """``data`` with the ``share`` of its foreground farthest along ``towards`` set to
    ``background``; ``world`` is ``voxel_world`` of its grid."""
    direction = np.asarray(towards, float) / np.linalg.norm(towards)
    along = (world @ direction).reshape(data.shape)
    level = np.quantile(along[data != background], 1.0 - share)
    return np.where(along > level, background, data).astype(data.dtype)


def probe(classifier, data: Path) -> tuple[list[dict], dict]:
    from bidsapp.classes import LABELS
    from bidsapp.train.evaluate import load_any

    rows = []
    for row in benchlib.read_labels(data):
        if row["label"] not in LABELS or row["label"].startswith("body-"):
            continue
        volume = load_any(data / row["path"])
        background = stripped_background(volume.data)
        if background is None or volume.n_volumes > 1:
            continue
        p = {"whole": classifier.classify(volume).probabilities[row["label"]]}
        world = voxel_world(volume.data.shape, volume.affine)  # once per series, for every cut
        for name, (towards, share) in CUTS.items():
            shown = replace(volume, data=cut(volume.data, world, background, towards, share))
            p[name] = classifier.classify(shown).probabilities[row["label"]]
        rows.append({"path": row["path"], "label": row["label"], "true_class_probability": p})
    summary = {}
    for name in ("whole", *CUTS):
        values = np.array([r["true_class_probability"][name] for r in rows])
        summary[name] = {"mean": float(values.mean()) if values.size else None,
                         "at_or_above_threshold": int(np.sum(values >= classifier.threshold))}
    cuts = np.array([[r["true_class_probability"][n] for n in CUTS] for r in rows])
    summary["all cuts"] = {"mean": float(cuts.mean()) if cuts.size else None,
                           "at_or_above_threshold": int(np.sum(cuts >= classifier.threshold))}
    return rows, summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_probe_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data, classifier = benchlib.probe_setup(args)
    rows, summary = probe(classifier, data)
    names = ["whole", *CUTS]
    print(f"true-class probability of each skull-stripped real series, whole and cut (threshold {classifier.threshold:g})")
    print(f"{'label':<8}" + "".join(f"{n:>14}" for n in names) + "  series")
    for r in rows:
        print(f"{r['label']:<8}" + "".join(f"{r['true_class_probability'][n]:>14.2f}" for n in names)
              + f"  {r['path'][:60]}")
    print(f"{'mean':<8}" + "".join(f"{summary[n]['mean']:>14.3f}" for n in names))
    print(f"{'named':<8}" + "".join(f"{summary[n]['at_or_above_threshold']:>14d}" for n in names))
    print(f"over all {len(CUTS)} cuts: mean {summary['all cuts']['mean']:.3f}, "
          f"{summary['all cuts']['at_or_above_threshold']} of {len(CUTS) * len(rows)} at or above the threshold")
    benchlib.write_json(args.json, {"benchmark": "coverage_probe", "meta": benchlib.machine_info(),
                                    "config": {"data": benchlib.display_path(data), "weights": args.weights},
                                    "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
