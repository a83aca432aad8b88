"""A run its environment dooms ends as a usage error: one line, exit 2, no traceback.

The tests run as root, which ignores permission bits, so an unwritable output is made the two
ways root cannot write either: a path below a regular file, and a read-only bind mount (in a
private mount namespace, where ``unshare`` is allowed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dicomgen import write_series

from bidsapp.cli.parser import EXIT_USAGE
from bidsapp.cli.run import main

REPO = Path(__file__).resolve().parents[1]


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal failure" not in err
    return lines[0]


def test_output_below_a_file(tmp_path, capsys):
    write_series(tmp_path / "in", patient_id="P01")
    (tmp_path / "file").write_text("not a folder")
    assert main([str(tmp_path / "in"), str(tmp_path / "file" / "out"), "participant"]) == EXIT_USAGE
    assert "is a file" in one_line_error(capsys.readouterr().err)


def test_work_dir_below_a_file(tmp_path, capsys):
    write_series(tmp_path / "in", patient_id="P01")
    (tmp_path / "file").write_text("not a folder")
    rc = main([str(tmp_path / "in"), str(tmp_path / "out"), "participant", "--work-dir", str(tmp_path / "file" / "w")])
    assert rc == EXIT_USAGE
    assert "--work-dir" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def _can_mount_read_only(probe: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    script = f'mount --bind "{probe}" "{probe}" && mount -o remount,bind,ro "{probe}"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True).returncode == 0


def test_read_only_output(tmp_path):
    write_series(tmp_path / "in", patient_id="P01")
    out = tmp_path / "out"
    out.mkdir()
    if not _can_mount_read_only(out):
        pytest.skip("no private mount namespace here (unshare -m) to make a read-only folder")
    script = (f'mount --bind "{out}" "{out}" && mount -o remount,bind,ro "{out}" && '
              f'exec "{sys.executable}" -m bidsapp.cli.run "{tmp_path / "in"}" "{out}" participant')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "not writable" in one_line_error(proc.stderr)
    assert list(out.iterdir()) == []


def test_cuda_without_a_gpu(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    write_series(tmp_path / "in", patient_id="P01")
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "participant", "--device", "cuda"]) == EXIT_USAGE
    assert "--device cuda" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_permission_denied_mid_run(tmp_path, capsys, monkeypatch):
    """A file the calling user may not touch, met after the checks (e.g. a folder below the
    output that another user owns): a usage error naming it, not an internal failure."""
    import bidsapp.cli.run as run

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "sub-P01"))

    monkeypatch.setattr(run, "discover", denied)
    write_series(tmp_path / "in", patient_id="P01")
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "participant"]) == EXIT_USAGE
    assert one_line_error(capsys.readouterr().err).endswith(f"permission denied: {tmp_path / 'out' / 'sub-P01'}")
