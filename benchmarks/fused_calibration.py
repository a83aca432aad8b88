#!/usr/bin/env python3
"""Calibrate the fused decision (content + physics) on simulated series with synthetic headers.

    python benchmarks/fused_calibration.py --json benchmarks/results/fused_calibration.json

Simulates a validation set (``bidsapp.train.validation.validation_series``, cached under
``--val-cache``), classifies every series with the shipped model as validation does
(``train.predict_probs``, the card's threshold), writes each series the header a scanner would
have written for its protocol (``bidsapp.train.synthetic_header``: vendor styles, lost fields, a
share with no physics), and fuses the two witnesses (``bidsapp.decide.fuse``). Reports content-only
and fused accuracy per class, and for a grid of margins how often ``low_confidence`` fires and how
right flagged and unflagged picks are.

The rules, fixed before any result was seen:

* **LOW_MARGIN**: the margin flags a pick among several classes physics allows (the only picks it
  can flag). Choose the *smallest* grid margin m such that at m and at every larger grid margin
  the unflagged such picks are at least ``TARGET`` (95%) right: the fewest flags that make the
  trusted picks trustworthy. (The largest margin meeting the target would be the grid's end: more
  flags only remove picks.) When no margin meets it, the grid's largest.
* **Threshold under fusion**: the threshold only acts where physics is silent (physics "other"
  overrides content; physics classes are chosen among whatever content says), so content alone
  must keep its open-set guarantee there. Keep the card's content threshold unless, on the
  physics-silent series, it rejects under ``metrics.OTHER_REJECTION_BAR`` (90%) of the "other"
  series; then take ``metrics.choose_threshold`` (the bar-first rule) on those series.

Numbers are simulated: they say how the rules behave on the simulator's series and headers, not on
a real archive. ``--write-card`` puts the chosen values into the shipped card's ``"fused"`` section
(the content threshold and the weights are left as they are).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TARGET = 0.95
GRID = tuple(round(0.025 * i, 3) for i in range(21))  # 0.00 … 0.50
T1_BRAIN = ("T1w", "T1wce")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anatomy", default=str(benchlib.ANATOMY), help="label maps the simulator reads ('phantom': built-in)")
    p.add_argument("--val-size", type=int, default=600)
    p.add_argument("--seed", type=int, default=3939, help="validation seed no training run validated on")
    p.add_argument("--header-seed", type=int, default=39, help="seed of the synthetic headers")
    p.add_argument("--val-cache", type=Path, default=benchlib.REPO / "runs" / "valcache")
    p.add_argument("--spread-seeds", type=int, default=5,
                   help="header seeds after --header-seed the margin rule is re-applied with (its spread; not the choice)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="write the result as JSON")
    p.add_argument("--write-card", action="store_true", help="write the chosen values into the shipped card")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------- scoring
def decisions(probs, protocols, threshold: float, header_seed: int, score: str):
    """(content, physics, fused) per series; headers drawn in series order from ``header_seed``;
    content refuses below ``threshold`` on the open-set ``score``."""
    from bidsapp.decide import fuse
    from bidsapp.model.predict import decide
    from bidsapp.physics import witness
    from bidsapp.train.synthetic_header import header_of

    rng = np.random.default_rng(header_seed)
    out = []
    for p, proto in zip(probs, protocols):
        content = decide(p, threshold, score)
        physics = witness(header_of(proto, rng))
        out.append((content, physics, fuse(content, physics)))
    return out


def refuse(rows, margin: float):
    """The fused decisions again at another margin (content and physics unchanged)."""
    from bidsapp.decide import fuse

    return [fuse(c, v, flag_margin=margin) for c, v, _ in rows]


def per_class(truth: list[str], content: list[str], fused: list[str]) -> dict:
    out = {}
    for label in sorted(set(truth), key=truth.index):
        idx = [i for i, t in enumerate(truth) if t == label]
        out[label] = {"n": len(idx), "content": _share(content[i] == label for i in idx),
                      "fused": _share(fused[i] == label for i in idx)}
    return out


def _share(flags) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else None


def choosable(physics) -> bool:
    """Physics allows several target classes: content chooses, and the margin can flag."""
    return len([lab for lab in physics.labels if lab != "other"]) > 1


def margin_row(truth, rows, margin: float) -> dict:
    """Flags and accuracy of the picks content makes among several classes physics allows."""
    fused = refuse(rows, margin)
    idx = [i for i, (_, v, _) in enumerate(rows) if choosable(v)]
    t1 = [i for i in idx if fused[i].label in T1_BRAIN]

    def split(ids):
        flagged = [i for i in ids if fused[i].low_confidence]
        trusted = [i for i in ids if not fused[i].low_confidence]
        return {"n": len(ids), "flagged": len(flagged), "flag_rate": _share(fused[i].low_confidence for i in ids),
                "flagged_right": _share(fused[i].label == truth[i] for i in flagged),
                "unflagged_right": _share(fused[i].label == truth[i] for i in trusted), "unflagged": len(trusted)}

    return {"margin": margin, "choosable": split(idx), "T1w_T1wce": split(t1),
            "flag_rate_all_series": _share(f.low_confidence for f in fused)}


def choose_margin(grid_rows: list[dict]) -> float:
    """The docstring's rule: the smallest margin from which on unflagged picks stay ≥ TARGET right."""
    for k, row in enumerate(grid_rows):
        if all((r["choosable"]["unflagged_right"] or 0.0) >= TARGET for r in grid_rows[k:]):
            return row["margin"]
    return grid_rows[-1]["margin"]


