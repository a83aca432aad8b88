"""Evaluation arithmetic: Wilson interval, summary, threshold choice, calibration."""

from __future__ import annotations

import numpy as np

from bidsapp.classes import LABELS
from bidsapp.train.metrics import calibration, choose_threshold, decide_labels, summarise, wilson


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


def test_threshold_separates_confident_known_from_unsure_other():
    probs = np.full((4, len(LABELS)), 0.01)
    probs[0, 0] = probs[1, 2] = 0.95  # confident knowns
    probs[2, 0] = probs[3, 3] = 0.35  # unsure: should be rejected
    truth = [LABELS[0], LABELS[2], "other", "other"]
    th = choose_threshold(probs, truth)
    assert 0.35 < th <= 0.95
    assert decide_labels(probs, th) == truth
    assert calibration(probs, truth)["ece"] >= 0
