#!/usr/bin/env python3
"""Render docs/benchmarks.md from the benchmark JSON files.

    python benchmarks/render.py                                   # benchmarks/results/*.json -> docs/benchmarks.md
    python benchmarks/render.py --results DIR --out FILE

Reads ``classifier_speed.json``, ``end_to_end.json``, ``scaling.json``, ``accuracy.json`` and
``decision_accuracy.json``
(any may be missing: its section then says how to produce it), checks every number against the
bars of ARCHITECTURE.md section 5 and writes one page: the bars (met, or missed and by how much),
the machine, and each benchmark's table with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

HERE = Path(__file__).resolve().parent
NAMES = ("classifier_speed", "end_to_end", "scaling", "accuracy", "decision_accuracy")
COMMANDS = {
    "classifier_speed": "python benchmarks/classifier_speed.py --json benchmarks/results/classifier_speed.json",
    "end_to_end": "python benchmarks/end_to_end.py --copies 2 --json benchmarks/results/end_to_end.json",
    "scaling": "python benchmarks/scaling.py --json benchmarks/results/scaling.json",
    "accuracy": "python benchmarks/accuracy.py --json benchmarks/results/accuracy.json",
    "decision_accuracy": "python benchmarks/decision_accuracy.py --json benchmarks/results/decision_accuracy.json",
}
#: What each decision_accuracy condition runs, in words.
CONDITIONS = {"both": "default (content and physics decide)", "content": "`--decide-by content`",
              "lying-text": "every SeriesDescription/ProtocolName a lie", "bids-sidecars": "as misnamed BIDS with dcm2niix sidecars"}
ACCURACY_MIN, BRAIN_CLASS_MIN, OTHER_REJECT_MIN = 0.95, 0.90, 0.90
MODEL_MB_MAX = 50.0


@dataclass(frozen=True)
class Check:
    """One bar of ARCHITECTURE.md section 5 against a measured value."""

    bar: str
    target: str
    measured: str
    met: bool | None  # None: not measured
    shortfall: str = ""  # how much it is missed by, when missed

    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else f"**missed** by {self.shortfall}"


def load_results(folder: Path) -> dict[str, dict]:
    found = {}
    for name in NAMES:
        path = Path(folder) / f"{name}.json"
        if path.is_file():
            found[name] = json.loads(path.read_text(encoding="utf-8"))
    return found


def script(name: str):
    """A benchmark script as a module (for its ``markdown`` table), loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def over(measured: float, target: float, unit: str) -> str:
    """'0.12 s (24% over the target)' for a value above an upper bound."""
    return f"{measured - target:.2f}{unit} ({100 * (measured / target - 1):.0f}% over the target)"


def under(measured: float, target: float, unit: str = " points", scale: float = 100) -> str:
    """'3.1 points' for a fraction below a lower bound."""
    return f"{scale * (target - measured):.1f}{unit}"


# ------------------------------------------------------------------------------------- checks
def speed_checks(result: dict | None) -> list[Check]:
    bar = "CPU inference, 2 threads, median s per series"
    if not result:
        return [Check(bar, "<= 0.5 s", "-", None)]
    runs = {r["threads"]: r for r in result["runs"]}
    run = runs.get(2) or runs[max(runs)]
    target = result["config"]["target_s"]
    label = f"{run['threads']} thread(s), {run['summary']['all']['n']} series"
    checks = []
    for step, name in (("network", "network only"), ("total", "load + preprocessing + network")):
        value = run["summary"]["all"][step]["median"]
        checks.append(Check(f"CPU inference ({name}), median s per series", f"<= {target} s",
                            f"{value:.3f} s ({label})", value <= target, over(value, target, " s")))
    mb = result["meta"].get("model_mb")
    if mb is not None:
        checks.append(Check("model file size", f"<= {MODEL_MB_MAX:.0f} MB", f"{mb:.1f} MB", mb <= MODEL_MB_MAX,
                            over(mb, MODEL_MB_MAX, " MB")))
    peak = max(r["peak_rss_mb"] for r in result["runs"])
    checks.append(Check("peak memory, classifier alone", "<= 3 GB", f"{peak:.0f} MB", peak <= 3072, over(peak, 3072, " MB")))
    return checks


