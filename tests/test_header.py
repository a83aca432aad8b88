"""Header facts and the header-based label guess, on real DICOM series and synthetic edge cases."""

from __future__ import annotations

import csv
import json
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from bidsapp.classes import ALL_LABELS
from bidsapp.header import (
    UNKNOWN,
    facts_from_datasets,
    facts_from_dicom,
    facts_from_sidecar,
    header_guess,
    header_label,
)
from bidsapp.records import HeaderFacts

VALID = set(ALL_LABELS) | {UNKNOWN}
AGREEMENT_FLOOR = 0.9  # the header is a cross-check: it may be silent, it should rarely be wrong


def _labels(real: Path) -> dict[str, str]:
    with open(real / "labels.tsv", newline="") as handle:
        return {row["path"].rstrip("/"): row["label"] for row in csv.DictReader(handle, delimiter="\t")}


def _first_file(folder: Path) -> Path:
    return sorted(p for p in folder.rglob("*") if p.is_file())[0]


@pytest.fixture(scope="module")
def real_dicom_facts(real_data: Path) -> list[tuple[str, str, HeaderFacts]]:
    labels = _labels(real_data)
    rows = []
    for folder in sorted((real_data / "dicom").iterdir()):
        key = f"dicom/{folder.name}"
        if not folder.is_dir() or key not in labels:
            continue
        ds = pydicom.dcmread(_first_file(folder), stop_before_pixels=True, force=True)
        rows.append((folder.name, labels[key], facts_from_dicom(ds)))
    if not rows:
        pytest.skip("no labelled DICOM series")
    return rows


def test_real_dicom_agreement(real_dicom_facts):
    guesses = [(name, truth, header_label(facts)) for name, truth, facts in real_dicom_facts]
    agree = [g for g in guesses if g[1] == g[2]]
    wrong = [g for g in guesses if g[2] not in (g[1], UNKNOWN)]
    assert len(agree) / len(guesses) >= AGREEMENT_FLOOR, guesses
    assert len(wrong) <= len(guesses) * (1 - AGREEMENT_FLOOR), wrong


def test_real_dicom_facts_are_read(real_dicom_facts):
    for name, _, facts in real_dicom_facts:
        assert facts.series_description, name
        assert facts.repetition_time and facts.repetition_time > 1, name  # ms, not s
        assert facts.echo_time and facts.echo_time > 0.5, name
        assert facts.modality == "MR"


def test_real_adc_and_diffusion_series(real_dicom_facts):
    adc = [(n, t, f) for n, t, f in real_dicom_facts if "ADC" in f.image_type]
    assert adc, "the dev set has an ADC map"
    for name, truth, facts in adc:
        assert header_label(facts) == truth, name
        assert header_label(facts) in ("ADC", "body-ADC")
    # vendor private b-value tags are decoded (Siemens (0019,100C) arrives as bytes)
    trace = [f for _, _, f in real_dicom_facts if "TRACEW" in f.image_type]
    assert trace and all(any(b > 0 for b in f.b_values) for f in trace)


def test_real_body_part_sets_region(real_dicom_facts):
    for name, truth, facts in real_dicom_facts:
        label = header_label(facts)
        if facts.body_part in ("PROSTATE", "ABDOMEN", "PELVIS") and label not in ("other", UNKNOWN):
            assert label.startswith("body-"), name


def test_real_nifti_names_as_descriptions(real_data):
    """BIDS input: the sidecar when there is one, else the file name is the only description."""
    rows = [(p, t) for p, t in _labels(real_data).items() if p.startswith("nifti/")]
    if not rows:
        pytest.skip("no labelled NIfTI")
    guesses = []
    for path, truth in rows:
        name = Path(path).name.removesuffix(".gz").removesuffix(".nii")
        sidecar = (real_data / path).with_name(name + ".json")
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        meta.setdefault("SeriesDescription", name)
        guesses.append((name, truth, header_label(facts_from_sidecar(meta))))
    agree = sum(g[1] == g[2] for g in guesses)
    assert agree / len(guesses) >= AGREEMENT_FLOOR, guesses


def test_real_series_b_values_union(real_data):
    folder = real_data / "dicom" / "ProstateX-0000_6_ep2d_diff_tra"
    if not folder.is_dir():
        pytest.skip("ProstateX DWI absent")
    files = sorted(folder.glob("*.dcm"))
    facts = facts_from_datasets(pydicom.dcmread(f, stop_before_pixels=True) for f in files)
    assert len(facts.b_values) >= 2  # several b-values across the files of one trace series


