"""Train (or fine-tune) the content classifier on simulated series; write weights + model card.

    mrclass-bids-train --anatomy ../shared/data/anatomy --out runs/v1 --minutes 60
    mrclass-bids-train ... --finetune-labels my/labels.tsv --finetune-root my/   # add real data

Reproducible (every random draw descends from ``--seed``), resumable (``--resume`` continues from
``OUT/checkpoint.pt``), CPU or GPU (``--device``). The open-set threshold is chosen on a fixed
simulated validation set, never on real data.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .. import __version__
from ..classes import LABELS
from ..model.card import read_card
from ..model.network import ARCH, ARCHS, SliceStackClassifier
from ..model.open_set_score import DEFAULT_SCORE
from ..model.predict import mirrored_logits, resolve_device, sha256
from ..volume import SPEC, InputSpec
from . import simulate
from .augment import augment
from .label_maps import split_heads, training_anatomies
from .labelled import LabelledSeries, load_labelled, one_hot
from .metrics import calibration, choose_threshold, decisions
from .validation import validation_set

log = logging.getLogger("mrclass.train")


class SimulatedSeries(IterableDataset):
    """An endless stream of simulated (stack, geometry, target); each worker has its own seed.
    ``emphasis`` (``--class-weight``) scales the simulator's class draw (``simulate.draw_weights``)."""

    def __init__(self, anatomy_dir: str, n_slices: int, seed: int, spec: InputSpec = SPEC, holdout_heads: int = 0,
                 emphasis: dict[str, float] | None = None):
        self.anatomy_dir, self.n_slices, self.seed, self.spec = anatomy_dir, n_slices, seed, spec
        self.holdout_heads = holdout_heads
        self.emphasis = emphasis

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        anatomies, _ = split_heads(training_anatomies(self.anatomy_dir),
                                            self.holdout_heads)
        while True:
            sample = simulate.simulate_sample(rng, anatomies, self.n_slices, self.spec, emphasis=self.emphasis)
            yield sample.stack.astype(np.float32), sample.geometry, one_hot(sample.label)


class ReplayBuffer:
    """Recent simulated series, re-drawn under fresh augmentation.

    On CPU the simulator is the bottleneck (one core makes ~8 series/s, the network could use
    twice that): replaying half of each batch doubles optimisation steps for the same data cost."""

    def __init__(self, capacity: int, seed: int):
        self.items: list[tuple[np.ndarray, ...]] = []
        self.capacity = capacity
        self.rng = np.random.default_rng([seed, 4242])

    def add(self, batch) -> None:
        for x, *rest in batch:  # (stack, geometry, target): the stack is kept as float16
            item = (np.asarray(x, dtype=np.float16), *map(np.asarray, rest))
            if len(self.items) < self.capacity:
                self.items.append(item)
            else:
                self.items[self.rng.integers(self.capacity)] = item

    def sample(self, n: int):
        if len(self.items) < 4 * n:
            return []
        return [(x.astype(np.float32), *rest) for x, *rest in (self.items[i] for i in self.rng.integers(len(self.items), size=n))]


def interleave(primary, secondary, p_secondary: float, seed: int):
    rng = np.random.default_rng([seed, 99])
    a, b = iter(primary), iter(secondary) if secondary is not None else None
    while True:
        yield next(b) if b is not None and rng.random() < p_secondary else next(a)


def predict_probs(net, stacks: np.ndarray, geometry: np.ndarray, device, batch: int = 16) -> np.ndarray:
    """Probabilities exactly as inference computes them (``predict.mirrored_logits``)."""
    def chunk(a, i):
        return torch.from_numpy(a[i:i + batch].astype(np.float32)).to(device)
    out = [torch.sigmoid(mirrored_logits(net, chunk(stacks, i), chunk(geometry, i))).cpu().numpy()
           for i in range(0, len(stacks), batch)]
    return np.concatenate(out)


#: Steps between checkpoints (and between the snapshots ``--average-from`` averages).
CHECKPOINT_EVERY = 200


