#!/usr/bin/env python3
"""Does fine-tuning on real labelled series classify real series from *unseen sources* better?

    python benchmarks/studies/real_finetune_cv.py --out runs/cv1                 # control, every fold, all-sources model
    python benchmarks/studies/real_finetune_cv.py --out runs/cv1 --folds 2 --steps 20 --pool 64 --val-size 64   # smoke

Four chained CPU runs on simulated data alone left the real score where it was: the simulator,
not training length, limits it. Real labelled series are the other lever, and the only honest way
to measure one on a 34-series set is cross-validation that holds out whole *sources* (a dataset
or scanner: ``--group-column``, default ``source_repo``), because series of one source share
scanner, preprocessing and often subject, and a model that saw a BraTS T1w would be flattered on
the BraTS FLAIR.

Each arm starts from the same weights (``--weights``, default the shipped model) and takes the
same ``--steps`` optimiser steps with the same seed, on batches of simulated series (drawn from a
pool simulated once from the training heads, re-cut and re-augmented every draw, as
``train.ReplayBuffer`` does) and, in the real arm, ``--real-fraction`` of each batch drawn from the
real series of every *other* source (``labelled.labelled_sample``: random view, random slices).

* ``control``: simulated batches only, the same steps. It never sees a real series, so its one
  run scores every series held out.
* ``fold:<source>``: real + simulated, without that source; scores that source's series.
* ``all``: real + simulated over every source: the weights that would ship, written to
  ``OUT/all/mrclass.pt`` with a model card; its scores on the real set are training-set numbers.

Every model's open-set threshold comes from one simulated validation set of held-out heads by
training's rule (``metrics.choose_threshold``), never from real data. The real series are the
development set and the brain maps derived from its DTI (``derived_maps.py``, grouped with their
source). Output: a table per series, totals per arm, ``OUT/cv.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib, derived_maps
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/studies/: ensemble_probe
import benchlib  # noqa: E402
import derived_maps  # noqa: E402
from ensemble_probe import series_input, series_logits  # noqa: E402

from bidsapp.classes import LABELS  # noqa: E402
from bidsapp.model.card import read_card  # noqa: E402
from bidsapp.model.predict import DEFAULT_WEIGHTS, resolve_device  # noqa: E402
from bidsapp.train import simulate  # noqa: E402
from bidsapp.train.labelled import LabelledVolume, labelled_sample, load_labelled, one_hot  # noqa: E402
from bidsapp.train.metrics import decide_labels  # noqa: E402
from bidsapp.train.train import init_network, lineage, save_model, train_step, validated, warm_cosine_lr  # noqa: E402
from bidsapp.train.validation import validation_set  # noqa: E402
from bidsapp.volume import SPEC  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    """Everything an arm's training depends on besides its real series."""

    weights: str
    steps: int
    batch: int
    train_slices: int
    real_fraction: float
    lr: float
    seed: int
    bf16: bool


@dataclass(frozen=True)
class ShippingRule:
    """When the all-sources model may replace the shipped one (runs/cv3/PREREGISTRATION.txt).

    The cross-validated total must beat both the start weights (at this validation set's
    threshold) and the simulated-only control by ``margin`` series, and must not fall below the
    shipped model at its card's threshold; the all-sources model's simulated accuracy may fall at
    most ``sim_tolerance`` below the *control's*: both left the validation heads out of these
    steps, while the start may have trained on them (every model up to 0.8.0 did), so only the
    control is measured alike. SWI and the body phases have no real series; this guard is what
    keeps real data from trading them away."""

    margin: int = 3
    sim_tolerance: float = 0.03

    def verdict(self, totals: dict[str, int], sim_accuracy: dict[str, float]) -> dict:
        checks = {
            f"cv >= start + {self.margin}": totals["cv"] >= totals["start"] + self.margin,
            f"cv >= control + {self.margin}": totals["cv"] >= totals["control"] + self.margin,
            "cv >= shipped at its card threshold": totals["cv"] >= totals["shipped"],
            f"all simulated accuracy >= control - {self.sim_tolerance}":
                sim_accuracy["all"] >= sim_accuracy["control"] - self.sim_tolerance - 1e-9,
        }
        return {"checks": checks, "ship": all(checks.values())}


def card_threshold(weights: str) -> float:
    """The open-set threshold written in the card beside ``weights``."""
    return float(read_card(weights)["threshold"])