# ----------------------------------------------------------------------------------------------
# Synthetic datasets


def _mr(**tags) -> Dataset:
    ds = Dataset()
    ds.Modality = "MR"
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def test_empty_description_makes_no_text_claim_physics_speaks_instead():
    """Without typed text the text witness says nothing; the scanner's physics still does."""
    from bidsapp.physics import witness

    cases = {
        "T1w": _mr(SeriesDescription="", ScanningSequence="GR", SequenceVariant="SP", RepetitionTime=7.5,
                   EchoTime=3.1, FlipAngle=15, BodyPartExamined="HEAD"),
        "T2w": _mr(SeriesDescription="", ScanningSequence="SE", RepetitionTime=4500, EchoTime=95,
                   BodyPartExamined="HEAD"),
        "FLAIR": _mr(ScanningSequence=["SE", "IR"], RepetitionTime=9000, EchoTime=120, InversionTime=2500),
        "DWI": _mr(ScanningSequence=["SE", "EP"], RepetitionTime=6000, EchoTime=80, DiffusionBValue=1000,
                   ImageType=["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"], BodyPartExamined="BRAIN"),
    }
    for expected, ds in cases.items():
        facts = facts_from_dicom(ds)
        assert header_label(facts) == UNKNOWN, expected
        assert expected in witness(facts).labels, expected
    assert witness(facts_from_dicom(_mr())).silent  # nothing to go on: no testimony


def test_bids_file_name_is_the_claim_when_no_description_speaks():
    """A BIDS input without SeriesDescription is checked against what its name says; a
    description, when there is one, is the header and wins."""
    from bidsapp.header import header_guess
    from bidsapp.records import HeaderFacts

    named = {"run-1_T1w": "T1w", "ce-gadolinium_T1w": "T1wce", "FLAIR": "FLAIR", "acq-fs_T2w": "T2w",
             "dwi": "DWI", "ADC": "ADC", "task-rest_bold": "other", "run-2": UNKNOWN}
    for name, expected in named.items():
        assert header_label(HeaderFacts(input_name=name)) == expected, name
    assert header_guess(HeaderFacts(input_name="FLAIR")).why.startswith("input file name")
    assert header_label(HeaderFacts(series_description="t2_tse_tra", input_name="T1w")) == "T2w"


def test_contrast_agent_tag_makes_t1_post_contrast():
    ds = _mr(SeriesDescription="t1_mprage_tra", RepetitionTime=2300, EchoTime=2.3,
             ContrastBolusAgent="Gadovist")
    assert header_label(facts_from_dicom(ds)) == "T1wce"
    ds.ContrastBolusAgent = "NONE"
    assert header_label(facts_from_dicom(ds)) == "T1w"


def test_misleading_description_physics_veto():
    """Documented precedence: a keyword wins unless present physics contradicts it.

    "T1" with IR, TI 2500 ms and TE 120 ms is a FLAIR acquisition mislabelled by the operator.
    """
    ds = _mr(SeriesDescription="T1 AX", ScanningSequence=["SE", "IR"], RepetitionTime=9000,
             EchoTime=120, InversionTime=2500)
    from bidsapp.physics import witness

    assert header_guess(facts_from_dicom(ds)).label == UNKNOWN  # the typed "T1" is vetoed, not believed
    assert witness(facts_from_dicom(ds)).labels == ("FLAIR",)  # and the scanner says what it is
    # without the contradicting physics, the keyword stands
    assert header_label(facts_from_dicom(_mr(SeriesDescription="T1 AX"))) == "T1w"
    # T1-FLAIR (TI ~ 900 ms, short TE) is T1-weighted, not FLAIR
    t1flair = _mr(SeriesDescription="AX T1 FLAIR", ScanningSequence=["SE", "IR"], RepetitionTime=2000,
                  EchoTime=20, InversionTime=860)
    assert header_label(facts_from_dicom(t1flair)) == "T1w"