class WeightAverage:
    """Running mean of network snapshots along the end of training (stochastic weight averaging).

    The domain gap is the problem here: the network is trained on simulated images and judged
    on real ones. Snapshots along a low learning-rate tail sit around one flat region of the loss;
    their mean lies nearer its centre than any of them, and flat minima move less under a shift
    of the input distribution (Izmailov 2018; Cha 2021, SWAD). The network has GroupNorm only, so
    the mean needs no recomputed statistics. On 0.5.0's 100-minute CPU run it changed nothing
    measurable (docs/model.md); longer runs with a longer tail are where it should matter."""

    def __init__(self, state: dict | None = None, count: int = 0):
        self.state, self.count = state, count

    def add(self, state: dict) -> None:
        snapshot = {k: v.detach().float().cpu().clone() for k, v in state.items()}  # never alias the network
        if self.state is None:
            self.state, self.count = snapshot, 1
            return
        self.count += 1
        for k, v in snapshot.items():
            self.state[k] += (v - self.state[k]) / self.count


class CheckpointSelection:
    """Snapshots scored on the simulated validation set; the best one ships.

    Final weights of a cosine run swing: a mid-run checkpoint of the 0.10.0 candidate refused
    every real "other" series, the final weights did not. With ``--holdout-heads`` the
    validation brains are heads training never saw, so the choice rests on unseen anatomy,
    never on the real dev set. Each scored snapshot is kept (``snapshots/``, ~2.5 MB) and listed
    in ``selection.tsv`` so that a choice can be audited afterwards."""

    def __init__(self, out: Path, rows: list[dict] | None = None):
        self.out, self.rows = out, list(rows or [])

    def score(self, step: int, state: dict, probs: np.ndarray, labels: list[str]) -> dict:
        threshold = choose_threshold(probs, labels)
        metrics = decisions(probs, labels, threshold)
        row = {"step": step, "threshold": threshold, "accuracy": metrics["accuracy"],
               "other_rejected": metrics.get("other_rejected")}
        path = self.snapshot_path(step)
        path.parent.mkdir(exist_ok=True)
        torch.save({k: v.detach().half().cpu() for k, v in state.items()}, path)
        self.rows.append(row)
        with open(self.out / "selection.tsv", "w") as f:
            f.write("step\tthreshold\taccuracy\tother_rejected\n")
            f.writelines(f"{r['step']}\t{r['threshold']:.3f}\t{r['accuracy']:.4f}\t{r['other_rejected']}\n"
                         for r in self.rows)
        return row

    def best(self) -> dict:
        """Highest validation accuracy; on a tie the later step (more training, lower rate)."""
        return max(self.rows, key=lambda r: (r["accuracy"], r["step"]))

    def snapshot_path(self, step: int) -> Path:
        return self.out / "snapshots" / f"step{step:06d}.pt"

    def state(self, step: int) -> dict:
        """The float32 weights of the snapshot scored at ``step``."""
        return {k: v.float() for k, v in torch.load(self.snapshot_path(step), map_location="cpu",
                                                    weights_only=True).items()}

    def best_state(self) -> dict:
        return self.state(self.best()["step"])


