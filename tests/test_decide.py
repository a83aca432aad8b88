"""The fused decision (bidsapp.decide): physics rules classes out, content chooses, text never decides."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.classes import LABELS, OTHER
from bidsapp.decide import fuse
from bidsapp.model.predict import decide as content_decision
from bidsapp.physics import witness
from bidsapp.records import HeaderFacts

THRESHOLD = 0.4


def content(**probs: float):
    """The content witness' verdict for these class probabilities (others 0.01), refused when the
    best one is under ``THRESHOLD`` (max sigmoid: the fusion's cases are written in its terms)."""
    p = np.array([probs.get(label.replace("-", "_"), 0.01) for label in LABELS], dtype=float)
    return content_decision(p, THRESHOLD, "max_sigmoid")


# Scanner-written headers, one per kind (physics only; descriptions are added by the tests).
ADC_MAP = HeaderFacts(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), scanning_sequence="EP",
                      body_part="BRAIN")
TRACEW = HeaderFacts(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"), scanning_sequence="EP",
                     b_values=(1000.0,), body_part="PROSTATE")
FIELD_MAP = HeaderFacts(manufacturer="SIEMENS", sequence_name="*fm2d2r", scanning_sequence="GR",
                        echo_times=(4.92, 7.38), image_type=("ORIGINAL", "PRIMARY", "M", "ND"))
LOCALIZER = HeaderFacts(scanning_sequence="GR", sequence_variant="SP", repetition_time=8.6, echo_times=(4.0,),
                        flip_angle=20, n_orientations=3, image_type=("ORIGINAL", "PRIMARY", "M"))
MPRAGE = HeaderFacts(manufacturer="SIEMENS", sequence_name="*tfl3d1_16", scanning_sequence="GR\\IR",
                     sequence_variant="SK\\SP\\MP", mr_acquisition_type="3D", repetition_time=2300,
                     echo_times=(2.3,), inversion_time=900, flip_angle=8, receive_coil="HEADNECK_20")
NO_PHYSICS = HeaderFacts(image_type=("DERIVED", "SECONDARY"))


@pytest.mark.parametrize(("facts", "expected"), [
    (ADC_MAP, "ADC"), (TRACEW, "body-DWI"), (FIELD_MAP, OTHER), (LOCALIZER, OTHER),
])
def test_a_header_that_names_the_series_decides_when_content_hesitates(facts, expected):
    hesitant = content(T2w=0.2, DWI=0.15, ADC=0.1, body_DWI=0.05)  # refused: nothing reaches 0.4
    assert hesitant.label == OTHER
    decision = fuse(hesitant, witness(facts))
    assert decision.label == expected
    assert decision.decided_by == ("content+physics" if expected == OTHER else "physics")  # both refuse, or physics names it
    assert decision.content_label == OTHER  # the content witness is kept beside the decision


def test_physics_other_wins_over_a_confident_content_class():
    decision = fuse(content(DWI=0.9), witness(FIELD_MAP))
    assert (decision.label, decision.decided_by) == (OTHER, "physics")
    assert "field map" in decision.reason


def test_content_other_with_physics_silent_stays_other():
    refused = content(T1w=0.2)
    assert witness(NO_PHYSICS).silent
    decision = fuse(refused, witness(NO_PHYSICS))
    assert decision.label == OTHER and decision.decided_by == "content"


@pytest.mark.parametrize("probs", [dict(T1w=0.9), dict(T1wce=0.8, T1w=0.1), dict(FLAIR=0.7), dict(T1wce=0.3)])
def test_without_physics_the_decision_is_the_content_decision(probs):
    c = content(**probs)
    for decision in (fuse(c, witness(NO_PHYSICS)), fuse(c, witness(MPRAGE), "content")):
        assert (decision.label, decision.confidence, decision.open_set_rejected) == (c.label, c.confidence, c.open_set_rejected)
        assert decision.decided_by == "content"


@pytest.mark.parametrize(("probs", "expected", "by"), [
    (dict(T1wce=0.85, T1w=0.1), "T1wce", "content+physics"),
    (dict(T1w=0.7, T1wce=0.2), "T1w", "content+physics"),
    (dict(T1w=0.25, T1wce=0.05, T2w=0.1), "T1w", "physics"),  # refused, lifted: content picks the T1 class
    (dict(T1wce=0.3, T1w=0.05, DWI=0.2), "T1wce", "physics"),
    (dict(T2w=0.9, T1w=0.05), "T1w", "physics"),  # content's T2w is ruled out by the acquisition
])
def test_a_t1_weighted_acquisition_is_t1w_or_t1wce_by_content(probs, expected, by):
    decision = fuse(content(**probs), witness(MPRAGE))
    assert (decision.label, decision.decided_by) == (expected, by)


def test_a_small_t1w_t1wce_margin_is_flagged_not_trusted():
    close = fuse(content(T1w=0.30, T1wce=0.27), witness(MPRAGE), flag_margin=0.10)
    assert close.label in ("T1w", "T1wce") and close.low_confidence
    clear = fuse(content(T1w=0.30, T1wce=0.05), witness(MPRAGE), flag_margin=0.10)
    assert not clear.low_confidence


def test_the_margin_is_the_shipped_cards_calibrated_one():
    """decide.LOW_MARGIN is what benchmarks/fused_calibration.py wrote into the card's "fused"
    section, beside (not instead of) the content threshold; a card without one gets the default."""
    from bidsapp import decide
    from bidsapp.model.card import SHIPPED_WEIGHTS, read_card

    card = read_card(SHIPPED_WEIGHTS)
    assert decide.LOW_MARGIN == card["fused"]["low_margin"]
    assert 0 < card["fused"]["threshold"] < 1 and 0 < card["threshold"] < 1  # two thresholds, kept apart
    assert decide.low_margin({"threshold": 0.4}) == decide.low_margin(None) == decide.DEFAULT_LOW_MARGIN
    assert decide.low_margin({"fused": {"low_margin": 0.2}}) == 0.2


def test_fuse_flags_by_the_module_margin_unless_given_one(monkeypatch):
    from bidsapp import decide

    c = content(T1w=0.60, T1wce=0.45)  # margin 0.15
    monkeypatch.setattr(decide, "LOW_MARGIN", 0.2)
    assert fuse(c, witness(MPRAGE)).low_confidence
    assert not fuse(c, witness(MPRAGE), flag_margin=0.1).low_confidence
    monkeypatch.setattr(decide, "LOW_MARGIN", 0.1)
    assert not fuse(c, witness(MPRAGE)).low_confidence


def test_the_disagreement_between_witnesses_is_recorded():
    from bidsapp.decide import disagree

    decision = fuse(content(T2w=0.9), witness(MPRAGE))
    assert disagree(decision) and decision.content_label == "T2w" and decision.physics_label == "T1w|T1wce"
    assert not disagree(fuse(content(T1w=0.9), witness(MPRAGE)))


@pytest.mark.parametrize("description", ["T2 FLAIR AX", "ADC", "abdomen liver arterial", "localizer", ""])
def test_a_lying_description_changes_nothing(description):
    c = content(T1w=0.25, T1wce=0.05)
    honest = fuse(c, witness(MPRAGE))
    from dataclasses import replace

    lied = replace(MPRAGE, series_description=description, protocol_name=description, contrast_agent="Gadovist")
    assert fuse(c, witness(lied)) == honest


def test_decide_by_must_be_known():
    with pytest.raises(ValueError):
        fuse(content(T1w=0.9), witness(MPRAGE), "text")