@pytest.mark.parametrize(
    ("description", "extra", "expected"),
    [
        ("t2_tirm_tra_dark-fluid", {}, "FLAIR"),
        ("AX SWAN", {}, "SWI"),
        ("ep2d_diff_3scan_trace", {}, "DWI"),
        ("dADC map", {}, "ADC"),
        ("mIP_Images(SW)", {}, "SWI"),
        ("Pha_Images", {}, "other"),
        ("AX T2* GRE", {}, UNKNOWN),  # T2*-weighted GRE has no class: no guess
        ("Sag T1 FLAIR", {}, "T1w"),
        ("DTI_30dir FA", {}, "other"),
        ("localizer", {}, "other"),
        ("AAHead_Scout", {}, "other"),
        ("tof_fl3d_tra", {}, "other"),
        ("ep2d_bold_rest", {}, "other"),
        ("gre_field_mapping", {}, "other"),
        ("T1 +C AX", {}, "T1wce"),
        ("Ax T1 FSPGR BRAVO post", {}, "T1wce"),
        ("t2_haste_cor", {"BodyPartExamined": "ABDOMEN"}, "body-T2w"),
        ("t2_tse_tra_fs", {"BodyPartExamined": "ABDOMEN"}, "body-T2w-fs"),
        ("t2_spair_tra", {}, "T2w"),  # region defaults to brain: fat-suppressed brain T2 is T2w
        ("vibe_dixon_opp", {"BodyPartExamined": "LIVER"}, "body-T1w"),
        ("LAVA arterial", {}, "body-T1w-arterial"),
        ("vibe_portal_venous", {}, "body-T1w-venous"),
        ("t1_vibe_fs_tra 5 min delayed", {"BodyPartExamined": "ABDOMEN"}, "body-T1w-delayed"),
        ("ep2d_diff_b50_800", {"BodyPartExamined": "PROSTATE"}, "body-DWI"),
        ("Apparent Diffusion Coefficient", {"BodyPartExamined": "PELVIS"}, "body-ADC"),
    ],
)
def test_keyword_table(description, extra, expected):
    ds = _mr(SeriesDescription=description, **extra)
    assert header_label(facts_from_dicom(ds)) == expected


def test_enhanced_multiframe():
    ds = _mr(SeriesDescription="", ImageType=["ORIGINAL", "PRIMARY", "M", "NONE"],
             EchoPulseSequence="SPIN", EchoPlanarPulseSequence="YES", InversionRecovery="NO",
             Manufacturer="Philips")
    timing = Dataset()
    timing.RepetitionTime = 5000
    timing.FlipAngle = 90
    shared = Dataset()
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for b in (0, 1000, 1000, 2000):
        echo, diff, frame = Dataset(), Dataset(), Dataset()
        echo.EffectiveEchoTime = 85
        diff.DiffusionBValue = b
        frame.MREchoSequence = Sequence([echo])
        frame.MRDiffusionSequence = Sequence([diff])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    facts = facts_from_dicom(ds)
    assert facts.repetition_time == 5000 and facts.echo_time == 85 and facts.flip_angle == 90
    assert facts.b_values == (0, 1000, 2000)
    assert facts.scanning_sequence == "SE\\EP" and facts.echo_times == (85,)
    from bidsapp.physics import witness

    assert witness(facts).labels == ("DWI", "body-DWI")  # no coil or body part: either region


def _raw(tag: int, vr: str | None, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, True, True)


def test_vendor_private_b_values():
    siemens = Dataset({Tag(0x00080070): _raw(0x00080070, "LO", b"SIEMENS "),
                       Tag(0x0019100C): _raw(0x0019100C, None, b"800 ")})
    assert facts_from_dicom(siemens).b_values == (800.0,)
    ge = _mr(Manufacturer="GE MEDICAL SYSTEMS")
    ge.add_new(0x00431039, "IS", [1000000800, 8, 0, 0])
    assert facts_from_dicom(ge).b_values == (800.0,)
    philips = Dataset({Tag(0x00080070): _raw(0x00080070, "LO", b"Philips "),
                       Tag(0x20011003): _raw(0x20011003, None, struct.pack("<f", 1500.0))})
    assert facts_from_dicom(philips).b_values == (1500.0,)
    # a vendor tag on another vendor's data is not trusted
    other = Dataset({Tag(0x00080070): _raw(0x00080070, "LO", b"Canon "),
                     Tag(0x0019100C): _raw(0x0019100C, None, b"800 ")})
    assert facts_from_dicom(other).b_values == ()