def code_commit() -> str | None:
    """The git commit of the code that simulated the data (``+dirty`` with uncommitted changes),
    or None outside a git checkout: a model card should say which simulator made its data."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def warm_cosine_lr(base: float, step: int, warmup_steps: int, frac: float) -> float:
    """Learning rate at optimiser ``step``: a linear warm-up over ``warmup_steps``, then a cosine
    from ``base`` to zero as ``frac`` (the share of the budget spent) runs from 0 to 1."""
    return base * min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * frac))


def lineage(init: str | None) -> list[dict]:
    """The training phases behind the ``--init`` weights, oldest first, read from the model card
    beside them (``X.json`` for ``X.pt``); each phase as its card recorded it. A fine-tuned
    model's card then tells its whole recipe, not only the last run's."""
    if not init:
        return []
    card = read_card(init)
    if card is None:
        return [{"weights_sha256": sha256(Path(init)), "card": None}]
    t = card.get("training", {})
    phase = {"version": card.get("version"), "weights_sha256": card.get("weights_sha256"),
             **{k: t.get(k) for k in ("seed", "steps", "minutes", "code_commit", "command")}}
    return [*t.get("lineage", []), phase]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="mrclass-bids-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--anatomy", required=True,
                   help="folder with brainweb/, synthseg/, totalseg/ label maps, or 'phantom' (no data; smoke runs)")
    p.add_argument("--out", required=True, help="run folder: checkpoint, log, final weights + card")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=100000, help="maximum optimizer steps")
    p.add_argument("--batch", type=int, default=24, help="series per batch")
    p.add_argument("--train-slices", type=int, default=6, help="slices per simulated series in training")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--replay-fraction", type=float, default=0.5, help="share of each batch re-drawn from recent series")
    p.add_argument("--replay-size", type=int, default=3000, help="recent series kept for replay")
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    p.add_argument("--val-size", type=int, default=480)
    p.add_argument("--val-cache", type=Path,
                   help="folder to keep simulated validation sets in: a set with the same size, seed, input, "
                        "anatomy and simulator code is read from there instead of simulated again")
    p.add_argument("--holdout-heads", type=int, default=0,
                   help="keep the last N BrainWeb and the last N SynthSeg heads out of training; the simulated "
                        "validation set (threshold, card metrics) then draws its brains from them alone")
    p.add_argument("--average-from", type=float, default=0.0,
                   help="ship the mean of the weights saved every %d steps once this fraction of the budget "
                        "has passed, and the final ones (0: the final weights alone)" % CHECKPOINT_EVERY)
    p.add_argument("--select-every", type=int, default=0,
                   help="score the weights on the simulated validation set every N steps (a multiple of %d) "
                        "and at the end, and ship the best-scoring ones (0: the final weights)" % CHECKPOINT_EVERY)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--arch", default="compact", choices=sorted(ARCHS),
                   help="network to build (network.ARCHS); --init weights must fit it")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the network (loss and weights stay float32): about 2x faster "
                        "steps on CPUs with bf16 instructions, slower on those without")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init", help="start from these weights (fine-tuning)")
    p.add_argument("--class-weight", action="append", default=[], metavar="TARGET=FACTOR",
                   help="draw this training target FACTOR times as often as the simulator's mix (repeatable; "
                        "e.g. body-DWI=2); validation keeps the simulator's mix")
    p.add_argument("--finetune-labels", help="labels.tsv (columns path, label) of the user's real labelled series: NIfTI files or DICOM folders")
    p.add_argument("--finetune-root", help="folder the labels.tsv paths are relative to")
    p.add_argument("--finetune-fraction", type=float, default=0.3)
    return p.parse_args(argv)


def init_network(init: str | None, device, arch: dict | None = None) -> SliceStackClassifier:
    """A fresh network of ``arch`` (default ``ARCH``), or one started from ``init`` weights. Weights
    of an older architecture load too (what they lack starts fresh); weights of another network
    are refused."""
    net = SliceStackClassifier(len(LABELS), arch or ARCH).to(device)
    if init:
        try:
            missing, unexpected = net.load_state_dict(
                {k: v.float() for k, v in torch.load(init, map_location="cpu", weights_only=True).items()}, strict=False)
        except RuntimeError as exc:  # same names, other shapes: another width or depth
            raise SystemExit(f"--init {init}: weights do not fit this network ({str(exc).splitlines()[1].strip()})")
        if unexpected:
            raise SystemExit(f"--init {init}: weights do not fit this network ({unexpected[:3]} ...)")
        if missing:
            log.info("--init: %d tensors not in %s start fresh (%s ...)", len(missing), init, missing[0])
    return net


def train_step(net, opt, batch: list, device, bf16: bool) -> float:
    """One optimiser step on (stack, geometry, target) items, augmented here; the loss."""
    x, geometry, y = (torch.from_numpy(np.stack([b[i] for b in batch])).to(device) for i in range(3))
    x = augment(x)  # in float32: only the network runs under autocast
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = net(x, geometry)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def model_card(spec: InputSpec, threshold: float, training: dict, history: list[dict], metrics: dict,
               weights: Path, arch: dict = ARCH) -> dict:
    """What ships beside the weights: classes, threshold, input, recipe and its lineage, metrics."""
    return {
        "name": "mrclass-slicestack-resnet",
        "version": __version__,
        "classes": list(LABELS),
        "threshold": threshold,
        "open_set_score": DEFAULT_SCORE,
        "input": asdict(spec),
        "architecture": arch,
        "training": {**training, "code_commit": code_commit(), "lineage": history,
                     "total_steps": training["steps"] + sum(p.get("steps") or 0 for p in history),
                     "total_minutes": round(training["minutes"] + sum(p.get("minutes") or 0 for p in history), 1)},
        "data": "simulated from BrainWeb 20 (Aubert-Broche 2006), SynthSeg 20 training label maps (Billot 2023), "
                "TotalSegmentator example abdomen (Wasserthal 2023); see docs/simulator.md",
        "validation_simulated": metrics,
        "weights_sha256": sha256(weights),
    }


def validated(net, val_x: np.ndarray, val_geometry: np.ndarray, val_labels: list[str], device) -> tuple[float, dict]:
    """The open-set threshold training's rule picks on the simulated validation set, and the
    metrics (calibration included) a model card records there."""
    probs = predict_probs(net, val_x, val_geometry, device)
    threshold = choose_threshold(probs, val_labels)
    metrics = decisions(probs, val_labels, threshold)
    metrics["calibration"] = calibration(probs, val_labels)
    return threshold, metrics


def save_model(net, out: Path, spec: InputSpec, threshold: float, training: dict, history: list[dict],
               metrics: dict) -> Path:
    """``out/mrclass.pt`` (float16) and its card ``out/mrclass.json``; the weights' path."""
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "mrclass.pt"
    torch.save({k: v.half() for k, v in net.state_dict().items()}, weights)
    card = model_card(spec, threshold, training, history, metrics, weights, net.arch)
    (out / "mrclass.json").write_text(json.dumps(card, indent=2))
    return weights


