"""HTML reports and thumbnails, rendered from real development NIfTIs."""

from __future__ import annotations

import csv
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import lxml.html
import numpy as np
import pytest

from bidsapp.classes import LABELS, OTHER
from bidsapp.header import facts_from_sidecar, header_label
from bidsapp.records import Classification, Series, SeriesResult
from bidsapp.report.figures import MosaicSpec, mosaic, png_bytes, slice_axis, slice_indices, write_mosaic
from bidsapp.report.html import (
    LOW_CONFIDENCE,
    card_id,
    flags_for,
    write_group_report,
    write_participant_report,
)

CHROMIUM = Path("/usr/bin/chromium")
SUBJECT = "TCGAFG6692"
# (glob under the real data, session, content label override, confidence): the overrides make
# header disagreements and low-confidence decisions, as a real run would have.
DEMO = (
    ("nifti/TCGA-FG-6692/T1_AX_*_t1.nii.gz", "1", None, 0.97),
    ("nifti/TCGA-FG-6692/MRHR_T2_AX_*.nii.gz", "1", None, 0.99),
    ("nifti/TCGA-FG-6692/MRHR_FLAIR_AX_*.nii.gz", "1", None, 0.93),
    ("nifti/TCGA-FG-6692/MRHR_T1_AX_POST_GAD_*.nii.gz", "1", "T1w", 0.62),
    ("nifti/niivue_register/T1_head_ext2.nii.gz", "2", None, 0.95),
    ("nifti/niivue_register/T2w.nii.gz", "2", None, 0.91),
    ("nifti/niivue_register/dwi.nii.gz", "2", OTHER, 0.58),
    ("nifti/niivue_register/fmri.nii.gz", "2", None, 0.88),
)


def _description(path: str) -> str:
    return Path(path).name.split("_OtherEXample")[0].removesuffix(".nii.gz")


def _classification(label: str, confidence: float) -> Classification:
    if label == OTHER:  # open-set rejection: best class below threshold
        best, p_best = "DWI", 1.0 - confidence
    else:
        best, p_best = label, confidence
    rest = [c for c in LABELS if c != best]
    weights = np.linspace(2, 0.1, len(rest))
    probs = {c: float((1.0 - p_best) * w) for c, w in zip(rest, weights / weights.sum())}
    probs[best] = p_best
    return Classification(label, confidence, probs, label == OTHER, 0.5, best)


def _demo_results(real: Path) -> tuple[list[SeriesResult], dict[str, Path]]:
    with open(real / "labels.tsv", newline="") as handle:
        truth = {r["path"]: r["label"] for r in csv.DictReader(handle, delimiter="\t")}
    results, figures = [], {}
    for number, (pattern, session, override, confidence) in enumerate(DEMO, start=1):
        matches = sorted(real.glob(pattern))
        if len(matches) != 1:
            continue
        path = matches[0].relative_to(real).as_posix()
        desc = _description(path)
        facts = facts_from_sidecar({"SeriesDescription": desc, "SeriesNumber": number})
        label = override or truth[path]
        uid = f"1.2.826.0.1.{number}"
        series = Series(SUBJECT, session, uid, path, (real / path,), "nifti", facts)
        kind = "anat" if label not in ("DWI", OTHER) else "dwi"
        bids = (f"sub-{SUBJECT}/ses-{session}/{kind}/sub-{SUBJECT}_ses-{session}_{label}.nii.gz"
                if label != OTHER else f"sourcedata/unclassified/sub-{SUBJECT}/ses-{session}/{number}_{desc}.nii.gz")
        results.append(SeriesResult(series, _classification(label, confidence), header_label(facts), bids,
                                    "other" if label == OTHER else "ok"))
        figures[uid] = real / path
    if len(results) < 4:
        pytest.skip("demo NIfTIs missing")
    broken = Series(SUBJECT, "2", "1.2.826.0.1.99", "dicom/broken_series", (), "dicom",
                    facts_from_sidecar({"SeriesDescription": "t2_tse_sag", "SeriesNumber": 99}))
    results.append(SeriesResult(broken, None, "T2w", "", "error", "truncated file: pixel data shorter than declared"))
    return results, figures


def _expected_flags(result: SeriesResult):
    clf = result.classification
    return flags_for(clf.label if clf else "", clf.confidence if clf else None, result.header_label, result.status)


