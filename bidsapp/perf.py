"""A BIDS input's ASL series and their M0 scans: which may keep a ``perf/`` place, and why not.

The App never invents what BIDS requires of ASL (``naming.REQUIRED_FIELDS``, ``_aslcontext.tsv``):
a BIDS input that supplies it keeps its ASL in ``perf/``; an M0 scan is paired with its ASL series
by the ``IntendedFor`` the input wrote, never by name. DICOM input never gets here (``naming.UNPLACED_OTHER``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bidsapp import naming
from bidsapp.records import Series


def beside(s: Series) -> dict[str, Path]:
    """{ending: file} of the ``naming.ENTITY_FILES`` the input holds beside this image (``_aslcontext.tsv``)."""
    return {e: f for e in naming.ENTITY_FILES for f in s.files[1:] if f.name.endswith(e)}


def _context_problem(s: Series) -> str | None:
    """Why an ASL image's ``_aslcontext.tsv`` cannot go with it: one row per volume, or the validator refuses it."""
    path = beside(s).get("_aslcontext.tsv")
    try:
        rows = [line for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()] if path else None
    except (OSError, UnicodeDecodeError) as exc:
        return f"not placed in perf/: its _aslcontext.tsv is unreadable ({type(exc).__name__}); kept under {naming.UNCLASSIFIED_DIR}"
    volumes = s.header.n_volumes or 1
    if rows is not None and len(rows) != volumes:
        return (f"not placed in perf/: its _aslcontext.tsv lists {len(rows)} volumes, the image has {volumes}; "
                f"kept under {naming.UNCLASSIFIED_DIR}")
    return None


def _intended(s: Series, meta: dict) -> list[str]:
    """Input paths (dataset-relative) an image's ``IntendedFor`` names: ``bids::`` URIs or subject-relative paths."""
    value = meta.get("IntendedFor") or []
    subject_dir = PurePosixPath(s.source).parts[0]
    return [v.removeprefix("bids::") if v.startswith("bids::") else f"{subject_dir}/{v}"
            for v in ([value] if isinstance(value, str) else value) if isinstance(v, str)]


def m0_scans(series: list[Series], kinds: dict[str, str], metas: dict[str, dict]) -> dict[str, str]:
    """{M0 scan's id: its ASL series' id}: an image whose ``IntendedFor`` names an ASL series of the input
    whose ``M0Type`` is ``Separate``. Both are what the user or their converter wrote; nothing is matched by name."""
    separate = {s.source: s.series_uid for s in series
                if kinds.get(s.series_uid) == "asl" and metas[s.series_uid].get("M0Type") == "Separate"}
    return {s.series_uid: separate[target] for s in series for target in _intended(s, metas[s.series_uid])
            if target in separate and target != s.source}


def problems(series: list[Series], kinds: dict[str, str], metas: dict[str, dict],
                  m0_of: dict[str, str]) -> dict[str, str | None]:
    """{id: why it cannot take its perf/ place, or None} of every ASL series and M0 scan (``m0_scans``).
    An ASL series whose M0Type is Separate needs its one M0 scan placed with it; an M0 scan, its ASL series."""
    by_uid = {s.series_uid: s for s in series}
    own = {uid: naming.placement_problem("m0scan", sidecar=metas[uid], files=frozenset()) for uid in m0_of}
    problems: dict[str, str | None] = {}
    for s in (s for s in series if kinds.get(s.series_uid) == "asl" and s.series_uid not in m0_of):
        uid = s.series_uid
        m0s = [m for m, asl in m0_of.items() if asl == uid]
        problems[uid] = (naming.placement_problem("asl", sidecar=metas[uid], files=frozenset(beside(s)))
                         or _context_problem(s) or _separate_m0_problem(by_uid, m0s, own, metas[uid]))
    for m0, asl in m0_of.items():
        problems[m0] = own[m0] or (problems.get(asl) and f"M0 scan of {by_uid[asl].source}, which is not placed "
                                                          f"in perf/ (see its row); kept under {naming.UNCLASSIFIED_DIR}")
    return problems


def _separate_m0_problem(by_uid: dict[str, Series], m0s: list[str], own: dict[str, str | None], meta: dict) -> str | None:
    if meta.get("M0Type") != "Separate":
        return None
    if len(m0s) != 1:
        return (f"not placed in perf/: its M0Type is Separate, but {len(m0s) or 'no'} images of the input name it in "
                f"IntendedFor (BIDS needs its one _m0scan); none is guessed; kept under {naming.UNCLASSIFIED_DIR}")
    why = own[m0s[0]]
    return why and f"not placed in perf/: its M0 scan {by_uid[m0s[0]].source} cannot be ({why})"
