#!/usr/bin/env python3
"""Classifier speed on CPU: seconds per series for preprocessing and for the network, apart.

    python benchmarks/classifier_speed.py                       # all real dev series, 1 and 2 threads
    python benchmarks/classifier_speed.py --reps 5 --json benchmarks/results/classifier_speed.json
    python benchmarks/classifier_speed.py --match ADC --match dwi.nii --reps 1 --threads 1   # tiny check

Every series of ``DATA/labels.tsv`` (NIfTI files and DICOM series folders) is timed in three
steps: load (``load_nifti`` / ``load_dicom``, the latter runs dcm2niix), stack
(``network_inputs``: one stack, or three views of a 3D volume) and network
(``Classifier.probabilities``). preprocessing = load + stack.
Each thread setting runs in a fresh subprocess (``torch.set_num_threads`` and OMP/MKL variables
set before torch loads), which also reports its peak RSS (``ru_maxrss``). One untimed warm-up
classification precedes the timed repetitions; a series' time is the median of its repetitions,
and the table gives the median and 90th percentile over series.

Series are grouped by geometry of the loaded image: "3D" when the slice spacing is at most
2 mm and at most 1.25x the in-plane spacing (thin, near-isotropic), otherwise "2D" (multislice).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TARGET_S = 0.5  # ARCHITECTURE.md section 5: CPU inference (2 cores) <= 0.5 s per series median
ISO_RATIO, THIN_MM = 1.25, 2.0
STEPS = ("load", "stack", "preprocess", "network", "total")


@dataclass
class SeriesTiming:
    """Timings (seconds, one entry per repetition) and geometry of one series in one worker."""

    path: str
    format: str
    label: str
    shape: list[int]
    spacing_mm: list[float]
    n_volumes: int
    geometry: str
    load: list[float] = field(default_factory=list)
    stack: list[float] = field(default_factory=list)
    network: list[float] = field(default_factory=list)
    error: str = ""


def geometry(spacing: tuple[float, ...]) -> str:
    """ "3D" for thin near-isotropic voxels, "2D" for thick-slice multislice series."""
    thickest, thinnest = max(spacing[:3]), min(spacing[:3])
    return "3D" if thickest <= THIN_MM and thickest <= ISO_RATIO * thinnest else "2D"


def select(rows: list[dict], match: list[str] | None, limit: int | None) -> list[dict]:
    picked = [r for r in rows if not match or any(m in r["path"] for m in match)]
    return picked[:limit] if limit else picked


# ---------------------------------------------------------------------------------------- worker
def run_worker(args) -> int:
    """Time every series with this process's thread setting; write a JSON record."""
    import resource

    import torch

    threads = args.threads[0]
    torch.set_num_threads(threads)
    from bidsapp.model.predict import Classifier
    from bidsapp.train.labels_file import load_any
    from bidsapp.volume import network_inputs, volume_geometry

    def network_input(vol, spec):
        return network_inputs(vol, spec), volume_geometry(vol)

    def load(row):
        return load_any(args.data / row["path"])

    t0 = time.perf_counter()
    clf = Classifier.load("cpu", args.weights)
    model_load_s = time.perf_counter() - t0
    rows = json.loads(args.rows.read_text())
    cold = warm_up(clf, load, network_input, rows[0]) if args.warmup else None
    timings = [time_series(clf, load, network_input, row, args.reps) for row in rows]
    record = {
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "model_load_s": round(model_load_s, 4),
        "cold_first_series_s": cold,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "series": [asdict(t) for t in timings],
    }
    args.worker_out.write_text(json.dumps(record))
    return 0


def warm_up(clf, load, to_input, row) -> float | None:
    """One untimed-for-the-table classification (first calls allocate and pick kernels)."""
    t0 = time.perf_counter()
    try:
        clf.probabilities(*to_input(load(row), clf.spec))
    except Exception:
        return None
    return round(time.perf_counter() - t0, 4)


def time_series(clf, load, to_input, row, reps: int) -> SeriesTiming:
    timing = None
    for _ in range(reps):
        try:
            t0 = time.perf_counter()
            vol = load(row)
            t1 = time.perf_counter()
            inputs = to_input(vol, clf.spec)
            t2 = time.perf_counter()
            clf.probabilities(*inputs)
            t3 = time.perf_counter()
        except Exception as exc:  # a series that cannot be read is reported, not fatal
            return timing or SeriesTiming(row["path"], row.get("format", ""), row.get("label", ""), [], [], 0, "", error=str(exc)[:200])
        if timing is None:
            sp = [round(s, 3) for s in vol.spacing]
            timing = SeriesTiming(row["path"], row.get("format", ""), row.get("label", ""), list(vol.data.shape),
                                  sp, vol.n_volumes, geometry(vol.spacing))
        timing.load.append(t1 - t0)
        timing.stack.append(t2 - t1)
        timing.network.append(t3 - t2)
    return timing


