"""The network: a compact MONAI 2D ResNet shared by every slice, one-vs-all sigmoid heads.

Each slice of a series' native-plane stack is scored independently; the series' logits are the
mean over its slices. One-vs-all heads (MR-Class's open-set design) let every class say "not me",
so a series no head claims becomes "other" instead of being forced into the least-bad class.
"""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn

ARCH = {"block": "basic", "layers": [1, 1, 1, 1], "block_inplanes": [32, 64, 128, 256],
        "conv1_t_size": 5, "conv1_t_stride": 2, "no_max_pool": False}


class SliceStackClassifier(nn.Module):
    """(batch, slices, H, W) → (batch, n_classes) logits, averaged over slices."""

    def __init__(self, n_classes: int, arch: dict | None = None):
        super().__init__()
        self.arch = dict(arch or ARCH)
        self.backbone = ResNet(spatial_dims=2, n_input_channels=1, num_classes=n_classes, **self.arch)

    def slice_logits(self, stack: torch.Tensor) -> torch.Tensor:
        b, k, h, w = stack.shape
        return self.backbone(stack.reshape(b * k, 1, h, w)).reshape(b, k, -1)

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        return self.slice_logits(stack).mean(dim=1)
