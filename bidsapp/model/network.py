"""The network: a compact MONAI 2D ResNet shared by every slice, one-vs-all sigmoid heads.

Each slice of a series' native-plane stack is scored independently; the series' logits are the
mean over its slices. One-vs-all heads (MR-Class's open-set design) let every class say "not me",
so a series no head claims becomes "other" instead of being forced into the least-bad class.

A small geometry prior adds to those logits what the native voxel size says
(``volume.geometry_features``); its last layer starts at zero, so weights trained without it
load unchanged and fine-tuning learns how much to trust it.

Normalisation is GroupNorm by default: BatchNorm's running statistics are those of *simulated*
images, and every real scanner shifts them; GroupNorm normalises each image by itself.
"""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn

from ..volume import GEOMETRY_FEATURES

ARCH = {"block": "basic", "layers": [1, 1, 1, 1], "block_inplanes": [32, 64, 128, 256],
        "conv1_t_size": 5, "conv1_t_stride": 2, "no_max_pool": False, "norm_groups": 8,
        "geometry_features": list(GEOMETRY_FEATURES)}

#: Networks training can build (``mrclass-bids-train --arch``); the card records the one used and
#: inference builds from the card. "compact" is what every release so far shipped (1.2 M
#: parameters, 2.5 MB as shipped in float16); "wide" (two blocks a stage, 1.5x channels: 6.3 M,
#: 12.6 MB) is the capacity lever for a GPU-length run, inside the 50 MB bar; its CPU time per
#: series must be measured (benchmarks/classifier_speed.py) before one ships.
ARCHS = {"compact": ARCH,
         "wide": {**ARCH, "layers": [2, 2, 2, 2], "block_inplanes": [48, 96, 192, 384]}}


def batch_to_group_norm(module: nn.Module, groups: int) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by a GroupNorm (in place).

    MONAI's ResNet takes ``norm`` but builds its residual layers with BatchNorm regardless."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            setattr(module, name, nn.GroupNorm(min(groups, c), c))
        else:
            batch_to_group_norm(child, groups)
    return module


class SliceStackClassifier(nn.Module):
    """(batch, slices, H, W) [+ (batch, geometry features)] → (batch, n_classes) logits."""

    def __init__(self, n_classes: int, arch: dict | None = None):
        super().__init__()
        self.arch = dict(arch or ARCH)
        resnet_args = {k: v for k, v in self.arch.items() if k not in ("norm_groups", "geometry_features")}
        self.backbone = ResNet(spatial_dims=2, n_input_channels=1, num_classes=n_classes, **resnet_args)
        if self.arch.get("norm_groups"):  # absent in cards of BatchNorm models (v0.1)
            batch_to_group_norm(self.backbone, self.arch["norm_groups"])
        n_geometry = len(self.arch.get("geometry_features") or ())  # absent before v0.3
        self.geometry_prior = None
        if n_geometry:
            self.geometry_prior = nn.Sequential(nn.Linear(n_geometry, 32), nn.ReLU(), nn.Linear(32, n_classes))
            nn.init.zeros_(self.geometry_prior[-1].weight)
            nn.init.zeros_(self.geometry_prior[-1].bias)

    def slice_logits(self, stack: torch.Tensor) -> torch.Tensor:
        b, k, h, w = stack.shape
        return self.backbone(stack.reshape(b * k, 1, h, w)).reshape(b, k, -1)

    def forward(self, stack: torch.Tensor, geometry: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.slice_logits(stack).mean(dim=1)
        if self.geometry_prior is not None:
            if geometry is None:
                raise ValueError("this model needs the series' geometry features (volume.volume_geometry)")
            logits = logits + self.geometry_prior(geometry)
        return logits
