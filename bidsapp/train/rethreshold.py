"""Re-choose a trained model's open-set threshold on a larger simulated validation set.

    mrclass-bids-rethreshold runs/v19r/mrclass.pt --anatomy ../shared/data/anatomy \\
        --val-size 4000 --seed 20261211 --val-cache runs/valcache --out bidsapp/model/weights

Training picks its threshold on the validation set it can afford while it trains (hundreds of
series). That threshold sits in the upper tail of the simulated "other" scores, so it moves with
the sample; a release re-chooses it with the same rule (``metrics.choose_threshold``) on
thousands of series and records the card's metrics there. The threshold is on this package's
open-set score (``model.open_set_score.DEFAULT_SCORE``), whatever score the old card used. The weights
are copied unchanged (their SHA256 stays); the card gets the new score and threshold, its metrics
and calibration, the package's version, and a ``threshold_choice`` record of how the threshold
was set and what it replaced.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import torch

from .. import __version__
from ..model.card import read_card
from ..model.open_set_score import DEFAULT_SCORE, card_score
from ..model.predict import sha256
from ..volume import SPEC
from .train import code_commit, init_network, validated
from .validation import validation_set

log = logging.getLogger("mrclass-bids-rethreshold")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mrclass-bids-rethreshold", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", type=Path, help="trained weights (mrclass.pt) with their card beside them")
    p.add_argument("--anatomy", required=True, help="label-map folder the simulator reads ('phantom': the built-in one)")
    p.add_argument("--val-size", type=int, default=4000)
    p.add_argument("--seed", type=int, required=True,
                   help="validation set seed: use one that no training run validated on")
    p.add_argument("--val-cache", type=Path, help="folder of cached simulated validation sets")
    p.add_argument("--out", type=Path, required=True, help="folder for mrclass.pt and its rewritten card")
    p.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 2))
    return p.parse_args(argv)


def rethresholded_card(card: dict, threshold: float, metrics: dict, choice: dict) -> dict:
    """``card`` with the new open-set score, threshold and metrics, stamped with this package's
    version. A changed threshold or score drops the ``"fused"`` section: it was calibrated on
    decisions made at the old ones (``benchmarks/fused_calibration.py --write-card`` calibrates it again)."""
    score = metrics.get("open_set_score", DEFAULT_SCORE)
    same = threshold == card.get("threshold") and score == card_score(card)
    kept = {k: v for k, v in card.items() if k != "fused" or same}
    return {**kept, "version": __version__, "threshold": threshold, "open_set_score": score,
            "validation_simulated": metrics, "threshold_choice": choice}


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    card = read_card(args.weights)
    if card is None:
        raise SystemExit(f"{args.weights}: no model card ({args.weights.with_suffix('.json').name}) beside it")
    if card.get("weights_sha256") != sha256(args.weights):
        raise SystemExit(f"{args.weights}: its card describes other weights (SHA256 differs)")

    device = torch.device("cpu")
    net = init_network(str(args.weights), device, card.get("architecture")).eval()
    stacks, geometry, labels, _ = validation_set(args.anatomy, args.val_size, args.seed, SPEC, 0, args.val_cache)
    threshold, metrics = validated(net, stacks, geometry, labels, device)
    log.info("threshold %.3f (was %.3f) on %d simulated series: accuracy %.3f, other rejected %.3f",
             threshold, card["threshold"], len(labels), metrics["accuracy"], metrics["other_rejected"])

    choice = {"n": len(labels), "seed": args.seed, "previous_threshold": card["threshold"],
              "previous_open_set_score": card_score(card),
              "previous_version": card.get("version"), "code_commit": code_commit(),
              "command": "mrclass-bids-rethreshold " + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "mrclass.pt"
    if target.resolve() != args.weights.resolve():
        shutil.copyfile(args.weights, target)
    target.with_suffix(".json").write_text(json.dumps(rethresholded_card(card, threshold, metrics, choice), indent=2))
    print(f"{target}: threshold {threshold:.3f} (was {card['threshold']:.3f}), version {__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
