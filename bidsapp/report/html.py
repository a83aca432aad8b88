"""HTML reports a person uses to trust or fix the sorting: one per participant, one per group.

Both pages are self-contained (inline CSS, no scripts, no network); thumbnails are PNG files
next to the participant page under ``sub-<label>/figures/``. They show only what the stage
records carry (series description, labels, paths) — never raw headers, so no patient names or
birth dates can leak into them.

A series is *flagged* for review when the header-based guess disagrees with the content label,
when the decided class has probability below ``LOW_CONFIDENCE``, or when it failed (status
error). The group page reads row dicts (the per-participant TSV columns), not records, so it can
be rebuilt from the TSVs of parallel participant jobs.
"""

from __future__ import annotations

import datetime
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bidsapp import __version__
from bidsapp.classes import ALL_LABELS, OTHER, region_of
from bidsapp.decide import disagree
from bidsapp.derivatives import atomic_write_text
from bidsapp.header import text_field
from bidsapp.naming import IMAGE_SUFFIXES
from bidsapp.records import SeriesResult

LOW_CONFIDENCE = 0.7  # below this probability of the decided class, a person should look
UNKNOWN = "unknown"
TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Flags:
    """Why a series needs a person's eye."""

    disagree: bool
    low: bool
    error: bool

    @property
    def any(self) -> bool:
        return self.disagree or self.low or self.error


def flags_for(label: str, confidence: float | None, header_label: str, status: str,
              decided_by: str = "content") -> Flags:
    """Same rule for both pages: the header guess counts only when it made one, and a label a
    person set (``--relabel``) is not questioned again."""
    error = status == "error"
    known = header_label not in ("", UNKNOWN, "n/a") and label not in ("", "n/a")
    return Flags(
        disagree=bool(known and header_label != label and not error and decided_by != "person"),
        low=bool(confidence is not None and confidence < LOW_CONFIDENCE and not error),
        error=error,
    )


def card_id(series_uid: str) -> str:
    """A stable HTML id for a series (also the anchor the group page links to)."""
    return "series-" + (re.sub(r"[^A-Za-z0-9]+", "-", series_uid).strip("-") or "unnamed")


def subject_label(participant_id: str) -> str:
    return participant_id.removeprefix("sub-")


@dataclass(frozen=True)
class Card:
    """What one series card shows."""

    id: str
    session: str
    series_number: int | None
    series_uid: str
    source: str
    description: str
    label: str
    region: str
    confidence: float | None
    top: tuple[tuple[str, float], ...]
    best_label: str
    decided_by: str
    open_set_rejected: bool
    reason: str  # why "other" when the probabilities alone do not say (Classification.reason)
    threshold: float | None
    open_set_score: float | None  # content's evidence for any known class, compared with ``threshold``
    header_label: str
    flags: Flags
    bids_path: str
    status: str
    message: str
    figure: str  # path relative to the HTML page, "" when none
    figure_note: str  # why there is no figure
    content_label: str = ""  # the witnesses beside the decision (bidsapp.decide)
    physics_label: str = UNKNOWN
    physics_reason: str = ""
    text_field: str = ""
    witnesses_disagree: bool = False
    coin_toss: bool = False  # content barely chose between the classes physics allows


def _card(result: SeriesResult, figure: str, figure_note: str) -> Card:
    series, clf = result.series, result.classification
    label = clf.label if clf else ""
    top = tuple(sorted(clf.probabilities.items(), key=lambda kv: -kv[1])[:3]) if clf else ()
    return Card(
        id=card_id(series.series_uid),
        session=series.session or "",
        series_number=series.header.series_number,
        series_uid=series.series_uid,
        source=series.source,
        description=series.header.series_description,
        label=label,
        region=region_of(label) if label else "any",
        confidence=clf.confidence if clf else None,
        top=top,
        best_label=clf.best_label if clf else "",
        decided_by=clf.decided_by if clf else "",
        open_set_rejected=bool(clf and clf.open_set_rejected),
        reason=clf.reason if clf else "",
        threshold=clf.threshold if clf else None,
        open_set_score=clf.open_set_score if clf else None,
        header_label=result.header_label or UNKNOWN,
        flags=flags_for(label, clf.confidence if clf else None, result.header_label, result.status,
                        clf.decided_by if clf else "content"),
        bids_path=result.bids_path,
        status=result.status,
        message=result.message,
        figure=figure,
        figure_note=figure_note,
        content_label=(clf.content_label or clf.label) if clf else "",
        physics_label=clf.physics_label if clf else UNKNOWN,
        physics_reason="; ".join(clf.physics_reasons[:1]) if clf else "",
        text_field=text_field(series.header),
        witnesses_disagree=bool(clf and disagree(clf)),
        coin_toss=bool(clf and clf.low_confidence),
    )


