"""The fused decision through the real App: typed text changes nothing, sidecars give the same
decision as the DICOMs they came from, and every sidecar carries its witnesses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from bidsapp.derivatives import read_tsv
from bidsapp.example import SERIES, write_example

LIES = {s.number: SERIES[(i + 3) % len(SERIES)].description for i, s in enumerate(SERIES)}


def _run(src: Path, out: Path, *extra: str) -> dict[str, dict]:
    from bidsapp.cli.run import main

    assert main([str(src), str(out), "participant", *extra]) in (0, 1)
    root = out / "derivatives" / "mrclass" if (out / "derivatives" / "mrclass").is_dir() else out
    return {r["source"]: r for path in root.glob("sub-*/sub-*_classifications.tsv") for r in read_tsv(path)}


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    from e2e_helpers import require_model

    require_model()
    tmp = tmp_path_factory.mktemp("witnesses")
    write_example(tmp / "dicom")
    return tmp, _run(tmp / "dicom", tmp / "bids")


def _series_number(source: str) -> int:
    return int(Path(source).name.split("_")[0])


def test_every_sidecar_carries_its_witnesses(honest):
    tmp, rows = honest
    sidecars = sorted((tmp / "bids" / "derivatives" / "mrclass").rglob("*_mrclass.json"))
    assert len(sidecars) == len(SERIES)
    for path in sidecars:
        witnesses = json.loads(path.read_text())["Witnesses"]
        assert set(witnesses) == {"content", "physics", "text"}
        assert set(witnesses["content"]["Probabilities"]) and witnesses["physics"]["Label"]
    by_number = {_series_number(s): r for s, r in rows.items()}
    assert by_number[6]["physics_label"] == "ADC"  # ImageType ADC; BodyPartExamined HEAD
    assert by_number[1]["physics_label"] == "other" and by_number[1]["label"] == "other"  # LOCALIZER


def test_descriptions_that_lie_change_no_decision(honest):
    tmp, rows = honest
    lying = tmp / "lying"
    for folder in sorted(p for p in (tmp / "dicom").iterdir() if p.is_dir()):
        number = _series_number(folder.name)
        (lying / folder.name).mkdir(parents=True)
        for f in folder.glob("*.dcm"):
            ds = pydicom.dcmread(f)
            ds.SeriesDescription = ds.ProtocolName = LIES[number]
            ds.save_as(lying / folder.name / f.name)
    lied = _run(lying, tmp / "lying-out")
    decided = {_series_number(s): (r["label"], r["decided_by"]) for s, r in rows.items()}
    assert {_series_number(s): (r["label"], r["decided_by"]) for s, r in lied.items()} == decided
    assert any(r["header_agrees"] == "false" for r in lied.values())  # the lies are flagged, not believed


def test_bids_input_with_its_sidecars_gets_the_dicom_decision(honest):
    tmp, rows = honest
    bids_in = tmp / "misnamed"
    origin = {}
    for k, (source, row) in enumerate(sorted(rows.items()), start=1):
        image = tmp / "bids" / row["bids_path"]
        stem = image.name.split(".nii")[0]
        new = bids_in / "sub-EXAMPLE01" / "anat" / f"sub-EXAMPLE01_run-{k}_T2w"
        new.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, f"{new}.nii.gz")
        for ext in (".json", ".bval", ".bvec"):
            if (image.parent / f"{stem}{ext}").is_file():
                shutil.copyfile(image.parent / f"{stem}{ext}", f"{new}{ext}")
        origin[f"sub-EXAMPLE01/anat/{new.name}.nii.gz"] = source
    (bids_in / "dataset_description.json").write_text('{"Name": "misnamed", "BIDSVersion": "1.10.1"}')
    resorted = _run(bids_in, tmp / "resorted", "--input-type", "bids")
    for source, row in resorted.items():
        dicom_row = rows[origin[source]]
        assert (row["label"], row["physics_label"]) == (dicom_row["label"], dicom_row["physics_label"]), source
