"""What a person sees: progress while it runs, one line per participant naming its report and
counts at the end, and none of heudiconv's false alarms at default verbosity."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from e2e_helpers import link_tree, require_model

from bidsapp.cli.console import Progress
from bidsapp.cli.run import configure_logging

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^sub-(\w+): (\d+) named, (\d+) other, (\d+) flagged \(header disagrees\), (\d+) errors?; report (\S+)$")


def run_app(*args: str) -> subprocess.CompletedProcess:
    """The App as a user runs it, with stdout and stderr pipes (not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bidsapp.cli.run", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_plain_progress_lines_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(25, 2, "bids", stream=stream) as bar:
        bar.participant("01", 20)
        for _ in range(20):
            bar.update(1)
        bar.participant("02", 5)
        bar.update(5)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "mrclass-bids: discovered 25 series in 2 participants (bids input)"
    assert "mrclass-bids: sub-01: classifying 20 series" in lines
    steps = [line for line in lines if line.startswith("mrclass-bids: sub-01: ") and "/20" in line]
    assert steps[-1].endswith(" 20/20") and 5 <= len(steps) <= 11, steps  # every ~10%, not every series
    assert lines[-1] == "mrclass-bids: sub-02: 5/5"


def test_heudiconv_false_alarms_only_at_debug(capsys):
    bval_warning = "Diffusion-weighted image saved as non dwi (/out/sub-01/dwi/sub-01_ADC)"
    configure_logging(0)
    logging.getLogger("heudiconv.convert").warning(bval_warning)
    logging.getLogger("heudiconv.convert").warning("a real problem")
    err = capsys.readouterr().err
    assert "non dwi" not in err and "WARNING heudiconv.convert: a real problem" in err
    configure_logging(2)
    logging.getLogger("heudiconv.convert").warning(bval_warning)
    assert f"DEBUG heudiconv.convert: {bval_warning}" in capsys.readouterr().err
    configure_logging(0)


def test_example_run_shows_progress_and_ends_with_its_report(tmp_path):
    from bidsapp.example import SERIES, write_example

    require_model()
    write_example(tmp_path / "dicom")
    proc = run_app(str(tmp_path / "dicom"), str(tmp_path / "bids"), "participant")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    subject, named, other, flagged, errors, report = SUMMARY.match(line).groups()
    assert subject == "EXAMPLE01" and (int(named), int(other), int(errors)) == (6, 4, 0)
    assert report == str(tmp_path / "bids" / "derivatives" / "mrclass" / "sub-EXAMPLE01.html") and Path(report).is_file()
    assert f"discovered {len(SERIES)} series in 1 participant (dicom input)" in proc.stderr
    assert f"sub-EXAMPLE01: converting and classifying {len(SERIES)} series" in proc.stderr
    assert f"sub-EXAMPLE01: {len(SERIES)}/{len(SERIES)}" in proc.stderr


def test_no_heudiconv_bval_warnings_on_real_series(real_data, tmp_path):
    """A calculated b-value image and an ADC map: dcm2niix writes gradients for both, heudiconv
    warns that they are kept under a non-dwi name, and convert removes them right after."""
    require_model()
    link_tree([real_data / "dicom" / n for n in ("ProstateX-0000_7_ADC", "ProstateX-0000_8_calc_bval")], tmp_path / "in")
    proc = run_app(str(tmp_path / "in"), str(tmp_path / "out"), "participant")
    assert proc.returncode == 0, proc.stderr
    assert "heudiconv" not in proc.stderr, proc.stderr
    assert not list((tmp_path / "out").glob("**/*ADC.bval"))
    assert len(proc.stdout.splitlines()) == 1 and SUMMARY.match(proc.stdout.strip())
