#!/usr/bin/env python3
"""Do simulated training targets keep the tissue order their label implies? A check on the tables.

    python benchmarks/studies/contrast_order.py                # every brain class and open-set kind, 300 draws each
    python benchmarks/studies/contrast_order.py --draws 1000 --seed 3

For every brain class and every brain open-set kind ("other"), draws protocols and tissue values
the way training does (``simulate.CLASS_PROTOCOLS``, ``simulate._other``, ``draw_tissue_params``,
``tissue_signal``: signal equations only, no anatomy, noise or gadolinium) and prints how often
CSF is brighter than grey matter and grey matter brighter than white matter.

Why: DWI targets with up to 30% b=0 signal had CSF above grey matter in 11% of draws, the contrast
of a single BOLD volume, and real BOLD was named DWI by every model until that share was capped
(model 0.13.0, docs/model.md). A class or open-set kind whose rows look like another class's is a
label that contradicts the physics; find it here before adding realism. A diagnostic to read.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np

#: Tissue pairs whose order is printed, (brighter?, than).
PAIRS = (("csf", "gm"), ("gm", "wm"))


def order_shares(draw, n: int, rng) -> dict[str, list[float]]:
    """{name: [share of draws where a > b for each PAIRS entry]} over ``n`` calls of ``draw(rng)``,
    which returns a protocol; names are the protocols' ``kind`` for the open set, else their label."""
    from bidsapp.train import simulate as S
    from bidsapp.train.simulate import TISSUE_INDEX

    seen: dict[str, list[list[bool]]] = defaultdict(list)
    for _ in range(n):
        proto = draw(rng)
        lut = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
        name = f"other:{proto.kind}" if proto.label == "other" else proto.label
        seen[name].append([bool(lut[TISSUE_INDEX[a]] > lut[TISSUE_INDEX[b]]) for a, b in PAIRS])
    return {name: [float(v) for v in np.mean(rows, axis=0)] for name, rows in sorted(seen.items())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=300, help="protocols per brain class (the open set: 6x as many)")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    from bidsapp.train import simulate as S

    rng = np.random.default_rng(args.seed)
    shares = {}
    for label in (c for c in S.CLASS_PROTOCOLS if not c.startswith("body")):
        shares |= order_shares(lambda r, lab=label: S.CLASS_PROTOCOLS[lab](r, lab), args.draws, rng)
    shares |= order_shares(lambda r: S._other(r, "brain"), 6 * args.draws, rng)
    print(f"{'target':<20}" + "".join(f"{a + ' > ' + b:>12}" for a, b in PAIRS))
    for name, row in shares.items():
        print(f"{name:<20}" + "".join(f"{v:>12.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
