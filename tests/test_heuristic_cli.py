"""The heuristic on its own: plain ``heudiconv -f heuristics/mrclass.py``, and its error path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
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
    series = ("ProstateX-0000_4_t2_tse_tra", "ProstateX-0000_7_ADC", "ge_fmap_6_CV_Neuro_B0map")
    link_tree([real_data / "dicom" / n for n in series], tmp_path / "in")
    out = tmp_path / "out"
    env = {**os.environ, "NO_ET": "1", "PATH": search_path()}  # heudiconv runs dcm2niix by name
    proc = subprocess.run([exe, "--files", str(tmp_path / "in"), "-f", str(HEURISTIC), "-o", str(out), "-c", "dcm2niix", "-b"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = sorted(str(p.relative_to(out)) for p in out.rglob("*.nii.gz") if ".heudiconv" not in p.parts)
    prostate = [p for p in images if "ProstateX0000" in p]
    assert len(prostate) == 2, images
    assert all(p.startswith(("sub-ProstateX0000/", "sourcedata/unclassified/sub-ProstateX0000/")) for p in prostate)
    # the App names a GE B0 map's two images after heudiconv; alone, heudiconv would write the
    # invalid _fieldmap1/_fieldmap2, so the series stays whole under sourcedata
    b0map = [p for p in images if "ProstateX0000" not in p]
    assert len(b0map) == 2 and all(p.startswith("sourcedata/unclassified/") for p in b0map), images
    assert not any("_fieldmap" in p for p in images), images
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


def _deidentified_series(folder: Path) -> list[Path]:
    """A synthetic series as TCIA-style de-identification leaves it: dates blanked, the PS3.15
    option code ("... Modified Dates Option") and a method text that mentions dates."""
    from badinputs import blank_dates, rewrite
    from dicomgen import write_series
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def change(i, ds):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "113107", "DCM"
        code.CodeMeaning = "Retain Longitudinal Temporal Information Modified Dates Option"
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        ds.DeidentificationMethod = "Basic Profile; Retain Longitudinal With Modified Dates Option"
        ds.PatientIdentityRemoved = "YES"
        blank_dates(ds, "***")

    return rewrite(write_series(folder, patient_id="DEID1", n_slices=6, size=24), change)


def test_sidecar_fix_drops_what_heudiconv_refuses(tmp_path: Path):
    """Plain heudiconv refuses such a sidecar; with the heuristic loaded the fields that mention
    dates go and everything else stays."""
    import heudiconv.bids
    import heudiconv.convert

    meta = {"Modality": "MR", "EchoTime": 0.012, "DeidentificationMethod": ["Per DICOM PS 3.15 AnnexE"],
            "DeidentificationMethodCodeSequence": [{"CodeValue": "113107", "CodeMeaning": "... Modified Dates Option"}],
            "ImageComments": "Modified Dates Option applied"}
    sidecar = tmp_path / "x.json"
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="no dates"):
        heudiconv.bids.tuneup_bids_json_files([str(sidecar)])
    _load_heuristic()
    _load_heuristic()  # a second load must not wrap twice
    assert heudiconv.convert.tuneup_bids_json_files._mrclass
    heudiconv.convert.tuneup_bids_json_files([str(sidecar)])
    kept = json.loads(sidecar.read_text())
    assert {k: kept[k] for k in meta if k in kept} == {k: meta[k] for k in ("Modality", "EchoTime", "DeidentificationMethod")}


def test_heudiconv_cli_on_deidentified_series(tmp_path: Path):
    """Plain heudiconv with the heuristic survives de-identified headers: blanked "***" dates
    and the "no dates in .json sidecar" stop."""
    require_model()
    exe = find_tool("heudiconv")
    _deidentified_series(tmp_path / "in" / "t1")
    out = tmp_path / "out"
    env = {**os.environ, "NO_ET": "1", "PATH": search_path()}
    proc = subprocess.run([exe, "--files", str(tmp_path / "in"), "-f", str(HEURISTIC), "-o", str(out), "-c", "dcm2niix", "-b"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = [p for p in out.rglob("*.nii.gz") if ".heudiconv" not in p.parts]
    assert len(images) == 1, images
    sidecar = json.loads(Path(str(images[0]).replace(".nii.gz", ".json")).read_text())
    assert not {"DeidentificationMethodCodeSequence", "DeidentificationMethod"} & set(sidecar) and sidecar["EchoTime"] == 0.012
