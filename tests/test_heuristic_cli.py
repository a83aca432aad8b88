"""The heuristic on its own: plain ``heudiconv -f heuristics/mrclass.py``, and its error path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from e2e_helpers import link_tree, require_model

from bidsapp.tools import find_tool, search_path

REPO = Path(__file__).resolve().parents[1]
HEURISTIC = REPO / "heuristics" / "mrclass.py"


def _load_heuristic():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mrclass_heuristic", HEURISTIC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heudiconv_cli(real_data: Path, tmp_path: Path):
    require_model()
    exe = find_tool("heudiconv")
    link_tree([real_data / "dicom" / n for n in ("ProstateX-0000_4_t2_tse_tra", "ProstateX-0000_7_ADC")], tmp_path / "in")
    out = tmp_path / "out"
    env = {**os.environ, "NO_ET": "1", "PATH": search_path()}  # heudiconv runs dcm2niix by name
    proc = subprocess.run([exe, "--files", str(tmp_path / "in"), "-f", str(HEURISTIC), "-o", str(out), "-c", "dcm2niix", "-b"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = sorted(str(p.relative_to(out)) for p in out.rglob("*.nii.gz") if ".heudiconv" not in p.parts)
    assert len(images) == 2, images
    assert all(p.startswith(("sub-ProstateX0000/", "sourcedata/unclassified/sub-ProstateX0000/")) for p in images)
    assert (out / "dataset_description.json").is_file()


class _Wrapper:
    def __init__(self, ds):
        self.dcm_data = ds


def test_failed_series_becomes_error_not_crash(tmp_path: Path, monkeypatch):
    from dicomgen import read, write_series

    from bidsapp import handoff

    files = write_series(tmp_path / "s", series_description="broken", series_number=5)
    monkeypatch.setenv(handoff.ENV_RESULTS_DIR, str(tmp_path / "results"))
    h = _load_heuristic()
    missing = [str(tmp_path / "s" / "does-not-exist.dcm")]  # dcm2niix inside load_dicom must fail
    verdict = h.custom_seqinfo(wrapper=_Wrapper(read(files[0])), series_files=missing)
    hash(verdict)
    assert verdict.status == "error" and verdict.label == "other" and verdict.message
    saved = handoff.load_all(tmp_path / "results")
    assert len(saved) == 1 and saved[0].status == "error" and saved[0].classification is None


def test_infotodict_names_and_runs():
    from collections import namedtuple

    h = _load_heuristic()
    Seq = namedtuple("Seq", "series_id series_uid patient_id series_description custom")
    v = lambda label: h.Verdict(label, 0.9, label, "", (), True, "ok", "", "")  # noqa: E731
    seqs = [Seq("7-t1", "1.7", "P-1", "t1", v("T1w")), Seq("3-t1", "1.3", "P-1", "t1", v("T1w")),
            Seq("9-loc", "1.9", "P-1", "loc", v("other"))]
    info = h.infotodict(seqs)
    flat = {item: key[0] for key, items in info.items() for item in items}
    assert flat == {
        "3-t1": "{bids_subject_session_dir}/anat/{bids_subject_session_prefix}_run-1_T1w",
        "7-t1": "{bids_subject_session_dir}/anat/{bids_subject_session_prefix}_run-2_T1w",
        "9-loc": "sourcedata/unclassified/{bids_subject_session_dir}/9_loc",
    }
    assert h.infotoids(seqs, "/x") == {"locator": None, "session": None, "subject": "P1"}
