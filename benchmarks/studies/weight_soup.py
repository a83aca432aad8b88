#!/usr/bin/env python3
"""Weight-soup study (issue #41): does the mean of the shipped weights and their fine-tunes name
more real series than the shipped weights, at no simulated cost?

    python benchmarks/studies/weight_soup.py --val-cache runs/valcache \\
        --ingredient runs/v25/mrclass.pt --ingredient runs/v25b/mrclass.pt     # ~10 min on 2 cores

**Question.** Every CPU fine-tune of 0.15.0's weights (sessions 22, 25, 25b) traded real series
and failed its rule, while its simulated accuracy held. Fine-tunes of one start lie in one basin;
their weight mean (a "soup", ``bidsapp.train.soup``) is known to hold up better under a shift of
the input distribution than any ingredient (Wortsman 2022, model soups and WiSE-FT), and the
shift from simulated to real images is this model's whole problem. A soup costs nothing at
inference.

**Candidates (fixed before the run).** ``base`` the shipped weights; each ``--ingredient`` alone
(reported: each already failed its own rule); ``soup`` the uniform mean of the base and every
ingredient; ``wise`` the mean of the base and the first ingredient (WiSE-FT at 0.5; with one
ingredient that is the soup, so not listed twice). Only ``soup`` and ``wise`` can ship, and with
``--ship-ingredients`` an ingredient alone (a training run whose rule allows it). ``--ensemble``
adds logit ensembles (``ensembles``: the mean of the logits of the base and each ingredient, and
of all), scored the same way and never chosen: the package reads one network.

**Scoring.** Every network reads the same cached simulated set (``--seed``, ``--val-size``;
``open_set_study.simulated_set``, protocols kept for its "hard" half, the known series below
their class's median SNR) and the real development set plus the maps derived from its DTI. The
open-set score is the card's (energy), one global threshold by the 90%-of-"other" bar; simulated
columns are cross-fitted out of fold (``open_set_study.cross_fitted``), real columns use the
threshold fitted on the whole set. ``card`` is the shipped card's own threshold, for reference.

**Decision rule (written and committed before the first run).** Against ``base`` (same score,
same rule, same series), a candidate qualifies when
  E1-E3  ``open_set_study.eligible``: simulated "other" refused >= 0.88 and >= base's - 0.02; no
         class without real data loses more than 0.02 simulated sensitivity; known-class accuracy
         not below base's - 0.005. Since session 30 (``--e2 paired``, the default) E2 is: no class
         without real data loses more than max(0.02, 2 paired SE), and their mean loss is at most
         0.01 (``paired_losses``; 0.02 on ~220 series per class is below one SE, so every run
         that moved a phase boundary failed it by chance); ``--e2 fixed`` is the old E2;
  S      hard known-class simulated accuracy not below base's - 0.005;
  R      at least 2 more of the 34 real series (development set + derived maps) named right than
         base, and no fewer of the 8 real "other" refused.
R is the primary criterion, because a soup's promise is robustness to a shift that simulated
data cannot show; with two candidates and a margin of two series, it is not a search over the
development set. Among qualifying candidates the most real series right ships, ties to the
higher hard simulated accuracy. A shipped soup gets its threshold and card from
``mrclass-bids-rethreshold`` like any release; otherwise the weights stay and the result is
written in docs/model.md.

``--write-candidates DIR`` also writes every candidate but the base as ``DIR/<name>/mrclass.pt``
with a card (the base's, at the threshold this study fitted the candidate), so that other probes
(``targeted_probe.py --weights``) and inference read each as a release would be read.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
sys.path.insert(0, str(Path(__file__).resolve().parent))  # studies/

import benchlib  # noqa: E402
from ensemble_probe import add_study_arguments, real_inputs, series_logits, simulated_logits  # noqa: E402
from open_set_study import (NO_REAL_DATA, bar_threshold, cross_fitted, decisions, eligible, fit, hard_mask,  # noqa: E402
                            print_unchecked_sensitivities, real_metrics, simulated_metrics, simulated_set)
from open_set_study import score as raw_score  # noqa: E402  (the study's raw scores; energy: logsumexp)

from bidsapp.classes import LABELS, OTHER  # noqa: E402
from bidsapp.model.card import card_path, read_card  # noqa: E402
from bidsapp.model.predict import DEFAULT_WEIGHTS, Classifier, sha256  # noqa: E402
from bidsapp.train.rethreshold import rethresholded_card  # noqa: E402
from bidsapp.train.soup import soup_state  # noqa: E402

SHIPPABLE = ("soup", "wise")
SCORE, RULE = "energy", "global"


def candidates(base: Path, ingredients: list[Path]) -> dict[str, tuple[list[Path], list[float]]]:
    """Candidate name -> (weights, coefficients) of its network."""
    out = {"base": ([base], [1.0])}
    out |= {f"ingredient:{p.parent.name}": ([p], [1.0]) for p in ingredients}
    members = [base, *ingredients]
    out["soup"] = (members, [1.0 / len(members)] * len(members))
    if len(ingredients) > 1:  # with one ingredient WiSE-FT at 0.5 is the soup
        out["wise"] = ([base, ingredients[0]], [0.5, 0.5])
    return out


def ensembles(ingredients: list[Path]) -> dict[str, list[str]]:
    """Ensemble name -> the candidates whose logits it averages: the base with each ingredient,
    and with all of them when there are several. A weight soup is one network; an ensemble keeps
    each network's reading of a series and costs one pass per member."""
    names = [f"ingredient:{p.parent.name}" for p in ingredients]
    out = {f"ensemble:base+{n.split(':', 1)[1]}": ["base", n] for n in names}
    if len(names) > 1:
        out["ensemble:all"] = ["base", *names]
    return out


