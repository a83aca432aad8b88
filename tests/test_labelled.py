"""Real labelled series for fine-tuning: labels.tsv checks, NIfTI and DICOM loading, draws."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bidsapp.classes import LABELS
from bidsapp.train import train
from bidsapp.train import labelled
from bidsapp.train.labelled import LabelledSeries, LabelledVolume, labelled_sample, load_labelled, read_label_rows
from bidsapp.volume import SPEC, native_slices, volume_from_array

from dicomgen import write_series


def _write_tsv(path, rows, header=("path", "label", "site")):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


def _head(shape=(72, 72, 72)) -> np.ndarray:
    """A bright ball with a gradient across it in a dark field: foreground for every view."""
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return ((sum(g**2 for g in grid) < 0.6) * 1000.0 * (1.5 + grid[0])).astype(np.float32)


def test_unknown_label_and_missing_column_are_refused_with_where(tmp_path):
    tsv = _write_tsv(tmp_path / "labels.tsv", [("a.nii.gz", "T1w", "x"), ("b.nii.gz", "T1", "x")])
    with pytest.raises(ValueError, match=r"labels.tsv:3: unknown label 'T1'"):
        read_label_rows(tsv)
    with pytest.raises(ValueError, match="missing column.*scanner"):
        read_label_rows(tsv, group_column="scanner")


def test_nifti_and_dicom_series_load_with_their_label_and_source(tmp_path):
    nib.save(nib.Nifti1Image(_head(), np.eye(4)), tmp_path / "head.nii.gz")
    write_series(tmp_path / "dicom" / "s1", n_slices=6, size=32)
    tsv = _write_tsv(tmp_path / "labels.tsv", [("head.nii.gz", "T2w", "siteA"), ("dicom/s1", "other", "siteB")])
    items = load_labelled(tsv, tmp_path, group_column="site")
    assert [(i.label, i.group) for i in items] == [("T2w", "siteA"), ("other", "siteB")]
    assert items[0].volume.data.shape == (72, 72, 72)
    assert items[1].volume.data.shape[2] == 6  # the DICOM series' six slices, read by dcm2niix
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_labelled(_write_tsv(tmp_path / "bad.tsv", [("missing.nii.gz", "T1w", "s")]), tmp_path)


def test_draws_of_a_3d_volume_cut_every_view_and_keep_the_target(monkeypatch):
    axes = []

    def recording(*args, axis=None, **kwargs):
        axes.append(axis)
        return native_slices(*args, axis=axis, **kwargs)

    monkeypatch.setattr(labelled, "native_slices", recording)
    data = _head((72, 80, 88))  # isotropic 1 mm, >= 64 slices every way: three views
    item = LabelledVolume("v", "FLAIR", "g", volume_from_array(data, np.eye(4)))
    rng = np.random.default_rng(0)
    for _ in range(30):
        stack, geometry, target = labelled_sample(rng, item, 4)
        assert stack.shape == (4, SPEC.size, SPEC.size) and stack.dtype == np.float32
        assert (stack > 0).any()
        assert target.sum() == 1 and target[LABELS.index("FLAIR")] == 1
    assert set(axes) == {0, 1, 2}
    thick = LabelledVolume("t", "T2w", "g", volume_from_array(data[:, :, ::5], np.diag([1.0, 1.0, 5.0, 1.0])))
    axes.clear()
    for _ in range(10):
        labelled_sample(rng, thick, 4)
    assert set(axes) == {2}  # a 2D multi-slice series keeps its acquisition plane
    other = LabelledVolume("o", "other", "g", volume_from_array(data, np.eye(4)))
    assert labelled_sample(rng, other, 4)[2].sum() == 0  # the open set has all-zero targets


def test_stream_is_seeded_and_refuses_nothing_to_draw():
    item = LabelledVolume("v", "T1w", "g", volume_from_array(_head(), np.eye(4)))
    a = [x[0] for _, x in zip(range(3), LabelledSeries([item], 2, seed=5))]
    b = [x[0] for _, x in zip(range(3), LabelledSeries([item], 2, seed=5))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="no labelled series"):
        LabelledSeries([], 2, seed=5)


def test_training_cli_fine_tunes_on_labelled_dicom(tmp_path):
    write_series(tmp_path / "data" / "t1", n_slices=6, size=32)
    tsv = _write_tsv(tmp_path / "data" / "labels.tsv", [("t1", "T1w")], header=("path", "label"))
    out = tmp_path / "run"
    assert train.main(["--anatomy", "phantom", "--out", str(out), "--steps", "2", "--batch", "4",
                       "--train-slices", "2", "--val-size", "6", "--workers", "0", "--threads", "1",
                       "--finetune-labels", str(tsv), "--finetune-root", str(tmp_path / "data"),
                       "--finetune-fraction", "0.5"]) == 0
    card = json.loads((out / "mrclass.json").read_text())
    assert card["training"]["finetune_labels"] == str(tsv)
