"""The on-disk simulated validation set: simulated once, read back identical, never stale."""

import shutil

import numpy as np
import pytest

from bidsapp.train import validation
from bidsapp.train.validation import validation_set
from bidsapp.volume import SPEC


def counting_build(calls: list):
    def build():
        calls.append(1)
        rng = np.random.default_rng(len(calls))
        return (rng.random((3, 2, 4, 4)).astype(np.float16), rng.random((3, 5)).astype(np.float32),
                ["T1w", "other", "FLAIR"], ["t1_mprage", "tof", "flair"])
    return build


def test_second_request_reads_the_file_without_building(tmp_path):
    calls = []
    params = {"n": 3, "seed": 1}
    first = validation.cached(tmp_path, params, "phantom", counting_build(calls))
    second = validation.cached(tmp_path, params, "phantom", counting_build(calls))
    assert len(calls) == 1
    assert np.array_equal(first[0], second[0]) and second[0].dtype == np.float16
    assert np.array_equal(first[1], second[1])
    assert second[2] == ["T1w", "other", "FLAIR"] and second[3] == ["t1_mprage", "tof", "flair"]
    assert [p.name for p in tmp_path.iterdir()] == [f"validation-{validation.cache_key(params, 'phantom')}.npz"]


def test_other_parameters_or_no_folder_build_again(tmp_path):
    calls = []
    validation.cached(tmp_path, {"n": 3, "seed": 1}, "phantom", counting_build(calls))
    validation.cached(tmp_path, {"n": 3, "seed": 2}, "phantom", counting_build(calls))
    assert len(calls) == 2 and len(list(tmp_path.iterdir())) == 2
    validation.cached(None, {"n": 3, "seed": 1}, "phantom", counting_build(calls))
    assert len(calls) == 3 and len(list(tmp_path.iterdir())) == 2


def test_an_interrupted_build_leaves_no_file(tmp_path):
    def failing():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        validation.cached(tmp_path, {"n": 3}, "phantom", failing)
    assert list(tmp_path.iterdir()) == []


def test_key_follows_simulator_code_and_anatomy_files(tmp_path, monkeypatch):
    package = tmp_path / "package"
    for name in validation.SOURCES:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(validation._PACKAGE / name, package / name)
    monkeypatch.setattr(validation, "_PACKAGE", package)
    anatomy = tmp_path / "anatomy"
    (anatomy / "brainweb").mkdir(parents=True)
    (anatomy / "brainweb" / "subject04.nii.gz").write_bytes(b"x" * 10)
    params = {"n": 3}
    key = validation.cache_key(params, str(anatomy))
    assert validation.cache_key(params, str(anatomy)) == key
    with open(package / "train" / "simulate.py", "a") as f:
        f.write("\n# a changed simulator\n")
    changed_code = validation.cache_key(params, str(anatomy))
    assert changed_code != key
    (anatomy / "brainweb" / "subject05.nii.gz").write_bytes(b"y")
    assert validation.cache_key(params, str(anatomy)) != changed_code


def test_training_validation_set_round_trips_through_the_cache(tmp_path):
    built = validation_set("phantom", 4, 7, SPEC, cache=tmp_path)
    read = validation_set("phantom", 4, 7, SPEC, cache=tmp_path)
    fresh = validation_set("phantom", 4, 7, SPEC)
    assert np.array_equal(built[0], read[0]) and np.array_equal(built[0], fresh[0])
    assert built[2] == read[2] == fresh[2] and built[3] == read[3]
    assert read[0].shape[1] == SPEC.n_slices


def test_protocols_round_trip_through_the_cache(tmp_path):
    """The fused calibration writes each series' synthetic header from its protocol: the cached
    set must give back the very protocols the series were rendered with."""
    from bidsapp.train.validation import validation_series

    built = validation_series("phantom", 4, 7, SPEC, cache=tmp_path)
    read = validation_series("phantom", 4, 7, SPEC, cache=tmp_path)
    assert len(built[4]) == 4 and built[4] == read[4]
    assert [p.label for p in read[4]] == read[2] and [p.kind for p in read[4]] == read[3]


def test_a_set_cached_without_protocols_is_refused_for_the_series_view(tmp_path, monkeypatch):
    from bidsapp.train.validation import validation_series

    monkeypatch.setattr(validation, "simulate_set", lambda *a: counting_build([])())
    with pytest.raises(ValueError, match="without its protocols"):
        validation_series("phantom", 3, 1, SPEC, cache=tmp_path)