# ------------------------------------------------------------------------------- simulated data
def _simulate_chunk(job: tuple[str, int, int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    anatomy, holdout, n_slices, seed, start, stop = job
    anatomies, _ = simulate.split_heads(simulate.training_anatomies(anatomy), holdout)
    stacks, geometry, targets = [], [], []
    for i in range(start, stop):
        s = simulate.simulate_sample(np.random.default_rng([seed, 31, i]), anatomies, n_slices, SPEC)
        stacks.append(s.stack.astype(np.float16))
        geometry.append(s.geometry)
        targets.append(one_hot(s.label))
    return np.stack(stacks), np.stack(geometry), np.stack(targets)


def simulated_pool(path: Path, anatomy: str, n: int, n_slices: int, seed: int, holdout: int, workers: int):
    """(stacks float16 (n, slices, H, W), geometry, targets) simulated from the training heads,
    cached in ``path``: series i is drawn from its own seed, so the pool is the same however many
    workers made it."""
    if path.is_file():
        with np.load(path) as z:
            if len(z["stacks"]) == n and z["stacks"].shape[1] == n_slices:
                return z["stacks"], z["geometry"], z["targets"]
    edges = np.linspace(0, n, workers + 1).round().astype(int)
    jobs = [(anatomy, holdout, n_slices, seed, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    if len(jobs) == 1:  # in this process: no worker to start (tests, --workers 1)
        parts = [_simulate_chunk(jobs[0])]
    else:
        with mp.get_context("spawn").Pool(len(jobs)) as pool:
            parts = pool.map(_simulate_chunk, jobs)
    stacks, geometry, targets = (np.concatenate([p[i] for p in parts]) for i in range(3))
    np.savez(path, stacks=stacks, geometry=geometry, targets=targets)
    return stacks, geometry, targets


def cached_validation(path: Path, anatomy: str, n: int, seed: int, holdout: int):
    if path.is_file():
        with np.load(path) as z:
            if len(z["stacks"]) == n:
                return z["stacks"], z["geometry"], [str(x) for x in z["labels"]]
    stacks, geometry, labels, _ = validation_set(anatomy, n, seed, SPEC, holdout)
    np.savez(path, stacks=stacks, geometry=geometry, labels=np.array(labels))
    return stacks, geometry, labels


# ------------------------------------------------------------------------------------ real data
def real_items(data_root: Path, group_column: str, derived: bool) -> list[LabelledVolume]:
    """The development series and the maps derived from its DTI, each with its source."""
    items = load_labelled(data_root / "labels.tsv", data_root, group_column)
    group_of = {item.name: item.group for item in items}
    for m in (derived_maps.derived_volumes(data_root) if derived else ()):
        items.append(LabelledVolume(m.name, m.expected, group_of[m.source], m.volume))
    return items


# ------------------------------------------------------------------------------------- training
def fine_tune(recipe: Recipe, pool, real: list[LabelledVolume], device, log_prefix: str) -> torch.nn.Module:
    """``recipe.steps`` optimiser steps from ``recipe.weights``: pool draws (random slices of a
    pooled series) plus, when ``real`` is given, ``real_fraction`` of each batch from it."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng([recipe.seed, 2027])
    net = init_network(recipe.weights, device)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
    stacks, geometry, targets = pool
    n_real = round(recipe.batch * recipe.real_fraction) if real else 0
    warmup = max(1, recipe.steps // 10)
    t0 = time.time()
    for step in range(recipe.steps):
        for g in opt.param_groups:
            g["lr"] = warm_cosine_lr(recipe.lr, step, warmup, step / recipe.steps)
        batch = []
        for i in rng.integers(len(stacks), size=recipe.batch - n_real):
            rows = np.sort(rng.choice(stacks.shape[1], size=recipe.train_slices, replace=False))
            batch.append((stacks[i, rows].astype(np.float32), geometry[i], targets[i]))
        batch += [labelled_sample(rng, real[j], recipe.train_slices) for j in rng.integers(len(real), size=n_real)]
        loss = train_step(net, opt, batch, device, recipe.bf16)
        if (step + 1) % 50 == 0:
            print(f"  {log_prefix} step {step + 1}/{recipe.steps} loss {loss:.4f} {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    net.eval()
    return net


def thresholded(net, val, inputs, device) -> tuple[float, dict, np.ndarray]:
    """(threshold from the simulated validation set, its metrics, real series' probabilities)."""
    threshold, metrics = validated(net, *val, device)
    with torch.no_grad():
        p_real = 1 / (1 + np.exp(-series_logits(net, inputs, (1.0,))[:, 0]))
    return threshold, metrics, p_real


def training_record(recipe: Recipe, minutes: float, n_real: int, labels_tsv: Path) -> dict:
    """The card's ``training`` entry of the all-sources model."""
    return {"seed": recipe.seed, "steps": recipe.steps, "batch_series": recipe.batch,
            "train_slices": recipe.train_slices, "lr": recipe.lr, "bf16": recipe.bf16,
            "minutes": round(minutes, 1), "device": "cpu", "finetune_labels": benchlib.display_path(labels_tsv),
            "finetune_series": n_real, "real_fraction": recipe.real_fraction,
            "command": "python benchmarks/studies/real_finetune_cv.py " + " ".join(sys.argv[1:])}


# -------------------------------------------------------------------------------------- driver
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run folder (pool/validation caches, cv.json, all/)")
    p.add_argument("--data", type=Path, help="real development set (default ../shared/data/real)")
    p.add_argument("--anatomy", type=Path, default=benchlib.ANATOMY)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights every arm starts from")
    p.add_argument("--group-column", default="source_repo", help="labels.tsv column naming a series' source")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-slices", type=int, default=4)
    p.add_argument("--real-fraction", type=float, default=0.25)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=20261205)
    p.add_argument("--pool", type=int, default=1500, help="simulated series in the pool")
    p.add_argument("--pool-slices", type=int, default=8, help="slices simulated per pooled series")
    p.add_argument("--val-size", type=int, default=480)
    p.add_argument("--holdout-heads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes simulating the pool")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--no-derived", action="store_true", help="leave out the maps derived from the real DTI")
    p.add_argument("--folds", type=int, default=0, help="only the first N sources (0: all; smoke runs)")
    p.add_argument("--no-final", action="store_true", help="skip the all-sources model")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    data_root = benchlib.resolve_data(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = Recipe(str(args.weights), args.steps, args.batch, args.train_slices, args.real_fraction, args.lr,
                    args.seed, not args.no_bf16)

    items = real_items(data_root, args.group_column, not args.no_derived)
    inputs = [series_input(item.volume, SPEC) for item in items]
    groups = list(dict.fromkeys(item.group for item in items))
    print(f"{len(items)} real series from {len(groups)} sources; pool of {args.pool} simulated series", file=sys.stderr)
    pool = simulated_pool(args.out / "pool.npz", str(args.anatomy), args.pool, args.pool_slices, args.seed,
                          args.holdout_heads, args.workers)
    val = cached_validation(args.out / "validation.npz", str(args.anatomy), args.val_size, args.seed,
                            args.holdout_heads)
    truth = [item.label for item in items]

    def decide(probs, threshold, rows):
        return dict(zip(rows, decide_labels(probs[rows], threshold)))

    def best(probs, rows):  # the best class and its probability, whatever the threshold
        return {i: (LABELS[int(probs[i].argmax())], round(float(probs[i].max()), 3)) for i in rows}

    arms: dict[str, dict] = {}
    start_net = init_network(recipe.weights, device).eval()
    th, metrics, probs = thresholded(start_net, val, inputs, device)
    every = list(range(len(items)))
    arms["start"] = {"threshold": th, "predicted": decide(probs, th, every), "best": best(probs, every),
                     "sim_accuracy": metrics["accuracy"]}
    shipped_th = card_threshold(recipe.weights)
    arms["shipped"] = {"threshold": shipped_th, "predicted": decide(probs, shipped_th, every),
                       "best": arms["start"]["best"], "note": "start weights at their card's threshold"}
    sim_metrics = {"start": metrics}

    t0 = time.time()
    net = fine_tune(recipe, pool, [], device, "control")
    th, metrics, probs = thresholded(net, val, inputs, device)
    arms["control"] = {"threshold": th, "predicted": decide(probs, th, every), "best": best(probs, every),
                       "sim_accuracy": metrics["accuracy"], "minutes": (time.time() - t0) / 60}
    sim_metrics["control"] = metrics
    print(f"start: simulated accuracy {arms['start']['sim_accuracy']:.3f} at {arms['start']['threshold']:.3f}; "
          f"control: {metrics['accuracy']:.3f} at {th:.3f}", file=sys.stderr, flush=True)

    cv_predicted: dict[int, str] = {}
    cv_best: dict[int, tuple[str, float]] = {}
    fold_rows = []
    for group in groups[:args.folds or None]:
        t0 = time.time()
        held = [i for i, item in enumerate(items) if item.group == group]
        train = [item for item in items if item.group != group]
        net = fine_tune(recipe, pool, train, device, f"fold {group}")
        th, metrics, probs = thresholded(net, val, inputs, device)
        cv_predicted |= decide(probs, th, held)
        cv_best |= best(probs, held)
        fold_rows.append({"group": group, "threshold": th, "sim_accuracy": metrics["accuracy"],
                          "held_out": len(held), "right": sum(cv_predicted[i] == truth[i] for i in held),
                          "minutes": round((time.time() - t0) / 60, 2)})
        print(f"fold {group}: {fold_rows[-1]['right']}/{len(held)} at threshold {th:.3f}", file=sys.stderr, flush=True)
    arms["cv"] = {"predicted": cv_predicted, "best": cv_best, "folds": fold_rows}

    if not args.no_final:
        t0 = time.time()
        net = fine_tune(recipe, pool, items, device, "all")
        th, metrics, probs = thresholded(net, val, inputs, device)
        minutes = (time.time() - t0) / 60
        weights = save_model(net, args.out / "all", SPEC, th,
                             training_record(recipe, minutes, len(items), data_root / "labels.tsv"),
                             lineage(recipe.weights), metrics)
        arms["all"] = {"threshold": th, "predicted": decide(probs, th, every), "best": best(probs, every),
                       "sim_accuracy": metrics["accuracy"], "weights": str(weights), "note": "training-set numbers"}
        sim_metrics["all"] = metrics

    scored = [i for i in every if i in cv_predicted]
    print(f"\n{'series':52s} {'truth':12s} {'start':24s} {'control':24s} {'cv (source held out)':24s}")
    for i in scored:
        cells = []
        for a in ("start", "control", "cv"):
            decided, (top, p) = arms[a]["predicted"][i], arms[a]["best"][i]
            cell = f"{decided} ({top} {p:.2f})" if decided != top else f"{decided} {p:.2f}"
            cells.append(cell + ("" if decided == truth[i] else " x"))
        print(f"{items[i].name[-52:]:52s} {truth[i]:12s} " + " ".join(f"{c:24s}" for c in cells))
    totals = {a: sum(arms[a]["predicted"][i] == truth[i] for i in scored) for a in ("shipped", "start", "control")}
    totals["cv"] = sum(cv_predicted[i] == truth[i] for i in scored)
    if "all" in arms:
        totals["all (training set)"] = sum(arms["all"]["predicted"][i] == truth[i] for i in scored)
    print("\nright of", len(scored), ":", "  ".join(f"{a} {n}" for a, n in totals.items()))
    print("thresholds:", "  ".join(f"{a} {arms[a]['threshold']:.3f}"
                                   for a in ("shipped", "start", "control", "all") if a in arms))
    print("simulated sensitivity of classes without real series:")
    for arm, m in sim_metrics.items():
        print(f"  {arm:8s} " + benchlib.unchecked_sensitivities(benchlib.class_sensitivities(m, LABELS), truth))
    verdict = None
    if "all" in arms and not args.folds:
        verdict = ShippingRule().verdict(totals, {a: arms[a]["sim_accuracy"] for a in ("control", "all")})
        for check, ok in verdict["checks"].items():
            print(f"  {'yes' if ok else 'NO ':3s} {check}")
        print("shipping rule:", "SHIP OUT/all" if verdict["ship"] else "keep the shipped model")

    result = {"benchmark": "real_finetune_cv", "meta": benchlib.machine_info(), "recipe": asdict(recipe),
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "classes": list(LABELS),
              "series": [{"name": items[i].name, "group": items[i].group, "truth": truth[i],
                          **{a: arms[a]["predicted"].get(i) for a in arms},
                          "best": {a: arms[a]["best"].get(i) for a in arms}} for i in every],
              "arms": {a: {k: v for k, v in arm.items() if k not in ("predicted", "best")} for a, arm in arms.items()},
              "totals": totals, "scored": len(scored), "verdict": verdict,
              "sim_per_class_sensitivity": {a: benchlib.class_sensitivities(m, LABELS) for a, m in sim_metrics.items()}}
    benchlib.write_json(args.out / "cv.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