@pytest.fixture(scope="module")
def demo(real_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    results, figures = _demo_results(real_data)
    page = write_participant_report(results, out, SUBJECT, figures)
    rows = [_tsv_row(r) for r in results]
    other = [dict(r, participant_id="sub-other2", series_uid=r["series_uid"] + ".2") for r in rows[:3]]
    group = write_group_report(rows + other, out)
    return results, out, page, group


def _tsv_row(result: SeriesResult) -> dict[str, str]:
    """A row as the participant TSV holds it (strings, "n/a" for blanks)."""
    s, c = result.series, result.classification
    row = {
        "participant_id": f"sub-{s.subject}", "session_id": f"ses-{s.session}" if s.session else None,
        "source": s.source, "series_uid": s.series_uid, "series_description": s.header.series_description,
        "label": c.label if c else None, "confidence": f"{c.confidence:.4f}" if c else None,
        "header_label": result.header_label, "header_agrees": result.header_agrees,
        "bids_path": result.bids_path, "status": result.status, "message": result.message,
    }
    return {k: _tsv_cell(v) for k, v in row.items()}


def _tsv_cell(value):
    if value is None or value == "":
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ----------------------------------------------------------------------------------------------
# figures


def _xpath_step(part: str) -> str:
    """One simple CSS selector (tag#id.class[attr]) as an XPath step (cssselect is not installed)."""
    tag = re.match(r"[a-z0-9]*", part).group(0) or "*"
    tests = [f'@id="{i}"' for i in re.findall(r"#([\w-]+)", part)]
    tests += [f'contains(concat(" ", normalize-space(@class), " "), " {c} ")' for c in re.findall(r"\.([\w-]+)", part)]
    tests += [f"@{a}" for a in re.findall(r"\[([\w-]+)\]", part)]
    return tag + "".join(f"[{t}]" for t in tests)


def select(node, selector: str) -> list:
    return node.xpath(".//" + "//".join(_xpath_step(p) for p in selector.split()))


def _png_pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width + 1)
    return raw[:, 1:]


def test_png_roundtrip():
    image = (np.arange(35 * 17) % 256).astype(np.uint8).reshape(17, 35)
    assert np.array_equal(_png_pixels(png_bytes(image)), image)
    with pytest.raises(ValueError):
        png_bytes(np.zeros((0, 3)))


def test_slice_axis_and_indices():
    assert slice_axis((256, 224, 26), (0.9, 0.9, 5.5)) == 2  # axial 2D stack
    assert slice_axis((104, 150, 133), (1.6, 1.6, 1.6)) == 0  # isotropic: shortest dimension
    idx = slice_indices(100, MosaicSpec(n_slices=6))
    assert len(idx) == 6 and idx[0] >= 14 and idx[-1] <= 86
    assert slice_indices(1) == [0]


def test_mosaic_4d_and_degenerate():
    rng = np.random.default_rng(0)
    four_d = rng.random((20, 20, 10, 5)).astype(np.float32)
    out = mosaic(four_d, (2.0, 2.0, 4.0))
    assert out.dtype == np.uint8 and out.ndim == 2 and out.shape[1] > out.shape[0]
    assert mosaic(np.zeros((8, 8, 8)), (1, 1, 1)).max() == 0  # constant image: no crash
    assert mosaic(np.ones((8, 8)), (1, 1)).shape[0] > 0  # a single slice


def test_mosaic_of_real_series(real_data, tmp_path):
    path = next(iter(sorted(real_data.glob(DEMO[0][0]))), None)
    if path is None:
        pytest.skip("TCGA T1 absent")
    png = write_mosaic(path, tmp_path / "t1.png")
    pixels = _png_pixels(png.read_bytes())
    assert pixels.shape[0] == MosaicSpec().tile  # axial 0.9 mm in-plane → one row of tiles
    assert pixels.std() > 20  # an image, not a blank
    assert (pixels == 255).mean() < 0.05  # robust window: only the brightest 1% saturate


# ----------------------------------------------------------------------------------------------
# participant page


