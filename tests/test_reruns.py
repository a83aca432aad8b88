"""Reruns and interruptions: a read-only input stays byte-identical, a rerun changes nothing,
and a run killed with SIGKILL half-way completes to the same output when started again."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from badinputs import series, write_junk, write_sr
from e2e_helpers import require_model, tree_digest

from bidsapp.derivatives import read_tsv

SKIP = (".heudiconv", "derivatives/mrclass/group_classifications.tsv")


def make_export(root: Path) -> Path:
    """Three participants, three series each, plus junk and a report."""
    for p, pid in enumerate(("R-01", "R-02", "R-03")):
        for n, desc in enumerate(("t1_se_tra", "t2_tse_tra", "flair_tra"), start=1):
            series(root / pid / desc, n, desc, patient_id=pid, n_slices=5)
    write_junk(root / "R-01")
    write_sr(root / "R-02" / "sr.dcm", patient_id="R-02")
    return root


def cli(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bidsapp.cli.run", str(src), str(out), "participant", "--threshold", "0", *extra]


def env() -> dict:
    return {**os.environ, "NO_ET": "1"}


def set_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def set_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def no_temp_leftovers(out: Path) -> list[str]:
    """Half-written files: atomic-write temporaries and dcm2niix/heudiconv intermediates."""
    return [str(p.relative_to(out)) for p in out.rglob("*") if p.name.endswith(".tmp") or re.search(r"_heudiconv\d{3}", p.name)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    require_model()
    tmp = tmp_path_factory.mktemp("reruns")
    src = make_export(tmp / "in")
    set_read_only(src)
    before = tree_digest(src)
    out = tmp / "out"
    first = subprocess.run(cli(src, out), env=env(), capture_output=True, text=True, timeout=600)
    digest1 = tree_digest(out, skip=SKIP)
    second = subprocess.run(cli(src, out), env=env(), capture_output=True, text=True, timeout=600)
    digest2 = tree_digest(out, skip=SKIP)
    yield {"src": src, "out": out, "tmp": tmp, "before": before, "rc": (first.returncode, second.returncode),
           "digests": (digest1, digest2), "stderr": first.stderr}
    set_writable(src)


def test_read_only_input_untouched(runs):
    assert runs["rc"] == (0, 0), runs["stderr"][-2000:]  # the SR is a skipped row, not a failed series
    assert tree_digest(runs["src"]) == runs["before"]
    assert not os.access(runs["src"], os.W_OK) or os.geteuid() == 0  # root ignores modes; hashes still prove it


def test_rerun_is_identical(runs):
    first, second = runs["digests"]
    assert set(first) == set(second)
    assert {k for k in first if first[k] != second[k]} == set()
    assert not [p for p in second if "run-" in p and p.replace("run-2", "run-1") not in second]
    rows = [r for p in sorted((runs["out"] / "derivatives" / "mrclass").glob("sub-*/*.tsv")) for r in read_tsv(p)]
    assert len(rows) == len({r["series_uid"] for r in rows}) == 10
    assert not no_temp_leftovers(runs["out"])


def test_killed_run_completes_on_rerun(runs, tmp_path):
    """SIGKILL as soon as the first image is being written (heudiconv's temporary names count);
    the rerun equals a clean run."""
    out = tmp_path / "out"
    proc = subprocess.Popen(cli(runs["src"], out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if next(out.rglob("*.nii*"), None) is not None:
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    rerun = subprocess.run(cli(runs["src"], out), env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert tree_digest(out, skip=SKIP) == runs["digests"][0]
    assert not no_temp_leftovers(out)
    if not killed:
        pytest.skip("the run finished before it could be killed (result still checked)")