def parse_class_weights(items: list[str]) -> dict[str, float]:
    """``["body-DWI=2", ...]`` as {target: factor}: known training targets, positive factors."""
    out = {}
    for item in items:
        target, _, factor = item.partition("=")
        try:
            out[target.strip()] = float(factor)  # no "=": float("") fails too
        except ValueError:
            raise ValueError(f"{item!r} is not TARGET=FACTOR") from None
    unknown = sorted(set(out) - set(simulate.TARGET_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown training target(s) {', '.join(unknown)}; choose from {', '.join(simulate.TARGET_WEIGHTS)}")
    if any(f <= 0 for f in out.values()):
        raise ValueError("factors must be positive")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.select_every and (args.average_from or args.select_every % CHECKPOINT_EVERY):
        raise SystemExit(f"--select-every must be a multiple of {CHECKPOINT_EVERY} and cannot be combined "
                         "with --average-from (one rule decides which weights ship)")
    try:
        emphasis = parse_class_weights(args.class_weight)
    except ValueError as exc:
        raise SystemExit(f"--class-weight: {exc}") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    spec = SPEC

    net = init_network(args.init, device, ARCHS[args.arch])
    history = lineage(args.init)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step, elapsed = 0, 0.0
    average = WeightAverage()
    selection = CheckpointSelection(out)
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
        average = WeightAverage(state.get("average"), state.get("average_count", 0))
        selection = CheckpointSelection(out, state.get("selection"))
        log.info("resumed at step %d (%.1f min)", step, elapsed / 60)

    def save_checkpoint() -> None:
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": time.time() - t0,
                    "average": average.state, "average_count": average.count, "selection": selection.rows}, ckpt)

    def select(snapshot_step: int) -> None:
        row = selection.score(snapshot_step, net.state_dict(), predict_probs(net, val_x, val_geometry, device),
                              val_labels)
        log.info("step %d: simulated validation accuracy %.3f at threshold %.2f", snapshot_step, row["accuracy"],
                 row["threshold"])

    log.info("building simulated validation set (%d series)", args.val_size)
    try:
        val_x, val_geometry, val_labels, val_kinds = validation_set(args.anatomy, args.val_size, args.seed, spec,
                                                                    args.holdout_heads, args.val_cache)
    except ValueError as exc:  # more heads held out than the anatomy folder has
        raise SystemExit(f"--holdout-heads {args.holdout_heads}: {exc}") from exc

    stream = SimulatedSeries(args.anatomy, args.train_slices, args.seed + step, spec, args.holdout_heads, emphasis)
    real = (LabelledSeries(load_labelled(args.finetune_labels, args.finetune_root or ".", None), args.train_slices,
                           args.seed, spec) if args.finetune_labels else None)
    loader = DataLoader(stream, batch_size=None, num_workers=args.workers, persistent_workers=args.workers > 0,
                        prefetch_factor=8 if args.workers else None)
    samples = interleave(loader, real, args.finetune_fraction, args.seed + step)
    replay = ReplayBuffer(args.replay_size, args.seed + step)
    budget = args.minutes * 60
    t0 = time.time() - elapsed
    net.train()
    losses = []
    while step < args.steps and time.time() - t0 < budget:
        n_replay = int(args.batch * args.replay_fraction)
        replayed = replay.sample(n_replay)
        fresh = [next(samples) for _ in range(args.batch - len(replayed))]
        replay.add(fresh)
        batch = fresh + replayed
        frac = min(1.0, max((time.time() - t0) / budget, step / args.steps))
        for g in opt.param_groups:  # cosine decay over the time (or step) budget
            g["lr"] = warm_cosine_lr(args.lr, step, 100, frac)
        losses.append(train_step(net, opt, batch, device, args.bf16))
        step += 1
        if step % 50 == 0:
            log.info("step %d  loss %.4f  lr %.2e  %.1f min", step, np.mean(losses[-50:]), opt.param_groups[0]["lr"],
                     (time.time() - t0) / 60)
        if step % CHECKPOINT_EVERY == 0:
            if args.average_from > 0 and frac >= args.average_from:
                average.add(net.state_dict())
            if args.select_every and step % args.select_every == 0:
                select(step)
            save_checkpoint()
    if args.select_every and (not selection.rows or selection.rows[-1]["step"] != step):
        select(step)
    if args.average_from > 0:
        average.add(net.state_dict())
    save_checkpoint()
    if args.select_every:
        net.load_state_dict(selection.best_state())
        log.info("weights: step %d of %d scored snapshots", selection.best()["step"], len(selection.rows))
    elif args.average_from > 0:
        net.load_state_dict(average.state)
        log.info("weights: mean of %d snapshots from %.0f%% of the budget on", average.count, 100 * args.average_from)

    threshold, metrics = validated(net, val_x, val_geometry, val_labels, device)
    training = {"seed": args.seed, "steps": step, "batch_series": args.batch, "train_slices": args.train_slices,
                "replay_fraction": args.replay_fraction, "average_from": args.average_from,
                "averaged_snapshots": average.count, "select_every": args.select_every,
                "selected_step": selection.best()["step"] if args.select_every else step,
                "lr": args.lr, "bf16": args.bf16, "arch": args.arch, "minutes": round((time.time() - t0) / 60, 1), "device": str(device),
                "finetune_labels": args.finetune_labels, "holdout_heads": args.holdout_heads,
                "class_weights": emphasis,
                "command": "mrclass-bids-train " + " ".join(sys.argv[1:] if argv is None else argv)}
    weights = save_model(net, out, spec, threshold, training, history, metrics)
    log.info("done: %d steps, simulated validation accuracy %.3f at threshold %.2f -> %s",
             step, metrics["accuracy"], threshold, weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
