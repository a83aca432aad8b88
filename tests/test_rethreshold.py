"""Re-thresholding: a trained model's card gets a threshold chosen on a new simulated set, its
weights stay byte for byte what training wrote."""

from __future__ import annotations

import json

import pytest

from bidsapp import __version__
from bidsapp.model.predict import Classifier, sha256
from bidsapp.train import rethreshold, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train.main(["--anatomy", "phantom", "--out", str(out), "--steps", "1", "--batch", "2",
                       "--train-slices", "2", "--val-size", "4", "--workers", "0", "--threads", "1",
                       "--minutes", "1"]) == 0
    return out / "mrclass.pt"


def test_rethreshold_rewrites_the_card_and_copies_the_weights_unchanged(trained, tmp_path):
    before = json.loads(trained.with_suffix(".json").read_text())
    out = tmp_path / "release"
    assert rethreshold.main([str(trained), "--anatomy", "phantom", "--val-size", "10", "--seed", "7",
                             "--out", str(out), "--threads", "1"]) == 0
    card = json.loads((out / "mrclass.json").read_text())
    assert sha256(out / "mrclass.pt") == before["weights_sha256"] == card["weights_sha256"]
    assert card["version"] == __version__
    assert card["validation_simulated"]["n"] == 10 != before["validation_simulated"]["n"]
    assert card["validation_simulated"]["threshold"] == card["threshold"]
    assert card["threshold_choice"]["previous_threshold"] == before["threshold"]
    assert card["threshold_choice"]["seed"] == 7
    assert card["training"] == before["training"]
    assert Classifier.load("cpu", out / "mrclass.pt").threshold == card["threshold"]


def test_rethreshold_refuses_a_card_that_describes_other_weights(trained, tmp_path):
    weights = tmp_path / "mrclass.pt"
    weights.write_bytes(trained.read_bytes() + b"\0")
    weights.with_suffix(".json").write_text(trained.with_suffix(".json").read_text())
    with pytest.raises(SystemExit, match="other weights"):
        rethreshold.main([str(weights), "--anatomy", "phantom", "--seed", "7", "--out", str(tmp_path / "x")])


def test_a_new_threshold_or_score_drops_the_fused_calibration_made_at_the_old_one():
    card = {"threshold": 0.4, "open_set_score": "energy", "fused": {"low_margin": 0.2, "threshold": 0.4}}
    assert "fused" not in rethreshold.rethresholded_card(card, 0.45, {}, {})
    assert rethreshold.rethresholded_card(card, 0.4, {}, {})["fused"] == card["fused"]
    legacy = {k: v for k, v in card.items() if k != "open_set_score"}  # a card up to 0.15.0: max sigmoid
    new = rethreshold.rethresholded_card(legacy, 0.4, {"open_set_score": "energy"}, {})
    assert "fused" not in new and new["open_set_score"] == "energy"
