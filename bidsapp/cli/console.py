"""What a person sees while the App runs: progress, one result line per participant, and no
false alarms from heudiconv.

On a terminal progress is a tqdm bar; elsewhere (HPC logs, CI, ``2> file``) it is plain lines,
at most about ten per participant. Progress goes to stderr, the per-participant result lines to
stdout.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from bidsapp.records import SeriesResult

LINE_STEP = 0.1  # non-TTY: a progress line per 10% of a participant's series (and at its end)

# heudiconv warnings that are false for our output, each with why (at -vv they show, as DEBUG).
FALSE_ALARMS = {
    # gradients of a non-dwi name are deleted right after conversion (convert.drop_gradients_of_non_dwi)
    "Diffusion-weighted image saved as non dwi": "bval/bvec removed",
    ".bvec and .bval files will be generated": "bval/bvec removed",
    # a series that gives several images is set aside or named per image (convert.name_numbered)
    "For now not embedding BIDS and info generated": "several images handled",
}


class FalseAlarmsToDebug(logging.Filter):
    """Turn heudiconv's ``FALSE_ALARMS`` warnings into DEBUG records (shown only at -vv)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage().startswith(tuple(FALSE_ALARMS)):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


FALSE_ALARM_FILTER = FalseAlarmsToDebug()


def quiet_false_alarms() -> None:
    logging.getLogger("heudiconv.convert").addFilter(FALSE_ALARM_FILTER)  # adding it twice is a no-op


def plural(n: int, word: str) -> str:
    """``1 error``, ``2 errors``; ``series`` is its own plural."""
    return f"{n} {word}{'' if n == 1 or word.endswith('s') else 's'}"


class Progress:
    """Series done, per participant: a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, n_series: int, n_participants: int, kind: str, stream=None):
        self.stream = stream or sys.stderr
        self.verb = "converting and classifying" if kind == "dicom" else "classifying"
        self.bar = tqdm(total=n_series, unit="series", file=self.stream) if self.stream.isatty() else None
        self.n = 0
        self.subject, self.start, self.size, self.shown = "", 0, 0, 0
        self.say(f"discovered {plural(n_series, 'series')} in {plural(n_participants, 'participant')} ({kind} input)")

    def say(self, text: str) -> None:
        tqdm.write(f"mrclass-bids: {text}", file=self.stream)

    def participant(self, subject: str, n_series: int) -> None:
        self.subject, self.start, self.size, self.shown = subject, self.n, n_series, 0
        if self.bar is not None:
            self.bar.set_description(f"sub-{subject}")
        else:
            self.say(f"sub-{subject}: {self.verb} {plural(n_series, 'series')}")

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)
            return
        done = self.n - self.start
        if done > self.shown and (done >= self.size or done - self.shown >= max(1, LINE_STEP * self.size)):
            self.shown = done
            self.say(f"sub-{self.subject}: {done}/{self.size}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summary_line(subject: str, results: list[SeriesResult], report: Path) -> str:
    """``sub-01: 6 named, 2 other, 1 flagged (header disagrees), 0 errors; report <path>``."""
    from bidsapp.report.html import flags_for

    def disagrees(r: SeriesResult) -> bool:
        c = r.classification
        return c is not None and flags_for(c.label, c.confidence, r.header_label, r.status, c.decided_by).disagree

    counts = {status: sum(r.status == status for r in results) for status in ("ok", "other", "error")}
    return (f"sub-{subject}: {counts['ok']} named, {counts['other']} other, "
            f"{sum(map(disagrees, results))} flagged (header disagrees), "
            f"{plural(counts['error'], 'error')}; report {report}")


def print_summary(subject: str, results: list[SeriesResult], report: Path) -> None:
    tqdm.write(summary_line(subject, results, report), file=sys.stdout)
