#!/usr/bin/env python3
"""Where in the image does the network read a call? Occlusion maps and per-slice logits.

    python benchmarks/studies/occlusion_probe.py --out /tmp/occ                     # the persistent errors
    python benchmarks/studies/occlusion_probe.py --out /tmp/occ --label DWI --series dicom/x/ nifti/y.nii.gz

For each series (read as inference reads it; first view of ``network_inputs``), prints the logit of
``--label`` (default: the series' best class) on every slice of its stack, then blanks one square
patch at a time (``--patch`` pixels of the 128-pixel input, moved by ``--stride``) to background
(0) and records how much that slice's logit falls. ``OUT/<n>.png`` shows the slices above their
maps: white where blanking lowers the logit (the region argues for the class), black where it
raises it, grey where it does not matter. Mirroring is left out (the App averages each slice with
its left-right mirror, ``predict.mirrored_logits``), so the logits differ slightly from the App's.

Why: every model up to 0.8.0 named both real single BOLD volumes DWI, with contrast, grain and
voxel size ruled out as the cue (``perturbation_probe.py``, ``epi_grain.py``, ``geometry_probe.py``);
this probe showed their bright ventricles arguing against DWI, which led to 0.13.0's b=0 cap.
Whether a call comes from a few slices (skull base, vertex) or from one region (scalp, eyes, the
brain's edge) says what the simulator gets wrong. A diagnostic to read, not a number.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: benchlib
import benchlib  # noqa: E402

#: The errors every model up to 0.8.0 and every arm of the real-data cross-validations made
#: (docs/model.md); 0.13.0 refuses both BOLD volumes and still gets the other two wrong.
PERSISTENT_ERRORS = (
    "nifti/niivue_register/fmri.nii.gz",
    "dicom/siemens_12bit_FMRI_AX_ASC/",
    "nifti/niivue_register/dwi.nii.gz",
    "nifti/TCGA-FG-6692/MRHR_FLAIR_AX_OtherEXampleTCIA_TCGA-FG-6692_Si_TCGA-FG-6692_MRHR_FLAIR_AX_SE_IR_5_tir2d1_21_fla.nii.gz",
)


def occlusion_maps(slice_logit, stack: np.ndarray, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-slice logits (K,), logit drop maps (K, H, W)) for one (K, H, W) stack.

    ``slice_logit`` maps an (N, H, W) batch of slices to (N,) logits of the followed class. The
    drop at a pixel is the mean, over the patches covering it, of the slice's logit minus its logit
    with that patch blanked to 0; pixels no patch covers stay 0."""
    k, h, w = stack.shape
    base = slice_logit(stack)
    starts = [(r, c) for r in range(0, h - patch + 1, stride) for c in range(0, w - patch + 1, stride)]
    drops = np.zeros((k, h, w), np.float64)
    counts = np.zeros((h, w), np.float64)
    for r, c in starts:
        counts[r:r + patch, c:c + patch] += 1
    for i in range(k):
        batch = np.repeat(stack[i][None], len(starts), axis=0)
        for n, (r, c) in enumerate(starts):
            batch[n, r:r + patch, c:c + patch] = 0.0
        fallen = base[i] - slice_logit(batch)
        for n, (r, c) in enumerate(starts):
            drops[i, r:r + patch, c:c + patch] += fallen[n]
    return base, drops / np.maximum(counts, 1)


def page(stack: np.ndarray, drops: np.ndarray, shown: int = 6, white: float = 1.2) -> np.ndarray:
    """Two rows of 8-bit pixels: ``shown`` slices, and their drop maps (grey 0, white = the largest
    drop of the series, black = its negative)."""
    idx = np.linspace(0, len(stack) - 1, shown + 2).round().astype(int)[1:-1]
    scale = max(float(np.abs(drops).max()), 1e-6)
    top = np.concatenate([np.clip(stack[i], 0, white) / white for i in idx], axis=1)
    bottom = np.concatenate([0.5 + 0.5 * drops[i] / scale for i in idx], axis=1)
    return (np.concatenate([top, np.full((4, top.shape[1]), 0.25), bottom]) * 255).round().astype(np.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--weights", help="model weights (default: the shipped model)")
    p.add_argument("--label", help="class whose logit is followed (default: each series' best class)")
    p.add_argument("--series", nargs="+", default=list(PERSISTENT_ERRORS), help="paths relative to the data folder")
    p.add_argument("--patch", type=int, default=16, help="side of the blanked square, input pixels")
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    data = benchlib.resolve_data(args.data)

    import torch

    from bidsapp.classes import LABELS
    from bidsapp.model.predict import Classifier
    from bidsapp.report.figures import png_bytes
    from bidsapp.train.labels_file import load_any
    from bidsapp.volume import network_inputs, volume_geometry

    torch.set_num_threads(args.threads)
    classifier = Classifier.load("cpu", args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(args.series):
        volume = load_any(data / path)
        stacks = network_inputs(volume, classifier.spec)
        probs = classifier.probabilities(stacks, volume_geometry(volume))
        label = args.label or LABELS[int(np.argmax(probs))]
        column = LABELS.index(label)

        def slice_logit(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))[None]
                return classifier.network.slice_logits(x)[0, :, column].numpy()

        base, drops = occlusion_maps(slice_logit, stacks[0], args.patch, args.stride)
        png = args.out / f"{n}.png"
        png.write_bytes(png_bytes(page(stacks[0], drops)))
        print(f"{png}: {path}  p({label}) = {probs[column]:.2f} over {len(stacks)} view(s)")
        print("  slice logits of the first view: " + " ".join(f"{v:+.1f}" for v in base))
        h, w = drops.shape[1:]
        centre, total = drops[:, h // 4:3 * h // 4, w // 4:3 * w // 4].sum(), drops.sum()
        share = float(centre / total) if abs(total) > 1e-9 else float("nan")
        print(f"  share of the summed drop inside the central {h // 2}x{w // 2} pixels: {share:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
