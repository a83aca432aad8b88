#!/usr/bin/env python3
"""How bright is the gland's level? A real prostate T2 against simulated gland-planned ones (issue 41).

    python benchmarks/studies/gland_level.py --n 40 --out /tmp/gland        # ~1 min on 2 cores

``occlusion_probe.py`` showed the network reading "pelvic T2" from the slices with the bladder in
view, and the lowest slices of the real ProstateX T2 (through the gland, no bladder) arguing
against it. This study puts a number on how those slices differ: for the real series
(``--series``) and ``--n`` simulated axial multi-shot TSE body T2s planned on the procedural
pelvises' gland (``geometry.draw_target``'s planning; pelvis seeds 0 and 1 as training uses),
the share of foreground pixels (``sim_vs_real.foreground_values``) brighter than 0.5, on the
lowest ``--slices`` slices of the network's stack. On T2 TSE what is bright at that level is fat
(ischioanal fossae, natal cleft, subcutaneous) and the gland's peripheral zone; what is dark is
muscle. Prints the real share and the simulated median and quartiles; ``--out`` writes a page:
the real stack's lowest slices on top, then the first simulated ones. A diagnostic of the
simulator, not a score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
sys.path.insert(0, str(Path(__file__).resolve().parent))  # studies/
import benchlib  # noqa: E402
from sim_vs_real import WHITE, foreground_values, page  # noqa: E402

from bidsapp.report.figures import png_bytes  # noqa: E402
from bidsapp.train import geometry  # noqa: E402
from bidsapp.train.evaluate import load_any  # noqa: E402
from bidsapp.train.phantom import make_pelvis_phantom  # noqa: E402
from bidsapp.train.protocols import CLASS_PROTOCOLS  # noqa: E402
from bidsapp.train.simulate import render  # noqa: E402
from bidsapp.train.tissues import draw_tissue_params  # noqa: E402
from bidsapp.volume import SPEC, network_inputs, normalise_stack  # noqa: E402

REAL_T2 = "dicom/ProstateX-0000_4_t2_tse_tra/"


def bright_share(stack: np.ndarray, slices: int, bright: float = 0.5) -> float:
    """Share of the foreground of the lowest ``slices`` slices of a (K, H, W) stack above ``bright``."""
    return float(np.mean(foreground_values(stack[:slices]) > bright))


def simulated_tse(seed, pelvis) -> np.ndarray:
    """One axial multi-shot TSE body T2 planned on the gland, as the network reads it."""
    rng = np.random.default_rng(seed)
    proto = CLASS_PROTOCOLS["body-T2w"](rng, "body-T2w")
    while proto.kind != "body_tse_t2" or proto.is3d:
        proto = CLASS_PROTOCOLS["body-T2w"](rng, "body-T2w")
    fov = float(rng.uniform(*geometry.TARGETED_FOV_MM))
    geo = geometry.plan_geometry(rng, pelvis, proto, SPEC.n_slices, "axial", fov,
                                 target=pelvis.organ_centres["prostate"])
    slices, geo = render(rng, pelvis, proto, SPEC.n_slices, geometry=geo,
                         tissue_params=draw_tissue_params(rng, proto.field), stripped=False)
    return normalise_stack(slices, geo.res, geo.res, SPEC)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--series", default=REAL_T2, help="real prostate T2, relative to --data")
    p.add_argument("--n", type=int, default=40, help="simulated series")
    p.add_argument("--slices", type=int, default=5, help="lowest slices of the stack measured")
    p.add_argument("--seed", type=int, default=29)
    p.add_argument("--out", type=Path, help="folder for the page (PNG)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    real = network_inputs(load_any(benchlib.resolve_data(args.data) / args.series), SPEC)[0]
    pelvises = [make_pelvis_phantom(0), make_pelvis_phantom(1)]
    simulated = [simulated_tse([args.seed, i], pelvises[i % 2]) for i in range(args.n)]
    real_share = bright_share(real, args.slices)
    shares = [bright_share(s, args.slices) for s in simulated]
    q1, med, q3 = np.percentile(shares, [25, 50, 75])
    print(f"foreground above 0.5 on the lowest {args.slices} slices: real {real_share:.2f} ({args.series}); "
          f"simulated median {med:.2f} (IQR {q1:.2f}-{q3:.2f}, n={args.n})")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = [np.concatenate([np.clip(s[j], 0, WHITE) / WHITE for j in range(args.slices)], axis=1)
                for s in [real] + simulated[:5]]
        (args.out / "gland_level.png").write_bytes(png_bytes(page(rows)))
    benchlib.write_json(args.json, {"series": args.series, "n": args.n, "seed": args.seed, "slices": args.slices,
                                    "real": round(real_share, 4), "simulated_median": round(float(med), 4),
                                    "simulated_iqr": [round(float(q1), 4), round(float(q3), 4)]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