def test_malformed_values_never_raise():
    ds = Dataset({
        Tag(0x00180080): _raw(0x00180080, "DS", b"abc "),
        Tag(0x00180081): _raw(0x00180081, "DS", b"12\\13 "),
        Tag(0x00200011): _raw(0x00200011, "IS", b"x.5 "),
        Tag(0x00189087): _raw(0x00189087, "FD", b"\x00\x01"),
        Tag(0x0008103E): _raw(0x0008103E, "LO", "T1 \xe9\xa2\x84".encode("latin-1")),
    })
    with pytest.warns(UserWarning):
        facts = facts_from_dicom(ds)
    assert facts.repetition_time is None and facts.series_number is None
    assert facts.echo_time == 12
    assert header_label(facts) in VALID


def test_sidecar_units_and_keys():
    meta = {
        "RepetitionTime": 2.3, "EchoTime": 0.00232, "InversionTime": 0.9, "FlipAngle": 8,
        "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "SeriesDescription": "t1_mprage_sag",
        "ProtocolName": "t1_mprage_sag", "ScanningSequence": "GR_IR", "SequenceVariant": "SP_MP",
        "SeriesNumber": 3, "Manufacturer": "Siemens", "MagneticFieldStrength": 3,
        "BodyPartExamined": "HEAD",
    }
    facts = facts_from_sidecar(meta, b_values=["0", 1000, "x"])
    assert facts.repetition_time == pytest.approx(2300)
    assert facts.echo_time == pytest.approx(2.32)
    assert facts.inversion_time == pytest.approx(900)
    assert facts.image_type == ("ORIGINAL", "PRIMARY", "M", "ND")
    assert facts.series_number == 3 and facts.field_strength == 3
    assert facts.b_values == (0, 1000)
    assert header_label(facts) == "T1w"
    assert facts_from_sidecar({}) == HeaderFacts()
    assert facts_from_sidecar(None) == HeaderFacts()  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Property: whatever the header holds, the guess is a valid label and nothing raises.

_num = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12))
_str = st.text(max_size=40)
_any = st.one_of(_num, _str, st.lists(st.one_of(_str, _num), max_size=4), st.binary(max_size=12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    description=_str, protocol=_str, sequence=_str, image_type=st.lists(_str, max_size=5),
    tr=_num, te=_num, ti=_num, b=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4),
    agent=_str, body=_str, modality=_str,
)
def test_header_label_total(description, protocol, sequence, image_type, tr, te, ti, b, agent, body, modality):
    facts = HeaderFacts(
        series_description=description, protocol_name=protocol, scanning_sequence=sequence,
        image_type=tuple(image_type), repetition_time=tr, echo_time=te, inversion_time=ti,
        b_values=tuple(b), contrast_agent=agent, body_part=body, modality=modality,
    )
    assert header_label(facts) in VALID


@settings(max_examples=200, deadline=None)
@given(meta=st.dictionaries(
    st.sampled_from(["RepetitionTime", "EchoTime", "InversionTime", "FlipAngle", "ImageType",
                     "SeriesDescription", "ProtocolName", "ScanningSequence", "SeriesNumber",
                     "ContrastBolusAgent", "MagneticFieldStrength", "BodyPartExamined", "Modality"]),
    _any), bvals=st.lists(_any, max_size=3))
def test_sidecar_total(meta, bvals):
    assert header_label(facts_from_sidecar(meta, bvals)) in VALID


_TAGS = {
    0x0008103E: "LO", 0x00181030: "LO", 0x00180020: "CS", 0x00080008: "CS", 0x00180080: "DS",
    0x00180081: "DS", 0x00180082: "DS", 0x00181314: "DS", 0x00189087: "FD", 0x00180010: "LO",
    0x00200011: "IS", 0x00080070: "LO", 0x00180087: "DS", 0x00180015: "CS", 0x00080060: "CS",
    0x0019100C: None, 0x00431039: None, 0x20011003: None,
}


@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(st.sampled_from(sorted(_TAGS)), st.binary(max_size=24)),
       vendor=st.sampled_from([b"SIEMENS ", b"GE MEDICAL SYSTEMS", b"Philips ", b""]))
def test_dicom_facts_total(values, vendor):
    """Arbitrary bytes in every tag we read: facts and label come back, nothing raises."""
    elements = {Tag(t): _raw(t, _TAGS[t], v) for t, v in values.items()}
    elements[Tag(0x00080070)] = _raw(0x00080070, "LO", vendor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        facts = facts_from_dicom(Dataset(elements))
    assert isinstance(facts, HeaderFacts)
    assert header_label(facts) in VALID
