#!/usr/bin/env python3
"""Would averaging models, or intensity curves at test time, classify real series better?

    python benchmarks/studies/ensemble_probe.py --weights A.pt --weights B.pt        # each, their mean, with/without TTA
    python benchmarks/studies/ensemble_probe.py --weights A.pt --gammas 1 --json probe.json

Candidates: every ``--weights`` alone, the mean of their logits (when more than one), and each
of those again with test-time gamma curves (logits averaged over ``--gammas`` applied to the
normalised input, the training augmentation's own curve). Every candidate gets its open-set
threshold the way training chooses one (``metrics.choose_threshold``: 90% of simulated "other"
refused first, then accuracy) on one fresh simulated validation set (``--seed``, ``--val-size``),
and is then scored on the real development set and on the brain maps derived from its real
DTI (``derived_maps.py``). Choose among candidates by the simulated column; the real columns
are 34 series and say whether the choice holds there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib, derived_maps
import benchlib  # noqa: E402
import derived_maps  # noqa: E402

from bidsapp.classes import LABELS, OTHER  # noqa: E402
from bidsapp.model.predict import Classifier, mirrored_logits  # noqa: E402
from bidsapp.train.evaluate import load_any  # noqa: E402
from bidsapp.train.metrics import choose_threshold, decide_labels, decisions  # noqa: E402
from bidsapp.train.augment import gamma_curve  # noqa: E402
from bidsapp.train.validation import validation_set  # noqa: E402
from bidsapp.volume import network_inputs, volume_geometry  # noqa: E402

DEFAULT_GAMMAS = (1 / 1.4, 1.0, 1.4)


@dataclass(frozen=True)
class Scored:
    candidate: str
    threshold: float
    simulated_accuracy: float
    simulated_other_rejected: float
    dev_right: int
    dev_n: int
    derived_right: int
    derived_n: int
    errors: list[str]
    #: simulated sensitivity of every class; those no real series checks (SWI, body phases) can be
    #: traded away unseen by the real columns
    simulated_sensitivity: dict[str, float | None]
    #: with ``--bootstrap``: the 5th, 50th and 95th percentile of the threshold chosen on resampled
    #: validation sets, and the real series right (development set + derived maps) at each
    threshold_spread: dict[str, tuple[float, int]] | None = None


def gamma_logits(network, stacks: np.ndarray, geometry: np.ndarray, gammas) -> np.ndarray:
    """(B, K, H, W) stacks and (B, F) geometry -> (B, len(gammas), classes) mirrored logits, one
    row per ``gamma_curve`` (gamma 1 is exactly what inference computes)."""
    x = torch.from_numpy(np.ascontiguousarray(stacks, dtype=np.float32))
    g = torch.from_numpy(np.asarray(geometry, np.float32))
    return np.stack([mirrored_logits(network, gamma_curve(x, gm), g).numpy() for gm in gammas], axis=1)


def series_input(volume, spec) -> tuple[np.ndarray, np.ndarray]:
    """(V, K, H, W) views and (V, F) geometry of one real series, as ``Classifier`` feeds them."""
    stacks = network_inputs(volume, spec)
    stacks = stacks[None] if stacks.ndim == 3 else stacks
    return stacks, np.repeat(volume_geometry(volume)[None], len(stacks), axis=0)


def real_inputs(data_root: Path, spec, derived: bool = True) -> tuple[list, list[str], list[str], int]:
    """Network inputs, true labels and names of the real development series, then of the maps
    derived from its real DTI (``derived_maps.py``); and how many of them are development series.
    Each series is preprocessed once, however many models then read it."""
    rows = benchlib.read_labels(data_root)
    inputs = [series_input(load_any(data_root / r["path"]), spec) for r in rows]
    truth, names = [r["label"] for r in rows], [r["path"] for r in rows]
    for m in (derived_maps.derived_volumes(data_root) if derived else ()):
        inputs.append(series_input(m.volume, spec))
        truth.append(m.expected)
        names.append(m.name)
    return inputs, truth, names, len(rows)


def series_logits(network, inputs, gammas) -> np.ndarray:
    """(series, gammas, classes) logits of real series' ``series_input``, views averaged."""
    return np.stack([gamma_logits(network, stacks, geometry, gammas).mean(axis=0) for stacks, geometry in inputs])


def simulated_logits(network, stacks: np.ndarray, geometry: np.ndarray, gammas, batch: int = 16) -> np.ndarray:
    return np.concatenate([gamma_logits(network, stacks[i:i + batch], geometry[i:i + batch], gammas)
                           for i in range(0, len(stacks), batch)])


def candidates(names: list[str], gammas) -> dict[str, tuple[list[str], list[int]]]:
    """Candidate name -> (members, indices of the gammas averaged)."""
    plain = [gammas.index(1.0)] if 1.0 in gammas else [0]
    groups = {n: [n] for n in names} | ({"mean(" + "+".join(names) + ")": names} if len(names) > 1 else {})
    out = {name: (members, plain) for name, members in groups.items()}
    if len(gammas) > 1:
        out |= {f"{name} gamma-TTA": (members, list(range(len(gammas)))) for name, members in groups.items()}
    return out


