"""Which BIDS subject and session each DICOM study gets: the labels every output file name carries.

File names travel much further than headers (listings, e-mails, papers, shared folders), so a
hospital record number as ``sub-`` or a study date as ``ses-`` is a leak. The sources of a label,
highest precedence first:

=====================================  ==========================================  =====================
source                                 subject                                     session
=====================================  ==========================================  =====================
``--subject-map`` row by study UID     the row's                                   the row's, or ordinal
``--subject-map`` row by PatientID     the row's                                   the row's, or ordinal
``--pseudonymise KEYFILE``             keyed hash of the PatientID                 ordinal
neither option (default, as before)    sanitised PatientID                         StudyDate
=====================================  ==========================================  =====================

The default stays what earlier versions wrote, so reruns into existing datasets keep their names.
Ordinal sessions (``1``, ``2``, ...) follow StudyDate, StudyTime, then StudyInstanceUID; a study
without a readable date or time sorts after those with one. A subject with a single study has
no session unless the map names one. Labels depend on the rest of the input only where two of them
would collide, and every participant job of an HPC array discovers the whole tree, so parallel
jobs, reruns and one single run all give each study the same labels.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from bidsapp.discover import session_labels, subject_labels

#: Base32 characters of the keyed hash in a label: 50 bits, so among 100 000 patients two share a
#: prefix with probability ~4e-6 (and then both get longer ones, see ``_hashed_labels``).
HASH_CHARS = 10
MIN_KEY_BYTES = 16  # a PatientID has little entropy: the key is what keeps labels from being reversed
MAP_COLUMNS = ("PatientID", "StudyInstanceUID", "subject", "session")
KEY_COLUMNS = ("StudyInstanceUID", "PatientID")  # a row keys on the first of these it fills


class IdentityError(ValueError):
    """A subject map or key file that cannot be used, or labels that would merge studies (one line)."""


@dataclass(frozen=True)
class Study:
    """What a study's labels may depend on (discovery reads these from the headers)."""

    uid: str
    patient_id: str
    date: str = ""  # StudyDate (YYYYMMDD) when readable, else ""
    time: str = ""  # StudyTime (HH[MM[SS[.F]]]) when readable, else ""

    def order(self) -> tuple:
        """Chronological, then by UID; a missing date or time sorts after the present ones."""
        clock, _, fraction = self.time.partition(".")
        time = clock.ljust(6, "0") + fraction.ljust(6, "0") if self.time else ""
        return (not self.date, self.date, not time, time, self.uid)


@dataclass(frozen=True)
class Entry:
    """One row of a subject map: the labels the user chose."""

    subject: str
    session: str | None = None


@dataclass(frozen=True)
class SubjectMap:
    """A user's ``--subject-map``: rows keyed by StudyInstanceUID or by PatientID."""

    by_study: Mapping[str, Entry] = field(default_factory=dict)
    by_patient: Mapping[str, Entry] = field(default_factory=dict)

    def entry(self, study: Study) -> Entry | None:
        return self.by_study.get(study.uid) or self.by_patient.get(study.patient_id)

    @property
    def subjects(self) -> set[str]:
        return {e.subject for e in (*self.by_study.values(), *self.by_patient.values())}


