"""Training CLI: a seconds-long smoke run on the package's own phantom, then a resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bidsapp.classes import LABELS
from bidsapp.model.predict import Classifier, sha256
from bidsapp.train import simulate, train


def test_smoke_training_writes_loadable_weights_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--anatomy", "phantom", "--out", str(out), "--steps", "2", "--batch", "2", "--train-slices", "2",
            "--val-size", "6", "--workers", "0", "--threads", "1", "--minutes", "2"]
    assert train.main(args) == 0
    card = json.loads((out / "mrclass.json").read_text())
    assert card["classes"] == list(LABELS)
    assert card["training"]["steps"] == 2
    assert card["weights_sha256"] == sha256(out / "mrclass.pt")
    assert 0.0 < card["threshold"] < 1.0
    assert "ece" in card["validation_simulated"]["calibration"]
    clf = Classifier.load("cpu", out / "mrclass.pt")
    assert clf.card["sha256"] == card["weights_sha256"]

    before = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert train.main(args[:5] + ["4"] + args[6:] + ["--resume"]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    assert any(not torch.equal(before[k], state["model"][k]) for k in before)


def test_replay_buffer_waits_until_it_holds_enough_then_samples_what_it_kept():
    buf = train.ReplayBuffer(capacity=10, seed=0)
    x = np.ones((2, 4, 4), np.float32)
    buf.add([(x * i, np.eye(3)[i % 3]) for i in range(3)])
    assert buf.sample(2) == []  # fewer than 4x the request: replay would repeat too much
    buf.add([(x * i, np.eye(3)[i % 3]) for i in range(3, 30)])
    assert len(buf.items) == 10
    drawn = buf.sample(2)
    assert len(drawn) == 2 and all(d[0].dtype == np.float32 and d[0].shape == (2, 4, 4) for d in drawn)


def test_weight_average_is_the_mean_of_its_snapshots_and_leaves_them_alone():
    net = torch.nn.Linear(3, 2)
    snapshots = []
    average = train.WeightAverage()
    for i in range(3):
        with torch.no_grad():
            net.weight.fill_(float(i))
            net.bias.copy_(torch.tensor([i, 2.0 * i]))
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        average.add(net.state_dict())
    assert average.count == 3
    assert torch.allclose(average.state["weight"], torch.full((2, 3), 1.0))
    assert torch.allclose(average.state["bias"], torch.tensor([1.0, 2.0]))
    assert torch.equal(net.weight, torch.full((2, 3), 2.0))  # the network still holds its last weights


def test_smoke_training_with_averaging_ships_the_averaged_weights(tmp_path):
    out = tmp_path / "run"
    args = ["--anatomy", "phantom", "--out", str(out), "--steps", "2", "--batch", "2", "--train-slices", "2",
            "--val-size", "6", "--workers", "0", "--threads", "1", "--minutes", "2", "--average-from", "0.5"]
    assert train.main(args) == 0
    card = json.loads((out / "mrclass.json").read_text())
    assert card["training"]["average_from"] == 0.5
    assert card["training"]["averaged_snapshots"] == 1  # 2 steps: no periodic snapshot, only the final one
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    shipped = torch.load(out / "mrclass.pt", weights_only=True)
    for k, v in state["average"].items():
        assert torch.equal(shipped[k].float(), v.half().float())


def test_bf16_training_steps_change_float32_weights(tmp_path):
    """bfloat16 autocast runs the network only: the optimiser keeps float32 weights and moves them."""
    out = tmp_path / "run"
    args = ["--anatomy", "phantom", "--out", str(out), "--steps", "2", "--batch", "2", "--train-slices", "2",
            "--val-size", "6", "--workers", "0", "--threads", "1", "--minutes", "2", "--bf16", "--seed", "3"]
    assert train.main(args) == 0
    card = json.loads((out / "mrclass.json").read_text())
    assert card["training"]["bf16"] is True and card["training"]["steps"] == 2
    state = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    assert all(np.isfinite(v.numpy()).all() for v in state.values() if v.is_floating_point())
    torch.manual_seed(3)  # train.main seeds torch before building the network: the same initial weights
    initial = train.SliceStackClassifier(len(LABELS), train.ARCH).state_dict()
    assert any(not torch.equal(initial[k], state[k]) for k in initial)


def test_held_out_heads_are_the_last_of_each_source_and_never_trained_on():
    from bidsapp.train.anatomy import Anatomy
    from bidsapp.train.label_maps import split_heads
    from bidsapp.train.tissues import TISSUE_INDEX

    def anat(name, region="brain"):
        return Anatomy(name, region, np.full((4, 4, 4), TISSUE_INDEX["wm"], np.uint8), np.eye(4))

    pool = ([anat(f"brainweb/s{i}") for i in range(5)] + [anat(f"synthseg/t{i}") for i in range(5)]
            + [anat("phantom/head0"), anat("totalseg/example_ct", "body")])
    kept, held = split_heads(pool, 2)
    assert [a.name for a in held] == ["brainweb/s3", "brainweb/s4", "synthseg/t3", "synthseg/t4"]
    assert {a.name for a in kept} == {a.name for a in pool} - {a.name for a in held}
    assert split_heads(pool, 0) == (pool, [])
    try:
        split_heads(pool, 5)
    except ValueError as exc:
        assert "5 of 5" in str(exc)
    else:
        raise AssertionError("holding out every head must be refused")


def test_holdout_without_heads_to_hold_out_is_a_clear_error(tmp_path):
    args = ["--anatomy", "phantom", "--out", str(tmp_path / "run"), "--steps", "1", "--batch", "2",
            "--train-slices", "2", "--val-size", "4", "--workers", "0", "--threads", "1", "--holdout-heads", "1"]
    try:
        train.main(args)
    except SystemExit as exc:
        assert "--holdout-heads 1" in str(exc) and "brainweb" in str(exc)
    else:
        raise AssertionError("a phantom-only run cannot hold heads out")


def test_checkpoint_selection_ships_the_best_scored_snapshot_and_survives_a_resume(tmp_path):
    out = tmp_path / "run"
    args = ["--anatomy", "phantom", "--out", str(out), "--steps", "2", "--batch", "2", "--train-slices", "2",
            "--val-size", "6", "--workers", "0", "--threads", "1", "--minutes", "2", "--select-every", "200"]
    assert train.main(args) == 0
    rows = (out / "selection.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["step", "threshold", "accuracy", "other_rejected"] and len(rows) == 2
    card = json.loads((out / "mrclass.json").read_text())
    assert card["training"]["selected_step"] == 2 and card["training"]["select_every"] == 200
    shipped = torch.load(out / "mrclass.pt", weights_only=True)
    snapshot = torch.load(out / "snapshots" / "step000002.pt", weights_only=True)
    assert all(torch.equal(shipped[k], snapshot[k]) for k in snapshot)

    # a resumed run scores its own end too, and ships whichever scored best (the later on a tie)
    assert train.main(args[:5] + ["4"] + args[6:] + ["--resume"]) == 0
    selection = train.CheckpointSelection(out, torch.load(out / "checkpoint.pt", weights_only=False)["selection"])
    assert [r["step"] for r in selection.rows] == [2, 4]
    best = selection.best()
    assert json.loads((out / "mrclass.json").read_text())["training"]["selected_step"] == best["step"]
    assert best["accuracy"] == max(r["accuracy"] for r in selection.rows)


def test_checkpoint_selection_and_weight_averaging_are_exclusive(tmp_path):
    args = ["--anatomy", "phantom", "--out", str(tmp_path), "--steps", "2", "--select-every", "200",
            "--average-from", "0.5"]
    with pytest.raises(SystemExit, match="select-every"):
        train.main(args)
    with pytest.raises(SystemExit, match="multiple of"):
        train.main(args[:6] + ["--select-every", "150"])


def test_fine_tuned_card_carries_the_lineage_and_totals_of_its_init_weights(tmp_path):
    base = ["--anatomy", "phantom", "--steps", "2", "--batch", "2", "--train-slices", "2", "--val-size", "6",
            "--workers", "0", "--threads", "1"]
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert train.main(base + ["--out", str(first), "--seed", "1"]) == 0
    assert train.main(base + ["--out", str(second), "--seed", "2", "--init", str(first / "mrclass.pt")]) == 0
    assert train.main(base[:2] + ["--steps", "1"] + base[4:]
                      + ["--out", str(third), "--seed", "3", "--init", str(second / "mrclass.pt")]) == 0
    a, b, c = (json.loads((d / "mrclass.json").read_text()) for d in (first, second, third))
    assert a["training"]["lineage"] == [] and a["training"]["total_steps"] == 2
    assert [p["weights_sha256"] for p in c["training"]["lineage"]] == [a["weights_sha256"], b["weights_sha256"]]
    assert [p["seed"] for p in c["training"]["lineage"]] == [1, 2]
    assert c["training"]["total_steps"] == 5 and c["training"]["steps"] == 1
    assert "--init" in c["training"]["lineage"][1]["command"]

    bare = tmp_path / "bare.pt"  # weights without a card: their hash is all the lineage there is
    bare.write_bytes((first / "mrclass.pt").read_bytes())
    assert train.lineage(str(bare)) == [{"weights_sha256": a["weights_sha256"], "card": None}]


def test_learning_rate_warms_up_then_falls_to_zero_by_the_budget():
    from bidsapp.train.train import warm_cosine_lr

    assert warm_cosine_lr(1e-3, 0, 100, 0.0) == pytest.approx(1e-5)
    assert warm_cosine_lr(1e-3, 99, 100, 0.0) == pytest.approx(1e-3)
    assert warm_cosine_lr(1e-3, 500, 100, 0.5) == pytest.approx(5e-4)
    assert warm_cosine_lr(1e-3, 900, 100, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_wide_network_is_recorded_on_its_card_loads_from_it_and_refuses_compact_weights(tmp_path):
    """``--arch wide`` (the GPU run's capacity lever, scripts/device_train.sh): the card names the
    network inference must build, and compact weights cannot be forced into it."""
    from bidsapp.model.network import ARCHS
    from bidsapp.train import rethreshold
    base = ["--anatomy", "phantom", "--steps", "1", "--batch", "2", "--train-slices", "2", "--val-size", "6",
            "--workers", "0", "--threads", "1"]
    compact, wide = tmp_path / "compact", tmp_path / "wide"
    assert train.main(base + ["--out", str(compact)]) == 0
    assert train.main(base + ["--out", str(wide), "--arch", "wide"]) == 0
    card = json.loads((wide / "mrclass.json").read_text())
    assert card["architecture"] == ARCHS["wide"] and card["training"]["arch"] == "wide"
    clf = Classifier.load("cpu", wide / "mrclass.pt")
    n_wide = sum(p.numel() for p in clf.network.parameters())
    n_compact = sum(p.numel() for p in Classifier.load("cpu", compact / "mrclass.pt").network.parameters())
    assert n_wide > 3 * n_compact
    assert (wide / "mrclass.pt").stat().st_size < 50e6, "the 50 MB bar"
    with pytest.raises(SystemExit, match="do not fit this network"):
        train.main(base + ["--out", str(tmp_path / "x"), "--arch", "wide", "--init", str(compact / "mrclass.pt")])
    again = tmp_path / "rethresholded"
    assert rethreshold.main([str(wide / "mrclass.pt"), "--anatomy", "phantom", "--val-size", "6", "--seed", "1",
                             "--threads", "1", "--out", str(again)]) == 0
    assert Classifier.load("cpu", again / "mrclass.pt").card["architecture"] == ARCHS["wide"]


def test_class_weights_scale_the_simulators_draw_and_bad_ones_are_clear_errors(tmp_path):
    targets, p = simulate.draw_weights(train.parse_class_weights(["body-DWI=2", "body-ADC=2"]))
    _, q = simulate.draw_weights()
    i, j, k = targets.index("body-DWI"), targets.index("body-ADC"), targets.index("T1w")
    assert p.sum() == pytest.approx(1.0)
    assert p[i] / p[k] == pytest.approx(2 * q[i] / q[k]) and p[j] / p[k] == pytest.approx(2 * q[j] / q[k])
    stream = iter(train.SimulatedSeries("phantom", 2, 0, emphasis={"body-DWI": 1e6}))
    assert {LABELS[int(np.argmax(next(stream)[2]))] for _ in range(3)} == {"body-DWI"}
    for bad in ("bodyDWI=2", "body-DWI", "body-DWI=x", "body-DWI=0"):
        with pytest.raises(SystemExit, match="--class-weight"):
            train.main(["--anatomy", "phantom", "--out", str(tmp_path / "r"), "--steps", "1", "--class-weight", bad])
