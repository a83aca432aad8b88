"""The open-set score: how much a series looks like *any* known class. Below the model card's
threshold the series is "other" (never forced into the least-bad class).

Every one-vs-all head gives its class's odds p / (1 - p). ``max_sigmoid`` reads the best class
alone, so an image two classes both claim at 0.35 (a T1-weighted image whose contrast agent is in
doubt) is refused although it plainly is a kind the model knows. ``energy`` reads them all: the
summed odds S of the known classes as a probability, S / (1 + S) = sigmoid(logsumexp(logits)),
the free energy of Liu et al. 2020 ("Energy-based out-of-distribution detection") on a 0-1
scale. It is never below ``max_sigmoid`` and equals it when one class holds all the evidence.
On 4000 simulated series, at the same 90% refusal of simulated "other", it refused 4.4% of
known-class series where ``max_sigmoid`` refused 7.2% (docs/model.md, session 26).

Training, re-thresholding and inference read the score from one place: a card names its
``open_set_score``; cards without one (up to 0.15.0) were thresholded on ``max_sigmoid``.
"""

from __future__ import annotations

import numpy as np

#: Probabilities are clipped below 1 so that a saturated head gives large, finite odds.
_P_MAX = 1.0 - 1e-7


def _max_sigmoid(probs: np.ndarray) -> np.ndarray:
    return probs.max(axis=-1)


def _energy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 0.0, _P_MAX)
    odds = (p / (1.0 - p)).sum(axis=-1)
    return odds / (1.0 + odds)


#: Score name -> (..., classes) probabilities -> (...) score in [0, 1].
SCORES = {"max_sigmoid": _max_sigmoid, "energy": _energy}
#: The score new thresholds are chosen on (training, ``mrclass-bids-rethreshold``).
DEFAULT_SCORE = "energy"
#: What a card that names no score was thresholded on.
LEGACY_SCORE = "max_sigmoid"


def open_set_score(probs: np.ndarray, name: str = DEFAULT_SCORE) -> np.ndarray:
    """The ``name`` score of one (classes,) or many (n, classes) rows of probabilities."""
    if name not in SCORES:
        raise ValueError(f"unknown open-set score {name!r}; known: {', '.join(SCORES)}")
    return SCORES[name](np.asarray(probs, dtype=np.float64))


def card_score(card: dict | None) -> str:
    """The score a model card's threshold is on."""
    return (card or {}).get("open_set_score", LEGACY_SCORE)
