"""One decision from two witnesses: image content (the CNN) and acquisition physics.

Physics rules classes out; content chooses among what is left (ARCHITECTURE.md section 2):

* physics silent, or ``--decide-by content``: the content decision as it is;
* physics says "other" (field map, localizer, BOLD, ASL, PD reference, derived map): "other";
* content's label is one physics allows: that label, carried by both;
* otherwise (content refused, or named a class physics rules out): the allowed class content
  finds most likely, carried by physics. Where physics allows several classes of one kind
  (T1w or T1wce; a body T1w phase; body T2w with or without fat saturation) content must choose,
  and a margin below ``LOW_MARGIN`` between its first two choices is flagged, not trusted (so
  is a lift onto a class content gives under half its threshold). ``LOW_MARGIN`` comes from the
  shipped model card's ``"fused"`` section, chosen on simulated series with synthetic headers
  (``benchmarks/fused_calibration.py``); a card without one gets ``DEFAULT_LOW_MARGIN``.

Typed text (SeriesDescription, ProtocolName, file names) is no witness here: it never decides.
"""

from __future__ import annotations

from dataclasses import replace

from bidsapp.classes import OTHER
from bidsapp.model.card import SHIPPED_WEIGHTS, read_card
from bidsapp.physics import PhysicsVerdict
from bidsapp.records import Classification

DECIDE_BY = ("both", "content")
#: Between two classes physics allows, content probabilities closer than this are a coin toss:
#: the margin of a model card without a "fused" section (the value before it was calibrated).
DEFAULT_LOW_MARGIN = 0.10


def low_margin(card: dict | None) -> float:
    """The card's calibrated margin (``card["fused"]["low_margin"]``), else ``DEFAULT_LOW_MARGIN``."""
    return float(((card or {}).get("fused") or {}).get("low_margin", DEFAULT_LOW_MARGIN))


#: The margin ``fuse`` applies: the shipped model's (the App and the heuristic run only that model).
LOW_MARGIN = low_margin(read_card(SHIPPED_WEIGHTS))


def _with_witnesses(content: Classification, physics: PhysicsVerdict) -> Classification:
    return replace(content, content_label=content.label, physics_label=physics.label,
                   physics_reasons=tuple(physics.reasons), physics_fields=dict(physics.fields),
                   physics_kind=physics.kind,
                   decided_by="content", low_confidence=False)


def fuse(content: Classification, physics: PhysicsVerdict, decide_by: str = "both",
         flag_margin: float | None = None) -> Classification:
    """The decision for one series from its content classification and physics testimony;
    ``flag_margin`` replaces ``LOW_MARGIN`` (calibration tries several)."""
    if decide_by not in DECIDE_BY:
        raise ValueError(f"decide_by must be one of {DECIDE_BY}, got {decide_by!r}")
    record = _with_witnesses(content, physics)
    if decide_by == "content" or physics.silent:
        return record
    allowed = physics.labels
    p = content.probabilities
    if allowed == (OTHER,):
        agreed = content.label == OTHER
        return replace(record, label=OTHER, open_set_rejected=True,
                       confidence=content.confidence if agreed else round(1.0 - p.get(content.best_label, 0.0), 4),
                       decided_by="content+physics" if agreed else "physics",
                       reason="; ".join(filter(None, (content.reason, f"acquisition physics: {physics.reasons[0]}"))))
    ranked = sorted(allowed, key=lambda label: p.get(label, 0.0), reverse=True)
    margin = p.get(ranked[0], 0.0) - (p.get(ranked[1], 0.0) if len(ranked) > 1 else 0.0)
    low = len(ranked) > 1 and margin < (LOW_MARGIN if flag_margin is None else flag_margin)
    if content.label in allowed:
        return replace(record, decided_by="content+physics", low_confidence=low)
    pick = ranked[0]
    # lifted into a kind content must choose within, on an image that hardly looks like it
    faint = len(ranked) > 1 and p.get(pick, 0.0) < content.threshold / 2
    return replace(record, label=pick, confidence=round(p.get(pick, 0.0), 4), open_set_rejected=False,
                   decided_by="physics", reason="", low_confidence=low or faint)


def disagree(c: Classification) -> bool:
    """Strong disagreement: content named a class (above its threshold) that the decision is not."""
    return c.content_label not in ("", OTHER) and c.content_label != c.label and c.decided_by != "person"
