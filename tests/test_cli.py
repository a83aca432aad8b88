"""CLI: arguments, help text, and the exit codes of usage errors (no model needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dicomgen import write_series

from bidsapp import __version__
from bidsapp.cli.parser import EXIT_NOTHING_DONE, EXIT_OK, EXIT_USAGE, parse_args
from bidsapp.cli.run import main
from bidsapp.derivatives import TSV_COLUMNS


def test_defaults():
    a = parse_args(["/in", "/out", "participant"])
    assert (a.bids_dir, a.output_dir, a.analysis_level) == ("/in", "/out", "participant")
    assert a.participant_label is None and a.input_type == "auto" and a.device == "auto"
    assert a.nprocs == 1 and a.threshold is None and a.verbose == 0 and a.work_dir is None


def test_participant_label_both_spellings_and_prefix():
    a = parse_args(["/in", "/out", "participant", "--participant-label", "01", "sub-02"])
    b = parse_args(["/in", "/out", "participant", "--participant_label", "sub-01", "02"])
    assert a.participant_label == b.participant_label == ["01", "02"]


@pytest.mark.parametrize(
    "extra",
    [
        ["--participant-label", "../etc"],
        ["--threshold", "1.5"],
        ["--nprocs", "0"],
        ["--device", "tpu"],
        ["--input-type", "nifti"],
    ],
)
def test_bad_arguments_exit_2(extra, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["/in", "/out", "participant", *extra])
    assert exc.value.code == EXIT_USAGE


def test_bad_level_exit_2():
    with pytest.raises(SystemExit) as exc:
        parse_args(["/in", "/out", "session"])
    assert exc.value.code == EXIT_USAGE


def test_verbose_repeatable():
    assert parse_args(["/i", "/o", "group", "-vv"]).verbose == 2
    assert parse_args(["/i", "/o", "group", "-v", "-v", "-v"]).verbose == 3


def test_help_explains_usage_and_exit_codes():
    out = subprocess.run([sys.executable, "-m", "bidsapp.cli.run", "--help"], capture_output=True, text=True, check=True).stdout
    for needle in ("examples:", "exit status:", "participant", "group", "--participant-label", "sourcedata/unclassified", "never written"):
        assert needle in out, needle
    for code in range(4):
        assert f"\n  {code}  " in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_missing_input_exit_2(tmp_path: Path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "out"), "participant"]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_inside_input_exit_2(tmp_path: Path, capsys):
    (tmp_path / "in").mkdir()
    assert main([str(tmp_path / "in"), str(tmp_path / "in" / "out"), "participant"]) == EXIT_USAGE
    assert main([str(tmp_path / "in"), str(tmp_path / "in"), "participant"]) == EXIT_USAGE
    assert main([str(tmp_path / "in"), str(tmp_path), "participant"]) == EXIT_USAGE
    assert "inside" in capsys.readouterr().err
    assert list((tmp_path / "in").iterdir()) == []


def test_unknown_participant_exit_2(tmp_path: Path, capsys):
    write_series(tmp_path / "in", patient_id="P01")
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "participant", "--participant-label", "P99"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "P99" in err and "P01" in err  # says what is available


def test_no_series_exit_3(tmp_path: Path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("no images here")
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "participant"]) == EXIT_NOTHING_DONE
    assert "no dicom series" in capsys.readouterr().err


def test_group_without_participants_exit_3(tmp_path: Path):
    (tmp_path / "in").mkdir()
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "group"]) == EXIT_NOTHING_DONE


def test_group_concatenates(tmp_path: Path):
    (tmp_path / "in").mkdir()
    deriv = tmp_path / "out" / "derivatives" / "mrclass"
    header = "participant_id\tsession_id\tsource\tseries_uid\tseries_description\tlabel\tconfidence\theader_label\theader_agrees\tbids_path\tstatus\tmessage\n"
    for sub in ("02", "01"):
        (deriv / f"sub-{sub}").mkdir(parents=True)
        (deriv / f"sub-{sub}" / f"sub-{sub}_classifications.tsv").write_text(
            header + f"sub-{sub}\tn/a\tx\t1.{sub}\tt1\tT1w\t0.9\tT1w\ttrue\tsub-{sub}/anat/sub-{sub}_T1w.nii.gz\tok\tn/a\n"
        )
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "group"]) == EXIT_OK
    lines = (deriv / "group_classifications.tsv").read_text().splitlines()
    assert lines[0] == "\t".join(TSV_COLUMNS)
    assert [line.split("\t")[0] for line in lines[1:]] == ["sub-01", "sub-02"]
    # tables of an older version lack decided_by: the group table says n/a there
    assert {line.split("\t")[TSV_COLUMNS.index("decided_by")] for line in lines[1:]} == {"n/a"}


def test_list_participants_prints_labels_only(tmp_path: Path, capfd):
    """One label per line on stdout, nothing else, nothing written: what `mapfile -t` reads."""
    from dicomgen import write_sr

    for n, pid in enumerate(("AB-2", "P01", "AB-2", "Zz 9")):
        write_series(tmp_path / "in" / f"s{n}", patient_id=pid, series_number=n + 1, series_description=f"s{n}")
    write_sr(tmp_path / "in" / "report.dcm", patient_id="P01")
    (tmp_path / "in" / "notes.txt").write_text("junk")
    out = tmp_path / "out"
    capfd.readouterr()
    assert main([str(tmp_path / "in"), str(out), "participant", "--list-participants", "-vv"]) == EXIT_OK
    captured = capfd.readouterr()
    assert captured.out.splitlines() == ["AB2", "P01", "Zz9"] and captured.out.endswith("\n")
    assert not out.exists()
    assert main([str(tmp_path / "in"), str(out), "participant", "--list-participants", "--participant-label", "P01"]) == EXIT_OK
    assert capfd.readouterr().out == "P01\n"


def test_list_participants_of_bids_input_and_of_nothing(tmp_path: Path, capfd):
    for sub in ("02", "01"):
        (tmp_path / "bids" / f"sub-{sub}" / "anat").mkdir(parents=True)
        (tmp_path / "bids" / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz").write_bytes(b"")
    (tmp_path / "bids" / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    assert main([str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "--list-participants"]) == EXIT_OK
    assert capfd.readouterr().out == "01\n02\n"
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), str(tmp_path / "out"), "participant", "--list-participants"]) == EXIT_NOTHING_DONE
    assert capfd.readouterr().out == ""


def test_list_participants_subprocess_stdout_is_clean(tmp_path: Path):
    """In a fresh process too (imports, logging, warnings): stdout carries the labels alone."""
    write_series(tmp_path / "in", patient_id="P01")
    proc = subprocess.run([sys.executable, "-m", "bidsapp.cli.run", str(tmp_path / "in"), str(tmp_path / "out"),
                           "participant", "--list-participants", "-v"], capture_output=True, text=True, check=True)
    assert proc.stdout == "P01\n"


def test_list_participants_writes_the_header_index_tasks_reuse(tmp_path: Path, capfd, monkeypatch):
    import bidsapp.discover as discover

    for pid in ("P01", "P02"):
        write_series(tmp_path / "in" / pid, patient_id=pid, n_slices=2)
    index = tmp_path / "scratch" / "headers.json"
    args = [str(tmp_path / "in"), str(tmp_path / "out"), "participant", "--header-index", str(index)]
    assert main([*args, "--list-participants"]) == EXIT_OK and index.is_file()
    assert capfd.readouterr().out == "P01\nP02\n"
    monkeypatch.setattr(discover, "_index_file", lambda p: pytest.fail(f"{p} read again"))
    assert main([*args, "--list-participants", "--participant-label", "P02"]) == EXIT_OK
    assert capfd.readouterr().out == "P02\n"
    inside = [str(tmp_path / "in"), str(tmp_path / "out"), "participant", "--header-index", str(tmp_path / "in" / "i.json")]
    assert main([*inside, "--list-participants"]) == EXIT_USAGE and not (tmp_path / "in" / "i.json").exists()