def fused_threshold(probs, truth, rows, content_threshold: float, score: str) -> dict:
    """The docstring's threshold rule, on the series where physics is silent."""
    from bidsapp.train.metrics import OTHER_REJECTION_BAR, choose_threshold, decide_labels

    silent = [i for i, (_, v, _) in enumerate(rows) if v.silent]
    p = np.asarray(probs)[silent]
    t = [truth[i] for i in silent]
    others = [k for k, lab in enumerate(t) if lab == "other"]
    rejected = _share(decide_labels(p, content_threshold, score)[k] == "other" for k in others)
    keep = rejected is None or rejected >= OTHER_REJECTION_BAR
    return {"threshold": content_threshold if keep else choose_threshold(p, t, score=score), "silent_series": len(silent),
            "silent_other": len(others), "silent_other_rejected_at_content_threshold": rejected,
            "bar": OTHER_REJECTION_BAR, "kept_content_threshold": keep}


def summary(truth, rows) -> dict:
    from bidsapp.classes import OTHER

    content = [c.label for c, _, _ in rows]
    fused = [f.label for _, _, f in rows]
    physics = [v for _, v, _ in rows]
    return {
        "n": len(truth),
        "content_accuracy": _share(c == t for c, t in zip(content, truth)),
        "fused_accuracy": _share(f == t for f, t in zip(fused, truth)),
        "physics_silent": _share(v.silent for v in physics),
        "physics_contradicts_truth": sum(bool(v.labels) and t not in v.labels for v, t in zip(physics, truth)),
        "contradictions": dict(Counter(f"{t} ← {v.label}" for v, t in zip(physics, truth)
                                       if v.labels and t not in v.labels)),
        "other_rejected": {"content": _share(c == OTHER for c, t in zip(content, truth) if t == OTHER),
                           "fused": _share(f == OTHER for f, t in zip(fused, truth) if t == OTHER)},
        "decided_by": dict(Counter(f.decided_by for _, _, f in rows)),
        "per_class": per_class(truth, content, fused),
    }


# ------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from bidsapp.model.predict import Classifier
    from bidsapp.train.train import predict_probs
    from bidsapp.train.validation import validation_series
    from bidsapp.volume import SPEC

    torch.set_num_threads(args.threads)
    start = time.time()
    classifier = Classifier.load("cpu")
    stacks, geometry, truth, kinds, protocols = validation_series(args.anatomy, args.val_size, args.seed, SPEC,
                                                                  cache=args.val_cache)
    simulated = time.time() - start
    probs = predict_probs(classifier.network, stacks, geometry, classifier.device)
    threshold, score = classifier.threshold, classifier.open_set_score
    rows = decisions(probs, protocols, threshold, args.header_seed, score)
    grid = [margin_row(truth, rows, m) for m in GRID]
    margin = choose_margin(grid)
    chosen_rows = [(c, v, f) for (c, v, _), f in zip(rows, refuse(rows, margin))]
    result = {
        "command": "python benchmarks/fused_calibration.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "val_size": args.val_size, "seed": args.seed, "header_seed": args.header_seed,
        "content_threshold": threshold, "open_set_score": score, "target_unflagged_right": TARGET,
        "low_margin": margin, "fused_threshold": fused_threshold(probs, truth, rows, threshold, score),
        "at_chosen": summary(truth, chosen_rows), "margin_grid": grid,
        "margin_by_header_seed": {s: choose_margin([margin_row(truth, decisions(probs, protocols, threshold, s, score), m)
                                                    for m in GRID])
                                  for s in range(args.header_seed + 1, args.header_seed + 1 + args.spread_seeds)},
        "by_kind_physics": _by_kind(kinds, truth, rows),
        "seconds": {"simulate_or_read": round(simulated, 1), "total": round(time.time() - start, 1)},
        "machine": benchlib.machine_info(), "model": benchlib.model_identity(),
    }
    _print(result)
    benchlib.write_json(args.json, result)
    if args.write_card:
        write_card(result)
    return 0