def test_participant_dom(demo):
    results, out, page, _ = demo
    assert page == out / f"sub-{SUBJECT}.html"
    doc = lxml.html.parse(str(page)).getroot()
    cards = select(doc, "article.series-card")
    assert len(cards) == len(results)
    by_uid = {c.get("data-series-uid"): c for c in cards}
    for result in results:
        card = by_uid[result.series.series_uid]
        flags = _expected_flags(result)
        assert card.get("id") == card_id(result.series.series_uid)
        assert card.get("data-flag-disagree") == str(flags.disagree).lower()
        assert card.get("data-flag-low") == str(flags.low).lower()
        assert card.get("data-status") == result.status
        text = card.text_content()
        assert result.series.header.series_description in text
        if result.bids_path:
            assert result.bids_path in text
        if result.classification:
            assert card.get("data-label") == result.classification.label
            top = sorted(result.classification.probabilities, key=result.classification.probabilities.get)[::-1][:3]
            assert [li.get("data-class") for li in select(card, ".probs li")] == top
            img = select(card, ".mosaic img")[0]
            assert (out / img.get("src")).is_file()  # relative to the page
            assert img.get("src").startswith(f"sub-{SUBJECT}/figures/")
        else:
            assert result.message in text
    # visible flags, not only attributes
    assert any("header says" in c.text_content() for c in cards if c.get("data-flag-disagree") == "true")
    assert all(select(c, ".flag.low") for c in cards if c.get("data-flag-low") == "true")


def test_participant_flags_and_order(demo):
    results, _, page, _ = demo
    doc = lxml.html.parse(str(page)).getroot()
    cards = select(doc, "article.series-card")
    keys = [(c.get("data-session"), int(c.get("data-series-number"))) for c in cards]
    assert keys == sorted(keys)  # by session, then series number
    low = [c for c in cards if c.get("data-flag-low") == "true"]
    disagree = [c for c in cards if c.get("data-flag-disagree") == "true"]
    assert low and all(float(c.get("data-confidence")) < LOW_CONFIDENCE for c in low)
    # the post-Gd T1 called T1w by content is flagged against its header "T1wce"
    assert any(c.get("data-header-label") == "T1wce" and c.get("data-label") == "T1w" for c in disagree)
    summary = doc.get_element_by_id("summary")
    assert int(summary.get("data-n-series")) == len(results)
    assert int(summary.get("data-n-low")) == len(low)
    assert int(summary.get("data-n-disagree")) == len(disagree)
    assert int(summary.get("data-n-error")) == 1
    assert int(summary.get("data-n-other")) == sum(
        1 for r in results if r.classification and r.classification.label == OTHER
    )


def test_no_phi_and_self_contained(demo):
    _, out, page, group = demo
    for html in (page.read_text(), group.read_text()):
        assert "PatientName" not in html and "BirthDate" not in html
        assert "<script" not in html and "http://" not in html and "https://" not in html
        assert "<style>" in html
    doc = lxml.html.parse(str(page)).getroot()
    for img in select(doc, "img"):
        assert not img.get("src").startswith(("/", "file:", "http"))


def test_figures_accept_png_and_survive_bad_input(real_data, tmp_path):
    results, _ = _demo_results(real_data)
    png = tmp_path / "given.png"
    png.write_bytes(png_bytes(np.full((10, 20), 128, np.uint8)))
    first, second = results[0].series.series_uid, results[1].series.series_uid
    figures = {first: png, second: tmp_path / "missing.nii.gz"}
    page = write_participant_report(results[:2], tmp_path / "out", SUBJECT, figures)
    doc = lxml.html.parse(str(page)).getroot()
    assert select(doc.get_element_by_id(card_id(first)), ".mosaic img")
    note = select(doc.get_element_by_id(card_id(second)), ".mosaic.none")[0].text_content()
    assert "no preview" in note


# ----------------------------------------------------------------------------------------------
# group page


def test_group_dom(demo):
    results, out, _, group = demo
    assert group == out / "group.html"
    doc = lxml.html.parse(str(group)).getroot()
    summary = doc.get_element_by_id("summary")
    assert summary.get("data-n-participants") == "2"
    n_rows = len(results) + 3
    assert int(summary.get("data-n-series")) == n_rows
    counts = {tr.get("data-label"): int(tr.get("data-count")) for tr in select(doc, "#class-counts tr[data-label]")}
    labelled = [r for r in results if r.classification] + [r for r in results[:3] if r.classification]
    assert sum(counts.values()) == len(labelled)
    # confusion matrix holds every series whose header and content are both known
    cells = select(doc, "#confusion td[data-count]")
    assert sum(int(td.get("data-count")) for td in cells) == len(labelled)
    off = [td for td in cells if "off" in (td.get("class") or "")]
    assert off  # the T1w/T1wce disagreement shows as an amber cell
    # every flagged series is listed with a working link into its participant page
    review = select(doc, "tr.review-row")
    flagged = [r for r in results if _expected_flags(r).any]
    assert len([tr for tr in review if tr.get("data-participant") == SUBJECT]) == len(flagged)
    participant_doc = lxml.html.parse(str(out / f"sub-{SUBJECT}.html")).getroot()
    for tr in review:
        if tr.get("data-participant") != SUBJECT:
            continue
        href = select(tr, "a")[0].get("href")
        name, anchor = href.split("#")
        assert name == f"sub-{SUBJECT}.html"
        assert participant_doc.get_element_by_id(anchor) is not None


