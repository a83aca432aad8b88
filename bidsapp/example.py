"""Write a small multi-series DICOM study made by the package's own simulator.

    mrclass-bids-example /tmp/mrclass-example/dicom

It needs no external data: the procedural head phantom (``train.phantom``) is rendered with the
training simulator's physics into T1w, post-contrast T1w, T2w, FLAIR, DWI (b0 + 3 directions),
ADC, a localizer and a resting-state BOLD run (12 volumes: a time series, "other"), written as
one DICOM file per slice with realistic header tags. One series
carries a misleading SeriesDescription, and a few junk files are mixed in, so the example shows
what the tool is for: content decides, the header is cross-checked, junk is skipped.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from .train.anatomy import Anatomy
from .train.geometry import SliceGeometry, plan_geometry
from .train.phantom import make_phantom
from .train.protocols import Protocol
from .train.simulate import render
from .train.tissues import draw_tissue_params


@dataclass(frozen=True)
class ExampleSeries:
    number: int
    description: str
    truth: str  # what the content is (for the README and tests)
    protocol: Protocol
    plane: str = "axial"
    n_slices: int = 24
    b_values: tuple[float, ...] = ()  # one volume per b-value (diffusion)
    n_volumes: int = 1  # repeated volumes of a time series (fMRI), when there are no b-values
    echo_times: tuple[float, ...] = ()  # one volume per echo (a field map's magnitude images)
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "NONE")
    tags: dict = field(default_factory=dict)

    @property
    def volumes(self) -> tuple[float | None, ...]:
        """The b-value of each volume, None for a volume without diffusion weighting."""
        return tuple(self.b_values) or (None,) * max(self.n_volumes, len(self.echo_times))

    def protocols(self) -> list[Protocol]:
        """The protocol each volume is rendered with: per b-value, per echo, or the one."""
        if self.b_values:
            return [replace(self.protocol, b=float(b), raw_direction=b > 0) for b in self.b_values]
        return [replace(self.protocol, te=te) for te in self.echo_times] or [self.protocol]


def _p(label, kind, seq, **kw) -> Protocol:
    base = dict(thickness=5.0, res=1.0, snr=35.0, field=3.0)
    return Protocol(label, kind, seq, **{**base, **kw})


# Field maps are recognised by the vendor's sequence name (docs/physics.md): these two series say Siemens.
_FM_VENDOR = {"Manufacturer": "SIEMENS"}

SERIES: tuple[ExampleSeries, ...] = (
    ExampleSeries(1, "localizer", "other", _p("other", "localizer", "gre", tr=8, te=3, flip=40, thickness=8.0, res=1.8),
                  plane="sagittal", n_slices=3, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                  tags={"ScanningSequence": "GR", "SequenceVariant": "SP"}),
    ExampleSeries(2, "t1_mprage_sag", "T1w", _p("T1w", "mprage", "mprage", tr=2300, te=3, ti=900, flip=9, thickness=1.2, is3d=True),
                  plane="sagittal", n_slices=110, tags={"ScanningSequence": "GR\\IR", "SequenceVariant": "SP\\MP"}),
    ExampleSeries(3, "t2_tse_tra", "T2w", _p("T2w", "tse_t2", "se", tr=5000, te=100, flow="void"),
                  tags={"ScanningSequence": "SE", "SequenceVariant": "SK"}),
    ExampleSeries(4, "T2 AX", "FLAIR",  # misleading description: the content is a FLAIR
                  _p("FLAIR", "flair", "ir", tr=9000, te=90, ti=-1.0, flow="void"),
                  tags={"ScanningSequence": "SE\\IR", "SequenceVariant": "SK"}),
    ExampleSeries(5, "ep2d_diff_3dir", "DWI", _p("DWI", "dwi", "dwi", tr=5000, te=80, b=1000, res=1.8, epi=True, snr=20, fat_sat=0.1),
                  b_values=(0, 1000, 1000, 1000), tags={"ScanningSequence": "EP", "SequenceVariant": "SK"}),
    ExampleSeries(6, "ep2d_diff_3dir_ADC", "ADC", _p("ADC", "adc", "adc", tr=5000, te=80, b=1000, res=1.8, epi=True, snr=20, fat_sat=0.1),
                  image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), tags={"ScanningSequence": "EP"}),
    ExampleSeries(7, "t1_se_tra_post", "T1wce", _p("T1wce", "se_t1", "se", tr=550, te=10, gd_phase="brain"),
                  tags={"ScanningSequence": "SE", "SequenceVariant": "SK", "ContrastBolusAgent": "Gadovist"}),
    ExampleSeries(8, "ep2d_bold_rest", "other",  # a time series: its volumes repeat one image
                  _p("other", "fmri", "gre", tr=2000, te=30, flip=77, res=3.0, thickness=3.5, epi=True, snr=60, fat_sat=0.1),
                  n_slices=24, n_volumes=12, tags={"ScanningSequence": "EP", "SequenceVariant": "SK"}),
    # a Siemens-style gradient-echo field map for the BOLD run: magnitude at two echoes, then the phase difference
    ExampleSeries(9, "gre_field_mapping", "other", _p("other", "fmap_mag", "gre", tr=500, flip=60, res=3.0, thickness=3.5),
                  n_slices=24, echo_times=(4.92, 7.38), image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
                  tags={"ScanningSequence": "GR", "SequenceVariant": "SP", "SequenceName": "*fm2d2r", **_FM_VENDOR}),
    ExampleSeries(10, "gre_field_mapping", "other",
                  _p("other", "fmap_phase", "fmap_phase", tr=500, te=7.38, flip=60, res=3.0, thickness=3.5),
                  n_slices=24, image_type=("ORIGINAL", "PRIMARY", "P", "ND"),
                  tags={"ScanningSequence": "GR", "SequenceVariant": "SP", "SequenceName": "*fm2d2r",
                        "EchoNumbers": 2, **_FM_VENDOR}),
)

_LPS = np.array([-1.0, -1.0, 1.0])  # RAS → DICOM patient (LPS) coordinates


def render_example_series(series: ExampleSeries, anat: Anatomy, seed: int) -> tuple[np.ndarray, SliceGeometry]:
    """(n_volumes, n_slices, H, W) float images and their geometry. A time series is one
    rendered image repeated with fresh thermal noise per volume (temporal SNR ``protocol.snr``),
    as a BOLD run is: rendering each volume anew would redraw its texture and artefacts."""
    if series.n_volumes > 1 and not series.b_values:
        (first,), geo = render_example_series(replace(series, n_volumes=1), anat, seed)
        rng = np.random.default_rng([seed, series.number, 1])
        sigma = float(np.mean(first[first > 0.1 * first.max()])) / series.protocol.snr
        return np.stack([np.abs(first + rng.normal(0, sigma, first.shape)) for _ in range(series.n_volumes)]), geo
    volumes = []
    for i, proto in enumerate(series.protocols()):
        rng = np.random.default_rng([seed, series.number, i])
        # the same slice positions for every volume of a 4D series: geometry drawn from one seed
        geo_rng = np.random.default_rng([seed, series.number])
        geo = plan_geometry(geo_rng, anat, proto, series.n_slices, series.plane, fov=230.0, even=True, oblique=False)
        tp = draw_tissue_params(np.random.default_rng([series.number]), proto.field, jitter=0.05)
        slices, geo = render(rng, anat, proto, series.n_slices, geometry=geo, tissue_params=tp,
                             stripped=False, storage=False)
        volumes.append(slices)
    return np.stack(volumes), geo


def _dataset(path: Path, series: ExampleSeries, study: dict, geo: SliceGeometry, k: int,
             pixels: np.ndarray, instance: int, b: float | None) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.MagneticFieldStrength = "MR", "mrclass-bids simulator", series.protocol.field
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Example^Phantom", "EXAMPLE01", "19700101", "O"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study["uid"], study["date"], "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.SeriesInstanceUID, ds.SeriesNumber = study["series_uids"][series.number], series.number
    ds.SeriesDescription = ds.ProtocolName = series.description
    ds.SeriesDate, ds.SeriesTime, ds.AcquisitionTime = study["date"], f"12{series.number:02d}00", f"12{series.number:02d}00"
    ds.FrameOfReferenceUID = study["frame"]
    ds.ImageType = list(series.image_type)
    ds.InstanceNumber = instance
    ds.BodyPartExamined, ds.PatientPosition = "HEAD", "HFS"
    proto = series.protocol
    ds.RepetitionTime, ds.EchoTime = round(proto.tr, 2), round(proto.te, 2)
    if proto.seq == "ir" or proto.ti > 0:
        ds.InversionTime = 2500.0 if proto.ti < 0 else proto.ti
    ds.FlipAngle = proto.flip
    ds.MRAcquisitionType = "3D" if proto.is3d else "2D"
    for tag, value in series.tags.items():
        setattr(ds, tag, value)
    if b is not None:
        ds.add_new((0x0018, 0x9087), "FD", float(b))  # DiffusionBValue
    right, down = geo.right * _LPS, -geo.up * _LPS
    ds.ImageOrientationPatient = [round(float(v), 6) for v in (*right, *down)]
    half = (geo.size - 1) / 2 * geo.res
    corner = geo.centre + geo.positions[k] * geo.normal + half * geo.up - half * geo.right
    ds.ImagePositionPatient = [round(float(v), 4) for v in corner * _LPS]
    ds.SliceLocation = round(float(geo.positions[k]), 4)
    ds.SliceThickness, ds.PixelSpacing = proto.thickness, [geo.res, geo.res]
    ds.SpacingBetweenSlices = round(float(np.diff(geo.positions).mean()), 4) if len(geo.positions) > 1 else proto.thickness
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def write_example(out_dir: str | Path, seed: int = 0) -> list[ExampleSeries]:
    """Write the example study under ``out_dir`` (one folder per series, plus junk files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    anat = make_phantom(seed)
    study = {"uid": generate_uid(entropy_srcs=["mrclass-example", str(seed)]), "date": "20260101",
             "frame": generate_uid(entropy_srcs=["mrclass-example-frame", str(seed)]),
             "series_uids": {s.number: generate_uid(entropy_srcs=["mrclass-example", str(seed), str(s.number)])
                             for s in SERIES}}
    for series in SERIES:
        images, geo = render_example_series(series, anat, seed)
        scale = 4000.0 / max(float(np.percentile(images, 99.9)), 1e-6)
        pixels = np.clip(np.round(images * scale), 0, 4095)
        folder = out / f"{series.number:02d}_{series.description}"
        folder.mkdir(exist_ok=True)
        instance = 0
        for v, b in enumerate(series.volumes):
            for k in range(pixels.shape[1]):
                instance += 1
                path = folder / f"IM{instance:05d}.dcm"
                ds = _dataset(path, series, study, geo, k, pixels[v, k], instance, b)
                if series.echo_times:  # one volume per echo, as a multi-echo acquisition stores them
                    ds.EchoTime, ds.EchoNumbers = series.echo_times[v], v + 1
                if series.n_volumes > 1:  # the same slice positions again, one acquisition per volume
                    ds.AcquisitionNumber = ds.TemporalPositionIdentifier = v + 1
                    ds.AcquisitionTime = f"12{series.number:02d}{v:02d}.000000"
                ds.save_as(path, enforce_file_format=True)
    (out / "README.txt").write_text("Example study written by mrclass-bids-example; not a DICOM file.\n")
    (out / "01_localizer" / "Thumbs.db").write_bytes(b"\x00junk")
    return list(SERIES)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mrclass-bids-example", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", help="folder to write the DICOM study into")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    series = write_example(args.out_dir, args.seed)
    print(f"wrote {len(series)} DICOM series to {args.out_dir}:")
    for s in series:
        print(f"  {s.number:>2}  {s.description:<22} content: {s.truth}")
    print(f"next: mrclass-bids {args.out_dir} OUTPUT_DIR participant")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
