"""``mrclass-bids``: orchestration only (discover → classify/name/write → derivatives).

Exit status (also in ``--help``):

* 0 every image series was processed (classified, or kept as "other"; non-image objects such as
  SR/PR/KO have ``status=skipped`` rows);
* 1 some image series failed: they have ``status=error`` rows, everything else was written;
* 2 usage or input error (missing input, output inside input, unknown participant label);
* 3 nothing processed (no series found, nothing to gather) or an internal failure.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from bidsapp import derivatives, identities, naming, relabel, stale
from bidsapp.cli import console, identity, preflight
from bidsapp.cli.parser import EXIT_NOTHING_DONE, EXIT_OK, EXIT_SERIES_FAILED, EXIT_USAGE, parse_args
from bidsapp.discover import detect_input_type, discover
from bidsapp.fieldmaps import link_fieldmaps
from bidsapp.records import SeriesResult

log = logging.getLogger("mrclass-bids")


class UsageError(Exception):
    """Bad arguments or input; exit status 2."""


def configure_logging(verbosity: int) -> None:
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    quiet_external(verbosity)


def quiet_external(verbosity: int) -> None:
    """heudiconv and nipype are chatty (nipype resets its levels on import): INFO only at -vv."""
    external = logging.DEBUG if verbosity >= 2 else logging.WARNING
    for name in ("heudiconv", "nipype", "nipype.workflow", "nipype.interface", "nipype.utils"):
        logging.getLogger(name).setLevel(external)
    console.quiet_false_alarms()


def check_paths(bids_dir: str, output_dir: str) -> tuple[Path, Path]:
    src, out = Path(bids_dir).resolve(), Path(output_dir).resolve()
    if not src.is_dir():
        raise UsageError(f"input directory {bids_dir} does not exist")
    if out == src or out.is_relative_to(src):
        raise UsageError(f"output directory {output_dir} must not be inside the input directory {bids_dir}")
    if src.is_relative_to(out):
        raise UsageError(f"input directory {bids_dir} must not be inside the output directory {output_dir}")
    if problem := preflight.unwritable(out):
        raise UsageError(f"output directory {problem}")
    return src, out


def resolve_device(device: str) -> str:
    if device == "cuda" and (problem := preflight.cuda_problem()):
        raise UsageError(problem)
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def deriv_root(out: Path, kind: str) -> Path:
    """DICOM input: OUT is raw BIDS and derivatives go below it; BIDS input: OUT is the derivative."""
    return out / "derivatives" / "mrclass" if kind == "dicom" else out


def run_group(out: Path, axes: tuple[str, str]) -> int:
    from bidsapp.report.html import write_group_report

    root = out / "derivatives" / "mrclass"
    root = root if root.is_dir() else out
    if not list(root.glob("sub-*/sub-*_classifications.tsv")):
        log.error("no participant tables under %s: run the participant level first", root)
        return EXIT_NOTHING_DONE
    path = derivatives.write_group_tsv(root)
    page = write_group_report(derivatives.read_tsv(path), root, axes)
    log.info("wrote %s and %s", path, page)
    return EXIT_OK


def write_participant(out: Path, kind: str, subject: str, results: list[SeriesResult], card: dict) -> Path:
    deriv = deriv_root(out, kind)
    source_prefix = "bids:raw:" if kind == "dicom" else "bids::"
    for r in results:
        if r.bids_path:
            derivatives.write_sidecar(deriv, r, card, source_prefix + r.bids_path)
    derivatives.write_participant_tsv(deriv, subject, results)
    derivatives.write_if_changed(deriv / ".bidsignore", derivatives.BIDSIGNORE)
    page = write_report(out, deriv, subject, results, card)
    if kind == "dicom":
        derivatives.write_dataset_files(out, derivatives.raw_description(), derivatives.RAW_README)
        if (out / f"sub-{subject}").is_dir():  # a participant whose every series failed has no raw folder
            derivatives.add_participants(out, [subject])
        derivatives.write_dataset_files(deriv, derivatives.derivative_description("../.."), derivatives.DERIVATIVE_README)
    else:
        derivatives.write_dataset_files(deriv, derivatives.derivative_description(None), derivatives.DERIVATIVE_README)
        derivatives.add_participants(deriv, [subject])
    return page


def write_report(out: Path, deriv: Path, subject: str, results: list[SeriesResult], card: dict | None = None) -> Path:
    """The participant's HTML page; thumbnails come from the NIfTI each series was written to."""
    from bidsapp.report.html import write_participant_report

    figures = {r.series.series_uid: out / r.bids_path for r in results
               if r.bids_path and r.bids_path.endswith(naming.IMAGE_SUFFIXES)}
    return write_participant_report(results, deriv, subject, figures, card)