def score(name: str, members: list[str], gamma_idx: list[int], sim: dict, sim_labels: list[str],
          real: dict, real_truth: list[str], real_names: list[str], n_dev: int, bootstrap: int = 0) -> Scored:
    def probs(logits):
        return torch.sigmoid(torch.from_numpy(np.mean([logits[m][:, gamma_idx].mean(1) for m in members], 0))).numpy()

    p_sim = probs(sim)
    threshold = choose_threshold(p_sim, sim_labels)
    d = decisions(p_sim, sim_labels, threshold)
    p_real = probs(real)
    predicted = decide_labels(p_real, threshold)
    right = [p == t for p, t in zip(predicted, real_truth)]
    errors = [f"{n}: {t} -> {p}" for n, t, p in zip(real_names, real_truth, predicted) if p != t]
    sensitivity = benchlib.class_sensitivities(d, d["per_class"])
    spread = None
    if bootstrap:
        spread = {q: (th, sum(p == t for p, t in zip(decide_labels(p_real, th), real_truth)))
                  for q, th in threshold_quantiles(p_sim, sim_labels, bootstrap).items()}
    return Scored(name, threshold, round(d["accuracy"], 4), round(d["other_rejected"] or 0.0, 4),
                  sum(right[:n_dev]), n_dev, sum(right[n_dev:]), len(right) - n_dev, errors, sensitivity, spread)


def threshold_quantiles(p_sim: np.ndarray, sim_labels: list[str], n: int, seed: int = 0) -> dict[str, float]:
    """5th, 50th, 95th percentile of ``choose_threshold`` over ``n`` bootstrap resamples of a
    simulated validation set: how far the open-set threshold moves with the draw of that set (its
    bar rests on the upper tail of the set's few hundred "other" series)."""
    rng = np.random.default_rng(seed)
    labels = np.array(sim_labels)
    chosen = [choose_threshold(p_sim[i], list(labels[i])) for i in (rng.integers(len(labels), size=len(labels))
                                                                     for _ in range(n))]
    return {f"p{q}": float(np.percentile(chosen, q, method="nearest")) for q in (5, 50, 95)}


def add_study_arguments(p: argparse.ArgumentParser, val_size: int, seed: int) -> None:
    """The options of a study of one model (``--weights``) on one simulated validation set and the
    real set (``add_real_set_arguments``)."""
    p.add_argument("--weights", type=Path, help="model weights (default: the shipped model)")
    add_simulated_set_arguments(p, val_size, seed)
    add_real_set_arguments(p)


def add_simulated_set_arguments(p: argparse.ArgumentParser, val_size: int, seed: int) -> None:
    """The options naming one simulated validation set (``open_set_study.simulated_set``)."""
    p.add_argument("--anatomy", type=Path, default=benchlib.ANATOMY)
    p.add_argument("--val-size", type=int, default=val_size)
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--val-cache", type=Path, help="folder of cached simulated validation sets")


def add_real_set_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a script that scores models on ``real_inputs``."""
    p.add_argument("--data", type=Path, help="real development set (default ../shared/data/real)")
    p.add_argument("--no-derived", action="store_true", help="skip the maps derived from real DTI")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, action="append", help="model weights (repeat; default: the shipped model)")
    p.add_argument("--gammas", type=float, nargs="+", default=list(DEFAULT_GAMMAS))
    p.add_argument("--anatomy", type=Path, default=benchlib.ANATOMY)
    p.add_argument("--val-size", type=int, default=720)
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--val-cache", type=Path, help="keep the simulated validation set in this folder, and read it "
                                                  "from there when the same set was simulated before")
    p.add_argument("--bootstrap", type=int, default=0,
                   help="resample the validation set N times: the spread of each candidate's threshold, "
                        "and the real series right at its 5th/50th/95th percentile")
    add_real_set_arguments(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data_root = benchlib.resolve_data(args.data)
    models = {}
    for w in args.weights or [None]:
        c = Classifier.load("cpu", w)
        name = f"{c.card['version']}:{c.card['sha256'][:8]}"
        models[name if name not in models else f"{name}#{len(models) + 1}"] = c
    spec = next(iter(models.values())).spec

    inputs, truth, names, n_dev = real_inputs(data_root, spec, derived=not args.no_derived)
    print(f"{n_dev} development series, {len(inputs) - n_dev} derived maps; "
          f"simulating {args.val_size} validation series (seed {args.seed})", file=sys.stderr)
    val_x, val_g, val_labels, _ = validation_set(str(args.anatomy), args.val_size, args.seed, spec,
                                                 cache=args.val_cache)
    real = {n: series_logits(c.network, inputs, args.gammas) for n, c in models.items()}
    sim = {n: simulated_logits(c.network, val_x, val_g, args.gammas) for n, c in models.items()}

    scored = [score(name, members, idx, sim, val_labels, real, truth, names, n_dev, args.bootstrap)
              for name, (members, idx) in candidates(list(models), args.gammas).items()]
    print(f"{'candidate':<44}{'threshold':>10}{'sim acc':>9}{'sim other':>10}{'dev':>8}{'derived':>9}")
    for s in scored:
        print(f"{s.candidate:<44}{s.threshold:>10.3f}{s.simulated_accuracy:>9.3f}{s.simulated_other_rejected:>10.3f}"
              f"{s.dev_right:>5}/{s.dev_n:<2}{s.derived_right:>6}/{s.derived_n}")
    print("simulated sensitivity of classes without real series:")
    for s in scored:
        print(f"  {s.candidate:<42}" + benchlib.unchecked_sensitivities(s.simulated_sensitivity, truth))
    if args.bootstrap:
        print(f"threshold over {args.bootstrap} resampled validation sets (real right of {len(truth)} at it):")
        for s in scored:
            print(f"  {s.candidate:<42}" + "  ".join(f"{q} {th:.3f} ({right})" for q, (th, right) in s.threshold_spread.items()))
    if args.json:
        args.json.write_text(json.dumps({"gammas": args.gammas, "val_size": args.val_size, "seed": args.seed,
                                         "classes": list(LABELS) + [OTHER], "candidates": [asdict(s) for s in scored]},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
