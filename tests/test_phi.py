"""No PHI in what the App writes: distinctive names planted in the DICOM headers are searched
for in every text file of the output and in the run's log."""

from __future__ import annotations

import subprocess
from pathlib import Path

from badinputs import PHI, series, write_sr
from e2e_helpers import require_model
from test_reruns import cli, env

from bidsapp.derivatives import read_tsv
from bidsapp.naming import sanitize_label

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


PATIENTS = {"MRN-4711": ("20230105", "20240317"), "HOSP_0815": ("20220202",)}


def test_pseudonymised_output_names_no_patient_or_date(tmp_path: Path):
    """--pseudonymise in two parallel participant jobs: the labels of one listing, sessions in
    study order, the PatientID table only where asked, and no PatientID or StudyDate in any path
    (nor any PatientID in any file: these input folders are not named after patients)."""
    require_model()
    src, out, key = tmp_path / "in", tmp_path / "out", tmp_path / "private" / "key"
    key.parent.mkdir()
    key.write_bytes(b"a secret only the site keeps, 32+")
    number = 0
    for pid, dates in PATIENTS.items():
        for date in dates:
            number += 1
            series(src / f"s{number}", number, f"desc{number}", patient_id=pid, study_date=date, n_slices=3)
    private = [f"--pseudonymise={key}"]
    listing = subprocess.run([*cli(src, out), *private, "--list-participants"], env=env(), capture_output=True,
                             text=True, timeout=120)
    labels = listing.stdout.split()
    assert len(labels) == 2, listing.stderr
    jobs = [subprocess.Popen([*cli(src, out), *private, f"--write-subject-map={tmp_path / 'private' / label}.tsv",
                              "--participant-label", label], env=env(), stderr=subprocess.PIPE, text=True)
            for label in labels]
    assert [job.wait(timeout=600) for job in jobs] == [0, 0], [job.stderr.read()[-1500:] for job in jobs]

    assert sorted(p.name for p in out.glob("sub-*")) == [f"sub-{label}" for label in labels]
    tables = {p.read_text() for p in (tmp_path / "private").glob("*.tsv")}
    assert len(tables) == 1 and all(pid in next(iter(tables)) for pid in PATIENTS)
    rows = [r for p in (out / "derivatives" / "mrclass").glob("sub-*/*_classifications.tsv") for r in read_tsv(p)]
    assert sorted((r["session_id"], r["series_description"]) for r in rows) == [("n/a", "desc3"), ("ses-1", "desc1"),
                                                                                 ("ses-2", "desc2")]
    secrets = {form for pid in PATIENTS for form in (pid, sanitize_label(pid))}
    dates = {form for ds in PATIENTS.values() for d in ds for form in (d, f"{d[:4]}-{d[4:6]}-{d[6:]}", d[2:])}
    paths = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    assert paths and not [p for p in paths if any(s in p for s in secrets | dates)]
    assert not [p for p in out.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]
