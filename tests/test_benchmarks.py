"""benchmarks/: every script answers --help, the measuring helpers work, and the renderer turns
real classifier_speed output (2 small real series, 1 repetition) into the docs page with the
bars checked (met / missed by how much)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
#: Every script: the commands the docs quote at the top of benchmarks/, the research probes in
#: benchmarks/studies/ (benchlib is their shared helpers, not a script).
SCRIPTS = sorted(p.relative_to(BENCH).with_suffix("").as_posix()
                 for p in (*BENCH.glob("*.py"), *BENCH.glob("studies/*.py")) if p.stem != "benchlib")
TINY = ("ProstateX-0000_7_ADC", "niivue_register/dwi.nii.gz")  # one DICOM and one NIfTI, both small


def tiny_labels(real_data: Path, folder: Path) -> list[dict]:
    """The ``TINY`` rows of the real set, written as ``folder/labels.tsv`` with absolute paths:
    a two-series development set for a study's ``--data``."""
    rows = [r for r in module("benchlib").read_labels(real_data) if any(m in r["path"] for m in TINY)]
    (folder / "labels.tsv").write_text("path\tlabel\n" + "".join(
        f"{real_data / r['path']}\t{r['label']}\n" for r in rows))
    return rows


def module(name: str):
    """The script ``benchmarks/<name>.py`` (``name`` like "scaling" or "studies/epi_grain") as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_test_{name.replace('/', '_')}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name):
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout


def test_run_all_help():
    proc = subprocess.run(["bash", str(BENCH / "run_all.sh"), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--quick" in proc.stdout


def test_missing_data_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "scaling.py"), "--data", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "labels.tsv is missing" in proc.stderr


def test_measure_reports_time_and_tree_memory():
    lib = module("benchlib")
    m = lib.measure([sys.executable, "-c", "import time; b = bytearray(50 * 2**20); time.sleep(0.3)"])
    assert m.returncode == 0 and m.wall_s >= 0.3
    assert m.peak_process_mb >= 50
    if lib.proc_available():
        assert m.peak_tree_mb >= 50


def test_percentile_matches_numpy_default():
    lib = module("benchlib")
    assert lib.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert lib.median([3, 1, 2]) == 2
    assert lib.percentile([], 50) is None


def test_empty_results_render_as_not_run():
    text = module("render").render({})
    assert text.count("Not run yet") == 5
    assert "not measured" in text and "missed" not in text


def test_decision_section_tabulates_every_condition_and_names_the_misses():
    """One condition right everywhere, one with a miss: the table has both, the miss is named."""
    def series(right):
        return {"source": "s1", "truth": "T2w", "label": "T2w" if right else "other", "right": right}
    result = {"results": {
        "both": {"right": 2, "n": 2, "accuracy": 1.0, "wilson95": [0.34, 1.0], "other_rejected": 1.0,
                 "series": [series(True)]},
        "content": {"right": 1, "n": 2, "accuracy": 0.5, "wilson95": [0.09, 0.91], "other_rejected": 1.0,
                    "series": [series(False)]}}}
    text = module("render").decision_section(result)
    assert "| default (content and physics decide) | 2 of 2 | 100% (34%-100%) | 100% |" in text
    assert "| `--decide-by content` | 1 of 2 | 50% (9%-91%) |" in text
    assert "s1 (T2w named other, `--decide-by content`)" in text and text.count("s1") == 1


def test_scaling_and_e2e_verdicts_say_by_how_much():
    scaling, end_to_end, render = module("scaling"), module("end_to_end"), module("render")
    run = module("benchlib").Conversion
    points = [scaling.Point(1, 0, run(5.0, 0, 1, 400.0, 390.0)), scaling.Point(10, 0, run(14.0, 0, 10, 520.0, 400.0))]
    s = scaling.summarise(points, tolerance=0.10)
    assert s["marginal_s_per_series"] == 1.0 and not s["memory_flat"]
    flat, limit = render.scaling_checks({"summary": s})
    assert flat.met is False and "beyond the 10% tolerance" in flat.shortfall and limit.met
    reps = [end_to_end.Rep("mrclass-bids", 0, run(9.0, 0, 5, 500.0, 450.0)),
            end_to_end.Rep("heudiconv-reproin", 0, run(3.0, 0, 5, 100.0, 90.0))]
    e2e = {"summary": end_to_end.summarise(reps), "config": {"series": [{}] * 5, "reps": 1}}
    (check,) = render.e2e_checks(e2e)
    assert check.met is False and check.verdict() == "**missed** by 1.00x (50% over the target)"


def test_render_real_classifier_speed_output(real_data, tmp_path):
    if not (REPO / "bidsapp" / "model" / "weights" / "mrclass.pt").is_file():
        pytest.skip("no model weights")
    out = tmp_path / "classifier_speed.json"
    cmd = [sys.executable, str(BENCH / "classifier_speed.py"), "--data", str(real_data), "--reps", "1",
           "--threads", "1", "--json", str(out)]
    for m in TINY:
        cmd += ["--match", m]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["threads"] == 1 and run["torch_threads"] == 1 and run["peak_rss_mb"] > 0
    assert [s["error"] for s in run["series"]] == ["", ""]
    assert {s["format"] for s in run["series"]} == {"dicom", "nifti"}
    assert run["summary"]["all"]["n"] == 2 and run["summary"]["all"]["network"]["median"] > 0

    render = module("render")
    text = render.render({"classifier_speed": result})
    assert "| 1 | all | 2 |" in text and "## Classifier speed (CPU)" in text
    assert "CPU inference (network only)" in text and "CPU:" in text

    result["config"]["target_s"] = 1e-6  # every series is slower than this: the page must say by how much
    missed = render.render({"classifier_speed": result})
    assert "**missed** by" in missed and "bar(s) missed" in missed


def test_perturbation_probe_follows_the_true_class(real_data, tmp_path):
    """Unperturbed, the probe reports exactly what the classifier says of the series' true class;
    a perturbation that changes the input changes that probability."""
    from bidsapp.model.predict import Classifier
    from bidsapp.train.evaluate import load_any

    rows = [r for r in module("benchlib").read_labels(real_data) if any(m in r["path"] for m in TINY)]
    (tmp_path / "labels.tsv").write_text("path\tlabel\n" + "".join(
        f"{real_data / r['path']}\t{r['label']}\n" for r in rows) + f"{real_data / rows[0]['path']}\tother\n")
    probe = module("studies/perturbation_probe")
    classifier = Classifier.load("cpu")
    found, summary = probe.probe(classifier, tmp_path, seed=0)
    assert [f["label"] for f in found] == [r["label"] for r in rows]  # "other" rows have no true class
    for f in found:
        expected = classifier.classify(load_any(real_data / Path(f["path"]).relative_to(real_data))).probabilities[f["label"]]
        assert abs(f["true_class_probability"]["none"] - expected) <= 5e-5  # classify rounds to 4 places
        assert f["true_class_probability"]["gamma 1.6"] != f["true_class_probability"]["none"]
    assert summary["none"]["at_or_above_threshold"] == sum(
        f["true_class_probability"]["none"] >= classifier.threshold for f in found)


def test_derived_maps_are_physiological_and_classified(real_data, tmp_path):
    """The ADC map derived from the real Philips DTI has brain-tissue values (10^-6 mm^2/s) and CSF
    far above them, the trace is darker than b=0, FA is high in white matter only, and the check
    classifies all three maps."""
    maps = module("derived_maps")
    data, b, g, affine = maps.raw_diffusion(real_data / "dicom" / "philips_dwi_DTI_Biobank", tmp_path)
    derived = maps.derived_maps(data, b, g)
    adc = derived["ADC"][derived["ADC"] > 0]
    assert 500 < np.median(adc) < 1300 and np.percentile(adc, 98) > 2000, np.percentile(adc, [50, 98])
    s0 = data[..., b < 50].mean(axis=-1)
    assert derived["trace"].mean() < 0.6 * s0.mean()
    fa = derived["FA"][derived["ADC"] > 0] / 1000  # white matter's FA high, the median voxel's low
    assert np.percentile(fa, 95) > 0.45 and np.median(fa) < 0.35, np.percentile(fa, [50, 95])

    from bidsapp.classes import ALL_LABELS
    from bidsapp.model.predict import Classifier

    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "labels.tsv").write_text(f"path\tlabel\n{(real_data / 'dicom' / 'philips_dwi_DTI_Biobank').resolve()}\tDWI\n")
    rows = maps.check(Classifier.load("cpu"), tmp_path / "one")
    assert [r["map"] for r in rows] == ["ADC", "trace", "FA"] and all(r["label"] in ALL_LABELS for r in rows)


def test_end_to_end_copies_make_one_participant_of_new_series(real_data, tmp_path):
    """--copies 2: every series twice, the copy with its own UIDs and series number, same patient."""
    import pydicom

    e2e = module("end_to_end")
    folders = e2e.participant_series(real_data, ["ProstateX-0000_7*"])
    made = e2e.build_input(real_data, folders, tmp_path / "in", copies=2)
    assert [m["series"] for m in made] == ["ProstateX-0000_7_ADC", "ProstateX-0000_7_ADC_copy1"]
    heads = [pydicom.dcmread(next((tmp_path / "in" / m["series"]).iterdir()), stop_before_pixels=True) for m in made]
    assert heads[0].SeriesInstanceUID != heads[1].SeriesInstanceUID
    assert int(heads[1].SeriesNumber) == int(heads[0].SeriesNumber) + 100
    assert heads[0].PatientID == heads[1].PatientID and heads[0].StudyInstanceUID == heads[1].StudyInstanceUID
    assert made[1]["reproin_name"] == f"dwi_acq-s{int(heads[1].SeriesNumber)}"


def test_ensemble_probe_scores_what_inference_computes(real_data, tmp_path):
    """Gamma 1 reproduces the classifier's own probabilities; a second copy of the same weights
    changes no candidate's threshold or score; the run writes every candidate with its columns."""
    from bidsapp.model.predict import Classifier
    from bidsapp.train.evaluate import load_any

    probe = module("studies/ensemble_probe")
    classifier = Classifier.load("cpu")
    volume = load_any(real_data / "dicom" / "ProstateX-0000_7_ADC")
    logits = probe.series_logits(classifier.network, [probe.series_input(volume, classifier.spec)], [0.7, 1.0])
    assert logits.shape == (1, 2, len(classifier.card["classes"]))
    expected = classifier.classify(volume).probabilities
    assert np.allclose(1 / (1 + np.exp(-logits[0, 1])), list(expected.values()), atol=5e-5)
    assert not np.allclose(logits[0, 0], logits[0, 1])  # the curve changes what the network sees

    assert probe.candidates(["a", "b"], [0.7, 1.0]) == {
        "a": (["a"], [1]), "b": (["b"], [1]), "mean(a+b)": (["a", "b"], [1]),
        "a gamma-TTA": (["a"], [0, 1]), "b gamma-TTA": (["b"], [0, 1]), "mean(a+b) gamma-TTA": (["a", "b"], [0, 1])}

    rows = tiny_labels(real_data, tmp_path)
    weights = Path(classifier.card["path"])
    out = tmp_path / "probe.json"
    assert probe.main(["--weights", str(weights), "--weights", str(weights), "--anatomy", "phantom", "--val-size", "12",
                       "--data", str(tmp_path), "--no-derived", "--gammas", "0.7", "1", "--json", str(out)]) == 0
    found = {c["candidate"]: c for c in json.loads(out.read_text())["candidates"]}
    assert len(found) == 6  # each copy, their mean, and the three again with gamma TTA
    single, _, mean = [c for name, c in found.items() if "gamma" not in name]
    assert {k: v for k, v in single.items() if k != "candidate"} == {k: v for k, v in mean.items() if k != "candidate"}
    assert all(c["dev_n"] == len(rows) and c["derived_n"] == 0 for c in found.values())


