"""Naming table: every label's BIDS path, contrast agent, DWI vs trace, run numbering."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidsapp.classes import ALL_LABELS, OTHER
from bidsapp.naming import NameRequest, agent_label, assign_names, is_trace, path_stem


def req(label, key="1", subject="01", session=None, **kw):
    return NameRequest(key=key, subject=subject, session=session, label=label, **kw)


# The naming table of ARCHITECTURE.md section 3, written out by hand so the code is checked
# against the document, not against itself.
EXPECTED = {
    "T1w": "sub-01/anat/sub-01_T1w",
    "body-T1w": "sub-01/anat/sub-01_T1w",
    "T1wce": "sub-01/anat/sub-01_ce-gadolinium_T1w",
    "body-T1w-arterial": "sub-01/anat/sub-01_acq-arterial_ce-gadolinium_T1w",
    "body-T1w-venous": "sub-01/anat/sub-01_acq-venous_ce-gadolinium_T1w",
    "body-T1w-delayed": "sub-01/anat/sub-01_acq-delayed_ce-gadolinium_T1w",
    "T2w": "sub-01/anat/sub-01_T2w",
    "body-T2w": "sub-01/anat/sub-01_T2w",
    "body-T2w-fs": "sub-01/anat/sub-01_acq-fs_T2w",
    "FLAIR": "sub-01/anat/sub-01_FLAIR",
    "SWI": "sub-01/anat/sub-01_acq-swi_T2starw",
    "DWI": "sub-01/dwi/sub-01_dwi",
    "body-DWI": "sub-01/dwi/sub-01_dwi",
    "ADC": "sub-01/dwi/sub-01_ADC",
    "body-ADC": "sub-01/dwi/sub-01_ADC",
    "other": "sourcedata/unclassified/sub-01/7_t2tsetra",
}


def test_table_covers_every_label():
    assert set(EXPECTED) == set(ALL_LABELS)


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_path_per_label(label):
    assert path_stem(req(label, series_number=7, series_description="t2_tse_tra")) == EXPECTED[label]


def test_session_goes_in_folder_and_name():
    assert path_stem(req("T1wce", session="20110707")) == (
        "sub-01/ses-20110707/anat/sub-01_ses-20110707_ce-gadolinium_T1w"
    )
    assert path_stem(req(OTHER, session="b", series_number=3, series_description="loc")) == (
        "sourcedata/unclassified/sub-01/ses-b/3_loc"
    )


@pytest.mark.parametrize(
    "agent, expected",
    [("", "gadolinium"), (None, "gadolinium"), ("Gadovist 7.5 ml", "gadovist75ml"), ("MultiHance", "multihance"), ("---", "gadolinium")],
)
def test_agent_label(agent, expected):
    assert agent_label(agent) == expected
    assert path_stem(req("body-T1w-venous", contrast_agent=agent)) == f"sub-01/anat/sub-01_acq-venous_ce-{expected}_T1w"


def test_dwi_trace_rule():
    assert is_trace(("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW", "DIS2D"))
    assert is_trace(("ORIGINAL", "PRIMARY", "TRACE"))
    assert not is_trace(("ORIGINAL", "PRIMARY", "M", "ND"))
    assert is_trace(("ORIGINAL", "PRIMARY"), has_bvec=False)
    assert path_stem(req("DWI", has_directions=False)) == "sub-01/dwi/sub-01_trace"
    assert path_stem(req("body-DWI", has_directions=False)) == "sub-01/dwi/sub-01_trace"
    # has_directions only matters for diffusion classes
    assert path_stem(req("ADC", has_directions=False)) == "sub-01/dwi/sub-01_ADC"


def test_unclassified_sanitises_description_and_missing_number():
    assert path_stem(req(OTHER, series_description="AX T1 / post (Gd)")) == "sourcedata/unclassified/sub-01/AXT1postGd"
    assert path_stem(req(OTHER, series_number=2, series_description="")) == "sourcedata/unclassified/sub-01/2_series"


def test_no_run_without_collision():
    names = assign_names([req("T1w", "a", series_number=3), req("T2w", "b", series_number=4)])
    assert names == {"a": "sub-01/anat/sub-01_T1w", "b": "sub-01/anat/sub-01_T2w"}


def test_runs_follow_series_number_not_input_order():
    reqs = [req("T1w", "z", series_number=9), req("T1w", "a", series_number=12), req("T1w", "m", series_number=2)]
    names = assign_names(reqs)
    assert names == {
        "m": "sub-01/anat/sub-01_run-1_T1w",
        "z": "sub-01/anat/sub-01_run-2_T1w",
        "a": "sub-01/anat/sub-01_run-3_T1w",
    }
    assert assign_names(list(reversed(reqs))) == names


def test_run_entity_order_with_acq_and_ce():
    names = assign_names([req("body-T1w-arterial", "x", series_number=1), req("body-T1w-arterial", "y", series_number=2)])
    assert names["x"] == "sub-01/anat/sub-01_acq-arterial_ce-gadolinium_run-1_T1w"


def test_same_name_in_other_subject_or_session_is_no_collision():
    names = assign_names(
        [req("T1w", "a"), req("T1w", "b", subject="02"), req("T1w", "c", session="2"), req("T1w", "d", session="3")]
    )
    assert not any("run-" in n for n in names.values())


def test_different_agents_do_not_collide():
    names = assign_names([req("T1wce", "a", contrast_agent="Gadovist"), req("T1wce", "b", contrast_agent="Dotarem")])
    assert names == {"a": "sub-01/anat/sub-01_ce-gadovist_T1w", "b": "sub-01/anat/sub-01_ce-dotarem_T1w"}


def test_unclassified_collisions_get_runs():
    names = assign_names([req(OTHER, "a", series_number=5, series_description="loc"), req(OTHER, "b", series_number=5, series_description="loc")])
    assert sorted(names.values()) == ["sourcedata/unclassified/sub-01/5_loc_run-1", "sourcedata/unclassified/sub-01/5_loc_run-2"]


BIDS_STEM = re.compile(
    r"^sub-[a-zA-Z0-9]+/(ses-[a-zA-Z0-9]+/)?(anat|dwi)/sub-[a-zA-Z0-9]+(_ses-[a-zA-Z0-9]+)?"
    r"(_acq-[a-zA-Z0-9]+)?(_ce-[a-z0-9]+)?(_run-[1-9][0-9]*)?_(T1w|T2w|FLAIR|T2starw|dwi|trace|ADC)$"
)
UNCLASSIFIED_STEM = re.compile(r"^sourcedata/unclassified/sub-[a-zA-Z0-9]+/(ses-[a-zA-Z0-9]+/)?(\d+_)?[a-zA-Z0-9]+(_run-\d+)?$")

series_strategy = st.builds(
    lambda i, label, subj, ses, num, agent, dirs, desc: req(
        label, key=str(i), subject=subj, session=ses, series_number=num, contrast_agent=agent, has_directions=dirs, series_description=desc
    ),
    st.integers(),
    st.sampled_from(ALL_LABELS),
    st.sampled_from(["01", "02"]),
    st.sampled_from([None, "a"]),
    st.one_of(st.none(), st.integers(0, 5)),
    st.sampled_from(["", "Gadovist", "Dotarem"]),
    st.booleans(),
    st.text(max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(series_strategy, max_size=25, unique_by=lambda r: r.key))
def test_names_unique_valid_and_order_independent(reqs):
    names = assign_names(reqs)
    assert set(names) == {r.key for r in reqs}
    assert len(set(names.values())) == len(reqs)
    for r in reqs:
        pattern = UNCLASSIFIED_STEM if r.label == OTHER else BIDS_STEM
        assert pattern.match(names[r.key]), names[r.key]
    assert assign_names(list(reversed(reqs))) == names


@pytest.mark.parametrize(("protocol", "task"), [
    ("ep2d_bold_rest", "rest"), ("cmrr_mbep2d_bold_task-nback_run1", "nback"), ("fMRI_motor_TR2000", "motor"),
    ("BOLD 3mm MB4 rest", "rest"), ("FMRI_AX_ASC", "unknown"), ("", "unknown"),
])
def test_task_label_from_protocol_text(protocol, task):
    from bidsapp.naming import task_label

    assert task_label(protocol) == task


def test_an_other_series_physics_recognises_as_bold_is_named_under_func():
    from bidsapp.naming import NameRequest, assign_names

    bold = NameRequest(key="b", subject="01", session="1", label="other", series_number=8,
                       series_description="ep2d_bold_rest", physics_kind="bold", protocol="ep2d_bold_rest")
    twin = NameRequest(key="c", subject="01", session="1", label="other", series_number=9,
                       series_description="ep2d_bold_rest", physics_kind="bold", protocol="ep2d_bold_rest")
    plain = NameRequest(key="o", subject="01", session="1", label="other", series_number=3,
                        series_description="localizer", physics_kind="other")
    names = assign_names([bold, twin, plain])
    assert names["b"] == "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold"
    assert names["c"] == "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-2_bold"
    assert names["o"].startswith("sourcedata/unclassified/sub-01/ses-1/3_localizer")


def _t1(key, number, image_type, label="T1w"):
    return NameRequest(key=key, subject="01", session=None, label=label, series_number=number,
                       series_description="t1_mprage_sag", image_type=image_type)


def test_scanner_twins_and_reformats_are_named_once_and_marked_rec():
    """Siemens writes one acquisition twice (with and without distortion correction, with and
    without prescan normalisation) and reformats it (MPR): the corrected image keeps the plain
    name, the twin and the reformat get rec-, and run- stays for real repeats."""
    names = assign_names([
        _t1("dis", 5, ("ORIGINAL", "PRIMARY", "M", "NORM", "DIS3D")),
        _t1("nd", 6, ("ORIGINAL", "PRIMARY", "M", "NORM", "ND")),
        _t1("mpr", 7, ("DERIVED", "PRIMARY", "MPR", "NORM", "DIS3D")),
        _t1("raw", 8, ("ORIGINAL", "PRIMARY", "M", "DIS3D")),  # the same without NORM
    ])
    assert names == {"dis": "sub-01/anat/sub-01_T1w", "nd": "sub-01/anat/sub-01_rec-nd_T1w",
                     "mpr": "sub-01/anat/sub-01_rec-mpr_T1w", "raw": "sub-01/anat/sub-01_rec-nonorm_T1w"}
    repeats = assign_names([_t1("a", 3, ("ORIGINAL", "PRIMARY", "M", "ND")), _t1("b", 9, ("ORIGINAL", "PRIMARY", "M", "ND"))])
    assert repeats == {"a": "sub-01/anat/sub-01_run-1_T1w", "b": "sub-01/anat/sub-01_run-2_T1w"}
    alone = assign_names([_t1("nd", 6, ("ORIGINAL", "PRIMARY", "M", "ND"))])
    assert alone == {"nd": "sub-01/anat/sub-01_T1w"}  # no twin: nothing to mark


def test_se_epi_field_maps_take_their_direction_and_an_unknown_one_stays_in_sourcedata():
    from bidsapp.naming import NameRequest, assign_names, placement_problem

    def epi(key, number, direction):
        return NameRequest(key=key, subject="01", session=None, label="other", series_number=number,
                           series_description="se_epi", physics_kind="fmap_epi", phase_encoding=direction)

    names = assign_names([epi("ap", 3, "AP"), epi("pa", 4, "PA"), epi("ap2", 9, "AP"), epi("x", 5, "")])
    assert names == {"ap": "sub-01/fmap/sub-01_dir-AP_run-1_epi", "pa": "sub-01/fmap/sub-01_dir-PA_epi",
                     "ap2": "sub-01/fmap/sub-01_dir-AP_run-2_epi", "x": "sourcedata/unclassified/sub-01/5_seepi"}
    assert "PhaseEncodingDirection" in placement_problem("fmap_epi", "")
    assert placement_problem("fmap_epi", "AP") is None and placement_problem("bold") is None



def test_a_ge_b0_map_is_named_fieldmap_and_its_images_are_one_series():
    """A GE B0 map is named fmap/_fieldmap (run- where a session has two); BIDS writes it as the Hz
    map and its _magnitude, which every image-finding step counts as the series' images, as it
    counts a Siemens map's _magnitude1/2. Units, required of a _fieldmap, is checked once written."""
    from bidsapp.naming import NameRequest, assign_names, placement_problem, series_cores, series_stem

    def b0(key, number):
        return NameRequest(key=key, subject="01", session="1", label="other", series_number=number,
                           series_description="B0map", physics_kind="fmap_fieldmap")

    assert assign_names([b0("a", 6), b0("b", 9)]) == {"a": "sub-01/ses-1/fmap/sub-01_ses-1_run-1_fieldmap",
                                                    "b": "sub-01/ses-1/fmap/sub-01_ses-1_run-2_fieldmap"}
    assert series_cores("fmap/sub-01_run-1_fieldmap") == ("fmap/sub-01_run-1_fieldmap", "fmap/sub-01_run-1_magnitude")
    assert series_cores("fmap/sub-01_magnitude") == ("fmap/sub-01_magnitude1", "fmap/sub-01_magnitude2")
    assert series_cores("anat/sub-01_T1w") == ("anat/sub-01_T1w",)
    for core in ("fmap/sub-01_fieldmap", "fmap/sub-01_magnitude"):
        assert series_stem(core) == "fmap/sub-01_fieldmap"
    assert series_stem("fmap/sub-01_magnitude2") == "fmap/sub-01_magnitude"
    assert series_stem("fmap/sub-01_phasediff") == "fmap/sub-01_phasediff"
    assert placement_problem("fmap_fieldmap") is None  # named before conversion: nothing written to check yet
    assert placement_problem("fmap_fieldmap", sidecar={"Units": "Hz"}) is None
    assert "Units" in placement_problem("fmap_fieldmap", sidecar={"ImageType": ["FIELDMAPHZ"]})
    assert placement_problem("fmap_magnitude", sidecar={}) is None


