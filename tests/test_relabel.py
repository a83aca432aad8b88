"""A person's corrections (``--relabel``) and reruns that rename series: the corrected series
takes the person's label, and files of names a rerun no longer uses are removed (images,
sidecars, scans.tsv rows), in both input paths."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from e2e_helpers import require_model, validator_errors

from bidsapp import relabel, stale
from bidsapp.classes import LABELS
from bidsapp.cli.run import main
from bidsapp.derivatives import read_tsv
from bidsapp.example import write_example
from bidsapp.records import Classification, Series, SeriesResult

# --------------------------------------------------------------------------- the corrections file


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_accepts_an_edited_classifications_table(tmp_path):
    """Extra columns are ignored and rows with an empty label skipped, so a user can pass the
    rows of sub-X_classifications.tsv they corrected."""
    f = _write(tmp_path / "fix.tsv", "participant_id\tseries_uid\tlabel\tconfidence\n"
               "sub-01\t1.2.3\tFLAIR\t0.41\nsub-01\t1.2.4\tn/a\tn/a\nsub-01\t1.2.5\tother\t0.9\n")
    assert relabel.read(f) == {"1.2.3": "FLAIR", "1.2.5": "other"}


@pytest.mark.parametrize("text, message", [
    ("uid\tlabel\n1\tT1w\n", "missing series_uid"),
    ("series_uid\tlabel\n1.2\tT1\n", "line 2: unknown label 'T1'"),
    ("series_uid\tlabel\n1.2\tT1w\n1.2\tT2w\n", "line 3: 1.2 is given two labels"),
    ("series_uid\tlabel\n\tT2w\n", "line 2: empty series_uid"),
    ("series_uid\tlabel\n", "no rows"),
])
def test_read_refuses_what_it_cannot_apply(tmp_path, text, message):
    with pytest.raises(relabel.RelabelError, match=message):
        relabel.read(_write(tmp_path / "fix.tsv", text))


def test_apply_keeps_the_models_record():
    probs = dict.fromkeys(LABELS, 0.01) | {"T2w": 0.62}
    model = Classification("other", 0.38, probs, True, 0.675, "T2w")
    person = relabel.apply(model, "FLAIR")
    assert (person.label, person.confidence, person.decided_by) == ("FLAIR", 1.0, "person")
    assert (person.probabilities, person.best_label, person.open_set_rejected) == (probs, "T2w", True)
    assert model.decided_by == "content"


# --------------------------------------------------------------------------- stale outputs


def _result(uid: str, bids_path: str, status: str = "ok") -> SeriesResult:
    s = Series("01", None, uid, uid, (), "nifti")
    return SeriesResult(s, None, bids_path=bids_path, status=status)


def test_replaced_files_spares_failed_series_and_names_now_in_use():
    previous = {"a": "sub-01/anat/sub-01_T2w.nii.gz", "b": "sub-01/anat/sub-01_run-1_FLAIR.nii.gz",
                "c": "sub-01/anat/sub-01_T1w.nii.gz", "d": "sub-01/dwi/sub-01_dwi.nii.gz"}
    results = [
        _result("a", "sub-01/anat/sub-01_run-1_FLAIR.nii.gz"),  # renamed, into b's old name
        _result("b", "sub-01/anat/sub-01_run-2_FLAIR.nii.gz"),  # renamed: its old name is a's now
        _result("c", "", status="error"),  # failed this time: keeps its earlier output
        _result("d", "sub-01/dwi/sub-01_dwi.nii.gz"),  # unchanged
    ]
    written = {r.bids_path for r in results if r.bids_path}
    assert stale.replaced_files(previous, results, written, lambda p: [p]) == ["sub-01/anat/sub-01_T2w.nii.gz"]


def test_remove_takes_sidecars_scans_row_and_empty_folders(tmp_path):
    out, deriv = tmp_path / "out", tmp_path / "out" / "derivatives" / "mrclass"
    image = "sub-01/ses-A/anat/sub-01_ses-A_T2w.nii.gz"
    kept = "sub-01/ses-A/dwi/sub-01_ses-A_dwi.nii.gz"
    for rel in (image, kept, image.replace(".nii.gz", ".json"), kept.replace(".nii.gz", ".bval")):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"x")
    sidecar = deriv / image.replace(".nii.gz", "_mrclass.json")
    sidecar.parent.mkdir(parents=True)
    sidecar.write_text("{}")
    scans = out / "sub-01/ses-A/sub-01_ses-A_scans.tsv"
    scans.write_text("filename\tacq_time\nanat/sub-01_ses-A_T2w.nii.gz\tn/a\ndwi/sub-01_ses-A_dwi.nii.gz\tn/a\n")
    stale.remove(out, deriv, [image])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "sub-01/ses-A/dwi/sub-01_ses-A_dwi.bval", kept, "sub-01/ses-A/sub-01_ses-A_scans.tsv"]
    assert scans.read_text() == "filename\tacq_time\ndwi/sub-01_ses-A_dwi.nii.gz\tn/a\n"
    assert not (out / "sub-01/ses-A/anat").exists() and not (deriv / "sub-01").exists()


# --------------------------------------------------------------------------- end to end


def _rows(table: Path) -> dict[str, dict]:
    return {r["source"]: r for r in read_tsv(table)}


def _images(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.nii*") if "derivatives" not in p.parts)


def _scans_entries(out: Path) -> list[str]:
    return sorted(f"{scans.parent.relative_to(out).as_posix()}/{r['filename']}"
                  for scans in out.rglob("*_scans.tsv") for r in read_tsv(scans))


def test_bids_input_relabel_then_rerun_without_it(tmp_path):
    """BIDS input: a person's label names the file; dropping the correction restores the model's."""
    require_model()
    src, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(0)
    for name in ("sub-01_run-1_T1w", "sub-01_run-2_T1w"):
        path = src / "sub-01" / "anat" / f"{name}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(rng.random((24, 24, 12)).astype(np.float32), np.diag([1, 1, 3, 1])), path)
        path.with_name(f"{name}.json").write_text('{"SeriesDescription": "misc"}')
    assert main([str(src), str(out), "participant", "--threshold", "1"]) == 0  # both "other"
    before = _images(out)
    table = out / "sub-01" / "sub-01_classifications.tsv"
    uid = _rows(table)["sub-01/anat/sub-01_run-1_T1w.nii.gz"]["series_uid"]
    fix = _write(tmp_path / "fix.tsv", f"series_uid\tlabel\n{uid}\tFLAIR\n")

    assert main([str(src), str(out), "participant", "--threshold", "1", "--relabel", str(fix)]) == 0
    row = _rows(table)["sub-01/anat/sub-01_run-1_T1w.nii.gz"]
    assert (row["label"], row["decided_by"], row["status"]) == ("FLAIR", "person", "ok")
    assert row["bids_path"] == "sub-01/anat/sub-01_FLAIR.nii.gz"
    assert (out / "sub-01/anat/sub-01_FLAIR.json").is_file()
    sidecar = json.loads((out / "sub-01/anat/sub-01_FLAIR_mrclass.json").read_text())
    assert sidecar["DecidedBy"] == "person" and sidecar["Label"] == "FLAIR" and sidecar["Confidence"] == 1.0
    assert _images(out) == sorted(r["bids_path"] for r in _rows(table).values()), "no file of an old name is left"
    assert "sourcedata/unclassified/sub-01/misc.nii.gz" in _images(out), "the other series lost its run- entity"
    page = (out / "sub-01.html").read_text()
    assert 'data-decided-by="person"' in page and "set by a person" in page
    assert main([str(src), str(out), "group"]) == 0
    assert 'data-n-person="1"' in (out / "group.html").read_text()

    assert main([str(src), str(out), "participant", "--threshold", "1"]) == 0
    assert _images(out) == before
    assert not list(out.rglob("*FLAIR*"))


def test_relabel_refuses_a_bad_file_before_doing_anything(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_example(src)
    fix = _write(tmp_path / "fix.tsv", "series_uid\tlabel\n1.2.3\tT1-weighted\n")
    assert main([str(src), str(out), "participant", "--relabel", str(fix)]) == 2
    assert not out.exists()


@pytest.fixture(scope="module")
def dicom_relabel(tmp_path_factory):
    """The example study, converted, then rerun with two corrections: T2w → FLAIR, localizer → T1w."""
    require_model()
    tmp = tmp_path_factory.mktemp("relabel_dicom")
    src, out = tmp / "dicom", tmp / "bids"
    write_example(src)
    first_rc = main([str(src), str(out), "participant", "--threshold", "0"])
    table = out / "derivatives/mrclass/sub-EXAMPLE01/sub-EXAMPLE01_classifications.tsv"
    first = _rows(table)
    fix = _write(tmp / "fix.tsv", "series_uid\tlabel\n" + "".join(
        f"{first[source]['series_uid']}\t{label}\n" for source, label in (("03_t2_tse_tra", "FLAIR"), ("01_localizer", "other"))))
    rc = main([str(src), str(out), "participant", "--threshold", "0", "--relabel", str(fix)])
    return {"out": out, "rc": (first_rc, rc), "first": first, "second": _rows(table)}


def test_dicom_relabel_names_by_the_persons_label(dicom_relabel):
    assert dicom_relabel["rc"] == (0, 0)
    first, second = dicom_relabel["first"], dicom_relabel["second"]
    assert second["03_t2_tse_tra"]["label"] == "FLAIR" and second["03_t2_tse_tra"]["decided_by"] == "person"
    assert second["03_t2_tse_tra"]["bids_path"].endswith("_FLAIR.nii.gz")
    assert second["01_localizer"]["bids_path"].startswith("sourcedata/unclassified/")
    untouched = set(first) - {"03_t2_tse_tra", "01_localizer"}
    assert all(second[s]["decided_by"] in ("content", "content+physics", "physics") and second[s]["label"] == first[s]["label"] for s in untouched)


def test_dicom_rerun_leaves_no_file_of_an_old_name(dicom_relabel):
    out, second = dicom_relabel["out"], dicom_relabel["second"]
    written = sorted(r["bids_path"] for r in second.values())
    from bidsapp.convert import series_images

    images = sorted(p for path in written for p in series_images(out, path))  # a field map's magnitude1 and 2
    assert _images(out) == images, "every image of every series, none left from the first run's names"
    assert _scans_entries(out) == images, "heudiconv's scans tables list exactly the files there are"
    sidecars = sorted(p.relative_to(out / "derivatives/mrclass").as_posix().replace("_mrclass.json", ".nii.gz")
                      for p in (out / "derivatives/mrclass").rglob("*_mrclass.json"))
    assert sidecars == written


def test_dicom_relabelled_dataset_is_valid_bids(dicom_relabel):
    assert validator_errors(dicom_relabel["out"]) == []


def test_a_persons_label_is_not_flagged_against_the_header():
    from bidsapp.report.html import flags_for

    assert flags_for("FLAIR", 0.99, "T2w", "ok").disagree
    assert not flags_for("FLAIR", 1.0, "T2w", "ok", decided_by="person").any
