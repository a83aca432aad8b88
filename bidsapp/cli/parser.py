"""Command-line arguments of the BIDS-App (argparse only; orchestration lives in run.py)."""

from __future__ import annotations

import argparse

from bidsapp import __version__

EXIT_OK = 0
EXIT_SERIES_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_DONE = 3

DESCRIPTION = """\
Sort MRI series by what their images show, not by what their headers say.

Two witnesses decide each series: a convolutional network looks at its images (T1w, T1w after
contrast, T2w, FLAIR, SWI, DWI, ADC, and body phases), and the scanner's own acquisition fields
(sequence, TR/TE/TI, flip angle, b-values, image type) rule classes out. Typed text
(SeriesDescription, file names) never decides: it is compared and flagged. The series are written
as a BIDS dataset under content-based names (BOLD runs and field maps where fMRI pipelines look),
with per-series confidences and witnesses and one TSV row per input series. Series neither
witness recognises are kept (converted) under sourcedata/unclassified/ instead of being guessed.
"""

EPILOG = f"""\
input:
  bids_dir may be a DICOM tree of any layout (folders, nesting and file names do not matter;
  non-DICOM files, DICOMDIR and reports are skipped), or a BIDS-like dataset whose NIfTI files
  under sub-*/ may be named wrongly. --input-type auto tells them apart.

output:
  DICOM input -> output_dir is a new raw BIDS dataset (converted with heudiconv + dcm2niix),
                 classifications in output_dir/derivatives/mrclass/.
  BIDS input  -> output_dir is a derivatives dataset: the NIfTIs hard-linked (or copied) under
                 their content-based names, plus the same sidecars and TSVs.
  The input directory is never written to. Reruns give the same output.

examples:
  # everybody in a DICOM export, on the CPU
  mrclass-bids /data/dicom /data/bids participant
  # two participants (labels with or without "sub-"), as two parallel HPC jobs
  mrclass-bids /data/dicom /data/bids participant --participant-label 01
  mrclass-bids /data/dicom /data/bids participant --participant-label sub-02
  # the labels --participant-label accepts, one per line (for HPC job arrays)
  mrclass-bids /data/dicom /data/bids participant --list-participants > participants.txt
  # labels that name no patient or date (sub-<keyed hash>, ses-1, ses-2); the key and the
  # PatientID table stay with you
  head -c 32 /dev/urandom > ~/mrclass.key
  mrclass-bids /data/dicom /data/bids participant --pseudonymise ~/mrclass.key \\
      --write-subject-map ~/subjects.tsv
  # then gather every participant's table into group_classifications.tsv
  mrclass-bids /data/dicom /data/bids group
  # re-sort a BIDS dataset whose files were named by hand
  mrclass-bids /data/messy_bids /data/sorted participant --input-type bids --threshold 0.7
  # after reading the report: correct two series (series_uid<TAB>label rows) and rerun;
  # files of the old names are replaced
  mrclass-bids /data/dicom /data/bids participant --relabel corrections.tsv

exit status:
  {EXIT_OK}  every image series was processed (classified or kept as "other"); objects
     without images (SR, PR, KO) have rows with status=skipped
  {EXIT_SERIES_FAILED}  some image series failed (rows with status=error in the TSV); the rest were written
  {EXIT_USAGE}  usage or input error (missing input, output inside input, unknown participant, ...)
  {EXIT_NOTHING_DONE}  nothing was processed (no series found) or an internal failure
"""


def participant_label(text: str) -> str:
    """Accept "01" and "sub-01" alike."""
    label = text[len("sub-") :] if text.startswith("sub-") else text
    if not label or not label.isalnum():
        raise argparse.ArgumentTypeError(f"participant label must be [a-zA-Z0-9]+, got {text!r}")
    return label


def threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be within [0, 1], got {text}")
    return value


WITNESSES = ("decision", "content", "physics", "text")