def _sort_key(card: Card) -> tuple:
    number = card.series_number if card.series_number is not None else 10**9
    return (card.session, number, card.source, card.series_uid)


def _place_figure(source: Path | str | None, fig_dir: Path, name: str) -> tuple[str, str]:
    """Copy a PNG (or render a NIfTI) into ``fig_dir``; returns (file name, note on failure)."""
    if not source:
        return "", "no preview"
    source = Path(source)
    target = fig_dir / f"{name}.png"
    try:
        fig_dir.mkdir(parents=True, exist_ok=True)
        if source.name.endswith(IMAGE_SUFFIXES):
            from bidsapp.report.figures import write_mosaic

            write_mosaic(source, target)
        elif source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        return target.name, ""
    except Exception as exc:  # noqa: BLE001 - a missing thumbnail must not lose the report
        return "", f"no preview: {type(exc).__name__}"


def provenance(model_card: Mapping | None = None) -> dict:
    """What made a page: app version, model name and version, and the day (a rerun the same day
    writes the same page)."""
    model = " ".join(str(model_card.get(k)) for k in ("name", "version") if model_card and model_card.get(k))
    return {"app": __version__, "model": model, "date": datetime.date.today().isoformat()}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda x: "n/a" if x is None else f"{100 * x:.0f}%"
    env.globals.update(region_of=region_of, low_confidence=LOW_CONFIDENCE)
    return env


def _write(path: Path, text: str) -> Path:
    """Readers see the old page or the new one, never half of one (parallel jobs)."""
    atomic_write_text(path, text)
    return path


def _label_order(labels: Iterable[str]) -> list[str]:
    rank = {label: i for i, label in enumerate(ALL_LABELS + (UNKNOWN,))}
    return sorted(set(labels), key=lambda lab: (rank.get(lab, len(rank)), lab))


def write_participant_report(
    results: list[SeriesResult],
    out_dir: Path | str,
    subject: str,
    figures: Mapping[str, Path | str] | None = None,
    model_card: Mapping | None = None,
) -> Path:
    """Write ``out_dir/sub-<subject>.html``; returns its path.

    ``figures`` maps a series UID to its thumbnail: a PNG (copied) or a NIfTI (rendered), placed
    under ``out_dir/sub-<subject>/figures/``.
    """
    out_dir = Path(out_dir)
    subject = subject_label(subject)
    fig_dir = out_dir / f"sub-{subject}" / "figures"
    figures = figures or {}
    cards = []
    for result in results:
        name = card_id(result.series.series_uid)
        file_name, note = _place_figure(figures.get(result.series.series_uid), fig_dir, name)
        figure = f"sub-{subject}/figures/{file_name}" if file_name else ""
        cards.append(_card(result, figure, note))
    cards.sort(key=_sort_key)
    counts = Counter(c.label for c in cards if c.label and c.status != "error")
    summary = {
        "n_series": len(cards),
        "per_class": [(lab, counts[lab]) for lab in _label_order(counts) if lab != OTHER],
        "n_other": counts.get(OTHER, 0),
        "n_low": sum(c.flags.low for c in cards),
        "n_disagree": sum(c.flags.disagree for c in cards),
        "n_error": sum(c.flags.error for c in cards),
        "n_flagged": sum(c.flags.any for c in cards),
        "n_relabelled": sum(c.decided_by == "person" for c in cards),
    }
    html = _environment().get_template("participant.html").render(
        subject=subject, cards=cards, summary=summary, title=f"sub-{subject}", provenance=provenance(model_card)
    )
    return _write(out_dir / f"sub-{subject}.html", html)


# ----------------------------------------------------------------------------------------------
# Group page, from TSV rows.


@dataclass(frozen=True)
class Row:
    """One TSV row, parsed leniently ("n/a" and blanks become None / "")."""

    participant: str
    session: str
    series_uid: str
    description: str
    label: str
    confidence: float | None
    header_label: str
    bids_path: str
    status: str
    message: str
    decided_by: str
    flags: Flags
    content_label: str = UNKNOWN
    physics_label: str = UNKNOWN

    @property
    def link(self) -> str:
        return f"sub-{self.participant}.html#{card_id(self.series_uid)}"


