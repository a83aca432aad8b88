"""Parallel participant jobs (as in an HPC array) into one output folder, then the group level."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from badinputs import series, write_junk
from e2e_helpers import require_model, validator_errors
from test_reruns import cli, env

from bidsapp.derivatives import GROUP_TSV, SKIPPED_TSV, TSV_COLUMNS, read_tsv

PATIENTS = ("PA", "PB", "PC")


def test_parallel_participants_share_valid_files(tmp_path: Path):
    require_model()
    src = tmp_path / "in"
    for pid in PATIENTS:
        series(src / pid / "t1", 1, "t1_se_tra", patient_id=pid, n_slices=5)
        series(src / pid / "t2", 2, "t2_tse_tra", patient_id=pid, n_slices=5)
    write_junk(src / "misc")
    out = tmp_path / "out"
    jobs = [subprocess.Popen(cli(src, out, "--participant-label", pid), env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for pid in PATIENTS]
    results = [(job.wait(timeout=600), job.stderr.read()) for job in jobs]
    assert [rc for rc, _ in results] == [0] * len(PATIENTS), [err[-1500:] for _, err in results]
    group = subprocess.run([*cli(src, out)[:-3], "group"], env=env(), capture_output=True, text=True, timeout=300)
    assert group.returncode == 0, group.stderr

    deriv = out / "derivatives" / "mrclass"
    for root in (out, deriv):
        desc = json.loads((root / "dataset_description.json").read_text())
        assert desc["BIDSVersion"] and desc["GeneratedBy"][0]["Name"] == "mrclass-bids"
    participants = read_tsv(out / "participants.tsv")
    written = sorted(p.name for p in out.glob("sub-*") if p.is_dir())
    assert [r["participant_id"] for r in participants] == written  # one row per raw subject, none lost
    rows = read_tsv(deriv / GROUP_TSV)
    assert list(rows[0]) == list(TSV_COLUMNS)
    assert sorted(r["participant_id"] for r in rows) == sorted(f"sub-{p}" for p in PATIENTS for _ in range(2))
    assert {r["path"] for r in read_tsv(deriv / SKIPPED_TSV)} == {"misc/notes.txt", "misc/Thumbs.db", "misc/.DS_Store"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert validator_errors(out) == []