def e2e_checks(result: dict | None) -> list[Check]:
    bar = "one participant DICOM -> BIDS + derivatives + report vs heudiconv + reproin"
    if not result:
        return [Check(bar, "<= 2x", "-", None)]
    s = result["summary"]
    n = len(result["config"]["series"])
    measured = (f"{s['ratio']:.2f}x ({s['mrclass-bids']['median_s']:.1f} s vs {s['heudiconv-reproin']['median_s']:.1f} s,"
                f" {n} series, median of {result['config']['reps']})")
    return [Check(bar, f"<= {s['target_ratio']:.0f}x", measured, s["meets_target"], over(s["ratio"], s["target_ratio"], "x"))]


def scaling_checks(result: dict | None) -> list[Check]:
    if not result or "memory_growth_frac" not in result["summary"]:
        return [Check("memory flat in the number of series", "flat", "-", None)]
    s = result["summary"]
    first, last = s["sizes"][0]["n_series"], s["sizes"][-1]["n_series"]
    tol = s["flat_tolerance"]
    measured = f"{s['memory_growth_mb']:+.0f} MB ({100 * s['memory_growth_frac']:+.1f}%) from {first} to {last} series"
    shortfall = (f"{100 * (s['memory_growth_frac'] - tol):.1f} points of growth beyond the {100 * tol:.0f}% tolerance "
                 f"({s['memory_mb_per_series']:.1f} MB per added series)")
    return [Check("memory flat in the number of series", f"growth <= {100 * tol:.0f}%", measured, s["memory_flat"], shortfall),
            Check("peak memory, whole run", "<= 3 GB", f"{s['peak_mb']:.0f} MB (largest size)",
                  s["within_memory_limit"], over(s["peak_mb"], s["memory_limit_mb"], " MB"))]


def accuracy_checks(result: dict | None) -> list[Check]:
    if not result:
        return [Check("accuracy on real data", f">= {100 * ACCURACY_MIN:.0f}%", "-", None)]
    ev = result["evaluation"]["summary"]
    from bidsapp.classes import region_of  # the package's own class table decides what "brain" is

    checks = [Check("accuracy, real dev set", f">= {100 * ACCURACY_MIN:.0f}%",
                    f"{100 * ev['accuracy']:.1f}% of {ev['n']} (95% CI {100 * ev['accuracy_ci95'][0]:.0f}-"
                    f"{100 * ev['accuracy_ci95'][1]:.0f}%)", ev["accuracy"] >= ACCURACY_MIN, under(ev["accuracy"], ACCURACY_MIN))]
    brain = {lab: m for lab, m in ev["per_class"].items() if region_of(lab) == "brain" and m["n"]}
    if brain:
        worst_label, worst = min(brain.items(), key=lambda kv: kv[1]["sensitivity"])
        checks.append(Check("lowest brain-class sensitivity", f">= {100 * BRAIN_CLASS_MIN:.0f}%",
                            f"{100 * worst['sensitivity']:.0f}% ({worst_label}, n={worst['n']})",
                            worst["sensitivity"] >= BRAIN_CLASS_MIN, under(worst["sensitivity"], BRAIN_CLASS_MIN)))
    if ev.get("other_rejected") is not None:
        n_other = ev["per_class"].get("other", {}).get("n", 0)
        checks.append(Check("'other' series rejected", f">= {100 * OTHER_REJECT_MIN:.0f}%",
                            f"{100 * ev['other_rejected']:.0f}% (n={n_other})", ev["other_rejected"] >= OTHER_REJECT_MIN,
                            under(ev["other_rejected"], OTHER_REJECT_MIN)))
    return checks


# ------------------------------------------------------------------------------------ sections
def bars_section(results: dict[str, dict]) -> str:
    checks = (speed_checks(results.get("classifier_speed")) + e2e_checks(results.get("end_to_end"))
              + scaling_checks(results.get("scaling")) + accuracy_checks(results.get("accuracy")))
    lines = ["## Bars (ARCHITECTURE.md section 5)", "", "| bar | target | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {c.bar} | {c.target} | {c.measured} | {c.verdict()} |" for c in checks]
    missed = [c for c in checks if c.met is False]
    if missed:
        lines += ["", f"{len(missed)} bar(s) missed: " + "; ".join(f"{c.bar} by {c.shortfall}" for c in missed) + "."]
    return "\n".join(lines)


