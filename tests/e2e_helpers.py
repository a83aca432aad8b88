"""Shared pieces of the end-to-end tests: model availability, tree hashes, naming checks."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bidsapp.classes import ALL_LABELS, OTHER
from bidsapp.naming import DIRECTED_SUFFIXES, PLACED_OTHER, TASK_SUFFIXES, NameRequest, entities
from bidsapp.tools import search_path

# Real DICOM series used by default; the two DTI folders (500+ files each) only with -m slow,
# except Canon's, which is the one raw multi-direction DWI (the _dwi naming path).
DICOM_SUBSET = (
    "ProstateX-0000_4_t2_tse_tra",
    "ProstateX-0000_6_ep2d_diff_tra",
    "ProstateX-0000_7_ADC",
    "ProstateX-0000_8_calc_bval",
    "ProstateX-0000_9_tfl3d_PD_ref",
    "canon_9000_DTI_PA-ortho",
    "ge_fmap_6_CV_Neuro_B0map",
    "philips_enh_1301_ADNI_Sag3D_MPRAGE",
    "philips_enh_1901_3DpCASL",
    "siemens_12bit_FMRI_AX_ASC",
)


def require_model():
    """Skip when the classifier cannot be loaded (weights not shipped yet)."""
    from bidsapp.model.predict import Classifier

    try:
        return Classifier.load(device="cpu")
    except FileNotFoundError as exc:
        pytest.skip(f"classifier weights not available: {exc}")


def converted_nifti(series: Path, out: Path) -> Path:
    """One real DICOM series converted by dcm2niix to ``out/dwi.nii`` (with its .bval/.bvec when
    it has gradients): the NIfTI a user would hand the App."""
    from bidsapp.tools import find_tool

    subprocess.run([find_tool("dcm2niix"), "-z", "n", "-f", "dwi", "-o", str(out), str(series)],
                   check=True, capture_output=True)
    return out / "dwi.nii"


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} of every file under root (following file symlinks)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if not os.path.normpath(os.path.join(rel_dir, d)).startswith(skip or ("\0",)))
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if skip and rel.startswith(skip):
                continue
            out[rel] = hashlib.sha256(Path(dirpath, name).read_bytes()).hexdigest()
    return out


def link_tree(src_dirs: list[Path], dst: Path) -> None:
    """Per-file symlinks: a cheap read-only view of shared data (discovery walks real dirs)."""
    for src in src_dirs:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                target = dst / src.name / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(path, target)


def expected_pieces(label: str, agent: str = "") -> tuple[str, str, list[str]]:
    """(datatype, suffix options, required entities) the naming table gives a label."""
    ent = entities(NameRequest(key="x", subject="x", session=None, label=label, contrast_agent=agent))
    suffixes = [ent.suffix] if ent.suffix != "dwi" else ["dwi", "trace"]
    pieces = [f"_acq-{ent.acq}_"] if ent.acq else []
    pieces += ["_ce-"] if ent.ce else []
    return ent.datatype, suffixes, pieces


def check_row_path(row: dict, root: Path) -> None:
    """A TSV row's bids_path exists and follows the naming table for its label."""
    path, label, sub = row["bids_path"], row["label"], row["participant_id"]
    assert row["status"] in ("ok", "other", "error"), row
    assert path != "n/a" and (root / path).is_file(), row
    if row["status"] == "ok":
        assert label in ALL_LABELS and label != OTHER, row
        datatype, suffixes, pieces = expected_pieces(label)
        assert path.startswith(f"{sub}/"), row
        assert f"/{datatype}/" in path, row
        stem = path.rsplit(".nii", 1)[0]
        assert any(stem.endswith(f"_{s}") for s in suffixes), row
        assert all(p in stem for p in pieces), row
        if "_ce-" not in pieces:
            assert "_ce-" not in stem, row
    elif row["status"] == "other" and not path.startswith("sourcedata/"):
        assert path.startswith(f"{sub}/") and placed_by_physics(row), row
    else:
        assert path.startswith(f"sourcedata/unclassified/{sub}/"), row
        if row["status"] == "other":  # rejected by the model, or set aside with a reason
            assert label == OTHER or row["message"] != "n/a", row


def placed_by_physics(row: dict) -> bool:
    """An "other" row that the physics witness recognised, named where BIDS has a place for it
    (``naming.PLACED_OTHER``: its folder and suffix, a task- or dir- where the suffix takes one)."""
    stem = row["bids_path"].rsplit(".nii", 1)[0]
    if row["label"] != OTHER or row["physics_label"] != OTHER:
        return False
    return any(f"/{datatype}/" in stem and re.search(rf"_{suffix}\d?$", stem)
               and ("_task-" in stem) == (suffix in TASK_SUFFIXES) and ("_dir-" in stem) == (suffix in DIRECTED_SUFFIXES)
               for datatype, suffix in PLACED_OTHER.values())


def validator_errors(root: Path) -> list[dict]:
    exe = shutil.which("bids-validator-deno", path=search_path())
    if exe is None:
        pytest.skip("bids-validator-deno not installed")
    proc = subprocess.run([exe, str(root), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    return [i for i in report["issues"]["issues"] if i["severity"] == "error"]