def paired_losses(truth: list[str], base: list[str], candidate: list[str]) -> dict:
    """Session 30's E2: per class without real data, the candidate's sensitivity loss against the
    base on the same series, with the paired standard error sqrt(b + c) / n (b, c: series only the
    base, only the candidate names right; McNemar's). A class fails when it loses more than
    max(0.02, 2 SE); the six fail together when their mean loss exceeds 0.01."""
    tr, bp, cp = np.array(truth), np.array(base), np.array(candidate)
    classes = {}
    for lab in NO_REAL_DATA:
        m = tr == lab
        if not m.any():
            continue
        b_right, c_right = bp[m] == lab, cp[m] == lab
        n = int(m.sum())
        loss = float(b_right.mean() - c_right.mean())
        se = float(np.sqrt(np.sum(b_right & ~c_right) + np.sum(c_right & ~b_right)) / n)
        classes[lab] = {"n": n, "loss": round(loss, 4), "se": round(se, 4), "ok": loss <= max(0.02, 2 * se) + 1e-9}
    mean_loss = float(np.mean([c["loss"] for c in classes.values()]))
    return {"classes": classes, "mean_loss": round(mean_loss, 4),
            "ok": all(c["ok"] for c in classes.values()) and mean_loss <= 0.01 + 1e-9}


def qualifies(row: dict, base: dict, real_gain: int = 2, paired_e2: dict | None = None) -> dict[str, bool]:
    """E1-E3, S and R against ``base``; R asks ``real_gain`` more real series right (0: none lost).
    ``paired_e2`` (``paired_losses``) replaces E2's fixed 0.02 per class when given."""
    s, b = row["simulated"], base["simulated"]
    r, q = row["real"], base["real"]
    rules = eligible(s, b)
    if paired_e2 is not None:
        rules["E2"] = paired_e2["ok"]
    return {**rules,
            "S": s["hard_known_accuracy"] >= b["hard_known_accuracy"] - 0.005,
            "R": (r["dev_right"] + r["derived_right"] >= q["dev_right"] + q["derived_right"] + real_gain
                  and r["all_other_refused"] >= q["all_other_refused"])}


