"""A time series (fMRI, ASL) is told by its volumes, never by a header: it becomes "other"."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from e2e_helpers import converted_nifti, require_model
from scipy import ndimage

from bidsapp.classes import OTHER
from bidsapp.timeseries import MAX_TEMPORAL_CV, most_attenuated, sample_timecourses, time_series_reason
from bidsapp.volume import load_dicom, load_nifti, volume_from_array

SHAPE = (40, 48, 20)


def _anatomy(seed: int = 0) -> np.ndarray:
    """A textured ellipsoid: voxels differ from each other as tissues do."""
    rng = np.random.default_rng(seed)
    g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    inside = sum(((x - s / 2) / (s / 2.6)) ** 2 for x, s in zip(g, SHAPE)) <= 1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, SHAPE), 2)
    return (inside * (500 + 1500 * np.abs(texture) / np.abs(texture).max()) + np.abs(rng.normal(0, 5, SHAPE))).astype(np.float32)


def bold_run(n: int = 40, tsnr: float = 60.0, dummies: int = 0, seed: int = 0) -> np.ndarray:
    """(x, y, z, t): one image repeated with thermal noise; ``dummies`` brighter volumes first."""
    rng = np.random.default_rng(seed)
    base = _anatomy(seed)
    vols = [base * (1 + rng.normal(0, 1 / tsnr, SHAPE)) for _ in range(n)]
    for k in range(dummies):
        vols[k] = vols[k] * (2.0 - 0.3 * k)
    return np.stack(vols, axis=-1).astype(np.float32)


def dwi_run(n_b0: int = 1, n_dirs: int = 12, seed: int = 0) -> np.ndarray:
    """(x, y, z, t): b=0 volumes, then diffusion-weighted ones whose signal depends on the
    gradient direction voxel by voxel (anisotropy) and is noisy (low SNR at b=1000)."""
    rng = np.random.default_rng(seed)
    base = _anatomy(seed)
    fibres = ndimage.gaussian_filter(rng.normal(0, 1, SHAPE + (3,)), (2, 2, 2, 0))
    fibres /= np.linalg.norm(fibres, axis=-1, keepdims=True) + 1e-6
    vols = [base.copy() for _ in range(n_b0)]
    for _ in range(n_dirs):
        g = rng.normal(0, 1, 3)
        g /= np.linalg.norm(g)
        adc = 0.7e-3 * (0.6 + 0.8 * (fibres @ g) ** 2)
        vols.append(base * np.exp(-1000 * adc) * (1 + rng.normal(0, 0.08, SHAPE)))
    return np.stack(vols, axis=-1).astype(np.float32)


def _reason(data: np.ndarray, b_values=()) -> str:
    return time_series_reason(sample_timecourses(np.moveaxis(data, 3, 0)), tuple(b_values))


def test_bold_and_asl_like_runs_are_time_series():
    assert "time series: 40 volumes" in _reason(bold_run())
    assert _reason(bold_run(tsnr=15, n=30, seed=1)), "a noisy multiband run still repeats one image"
    assert _reason(bold_run(dummies=3, seed=2)), "non-steady-state volumes at the start are set aside"


def test_diffusion_series_are_not_time_series_even_without_b_values():
    assert _reason(dwi_run()) == ""
    assert _reason(dwi_run(n_b0=0, n_dirs=30, seed=3)) == "", "diffusion-weighted volumes alone still differ"
    assert _reason(bold_run(), b_values=[0] + [1000] * 39) == "", "known diffusion is never a time series"


def test_short_or_empty_series_say_nothing():
    assert _reason(bold_run(n=4)) == ""
    assert time_series_reason(None) == ""
    assert sample_timecourses(np.zeros((6,) + SHAPE, np.float32)) is None


def test_reduced_huge_series_path_samples_the_same_way(tmp_path: Path):
    """``load_nifti`` reads series above ``max_voxels`` slice-thinned, one volume at a time: the
    time courses it samples must still tell a BOLD run from a DWI."""
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    for name, data, expect in (("bold", bold_run(), True), ("dwi", dwi_run(), False)):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), path)
        whole, reduced = load_nifti(path), load_nifti(path, max_voxels=SHAPE[0] * SHAPE[1] * 8)
        assert reduced.data.shape[2] < SHAPE[2]  # it did take the reduced path
        for vol in (whole, reduced):
            assert vol.timecourses.shape[0] == data.shape[3]
            assert bool(time_series_reason(vol.timecourses, vol.b_values)) is expect, name


def test_real_diffusion_volumes_vary_far_more_than_a_time_series(real_data: Path, tmp_path: Path):
    """The real DTI series, b-values withheld (a NIfTI without its .bval), are not time series:
    even their diffusion-weighted volumes alone differ well above the bar."""
    for name in ("philips_dwi_DTI_Biobank", "canon_9000_DTI_PA-ortho"):
        vol = load_dicom(sorted((real_data / "dicom" / name).iterdir()), work_dir=tmp_path)
        assert vol.n_volumes > 10 and vol.timecourses.shape[0] == vol.n_volumes
        assert time_series_reason(vol.timecourses, ()) == "", name
        dw = vol.timecourses[np.asarray(vol.b_values) > 50]
        cv = np.median(dw.std(axis=0) / dw.mean(axis=0))
        assert cv > 1.3 * MAX_TEMPORAL_CV, (name, cv)


def test_classifier_keeps_probabilities_and_says_why():
    require_model()
    from bidsapp.model.predict import shared_classifier

    clf = shared_classifier("cpu")
    bold = volume_from_array(bold_run(), np.diag([3.0, 3.0, 3.0, 1.0]))
    c = clf.classify(bold)
    assert c.label == OTHER and c.open_set_rejected and "time series" in c.reason
    assert c.best_label and abs(c.confidence - (1 - c.probabilities[c.best_label])) < 1e-3
    single = volume_from_array(bold_run()[..., 0], np.diag([3.0, 3.0, 3.0, 1.0]))
    assert clf.classify(single).reason == ""  # one volume: the network alone decides


@pytest.mark.parametrize("with_bval", [False, True])
def test_bids_input_time_series_row_says_why(tmp_path: Path, with_bval: bool):
    """A BIDS input's 4D run (misnamed _dwi) ends as "other" with the reason in its TSV row and
    sidecar; the same run with diffusion b-values beside it is left to the network."""
    require_model()
    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv

    src = tmp_path / "in"
    dwi = src / "sub-01" / "dwi"
    dwi.mkdir(parents=True)
    (src / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.10.0"}')
    nib.save(nib.Nifti1Image(bold_run(n=12), np.diag([3.0, 3.0, 3.0, 1.0])), dwi / "sub-01_dwi.nii.gz")
    if with_bval:
        (dwi / "sub-01_dwi.bval").write_text(" ".join(["0"] + ["1000"] * 11) + "\n")
        (dwi / "sub-01_dwi.bvec").write_text("\n".join(" ".join(["0"] + ["1"] * 11) for _ in range(3)) + "\n")
    out = tmp_path / "out"
    assert main([str(src), str(out), "participant"]) == 0
    (row,) = read_tsv(out / "sub-01" / "sub-01_classifications.tsv")
    if with_bval:
        assert "time series" not in row["message"]
    else:
        assert row["label"] == OTHER and row["status"] == "other" and "time series" in row["message"]


def test_dicom_time_series_is_other_inside_heudiconv(tmp_path: Path):
    """A DICOM BOLD-like run (8 timepoints of the same 6 slice positions) goes through the
    heuristic: kept under sourcedata/unclassified, its row saying why, the validator content."""
    require_model()
    import pydicom
    from dicomgen import write_series
    from e2e_helpers import validator_errors

    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv

    positions, timepoints, size = 6, 8, 32
    run = bold_run(n=timepoints)[4:36, 8:40, 7:13]  # (32, 32, 6, t): the head's middle
    paths = write_series(tmp_path / "in" / "bold", series_description="rest_bold", series_number=5,
                         n_slices=positions * timepoints, size=size)
    for i, path in enumerate(paths):
        t, z = divmod(i, positions)
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * 3.0]
        ds.SliceLocation = float(z) * 3.0
        ds.PixelSpacing, ds.SliceThickness = [3.0, 3.0], 3.0
        ds.AcquisitionNumber = ds.TemporalPositionIdentifier = t + 1
        ds.AcquisitionTime = f"1200{t:02d}.000000"
        ds.PixelData = np.round(run[..., z, t]).astype(np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
    out = tmp_path / "out"
    assert main([str(tmp_path / "in"), str(out), "participant"]) == 0
    (row,) = read_tsv(out / "derivatives" / "mrclass" / "sub-P01" / "sub-P01_classifications.tsv")
    assert row["label"] == OTHER and row["status"] == "other" and "time series: 8 volumes" in row["message"], row
    assert row["bids_path"].startswith("sourcedata/unclassified/") and (out / row["bids_path"]).is_file()
    assert validator_errors(out) == []


# ------------------------------------------------- diffusion read by its volumes when b-values are lost
def test_without_b_values_a_dwi_is_read_by_its_dimmest_shell():
    """A DWI NIfTI without its .bval: the b=0 volumes are set aside as b-values would set them."""
    data = dwi_run(n_b0=2, n_dirs=12)
    blind = volume_from_array(data, np.eye(4))
    told = volume_from_array(data, np.eye(4), b_values=(0, 0) + (1000,) * 12)
    np.testing.assert_allclose(blind.data, data[..., 2:].mean(axis=-1), rtol=1e-5)
    np.testing.assert_allclose(blind.data, told.data, rtol=1e-5)
    assert blind.b_values == ()  # nothing is claimed that the file did not say


def test_a_run_of_one_image_keeps_its_volumes_but_not_its_bright_first_ones():
    run = bold_run()
    np.testing.assert_allclose(volume_from_array(run, np.eye(4)).data, run.mean(axis=-1), rtol=1e-5)
    settling = bold_run(dummies=3, seed=2)  # 2.0x, 1.7x, 1.4x the steady state
    assert most_attenuated(sample_timecourses(np.moveaxis(settling, 3, 0))) == list(range(3, 40))
    assert most_attenuated(None) is None and most_attenuated(sample_timecourses([run[..., 0]])) is None


def test_reduced_huge_series_path_reads_the_dimmest_shell_too(tmp_path: Path):
    data = dwi_run(n_b0=2, n_dirs=12)
    path = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0])), path)
    reduced = load_nifti(path, max_voxels=SHAPE[0] * SHAPE[1] * 8)
    step = -(-SHAPE[2] // 8)
    np.testing.assert_allclose(reduced.data, data[:, :, ::step, 2:].mean(axis=-1), rtol=1e-5)


@pytest.mark.parametrize("name", ["philips_dwi_DTI_Biobank", "canon_9000_DTI_PA-ortho",
                                  "ProstateX-0000_6_ep2d_diff_tra"])
def test_real_dwi_without_its_bval_is_read_and_named_as_with_it(real_data: Path, tmp_path: Path, name: str):
    """Real DTI and prostate trace series converted to NIfTI, once with the .bval and once without:
    the same image reaches the network. Before, the lost .bval blended the b=0 volumes in and the
    Philips DTI became "other" (best guess T2w)."""
    with_bval, bare = tmp_path / "with", tmp_path / "bare"
    with_bval.mkdir()
    bare.mkdir()
    nifti = converted_nifti(real_data / "dicom" / name, with_bval)
    (bare / nifti.name).write_bytes(nifti.read_bytes())
    told, blind = load_nifti(nifti), load_nifti(bare / nifti.name)
    assert told.b_values and not blind.b_values
    np.testing.assert_allclose(blind.data, told.data, rtol=1e-5)
    classifier = require_model()
    assert classifier.classify(blind).label == classifier.classify(told).label != OTHER
