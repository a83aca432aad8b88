#!/usr/bin/env python3
"""Brain ADC, trace and FA maps made from the real raw diffusion series: a check for series the
development set has no real example of.

    python benchmarks/derived_maps.py                      # shipped weights, real dev set
    python benchmarks/derived_maps.py --weights runs/v12/mrclass.pt --json maps.json

The development set holds raw multi-direction DTI (b=0 and diffusion-weighted volumes) but no
scanner-made brain ADC map, trace image or FA map, the series every diffusion scan exports.
For each labelled DWI series with b=0 and b>50 volumes this computes what the scanner would
have stored beside it: the ADC map (-ln(S_b / S_0) / b, in 10^-6 mm^2/s, zero outside the head,
int16), the trace image (geometric mean of the highest shell, int16) and the fractional
anisotropy map (log-linear tensor fit, FA x 1000 as int16; an open-set series: "other"), and
classifies each as the App loads a NIfTI (RAS-reoriented, ``volume_from_array``). Real pixels, derived
the way scanners derive them: evidence for brain ADC and trace, not a held-out test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from bidsapp.model.predict import Classifier  # noqa: E402
from bidsapp.records import Volume  # noqa: E402
from bidsapp.tools import find_tool  # noqa: E402
from bidsapp.volume import volume_from_array  # noqa: E402

#: What each derived image is, as a class label.
EXPECTED = {"ADC": "ADC", "trace": "DWI", "FA": "other"}


@dataclass(frozen=True)
class DerivedMap:
    """One map made from a labelled real DWI series, as the App would load it."""

    source: str  # the DWI series' path in labels.tsv
    kind: str  # a key of EXPECTED
    volume: Volume

    @property
    def name(self) -> str:
        return f"{self.source} [{self.kind} map]"

    @property
    def expected(self) -> str:
        return EXPECTED[self.kind]


def raw_diffusion(source: Path, work: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(4D data, b-values, b-vectors (3, n) in the image's voxel axes, affine) of a DICOM folder
    or NIfTI (+ .bval/.bvec), or None without both b=0 and diffusion-weighted volumes."""
    if source.is_dir():
        subprocess.run([find_tool("dcm2niix"), "-z", "n", "-b", "n", "-f", "dwi", "-o", str(work), str(source)],
                       capture_output=True, text=True, timeout=600, check=False)
        nii = work / "dwi.nii"
    else:
        nii = source
    stem = str(nii).removesuffix(".gz").removesuffix(".nii")
    bval, bvec = Path(stem + ".bval"), Path(stem + ".bvec")
    if not nii.is_file() or not bval.is_file() or not bvec.is_file():
        return None
    img = nib.load(str(nii))  # voxel order kept: FSL b-vectors are given in it
    data, b, g = np.asarray(img.dataobj, dtype=np.float32), np.loadtxt(bval).ravel(), np.loadtxt(bvec).reshape(3, -1)
    if data.ndim != 4 or len(b) != data.shape[3] or not ((b < 50).any() and (b > 50).any()):
        return None
    return data, b, g, img.affine


def fractional_anisotropy(data: np.ndarray, b: np.ndarray, g: np.ndarray, s0: np.ndarray, head: np.ndarray) -> np.ndarray:
    """FA of a log-linear diffusion tensor fit inside ``head`` (0 outside); ``s0`` the b=0 mean."""
    dw, s0 = b > 50, np.maximum(s0, 1e-3)
    x, y, z = g[:, dw]
    design = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1) * b[dw, None]
    signal = -np.log(np.maximum(data[head][:, dw], 1e-3) / s0[head][:, None])
    d = np.linalg.lstsq(design, signal.T, rcond=None)[0].T
    tensor = d[:, [0, 3, 4, 3, 1, 5, 4, 5, 2]].reshape(-1, 3, 3)
    ev = np.linalg.eigvalsh(tensor)
    md = ev.mean(axis=1, keepdims=True)
    fa = np.sqrt(1.5 * ((ev - md) ** 2).sum(axis=1) / np.maximum((ev ** 2).sum(axis=1), 1e-12))
    out = np.zeros(head.shape, np.float32)
    out[head] = np.clip(fa, 0, 1)
    return out


def derived_maps(data: np.ndarray, b: np.ndarray, g: np.ndarray) -> dict[str, np.ndarray]:
    """The scanner's ADC map (10^-6 mm^2/s), trace image (highest shell) and FA map (x 1000),
    all int16 as scanners store them."""
    s0 = data[..., b < 50].mean(axis=-1)
    high = b >= 0.9 * b.max()
    trace = np.exp(np.log(np.maximum(data[..., high], 1e-3)).mean(axis=-1))
    head = s0 > 0.1 * np.percentile(s0, 99)
    adc = -np.log(np.maximum(trace, 1e-3) / np.maximum(s0, 1e-3)) / b[high].mean()
    adc = np.where(head, np.clip(adc, 0, 0.005) * 1e6, 0).round().astype(np.int16)
    fa = np.round(fractional_anisotropy(data, b, g, s0, head) * 1000).astype(np.int16)
    return {"ADC": adc, "trace": np.round(trace).clip(0, 32767).astype(np.int16), "FA": fa}


def derived_volumes(data_root: Path) -> Iterator[DerivedMap]:
    """Every map derivable from the labelled brain DWI, each read as the App loads a NIfTI
    (RAS-reoriented)."""
    for row in benchlib.read_labels(data_root):
        if row["label"] != "DWI":  # brain raw diffusion: the maps the set lacks
            continue
        with tempfile.TemporaryDirectory(prefix="mrclass-maps-") as work:
            raw = raw_diffusion(data_root / row["path"], Path(work))
        if raw is None:
            continue
        data, b, g, affine = raw
        for kind, image in derived_maps(data, b, g).items():
            canonical = nib.as_closest_canonical(nib.Nifti1Image(image, affine))  # as load_nifti reads it
            yield DerivedMap(row["path"], kind, volume_from_array(np.asarray(canonical.dataobj), canonical.affine))


def check(classifier: Classifier, data_root: Path) -> list[dict]:
    rows = []
    for m in derived_volumes(data_root):
        c = classifier.classify(m.volume)
        top = sorted(c.probabilities.items(), key=lambda kv: -kv[1])[:3]
        rows.append({"source": m.source, "map": m.kind, "expected": m.expected, "label": c.label,
                     "confidence": c.confidence, "top3": top})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="real development set (default ../shared/data/real)")
    p.add_argument("--weights", type=Path, help="model weights (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args(argv)
    data_root = benchlib.resolve_data(args.data)
    torch.set_num_threads(args.threads)
    classifier = Classifier.load("cpu", args.weights)
    rows = check(classifier, data_root)
    print(f"model: {classifier.card['name']} {classifier.card['version']}  threshold {classifier.threshold}")
    print(f"{'source':40s} {'map':6s} {'expected':9s} {'decided':9s} conf   top 3")
    for r in rows:
        top = ", ".join(f"{k} {v:.2f}" for k, v in r["top3"])
        print(f"{r['source'][:40]:40s} {r['map']:6s} {r['expected']:9s} {r['label']:9s} {r['confidence']:.2f}   {top}")
    right = sum(r["label"] == r["expected"] for r in rows)
    print(f"right: {right} of {len(rows)} derived maps")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