def _blank(value: object) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text.lower() == "n/a" else text


def _number(value: object) -> float | None:
    try:
        return float(_blank(value))
    except ValueError:
        return None


def parse_row(row: Mapping[str, object]) -> Row:
    label = _blank(row.get("label"))
    confidence = _number(row.get("confidence"))
    header = _blank(row.get("header_label")) or UNKNOWN
    status = _blank(row.get("status")) or "ok"
    decided_by = _blank(row.get("decided_by")) or "model"
    return Row(
        participant=subject_label(_blank(row.get("participant_id"))) or "unknown",
        session=_blank(row.get("session_id")).removeprefix("ses-"),
        series_uid=_blank(row.get("series_uid")),
        description=_blank(row.get("series_description")),
        label=label,
        confidence=confidence,
        header_label=header,
        bids_path=_blank(row.get("bids_path")),
        status=status,
        message=_blank(row.get("message")),
        decided_by=decided_by,
        flags=flags_for(label, confidence, header, status, decided_by),
        content_label=_blank(row.get("content_label")) or UNKNOWN,
        physics_label=_blank(row.get("physics_label")) or UNKNOWN,
    )


#: What the group page's confusion matrix can put on its axes: the decision and each witness.
WITNESS_OF_ROW = {
    "decision": lambda r: r.label,
    "content": lambda r: r.content_label,
    "physics": lambda r: r.physics_label,
    "text": lambda r: r.header_label,
}
DEFAULT_CONFUSION = ("text", "decision")


def confusion(rows: list[Row], axes: tuple[str, str]) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """(column labels, [(row label, counts)]) of ``axes`` = (rows' witness, columns' witness)."""
    row_of, col_of = (WITNESS_OF_ROW[a] for a in axes)
    columns = _label_order(col_of(r) for r in rows)
    pairs = Counter((row_of(r), col_of(r)) for r in rows)
    return columns, [(h, [pairs.get((h, c), 0) for c in columns]) for h in _label_order(row_of(r) for r in rows)]


def write_group_report(rows: Iterable[Mapping[str, object]], out_dir: Path | str,
                       axes: tuple[str, str] = DEFAULT_CONFUSION) -> Path:
    """Write ``out_dir/group.html`` from classification TSV rows (dicts); returns its path.

    ``axes``: the two of ``WITNESS_OF_ROW`` (decision, content, physics, text) whose confusion
    matrix the page draws, rows first."""
    parsed = sorted(
        (parse_row(r) for r in rows), key=lambda r: (r.participant, r.session, r.description, r.series_uid)
    )
    participants = sorted({r.participant for r in parsed})
    labelled = [r for r in parsed if r.status != "error" and r.label]
    classes = []
    for label in _label_order(r.label for r in labelled):
        of_label = [r for r in labelled if r.label == label]
        classes.append({
            "label": label,
            "region": region_of(label),
            "series": len(of_label),
            "participants": len({r.participant for r in of_label}),
            "low": sum(r.flags.low for r in of_label),
            "disagree": sum(r.flags.disagree for r in of_label),
        })
    content_axis, matrix = confusion(labelled, axes)
    judged = [r for r in labelled if r.header_label != UNKNOWN]
    per_participant = [
        {
            "participant": p,
            "series": sum(r.participant == p for r in parsed),
            "flagged": sum(r.participant == p and r.flags.any for r in parsed),
        }
        for p in participants
    ]
    summary = {
        "n_participants": len(participants),
        "n_series": len(parsed),
        "n_other": sum(r.label == OTHER for r in labelled),
        "n_low": sum(r.flags.low for r in parsed),
        "n_disagree": sum(r.flags.disagree for r in parsed),
        "n_error": sum(r.flags.error for r in parsed),
        "n_judged": len(judged),
        "n_agree": sum(r.header_label == r.label for r in judged),
        "n_person": sum(r.decided_by == "person" for r in parsed),
    }
    html = _environment().get_template("group.html").render(
        title="group",
        provenance=provenance(),
        summary=summary,
        classes=classes,
        content_axis=content_axis,
        matrix=matrix,
        axes=axes,
        review=[r for r in parsed if r.flags.any],
        participants=per_participant,
    )
    return _write(Path(out_dir) / "group.html", html)
