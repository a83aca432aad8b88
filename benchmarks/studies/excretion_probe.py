#!/usr/bin/env python3
"""What does excreted gadolinium do to the shipped model's delayed phase? (issue 41)

    python benchmarks/studies/excretion_probe.py --n 60          # ~2 min on 2 cores

Since session 34 the simulator draws gadolinium excreted into urine in most delayed-phase images
(``sequences.EXCRETION``): bright renal collecting systems, and a bladder diluted by the urine
already there (``bladder_urine``'s ``ex``). This probe renders ``--n`` delayed-phase series on the
body anatomies, each the same draw (protocol, planning, tissue values, noise) with excretion off
and then on at each ``--bladder`` dilution, and counts how often ``--weights`` name them right,
split by whether the bladder is in the slices. It says which part of the change a model that
never saw it stumbles on; a diagnostic of weights, not a score (these are simulated series).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

from bidsapp.model.predict import Classifier, decide  # noqa: E402
from bidsapp.train import sequences  # noqa: E402
from bidsapp.train.artefacts import stored_voxel_size  # noqa: E402
from bidsapp.train.label_maps import load_anatomies  # noqa: E402
from bidsapp.train.protocols import CLASS_PROTOCOLS  # noqa: E402
from bidsapp.train.geometry import sample_tissue_slices  # noqa: E402
from bidsapp.train.simulate import draw_geometry, render  # noqa: E402
from bidsapp.train.tissues import TISSUE_INDEX, draw_tissue_params  # noqa: E402
from bidsapp.volume import geometry_features, normalise_stack  # noqa: E402

LABEL = "body-T1w-delayed"
BLADDER = TISSUE_INDEX["bladder_urine"]


@contextmanager
def excretion(p: float, bladder_ex: float):
    """The simulator with excretion drawn in share ``p`` of delayed images and the bladder's urine
    at ``bladder_ex`` of the collecting systems' concentration; restored on exit."""
    old_p, old_ex = sequences.EXCRETION["p"], float(sequences._T["ex"][BLADDER])
    sequences.EXCRETION["p"], sequences._T["ex"][BLADDER] = p, bladder_ex
    try:
        yield
    finally:
        sequences.EXCRETION["p"], sequences._T["ex"][BLADDER] = old_p, old_ex


def named_right(clf: Classifier, anat, seed: list[int]) -> tuple[bool, bool]:
    """(named right, bladder in the slices) for one delayed-phase draw of ``seed``."""
    rng = np.random.default_rng(seed)
    proto = CLASS_PROTOCOLS[LABEL](rng, LABEL)
    geo, scale = draw_geometry(rng, anat, proto, clf.spec.n_slices)
    tp = draw_tissue_params(rng, proto.field)
    slices, geo = render(np.random.default_rng([*seed, 2]), anat, proto, clf.spec.n_slices, geometry=geo, scale=scale,
                         tissue_params=tp, stripped=False)
    tissue = sample_tissue_slices(np.random.default_rng([*seed, 3]), anat, proto, geo, scale)
    stack = normalise_stack(slices, geo.res, geo.res, clf.spec)
    features = geometry_features(*stored_voxel_size(np.random.default_rng([*seed, 4]), proto, False))
    decision = decide(clf.probabilities(stack, features), clf.threshold, clf.open_set_score)
    return decision.label == LABEL, bool((tissue == BLADDER).mean() > 0.01)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, help="weights with their card (default: the shipped ones)")
    p.add_argument("--anatomy", type=Path, default=benchlib.ANATOMY)
    p.add_argument("--n", type=int, default=60, help="delayed-phase draws")
    p.add_argument("--bladder", type=float, nargs="+", default=[0.1, 0.03],
                   help="bladder dilutions to try (share of the collecting systems' concentration)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clf = Classifier.load("cpu", args.weights)
    body = [a for a in load_anatomies(args.anatomy, 0, 2) if a.region == "body"]
    arms = [("no excretion", 0.0, float(sequences._T["ex"][BLADDER]))] + [
        (f"excretion, bladder at {b:g}", 1.0, b) for b in args.bladder]
    rows = []
    for name, share, bladder_ex in arms:
        counts = {"bladder in view": [0, 0], "no bladder": [0, 0]}
        with excretion(share, bladder_ex):
            for i in range(args.n):
                right, bladder = named_right(clf, body[i % len(body)], [args.seed, i])
                cell = counts["bladder in view" if bladder else "no bladder"]
                cell[0] += right
                cell[1] += 1
        rows.append({"arm": name, "bladder_ex": bladder_ex, "right_of_n": counts})
        print(f"{name:32s}" + "".join(f"  {k}: {r}/{n}" for k, (r, n) in counts.items()), flush=True)
    benchlib.write_json(args.json, {"model": {"version": clf.card["version"], "sha256": clf.card["sha256"]},
                                    "n": args.n, "seed": args.seed, "arms": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