# ---------------------------------------------------------------------------------------- parent
def run_threads(args, rows: list[dict], threads: int) -> dict:
    """One fresh worker process for one thread setting."""
    with tempfile.TemporaryDirectory(prefix="mrclass-speed-") as tmp:
        rows_file, out_file = Path(tmp) / "rows.json", Path(tmp) / "out.json"
        rows_file.write_text(json.dumps(rows))
        cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--data", str(args.data),
               "--reps", str(args.reps), "--rows", str(rows_file), "--worker-out", str(out_file)]
        if args.weights:
            cmd += ["--weights", str(args.weights)]
        if not args.warmup:
            cmd.append("--no-warmup")
        env = benchlib.tool_env({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out_file.is_file():
            sys.exit(f"error: worker with {threads} thread(s) failed:\n{proc.stderr[-3000:]}")
        return json.loads(out_file.read_text())


def summarise(worker: dict) -> dict:
    """Median and p90 over series (each series: median of its repetitions), per geometry."""
    ok = [s for s in worker["series"] if not s["error"]]
    groups = {"2D": [s for s in ok if s["geometry"] == "2D"], "3D": [s for s in ok if s["geometry"] == "3D"], "all": ok}
    return {name: summarise_group(series) for name, series in groups.items()}


def summarise_group(series: list[dict]) -> dict:
    per_series = {step: [] for step in STEPS}
    for s in series:
        reps = list(zip(s["load"], s["stack"], s["network"]))
        per_step = {"load": [r[0] for r in reps], "stack": [r[1] for r in reps], "network": [r[2] for r in reps],
                    "preprocess": [r[0] + r[1] for r in reps], "total": [sum(r) for r in reps]}
        for step in STEPS:
            per_series[step].append(benchlib.median(per_step[step]))
    out = {"n": len(series)}
    for step in STEPS:
        vals = per_series[step]
        out[step] = {"median": _r(benchlib.median(vals)), "p90": _r(benchlib.percentile(vals, 90))}
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def markdown(result: dict) -> str:
    """The table the docs quote: one row per thread setting and geometry."""
    lines = ["| threads | geometry | series | preprocess median / p90 (s) | of which load median (s) | "
             "network median / p90 (s) | total median / p90 (s) | peak RSS (MB) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for run in result["runs"]:
        for geo in ("2D", "3D", "all"):
            g = run["summary"][geo]
            if not g["n"]:
                continue
            lines.append(
                f"| {run['threads']} | {geo} | {g['n']} | {_pair(g['preprocess'])} | {_s(g['load']['median'])} | "
                f"{_pair(g['network'])} | {_pair(g['total'])} | {run['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pair(d: dict) -> str:
    return f"{_s(d['median'])} / {_s(d['p90'])}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread settings (default 1 2)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per series (default 3)")
    p.add_argument("--match", action="append", help="only series whose labels.tsv path contains this (repeatable)")
    p.add_argument("--limit", type=int, help="at most this many series")
    p.add_argument("--weights", type=Path, help="model weights (default: the shipped model)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed warm-up series")
    p.add_argument("--json", type=Path, help="write the full result as JSON")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    args.data = benchlib.resolve_data(args.data)
    rows = select(benchlib.read_labels(args.data), args.match, args.limit)
    if not rows:
        sys.exit("error: no series selected (check --match / --limit)")
    runs = []
    for threads in args.threads:
        worker = run_threads(args, rows, threads)
        runs.append({**{k: v for k, v in worker.items() if k != "series"}, "summary": summarise(worker),
                     "series": worker["series"]})
    result = {"benchmark": "classifier_speed", "meta": benchlib.machine_info(),
              "config": {"data": benchlib.display_path(args.data), "reps": args.reps, "warmup": args.warmup, "threads": args.threads,
                         "n_series": len(rows), "target_s": TARGET_S,
                         "geometry_rule": f"3D: slice spacing <= {THIN_MM} mm and <= {ISO_RATIO}x in-plane"},
              "runs": runs}
    print(markdown(result))
    failed = [s["path"] for run in runs[:1] for s in run["series"] if s["error"]]
    if failed:
        print(f"\n{len(failed)} series could not be timed: {', '.join(failed)}", file=sys.stderr)
    benchlib.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
