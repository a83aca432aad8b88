#!/usr/bin/env python3
"""How often does a simulated brain series show a slice of face and neck rather than brain?

    python benchmarks/studies/face_slices.py                       # 400 draws per brain class, axial slices
    python benchmarks/studies/face_slices.py --draws 100 --seed 3 --limit 0.4

For every brain class, draws protocols, planes and slice positions the way training does
(``simulate.CLASS_PROTOCOLS``, ``plane_probabilities``, ``plan_geometry``: tissue maps only, no
signal) and prints the share of axial slices on which brain tissue is under ``--limit`` of the
head's pixels, for all series and for 2D series alone.

Why: the TCGA 2D TIR FLAIR, called T1wce by every version, carries that call on its skull-base
slices (``occlusion_probe.py``), 3 of the 12 inference reads, where the face and nasal cavity fill
the slice; simulated 2D brain series started at most 15 mm below the brain until session 23
(``geometry.BRAIN_COVERAGE_BELOW_MM``, 45 mm since). A class whose series
show such slices more often than another's would also teach "face → that class". Tissue maps of
the training anatomies are needed (``--anatomy``). A diagnostic to read, not a number to tune.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402


def face_dominated(tissue: np.ndarray, limit: float) -> np.ndarray:
    """(n, H, W) tissue indices → (n,) bool: brain tissue under ``limit`` of the non-air pixels."""
    from bidsapp.train.simulate import _IS_BRAIN, TISSUE_INDEX

    brain = _IS_BRAIN[tissue].sum(axis=(1, 2))
    head = (tissue != TISSUE_INDEX["air"]).sum(axis=(1, 2))
    return (head > 0) & (brain < limit * head)


def axial_face_shares(anatomies, label: str, n: int, rng, limit: float, n_slices: int = 4) -> dict[str, list[bool]]:
    """{"all": [...], "2D": [...]}: face-dominated flags of the axial slices of ``n`` draws of ``label``."""
    from bidsapp.train import simulate as S

    flags: dict[str, list[bool]] = defaultdict(list)
    for _ in range(n):
        anat = anatomies[rng.integers(len(anatomies))]
        proto = S.CLASS_PROTOCOLS[label](rng, label)
        plane = str(rng.choice(list(S._PLANES), p=S.plane_probabilities(anat, proto)))
        if plane != "axial":
            continue
        geo = S.plan_geometry(rng, anat, proto, n_slices, plane, S.draw_fov(rng, anat))
        tissue = S.sample_tissue_slices(rng, anat, proto, geo)
        f = face_dominated(tissue[:, tissue.shape[1] // 2], limit).tolist()
        flags["all"] += f
        if not proto.is3d:
            flags["2D"] += f
    return flags


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--anatomy", default=str(benchlib.ANATOMY))
    p.add_argument("--draws", type=int, default=400, help="series drawn per brain class")
    p.add_argument("--limit", type=float, default=0.4, help="brain share of the head below which a slice is face")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    from bidsapp.train import simulate as S

    anatomies = [a for a in S.training_anatomies(args.anatomy) if a.region == "brain"]
    rng = np.random.default_rng(args.seed)
    print(f"{'class':<8}{'axial slices':>14}{'face share':>12}{'2D slices':>12}{'2D face share':>15}")
    for label in (c for c in S.CLASS_PROTOCOLS if not c.startswith("body") and c != "ADC"):
        f = axial_face_shares(anatomies, label, args.draws, rng, args.limit)
        print(f"{label:<8}{len(f['all']):>14}{share(f['all']):>12}{len(f['2D']):>12}{share(f['2D']):>15}")
    return 0


def share(flags: list[bool]) -> str:
    return f"{np.mean(flags):.3f}" if flags else "-"


if __name__ == "__main__":
    sys.exit(main())
