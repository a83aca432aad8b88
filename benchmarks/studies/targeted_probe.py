#!/usr/bin/env python3
"""Does the shipped model read prostate-planned body series as it reads the others? (issue 41)

    python benchmarks/studies/targeted_probe.py --n 40          # ~4 min on 2 cores

Real prostate series are centred on the gland and cover it (ProstateX T2: 19 x 3 mm at a 19 cm
field of view), and their diffusion images are a strip (128 x 84: a 65.6% phase field of view).
Until session 28 the simulator centred its prostate-sized fields of view on the body, spread
their slices over the pelvis and never cut the field of view. This probe simulates ``--n``
series per body class on the procedural pelvises, each drawn three ways from one seed (same
protocol, field of view, plane and tissue values): **body-centred** (the old planning),
**gland-planned** (``geometry.draw_target``'s planning) and **gland-planned, strip** (and cut
to a reduced phase field of view, ``PHASE_FOV``'s fractions), and says how often ``--weights``
name each right, refuse it, or name it wrong. The held-out real set refuses prostate series
(T2 4 of 7, ADC 3 of 4, calculated high b 2 of 2): if the model refuses the gland-planned
simulations more than the body-centred ones, the geometry is part of that gap and training on
it is the fix; if not, the gap lies elsewhere. A diagnostic of the shipped weights, not a
score: these are simulated series.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

from bidsapp.classes import OTHER  # noqa: E402
from bidsapp.model.predict import Classifier, decide  # noqa: E402
from bidsapp.train import geometry  # noqa: E402
from bidsapp.train.artefacts import stored_voxel_size  # noqa: E402
from bidsapp.train.phantom import make_pelvis_phantom  # noqa: E402
from bidsapp.train.protocols import CLASS_PROTOCOLS  # noqa: E402
from bidsapp.train.simulate import render  # noqa: E402
from bidsapp.train.tissues import draw_tissue_params  # noqa: E402
from bidsapp.volume import geometry_features, normalise_stack  # noqa: E402

CLASSES = ("body-T2w", "body-DWI", "body-ADC", "body-T1w")
VARIANTS = ("body-centred", "gland-planned", "gland-planned, strip")


def series(seed, pelvis, label: str, variant: str, n_slices: int):
    """One simulated series of ``label`` planned as ``variant``: (slices, pixel mm, protocol)."""
    rng = np.random.default_rng(seed)
    proto = CLASS_PROTOCOLS[label](rng, label)
    fov = float(rng.uniform(*geometry.TARGETED_FOV_MM))
    plane = str(rng.choice(list(geometry._PLANES), p=geometry.plane_probabilities(pelvis, proto)))
    tp = draw_tissue_params(rng, proto.field)
    target = None if variant == "body-centred" else pelvis.organ_centres["prostate"]
    draw = np.random.default_rng([*seed, 1])  # the same planning draws for every variant
    geo = geometry.plan_geometry(draw, pelvis, proto, n_slices, plane, fov, target=target)
    slices, geo = render(np.random.default_rng([*seed, 2]), pelvis, proto, n_slices, geometry=geo,
                         tissue_params=tp, stripped=False)
    if variant.endswith("strip"):
        slices = geometry.cut_phase_fov(slices, *geometry.draw_phase_cut(np.random.default_rng([*seed, 3])), geo.res)
    return slices, geo.res, proto


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, action="append", default=None,
                   help="weights with their card (default: the shipped ones); repeated, the mean of their "
                        "logits (an ensemble), which then needs --threshold")
    p.add_argument("--threshold", type=float, default=None,
                   help="open-set threshold (energy as a probability) instead of the first card's")
    p.add_argument("--n", type=int, default=40, help="series per class and variant")
    p.add_argument("--seed", type=int, default=20261281)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    members = [Classifier.load("cpu", w) for w in (args.weights or [None])]
    if len(members) > 1 and args.threshold is None:
        p.error("an ensemble of several --weights needs its --threshold (no card holds one)")
    clf = members[0]
    threshold = clf.threshold if args.threshold is None else args.threshold
    pelvises = [make_pelvis_phantom(0), make_pelvis_phantom(1)]
    counts = {(label, v): {"right": 0, "refused": 0, "wrong": 0} for label in CLASSES for v in VARIANTS}
    for c, label in enumerate(CLASSES):
        for i in range(args.n):
            for variant in VARIANTS:
                slices, res, proto = series([args.seed, c, i], pelvises[i % 2], label, variant, clf.spec.n_slices)
                stack = normalise_stack(slices, res, res, clf.spec)
                features = geometry_features(*stored_voxel_size(np.random.default_rng([args.seed, c, i, 4]), proto, False))
                logits = torch.stack([m.logits(stack, features) for m in members]).mean(dim=0)
                decision = decide(torch.sigmoid(logits).numpy(), threshold, clf.open_set_score)
                outcome = "right" if decision.label == label else "refused" if decision.label == OTHER else "wrong"
                counts[label, variant][outcome] += 1
        print(f"  {label}: done", flush=True)
    print(f"\n{'class':10s}" + "".join(f"{v:>26s}" for v in VARIANTS) + "\n" + " " * 10
          + "".join(f"{'right / refused / wrong':>26s}" for _ in VARIANTS))
    for label in CLASSES:
        cells = [counts[label, v] for v in VARIANTS]
        print(f"{label:10s}" + "".join(f"{c['right']:>14d} / {c['refused']:>2d} / {c['wrong']:>2d}" for c in cells))
    benchlib.write_json(args.json, {"model": {"version": clf.card["version"], "sha256": clf.card["sha256"]},
                                    "members": [m.card["sha256"] for m in members], "threshold": threshold,
                                    "n": args.n, "seed": args.seed,
                                    "counts": {f"{label} | {v}": counts[label, v] for label in CLASSES for v in VARIANTS}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