def machine_section(results: dict[str, dict]) -> str:
    metas = {name: r["meta"] for name, r in results.items()}
    if not metas:
        return "## Machine\n\nNo results yet: run `bash benchmarks/run_all.sh`."
    m = next(iter(metas.values()))
    lines = ["## Machine", "",
             f"- CPU: {m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical cores, {m['memory_gb']} GB memory",
             f"- {m['platform']}, Python {m['python']}",
             f"- torch {m['torch_version']}, MONAI {m['monai_version']}, heudiconv {m['heudiconv_version']}, "
             f"dcm2niix {m['dcm2niix_version']}, pydicom {m['pydicom_version']}",
             f"- model: {m.get('model')} ({m.get('model_mb')} MB, sha256 {m.get('model_sha256')}; "
             f"trained {training_text(m.get('model_training') or {})})",
             ""]
    lines += ["| benchmark | date (UTC) | git commit | load average at start |", "|---|---|---|---:|"]
    for name, meta in metas.items():
        commit = meta["git_commit"] + (" (uncommitted changes)" if meta["git_dirty"] else "")
        lines.append(f"| {name} | {meta['date']} | {commit} | {meta.get('load_avg_1min')} |")
    warnings = []
    if any(meta.get("weights_uncommitted") for meta in metas.values()):
        warnings.append("measured with model weights that were **not committed** to the repository")
    if len({meta.get("model_sha256") for meta in metas.values()}) > 1:
        warnings.append("the benchmarks ran with **different model weights**")
    if len({meta["git_commit"] for meta in metas.values()}) > 1:
        warnings.append("the benchmarks ran at **different commits**")
    lines += [f"\nWarning: {w}." for w in warnings]
    return "\n".join(lines)


def training_text(training: dict) -> str:
    steps, minutes = training.get("steps"), training.get("minutes")
    return f"{steps if steps is not None else '?'} steps, {minutes if minutes is not None else '?'} min"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def speed_section(result: dict | None) -> str:
    head = "## Classifier speed (CPU)"
    if not result:
        return f"{head}\n\nNot run yet: `{COMMANDS['classifier_speed']}`"
    c = result["config"]
    runs = ", ".join(f"{r['threads']} thread(s): model load {r['model_load_s']:.2f} s, first (cold) series "
                     f"{_secs(r['cold_first_series_s'])}" for r in result["runs"])
    return "\n".join([
        head, "", f"`{COMMANDS['classifier_speed']}`", "",
        f"{c['n_series']} real series (NIfTI and DICOM), {c['reps']} timed repetition(s) each after one warm-up; "
        "a series' time is the median of its repetitions, the table gives median / 90th percentile over series. "
        "load = reading (DICOM: dcm2niix to a temporary NIfTI), preprocess = load + slice stack "
        "(`network_inputs`: one stack, three views for a 3D volume), network = the CNN. Each thread setting ran in a fresh process; peak RSS is that "
        f"process's `ru_maxrss`. Geometry: {c['geometry_rule']}, otherwise 2D.", "",
        script("classifier_speed").markdown(result), "", runs + "."])


def e2e_section(result: dict | None) -> str:
    head = "## End to end: one participant vs heudiconv + reproin"
    if not result:
        return f"{head}\n\nNot run yet: `{COMMANDS['end_to_end']}`"
    c = result["config"]
    names = ", ".join(f"{s['series']} ({s['reproin_name']})" for s in c["series"])
    notes = []
    if not result["summary"]["same_images"]:
        notes.append("\nWarning: the two tools wrote different numbers of images, so they did not do the same work.")
    return "\n".join([
        head, "", f"`{COMMANDS['end_to_end']}`", "",
        f"Series: {names}. Copied once with reproin-style ProtocolName/SeriesDescription (reproin skips series "
        "whose names it cannot parse) and without DeidentificationMethodCodeSequence (plain heudiconv stops on it); "
        f"both tools read the same copy. {c['reps']} repetitions, alternating order, fresh output folders.", "",
        f"- `{c['commands']['mrclass-bids']}`", f"- `{c['commands']['heudiconv-reproin']}`", "",
        script("end_to_end").markdown(result), *notes])