def choose(rows: list[dict], ship_ingredients: bool = False) -> dict | None:
    """The rule: among the shippable candidates that qualify, the most real series right."""
    def shippable(name: str) -> bool:
        return name in SHIPPABLE or (ship_ingredients and name.startswith("ingredient:"))

    pool = [r for r in rows if shippable(r["candidate"]) and all(r["qualifies"].values())]
    if not pool:
        return None
    return max(pool, key=lambda r: (r["real"]["dev_right"] + r["real"]["derived_right"],
                                    r["simulated"]["hard_known_accuracy"]))


def scored(name: str, th: np.ndarray, z_sim, z_real, truth, hard, real_truth, real_names, n_dev,
           simulated: dict | None = None) -> dict:
    """A candidate's row: its simulated metrics (``simulated``, or decided at ``th``) and its real
    metrics at ``th`` (per-class thresholds on the raw energy, logsumexp of the logits)."""
    def decide(z: np.ndarray) -> list[str]:
        return decisions(raw_score(SCORE, z, {}), z.argmax(axis=1), th)

    return {"candidate": name, "threshold_logsumexp": round(float(th[0]), 4),
            "simulated": simulated or simulated_metrics(truth, decide(z_sim), hard),
            "real": real_metrics(real_truth, decide(z_real), real_names, n_dev)}


def fitted_row(name: str, z_sim, z_real, truth, hard, real_truth, real_names, n_dev, predicted: dict) -> dict:
    """A candidate scored from its logits: threshold fitted on the whole simulated set for the
    real columns, simulated columns cross-fitted (kept in ``predicted`` for the paired E2)."""
    _, th = fit(SCORE, RULE, z_sim, truth, hard)
    predicted[name] = cross_fitted(SCORE, RULE, z_sim, truth, hard)
    sim = simulated_metrics(truth, predicted[name], hard)
    return scored(name, th, z_sim, z_real, truth, hard, real_truth, real_names, n_dev, sim)


def real_at_bar(z_sim, z_real, truth, real_truth, real_names, n_dev, bar: float) -> dict:
    """Real metrics at the energy threshold that refuses ``bar`` of the simulated "other" (the
    whole set): candidates compared at one open-set operating point, e.g. the card's, so that
    what they name is the network's doing and not the threshold's."""
    s = raw_score(SCORE, z_sim, {})
    th = np.full(len(LABELS), bar_threshold(s[np.array(truth) == OTHER], bar))
    return {"bar": round(bar, 4), "threshold_logsumexp": round(float(th[0]), 4),
            **real_metrics(real_truth, decisions(raw_score(SCORE, z_real, {}), z_real.argmax(axis=1), th),
                           real_names, n_dev)}


def write_candidate(name: str, state: dict[str, torch.Tensor], row: dict, weights: list[Path], out: Path,
                    seed: int) -> Path:
    """``out/<name>/mrclass.pt``: the candidate's (float32) weights as scored, and a card at the
    energy threshold this study fitted it (its ``threshold_logsumexp`` as a probability, the one
    ``mrclass-bids-rethreshold`` would choose on the same set). The card is its last ingredient's
    (the fine-tune's run record and lineage); a soup's training record also lists what was
    averaged (``soup_record``), so a shipped soup says what it is."""
    folder = out / name.replace(":", "-")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "mrclass.pt"
    torch.save(state, target)
    threshold = round(float(1.0 / (1.0 + np.exp(-row["threshold_logsumexp"]))), 4)
    choice = {"study": "weight_soup", "candidate": name, "seed": seed, "ingredients": row["weights"],
              "coefficients": row["coefficients"]}
    source = read_card(weights[-1])
    if len(weights) > 1:
        source = {**source, "training": {**source["training"], "soup": soup_record(weights, row["coefficients"])}}
    card = rethresholded_card(source, threshold, {"open_set_score": SCORE, **row["simulated"]}, choice)
    card_path(target).write_text(json.dumps({**card, "weights_sha256": sha256(target)}, indent=2))
    print(f"  wrote {target} (threshold {threshold})")
    return target