def test_threshold_quantiles_spread_with_the_open_sets_upper_tail():
    """A validation set whose "other" series sit at known top probabilities: every bootstrap
    threshold refuses 90% of them, and a set with few "other" series spreads its threshold more."""
    from bidsapp.classes import LABELS

    probe = module("studies/ensemble_probe")
    rng = np.random.default_rng(1)

    def validation(n_other: int):
        top = np.concatenate([rng.uniform(0.0, 0.8, n_other), np.full(200, 0.95)])
        probs = np.zeros((len(top), len(LABELS)))
        probs[:, LABELS.index("T1w")] = top
        return probs, ["other"] * n_other + ["T1w"] * 200

    spreads = {}
    for n_other in (30, 600):
        probs, labels = validation(n_other)
        q = probe.threshold_quantiles(probs, labels, 100)
        assert q["p5"] <= q["p50"] <= q["p95"]
        assert 0.6 <= q["p50"] <= 0.8  # near the 90th percentile of U(0, 0.8): 0.72
        spreads[n_other] = q["p95"] - q["p5"]
    assert spreads[30] > spreads[600]


def test_sim_vs_real_pages_show_real_rows_then_simulated_ones(real_data, tmp_path):
    """One page per class: a row per real series, then the simulated rows asked for, each five
    slices of the network input wide; the real row is that series' input as inference makes it."""
    import struct
    import zlib

    from bidsapp.train.evaluate import load_any
    from bidsapp.volume import SPEC, network_inputs

    look = module("studies/sim_vs_real")
    rows = tiny_labels(real_data, tmp_path)
    out = tmp_path / "look"
    assert look.main(["--out", str(out), "--data", str(tmp_path), "--anatomy", "phantom", "--per-class", "2"]) == 0
    size, gap = SPEC.size, 4
    for r in rows:
        png = (out / f"{r['label']}.png").read_bytes()
        width, height = struct.unpack(">II", png[16:24])
        assert (width, height) == (look.SHOWN * size, 3 * size + 2 * gap)
        idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
        pixels = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)[:, 1:]
        expected = look.strip(network_inputs(load_any(real_data / r["path"]), SPEC))
        assert np.abs(pixels[:size] / 255 - expected).max() <= 0.5 / 255 + 1e-6
        assert pixels[2 * size + 2 * gap:].std() > 0  # a simulated series, not a blank row


