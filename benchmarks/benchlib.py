"""Shared helpers of the benchmark scripts: data location, machine facts, statistics, measuring a
command (wall time + peak memory of its whole process tree), and copying DICOM series.

Standard library only at import time (the scripts' ``--help`` must be fast); pydicom is imported
where a series is copied.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: The label maps the simulator draws from (the default of every probe's ``--anatomy``).
ANATOMY = REPO.parent / "shared" / "data" / "anatomy"


# ------------------------------------------------------------------------------------------ data
def default_data() -> Path:
    """``$MRCLASS_SHARED_DATA/real`` when set (as the tests use it), else ``../shared/data/real``."""
    shared = os.environ.get("MRCLASS_SHARED_DATA")
    return Path(shared) / "real" if shared else REPO.parent / "shared" / "data" / "real"


def resolve_data(path: Path | None) -> Path:
    """The real development set, or exit with a message saying where it was looked for."""
    root = Path(path) if path else default_data()
    if not (root / "labels.tsv").is_file():
        sys.exit(f"error: real development data not found: {root}/labels.tsv is missing "
                 "(pass --data DIR or set MRCLASS_SHARED_DATA)")
    return root.resolve()


def add_probe_arguments(p) -> None:
    """The options of a probe of one model on the real development set."""
    p.add_argument("--data", type=Path, help=f"real development set (default {default_data()})")
    p.add_argument("--weights", help="model weights (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="write the result as JSON")


def probe_setup(args):
    """(real development set, loaded classifier) for ``add_probe_arguments``' options, torch held
    to ``--threads``."""
    import torch

    from bidsapp.model.predict import Classifier

    torch.set_num_threads(args.threads)
    return resolve_data(args.data), Classifier.load("cpu", args.weights)


def read_labels(root: Path) -> list[dict]:
    """Rows of ``root/labels.tsv`` that name a path, checked (``labels_file.read_label_rows``)."""
    from bidsapp.train.labels_file import read_label_rows

    return read_label_rows(root / "labels.tsv")


def class_sensitivities(metrics: dict, labels) -> dict[str, float | None]:
    """Sensitivity of each of ``labels`` in ``metrics["per_class"]`` (``train.metrics.decisions``),
    to 4 places; None for a class the scored set did not contain."""
    per_class = metrics["per_class"]
    return {lab: (None if (v := per_class.get(lab, {}).get("sensitivity")) is None else round(v, 4)) for lab in labels}


def unchecked_sensitivities(sensitivities: dict[str, float | None], real_truth) -> str:
    """One line: the simulated sensitivity of every class no real series (``real_truth``) checks
    (SWI, the body phases), which a model can trade away unseen by its real score."""
    return "  ".join(f"{lab} -" if v is None else f"{lab} {v:.2f}"
                     for lab, v in sensitivities.items() if lab not in set(real_truth))


def display_path(path: Path | str) -> str:
    """``path`` relative to the repository root when it is near it (``../shared/data/real``)."""
    try:
        return os.path.relpath(Path(path).resolve(), REPO) if Path(path).resolve().is_relative_to(REPO.parent) else str(path)
    except ValueError:
        return str(path)


def series_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------- machine
def machine_info() -> dict:
    """CPU, cores, library versions, date and git state; stored with every result."""
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        **git_state(),
        **package_versions(),
        **model_identity(),
    }
    return info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def git_state() -> dict:
    """Commit, whether the tree has uncommitted changes, and whether the weights are committed."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "git_commit": git("rev-parse", "--short=12", "HEAD") or "unknown",
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "weights_uncommitted": bool(git("status", "--porcelain", "--", "bidsapp/model/weights")),
    }


def package_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "monai", "heudiconv", "dcm2niix", "pydicom", "nibabel", "mrclass-bids"):
        try:
            out[f"{name}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"{name}_version"] = None
    return out


def model_identity() -> dict:
    """Name, version, size and SHA256 prefix of the shipped weights (read without torch)."""
    import hashlib

    weights = REPO / "bidsapp" / "model" / "weights" / "mrclass.pt"
    if not weights.is_file():
        return {"model": None}
    from bidsapp.model.card import read_card

    card = read_card(weights) or {}
    training = card.get("training", {})
    return {
        "model": f"{card.get('name', 'mrclass')} {card.get('version', '?')}",
        "model_training": {k: training.get(k) for k in ("steps", "minutes", "finetune_labels")},
        "model_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:12],
        "model_mb": round(weights.stat().st_size / 1e6, 2),
    }


# ------------------------------------------------------------------------------------ statistics
def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: list[float]) -> float | None:
    return percentile(values, 50.0)


# ------------------------------------------------------------------------------- command runner
@dataclass(frozen=True)
class Measured:
    """One command run: exit status, wall seconds and peak memory (MB).

    ``peak_tree_mb``: highest memory of the command and all its descendants (``tree_memory_kb``),
    sampled from /proc every 50 ms (None where /proc is unavailable). ``peak_process_mb``: the largest
    single process of the tree (``ru_maxrss`` from ``wait4``; exact, not sampled).
    """

    returncode: int
    wall_s: float
    peak_tree_mb: float | None
    peak_process_mb: float
    output_tail: str


