"""No PHI in what the App writes: distinctive names planted in the DICOM headers are searched
for in every text file of the output and in the run's log."""

from __future__ import annotations

import subprocess
from pathlib import Path

from badinputs import PHI, series, write_sr
from e2e_helpers import require_model
from test_reruns import cli, env

TEXT = (".tsv", ".json", ".html", ".md", ".txt", ".log", ".bval", ".bvec")
ALWAYS_STRIPPED = ("PatientName", "PatientBirthDate", "ReferringPhysicianName", "OperatorsName")
PHI_PARTS = {k: [v] + [p for p in v.split("^") if len(p) > 3] for k, v in PHI.items()}


def found_in(text: str) -> set[str]:
    return {k for k, parts in PHI_PARTS.items() if any(p in text for p in parts)}


def test_no_phi_in_outputs(tmp_path: Path):
    require_model()
    src = tmp_path / "in"
    series(src / "a", 1, "t1_se_tra", patient_id="PHI1")
    series(src / "b", 2, "t2_tse_tra", patient_id="PHI1", n_slices=1)
    write_sr(src / "sr.dcm", patient_id="PHI1")
    out = tmp_path / "out"
    run = subprocess.run([*cli(src, out), "-vv"], env=env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]  # the SR is a skipped row
    group = subprocess.run([*cli(src, out)[:-3], "group", "-vv"], env=env(), capture_output=True, text=True, timeout=300)

    assert found_in(run.stderr + run.stdout + group.stderr) == set()
    sidecar_keeps: set[str] = set()
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name.endswith(TEXT)):
        hits = found_in(path.read_text(encoding="utf-8", errors="replace"))
        rel = path.relative_to(out).as_posix()
        if rel.startswith(("derivatives/", ".heudiconv")) or path.suffix in (".tsv", ".html", ".md"):
            assert hits == set(), (rel, hits)  # derivatives, reports, tables, logs: nothing
        else:
            assert not hits & set(ALWAYS_STRIPPED), (rel, hits)  # BIDS sidecars (dcm2niix -ba y)
            sidecar_keeps |= hits
    assert not (out / ".heudiconv").exists() or not any((out / ".heudiconv").rglob("*.tsv"))
    # documented in docs/reliability.md: dcm2niix keeps these BIDS-recommended institution fields
    assert sidecar_keeps <= {"InstitutionName", "InstitutionAddress"}, sidecar_keeps