def test_asl_is_kept_in_sourcedata_with_the_fields_perf_would_need():
    """ASL has a BIDS place (perf/_asl) whose aslcontext.tsv and sidecar fields scanners' headers do
    not give: it stays under sourcedata, whatever its direction, and the reason names what is missing."""
    from bidsapp.naming import NameRequest, assign_names, needs_direction, placement_problem

    asl = NameRequest(key="a", subject="01", session=None, label="other", series_number=6,
                      series_description="pcasl", physics_kind="asl", phase_encoding="AP")
    assert assign_names([asl]) == {"a": "sourcedata/unclassified/sub-01/6_pcasl"}
    why = placement_problem("asl", "AP")
    assert "perf/" in why and "aslcontext.tsv" in why
    for field in ("ArterialSpinLabelingType", "PostLabelingDelay", "BackgroundSuppression", "M0Type",
                  "TotalAcquiredPairs", "RepetitionTimePreparation", "LabelingDuration", "BolusCutOffFlag"):
        assert field in why
    assert [k for k in ("asl", "bold", "fmap_epi", "fmap_phasediff", "other") if needs_direction(k)] == ["fmap_epi"]


@pytest.mark.parametrize("direction, affine_columns, label", [
    ("j", [[-1, 0, 0], [0, 1, 0], [0, 0, 1]], "PA"),  # dcm2niix's axial: j points anterior
    ("j-", [[-1, 0, 0], [0, 1, 0], [0, 0, 1]], "AP"),
    ("j", [[-1, 0, 0], [0, -1, 0], [0, 0, 1]], "AP"),  # the same polarity in a flipped file names the same run
    ("i", [[-1, 0, 0], [0, 1, 0], [0, 0, 1]], "RL"),
    ("i-", [[-1, 0, 0], [0, 1, 0], [0, 0, 1]], "LR"),
    ("j", [[0, 1, 0], [0, 0, 1], [1, 0, 0]], "IS"),  # sagittal: j along the head-foot axis
    ("j", [[-1, 0, 0], [0, 0.8, 0.6], [0, -0.6, 0.8]], "PA"),  # oblique: the nearest axis
    ("", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], ""),
    ("y", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], ""),
])
def test_dir_label_is_the_anatomical_direction_phase_encoding_runs(direction, affine_columns, label):
    import numpy as np

    from bidsapp.phase_encoding import dir_label

    affine = np.eye(4)
    affine[:3, :3] = np.array(affine_columns, float).T  # columns: where voxel axes i, j, k point (RAS)
    assert dir_label(direction, affine) == label


