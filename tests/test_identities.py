"""Subject and session labels (``bidsapp.identities``): keyed hashes, the user's map, ordinal
sessions, collisions, and the files behind them. No model needed; CLI runs use --list-participants."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from dicomgen import write_series, write_sr
from hypothesis import given, settings
from hypothesis import strategies as st
from test_usage_errors import one_line_error

from bidsapp import identities
from bidsapp.cli.parser import EXIT_OK, EXIT_USAGE
from bidsapp.cli.run import main
from bidsapp.discover import discover_dicom
from bidsapp.identities import (
    Entry,
    IdentityError,
    IdentityPolicy,
    Study,
    SubjectMap,
    read_subject_map,
    write_subject_map,
)

KEY = b"0123456789abcdef-test-key"
HASHED = IdentityPolicy(key=KEY)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


# --------------------------------------------------------------------------- keyed hash


def test_hashed_labels_are_alphanumeric_keyed_and_reveal_no_id():
    ids = ["MRN-0012345", "MRN-0012346", "Müller^Jörg", ""]
    labels = HASHED.subject_labels(ids)
    assert all(len(v) == identities.HASH_CHARS and v.isascii() and v.isalnum() for v in labels.values())
    assert len(set(labels.values())) == len(ids)
    assert not any("0012345" in v or "12345" in v for v in labels.values())
    assert IdentityPolicy(key=KEY).subject_labels(list(reversed(ids))) == labels  # a rerun
    assert set(IdentityPolicy(key=KEY + b"x").subject_labels(ids).values()).isdisjoint(labels.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=30, unique=True), st.data())
def test_labels_of_a_subset_are_the_labels_of_the_whole(ids, data):
    """What an HPC job sees of the input cannot change a patient's label (no collision at 10 chars)."""
    part = data.draw(st.lists(st.sampled_from(ids), unique=True))
    whole = HASHED.subject_labels(ids)
    assert HASHED.subject_labels(part) == {pid: whole[pid] for pid in part}


def test_colliding_prefixes_get_longer_labels_deterministically(monkeypatch):
    monkeypatch.setattr(identities, "HASH_CHARS", 1)  # 32 symbols: 60 IDs must collide
    ids = [f"P{n}" for n in range(60)]
    labels = HASHED.subject_labels(ids)
    assert len(set(labels.values())) == len(ids)
    assert {len(v) for v in labels.values()} > {1}  # some were extended
    assert HASHED.subject_labels(list(reversed(ids))) == labels
    digest = {pid: identities._digest(pid, KEY) for pid in ids}
    assert all(digest[pid].startswith(label) for pid, label in labels.items())
    singles = [pid for pid in ids if sum(digest[o][0] == digest[pid][0] for o in ids) == 1]
    assert singles and all(len(labels[pid]) == 1 for pid in singles)  # only the colliding ones grew


def test_a_hash_never_takes_a_label_the_map_gave():
    plain = HASHED.subject_labels(["A", "B"])
    taken = IdentityPolicy(SubjectMap(by_patient={"A": Entry(plain["B"])}), key=KEY).subject_labels(["A", "B"])
    assert taken["A"] == plain["B"] and taken["B"] != plain["B"] and taken["B"].startswith(plain["B"])


# --------------------------------------------------------------------------- sessions


def test_ordinal_sessions_follow_date_time_uid_and_missing_dates_sort_last():
    studies = [
        Study("1.9", "A", "", "080000"),  # no date: last
        Study("1.5", "A", "20240301", ""),  # no time: after the timed study of its day
        Study("1.4", "A", "20240301", "0930"),  # HHMM reads as 09:30:00
        Study("1.3", "A", "20240301", "093000.5"),
        Study("1.2", "A", "20240101", "235959"),
        Study("1.1", "A", "20240101", "235959"),  # same date and time: by UID
    ]
    assert HASHED.sessions_of(studies) == {"1.1": "1", "1.2": "2", "1.4": "3", "1.3": "4", "1.5": "5", "1.9": "6"}
    assert HASHED.sessions_of(list(reversed(studies))) == HASHED.sessions_of(studies)


def test_one_study_has_no_session_and_default_sessions_stay_dates():
    assert HASHED.sessions_of([Study("1.1", "A", "20240101")]) == {"1.1": None}
    two = [Study("1.1", "A", "20240101"), Study("1.2", "A", "20240202")]
    assert IdentityPolicy().sessions_of(two) == {"1.1": "20240101", "1.2": "20240202"}  # as before


# --------------------------------------------------------------------------- the map


MAPPED = SubjectMap(
    by_study={"1.2": Entry("s2", "late"), "9.1": Entry("onlystudies")},
    by_patient={"A": Entry("s1"), "B": Entry("s3", "base")},
)


