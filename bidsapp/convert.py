"""DICOM → BIDS for one participant: drive heudiconv (Python API) with the mrclass heuristic.

Classification and naming happen inside heudiconv (``heuristics/mrclass.py``); this module sets
up the hand-off (``bidsapp.handoff``), runs the workflow, and reads back what every series
became. heudiconv's top-level files are not used (``notop``): the App writes those itself,
atomically, because parallel participant jobs share them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("NO_ET", "1")  # offline by design: no etelemetry version check from heudiconv/nipype

from heudiconv.main import workflow  # noqa: E402
from heudiconv.utils import set_readonly, update_json  # noqa: E402

from bidsapp import handoff, image_sidecar, naming, stale
from bidsapp.classes import OTHER
from bidsapp.records import Series, SeriesResult
from bidsapp.staging import stage
from bidsapp.tools import search_path

log = logging.getLogger(__name__)

ENV_HEURISTIC = "MRCLASS_HEURISTIC"  # set in the container image
NON_DWI_GRADIENT_FILES = (".bval", ".bvec")


def heuristic_path() -> Path:
    """The heuristic file: $MRCLASS_HEURISTIC, else ``heuristics/mrclass.py`` of the source tree."""
    env = os.environ.get(ENV_HEURISTIC)
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "heuristics" / "mrclass.py"
    if not path.is_file():
        raise FileNotFoundError(f"heudiconv heuristic not found at {path} (set {ENV_HEURISTIC})")
    return path


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class HeaderProbe:
    """Why heudiconv's own DICOM grouping would raise on a series, or None (``problem``).

    heudiconv parses every file of a participant in one pass and one exception there (e.g. an
    enhanced DICOM without a DimensionIndexSequence) aborts the whole participant. Probing one
    file per distinct frame layout with the same parser finds such series beforehand.
    """

    def __init__(self) -> None:
        self.problem: str | None = None
        self._probed: set[tuple] = set()

    def check(self, path: Path, header) -> None:
        """Probe ``path`` (whose header is already read) unless its layout was probed."""
        from heudiconv.dicoms import validate_dicom

        layout = (header.get("Rows"), header.get("Columns"), header.get("NumberOfFrames"),
                  str(header.get("SOPClassUID", "")))
        if self.problem or layout in self._probed:
            return
        try:
            info = validate_dicom(str(path), None)
            if info is None:
                return
            self._probed.add(layout)
            info[0].image_shape  # noqa: B018  (heudiconv reads it while grouping)
            info[0].series_signature  # noqa: B018
        except Exception as exc:  # noqa: BLE001  (whatever heudiconv would raise)
            self.problem = "heudiconv cannot parse the header: " + " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def prepare(series: Series, scratch: Path) -> tuple[Series, str | None]:
    """The series with the files heudiconv will read (``bidsapp.staging``), and why heudiconv
    would raise on it, or None. Each file's header is read once for both."""
    files, removed, probe = [], set(), HeaderProbe()
    for path in series.files:
        try:
            staged = stage(path, scratch)
        except Exception as exc:  # noqa: BLE001  (pydicom raises many kinds on broken headers)
            return series, "cannot read the header: " + " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        files.append(staged.path)
        removed.update(staged.removed)
        probe.check(staged.path, staged.header)
    if removed:
        log.info("series %s: unreadable values left out before conversion (%s)", series.source, ", ".join(sorted(removed)))
    return replace(series, files=tuple(files)), probe.problem


def outcomes_dir(work_dir: Path, subject: str) -> Path:
    """Where the heuristic leaves one JSON verdict per series of a participant."""
    return Path(work_dir) / "heudiconv" / f"sub-{subject}"


