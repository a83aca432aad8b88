"""The network's input: loading, reduction of 4D series, orientation and normalisation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidsapp.records import Volume
from bidsapp.volume import (EPI_MIN_MM, GEOMETRY_FEATURES, MIN_3D_SLICES, SPEC, foreground_mask, load_dicom, load_nifti,
                            native_slices, network_inputs, normalise_stack, representative, slice_axis,
                            to_network_input, view_axes, volume_from_array, volume_geometry)


def _head(shape=(60, 70, 50)) -> np.ndarray:
    """A bright ellipsoid with a marker blob towards anterior-superior, on Rician-like noise."""
    rng = np.random.default_rng(0)
    g = np.ogrid[tuple(slice(0, s) for s in shape)]
    c = [s / 2 for s in shape]
    r = [s / 3 for s in shape]
    inside = sum(((x - ci) / ri) ** 2 for x, ci, ri in zip(g, c, r)) <= 1
    data = np.abs(rng.normal(0, 5, shape)) + 300.0 * inside
    marker = sum(((x - ci) / 3) ** 2 for x, ci in zip(g, [c[0], c[1] + r[1] * 0.7, c[2] + r[2] * 0.5])) <= 1
    return (data + 700.0 * marker).astype(np.float32)


def test_slice_axis_is_thick_axis_or_smallest_dimension():
    assert slice_axis((256, 256, 26), (0.9, 0.9, 5.5)) == 2
    assert slice_axis((176, 256, 256), (1.0, 1.0, 1.0)) == 0
    assert slice_axis((240, 240, 155), (1.0, 1.0, 1.0)) == 2


def test_foreground_mask_handles_constant_and_noisy_background():
    data = _head()
    assert 0.1 < foreground_mask(data).mean() < 0.3
    zscored = np.where(data > 100, (data - data.mean()) / data.std(), -3.5).astype(np.float32)
    mask = foreground_mask(zscored)
    assert np.array_equal(mask, data > 100)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.01, 5000), offset=st.floats(-1000, 1000))
def test_normalisation_ignores_intensity_scale_and_offset(scale, offset):
    slices = _head()[:, :, 20:26].transpose(2, 0, 1)
    ref = normalise_stack(slices, 1.0, 1.0)
    out = normalise_stack(slices * scale + offset, 1.0, 1.0)
    assert out.shape == (6, SPEC.size, SPEC.size)
    np.testing.assert_allclose(out, ref, atol=2e-3)


def test_orientation_does_not_change_what_the_network_sees():
    """The same head stored RAS and LPS (flipped axes) gives the same stack, marker on top."""
    data = _head()
    ras = volume_from_array(data, np.diag([2.0, 2.0, 4.0, 1.0]))
    lps_affine = np.diag([-2.0, -2.0, 4.0, 1.0])
    lps_img = nib.as_closest_canonical(nib.Nifti1Image(data[::-1, ::-1, :].copy(), lps_affine))
    lps = volume_from_array(np.asanyarray(lps_img.dataobj), lps_img.affine)
    a, b = to_network_input(ras), to_network_input(lps)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # slice axis is z (4 mm); anterior (+y) is up: the marker sits in the upper half of the rows
    slices, _ = native_slices(ras, 40, 1.0)
    rows = np.argwhere(slices > 900)[:, 1]
    assert rows.size and rows.mean() < slices.shape[1] / 2


def test_representative_uses_highest_diffusion_shell():
    data = np.stack([np.full((4, 4, 4), v, np.float32) for v in (100, 40, 42, 10, 12)], axis=-1)
    np.testing.assert_allclose(representative(data, (0, 500, 500, 1000, 1000)), 11.0)
    np.testing.assert_allclose(representative(data, ()), data.mean(axis=-1))


def test_nan_and_constant_volumes_do_not_crash():
    vol = volume_from_array(np.full((20, 20, 10), np.nan, np.float32), np.eye(4))
    x = to_network_input(vol)
    assert np.isfinite(x).all()


def test_real_nifti_and_dicom(real_data):
    vol = load_nifti(real_data / "nifti/niivue_register/T2w.nii.gz")
    x = to_network_input(vol)
    assert x.shape == (SPEC.n_slices, SPEC.size, SPEC.size) and np.isfinite(x).all()
    files = sorted((real_data / "dicom/ProstateX-0000_6_ep2d_diff_tra").iterdir())
    dwi = load_dicom(files)
    assert dwi.n_volumes == 3 and len(dwi.b_values) == 3 and max(dwi.b_values) >= 500
    with pytest.raises(ValueError):
        load_dicom([real_data / "labels.tsv"])


def test_geometry_features_read_the_native_voxel_size_whatever_the_orientation():
    thick = Volume(data=np.zeros((96, 96, 30), np.float32), affine=np.diag([2.5, 2.5, 5.0, 1.0]))
    sag = Volume(data=np.zeros((20, 256, 256), np.float32), affine=np.diag([6.0, 0.9, 0.8, 1.0]))
    assert np.allclose(volume_geometry(thick), np.log2([2.5, 5.0]))
    assert np.allclose(volume_geometry(sag), np.log2([0.8, 6.0]))
    assert volume_geometry(thick).dtype == np.float32 and volume_geometry(thick).shape == (len(GEOMETRY_FEATURES),)


@pytest.mark.parametrize("shape, zooms, axes", [
    ((176, 256, 256), (1.0, 1.0, 1.0), (0, 1, 2)),  # sagittal 3D T1w
    ((240, 240, 155), (1.0, 1.0, 1.0), (0, 1, 2)),  # resampled (BraTS-like)
    ((112, 112, 32), (2.0, 2.0, 2.0), (2,)),  # isotropic 2D EPI: too few slices for 3D
    ((MIN_3D_SLICES,) * 3, (1.6, 1.6, 1.6), (0, 1, 2)),  # coarse 3D (niivue-like 1.6 mm T1w)
    ((110, 110, 72), (2.0, 2.0, 2.0), (2,)),  # whole-brain 2 mm EPI: many slices, still 2D
    ((256, 224, 26), (0.9, 0.9, 5.5), (2,)),  # 2D multislice
    ((64, 256, 256), (1.6, 0.9, 0.9), (0,)),  # sagittal thick-ish: anisotropic
])
def test_3d_volumes_are_viewed_in_all_three_planes_2d_stacks_in_their_own(shape, zooms, axes):
    vol = Volume(data=np.zeros(shape, np.float32), affine=np.diag([*zooms, 1.0]))
    assert view_axes(vol) == axes


def test_whole_brain_epi_is_read_in_its_own_plane(real_data, tmp_path):
    """The real Philips 2 mm DTI (32 slices) given the 72-slice slab of a whole-brain protocol (its
    slices, then empty ones): still 2D EPI, read in its plane and named DWI. Read over three planes
    as a 3D volume, its cuts across the slices were refused."""
    from e2e_helpers import converted_nifti, require_model

    dti = load_nifti(converted_nifti(real_data / "dicom/philips_dwi_DTI_Biobank", tmp_path))
    assert min(dti.spacing) >= EPI_MIN_MM and dti.data.shape[2] < MIN_3D_SLICES
    slab = Volume(data=np.pad(dti.data, ((0, 0), (0, 0), (20, 20))), affine=dti.affine, b_values=dti.b_values)
    assert min(slab.data.shape) >= MIN_3D_SLICES and view_axes(slab) == (2,)
    classifier = require_model()
    assert classifier.classify(slab).label == "DWI"


def test_each_view_is_the_stack_cut_normal_to_its_axis():
    """network_inputs stacks one to_network_input per view; the views of an ellipsoid differ (each
    plane shows its own cross-section); a 2D stack has its one native view."""
    vol = volume_from_array(_head((70, 80, 66)), np.diag([1.0, 1.0, 1.0, 1.0]))
    x = network_inputs(vol)
    assert x.shape == (3, SPEC.n_slices, SPEC.size, SPEC.size) and np.isfinite(x).all()
    for i, axis in enumerate(view_axes(vol)):
        np.testing.assert_array_equal(x[i], to_network_input(vol, SPEC, axis))
    assert not np.allclose(x[0], x[1]) and not np.allclose(x[1], x[2])
    flat = volume_from_array(_head((60, 70, 20)), np.diag([2.0, 2.0, 4.0, 1.0]))
    np.testing.assert_array_equal(network_inputs(flat)[0], to_network_input(flat))