def test_snapshot_scores_decide_as_the_shipped_snapshot_classifies(real_data, tmp_path):
    """A --select-every run's one snapshot, scored at its selection threshold, decides every real
    series as the App's classifier loaded from the run's shipped weights does."""
    from bidsapp.model.predict import Classifier
    from bidsapp.train import train
    from bidsapp.train.evaluate import load_any

    run = tmp_path / "run"
    assert train.main(["--anatomy", "phantom", "--out", str(run), "--steps", "2", "--batch", "2", "--train-slices", "2",
                       "--val-size", "6", "--workers", "0", "--threads", "1", "--select-every", "200"]) == 0
    rows = tiny_labels(real_data, tmp_path)
    out = tmp_path / "scores.json"
    assert module("studies/snapshot_scores").main([str(run), "--data", str(tmp_path), "--no-derived", "--json", str(out)]) == 0
    (scored,) = json.loads(out.read_text())["snapshots"]
    assert scored["step"] == 2 and scored["selected"] and scored["dev_n"] == len(rows)
    classifier = Classifier.load("cpu", run / "mrclass.pt")
    assert classifier.threshold == scored["threshold"]
    right = sum(classifier.classify(load_any(real_data / r["path"])).label == r["label"] for r in rows)
    assert scored["dev_right"] == right and len(scored["errors"]) == len(rows) - right


def test_inverting_the_brightest_tissue_reorders_only_the_top_of_the_histogram():
    probe = module("studies/perturbation_probe")
    x = np.zeros((1, 2, 8, 8))
    x[..., :4, :] = 1.0  # tissue
    x[..., :1, :] = 2.0  # the brightest eighth of the image: a quarter of the foreground
    out = probe._invert_brightest(x, percentile=70)
    assert np.all(out[..., 1:4, :] == 1.0) and np.all(out[..., 4:, :] == 0.0)
    assert np.all(out[..., :1, :] == 0.0)  # mirrored below the tissue level: now the darkest


def test_grain_measures_pixel_noise_not_scale_or_anatomy():
    """Noise raises the grain; multiplying the image does not; smooth anatomy alone reads near zero."""
    grain = module("studies/epi_grain").grain
    yy, xx = np.mgrid[0:64, 0:64]
    head = ((yy - 32) ** 2 + (xx - 32) ** 2 < 26 ** 2) * (1 + 0.3 * np.sin(yy / 6.0))
    clean = np.stack([head] * 4).astype(np.float32)
    noisy = clean + np.random.default_rng(0).normal(scale=0.08, size=clean.shape) * (clean > 0)
    assert grain(clean) < 0.005 < grain(noisy)
    assert grain(noisy * 37.0) == pytest.approx(grain(noisy), rel=1e-6)


def test_simulated_bold_is_as_grainy_as_simulated_diffusion():
    """Real single BOLD volumes are as grainy as real diffusion; simulated BOLD once was smoother
    than both, so grain alone told the network "not DWI" in training and "DWI" on real BOLD."""
    from bidsapp.train.phantom import make_phantom

    bench = module("studies/epi_grain")
    rng, heads = np.random.default_rng(0), [make_phantom(0)]
    bold = [bench.simulated_grain(rng, heads, "other", "fmri") for _ in range(16)]
    dwi = [bench.simulated_grain(rng, heads, "DWI", None) for _ in range(16)]
    lo, hi = np.percentile(dwi, [10, 90])
    assert lo < np.median(bold) < hi, (np.median(bold), lo, hi)
    assert np.percentile(bold, 90) > np.median(dwi)


def test_geometry_probe_own_size_is_what_inference_computes(real_data):
    """The probe's first column is the App's own probability; swapping the voxel size moves it,
    and told a thick-slice diffusion geometry a real DWI volume reads more DWI than at 1 mm."""
    from bidsapp.model.predict import Classifier
    from bidsapp.train.evaluate import load_any

    bench = module("studies/geometry_probe")
    classifier = Classifier.load("cpu")
    volume = load_any(real_data / "dicom/canon_9000_DTI_PA-ortho")
    rows = bench.probe(classifier, volume, "DWI")
    assert [r[0] for r in rows] == ["own"] + [g[0] for g in bench.GEOMETRIES]
    assert rows[0][1] == pytest.approx(classifier.classify(volume).probabilities["DWI"], abs=1e-4)
    told = {name: q for name, q, _ in rows}
    assert told["2x5 DWI-like"] > told["1x1"]


