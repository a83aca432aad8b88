#!/usr/bin/env python3
"""How strict should the open-set bar on *simulated* "other" be? (issue 41, lever 1; session 36)

    python benchmarks/studies/open_set_bar.py --val-cache runs/valcache            # ~5 min per model
    python benchmarks/studies/open_set_bar.py --val-cache runs/valcache \\
        --weights runs/base016.pt --weights runs/base017.pt --weights runs/base018.pt \\
        --json benchmarks/results/open_set_bar.json

A model's open-set threshold is the lowest that refuses ``bar`` of the simulated "other" series
(``metrics.choose_threshold``, training's rule). For every ``--weights`` and every ``--bars``
value this prints the threshold it gives on one simulated set (``--val-size``, ``--seed``; the
cached judgement set of sessions 34-35 by default) and what it does there (simulated "other"
refused, known series refused, accuracy) and on the real series (development set plus the maps
derived from its DTI; real "other" refused).

Two checks say whether the real numbers are more than a fit to 34 series:

* **Leave one source out.** For each source of ``labels.tsv`` (a derived map goes with its DTI),
  the bar that names the most real series of the *other* sources, every real "other" of theirs
  still refused (ties to the stricter bar), is applied to the held-out source; the held-out
  results are summed. Compared with the fixed bar ``REFERENCE`` (0.90, the bar up to 0.19.0).
* **A shift model.** If real series sat below simulated ones by one amount whatever their kind,
  the bar should be met on simulated "other" moved down by that amount. The amount is the median,
  over real known series, of their log-sum-exp of logits less the median of simulated series of
  their class; the script prints the threshold that model implies and how many real "other" it
  would name (session 36: half of them, so real "other" do not shift like real known series).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit, logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
sys.path.insert(0, str(Path(__file__).resolve().parent))  # studies/

import benchlib  # noqa: E402
from ensemble_probe import (add_real_set_arguments, add_simulated_set_arguments, real_inputs, series_logits,  # noqa: E402
                            simulated_logits)
from open_set_study import simulated_set  # noqa: E402

from bidsapp.classes import OTHER  # noqa: E402
from bidsapp.model.predict import Classifier  # noqa: E402
from bidsapp.train.metrics import choose_threshold, decide_labels  # noqa: E402

BARS = (0.80, 0.825, 0.85, 0.875, 0.90)
REFERENCE = 0.90


def outcomes(z: np.ndarray, threshold: float, score: str) -> list[str]:
    """Decisions for logits ``z`` at ``threshold`` on the open-set ``score``."""
    return decide_labels(expit(z), threshold, score)


def simulated_row(z: np.ndarray, truth: list[str], threshold: float, score: str) -> dict:
    pred, tr = np.array(outcomes(z, threshold, score)), np.array(truth)
    other = tr == OTHER
    return {"other_refused": round(float(np.mean(pred[other] == OTHER)), 4),
            "known_refused": round(float(np.mean(pred[~other] == OTHER)), 4),
            "known_accuracy": round(float(np.mean(pred[~other] == tr[~other])), 4),
            "accuracy": round(float(np.mean(pred == tr)), 4)}


def real_row(right: np.ndarray, truth: list[str], n_dev: int) -> dict:
    other = np.array(truth) == OTHER
    return {"right": int(right.sum()), "n": len(right), "dev_right": int(right[:n_dev].sum()), "dev_n": n_dev,
            "maps_right": int(right[n_dev:].sum()), "other_refused": int(right[other].sum()), "other_n": int(other.sum())}


def leave_one_source_out(right_by_bar: dict[float, np.ndarray], truth: list[str], sources: list[str]) -> dict:
    """Held-out totals when each source's bar is chosen on the other sources (docstring)."""
    other = np.array(truth) == OTHER
    folds, total = [], 0
    for source in sorted(set(sources)):
        held = np.array([s == source for s in sources])
        train = ~held

        def refuses_all_other(bar):
            return bool(right_by_bar[bar][train & other].all())

        allowed = [b for b in right_by_bar if refuses_all_other(b)] or [max(right_by_bar)]
        bar = max(allowed, key=lambda b: (int(right_by_bar[b][train].sum()), b))
        got = int(right_by_bar[bar][held].sum())
        total += got
        folds.append({"source": source, "bar": bar, "right": got, "n": int(held.sum())})
    return {"right": total, "n": len(truth), "folds": folds}