def soup_record(weights: list[Path], coefficients: list[float]) -> list[dict]:
    """Each averaged network: its weights file, SHA256, card version and coefficient."""
    return [{"weights": benchlib.display_path(w), "weights_sha256": sha256(w),
             "version": (read_card(w) or {}).get("version"), "coefficient": c} for w, c in zip(weights, coefficients)]


def print_table(rows: list[dict]) -> None:
    print(f"{'candidate':<22}{'thr':>7}{'sim acc':>8}{'known':>7}{'hard':>7}{'other':>7}{'rules':>10}"
          f"{'dev':>7}{'maps':>6}{'oth':>5}  brain classes (dev)")
    for r in rows:
        s, q = r["simulated"], r["real"]
        rules = "".join("y" if v else "-" for v in r.get("qualifies", {}).values()) or "ref"
        print(f"{r['candidate']:<22}{r['threshold_logsumexp']:>7.3f}{s['accuracy']:>8.3f}{s['known_accuracy']:>7.3f}"
              f"{s['hard_known_accuracy']:>7.3f}{s['other_refused']:>7.3f}{rules:>10}{q['dev_right']:>4}/{q['dev_n']:<2}"
              f"{q['derived_right']:>3}/{q['derived_n']:<2}{q['all_other_refused']:>4}  "
              + " ".join(f"{k} {v}" for k, v in q["per_brain_class"].items()))
    print_unchecked_sensitivities(rows, 22)
    print("\nreal errors:")
    for r in rows:
        print(f"  {r['candidate']}:")
        for e in r["real"]["errors"]:
            print(f"    {e}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(p, val_size=4000, seed=20261261)
    p.add_argument("--ingredient", type=Path, action="append", required=True,
                   help="weights fine-tuned from --weights (repeat); the first is WiSE-FT's partner")
    p.add_argument("--ship-ingredients", action="store_true",
                   help="an ingredient alone may ship too (a run whose own rule says so, e.g. session 27's long run)")
    p.add_argument("--write-candidates", type=Path, metavar="DIR",
                   help="write each candidate's weights and card under DIR/<name>/ (for other probes)")
    p.add_argument("--real-gain", type=int, default=2,
                   help="R: real series right beyond the base's (0 for a run whose rule asks only that none is lost)")
    p.add_argument("--ensemble", action="store_true",
                   help="also score the mean of the logits of the base and each ingredient (and of all), "
                        "``ensembles``; never chosen by the rule (the package reads one network)")
    p.add_argument("--e2", choices=("paired", "fixed"), default="paired",
                   help="E2: a loss beyond max(0.02, 2 paired SE) or a mean loss over 0.01 (session 30 on), "
                        "or any loss over 0.02 (the rules of sessions 27-29)")
    p.set_defaults(json=benchlib.RESULTS / "weight_soup.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    base_path = args.weights or DEFAULT_WEIGHTS
    clf = Classifier.load("cpu", base_path)
    data_root = benchlib.resolve_data(args.data)
    x, g, truth, protocols = simulated_set(args.anatomy, args.val_size, args.seed, args.val_cache, clf.spec)
    hard = hard_mask(truth, protocols)
    inputs, real_truth, real_names, n_dev = real_inputs(data_root, clf.spec, derived=not args.no_derived)
    print(f"{len(truth)} simulated series (seed {args.seed}; {int(hard.sum())} hard known, {truth.count(OTHER)} "
          f"other); {n_dev} development series + {len(real_truth) - n_dev} derived maps; {time.time() - t0:.0f} s",
          flush=True)

    rows, predicted, logits = [], {}, {}
    for name, (weights, coefficients) in candidates(base_path, args.ingredient).items():
        network = copy.deepcopy(clf.network)
        network.load_state_dict(soup_state(weights, coefficients))
        network.eval()
        z_sim = simulated_logits(network, x, g, [1.0])[:, 0]
        z_real = series_logits(network, inputs, [1.0])[:, 0]
        logits[name] = z_sim, z_real
        rows.append(fitted_row(name, z_sim, z_real, truth, hard, real_truth, real_names, n_dev, predicted)
                    | {"weights": [benchlib.display_path(w) for w in weights], "coefficients": coefficients})
        if args.write_candidates and name != "base":
            write_candidate(name, network.state_dict(), rows[-1], weights, args.write_candidates, args.seed)
        if name == "base":  # the shipped card's own threshold (energy as a probability), for reference
            card_th = np.full(len(LABELS), float(np.log(clf.threshold / (1 - clf.threshold))))
            card = scored("card", card_th, z_sim, z_real, truth, hard, real_truth, real_names, n_dev)
        print(f"  {name}: {time.time() - t0:.0f} s", flush=True)
    for name, members in (ensembles(args.ingredient) if args.ensemble else {}).items():
        z_sim, z_real = (np.mean([logits[m][i] for m in members], axis=0) for i in (0, 1))
        logits[name] = z_sim, z_real
        rows.append(fitted_row(name, z_sim, z_real, truth, hard, real_truth, real_names, n_dev, predicted)
                    | {"members": members})
    card_bar = card["simulated"]["other_refused"]  # the share of simulated "other" the card refuses on this set
    for r in rows:
        r["real_at_card_bar"] = real_at_bar(*logits[r["candidate"]], truth, real_truth, real_names, n_dev, card_bar)
    for r in rows[1:]:
        r["e2_paired"] = paired_losses(truth, predicted["base"], predicted[r["candidate"]])
        r["e2_fixed"] = eligible(r["simulated"], rows[0]["simulated"])["E2"]
        r["qualifies"] = qualifies(r, rows[0], args.real_gain, r["e2_paired"] if args.e2 == "paired" else None)
    rows.insert(1, card)

    print_table(rows)
    print(f"\nE2 ({args.e2} decides): loss in sensitivity against the base (paired SE) per class without real data")
    for r in rows[2:]:
        e = r["e2_paired"]
        print(f"  {r['candidate']:<22}" + "  ".join(f"{lab} {c['loss']:+.3f} ({c['se']:.3f})" for lab, c in e["classes"].items())
              + f"  mean {e['mean_loss']:+.3f}; paired {'ok' if e['ok'] else 'fails'}, fixed 0.02 {'ok' if r['e2_fixed'] else 'fails'}")
    print(f"\nreal series right at the card's operating point (each candidate's threshold refusing {card_bar:.1%} "
          "of simulated \"other\", as the card does here):")
    for r in rows:
        if "real_at_card_bar" in r:
            q = r["real_at_card_bar"]
            print(f"  {r['candidate']:<22} {q['dev_right']}/{q['dev_n']} + {q['derived_right']}/{q['derived_n']} maps, "
                  f"real other refused {q['all_other_refused']}")
    chosen = choose(rows, args.ship_ingredients)
    print(f"\ndecision rule: {'ship ' + chosen['candidate'] if chosen else 'no candidate qualifies; the weights stay'}")
    benchlib.write_json(args.json, {"model": {"version": clf.card["version"], "sha256": clf.card["sha256"]},
                                    "val_size": args.val_size, "seed": args.seed, "real_gain": args.real_gain, "e2": args.e2,
                                    "n_hard": int(hard.sum()), "n_other": truth.count(OTHER), "score": SCORE, "rule": RULE,
                                    "chosen": chosen["candidate"] if chosen else None, "candidates": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