class TreeSampler(threading.Thread):
    """Polls /proc for the memory of a process and its descendants; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak_kb = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_kb = max(self.peak_kb, tree_memory_kb(self.pid))
            self._done.wait(self.interval_s)

    def stop(self) -> None:
        self._done.set()
        self.join()


def proc_available() -> bool:
    return Path("/proc/self/status").is_file()


def tree_memory_kb(root: int) -> int:
    """Memory of ``root`` and every descendant (kB), from /proc: every process's private pages
    plus the largest shared set of any one of them. Pages a forked child shares with its parent
    count once, and pages shared with unrelated processes (e.g. the same libraries) are not
    discounted. For one process this is its RSS; VmRSS is used where smaps_rollup is unreadable."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    private, shared, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        p, s = process_memory_kb(pid)
        private, shared = private + p, max(shared, s)
        todo.extend(children.get(pid, []))
    return private + shared


def process_memory_kb(pid: int) -> tuple[int, int]:
    """(private, shared) resident kB of one process; (VmRSS, 0) without smaps_rollup."""
    try:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Private_Clean", "Private_Dirty", "Shared_Clean", "Shared_Dirty"):
                fields[key] = int(rest.split()[0])
        if fields:
            return (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
                    fields.get("Shared_Clean", 0) + fields.get("Shared_Dirty", 0))
    except (OSError, ValueError):
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]), 0
    except (OSError, ValueError):
        pass
    return 0, 0


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run ``cmd`` to completion; wall time, peak tree memory and peak single-process memory."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"mrclass-bench-{os.getpid()}-{time.monotonic_ns()}.log"
    with open(log, "w+b") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=tool_env(env), cwd=cwd)
        sampler = TreeSampler(proc.pid) if proc_available() else None
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if sampler:
            sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read().decode(errors="replace")[-3000:]
    log.unlink(missing_ok=True)
    return Measured(
        returncode=proc.returncode,
        wall_s=round(wall, 3),
        peak_tree_mb=round(sampler.peak_kb / 1024, 1) if sampler else None,
        peak_process_mb=round(usage.ru_maxrss / 1024, 1),
        output_tail=tail,
    )


@dataclass(frozen=True)
class Conversion:
    """One timed conversion run: ``Measured``'s numbers and the NIfTI images it wrote."""

    wall_s: float
    returncode: int
    images: int
    peak_tree_mb: float | None
    peak_process_mb: float


def count_images(out: Path) -> int:
    """NIfTI images written anywhere under ``out`` except derivatives and heudiconv's cache."""
    skip = {"derivatives", ".heudiconv"}
    return sum(1 for p in out.rglob("*.nii*") if not skip & set(p.relative_to(out).parts)) if out.is_dir() else 0


def timed_conversion(cmd: list[str], out: Path, ok: tuple[int, ...], what: str) -> Conversion:
    """``measure`` a converter writing to ``out``; a return code outside ``ok`` stops the benchmark
    with the command's output (a failed run timed as a fast one would be a lie)."""
    m = measure(cmd, env={"NO_ET": "1"})
    if m.returncode not in ok:
        sys.exit(f"error: {what} exited with {m.returncode}:\n{m.output_tail}")
    return Conversion(m.wall_s, m.returncode, count_images(out), m.peak_tree_mb, m.peak_process_mb)


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment's variables with its scripts folder (dcm2niix, heudiconv) first on PATH."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), **(extra or {})}


def tool(name: str) -> str:
    """A console script of this environment (next to the interpreter first, then PATH)."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.is_file() else shutil.which(name)
    if not found:
        sys.exit(f"error: {name} not found (install the package: pip install -e .)")
    return found


# ---------------------------------------------------------------------------------------- DICOM
def copy_series(src: Path, dest: Path, *, series_number: int | None = None, new_uids: bool = False,
                protocol: str | None = None, drop: tuple[str, ...] = ()) -> int:
    """Copy one DICOM series folder to ``dest``, optionally as a new series.

    ``new_uids``: fresh SeriesInstanceUID (one per call) and SOPInstanceUIDs (one per file);
    ``series_number``: new SeriesNumber; ``protocol``: new ProtocolName and SeriesDescription;
    ``drop``: keywords of elements to delete.
    Files pydicom cannot read are copied unchanged. Returns the number of files written.
    """
    import pydicom
    from pydicom.uid import generate_uid

    dest.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid() if new_uids else None
    files = series_files(src)
    for i, f in enumerate(files):
        target = dest / f"{i:05d}.dcm"
        if not (new_uids or series_number is not None or protocol or drop):
            shutil.copyfile(f, target)
            continue
        try:
            ds = pydicom.dcmread(f)
        except Exception:  # not DICOM: keep it as it is
            shutil.copyfile(f, target)
            continue
        if new_uids:
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            if getattr(ds, "file_meta", None) is not None:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if series_number is not None:
            ds.SeriesNumber = series_number
        if protocol:
            ds.ProtocolName = protocol
            ds.SeriesDescription = protocol
        for keyword in drop:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(target)
    return len(files)


def write_json(path: Path | None, payload: dict) -> None:
    if path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")