def _by_kind(kinds, truth, rows) -> dict:
    """Per simulated kind: how often physics is silent, agrees, or contradicts the label."""
    out = defaultdict(Counter)
    for kind, t, (_, v, _) in zip(kinds, truth, rows):
        out[f"{t}/{kind}"]["silent" if v.silent else ("agrees" if t in v.labels else "contradicts")] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def card_section(result: dict) -> dict:
    """The model card's "fused" section: the chosen values and what they were chosen on."""
    at = result["at_chosen"]
    row = next(r for r in result["margin_grid"] if r["margin"] == result["low_margin"])
    return {
        "low_margin": result["low_margin"], "threshold": result["fused_threshold"]["threshold"],
        "validation": {
            "simulated_with_synthetic_headers": True, "n": at["n"], "seed": result["seed"],
            "header_seed": result["header_seed"], "content_accuracy": at["content_accuracy"],
            "fused_accuracy": at["fused_accuracy"], "physics_silent": at["physics_silent"],
            "other_rejected": at["other_rejected"], "choosable_picks": row["choosable"],
            "T1w_T1wce_picks": row["T1w_T1wce"],
            "low_margin_by_other_header_seeds": result["margin_by_header_seed"],
            "per_class": at["per_class"],
        },
        "choice": {"low_margin_rule": f"smallest margin from which on unflagged picks among classes physics "
                                      f"allows are >= {TARGET:.0%} right", "threshold_rule":
                   "content threshold kept unless it rejects < 90% of simulated 'other' where physics is silent",
                   "command": result["command"], "code_commit": result["machine"].get("git_commit")},
    }


def write_card(result: dict) -> None:
    from bidsapp.model.card import SHIPPED_WEIGHTS, card_path

    path = card_path(SHIPPED_WEIGHTS)
    card = json.loads(path.read_text())
    card["fused"] = card_section(result)
    path.write_text(json.dumps(card, indent=2))  # as rethreshold writes it
    print(f"{path}: fused low_margin {result['low_margin']}, threshold {card['fused']['threshold']}")


def _print(r: dict) -> None:
    at = r["at_chosen"]
    print(f"{at['n']} simulated series, physics silent on {at['physics_silent']:.0%}; "
          f"accuracy content {at['content_accuracy']:.3f} → fused {at['fused_accuracy']:.3f}")
    print(f"{'class':<20}{'n':>5}{'content':>9}{'fused':>8}")
    for label, c in at["per_class"].items():
        print(f"{label:<20}{c['n']:>5}{c['content']:>9.3f}{c['fused']:>8.3f}")
    print(f"\n{'margin':>7}{'picks':>7}{'flag%':>7}{'flagged ok':>11}{'trusted ok':>11}{'T1 flag%':>9}"
          f"{'T1 flagged ok':>14}{'T1 trusted ok':>14}")
    fmt = lambda v: "    -" if v is None else f"{v:.3f}"  # noqa: E731
    for row in r["margin_grid"]:
        c, t = row["choosable"], row["T1w_T1wce"]
        print(f"{row['margin']:>7.3f}{c['n']:>7}{fmt(c['flag_rate']):>7}{fmt(c['flagged_right']):>11}"
              f"{fmt(c['unflagged_right']):>11}{fmt(t['flag_rate']):>9}{fmt(t['flagged_right']):>14}"
              f"{fmt(t['unflagged_right']):>14}")
    print(f"\nchosen LOW_MARGIN {r['low_margin']}; threshold under fusion {r['fused_threshold']}")
    print(f"the rule's margin with other header draws (spread, not the choice): {r['margin_by_header_seed']}")
    print(f"physics contradicting the simulator's label: {at['contradictions']}")


if __name__ == "__main__":
    raise SystemExit(main())
