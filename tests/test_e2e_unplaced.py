"""Series BIDS has no place for here, end to end on a generated Siemens study: a dual-echo PD/T2
and a pCASL run stay whole under sourcedata/unclassified with their reason, while the study's T2w
and BOLD run are named as usual and the dataset validates."""

from __future__ import annotations

import pytest

from bidsapp.linkbids import dimension_problem


def test_a_series_at_several_echo_times_is_kept_whole_as_other():
    why = dimension_problem("T2w", 1, (12.0, 96.0))
    assert "2 echo times (TE 12, 96 ms)" in why and "kept whole as other" in why
    assert dimension_problem("T2w", 1, (96.0,)) is None
    assert dimension_problem("body-T1w", 1, (2.3, 4.6)) is None  # in- and opposed-phase: one T1w contrast
    assert dimension_problem("T1w", 1, (1.7, 3.6, 5.5, 7.4)) is None  # multi-echo MPRAGE: echo-N of a T1w
    assert dimension_problem("T2w", 1, (80.0, 120.0)) is None  # two T2-weighted echoes
    assert dimension_problem("DWI", 1, (60.0, 90.0)) is None  # not anat: diffusion keeps its own rules
    assert dimension_problem("other", 1, (4.92, 7.38)) is None  # a field map's magnitudes: named by BIDS
    assert "4D series" in dimension_problem("T1w", 6)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Run the App on T2 TSE (2), dual-echo PD/T2 TSE (3), BOLD (4) and pCASL (5). A person's
    corrections call both TSE series T2w, so the dual-echo's fate does not hang on the model."""
    from dicomgen import SIEMENS_BOLD, SIEMENS_DUAL_ECHO_TSE, SIEMENS_PCASL, read, write_series
    from e2e_helpers import require_model

    from bidsapp.cli.run import main
    from bidsapp.derivatives import read_tsv

    require_model()
    tmp = tmp_path_factory.mktemp("unplaced")
    src = tmp / "dicom"
    t2 = {**SIEMENS_DUAL_ECHO_TSE, "SequenceName": "*tse2d1_15", "EchoTime": 100}
    write_series(src / "t2", series_description="t2_tse_tra", series_number=2, tags=t2)
    write_series(src / "pdt2", series_description="pd_t2_tse_tra", series_number=3, echo_times=(12.0, 96.0),
                 tags=SIEMENS_DUAL_ECHO_TSE)
    write_series(src / "bold", series_description="ep2d_bold_rest", series_number=4, n_volumes=6, tags=SIEMENS_BOLD,
                 csa={"PhaseEncodingDirectionPositive": 1})
    write_series(src / "asl", series_description="ep2d_pcasl", series_number=5, n_volumes=8, tags=SIEMENS_PCASL,
                 csa={"PhaseEncodingDirectionPositive": 1})
    uids = [str(read(next((src / d).glob("*.dcm"))).SeriesInstanceUID) for d in ("t2", "pdt2")]
    relabel = tmp / "corrections.tsv"
    relabel.write_text("series_uid\tlabel\n" + "".join(f"{u}\tT2w\n" for u in uids))
    out = tmp / "bids"
    assert main([str(src), str(out), "participant", "--work-dir", str(tmp / "work"), "--relabel", str(relabel)]) == 0
    rows = read_tsv(out / "derivatives/mrclass/sub-P01/sub-P01_classifications.tsv")
    return out, {r["series_description"]: r for r in rows}


def test_dual_echo_pd_t2_is_set_aside_whole(study):
    out, rows = study
    row = rows["pd_t2_tse_tra"]
    assert row["status"] == "other" and row["label"] == "T2w"  # the person's label is kept for the record
    assert "2 echo times (TE 12, 96 ms)" in row["message"] and "none of it named T2w" in row["message"]
    assert row["bids_path"].startswith("sourcedata/unclassified/sub-P01/3_")
    echoes = sorted(p.name for p in (out / "sourcedata/unclassified/sub-P01").glob("3_*.nii.gz"))
    assert len(echoes) == 2 and echoes[0] != echoes[1]  # both echoes converted, nothing lost
    anat = sorted(p.name for p in (out / "sub-P01/anat").iterdir())
    assert anat == ["sub-P01_T2w.json", "sub-P01_T2w.nii.gz"]  # only the single-echo T2w, and no run- for it


def test_asl_stays_in_sourcedata_with_what_perf_would_need(study):
    out, rows = study
    row = rows["ep2d_pcasl"]
    assert row["status"] == "other" and row["physics_label"] == "other"
    assert row["bids_path"] == "sourcedata/unclassified/sub-P01/5_ep2dpcasl.nii.gz"
    assert "ImageType says ASL" in row["message"] and "not placed in perf/" in row["message"]
    assert "aslcontext.tsv" in row["message"] and "PostLabelingDelay" in row["message"]
    assert not (out / "sub-P01/perf").exists()
    assert [p.name for p in (out / "sub-P01/func").glob("*.nii.gz")] == ["sub-P01_task-rest_bold.nii.gz"]


def test_rest_of_the_study_is_named_and_valid(study):
    from e2e_helpers import check_row_path, validator_errors

    out, rows = study
    assert rows["t2_tse_tra"]["bids_path"] == "sub-P01/anat/sub-P01_T2w.nii.gz"
    assert rows["ep2d_bold_rest"]["bids_path"] == "sub-P01/func/sub-P01_task-rest_bold.nii.gz"
    for row in rows.values():
        check_row_path(row, out)
    assert validator_errors(out) == []