def test_map_precedence_study_row_then_patient_row_then_hash():
    studies = [Study("1.1", "A", "20240101"), Study("1.2", "A", "20230101"), Study("1.3", "A", "20250101"),
               Study("2.1", "B", "20240101"), Study("3.1", "C", "20240101"), Study("9.1", "D", "20240101")]
    got = IdentityPolicy(MAPPED, key=KEY).assign(studies, ["A", "B", "C", "D", "E"])
    hashed = HASHED.subject_labels(["C", "E"])
    assert got.by_study() == {
        "1.1": ("s1", "1"), "1.3": ("s1", "2"),  # the patient's row; sessions it does not give are ordinal
        "1.2": ("s2", "late"),  # the study's row wins over the patient's
        "2.1": ("s3", "base"),
        "3.1": (hashed["C"], None),
        "9.1": ("onlystudies", None),
    }
    assert got.subjects == {"A": "s1", "B": "s3", "C": hashed["C"], "D": "onlystudies", "E": hashed["E"]}


def test_ordinals_skip_the_numbers_the_map_took():
    policy = IdentityPolicy(SubjectMap(by_study={"1.3": Entry("s", "1")}))
    studies = [Study("1.1", "A", "20240101"), Study("1.2", "A", "20240202"), Study("1.3", "A", "20250101")]
    assert policy.sessions_of(studies) == {"1.3": "1", "1.1": "2", "1.2": "3"}


def test_one_study_naming_two_patients_and_two_patients_mapped_to_one_subject():
    shared = [Study("1.1", "A", "20240101"), Study("1.1", "B", "20240101")]
    apart = HASHED.assign(shared, ["A", "B"])
    assert apart.of("1.1", "A") != apart.of("1.1", "B")  # each series keeps its own patient
    merged = IdentityPolicy(SubjectMap(by_patient={"A": Entry("s"), "B": Entry("s")}))
    got = merged.assign([*shared, Study("1.2", "B", "20250101")], ["A", "B"])
    assert got.studies == {("A", "1.1"): ("s", "1"), ("B", "1.1"): ("s", "1"), ("B", "1.2"): ("s", "2")}


def test_map_without_key_must_name_every_patient():
    policy = IdentityPolicy(SubjectMap(by_patient={"A": Entry("s1")}))
    with pytest.raises(IdentityError, match="1 patient.*not in --subject-map.*'B'.*--pseudonymise"):
        policy.assign([Study("1.1", "A"), Study("2.1", "B")], ["A", "B"])


def test_map_sessions_that_would_merge_two_studies_are_refused():
    policy = IdentityPolicy(SubjectMap(by_patient={"A": Entry("s1", "x")}))
    with pytest.raises(IdentityError, match="same subject and session.*sub-s1 ses-x"):
        policy.assign([Study("1.1", "A"), Study("1.2", "A")], ["A"])