def convert_participant(
    series: list[Series],
    out_dir: Path,
    work_dir: Path,
    *,
    device: str = "cpu",
    threshold: float | None = None,
    decide_by: str = "both",
    relabels: dict[str, str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[handoff.SeriesOutcome]:
    """Convert the series of one participant into ``out_dir``; one outcome per heudiconv group.

    The series' files are read as they are: ``prepare`` gives the ones heudiconv can read.

    ``on_progress`` is called with the number of series classified so far (heudiconv runs
    in-process and gives no hook; the heuristic's verdict files are the progress signal).

    ``relabels`` (``{SeriesInstanceUID: label}``) are a person's corrections, applied by the
    heuristic after classifying.

    Raises what heudiconv raises; ``convert_safely`` turns that into per-series errors.
    """
    if not series:
        return []
    subject = series[0].subject
    results = outcomes_dir(work_dir, subject)
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    series_map = results.parent / f"sub-{subject}_series.json"
    handoff.write_series_map(series_map, {s.series_uid: (s.subject, s.session) for s in series})
    series_facts = results.parent / f"sub-{subject}_facts.json"
    handoff.write_series_facts(series_facts, {s.series_uid: s.header for s in series})
    remove_partials(Path(out_dir), subject)
    # heudiconv reuses its cached conversion table on reruns (left by an interrupted run); the
    # verdicts must be fresh.
    shutil.rmtree(Path(out_dir) / ".heudiconv" / subject, ignore_errors=True)
    claim_cache_dir(Path(out_dir), subject)
    scratch = Path(work_dir) / "dcm2niix"
    scratch.mkdir(parents=True, exist_ok=True)

    env = {
        handoff.ENV_RESULTS_DIR: str(results),
        handoff.ENV_SERIES_MAP: str(series_map),
        handoff.ENV_DEVICE: device,
        handoff.ENV_WORK_DIR: str(scratch),
        handoff.ENV_SERIES_FACTS: str(series_facts),
        handoff.ENV_DECIDE_BY: decide_by,
        "PATH": search_path(),  # nipype runs dcm2niix by name
    }
    if threshold is not None:
        env[handoff.ENV_THRESHOLD] = str(threshold)
    if relabels:
        corrections = results.parent / f"sub-{subject}_relabel.json"
        handoff.write_relabels(corrections, relabels)
        env[handoff.ENV_RELABEL] = str(corrections)
    files = [str(f) for s in series for f in s.files]
    try:
        with environment(env), counting_files(results, on_progress):
            workflow(
                files=files,
                outdir=str(out_dir),
                heuristic=str(heuristic_path()),
                converter="dcm2niix",
                bids_options="notop",
                overwrite=True,
                grouping="studyUID",
                # sidecars carry dcm2niix's BIDS fields only; heudiconv's dcmstack dump
                # (dcmmeta_*, "global" per-slice tables) is not BIDS and costs ~0.1-0.5 s per series
                minmeta=True,
            )
    finally:
        # heudiconv's cache (dicominfo.tsv: raw PatientID, referring physician, ages, dates;
        # input paths) is PHI and is rebuilt on every run anyway: it does not stay in the output.
        shutil.rmtree(Path(out_dir) / ".heudiconv" / subject, ignore_errors=True)
        with contextlib.suppress(OSError):  # still in use by a parallel participant: it removes it
            (Path(out_dir) / ".heudiconv").rmdir()
    return finish_outcomes(handoff.load_all(results), out_dir, series[0])


def claim_cache_dir(out_dir: Path, subject: str, tries: int = 5) -> None:
    """Make ``.heudiconv/<subject>`` before heudiconv does: a parallel participant that removes
    the emptied ``.heudiconv/`` could otherwise pull it away between heudiconv's makedirs steps."""
    for _ in range(tries):
        try:
            (out_dir / ".heudiconv" / subject).mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:  # .heudiconv/ removed between the two mkdirs: make it again
            continue


@contextlib.contextmanager
def counting_files(folder: Path, report: Callable[[int], None] | None, interval: float = 0.5):
    """While the block runs, report every ``interval`` s how many verdicts ``folder`` holds."""
    if report is None:
        yield
        return

    def count() -> int:
        return sum(1 for _ in folder.glob("*.json"))

    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            report(count())

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        report(count())


# dcm2niix writes "<name>_heudiconv<3 digits>[suffixes]" and heudiconv renames it when done: such
# a file in the output means a run was killed mid-conversion.
_PARTIAL = re.compile(r"_heudiconv\d{3}")


def remove_partials(out_dir: Path, subject: str) -> None:
    """Delete what a killed run left half-done for this participant (it is redone now)."""
    for folder in (out_dir / f"sub-{subject}", out_dir / naming.UNCLASSIFIED_DIR / f"sub-{subject}"):
        if not folder.is_dir():
            continue
        for p in folder.rglob("*"):
            if p.is_file() and (_PARTIAL.search(p.name) or (p.name.startswith(".") and p.name.endswith(".tmp"))):
                log.info("removing %s, left by an interrupted run", p.relative_to(out_dir))
                p.unlink(missing_ok=True)


def finish_outcomes(outcomes: list[handoff.SeriesOutcome], out_dir: Path, series: Series) -> list[handoff.SeriesOutcome]:
    """Tidy what heudiconv wrote: gradients only with _dwi, counter-named images named or set aside."""
    for outcome in outcomes:
        drop_gradients_of_non_dwi(Path(out_dir), outcome.stem)
        name_numbered(Path(out_dir), outcome, series)
        record_contrast_agent(Path(out_dir), outcome)
    return outcomes


def record_contrast_agent(out_dir: Path, outcome: handoff.SeriesOutcome) -> None:
    """Copy ContrastBolusAgent into the sidecars, which dcm2niix leaves it out of: BIDS
    recommends it, and a re-sort of this dataset names the ``ce-`` agent from it."""
    agent = outcome.header.contrast_agent.strip()
    if not agent:
        return
    for rel in written_files(out_dir, outcome.stem):
        sidecar = out_dir / (naming.image_core(rel) + ".json")
        if sidecar.is_file():
            set_readonly(str(sidecar), False)  # heudiconv leaves its outputs read-only
            update_json(sidecar, {"ContrastBolusAgent": agent}, pretty=True)
            set_readonly(str(sidecar))


def name_numbered(out_dir: Path, outcome: handoff.SeriesOutcome, series: Series) -> None:
    """Name the images heudiconv could only tell apart by a counter (``_T1w1``, ``_T1w2``; a GE field
    map's ``_fieldmap1``, ``_fieldmap2``). Where BIDS names a series' images apart
    (``naming.SPLIT_SERIES``), each takes its BIDS name, once the sidecars have what BIDS requires
    (``naming.placement_problem``). Anything else goes to sourcedata/unclassified with status "other"
    and the reason: counter names are not BIDS, and which image carries the classified contrast is unknown.
    """
    if not outcome.stem or outcome.stem.startswith(naming.UNCLASSIFIED_DIR):
        return
    folder, name = Path(out_dir) / Path(outcome.stem).parent, Path(outcome.stem).name
    written = {p: m.groups() for p in sorted(folder.glob(f"{name}*"))
               if (m := re.fullmatch(re.escape(name) + r"(\d*)(\.nii\.gz|\.nii|\.json|\.bval|\.bvec)", p.name))}
    counters = {counter for counter, _ in written.values()}
    if counters - {""}:  # heudiconv numbers all or none: an image under the plain name is a previous run's
        written, counters = {p: w for p, w in written.items() if w[0]}, counters - {""}
    if counters <= {""} and not naming.split_images(name):  # one image under its own name
        return
    cores = _split_cores(folder, name, counters)
    kind = outcome.classification.physics_kind if outcome.classification else ""
    named = next((folder / (name + c) for c, core in (cores or {}).items() if core == name), None)
    why = naming.placement_problem(kind, sidecar=_sidecar(named) if named else {}) if cores else None
    if cores and not why:
        for p, (counter, ext) in written.items():
            if (renamed := folder / (cores[counter] + ext)) != p:
                os.replace(p, renamed)
                stale.update_scans_row(out_dir, p.relative_to(out_dir).as_posix(),
                                       renamed.relative_to(out_dir).as_posix())
        return
    _set_aside(out_dir, outcome, series, written)
    images = sum(".nii" in p.name for p in written)
    outcome.message = why or f"heudiconv wrote {images} unnamed images for {name}; kept under {naming.UNCLASSIFIED_DIR}"


def _sidecar(core: Path) -> dict:
    """The JSON sidecar of an image core ({} when absent or unreadable)."""
    return image_sidecar.metadata(core.with_name(core.name + ".json")) or {}


def _split_cores(folder: Path, name: str, counters: set[str]) -> dict[str, str] | None:
    """{heudiconv's counter ("" for none): BIDS image core} when each image written under ``name`` is a
    distinct image of a split series (``naming.split_images``: told by the counter, else by the
    ImageType token in its sidecar; an image without a counter keeps the name), else None."""
    images = naming.split_images(name)

    def core(counter: str) -> str | None:
        tokens = _sidecar(folder / f"{name}{counter}").get("ImageType", ())
        return name if not counter else images.get(counter) or next((images[t] for t in tokens if t in images), None)

    cores = {c: core(c) for c in counters}
    return cores if images and None not in cores.values() and len(set(cores.values())) == len(cores) else None


def _set_aside(out_dir: Path, outcome: handoff.SeriesOutcome, series: Series, written: dict[Path, tuple[str, str]]) -> None:
    """Move a series' files ({path: (heudiconv's counter, extension)}) to its sourcedata/unclassified
    name; status becomes "other"."""
    request = naming.NameRequest(
        key=outcome.series_uid, subject=series.subject, session=series.session, label=OTHER,
        series_number=outcome.header.series_number, series_description=outcome.header.series_description,
    )
    target = naming.path_stem(request)
    for p, (counter, ext) in written.items():
        dest = out_dir / (target + (f"_{counter}" if counter else "") + ext)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, dest)
        stale.update_scans_row(out_dir, p.relative_to(out_dir).as_posix())  # sourcedata is not listed
    outcome.status, outcome.stem = "other", target


# Pieces heudiconv / dcm2niix add to a name when one series gives several images
# (echoes, magnitude/phase, ...); removing them gives back the name the heuristic chose.
_ADDED_PIECES = re.compile(r"_(echo-\d+|part-(mag|phase|real|imag)|inv-\d+)(?=_)|(_(e\d+|ph|real|imaginary|ADC|c\d+|i\d+))+$")


def written_files(out_dir: Path, stem: str) -> list[str]:
    """Image files written for a stem, relative to ``out_dir`` (sorted); for a stem under
    sourcedata/unclassified also the numbered images ``name_numbered`` set aside there."""
    if not stem:
        return []
    folder = Path(out_dir) / Path(stem).parent
    name = Path(stem).name
    if not folder.is_dir():
        return []
    hits = []
    for p in sorted(folder.iterdir()):
        if not p.name.endswith(naming.IMAGE_SUFFIXES):
            continue
        core = naming.image_core(p.name)
        if (core == name or _ADDED_PIECES.sub("", core) == name or re.fullmatch(re.escape(name) + r"_\d+", core)
                or core in naming.series_cores(name)):
            hits.append(p.relative_to(out_dir).as_posix())
    if not hits and stem.startswith(naming.UNCLASSIFIED_DIR):
        # heudiconv's counter names ("12_mixed1", "12_mixed2": one series gave several images,
        # e.g. two matrix sizes); only when the plain name is absent, so no other series matches.
        hits = sorted(p.relative_to(out_dir).as_posix() for p in folder.iterdir()
                      if re.fullmatch(re.escape(name) + r"\d+\.nii(\.gz)?", p.name))
    return hits


def series_images(out_dir: Path, first_image: str) -> list[str]:
    """Every image of the series whose first image is ``first_image`` (the inverse of
    ``written_files``: echoes and parts share the stem the heuristic chose)."""
    folder, _, name = first_image.rpartition("/")
    stem = naming.series_stem(_ADDED_PIECES.sub("", naming.image_core(name)))
    return written_files(out_dir, f"{folder}/{stem}") or [first_image]


def all_written(out_dir: Path, outcomes: list[handoff.SeriesOutcome]) -> set[str]:
    return {p for o in outcomes for p in written_files(out_dir, o.stem)}


def drop_gradients_of_non_dwi(out_dir: Path, stem: str) -> None:
    """dcm2niix writes .bval/.bvec for every diffusion series; BIDS wants them only with _dwi."""
    if not stem or stem.endswith("_dwi"):
        return
    for rel in written_files(out_dir, stem):
        core = naming.image_core(rel)
        for ext in NON_DWI_GRADIENT_FILES:
            with contextlib.suppress(FileNotFoundError):
                (Path(out_dir) / (core + ext)).unlink()


def convert_safely(
    series: list[Series], out_dir: Path, work_dir: Path, problems: dict[str, str], **options
) -> tuple[list[handoff.SeriesOutcome], dict[str, str]]:
    """Convert what can be converted; return the outcomes and every series' known problem.

    Series with a known problem (from discovery, or failing heudiconv's header parser) are left
    out of the conversion. Should heudiconv still fail, the participant's remaining series get
    that failure as their message instead of the run stopping.
    """
    problems = {s.series_uid: problems[s.series_uid] for s in series if s.series_uid in problems}
    todo = []
    for s in series:
        if s.series_uid in problems:
            continue
        staged, why = prepare(s, Path(work_dir) / "staged")
        if why:
            problems[s.series_uid] = why
        else:
            todo.append(staged)
    if not todo:
        return [], problems
    try:
        return convert_participant(todo, out_dir, work_dir, **options), problems
    except Exception as exc:  # noqa: BLE001  (heudiconv/nipype raise anything)
        first = (str(exc).strip().splitlines() or [""])[0]
        msg = f"conversion aborted by heudiconv ({type(exc).__name__}: {first[:160]})"
        log.error("sub-%s: %s", series[0].subject, msg)
        log.debug("heudiconv traceback", exc_info=True)
    # Keep what was written before the failure; the rest carries the failure as its message.
    results = outcomes_dir(work_dir, todo[0].subject)
    outcomes = finish_outcomes(handoff.load_all(results), out_dir, todo[0]) if results.is_dir() else []
    done = {o.series_uid for o in outcomes if written_files(out_dir, o.stem)}
    return outcomes, {**problems, **{s.series_uid: msg for s in todo if s.series_uid not in done}}


def results_from_outcomes(
    series: list[Series], outcomes: list[handoff.SeriesOutcome], out_dir: Path, problems: dict[str, str] | None = None,
    not_images: dict[str, str] | None = None,
) -> list[SeriesResult]:
    """One result per discovered series, from what the heuristic recorded and what was written.

    A series with a known problem, or one heudiconv never saw (e.g. it found no image in it),
    becomes status "error", so every input series has its row; a non-image object (``not_images``:
    what it is) becomes status "skipped".
    """
    problems, not_images = problems or {}, not_images or {}
    by_uid: dict[str, list[handoff.SeriesOutcome]] = {}
    for o in outcomes:
        by_uid.setdefault(o.series_uid, []).append(o)
    results = []
    for s in series:
        found = sorted(by_uid.get(s.series_uid, []), key=lambda o: o.stem)
        if s.series_uid in not_images:
            results.append(SeriesResult(s, None, status="skipped", message=not_images[s.series_uid]))
            continue
        if s.series_uid in problems:
            results.append(SeriesResult(s, None, status="error", message=problems[s.series_uid]))
            continue
        if not found:
            why = "no SeriesNumber" if s.header.series_number is None else "no image data found"
            results.append(SeriesResult(s, None, status="error", message=f"not converted by heudiconv ({why})"))
            continue
        main = next((o for o in found if o.classification), found[0])
        written = [p for o in found for p in written_files(out_dir, o.stem)]
        status, message = main.status, main.message
        if not written:
            status, message = "error", message or f"conversion wrote no image for {main.stem}"
        elif len(found) > 1:
            message = message or f"heudiconv split the series into {len(found)} groups"
        elif len(written) > 1 and main.stem.startswith(naming.UNCLASSIFIED_DIR):
            message = message or f"the series gave {len(written)} images (e.g. mixed matrix sizes): {', '.join(written)}"
        results.append(
            SeriesResult(
                series=s,
                classification=main.classification,
                header_label=main.header_label,
                bids_path=written[0] if written else "",
                status=status,
                message=message,
            )
        )
    return results