def test_occlusion_maps_light_up_where_the_logit_is_read():
    """A fake network whose logit is the signal inside one square: blanking a patch over the
    square lowers it (positive drop there), elsewhere nothing moves; per-slice logits are kept."""
    bench = module("studies/occlusion_probe")
    stack = np.ones((2, 32, 32), np.float32)
    stack[1] *= 2.0

    def slice_logit(batch):
        return batch[:, 8:16, 8:16].sum(axis=(1, 2))

    base, drops = bench.occlusion_maps(slice_logit, stack, patch=8, stride=4)
    assert base.tolist() == [64.0, 128.0]
    assert drops[0, 10, 10] > 0 and drops[1, 10, 10] > drops[0, 10, 10]
    assert np.all(drops[:, 24:, 24:] == 0) and drops.min() == 0
    png = bench.page(stack, drops, shown=2)
    assert png.dtype == np.uint8 and png.shape == (2 * 32 + 4, 2 * 32)


def test_contrast_order_reads_the_physics_of_each_target():
    """T2w shows CSF above grey matter, FLAIR nulls it, T1w puts white matter above grey; the open
    set is reported per kind, so a kind with another class's tissue order can be found."""
    from bidsapp.train import simulate as S

    bench = module("studies/contrast_order")
    rng = np.random.default_rng(0)
    shares = {}
    for label in ("T2w", "FLAIR", "T1w"):
        shares |= bench.order_shares(lambda r, lab=label: S.CLASS_PROTOCOLS[lab](r, lab), 60, rng)
    shares |= bench.order_shares(lambda r: S._other(r, "brain"), 200, rng)
    assert shares["T2w"][0] > 0.9 and shares["FLAIR"][0] < 0.1 and shares["T1w"][1] < 0.1
    assert shares["other:fmri"][0] > 0.9 and all(k in shares for k in ("other:pd", "other:tof"))


def test_face_slices_tells_a_face_slice_from_a_brain_slice():
    """A slice of fat and muscle is face, a brain inside its scalp ring is not, an empty slice is
    neither; training's draws on a phantom head give flags for axial slices, 2D ones among them."""
    from bidsapp.train.phantom import make_phantom
    from bidsapp.train.simulate import TISSUE_INDEX as T

    bench = module("studies/face_slices")
    brain = np.full((32, 32), T["skin"])
    brain[4:28, 4:28] = T["gm"]
    face = np.where(np.arange(32)[None, :] < 16, T["fat"], T["muscle"]) * np.ones((32, 1), int)
    face[10:12, 10:12] = T["gm"]
    empty = np.full((32, 32), T["air"])
    assert bench.face_dominated(np.stack([brain, face, empty]), 0.4).tolist() == [False, True, False]
    flags = bench.axial_face_shares([make_phantom(0)], "T2w", 12, np.random.default_rng(0), 0.4)
    assert flags["all"] and len(flags["2D"]) <= len(flags["all"])


def test_real_finetune_cv_never_trains_on_the_source_it_scores(real_data, tmp_path, monkeypatch):
    cv = module("studies/real_finetune_cv")
    calls = []
    real_fine_tune = cv.fine_tune

    def recording(recipe, pool, real, device, log_prefix):
        calls.append((log_prefix, {item.group for item in real}))
        return real_fine_tune(recipe, pool, real, device, log_prefix)

    monkeypatch.setattr(cv, "fine_tune", recording)
    out = tmp_path / "cv"
    assert cv.main(["--out", str(out), "--data", str(real_data), "--anatomy", "phantom", "--holdout-heads", "0",
                    "--folds", "2", "--steps", "2", "--batch", "4", "--pool", "6", "--val-size", "8",
                    "--workers", "1", "--threads", "1", "--no-derived"]) == 0
    result = json.loads((out / "cv.json").read_text())
    groups = list(dict.fromkeys(s["group"] for s in result["series"]))
    assert calls[0] == ("control", set())  # simulated batches only
    for (prefix, trained_on), group in zip(calls[1:3], groups[:2]):
        assert prefix == f"fold {group}" and group not in trained_on and trained_on == set(groups) - {group}
    assert calls[3] == ("all", set(groups))
    scored = [s for s in result["series"] if s["cv"] is not None]
    assert {s["group"] for s in scored} == set(groups[:2]) and result["scored"] == len(scored)
    assert result["totals"]["cv"] == sum(s["cv"] == s["truth"] for s in scored)
    card = json.loads((out / "all" / "mrclass.json").read_text())
    assert card["training"]["finetune_series"] == len(result["series"]) and card["training"]["finetune_labels"]
    assert (out / "pool.npz").is_file()  # cached: a rerun simulates nothing again
    assert result["verdict"] is None  # a partial cross-validation decides nothing
    assert set(result["sim_per_class_sensitivity"]) == {"start", "control", "all"}


def test_real_finetune_shipping_rule_needs_every_condition():
    rule = module("studies/real_finetune_cv").ShippingRule(margin=3, sim_tolerance=0.03)
    totals = {"shipped": 24, "start": 21, "control": 18, "cv": 24}
    sim = {"control": 0.800, "all": 0.831}
    assert rule.verdict(totals, sim)["ship"]
    assert not rule.verdict({**totals, "start": 22}, sim)["ship"]  # beats the start by 2 only
    assert not rule.verdict({**totals, "control": 22}, sim)["ship"]
    assert not rule.verdict({**totals, "shipped": 25}, sim)["ship"]  # worse than what users have now
    assert rule.verdict(totals, {"control": 0.80, "all": 0.77})["ship"]  # exactly the tolerance
    verdict = rule.verdict(totals, {"control": 0.80, "all": 0.769})
    assert not verdict["ship"] and [ok for ok in verdict["checks"].values()] == [True, True, True, False]


