"""Evaluation arithmetic: Wilson interval, summary, threshold choice, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.classes import LABELS
from bidsapp.train.metrics import calibration, choose_threshold, decide_labels, ranking, summarise, wilson


def test_wilson_interval_matches_reference_values():
    lo, hi = wilson(95, 100)
    assert abs(lo - 0.8883) < 1e-3 and abs(hi - 0.9785) < 1e-3
    assert wilson(0, 0) == (0.0, 1.0)


def test_summary_counts_sensitivity_and_rejection():
    truth = ["T1w", "T1w", "FLAIR", "other", "other"]
    pred = ["T1w", "T2w", "FLAIR", "other", "T1w"]
    s = summarise(truth, pred)
    assert s["accuracy"] == 0.6
    assert s["per_class"]["T1w"]["sensitivity"] == 0.5
    assert s["other_rejected"] == 0.5
    assert s["confusion"]["T1w"]["T2w"] == 1


def test_ranking_tells_refusals_with_a_right_guess_from_wrong_guesses():
    truth = ["T1w", "T1w", "FLAIR", "other", "other", "T2w"]
    pred = ["T1w", "other", "other", "other", "T1w", "FLAIR"]
    best = ["T1w", "T1w", "T2w", "SWI", "T1w", "FLAIR"]
    assert ranking(truth, pred, best) == {"known": 4, "best_class_right": 2, "errors": 4, "refused_with_right_best": 1}


def test_threshold_separates_confident_known_from_unsure_other():
    probs = np.full((4, len(LABELS)), 0.01)
    probs[0, 0] = probs[1, 2] = 0.95  # confident knowns
    probs[2, 0] = probs[3, 3] = 0.35  # unsure: should be rejected
    truth = [LABELS[0], LABELS[2], "other", "other"]
    th = choose_threshold(probs, truth)
    assert 0.35 < th <= 0.95
    assert decide_labels(probs, th) == truth
    assert calibration(probs, truth)["ece"] >= 0


def test_threshold_meets_the_rejection_bar_before_it_buys_accuracy():
    """Ten "other" series with best probabilities 0.30..0.75 and ten known ones at 0.5..0.95: the
    balanced rule would accept some "other" to gain knowns; the bar (90% rejected) comes first."""
    n = len(LABELS)
    other_best = np.linspace(0.30, 0.75, 10)
    known_best = np.linspace(0.50, 0.95, 10)
    probs = np.full((20, n), 0.01)
    probs[:10, 1] = other_best
    probs[10:, 0] = known_best
    truth = ["other"] * 10 + [LABELS[0]] * 10
    th = choose_threshold(probs, truth)
    rejected = np.mean(other_best < th)
    assert rejected >= 0.9
    assert th == pytest.approx(0.7, abs=0.03)  # the lowest threshold that rejects 9 of 10 "other"
    assert choose_threshold(probs, truth, bar=0.5) < th  # a looser bar buys accuracy
