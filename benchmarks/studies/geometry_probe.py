#!/usr/bin/env python3
"""Does the voxel-size input decide a call? Classify real series with the voxel size swapped.

    python benchmarks/studies/geometry_probe.py                          # shipped weights, the real EPI series
    python benchmarks/studies/geometry_probe.py --weights runs/v17/mrclass.pt --label DWI --series dicom/x/

Every series is read as inference reads it; its pixels stay, and the network is told a different
stored voxel size (in-plane x slice, mm) each time: its own, then each of ``GEOMETRIES``. The table
gives the probability of ``--label`` and the best class under each.

Why: every model names both real single BOLD volumes DWI. Their bright CSF does not carry the call
(``perturbation_probe.py``, "brightest 15% inverted"), nor their grain (``epi_grain.py``). If the
DWI probability followed the voxel size, the geometry prior would be the cue; if it barely moves,
the image itself is. A diagnostic to read, not a number.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/studies/: epi_grain
import benchlib  # noqa: E402
import epi_grain  # noqa: E402

#: Stored voxel sizes told to the network: (name, in-plane mm, slice mm).
GEOMETRIES = (("1x1", 1.0, 1.0), ("3x3 fMRI-like", 3.0, 3.0), ("4x4", 4.0, 4.0), ("2x5 DWI-like", 2.0, 5.0),
              ("1.2x6", 1.2, 6.0))

#: Default series: the real single BOLD volumes and diffusion series of the development set.
EPI_SERIES = tuple(path for paths in epi_grain.REAL_EPI.values() for path in paths)


def probe(classifier, volume, label: str) -> list[tuple[str, float, str]]:
    """(geometry name, probability of ``label``, best class) for the series' own and each swapped size."""
    from bidsapp.classes import LABELS
    from bidsapp.volume import geometry_features, network_inputs, volume_geometry

    stack = network_inputs(volume, classifier.spec).astype(np.float32)
    told = [("own", volume_geometry(volume))] + [(n, geometry_features(a, b)) for n, a, b in GEOMETRIES]
    out = []
    for name, geometry in told:
        p = classifier.probabilities(stack, geometry)
        out.append((name, float(p[LABELS.index(label)]), LABELS[int(np.argmax(p))]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--weights", help="model weights (default: the shipped model)")
    p.add_argument("--label", default="DWI", help="class whose probability is followed (default DWI)")
    p.add_argument("--series", nargs="+", default=list(EPI_SERIES), help="paths relative to the data folder")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    data = benchlib.resolve_data(args.data)

    import torch

    from bidsapp.model.predict import Classifier
    from bidsapp.train.evaluate import load_any
    from bidsapp.volume import volume_geometry

    torch.set_num_threads(args.threads)
    classifier = Classifier.load("cpu", args.weights)
    names = ["own"] + [g[0] for g in GEOMETRIES]
    print(f"probability of {args.label} (best class) with the stored voxel size swapped")
    print(f"{'own mm':>10}" + "".join(f"{n:>20}" for n in names) + "  series")
    for path in args.series:
        volume = load_any(data / path)
        own = "x".join(f"{v:.1f}" for v in 2 ** volume_geometry(volume))
        cells = "".join(f"{f'{q:.2f} ({best[:8]})':>20}" for _, q, best in probe(classifier, volume, args.label))
        print(f"{own:>10}{cells}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
