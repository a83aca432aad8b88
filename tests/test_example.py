"""The bundled example study: valid DICOM that dcm2niix converts into the intended series."""

from __future__ import annotations

import json
import subprocess

import nibabel as nib
import pydicom

from bidsapp.example import SERIES, write_example
from bidsapp.tools import find_tool


def test_example_study_converts_with_dcm2niix(tmp_path):
    dicom = tmp_path / "dicom"
    series = write_example(dicom)
    folders = sorted(p for p in dicom.iterdir() if p.is_dir())
    assert len(folders) == len(SERIES) == len(series)
    ds = pydicom.dcmread(next(folders[1].glob("*.dcm")))
    assert ds.PatientID == "EXAMPLE01" and ds.Modality == "MR"
    out = tmp_path / "nii"
    out.mkdir()
    subprocess.run([find_tool("dcm2niix"), "-z", "y", "-f", "%s", "-o", str(out), str(dicom)],
                   check=True, capture_output=True)
    files: dict[int, list] = {}
    for p in sorted(out.glob("*.nii.gz")):
        files.setdefault(int(p.name.split(".")[0].split("_")[0]), []).append(p)
    for s in SERIES:
        images = [nib.load(p) for p in files[s.number]]
        assert len(images) == max(1, len(s.echo_times)), s.description  # dcm2niix writes one image per echo
        n_vol = images[0].shape[3] if images[0].ndim == 4 else 1
        assert n_vol == (1 if s.echo_times else len(s.volumes)), s.description
        assert s.n_slices in images[0].shape[:3], s.description
    assert (out / "5.bval").read_text().split() == ["0", "1000", "1000", "1000"]


def test_readme_example_is_sorted_by_content(tmp_path):
    """README command 1: every example series gets its content label (the misleading 'T2 AX'
    description included), and the BOLD run is kept as other because its volumes repeat."""
    from e2e_helpers import require_model

    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv

    require_model()
    write_example(tmp_path / "dicom")
    out = tmp_path / "bids"
    assert main([str(tmp_path / "dicom"), str(out), "participant"]) == 0
    rows = {int(r["source"].split("_")[0]): r for r in
            read_tsv(out / "derivatives" / "mrclass" / "sub-EXAMPLE01" / "sub-EXAMPLE01_classifications.tsv")}
    assert {n: r["label"] for n, r in rows.items()} == {s.number: s.truth for s in SERIES}
    # the BOLD run is "other" for the content classes, and physics places it where fMRI pipelines look
    assert "time series: 12 volumes" in rows[8]["message"]
    assert rows[8]["bids_path"] == "sub-EXAMPLE01/func/sub-EXAMPLE01_task-rest_bold.nii.gz"
    sidecar = json.loads((out / "sub-EXAMPLE01" / "func" / "sub-EXAMPLE01_task-rest_bold.json").read_text())
    assert sidecar["TaskName"] == "rest"
    # the field map (magnitude at two echoes + phase difference) lands in fmap/ and is linked to the run
    fmap = out / "sub-EXAMPLE01" / "fmap"
    assert rows[9]["bids_path"] == "sub-EXAMPLE01/fmap/sub-EXAMPLE01_magnitude1.nii.gz"
    assert rows[10]["bids_path"] == "sub-EXAMPLE01/fmap/sub-EXAMPLE01_phasediff.nii.gz"
    for name in ("magnitude1", "magnitude2", "phasediff"):
        meta = json.loads((fmap / f"sub-EXAMPLE01_{name}.json").read_text())
        assert meta["B0FieldIdentifier"] == "phasediff10", name
        assert meta["IntendedFor"] == ["bids::sub-EXAMPLE01/func/sub-EXAMPLE01_task-rest_bold.nii.gz"], name
    assert sidecar["B0FieldSource"] == "phasediff10"
    from e2e_helpers import validator_errors

    assert validator_errors(out) == []