def scaling_section(result: dict | None) -> str:
    head = "## Scaling with the number of series"
    if not result:
        return f"{head}\n\nNot run yet: `{COMMANDS['scaling']}`"
    c = result["config"]
    return "\n".join([
        head, "", f"`{COMMANDS['scaling']}`", "",
        f"Copies of `{c['series']}` as new series of one participant; `mrclass-bids --nprocs {c['nprocs']}`, "
        f"{c['reps']} run(s) per size. Process-tree memory: private pages of every process plus the largest "
        "shared set, sampled from /proc every 50 ms; largest process: `ru_maxrss`.", "",
        script("scaling").markdown(result)])


def accuracy_section(result: dict | None) -> str:
    head = "## Accuracy on the real development set"
    if not result:
        return f"{head}\n\nNot run yet: `{COMMANDS['accuracy']}`"
    n = result["evaluation"]["summary"]["n"]
    return "\n".join([
        head, "", f"`{COMMANDS['accuracy']}` (runs `{result['config']['command']}`)", "",
        "```text", result["report_text"].rstrip(), "```", "",
        f"What this can and cannot show: {n} series from public sources, a handful per class and none for several "
        "classes; several are preprocessed research NIfTIs (skull-stripped, co-registered, z-scored) rather than "
        "scanner output. The set was used while developing the tool, so it is a development check, not an "
        "independent held-out test; the Wilson interval above shows how little a few series can prove. "
        + provenance(result["meta"].get("model_training") or {})])


def decision_section(result: dict | None) -> str:
    head = "## The App's decision on the development set's DICOM series"
    if not result:
        return f"{head}\n\nNot run yet: `{COMMANDS['decision_accuracy']}`"
    lines = [head, "", f"`{COMMANDS['decision_accuracy']}`", "",
             "| condition | right | accuracy (Wilson 95%) | \"other\" rejected |", "|---|---|---|---|"]
    for name, r in result["results"].items():
        low, high = r["wilson95"]
        lines.append(f"| {CONDITIONS.get(name, name)} | {r['right']} of {r['n']} | {r['accuracy']:.0%} "
                     f"({low:.0%}-{high:.0%}) | {r['other_rejected']:.0%} |")
    wrong = sorted({(s["source"], s["truth"], s["label"], name) for name, r in result["results"].items()
                    for s in r["series"] if not s["right"]})
    if wrong:
        lines += ["", "Wrong: " + "; ".join(f"{src} ({truth} named {label}, {CONDITIONS.get(name, name)})"
                                             for src, truth, label, name in wrong) + "."]
    return "\n".join(lines)


def provenance(training: dict) -> str:
    """What the model card says about real data in training (decides whether this is a test at all)."""
    if training.get("finetune_labels"):
        return (f"**Warning:** the model card says the network was fine-tuned on `{training['finetune_labels']}`; "
                "any of these series in it were seen in training and their results are not a test.")
    return "The model card lists no fine-tuning labels: the network trained on simulated images only."


def render(results: dict[str, dict]) -> str:
    intro = ("# Benchmarks\n\n"
             "Generated by `bash benchmarks/run_all.sh` (rendering alone: `python benchmarks/render.py`) from "
             "`benchmarks/results/*.json`; do not edit by hand. Commands and options: "
             "[benchmarks/README.md](../benchmarks/README.md).")
    parts = [intro, bars_section(results), machine_section(results), speed_section(results.get("classifier_speed")),
             e2e_section(results.get("end_to_end")), scaling_section(results.get("scaling")),
             accuracy_section(results.get("accuracy")), decision_section(results.get("decision_accuracy"))]
    return "\n\n".join(parts) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=benchlib.RESULTS, help="folder of the JSON files")
    p.add_argument("--out", type=Path, default=benchlib.REPO / "docs" / "benchmarks.md", help="markdown file to write")
    args = p.parse_args(argv)
    text = render(load_results(args.results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
