"""Input-space augmentation of simulated series: what scanners and reconstructions vary that the
simulator does not (contrast curve, sharpness, noise floor), so the class is read from tissue
order, not from the simulator's exact look. Applied to every training batch and, once, to the
simulated validation set."""

from __future__ import annotations

import torch


def augment(x: torch.Tensor) -> torch.Tensor:
    """Input-space augmentation of a (batch, slices, H, W) batch, per series.

    Left-right mirror (anatomy is near-symmetric); monotonic intensity curves (gamma, then a random
    piecewise-linear one), mild blur or sharpening, and noise
    (scanners and reconstructions differ in contrast curve, sharpness and noise floor, and the
    class must be read from tissue *order*, not from the simulator's exact look). Real series
    lost confidence under a gamma of 0.6 or 1.6 and under an unsharp mask, both outside what
    this drew before (0.70-1.42, blur only)."""
    b = x.shape[0]
    flip = torch.rand(b) < 0.5
    x = torch.where(flip[:, None, None, None], torch.flip(x, dims=[3]), x)
    gamma = torch.exp(torch.empty(b).uniform_(-0.5, 0.5))[:, None, None, None]
    x = gamma_curve(x, gamma)
    x = monotone_curve(x, knots=6, concentration=3.0)
    sigma = torch.empty(b).uniform_(0.0, 0.7)  # wider erases the cortical ribbon that orders GM/WM
    sharpen = torch.where(torch.rand(b) < 0.3, torch.empty(b).uniform_(0.0, 0.8), torch.zeros(b))
    x = torch.stack([unsharp_mask(blur(x[i], float(sigma[i])), float(sharpen[i])) for i in range(b)])
    noise = torch.empty(b).uniform_(0.0, 0.04)[:, None, None, None] * torch.randn_like(x)
    return x + noise


def gamma_curve(x: torch.Tensor, gamma) -> torch.Tensor:
    """``sign(x)|x|^gamma``: a gamma curve on the percentile-mapped input that keeps the sign of the
    few values below 0 (training's augmentation; ``benchmarks/studies/ensemble_probe.py`` at test time)."""
    return torch.sign(x) * x.abs().pow(gamma)


def monotone_curve(x: torch.Tensor, knots: int, concentration: float) -> torch.Tensor:
    """Map each series' intensities through its own random increasing piecewise-linear curve on
    [0, 1] (extended linearly beyond). Tissue *order* survives; the exact contrast levels, which
    differ between scanners and the simulator, do not, so the network cannot lean on them."""
    b = x.shape[0]
    steps = torch.distributions.Dirichlet(torch.full((knots,), concentration)).sample((b,)).to(x)  # (b, K), sum 1
    ends = torch.cumsum(steps, dim=1)
    starts = ends - steps
    seg = (x * knots).floor().clamp(0, knots - 1).long()  # (b, k, H, W) segment per pixel
    flat = seg.reshape(b, -1)
    start = torch.gather(starts, 1, flat).reshape_as(x)
    slope = torch.gather(steps * knots, 1, flat).reshape_as(x)
    return start + slope * (x - seg.to(x) / knots)


def blur(stack: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each (H, W) slice of a (n, H, W) stack; sigma in pixels."""
    if sigma < 0.3:
        return stack
    r = int(round(2.5 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=stack.dtype) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(stack.device)
    s = stack[:, None]
    s = torch.nn.functional.conv2d(s, k.view(1, 1, 1, -1), padding=(0, r))
    s = torch.nn.functional.conv2d(s, k.view(1, 1, -1, 1), padding=(r, 0))
    return s[:, 0]


def unsharp_mask(stack: torch.Tensor, amount: float) -> torch.Tensor:
    """Unsharp mask (edge-enhancing reconstruction filters, zero-filled k-space)."""
    return stack if amount <= 0 else stack + amount * (stack - blur(stack, 1.0))