def test_map_file_round_trips_through_write_subject_map(tmp_path: Path):
    studies = [Study("1.1", "A", "20240101"), Study("1.2", "A", "20240202"), Study("2.1", "B", "")]
    first = HASHED.assign(studies, ["A", "B", "C"])  # C: only a report, no image study
    path = tmp_path / "private" / "map.tsv"
    write_subject_map(path, first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[0] == "PatientID\tStudyInstanceUID\tsubject\tsession"
    again = IdentityPolicy(read_subject_map(path)).assign(studies, ["A", "B", "C"])  # no key needed
    assert (again.studies, again.subjects) == (first.studies, first.subjects)


def test_map_accepts_prefixes_blank_lines_and_either_key(tmp_path: Path):
    path = write(tmp_path / "m.tsv", "\ufeffPatientID\tsubject\tsession\tStudyInstanceUID\r\n"
                 "A\tsub-01\t\t\n\nB\t02\tses-pre\t\n\t03\t\t1.2.3\n")
    assert read_subject_map(path) == SubjectMap(by_study={"1.2.3": Entry("03")},
                                                by_patient={"A": Entry("01"), "B": Entry("02", "pre")})


BAD_MAPS = {
    "empty": ("", "is empty"),
    "unknown column": ("PatientID\tsubject\tage\nA\t01\t3\n", "unknown column"),
    "no key column": ("subject\tsession\n01\t1\n", "header needs"),
    "no subject column": ("PatientID\tsession\nA\t1\n", "header needs"),
    "ragged row": ("PatientID\tsubject\nA\t01\textra\n", "line 2: 3 cells for 2 columns"),
    "row without key": ("PatientID\tsubject\n\t01\n", "line 2: no StudyInstanceUID or PatientID"),
    "key twice": ("PatientID\tsubject\nA\t01\nA\t02\n", "line 3: PatientID A is mapped twice"),
    "bad subject": ("PatientID\tsubject\nA\tsub-0_1\n", "line 2: sub must be"),
    "empty subject": ("PatientID\tsubject\nA\t\n", "line 2: sub must be"),
    "bad session": ("PatientID\tsubject\tsession\nA\t01\tses-é\n", "line 2: ses must be"),
    "not text": (b"\xff\xfe\x00P\x00", "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_bad_map_files_are_one_line_errors(tmp_path: Path, case: str):
    text, message = BAD_MAPS[case]
    with pytest.raises(IdentityError, match=message) as exc:
        read_subject_map(write(tmp_path / "m.tsv", text))
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- discovery and the CLI


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """MRN1: three studies (one without a date); MRN2: one study and a report of its own."""
    src = tmp_path / "in"
    for n, (date, time) in enumerate([("20240105", "101500"), ("", "090000"), ("20240105", "081500")], start=1):
        write_series(src / f"a{n}", patient_id="MRN1", study_date=date, study_time=time, study_uid=f"1.2.{n}",
                     series_number=n, n_slices=1)
    write_series(src / "b", patient_id="MRN2", study_date="20230101", study_uid="1.3.1", n_slices=1)
    write_sr(src / "sr.dcm", patient_id="MRN2", study_uid="1.3.9")
    write(tmp_path / "key", KEY)
    return src


def test_discovery_names_sessions_in_study_order(export: Path):
    """Also when the headers come from a saved --header-index (it must keep StudyTime)."""
    index = export.parent / "index.json"
    found, from_index = (discover_dicom(export, index, identities=HASHED) for _ in range(2))
    subject = HASHED.subject_labels(["MRN1"])["MRN1"]
    assert found.study_ids == {"1.2.3": (subject, "1"), "1.2.1": (subject, "2"), "1.2.2": (subject, "3"),
                               "1.3.1": (HASHED.subject_labels(["MRN2"])["MRN2"], None)}
    assert {s.session for s in found.series if s.subject == subject} == {"1", "2", "3"}
    assert from_index.study_ids == found.study_ids  # by UID alone, 1.2.1 would come before 1.2.3


def cli(src: Path, out: Path, *extra: str) -> list[str]:
    return [str(src), str(out), "participant", *extra]


def test_list_participants_prints_pseudonyms_and_label_filter_accepts_them(export: Path, capfd):
    key = export.parent / "key"
    assert main(cli(export, export.parent / "out", "--list-participants", "--pseudonymise", str(key))) == EXIT_OK
    printed = capfd.readouterr().out.split()
    assert printed == sorted(HASHED.subject_labels(["MRN1", "MRN2"]).values())
    assert main(cli(export, export.parent / "out", "--list-participants", "--pseudonymise", str(key),
                    "--participant-label", f"sub-{printed[1]}")) == EXIT_OK
    assert capfd.readouterr().out.split() == [printed[1]]
    assert not (export.parent / "out").exists()


def test_parallel_jobs_get_the_labels_of_one_run(export: Path):
    """Two processes, same key, different --participant-label: the same labels and the same table as one."""
    key, tmp = export.parent / "key", export.parent

    def job(name: str, *labels: str) -> subprocess.Popen:
        extra = ["--participant-label", *labels] if labels else []
        return subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", *cli(export, tmp / "out", "--list-participants",
                                 "--pseudonymise", str(key), "--write-subject-map", str(tmp / f"{name}.tsv"), *extra)],
                                stdout=subprocess.PIPE, text=True)

    one = job("one")
    labels = one.communicate(timeout=120)[0].split()
    jobs = [job(f"job{n}", label) for n, label in enumerate(labels)]
    assert [j.communicate(timeout=120)[0].split() for j in jobs] == [[label] for label in labels]
    tables = {(tmp / f"{name}.tsv").read_text() for name in ("one", "job0", "job1")}
    assert len(tables) == 1 and "MRN1" in tables.pop()


@pytest.mark.parametrize(
    "case",
    ["short key", "missing key", "bad map", "unmapped patient", "key inside output", "header index inside output",
     "map written inside input", "map written below a file", "bids input"],
)
def test_identity_usage_errors_exit_2_with_one_line(export: Path, case: str, capsys):
    tmp = export.parent
    short, bids = write(tmp / "short", b"123"), tmp / "bids"
    write(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz", b"")
    write(tmp / "out" / "key", KEY)
    write(tmp / "map.tsv", "PatientID\tsubject\nMRN1\t01\n")
    src, extra, message = {
        "short key": (export, ["--pseudonymise", str(short)], "at least 16"),
        "missing key": (export, ["--pseudonymise", str(tmp / "nokey")], "cannot read key file"),
        "bad map": (export, ["--subject-map", str(short)], "unknown column"),
        "unmapped patient": (export, ["--subject-map", str(tmp / "map.tsv")], "not in --subject-map"),
        "key inside output": (export, ["--pseudonymise", str(tmp / "out" / "key")], "inside the output"),
        "header index inside output": (export, ["--header-index", str(tmp / "out" / "i.json")], "inside the output"),
        "map written inside input": (export, ["--write-subject-map", str(export / "m.tsv")], "inside the input"),
        "map written below a file": (export, ["--write-subject-map", str(short / "m.tsv")], "is a file"),
        "bids input": (bids, ["--pseudonymise", str(tmp / "key")], "DICOM input only"),
    }[case]
    assert main(cli(src, tmp / "out", *extra)) == EXIT_USAGE
    assert message in one_line_error(capsys.readouterr().err)
    assert not (export / "m.tsv").exists()
