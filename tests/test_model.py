"""The shipped model: card consistency, size bar, open-set decision, accuracy floor on real data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bidsapp.classes import LABELS, OTHER
from bidsapp.model.predict import DEFAULT_WEIGHTS, Classifier, decide, sha256
from bidsapp.volume import load_dicom, load_nifti

#: Regression floor for the shipped model on the real development set: v0.8.0 measured 0.69 (18/26) on this
#: subset (v0.7.0: 0.65, v0.6.0: 0.54, v0.5.0: 0.42, v0.4.0: 0.38). The bar (>= 95%) is a benchmark in
#: docs/benchmarks.md, not a test; raise this floor whenever a better model ships.
REAL_ACCURACY_FLOOR = 0.65


def test_shipped_weights_match_their_card():
    card = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert card["classes"] == list(LABELS)
    assert card["weights_sha256"] == sha256(DEFAULT_WEIGHTS)
    assert DEFAULT_WEIGHTS.stat().st_size <= 50 * 2**20
    clf = Classifier.load("cpu")
    assert clf.spec.size == card["input"]["size"]


@pytest.mark.parametrize(
    ("best", "threshold", "label", "rejected"),
    [(0.9, 0.5, "FLAIR", False), (0.49, 0.5, OTHER, True), (0.5, 0.5, "FLAIR", False)],
)
def test_open_set_decision(best, threshold, label, rejected):
    """On the score cards up to 0.15.0 were thresholded on (``open_set_score``: max sigmoid)."""
    probs = np.full(len(LABELS), 0.01)
    probs[LABELS.index("FLAIR")] = best
    c = decide(probs, threshold, "max_sigmoid")
    assert (c.label, c.open_set_rejected, c.best_label) == (label, rejected, "FLAIR")
    assert c.confidence == pytest.approx(1 - best if rejected else best, abs=1e-4)
    assert set(c.probabilities) == set(LABELS)


def test_accuracy_floor_on_real_development_set(real_data):
    clf = Classifier.load("cpu")
    rows = list(csv.DictReader(open(real_data / "labels.tsv"), delimiter="\t"))
    small = [r for r in rows if r["format"] == "nifti" or "DTI" not in r["path"]]
    correct = 0
    for r in small:
        path = real_data / r["path"]
        vol = load_dicom(sorted(p for p in path.iterdir() if p.is_file())) if path.is_dir() else load_nifti(path)
        correct += clf.classify(vol).label == r["label"]
    assert correct / len(small) >= REAL_ACCURACY_FLOOR, f"{correct}/{len(small)}"


def test_geometry_prior_starts_silent_so_older_weights_keep_their_outputs():
    """A v0.2 (image-only) network and one with the geometry prior, loaded from the same weights,
    give identical logits until fine-tuning moves the prior; the prior then changes them."""
    import torch

    from bidsapp.model.network import ARCH, SliceStackClassifier

    torch.manual_seed(0)
    old = SliceStackClassifier(len(LABELS), {k: v for k, v in ARCH.items() if k != "geometry_features"}).eval()
    new = SliceStackClassifier(len(LABELS), ARCH).eval()
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("geometry_prior") for k in missing)
    x, g = torch.rand(2, 3, 64, 64), torch.tensor([[1.5, 2.3], [-0.2, 0.0]])
    with torch.no_grad():
        assert torch.allclose(old(x), new(x, g))
        torch.nn.init.normal_(new.geometry_prior[-1].weight)
        assert not torch.allclose(old(x), new(x, g))
    with pytest.raises(ValueError, match="geometry"):
        new(x)


def test_views_of_one_series_average_their_logits():
    """Classifier.probabilities on (V, K, H, W) is the sigmoid of the mean of the views' mirrored
    logits: one view gives exactly the single-stack answer, and the order of views does not matter."""
    import torch

    from bidsapp.model.predict import mirrored_logits

    clf = Classifier.load("cpu")
    rng = np.random.default_rng(3)
    views = rng.random((3, clf.spec.n_slices, clf.spec.size, clf.spec.size)).astype(np.float32)
    geometry = np.log2([1.0, 1.0]).astype(np.float32)
    np.testing.assert_allclose(clf.probabilities(views[:1], geometry), clf.probabilities(views[0], geometry), atol=1e-6)
    logits = mirrored_logits(clf.network, torch.from_numpy(views), torch.from_numpy(np.tile(geometry, (3, 1))))
    expected = torch.sigmoid(logits.mean(dim=0)).numpy()
    np.testing.assert_allclose(clf.probabilities(views, geometry), expected, atol=1e-5)
    np.testing.assert_allclose(clf.probabilities(views[::-1].copy(), geometry), expected, atol=1e-5)
    def logit(p):
        return np.log(p) - np.log1p(-p)
    assert not np.allclose(logit(clf.probabilities(views[0], geometry)), logit(expected), atol=0.05)


def test_shared_classifier_freezes_what_it_loaded_out_of_the_collectors_sight():
    """nipype runs gc.collect() before every dcm2niix; torch and MONAI must not be walked each time."""
    import gc

    from bidsapp.model.predict import shared_classifier

    clf = shared_classifier("cpu")
    assert gc.get_freeze_count() > 100_000  # the modules, the network and its weights
    assert clf is shared_classifier("cpu")


def test_weights_without_their_card_are_a_clear_error(tmp_path):
    import shutil

    lone = tmp_path / "lone.pt"
    shutil.copy(DEFAULT_WEIGHTS, lone)
    with pytest.raises(FileNotFoundError, match="model card not found beside the weights: .*lone.json"):
        Classifier.load("cpu", lone)
