#!/usr/bin/env python3
"""Look at what the network is shown: real series beside simulated ones of the same class.

    python benchmarks/studies/sim_vs_real.py --out /tmp/look                 # one PNG per class of the real set
    python benchmarks/studies/sim_vs_real.py --classes FLAIR T2w --per-class 6 --seed 3 --out /tmp/look

For every class with real series in ``DATA/labels.tsv`` (or ``--classes``), writes
``OUT/<class>.png``: first a row per real series, then ``--per-class`` rows of simulated series
of that class, each row five slices of the network's input (``network_inputs``'s first view;
simulated series through ``simulate.simulate_sample``, the training draw), intensities as the
network sees them (0-1.2 shown black to white). Prints which row is which.

Systematic differences between the two halves of a page are the simulator's to fix: this is how
the dark scalp and the neck-level slices of simulated SynthSeg heads were found (docs/simulator.md).

It also prints a number per real series to say *how far* its intensities are from the simulated
ones: the 1-Wasserstein distance between its foreground intensity distribution (network units)
and that of the simulated series of its class pooled, next to the same distance of each simulated
series from the others (their median: how far simulated series lie from each other). A real series
well beyond that spread has an intensity make-up the simulator does not draw. A diagnostic to
read, not a verdict: histograms ignore shape and texture (session 27: of the six development
series the shipped model gets wrong, only the niivue 3 mm uint8 DWI lies well outside the spread;
docs/model.md, "Intensity gap").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

from bidsapp.report.figures import png_bytes  # noqa: E402
from bidsapp.train import simulate  # noqa: E402
from bidsapp.train.evaluate import load_any  # noqa: E402
from bidsapp.volume import SPEC, network_inputs  # noqa: E402

#: Slices shown per series, and the top of the display window in network units.
SHOWN, WHITE = 5, 1.2
#: Network-input values above this are foreground (normalisation maps background to about 0).
FOREGROUND = 0.05


def first_view(stack: np.ndarray) -> np.ndarray:
    """A (K, H, W) network input, or the first view of a (V, K, H, W) one (3D volumes)."""
    return stack[0] if stack.ndim == 4 else stack


def strip(stack: np.ndarray) -> np.ndarray:
    """(K, H, W) or (V, K, H, W) network input -> one (H, SHOWN*W) row, 0-1 for display."""
    stack = first_view(stack)
    idx = np.linspace(0, len(stack) - 1, SHOWN + 2).round().astype(int)[1:-1]
    return np.concatenate([np.clip(stack[i], 0, WHITE) / WHITE for i in idx], axis=1)


def foreground_values(stack: np.ndarray) -> np.ndarray:
    """The pixel values of a network input above the background (which normalisation puts at 0)."""
    x = np.asarray(stack, np.float32).ravel()
    return x[x > FOREGROUND]


def w1(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance of two 1D samples (mean gap between their quantile functions)."""
    q = np.linspace(0.005, 0.995, 100)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def intensity_gaps(real: list[np.ndarray], simulated: list[np.ndarray]) -> tuple[list[float], float]:
    """Each real input's ``w1`` from the simulated inputs pooled, and the median ``w1`` of each
    simulated input from the others pooled (the simulated spread a real gap is read against)."""
    values = [foreground_values(s) for s in simulated]
    pooled = np.concatenate(values)
    spread = [w1(v, np.concatenate(values[:i] + values[i + 1:])) for i, v in enumerate(values)] if len(values) > 1 else [0.0]
    return [w1(foreground_values(r), pooled) for r in real], float(np.median(spread))


def page(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Rows stacked with a thin grey gap between them, as 8-bit pixels."""
    sep = np.full((gap, rows[0].shape[1]), 0.25)
    out = [r for row in rows for r in (row, sep)][:-1]
    return (np.concatenate(out) * 255).round().astype(np.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    p.add_argument("--data", type=Path, help="real development set (default ../shared/data/real)")
    p.add_argument("--anatomy", default=str(benchlib.ANATOMY),
                   help='label maps (or "phantom")')
    p.add_argument("--classes", nargs="+", help="classes to show (default: every class of the real set)")
    p.add_argument("--per-class", type=int, default=4, help="simulated series per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data_root = benchlib.resolve_data(args.data)
    rows = benchlib.read_labels(data_root)
    classes = args.classes or list(dict.fromkeys(r["label"] for r in rows))
    anatomies = simulate.training_anatomies(args.anatomy)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for label in classes:
        real = [r["path"] for r in rows if r["label"] == label]
        real_inputs = [network_inputs(load_any(data_root / path), SPEC) for path in real]
        samples = [simulate.simulate_sample(rng, anatomies, SPEC.n_slices, SPEC, label=label)
                   for _ in range(args.per_class)]
        out = args.out / f"{label}.png"
        out.write_bytes(png_bytes(page([strip(x) for x in real_inputs] + [strip(s.stack) for s in samples])))
        print(f"{out}: real {', '.join(real) or '(none)'}; then simulated {', '.join(s.protocol.kind for s in samples)}")
        gaps, spread = intensity_gaps([first_view(x) for x in real_inputs], [s.stack for s in samples])
        for path, gap in zip(real, gaps):
            print(f"  intensity gap {gap:.3f} (simulated among themselves: median {spread:.3f})  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