def test_coverage_probe_cuts_the_named_share_of_a_stripped_brain_and_nothing_else():
    bench = module("studies/coverage_probe")
    data = np.full((40, 40, 40), -2.0, np.float32)  # a z-scored brain's constant background
    data[5:35, 5:35, 5:35] = np.random.default_rng(0).uniform(0, 1, (30, 30, 30))
    assert bench.stripped_background(data) is None  # the cube fills 42% of the grid
    grid = np.full((60, 60, 60), -2.0, np.float32)
    grid[10:40, 10:40, 10:40] = data[5:35, 5:35, 5:35]
    assert bench.stripped_background(grid) == -2.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    out = bench.cut(grid, bench.voxel_world(grid.shape, affine), -2.0, (0, 0, 1), 0.3)
    kept = out != -2.0
    assert abs(kept.sum() / (grid != -2.0).sum() - 0.7) < 0.04
    assert not kept[:, :, 31:].any() and kept[10:40, 10:40, 10:31].all()  # the top went, the rest stayed
    np.testing.assert_array_equal(out[kept], grid[kept])


def test_sensitivities_of_classes_no_real_series_checks_are_listed_alone():
    bench = module("benchlib")
    metrics = {"per_class": {"T1w": {"sensitivity": 0.91234}, "SWI": {"sensitivity": 0.8}, "body-T1w": {}}}
    sens = bench.class_sensitivities(metrics, ["T1w", "SWI", "body-T1w", "DWI"])
    assert sens == {"T1w": 0.9123, "SWI": 0.8, "body-T1w": None, "DWI": None}
    assert bench.unchecked_sensitivities(sens, ["T1w", "DWI", "other"]) == "SWI 0.80  body-T1w -"


def _margin_rows(unflagged_right):
    return [{"margin": round(0.025 * i, 3), "choosable": {"unflagged_right": v}} for i, v in enumerate(unflagged_right)]


def test_fused_margin_rule_takes_the_smallest_margin_that_stays_above_the_target():
    fc = module("fused_calibration")
    assert fc.choose_margin(_margin_rows([0.90, 0.96, 0.95, 0.97])) == 0.025
    assert fc.choose_margin(_margin_rows([0.90, 0.96, 0.94, 0.97])) == 0.075  # a dip later: not stable yet
    assert fc.choose_margin(_margin_rows([0.90, 0.92, None])) == 0.05  # never met: the grid's largest