def test_group_tolerates_sparse_rows(tmp_path):
    rows = [
        {"participant_id": "sub-01", "label": "T1w", "confidence": "0.95", "header_label": "T1w"},
        {"participant_id": "02", "label": "n/a", "confidence": "n/a", "status": "error", "message": "bad"},
        {"participant_id": "sub-01", "label": "FLAIR", "confidence": "abc", "header_label": "n/a"},
        {},
    ]
    doc = lxml.html.parse(str(write_group_report(rows, tmp_path))).getroot()
    assert doc.get_element_by_id("summary").get("data-n-series") == "4"
    assert doc.get_element_by_id("summary").get("data-n-error") == "1"


# ----------------------------------------------------------------------------------------------
# a real browser


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium not installed")
def test_chromium_renders_participant_page(demo, tmp_path):
    results, _, page, _ = demo
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    doc = lxml.html.fromstring(dom.stdout)
    cards = select(doc, "article.series-card")
    assert {c.get("data-series-uid") for c in cards} == {r.series.series_uid for r in results}
    for result in results:
        card = doc.get_element_by_id(card_id(result.series.series_uid))
        assert card.get("data-flag-disagree") == str(_expected_flags(result).disagree).lower()
        assert card.get("data-flag-low") == str(_expected_flags(result).low).lower()

    shot = tmp_path / "report.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri(), profile=tmp_path / "profile")
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 50_000  # thumbnails and text, not a blank page
    if os.environ.get("MRCLASS_SAVE_SCREENSHOT"):  # =PATH keeps this demo screenshot for a look
        shutil.copyfile(shot, os.environ["MRCLASS_SAVE_SCREENSHOT"])


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium not installed")
def test_chromium_renders_group_page(demo, tmp_path):
    _, _, _, group = demo
    dom = _chromium("--dump-dom", group.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    doc = lxml.html.fromstring(dom.stdout)
    assert select(doc, "#confusion td[data-count]") and select(doc, "tr.review-row")


def test_agreement_badge_only_when_the_header_actually_agrees(tmp_path):
    """'header agrees' is a claim about the header: no guess from the header, no badge."""
    def result(uid: str, header: str) -> SeriesResult:
        series = Series("01", None, uid, f"{uid}.nii.gz", (), "nifti")
        return SeriesResult(series, _classification("T2w", 0.95), header_label=header,
                            bids_path=f"sub-01/anat/sub-01_run-{uid}_T2w.nii.gz")

    page = write_participant_report([result("1", "T2w"), result("2", "unknown")], tmp_path, "01")
    cards = lxml.html.fromstring(page.read_text()).xpath('//article[contains(@class, "series-card")]')
    badges = ["header agrees" in card.text_content() for card in cards]
    assert sorted(badges) == [False, True]


def test_time_series_card_says_why_not_below_threshold(tmp_path: Path):
    """A series rejected as a time series (its best probability may be above the threshold)
    must not be explained as "below threshold": the card points to the reason instead."""
    from dataclasses import replace

    reason = "time series: 40 volumes of one image (voxel signal varies 1.2% between volumes); kept as other"
    clf = replace(_classification(OTHER, 0.3), reason=reason)  # best guess DWI at 0.7, threshold 0.5
    series = Series("TS", None, "1.2.3.4", "bold/", (), "dicom", facts_from_sidecar({"SeriesDescription": "rest_bold"}))
    page = write_participant_report([SeriesResult(series, clf, "unknown", "sourcedata/unclassified/sub-TS/5_rest_bold.nii.gz",
                                                  "other", reason)], tmp_path, "TS", {})
    doc = lxml.html.parse(str(page)).getroot()
    decision = " ".join(select(doc, "p.decision")[0].text_content().split())
    assert decision == f"other · {reason}"  # the reason, not a percentage beside the class' own
    assert "no class reaches" not in decision


def test_cards_read_at_once_and_the_page_says_what_made_it(tmp_path: Path):
    """A refused series says it was not recognised and which class came closest (not "other 70%"
    next to "DWI 30%"); a NIfTI without description is titled by its file name; the footer names
    the app and model versions and the day."""
    from bidsapp import __version__

    refused = _classification(OTHER, 0.7)  # rejected: best guess DWI at 0.3 < 0.5
    series = Series("N", None, "nifti-1", "sub-N/anat/sub-N_run-3_T2w.nii.gz", (), "nifti", facts_from_sidecar({}))
    page = write_participant_report([SeriesResult(series, refused, "unknown", "", "other", "")], tmp_path, "N", {},
                                    {"name": "mrclass", "version": "9.9.9"})
    doc = lxml.html.parse(str(page)).getroot()
    decision = " ".join(select(doc, "p.decision")[0].text_content().split())
    assert decision == "other · not recognised: no class reaches the 50% needed (closest: DWI, 30%)"
    assert select(doc, "article.series-card h3")[0].text_content().strip() == "sub-N_run-3_T2w.nii.gz"
    footer = doc.get_element_by_id("provenance")
    assert footer.get("data-app-version") == __version__ and footer.get("data-model-version") == "mrclass 9.9.9"
    import datetime

    assert footer.get("data-date") == datetime.date.today().isoformat()
    group = lxml.html.parse(str(write_group_report([{"participant_id": "sub-N", "label": "T1w"}], tmp_path))).getroot()
    assert "1 participant, 1 series" in " ".join(group.text_content().split())


def test_display_window_from_a_sample_matches_the_whole_volume():
    """The window is taken from a strided sample; on a 5-million-voxel head-like volume it is
    within 1% of the range of the exact percentiles, and a volume of NaNs but a few voxels still
    gets its window from those voxels."""
    from bidsapp.report.figures import MosaicSpec, window

    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:160, :180, :180]
    head = np.hypot(np.hypot(xx - 90, yy - 90), (zz - 80) * 1.1) < 75
    data = np.where(head, rng.gamma(4.0, 100.0, head.shape), 0).astype(np.float32)
    spec = MosaicSpec()
    fg = data[data > 0]
    exact = np.percentile(fg, [spec.low_pct, spec.high_pct])
    low, high = window(data, spec)
    assert abs(low - exact[0]) < 0.01 * (exact[1] - exact[0]) and abs(high - exact[1]) < 0.01 * (exact[1] - exact[0])
    sparse = np.full((300, 300, 60), np.nan, np.float32)
    sparse[5, 7, 11], sparse[100, 3, 2], sparse[2, 2, 2] = 1.0, 5.0, 9.0
    assert window(sparse, spec) != (0.0, 1.0)


