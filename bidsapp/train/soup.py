"""Weight soups: one network whose weights are the mean of several fine-tunes of one start.

Networks fine-tuned from the same weights usually stay in one basin of the loss, so their
weight mean is itself a good network, and one that moves less when the input distribution
shifts than any of its ingredients (Wortsman et al. 2022, "Model soups"; "WiSE-FT", the mean
of a start and its fine-tune). Our whole problem is such a shift (trained on simulated images,
judged on real ones), and a soup costs nothing at inference, unlike an ensemble of logits.
The network has GroupNorm only, so the mean needs no recomputed statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..model.card import read_card


def soup_state(weights: list[Path], coefficients: list[float] | None = None) -> dict[str, torch.Tensor]:
    """The float32 state dict ``sum(c_i * w_i)`` of ``weights`` (uniform mean by default).

    Refuses ingredients of different networks (their cards' ``architecture``, or tensor names
    and shapes), since a mean of unrelated weights is noise, not a soup."""
    if not weights:
        raise ValueError("a soup needs at least one ingredient")
    coefficients = list(coefficients) if coefficients is not None else [1.0 / len(weights)] * len(weights)
    if len(coefficients) != len(weights) or abs(sum(coefficients) - 1.0) > 1e-6 or min(coefficients) < 0:
        raise ValueError(f"coefficients must be one per ingredient, non-negative, summing to 1: {coefficients}")
    archs = {str((read_card(w) or {}).get("architecture")) for w in weights}
    if len(archs) > 1:
        raise ValueError(f"ingredients are different networks (architectures {sorted(archs)})")
    soup: dict[str, torch.Tensor] | None = None
    for path, c in zip(weights, coefficients):
        state = {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
        if soup is None:
            soup = {k: c * v for k, v in state.items()}
            continue
        if state.keys() != soup.keys() or any(state[k].shape != soup[k].shape for k in soup):
            raise ValueError(f"{path}: its tensors differ from the first ingredient's")
        for k, v in state.items():
            soup[k] += c * v
    return soup