def test_fused_calibration_scores_what_fuse_decides(tmp_path):
    """A tiny phantom run: every grid row counts the same picks, the chosen margin's row is the
    result's, and fused accuracy is recomputed from the per-class table."""
    fc = module("fused_calibration")
    out = tmp_path / "fc.json"
    assert fc.main(["--anatomy", "phantom", "--val-size", "24", "--val-cache", str(tmp_path / "cache"),
                    "--threads", "1", "--spread-seeds", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert len({row["choosable"]["n"] for row in r["margin_grid"]}) == 1
    assert r["low_margin"] in fc.GRID
    if r["fused_threshold"]["kept_content_threshold"]:
        assert r["fused_threshold"]["threshold"] == r["content_threshold"]
    per_class = r["at_chosen"]["per_class"]
    right = sum(c["fused"] * c["n"] for c in per_class.values())
    assert round(right / r["at_chosen"]["n"], 4) == r["at_chosen"]["fused_accuracy"]
    section = fc.card_section(r)
    assert section["low_margin"] == r["low_margin"] and section["validation"]["n"] == 24


def _open_set_rows(study, hard_acc: dict[str, float], other: float = 0.9, swi: float = 0.8,
                   real_other: int = 8) -> list[dict]:
    def row(candidate, score, rule, acc):
        sim = {"other_refused": other, "known_accuracy": 0.8, "hard_known_accuracy": acc,
               "sensitivity": {lab: (swi if lab == "SWI" and candidate != "card" else 0.8) for lab in study.NO_REAL_DATA}}
        return {"candidate": candidate, "score": score, "rule": rule, "simulated": sim,
                "real": {"dev_right": 20, "derived_right": 5,
                         "all_other_refused": 8 if candidate == "card" else real_other}}

    rows = [row("card", "sigmoid", "card", 0.70)]
    rows += [row(name, *name.split("/", 1), acc) for name, acc in hard_acc.items()]
    for r in rows:
        r["eligible"] = study.eligible(r["simulated"], rows[0]["simulated"])
    return rows


def test_open_set_study_rule_ships_only_an_eligible_gain_and_never_a_redrawn_global_threshold():
    study = module("studies/open_set_study")
    rows = _open_set_rows(study, {"sigmoid/global": 0.80, "energy/perclass-q": 0.705, "softmaxT/global": 0.72})
    assert study.choose(rows)["candidate"] == "softmaxT/global"  # today's rule re-drawn cannot ship
    assert study.choose(_open_set_rows(study, {"energy/perclass-q": 0.709})) is None  # gain under 0.01
    assert study.choose(_open_set_rows(study, {"energy/global": 0.80}, other=0.87)) is None  # E1
    assert study.choose(_open_set_rows(study, {"energy/global": 0.80}, swi=0.77)) is None  # E2: SWI lost 0.03
    assert study.choose(_open_set_rows(study, {"energy/global": 0.80}, real_other=7)) is None  # a real "other" named
    assert study.choose(_open_set_rows(study, {"energy/global": 0.80}))["candidate"] == "energy/global"


def test_study_set_is_validation_series_set_and_one_without_other_stops_clearly(tmp_path):
    """Studies read the set (and cache file) rethresholding reads; a set without "other" (3 series of
    seed 5 are all known) cannot carry an open-set threshold and stops with a message, not a NaN."""
    from bidsapp.train.validation import validation_series
    from bidsapp.volume import SPEC

    study = module("studies/open_set_study")
    x, _, labels, protocols = study.simulated_set("phantom", 4, 7, tmp_path, SPEC)
    assert len(list(tmp_path.glob("validation-*.npz"))) == 1
    read = validation_series("phantom", 4, 7, SPEC, cache=tmp_path)  # the same file: nothing re-simulated
    assert np.array_equal(read[0], x) and read[2] == labels
    assert len(list(tmp_path.glob("validation-*.npz"))) == 1
    assert [p["kind"] for p in protocols] == [p.kind for p in read[4]]
    with pytest.raises(SystemExit, match="no \"other\""):
        study.simulated_set("phantom", 3, 5, None, SPEC)


def test_open_set_study_thresholds_refuse_the_bar_and_rank_scores_agree():
    """The bar threshold refuses exactly the lowest 90% of "other"; max logit decides as max
    sigmoid under every rank rule; cross-fitted decisions never come from the half they score."""
    from bidsapp.classes import LABELS

    study = module("studies/open_set_study")
    rng = np.random.default_rng(3)
    s = rng.uniform(0, 1, 200)
    t = study.bar_threshold(s)
    assert (s < t).sum() == 180 and (s[s >= t] >= np.sort(s)[179]).all()
    n = 600
    truth = [LABELS[i] if i < 15 else "other" for i in rng.integers(0, 18, n)]
    z = rng.normal(-3, 1, (n, 15))
    for i, lab in enumerate(truth):
        if lab != "other":
            z[i, LABELS.index(lab)] += rng.normal(4, 2)
    hard = study.hard_mask(truth, [{"snr": float(x)} for x in rng.uniform(5, 50, n)])
    assert 0.4 < hard.sum() / sum(lab != "other" for lab in truth) < 0.6
    for rule in study.RULES:
        assert study.cross_fitted("sigmoid", rule, z, truth, hard) == study.cross_fitted("maxlogit", rule, z, truth, hard)
    # the even half's decisions depend only on the odd half: changing an even "other" changes nothing there
    moved = z.copy()
    j = next(i for i, lab in enumerate(truth) if lab == "other" and i % 2 == 0)
    moved[j] += 10
    a, b = study.cross_fitted("energy", "perclass-q", z, truth, hard), study.cross_fitted("energy", "perclass-q", moved, truth, hard)
    assert [x for i, x in enumerate(a) if i % 2 == 0 and i != j] == [x for i, x in enumerate(b) if i % 2 == 0 and i != j]
    assert study.fit_temperature(z * 3, truth) == pytest.approx(3 * study.fit_temperature(z, truth), rel=0.02)


def test_weight_soup_of_one_network_scores_as_that_network(real_data, tmp_path):
    """A soup of the shipped weights with a copy of themselves is the shipped network: every
    candidate scores exactly as the base, so the rule (two more real series right) ships nothing."""
    import shutil

    import torch

    from bidsapp.model.predict import Classifier

    study = module("studies/weight_soup")
    weights = Path(Classifier.load("cpu").card["path"])
    base_sha = Classifier.load("cpu").card["sha256"]
    copy = tmp_path / "copy" / "mrclass.pt"
    copy.parent.mkdir()
    shutil.copyfile(weights, copy)
    card = json.loads(weights.with_suffix(".json").read_text())
    run = {k: v for k, v in card["training"].items() if k != "soup"}  # a fine-tune's own run record
    card["training"] = {**run, "seed": 777}
    copy.with_suffix(".json").write_text(json.dumps(card))
    tiny_labels(real_data, tmp_path)
    out = tmp_path / "soup.json"
    assert study.main(["--ingredient", str(copy), "--anatomy", "phantom", "--val-size", "24", "--seed", "3",
                       "--data", str(tmp_path), "--no-derived", "--json", str(out),
                       "--write-candidates", str(tmp_path / "candidates"), "--ensemble"]) == 0
    result = json.loads(out.read_text())
    found = {c["candidate"]: c for c in result["candidates"]}
    # one ingredient: WiSE-FT is the soup; the ensemble averages the base's and the copy's logits
    assert set(found) == {"base", "card", "ingredient:copy", "soup", "ensemble:base+copy"}
    assert found["ensemble:base+copy"]["members"] == ["base", "ingredient:copy"]
    for name in ("ingredient:copy", "soup", "ensemble:base+copy"):
        assert found[name]["simulated"] == found["base"]["simulated"]
        assert found[name]["real"] == found["base"]["real"]
        # read at the card's operating point too: the share of simulated "other" the card refuses
        assert found[name]["real_at_card_bar"] == found["base"]["real_at_card_bar"]
        assert found[name]["real_at_card_bar"]["bar"] == found["card"]["simulated"]["other_refused"]
        assert found[name]["qualifies"]["R"] is False
    assert result["chosen"] is None
    assert found["soup"]["coefficients"] == [0.5, 0.5]
    # every candidate but the base is written as a release would be read: its card describes its
    # weights and carries the threshold the study fitted it (energy, as a probability)
    written = sorted(p.parent.name for p in (tmp_path / "candidates").glob("*/mrclass.pt"))
    assert written == ["ingredient-copy", "soup"]
    soup = Classifier.load("cpu", tmp_path / "candidates" / "soup" / "mrclass.pt")
    assert soup.card["weights_sha256"] == soup.card["sha256"]
    assert soup.card["open_set_score"] == "energy" and "fused" not in soup.card
    # the card is the fine-tune's (its run record), and a soup's lists what it averaged
    assert soup.card["training"]["seed"] == 777
    assert [(m["weights_sha256"], m["coefficient"]) for m in soup.card["training"]["soup"]] == [
        (base_sha, 0.5), (base_sha, 0.5)]
    alone = Classifier.load("cpu", tmp_path / "candidates" / "ingredient-copy" / "mrclass.pt")
    assert alone.card["training"]["seed"] == 777 and "soup" not in alone.card["training"]
    assert soup.threshold == pytest.approx(1 / (1 + np.exp(-found["soup"]["threshold_logsumexp"])), abs=1e-4)
    base = Classifier.load("cpu")
    for k, v in base.network.state_dict().items():  # the soup of a network and its copy is that network
        assert torch.allclose(soup.network.state_dict()[k], v)


def test_intensity_gap_measures_how_far_real_intensities_lie_from_simulated_ones():
    """w1 is the mean gap between quantile functions: a shifted copy of the simulated series lies
    that shift away, a fresh draw like them lies inside their spread."""
    look = module("studies/sim_vs_real")
    rng = np.random.default_rng(0)
    simulated = [rng.uniform(0.1, 0.9, size=(2, 16, 16)) for _ in range(6)]
    like, shifted = rng.uniform(0.1, 0.9, size=(2, 16, 16)), rng.uniform(0.1, 0.9, size=(2, 16, 16)) + 0.3
    (gap_like, gap_shifted), spread = look.intensity_gaps([like, shifted], simulated)
    assert gap_like < 2 * spread
    assert abs(gap_shifted - 0.3) < 0.05
    background = np.zeros((2, 16, 16))
    background[:, :8] = like[:, :8]  # background pixels (0) are not part of the distribution
    assert look.w1(look.foreground_values(background), look.foreground_values(like[:, :8])) == 0.0


def test_weight_soup_ships_an_ingredient_alone_only_when_asked():
    study = module("studies/weight_soup")
    met = {"E1": True, "E2": True, "E3": True, "S": True, "R": True}

    def row(name, right, qualifies=met):
        return {"candidate": name, "qualifies": qualifies, "real": {"dev_right": right, "derived_right": 6},
                "simulated": {"hard_known_accuracy": 0.88}}

    rows = [row("ingredient:run", 25), row("soup", 24), row("wise", 26, {**met, "R": False})]
    assert study.choose(rows)["candidate"] == "soup"
    assert study.choose(rows, ship_ingredients=True)["candidate"] == "ingredient:run"
    assert study.choose(rows[2:], ship_ingredients=True) is None


def test_weight_soup_real_gain_is_the_margin_r_asks_over_the_base():
    study = module("studies/weight_soup")
    sim = {"known_accuracy": 0.87, "hard_known_accuracy": 0.87, "other_refused": 0.9, "sensitivity": {}}

    def row(right, other=8):
        return {"simulated": sim, "real": {"dev_right": right, "derived_right": 6, "all_other_refused": other}}

    assert study.qualifies(row(23), row(22))["R"] is False  # one more: under the default margin of two
    assert study.qualifies(row(24), row(22))["R"] is True
    assert study.qualifies(row(22), row(22), real_gain=0)["R"] is True  # non-inferiority
    assert study.qualifies(row(21), row(22), real_gain=0)["R"] is False
    assert study.qualifies(row(22, other=7), row(22), real_gain=0)["R"] is False


def test_weight_soup_paired_e2_fails_a_loss_beyond_noise_or_across_classes():
    """A loss within two paired standard errors passes, one beyond fails, and small losses in
    every class at once fail together (session 30's E2)."""
    study = module("studies/weight_soup")
    from open_set_study import NO_REAL_DATA

    n = 200
    truth = [lab for lab in NO_REAL_DATA for _ in range(n)]

    def calls(right: dict[str, np.ndarray]) -> list[str]:
        return [lab if right[lab][i] else "other" for lab in NO_REAL_DATA for i in range(n)]

    base = {lab: np.arange(n) < 140 for lab in NO_REAL_DATA}  # 0.70 each
    # swapped boundary: 30 lost, 24 gained in venous (loss 0.03, SE sqrt(54)/200 = 0.037)
    swapped = {**base, "body-T1w-venous": (np.arange(n) < 110) | ((np.arange(n) >= 140) & (np.arange(n) < 164))}
    e2 = study.paired_losses(truth, calls(base), calls(swapped))
    assert e2["classes"]["body-T1w-venous"]["loss"] == 0.03 and e2["ok"]

    def row(venous: float) -> dict:
        return {"simulated": {"known_accuracy": 0.8, "hard_known_accuracy": 0.8, "other_refused": 0.9,
                              "sensitivity": {"body-T1w-venous": venous}},
                "real": {"dev_right": 22, "derived_right": 6, "all_other_refused": 8}}

    assert study.qualifies(row(0.67), row(0.70), paired_e2=e2)["E2"] is True
    assert study.qualifies(row(0.67), row(0.70))["E2"] is False  # the fixed 0.02 fails it
    lost = {**base, "body-T1w-venous": np.arange(n) < 120}  # 20 lost, none gained: 0.10 > 2 x 0.022
    assert not study.paired_losses(truth, calls(base), calls(lost))["ok"]
    everywhere = {lab: np.arange(n) < 137 for lab in NO_REAL_DATA}  # 0.015 in each class
    e2 = study.paired_losses(truth, calls(base), calls(everywhere))
    assert all(c["ok"] for c in e2["classes"].values()) and e2["mean_loss"] == 0.015 and not e2["ok"]


def test_gland_level_measures_the_lowest_slices_of_real_and_simulated_t2(real_data, tmp_path):
    """The share counts foreground above 0.5 on the lowest slices only; the study reads the real
    prostate T2 and simulated axial TSE T2s and writes their shares and a page."""
    study = module("studies/gland_level")
    stack = np.zeros((12, 8, 8))
    stack[:5, :4] = 0.8  # lowest slices: half bright, half background
    stack[5:] = 0.2  # upper slices dark: not counted
    assert study.bright_share(stack, 5) == 1.0
    stack[:5, :2] = 0.3
    assert study.bright_share(stack, 5) == 0.5
    out = tmp_path / "gland.json"
    assert study.main(["--data", str(real_data), "--n", "2", "--out", str(tmp_path), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 0.2 < result["real"] < 0.6 and 0.0 < result["simulated_median"] < 1.0
    assert (tmp_path / "gland_level.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targeted_probe_draws_one_series_three_ways_and_counts_each(tmp_path):
    """Same protocol and field of view: the gland-planned series shows other anatomy than the
    body-centred one, the strip is the gland-planned one cut along one axis; every series counted once."""
    from bidsapp.train.phantom import make_pelvis_phantom

    bench = module("studies/targeted_probe")
    pelvis = make_pelvis_phantom(0)
    drawn = {v: bench.series([3, 0, 0], pelvis, "body-T2w", v, 6) for v in bench.VARIANTS}
    (body, res, _), (gland, res2, _), (strip, _, _) = (drawn[v] for v in bench.VARIANTS)
    assert body.shape == gland.shape and res == res2 and not np.allclose(body, gland)
    assert strip.shape[0] == 6 and sorted(strip.shape[1:])[0] < gland.shape[1] and max(strip.shape[1:]) == gland.shape[1]
    out = tmp_path / "probe.json"
    assert bench.main(["--n", "1", "--json", str(out)]) == 0
    single = json.loads(out.read_text())
    counts = single["counts"]
    assert len(counts) == len(bench.CLASSES) * len(bench.VARIANTS)
    assert all(sum(c.values()) == 1 for c in counts.values())
    # an ensemble of the shipped weights with themselves, at the card's threshold, is that model;
    # above any score (at most 1), it refuses everything
    from bidsapp.model.predict import DEFAULT_WEIGHTS
    twice = ["--weights", str(DEFAULT_WEIGHTS)] * 2
    assert bench.main(["--n", "1", "--json", str(out), *twice, "--threshold", str(single["threshold"])]) == 0
    assert json.loads(out.read_text())["counts"] == counts
    assert bench.main(["--n", "1", "--json", str(out), *twice, "--threshold", "1.01"]) == 0
    assert all(c["refused"] == 1 for c in json.loads(out.read_text())["counts"].values())
    with pytest.raises(SystemExit):
        bench.main(["--n", "1", *twice])


def test_phase_confusion_counts_where_each_phase_goes_at_the_cards_threshold():
    """A series is "other" when the card's score is under its threshold, else its best class; the
    table counts, per phase, every name its series got (a moved boundary shows as a neighbour)."""
    from types import SimpleNamespace

    from bidsapp.classes import LABELS, OTHER

    study = module("studies/phase_confusion")
    venous, delayed = LABELS.index("body-T1w-venous"), LABELS.index("body-T1w-delayed")
    z = np.full((3, len(LABELS)), -8.0)
    z[0, venous] = 3.0  # confident venous
    z[1, delayed] = 0.5  # delayed, evidence 0.62
    z[2, delayed] = -1.0  # delayed at best, evidence 0.27: refused at 0.425
    card = SimpleNamespace(open_set_score="energy", threshold=0.425)
    assert study.named(card, z) == ["body-T1w-venous", "body-T1w-delayed", OTHER]
    truth = ["body-T1w-venous", "body-T1w-venous", "body-T1w-delayed"]
    table = study.confusion(truth, study.named(card, z))
    assert table["body-T1w-venous"] == {"body-T1w-venous": 1, "body-T1w-delayed": 1}
    assert table["body-T1w-delayed"] == {OTHER: 1} and table["body-T1w-arterial"] == {}


def test_excretion_probe_switches_the_simulators_excretion_and_restores_it():
    from bidsapp.train import sequences
    from bidsapp.train.tissues import TISSUE_INDEX

    probe = module("studies/excretion_probe")
    urine, bladder = TISSUE_INDEX["urine"], TISSUE_INDEX["bladder_urine"]
    before = (dict(sequences.EXCRETION), sequences._T["ex"].copy())
    with probe.excretion(1.0, 0.5):
        for seed in range(5):  # always drawn, the bladder at half the collecting systems' concentration
            c = sequences.gd_concentration(np.random.default_rng(seed), "delayed")
            assert c[urine] > 0 and c[bladder] == pytest.approx(0.5 * c[urine])
    with probe.excretion(0.0, 0.5):
        assert sequences.gd_concentration(np.random.default_rng(0), "delayed")[urine] == 0
    assert sequences.EXCRETION == before[0] and (sequences._T["ex"] == before[1]).all()


def test_open_set_bar_cross_validation_chooses_each_sources_bar_on_the_others():
    from bidsapp.classes import OTHER

    study = module("studies/open_set_bar")
    truth = ["T1w", "T1w", OTHER, "FLAIR", OTHER]
    sources = ["a", "a", "a", "b", "b"]
    right = {0.85: np.array([1, 1, 1, 1, 0], bool),  # names b's "other": not allowed when b is in training
             0.90: np.array([0, 1, 1, 0, 1], bool)}
    cv = study.leave_one_source_out(right, truth, sources)
    folds = {f["source"]: f for f in cv["folds"]}
    assert folds["a"]["bar"] == 0.90  # b in training: 0.85 names its "other"
    assert folds["b"]["bar"] == 0.85  # a in training: 0.85 names 3 of a's, 0.90 two
    assert cv["right"] == 2 + 1 and cv["n"] == 5
    names = ["x.nii.gz", "dti/ [ADC map]", "dti/"]
    assert study.source_of(names, [{"path": "x.nii.gz", "source_repo": "r1"}, {"path": "dti/", "source_repo": "r2"}]) \
        == ["r1", "r2", "r2"]


def test_open_set_bar_shift_model_moves_the_threshold_by_the_real_known_series_median_gap():
    from scipy.special import expit

    from bidsapp.classes import LABELS, OTHER

    study = module("studies/open_set_bar")
    z_sim = np.full((4, len(LABELS)), -30.0)
    z_sim[:2, 0] = 4.0  # simulated T1w at log-sum-exp 4
    z_sim[2:, 0] = -1.0  # simulated "other"
    z_real = np.full((3, len(LABELS)), -30.0)
    z_real[0, 0], z_real[1, 0], z_real[2, 0] = 1.0, 2.0, -3.4  # real T1w 3 and 2 below; real "other"
    out = study.shift_model(z_sim, ["T1w", "T1w", OTHER, OTHER], z_real, ["T1w", "T1w", OTHER], -1.0)
    assert out["median_shift_logits"] == pytest.approx(-2.5, abs=1e-3)
    assert out["implied_energy_threshold"] == pytest.approx(expit(-3.5), abs=1e-3)
    assert out["real_other_named"] == 1  # 0.1 above the implied threshold: named


def test_background_probe_fills_only_the_zeros_and_thresholds_only_the_dim():
    probe = module("studies/background_probe")
    data = np.zeros((8, 8, 4), np.float32)
    data[2:6, 2:6] = np.linspace(10, 100, 64, dtype=np.float32).reshape(4, 4, 4)
    filled = probe.noise_filled(data, np.random.default_rng(0))
    inside = data != 0
    np.testing.assert_array_equal(filled[inside], data[inside])
    assert (filled[~inside] > 0).mean() > 0.99 and filled[~inside].mean() < data[inside].min()
    cut = probe.thresholded(filled, 0.5)
    assert (cut[~inside] == 0).all() and (cut[inside & (data > 0.5 * np.percentile(filled, 99))] > 0).all()