def test_group_confusion_matrix_for_any_two_witnesses(tmp_path):
    rows = [
        {"participant_id": "sub-01", "label": "T1w", "content_label": "other", "physics_label": "T1w|T1wce",
         "header_label": "T1w", "decided_by": "physics"},
        {"participant_id": "sub-01", "label": "FLAIR", "content_label": "FLAIR", "physics_label": "FLAIR",
         "header_label": "T2w", "decided_by": "content+physics"},
        {"participant_id": "sub-02", "label": "T1w", "content_label": "other", "physics_label": "T1w|T1wce",
         "header_label": "unknown", "decided_by": "physics"},
    ]
    doc = lxml.html.parse(str(write_group_report(rows, tmp_path, ("content", "physics")))).getroot()
    table = doc.get_element_by_id("confusion")
    assert (table.get("data-rows"), table.get("data-columns")) == ("content", "physics")
    cells = {(tr.get("data-header-label"), td.get("data-content-label")): int(td.get("data-count"))
             for tr in select(table, "tbody tr") for td in select(tr, "td")}
    assert cells[("other", "T1w|T1wce")] == 2 and cells[("FLAIR", "FLAIR")] == 1
    assert sum(cells.values()) == 3
    default = lxml.html.parse(str(write_group_report(rows, tmp_path))).getroot().get_element_by_id("confusion")
    assert (default.get("data-rows"), default.get("data-columns")) == ("text", "decision")


@pytest.mark.parametrize("bad", ["content", "content:content", "content:ocr", "a:b:c"])
def test_confusion_option_names_two_witnesses(bad):
    from bidsapp.cli.parser import parse_args

    assert parse_args(["in", "out", "group", "--confusion", "physics:decision"]).confusion == ("physics", "decision")
    with pytest.raises(SystemExit):
        parse_args(["in", "out", "group", "--confusion", bad])
