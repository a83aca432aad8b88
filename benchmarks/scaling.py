#!/usr/bin/env python3
"""Scaling: wall time and peak memory of ``mrclass-bids`` for 1, 10, 50 series of one participant.

    python benchmarks/scaling.py                             # sizes 1 10 50
    python benchmarks/scaling.py --sizes 1 2 --reps 1        # tiny check

One real DICOM series (default ``ProstateX-0000_4_t2_tse_tra``, 19 slices of 384x384) is copied
N times with pydicom into a temporary tree, each copy a new series (new SeriesInstanceUID,
SOPInstanceUIDs and SeriesNumber; same patient and study, so one participant). For each size
``mrclass-bids IN OUT participant --device cpu --nprocs 2`` runs in a fresh subprocess with fresh
output and work folders. Peak memory is that of the whole process tree (the App plus the dcm2niix
processes it starts), the sum of resident memory sampled from /proc every 50 ms, and the largest
single process (``ru_maxrss`` from ``wait4``). Reported: seconds per series (total / N and the
marginal cost from the smallest to the largest size) and whether memory stays flat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

FLAT_TOLERANCE = 0.10  # peak memory may grow by at most this fraction from the smallest to the largest size
MEMORY_LIMIT_MB = 3072  # ARCHITECTURE.md section 5: peak memory <= 3 GB


@dataclass(frozen=True)
class Point:
    """One run of mrclass-bids on N series."""

    n_series: int
    rep: int
    run: benchlib.Conversion


def build_pool(source: Path, n: int, dest: Path) -> list[Path]:
    """``n`` copies of ``source``, each a new series of the same participant."""
    folders = []
    for i in range(n):
        folder = dest / f"series_{i + 1:03d}"
        benchlib.copy_series(source, folder, series_number=i + 1, new_uids=True)
        folders.append(folder)
    return folders


def link_tree(folders: list[Path], dest: Path) -> Path:
    """An input folder holding exactly ``folders`` (hard links; copies where links fail)."""
    for folder in folders:
        target = dest / folder.name
        target.mkdir(parents=True)
        for f in folder.iterdir():
            try:
                os.link(f, target / f.name)
            except OSError:
                shutil.copyfile(f, target / f.name)
    return dest


def run_size(inp: Path, n: int, rep: int, scratch: Path, nprocs: int) -> Point:
    out, work = scratch / f"run-{n}-{rep}" / "out", scratch / f"run-{n}-{rep}" / "work"
    work.mkdir(parents=True)
    cmd = [benchlib.tool("mrclass-bids"), str(inp), str(out), "participant", "--device", "cpu",
           "--nprocs", str(nprocs), "--work-dir", str(work)]
    point = Point(n, rep, benchlib.timed_conversion(cmd, out, (0, 1), f"mrclass-bids on {n} series"))
    shutil.rmtree(scratch / f"run-{n}-{rep}", ignore_errors=True)
    return point


def summarise(points: list[Point], tolerance: float) -> dict:
    sizes = sorted({p.n_series for p in points})
    rows = []
    for n in sizes:
        mine = [p for p in points if p.n_series == n]
        wall = benchlib.median([p.run.wall_s for p in mine])
        tree = [p.run.peak_tree_mb for p in mine if p.run.peak_tree_mb is not None]
        rows.append({"n_series": n, "wall_s": round(wall, 3), "per_series_s": round(wall / n, 3),
                     "images": min(p.run.images for p in mine),
                     "peak_tree_mb": max(tree) if tree else None,
                     "peak_process_mb": max(p.run.peak_process_mb for p in mine)})
    first, last = rows[0], rows[-1]
    out = {"sizes": rows, "flat_tolerance": tolerance, "memory_limit_mb": MEMORY_LIMIT_MB}
    if len(rows) > 1:
        span = last["n_series"] - first["n_series"]
        out["marginal_s_per_series"] = round((last["wall_s"] - first["wall_s"]) / span, 3)
        key = "peak_tree_mb" if first["peak_tree_mb"] and last["peak_tree_mb"] else "peak_process_mb"
        growth = last[key] - first[key]
        out.update({"memory_measure": key, "memory_growth_mb": round(growth, 1),
                    "memory_growth_frac": round(growth / first[key], 3),
                    "memory_mb_per_series": round(growth / span, 2),
                    "memory_flat": growth <= tolerance * first[key]})
    peak = max((r["peak_tree_mb"] or r["peak_process_mb"]) for r in rows)
    out.update({"peak_mb": peak, "within_memory_limit": peak <= MEMORY_LIMIT_MB})
    return out


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = ["| series | wall (s) | s per series | images written | peak memory, process tree (MB) | "
             "largest process (MB) |", "|---:|---:|---:|---:|---:|---:|"]
    for r in s["sizes"]:
        tree = "-" if r["peak_tree_mb"] is None else f"{r['peak_tree_mb']:.0f}"
        lines.append(f"| {r['n_series']} | {r['wall_s']:.1f} | {r['per_series_s']:.2f} | {r['images']} | "
                     f"{tree} | {r['peak_process_mb']:.0f} |")
    if "marginal_s_per_series" in s:
        lines.append(f"\nmarginal cost: {s['marginal_s_per_series']:.2f} s per additional series; peak memory "
                     f"{s['memory_growth_mb']:+.0f} MB ({100 * s['memory_growth_frac']:+.1f}%) from "
                     f"{s['sizes'][0]['n_series']} to {s['sizes'][-1]['n_series']} series")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--series", default="ProstateX-0000_4_t2_tse_tra",
                   help="DICOM series folder under DATA/dicom to replicate (default ProstateX-0000_4_t2_tse_tra)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50], help="numbers of series (default 1 10 50)")
    p.add_argument("--reps", type=int, default=1, help="repetitions per size (default 1)")
    p.add_argument("--nprocs", type=int, default=2, help="mrclass-bids --nprocs (default 2)")
    p.add_argument("--flat-tolerance", type=float, default=FLAT_TOLERANCE,
                   help=f"largest relative growth of peak memory still called flat (default {FLAT_TOLERANCE})")
    p.add_argument("--json", type=Path, help="write the full result as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = benchlib.resolve_data(args.data)
    source = data / "dicom" / args.series
    if not source.is_dir():
        sys.exit(f"error: DICOM series folder not found: {source}")
    sizes = sorted(set(args.sizes))
    if sizes[0] < 1:
        sys.exit("error: --sizes must be positive")
    with tempfile.TemporaryDirectory(prefix="mrclass-scaling-") as tmp:
        scratch = Path(tmp)
        pool = build_pool(source, sizes[-1], scratch / "pool")
        points = []
        for n in sizes:
            inp = link_tree(pool[:n], scratch / f"input-{n}")
            for rep in range(args.reps):
                points.append(run_size(inp, n, rep, scratch, args.nprocs))
                print(f"{n} series, rep {rep + 1}/{args.reps}: {points[-1].run.wall_s:.1f} s, "
                      f"{points[-1].run.images} images", file=sys.stderr)
    result = {"benchmark": "scaling", "meta": benchlib.machine_info(),
              "config": {"data": benchlib.display_path(data), "series": args.series, "sizes": sizes, "reps": args.reps,
                         "nprocs": args.nprocs, "memory_sampler": "/proc" if benchlib.proc_available() else "wait4 only"},
              "summary": summarise(points, args.flat_tolerance), "points": [{"n_series": p.n_series, "rep": p.rep, **asdict(p.run)} for p in points]}
    print(markdown(result))
    benchlib.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