def shift_model(z_sim, sim_truth, z_real, real_truth, score_threshold_lse: float) -> dict:
    """The threshold a uniform real-versus-simulated shift implies, and the real "other" it names."""
    lse_sim, lse_real = logsumexp(z_sim, axis=1), logsumexp(z_real, axis=1)
    sim_truth, real_truth = np.array(sim_truth), np.array(real_truth)
    medians = {c: float(np.median(lse_sim[sim_truth == c])) for c in set(sim_truth) if c != OTHER}
    known = [i for i, t in enumerate(real_truth) if t != OTHER and t in medians]
    shift = float(np.median([lse_real[i] - medians[real_truth[i]] for i in known]))
    threshold = float(expit(score_threshold_lse + shift))
    other = real_truth == OTHER
    return {"median_shift_logits": round(shift, 3), "implied_energy_threshold": round(threshold, 4),
            "real_other_named": int(np.sum(expit(lse_real[other]) >= threshold)), "real_other_n": int(other.sum())}


def study(clf: Classifier, sim, real, bars, sources) -> dict:
    x, g, sim_truth = sim
    inputs, real_truth, names, n_dev = real
    z_sim = simulated_logits(clf.network, x, g, [1.0])[:, 0]
    z_real = series_logits(clf.network, inputs, [1.0])[:, 0]
    score = clf.open_set_score
    rows, right_by_bar = [], {}
    for bar in bars:
        th = choose_threshold(expit(z_sim), sim_truth, bar=bar, score=score)
        right = np.array([p == t for p, t in zip(outcomes(z_real, th, score), real_truth)])
        right_by_bar[bar] = right
        rows.append({"bar": bar, "threshold": th, "simulated": simulated_row(z_sim, sim_truth, th, score),
                     "real": real_row(right, real_truth, n_dev)})
    reference_lse = float(np.quantile(logsumexp(z_sim[np.array(sim_truth) == OTHER], axis=1), REFERENCE))
    refused = {bar: [n for n, r, t in zip(names, right_by_bar[bar], real_truth) if t != OTHER and not r]
               for bar in bars}
    return {"model": {"version": clf.card["version"], "sha256": clf.card["sha256"][:12], "score": score},
            "bars": rows, "leave_one_source_out": leave_one_source_out(right_by_bar, real_truth, sources),
            "reference_bar": REFERENCE,
            "reference_right": int(right_by_bar[REFERENCE].sum()) if REFERENCE in right_by_bar else None,
            "shift_model": shift_model(z_sim, sim_truth, z_real, real_truth, reference_lse),
            "real_known_wrong": refused}


def print_study(r: dict) -> None:
    m = r["model"]
    print(f"\nmodel {m['version']} ({m['sha256']}, {m['score']})")
    print("  bar    threshold  sim other refused  sim known refused  sim known acc  sim acc   real right  dev   maps  real other refused")
    for row in r["bars"]:
        s, q = row["simulated"], row["real"]
        print(f"  {row['bar']:.3f}  {row['threshold']:.3f}      {s['other_refused']:.3f}              {s['known_refused']:.3f}"
              f"              {s['known_accuracy']:.3f}          {s['accuracy']:.3f}     {q['right']:2d}/{q['n']}     "
              f"{q['dev_right']:2d}/{q['dev_n']}  {q['maps_right']}/{q['n'] - q['dev_n']}   {q['other_refused']}/{q['other_n']}")
    cv = r["leave_one_source_out"]
    print(f"  leave one source out: {cv['right']} of {cv['n']} (fixed bar {r['reference_bar']}: {r['reference_right']});"
          " bars chosen: " + ", ".join(f"{f['source']} {f['bar']}" for f in cv["folds"]))
    sm = r["shift_model"]
    print(f"  uniform shift model: real known {sm['median_shift_logits']:+.2f} logits from simulated -> threshold "
          f"{sm['implied_energy_threshold']:.3f}, naming {sm['real_other_named']} of {sm['real_other_n']} real \"other\"")


def source_of(names: list[str], rows: list[dict]) -> list[str]:
    """The ``source_repo`` of every real series; a derived map ("<path> [ADC map]") takes its DTI's."""
    by_path = {r["path"]: r.get("source_repo") or r["path"] for r in rows}
    return [by_path[n.split(" [")[0]] for n in names]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, action="append", help="model weights (repeat; default: the shipped model)")
    add_simulated_set_arguments(p, val_size=4000, seed=20261261)
    p.add_argument("--bars", type=float, nargs="+", default=list(BARS))
    add_real_set_arguments(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = benchlib.resolve_data(args.data)
    weights = args.weights or [None]
    x, g, labels, _ = simulated_set(args.anatomy, args.val_size, args.seed, args.val_cache)
    spec = Classifier.load("cpu", weights[0]).spec
    inputs, truth, names, n_dev = real_inputs(data, spec, derived=not args.no_derived)
    sources = source_of(names, benchlib.read_labels(data))
    results = []
    for w in weights:
        clf = Classifier.load("cpu", w)
        results.append(study(clf, (x, g, labels), (inputs, truth, names, n_dev), sorted(args.bars), sources))
        print_study(results[-1])
    benchlib.write_json(args.json, {"val_size": args.val_size, "seed": args.seed, "bars": sorted(args.bars),
                                    "models": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
