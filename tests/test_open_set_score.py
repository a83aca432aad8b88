"""The open-set score: which series are refused as "other", on every path that decides."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.classes import LABELS, OTHER
from bidsapp.model.open_set_score import DEFAULT_SCORE, LEGACY_SCORE, SCORES, card_score, open_set_score
from bidsapp.model.predict import decide
from bidsapp.train.metrics import choose_threshold, decide_labels


def _probs(**named: float) -> np.ndarray:
    p = np.full(len(LABELS), 0.001)
    for label, value in named.items():
        p[LABELS.index(label.replace("_", "-"))] = value
    return p


def test_energy_is_the_summed_odds_and_never_below_the_best_class():
    p = _probs(T1w=0.35, T1wce=0.35)
    odds = (p / (1 - p)).sum()
    assert open_set_score(p, "energy") == pytest.approx(odds / (1 + odds))
    logits = np.log(p / (1 - p))
    assert open_set_score(p, "energy") == pytest.approx(1 / (1 + np.exp(-np.logaddexp.reduce(logits))))
    rng = np.random.default_rng(0)
    many = rng.uniform(0, 1, (200, len(LABELS))) ** 4
    assert np.all(open_set_score(many, "energy") >= open_set_score(many, "max_sigmoid") - 1e-12)
    assert open_set_score(_probs(FLAIR=0.9), "energy") == pytest.approx(0.9, abs=0.02)  # one class holds it all
    assert np.isfinite(open_set_score(_probs(T2w=1.0), "energy")) and open_set_score(_probs(T2w=1.0), "energy") <= 1


def test_an_image_two_classes_share_is_known_to_energy_and_refused_by_max_sigmoid():
    """A T1-weighted image whose contrast agent is in doubt: T1w 0.35, T1wce 0.33."""
    p = _probs(T1w=0.35, T1wce=0.33)
    assert decide(p, 0.4, "max_sigmoid").label == OTHER
    c = decide(p, 0.4, "energy")
    assert (c.label, c.open_set_rejected, c.best_label) == ("T1w", False, "T1w")
    assert c.open_set_score == pytest.approx(open_set_score(p, "energy"), abs=1e-4)
    assert c.confidence == pytest.approx(0.35, abs=1e-4)  # the named class's probability, as before
    nothing = _probs(SWI=0.05)
    assert decide(nothing, 0.4, "energy").label == OTHER  # low evidence everywhere stays "other"


def test_batch_decisions_and_threshold_choice_use_the_same_score():
    probs = np.stack([_probs(T1w=0.35, T1wce=0.33), _probs(FLAIR=0.9), _probs(SWI=0.05), _probs(DWI=0.3)])
    assert decide_labels(probs, 0.4, "max_sigmoid") == [OTHER, "FLAIR", OTHER, OTHER]
    assert decide_labels(probs, 0.4, "energy") == ["T1w", "FLAIR", OTHER, OTHER]
    for score in SCORES:
        assert decide_labels(probs, 0.4, score) == [decide(p, 0.4, score).label for p in probs]
    truth = ["T1w", "FLAIR", OTHER, OTHER]
    th = choose_threshold(probs, truth, score="energy")
    assert decide_labels(probs, th, "energy") == truth


def test_cards_name_their_score_and_old_cards_read_as_max_sigmoid():
    assert card_score({"threshold": 0.4}) == LEGACY_SCORE == "max_sigmoid"
    assert card_score({"threshold": 0.42, "open_set_score": "energy"}) == "energy" == DEFAULT_SCORE
    with pytest.raises(ValueError, match="unknown open-set score"):
        open_set_score(_probs(T1w=0.5), "softmax")