@dataclass(frozen=True)
class Assignment:
    """Labels of one input: per image study, and per patient for series outside those studies.

    Studies are keyed by (PatientID, StudyInstanceUID): a study whose series name two patients
    (a merge gone wrong at the PACS) leaves each series with its own patient."""

    studies: dict[tuple[str, str], tuple[str, str | None]]  # (PatientID, StudyInstanceUID) -> (subject, session)
    subjects: dict[str, str]  # PatientID -> subject

    def of(self, study_uid: str, patient_id: str) -> tuple[str, str | None]:
        return self.studies.get((patient_id, study_uid), (self.subjects[patient_id], None))

    def by_study(self) -> dict[str, tuple[str, str | None]]:
        return {uid: ids for (_, uid), ids in self.studies.items()}

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(PatientID, StudyInstanceUID, subject, session) per study, and per patient without an
        image study: a table ``--subject-map`` reads back to the same labels."""
        rows = [(pid, uid, sub, ses or "") for (pid, uid), (sub, ses) in self.studies.items()]
        with_studies = {pid for pid, _ in self.studies}
        rows += [(pid, "", sub, "") for pid, sub in self.subjects.items() if pid not in with_studies]
        return sorted(rows, key=lambda r: (r[2], r[3], r[1], r[0]))


@dataclass(frozen=True)
class IdentityPolicy:
    """How PatientIDs and studies become BIDS labels (module docstring: the precedence table)."""

    subject_map: SubjectMap | None = None
    key: bytes | None = None  # --pseudonymise: HMAC-SHA256 key (the key file's bytes)

    @property
    def ordinal_sessions(self) -> bool:
        return self.subject_map is not None or self.key is not None

    def assign(self, studies: Iterable[Study], patient_ids: Iterable[str]) -> Assignment:
        """Labels for the image ``studies`` (they alone name sessions) and for every patient."""
        studies = sorted(set(studies), key=lambda s: (s.uid, s.patient_id))
        subjects = self.subject_labels(set(patient_ids) | {s.patient_id for s in studies}, studies)
        by_subject: dict[str, list[Study]] = defaultdict(list)
        for s in studies:
            entry = self._entry(s)
            by_subject[entry.subject if entry else subjects[s.patient_id]].append(s)
        ids = {}
        for subject, group in sorted(by_subject.items()):
            sessions = self.sessions_of(group, subject)
            ids |= {(s.patient_id, s.uid): (subject, sessions[s.uid]) for s in group}
        return Assignment(ids, subjects)

    def subject_labels(self, patient_ids: Iterable[str], studies: Iterable[Study] = ()) -> dict[str, str]:
        """PatientID -> subject: the map's row for the patient, else the subject the map gives all
        of its studies, else the keyed hash (``--pseudonymise``), else the sanitised PatientID.
        A map without ``--pseudonymise`` must cover every patient: nothing falls back to the ID."""
        patient_ids = set(patient_ids)
        by_study: dict[str, set[str]] = defaultdict(set)
        for s in studies:
            entry = self._entry(s)
            by_study[s.patient_id].add(entry.subject if entry else "")
        mapped = self.subject_map.by_patient if self.subject_map else {}
        labels = {pid: mapped[pid].subject for pid in patient_ids if pid in mapped}
        labels |= {pid: min(subs) for pid, subs in by_study.items()
                   if pid not in labels and len(subs) == 1 and "" not in subs}
        rest = sorted(patient_ids - set(labels))
        if self.key is not None:
            reserved = self.subject_map.subjects if self.subject_map else set()
            return labels | _hashed_labels(rest, self.key, reserved | set(labels.values()))
        if self.subject_map is not None and rest:
            raise IdentityError(f"{len(rest)} patient(s) are not in --subject-map, e.g. PatientID {rest[0]!r}: add rows "
                                "for them, or add --pseudonymise KEYFILE to hash the rest")
        return labels | subject_labels(rest)

    def sessions_of(self, studies: list[Study], subject: str = "") -> dict[str, str | None]:
        """Sessions of one subject's studies: the map's, the rest numbered in ``Study.order``
        (skipping numbers the map took); none for a lone study the map gives no session.
        Without map or key, StudyDate as before (``discover.session_labels``)."""
        if not self.ordinal_sessions:
            return session_labels({s.uid: s.date for s in studies})
        studies = list({s.uid: s for s in studies}.values())  # two patients the map merged may share one
        chosen = {s.uid: e.session for s in studies if (e := self._entry(s)) and e.session}
        if len(studies) == 1 and not chosen:
            return {studies[0].uid: None}
        owner: dict[str, str] = {}
        for uid, session in sorted(chosen.items()):
            if session in owner:
                raise IdentityError(f"--subject-map gives studies {owner[session]} and {uid} the same subject and "
                                    f"session (sub-{subject} ses-{session}): they would overwrite each other")
            owner[session] = uid
        numbers = (str(n) for n in count(1) if str(n) not in owner)
        return {s.uid: chosen.get(s.uid) or next(numbers) for s in sorted(studies, key=Study.order)}

    def _entry(self, study: Study) -> Entry | None:
        return self.subject_map.entry(study) if self.subject_map else None


def _hashed_labels(patient_ids: list[str], key: bytes, reserved: set[str]) -> dict[str, str]:
    """HMAC-SHA256 labels, ``HASH_CHARS`` long; IDs whose labels collide (with each other or with a
    label the map reserved) get longer prefixes until none does: deterministic, and every label
    that did not collide stays the same whatever else the input holds."""
    digests = {pid: _digest(pid, key) for pid in patient_ids}
    length = dict.fromkeys(patient_ids, HASH_CHARS)
    while True:
        labels = {pid: digests[pid][: length[pid]] for pid in patient_ids}
        holders: dict[str, list[str]] = defaultdict(list)
        for pid, label in labels.items():
            holders[label].append(pid)
        clashing = [pid for label, pids in holders.items() if len(pids) > 1 or label in reserved for pid in pids]
        if not clashing:
            return labels
        for pid in clashing:
            length[pid] += 4  # 52 characters hold the whole digest: distinct IDs never stay equal


def _digest(patient_id: str, key: bytes) -> str:
    mac = hmac.new(key, patient_id.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii").lower().rstrip("=")


# --------------------------------------------------------------------------- files


def read_key(path: str | Path) -> bytes:
    """The bytes of a ``--pseudonymise`` key file (at least ``MIN_KEY_BYTES``)."""
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise IdentityError(f"--pseudonymise: cannot read key file {path}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise IdentityError(f"--pseudonymise: key file {path} holds {len(key)} bytes, at least {MIN_KEY_BYTES} are "
                            "needed (make one with: head -c 32 /dev/urandom > KEYFILE)")
    return key


def _label(text: str, what: str, where: str) -> str:
    label = text[len(what) + 1 :] if text.startswith(f"{what}-") else text
    if not label.isascii() or not label.isalnum():
        raise IdentityError(f"{where}: {what} must be [a-zA-Z0-9]+ (with or without '{what}-'), got {text!r}")
    return label


def read_subject_map(path: str | Path) -> SubjectMap:
    """A ``--subject-map`` TSV: a header naming PatientID and/or StudyInstanceUID, ``subject`` and
    optionally ``session``; one row per key (a row keys on its StudyInstanceUID when it has one)."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"--subject-map: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    rows = [(n, line.split("\t")) for n, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise IdentityError(f"--subject-map: {path} is empty")
    (_, header), rows = rows[0], rows[1:]
    header = [h.strip() for h in header]
    if unknown := [h for h in header if h not in MAP_COLUMNS]:
        raise IdentityError(f"--subject-map: {path}: unknown column(s) {', '.join(unknown)}; expected "
                            f"{' and/or '.join(KEY_COLUMNS)}, subject, optional session (tab-separated)")
    if "subject" not in header or not set(KEY_COLUMNS) & set(header) or len(set(header)) != len(header):
        raise IdentityError(f"--subject-map: {path}: the header needs {' and/or '.join(KEY_COLUMNS)} and subject, once each")
    tables: dict[str, dict[str, Entry]] = {k: {} for k in KEY_COLUMNS}
    for n, cells in rows:
        where = f"--subject-map: {path} line {n}"
        if len(cells) != len(header):
            raise IdentityError(f"{where}: {len(cells)} cells for {len(header)} columns")
        row = {h: c.strip() for h, c in zip(header, cells)}
        column = next((k for k in KEY_COLUMNS if row.get(k)), None)
        if column is None:
            raise IdentityError(f"{where}: no {' or '.join(KEY_COLUMNS)}")
        if row[column] in tables[column]:
            raise IdentityError(f"{where}: {column} {row[column]} is mapped twice")
        session = row.get("session")
        tables[column][row[column]] = Entry(_label(row["subject"], "sub", where),
                                            _label(session, "ses", where) if session else None)
    return SubjectMap(by_study=tables["StudyInstanceUID"], by_patient=tables["PatientID"])


def write_subject_map(path: str | Path, assignment: Assignment) -> None:
    """The PatientID -> label table, where the user asked for it: readable by its owner only, and
    written atomically (parallel participant jobs write the same table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join("\t".join(row) + "\n" for row in [MAP_COLUMNS, *assignment.rows()])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def policy(subject_map: str | Path | None, key_file: str | Path | None) -> IdentityPolicy:
    """The policy the options ask for (both absent: the default, sanitised PatientIDs)."""
    return IdentityPolicy(subject_map=read_subject_map(subject_map) if subject_map else None,
                          key=read_key(key_file) if key_file else None)