def witness_pair(text: str) -> tuple[str, str]:
    """"content:physics" → ("content", "physics"), each one of ``WITNESSES``."""
    pair = tuple(part.strip() for part in text.split(":"))
    if len(pair) != 2 or not set(pair) <= set(WITNESSES) or pair[0] == pair[1]:
        raise argparse.ArgumentTypeError(f"expected two different of {', '.join(WITNESSES)} as ROWS:COLUMNS, got {text!r}")
    return pair  # type: ignore[return-value]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mrclass-bids",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bids_dir", help="input: a DICOM tree or a (possibly misnamed) BIDS dataset")
    p.add_argument("output_dir", help="output BIDS dataset (created if missing; must not lie inside the input)")
    p.add_argument(
        "analysis_level",
        choices=["participant", "group"],
        help="participant: classify and write series; group: gather all participants' tables",
    )
    p.add_argument(
        "--participant-label",
        "--participant_label",
        dest="participant_label",
        nargs="+",
        type=participant_label,
        metavar="LABEL",
        help="only these participants (with or without 'sub-'): the labels the output uses, which for DICOM "
        "--subject-map or --pseudonymise may choose (--list-participants prints them)",
    )
    p.add_argument(
        "--list-participants",
        action="store_true",
        help="participant level: print the participant labels the input yields, one per line, and exit "
        "(nothing is written; for job arrays: mapfile -t subs < <(mrclass-bids IN OUT participant --list-participants))",
    )
    p.add_argument(
        "--header-index",
        metavar="FILE",
        help="DICOM input: keep the header tags discovery reads in FILE (created if missing, updated when "
        "files change) and reuse them; job-array tasks sharing one FILE read the tree's headers once, not "
        "once per task (write it with --list-participants before submitting; it holds PatientIDs and "
        "dates: keep it with scratch data)",
    )
    p.add_argument(
        "--pseudonymise",
        "--pseudonymize",
        dest="pseudonymise",
        metavar="KEYFILE",
        help="DICOM: subject labels become a keyed hash of the PatientID (HMAC-SHA256 with the bytes of KEYFILE, "
        "at least 16; keep it private, and reuse it to get the same labels again) and sessions 1, 2, ... in study "
        "order, so no PatientID or StudyDate is in a file name. Recommended for data that is shared",
    )
    p.add_argument(
        "--subject-map",
        metavar="TSV",
        help="DICOM: your own labels: a TSV with PatientID and/or StudyInstanceUID, subject and optionally session "
        "columns (sessions it leaves out are numbered 1, 2, ... in study order). It takes precedence over "
        "--pseudonymise; without that option every patient must be in it",
    )
    p.add_argument(
        "--write-subject-map",
        metavar="FILE",
        help="DICOM: write the PatientID, StudyInstanceUID -> subject, session table to FILE (outside the output "
        "dataset, readable by you only); --subject-map reads it back. Nothing else keeps this mapping",
    )
    p.add_argument(
        "--input-type",
        choices=["auto", "dicom", "bids"],
        default="auto",
        help="what bids_dir holds (default: auto, BIDS when it has dataset_description.json or sub-*/ NIfTIs)",
    )
    p.add_argument("--work-dir", help="scratch folder for conversion (default: a temporary folder, removed at the end)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where the network runs (default: auto)")
    p.add_argument("--nprocs", type=positive_int, default=1, help="CPU threads for the network (default: 1)")
    p.add_argument(
        "--threshold",
        type=threshold,
        default=None,
        help="minimum evidence for any known class (the card's open-set score, 0-1) to accept a label, else 'other' "
             "(default: the model card's threshold)",
    )
    p.add_argument(
        "--decide-by",
        choices=["both", "content"],
        default="both",
        help="both (default): image content and the scanner's acquisition physics decide together "
        "(physics rules classes out, content chooses); content: the image alone, as for a bare NIfTI. "
        "Typed text (SeriesDescription, file names) never decides: it is only compared and flagged",
    )
    p.add_argument(
        "--confusion",
        type=witness_pair,
        default=("text", "decision"),
        metavar="ROWS:COLUMNS",
        help="group level: the two of decision, content, physics, text whose confusion matrix group.html "
        "draws (default text:decision)",
    )
    p.add_argument(
        "--relabel",
        metavar="TSV",
        help="a person's corrections: a TSV with columns series_uid and label (e.g. the rows of "
        "sub-X_classifications.tsv you corrected); those series take that label on this run",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)
