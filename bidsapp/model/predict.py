"""Inference: load the shipped weights and model card, classify volumes, decide open-set "other"."""

from __future__ import annotations

import functools
import gc
import hashlib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..classes import LABELS, OTHER
from ..records import Classification, Volume
from ..timeseries import time_series_reason
from ..volume import InputSpec, network_inputs, to_network_input, volume_geometry
from .card import card_path, read_card
from .network import SliceStackClassifier
from .open_set_score import DEFAULT_SCORE, card_score, open_set_score

WEIGHTS_DIR = Path(str(resources.files("bidsapp.model") / "weights"))
DEFAULT_WEIGHTS = WEIGHTS_DIR / "mrclass.pt"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but no CUDA device is available")
    return torch.device(device)


@torch.inference_mode()
def mirrored_logits(network: SliceStackClassifier, stacks: torch.Tensor,
                    geometry: torch.Tensor | None = None) -> torch.Tensor:
    """(B, K, H, W) [+ (B, F) geometry] → (B, classes) logits averaged over each stack and its
    left-right mirror.

    Training mirrors too; the pair is a cheap ensemble that removes any preference for one
    hemisphere's appearance. Training's threshold choice uses this same function."""
    was_training = network.training
    network.eval()
    b = stacks.shape[0]
    logits = network(torch.cat([stacks, torch.flip(stacks, dims=[3])]),
                     None if geometry is None else torch.cat([geometry, geometry]))
    network.train(was_training)
    return (logits[:b] + logits[b:]) / 2


def decide(probabilities: np.ndarray, threshold: float, score: str = DEFAULT_SCORE) -> Classification:
    """Best class, or "other" when the open-set ``score`` of the probabilities (``open_set_score``) is
    below ``threshold``."""
    probs = {label: round(float(p), 4) for label, p in zip(LABELS, probabilities)}
    best = int(np.argmax(probabilities))
    p_best = float(probabilities[best])
    known = float(open_set_score(probabilities, score))
    rejected = known < threshold
    return Classification(
        label=OTHER if rejected else LABELS[best],
        confidence=round(1.0 - p_best if rejected else p_best, 4),
        probabilities=probs,
        open_set_rejected=rejected,
        threshold=threshold,
        best_label=LABELS[best],
        open_set_score=round(known, 4),
    )


def reject(decision: Classification, reason: str) -> Classification:
    """``decision`` turned into "other" for ``reason``, its probabilities kept for the record."""
    p_best = decision.probabilities.get(decision.best_label, 0.0)
    return replace(decision, label=OTHER, confidence=round(1.0 - p_best, 4), open_set_rejected=True, reason=reason)


@dataclass
class Classifier:
    """A loaded model. ``card`` is the model card (classes, input spec, threshold, provenance)."""

    network: SliceStackClassifier
    card: dict
    spec: InputSpec
    device: torch.device

    @classmethod
    def load(cls, device: str = "auto", weights: str | Path | None = None) -> "Classifier":
        weights = Path(weights) if weights else DEFAULT_WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(f"model weights not found: {weights}")
        card = read_card(weights)
        if card is None:
            raise FileNotFoundError(f"model card not found beside the weights: {card_path(weights)}")
        if tuple(card["classes"]) != LABELS:
            raise ValueError(f"{weights}: model classes {card['classes']} differ from this package's {LABELS}")
        dev = resolve_device(device)
        net = SliceStackClassifier(len(LABELS), card.get("architecture"))
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v.float() for k, v in state.items()})
        net.to(dev).eval()
        card = {**card, "sha256": sha256(weights), "path": str(weights)}
        return cls(net, card, InputSpec(**card["input"]), dev)

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @property
    def open_set_score(self) -> str:
        """The score the card's threshold is on (``open_set_score.card_score``)."""
        return card_score(self.card)

    def logits(self, stack: np.ndarray, geometry: np.ndarray | None = None) -> torch.Tensor:
        """Logits of every class for one (K, H, W) stack, or for (V, K, H, W) views of one series
        (averaged), and its geometry features (``volume.volume_geometry``; models before v0.3
        ignore them). See ``mirrored_logits``."""
        x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32)).to(self.device)
        x = x[None] if x.ndim == 3 else x
        g = None  # one geometry per series, shared by its views
        if geometry is not None:
            g = torch.from_numpy(np.asarray(geometry, np.float32)).to(self.device)[None].expand(len(x), -1)
        return mirrored_logits(self.network, x, g).mean(dim=0)

    def probabilities(self, stack: np.ndarray, geometry: np.ndarray | None = None) -> np.ndarray:
        """Sigmoid probabilities of every class (``logits``)."""
        return torch.sigmoid(self.logits(stack, geometry)).cpu().numpy()

    def classify(self, volume: Volume, threshold: float | None = None, *, all_views: bool = True) -> Classification:
        """Best class, or "other": below the threshold, or a time series by its volumes
        (``timeseries``; the probabilities are kept). ``all_views=False`` scores a 3D volume in
        its native plane only (``volume.view_axes``)."""
        stacks = network_inputs(volume, self.spec) if all_views else to_network_input(volume, self.spec)
        probs = self.probabilities(stacks, volume_geometry(volume))
        decision = decide(probs, self.threshold if threshold is None else threshold, self.open_set_score)
        if why := time_series_reason(volume.timecourses, volume.b_values):
            return reject(decision, why)
        return decision


@functools.lru_cache(maxsize=4)
def shared_classifier(device: str = "cpu") -> Classifier:
    """The shipped model, loaded once per process and device: the App and the heuristic that
    heudiconv runs inside it ask for the same one (the network is only ever used for inference).

    Everything alive once it is loaded (torch, MONAI, the weights) lives as long as the process,
    so it is moved out of the garbage collector's sight (``gc.freeze``): nipype runs a full
    ``gc.collect()`` before every dcm2niix it starts, and walking those millions of objects took
    0.24 s each time, a third of the App's cost per series."""
    classifier = Classifier.load(device=device)
    gc.freeze()
    return classifier