def test_a_bids_input_that_supplies_what_perf_needs_places_its_asl():
    """From DICOM an ASL series stays unplaced (``UNPLACED_OTHER``); a BIDS input's is checked against
    BIDS' requirements (``REQUIRED_FILES``, ``REQUIRED_FIELDS``, ``REQUIRED_WHEN``) and the message names
    only what is missing."""
    from bidsapp.naming import (NameRequest, assign_names, companion, companions, entity_prefix, missing_requirements,
                                placement_problem)

    full = {"ArterialSpinLabelingType": "PASL", "PostLabelingDelay": 1.8, "BackgroundSuppression": True, "M0Type": "Included",
            "TotalAcquiredPairs": 4, "RepetitionTimePreparation": 4.0, "EchoTime": 0.01, "MagneticFieldStrength": 3,
            "MRAcquisitionType": "3D", "BolusCutOffFlag": False}
    context = frozenset({"_aslcontext.tsv"})
    assert placement_problem("asl", sidecar=full, files=context) is None
    assert missing_requirements("asl", {**full, "BolusCutOffFlag": True, "MRAcquisitionType": "2D"}, context) == (
        [], ["BolusCutOffDelayTime", "BolusCutOffTechnique", "SliceTiming"])
    assert missing_requirements("asl", {**full, "ArterialSpinLabelingType": "PCASL"}, frozenset()) == (
        ["_aslcontext.tsv"], ["LabelingDuration"])
    why = placement_problem("asl", sidecar={**full, "BackgroundSuppression": ""}, files=frozenset())
    assert "no _aslcontext.tsv beside the image and no BackgroundSuppression in its sidecar" in why
    assert "PostLabelingDelay" not in why
    assert placement_problem("asl", sidecar=full) == placement_problem("asl")  # DICOM: the generic reason
    req = NameRequest(key="a", subject="01", session="1", label="other", physics_kind="asl", supplied=context)
    assert assign_names([req]) == {"a": "sub-01/ses-1/perf/sub-01_ses-1_asl"}
    assert entity_prefix("sub-01/anat/sub-01_run-2_T2w") == entity_prefix("sub-01/anat/sub-01_run-2") == "sub-01/anat/sub-01_run-2"
    assert companion("sub-01/perf/sub-01_run-1_asl", "_aslcontext.tsv") == "sub-01/perf/sub-01_run-1_aslcontext.tsv"
    assert companions("p/sub-01_asl") == ("p/sub-01_asl.json", "p/sub-01_aslcontext.tsv")
    assert companions("p/sub-01_dwi") == ("p/sub-01_dwi.json", "p/sub-01_dwi.bval", "p/sub-01_dwi.bvec")
    assert companions("p/sub-01_m0scan") == ("p/sub-01_m0scan.json",)