def read_corrections(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        return relabel.read(path)
    except relabel.RelabelError as exc:
        raise UsageError(str(exc)) from None


#: Files of these options hold PatientIDs (or the key): never inside the output, the dataset that
#: is shared.
PRIVATE_FILES = {"subject_map": "--subject-map", "pseudonymise": "--pseudonymise",
                 "write_subject_map": "--write-subject-map", "header_index": "--header-index"}
LABEL_OPTIONS = ("--subject-map", "--pseudonymise", "--write-subject-map")  # DICOM labels only


def identity_policy(args, kind: str, src: Path, out: Path) -> identities.IdentityPolicy:
    """The subject/session labels asked for (``bidsapp.identities``), checked before anything runs."""
    given = {option: Path(getattr(args, dest)).resolve() for dest, option in PRIVATE_FILES.items() if getattr(args, dest)}
    if kind != "dicom" and (labels := [o for o in LABEL_OPTIONS if o in given]):
        raise UsageError(f"{', '.join(labels)} apply to DICOM input only (a BIDS input's labels are its folder names)")
    for option, path in given.items():
        if path.is_relative_to(out):
            raise UsageError(f"{option} {path} must not be inside the output directory (it would be shared with it)")
    if written := given.get("--write-subject-map"):
        if written.is_relative_to(src):
            raise UsageError(f"--write-subject-map {written} must not be inside the input directory (it is only read)")
        if problem := (preflight.unwritable(written.parent) or (written.is_dir() and f"{written} is a folder")):
            raise UsageError(f"--write-subject-map: {problem}")
    try:
        return identities.policy(args.subject_map, args.pseudonymise)
    except identities.IdentityError as exc:
        raise UsageError(str(exc)) from None


def discover_labelled(src: Path, kind: str, args, policy: identities.IdentityPolicy):
    """Discovery under ``policy``; writes ``--write-subject-map`` (every patient of the input, so
    parallel jobs write the same table)."""
    try:
        found = discover(src, kind, args.participant_label, args.header_index, policy)
    except identities.IdentityError as exc:
        raise UsageError(str(exc)) from None
    if args.write_subject_map and found.identities is not None:
        identities.write_subject_map(args.write_subject_map, found.identities)
    return found


def list_participants(src: Path, found) -> int:
    """Print the participant labels found on stdout, one per line and nothing else, so job
    array scripts can read them as they are (headers only are read; nothing but the header index
    and the subject map, when asked for, is written)."""
    subjects = sorted({s.subject for s in found.series})
    if not subjects:
        log.error("no participants found under %s", src)
        return EXIT_NOTHING_DONE
    print("\n".join(subjects), flush=True)
    return EXIT_OK


def run_participants(args, src: Path, out: Path) -> int:
    if args.header_index and Path(args.header_index).resolve().is_relative_to(src):
        raise UsageError(f"--header-index {args.header_index} must not lie inside the input directory")
    kind = detect_input_type(src) if args.input_type == "auto" else args.input_type
    policy = identity_policy(args, kind, src, out)
    if args.list_participants:
        return list_participants(src, discover_labelled(src, kind, args, policy))
    corrections = read_corrections(args.relabel)
    found = discover_labelled(src, kind, args, policy)
    if found.skipped:
        log.warning("%d files name no image series and were skipped (listed in %s)", len(found.skipped),
                    (deriv_root(out, kind) / derivatives.SKIPPED_TSV).relative_to(out))
    subjects = sorted({s.subject for s in found.series})
    missing = sorted(set(args.participant_label or ()) - set(subjects))
    if missing:
        available = sorted({s.subject for s in discover(src, kind, header_index=args.header_index, identities=policy).series})
        raise UsageError(f"participant(s) not found: {', '.join(missing)}; available: {', '.join(available) or 'none'}")
    if not found.series:
        log.error("no %s series found under %s", kind, src)
        return EXIT_NOTHING_DONE
    unmatched = set(corrections) - {s.series_uid for s in found.series}
    if unmatched and not args.participant_label:
        log.warning("%d series_uid(s) of %s match no input series: %s", len(unmatched), args.relabel,
                    ", ".join(sorted(unmatched)[:5]) + (" ..." if len(unmatched) > 5 else ""))

    import torch

    from bidsapp.model.predict import shared_classifier

    if kind == "dicom":  # before the model: shared_classifier freezes what is loaded by then
        import bidsapp.convert  # noqa: F401  (imports nipype, which resets its log levels)

        quiet_external(args.verbose)
    torch.set_num_threads(args.nprocs)
    device = resolve_device(args.device)
    try:
        classifier = shared_classifier(device)  # the heuristic inside heudiconv reuses it
    except FileNotFoundError as exc:
        log.error("cannot load the classifier: %s", exc)
        return EXIT_NOTHING_DONE
    out.mkdir(parents=True, exist_ok=True)
    if kind == "dicom":
        derivatives.write_skipped(deriv_root(out, kind), found.skipped)
    all_results: list[SeriesResult] = []
    with tempfile.TemporaryDirectory(prefix="mrclass-", dir=args.work_dir) as work, console.Progress(
        len(found.series), len(subjects), kind
    ) as bar:
        for subject in subjects:
            series = [s for s in found.series if s.subject == subject]
            bar.participant(subject, len(series))
            previous = stale.previous_outputs(deriv_root(out, kind), subject)
            if kind == "dicom":
                from bidsapp.convert import all_written, convert_safely, results_from_outcomes, series_images

                start = bar.n

                def advance(classified: int, start=start, n=len(series)) -> None:
                    bar.update(max(0, min(classified, n) - (bar.n - start)))

                images = [s for s in series if s.series_uid not in found.not_images]
                outcomes, problems = convert_safely(images, out, Path(work), found.problems, device=device,
                                                    threshold=args.threshold, decide_by=args.decide_by,
                                                    relabels=corrections,
                                                    on_progress=advance)
                results = results_from_outcomes(series, outcomes, out, problems, found.not_images)
                advance(len(series))
                written, images_of = all_written(out, outcomes), lambda first: series_images(out, first)
            else:
                from bidsapp.decide import fuse
                from bidsapp.linkbids import sort_participant
                from bidsapp.physics import witness
                from bidsapp.volume import load_nifti

                def classify(s):
                    c = classifier.classify(load_nifti(s.files[0]), threshold=args.threshold)
                    c = fuse(c, witness(s.header), args.decide_by)
                    return relabel.apply(c, corrections[s.series_uid]) if s.series_uid in corrections else c

                results = sort_participant(series, out, classify, progress=lambda s: bar.update(1))
                written, images_of = {r.bids_path for r in results if r.bids_path}, lambda first: [first]
            stale.remove(out, deriv_root(out, kind), stale.replaced_files(previous, results, written, images_of))
            link_fieldmaps(out, results)
            console.print_summary(subject, results, write_participant(out, kind, subject, results, classifier.card))
            all_results.extend(results)

    failed = [r for r in all_results if r.status == "error"]
    for r in failed:
        log.warning("series %s failed: %s", r.series.source, r.message)
    log.info("%d series: %d ok, %d other, %d skipped (no image), %d failed", len(all_results),
             *(sum(r.status == status for r in all_results) for status in ("ok", "other", "skipped")), len(failed))
    return EXIT_SERIES_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    identity.ensure_user_name()  # before MONAI is imported
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        src, out = check_paths(args.bids_dir, args.output_dir)
        if args.work_dir:
            if problem := preflight.unwritable(Path(args.work_dir)):
                raise UsageError(f"--work-dir {problem}")
            Path(args.work_dir).mkdir(parents=True, exist_ok=True)
        if args.analysis_level == "group":
            return run_group(out, args.confusion)
        return run_participants(args, src, out)
    except UsageError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except PermissionError as exc:  # a file or folder the calling user may not read or write
        log.error("permission denied: %s", exc.filename or exc)
        return EXIT_USAGE
    except Exception:
        log.exception("internal failure")
        return EXIT_NOTHING_DONE


if __name__ == "__main__":
    sys.exit(main())
