"""The simulator's physics and geometry, on the package's own phantom (no external data)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bidsapp.classes import LABELS
from bidsapp.train import appearance, artefacts, geometry, label_maps, protocols
from bidsapp.train import simulate as S
from bidsapp.train.open_set import OTHER_KINDS
from bidsapp.train.phantom import make_pelvis_phantom, make_phantom
from bidsapp.train.sequences import gd_concentration
from bidsapp.train.tissues import TISSUE_INDEX
from bidsapp.volume import GEOMETRY_FEATURES, SPEC

SEEDS = range(20)


def _signal(label: str, seed: int, region="brain") -> dict[str, float]:
    rng = np.random.default_rng(seed)
    proto = S.CLASS_PROTOCOLS[label](rng, label)
    s = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
    return {name: float(s[TISSUE_INDEX[name]]) for name in ("wm", "gm", "csf", "fat", "vein", "dura", "liver", "fluid")}


def test_contrast_orderings_follow_the_physics():
    """Tissue order per class, over 100 random protocols. 1.5 T spin-echo T1 has genuinely weak
    WM/GM contrast, so T1w may tie within 5% in a few draws; nothing else may be out of order."""
    t1_strict = 0
    for seed in range(100):
        t1, t2, flair, adc = (_signal(lab, seed) for lab in ("T1w", "T2w", "FLAIR", "ADC"))
        assert t1["wm"] > 0.95 * t1["gm"] and t1["gm"] > t1["csf"], seed
        t1_strict += t1["wm"] > t1["gm"]
        assert t2["csf"] > t2["gm"] > t2["wm"], seed
        assert flair["csf"] < 0.3 * min(flair["gm"], flair["wm"]), "FLAIR must null the CSF drawn for this image"
        assert flair["gm"] > 0.95 * flair["wm"], seed
        assert adc["csf"] > adc["gm"] > 0
        body_t2, body_t2fs = _signal("body-T2w", seed), _signal("body-T2w-fs", seed)
        assert body_t2["fluid"] > body_t2["liver"]
        assert body_t2fs["fat"] / body_t2fs["liver"] < 0.5 * body_t2["fat"] / body_t2["liver"], "fat suppression"
    assert t1_strict >= 95


@pytest.mark.parametrize("seed", SEEDS)
def test_gadolinium_brightens_vessels_and_dura_not_brain(seed):
    pre, post = _signal("T1w", seed), _signal("T1wce", seed)
    # same seed → same protocol family and tissue draw; the agent shortens T1 of enhancing tissue
    assert post["dura"] / post["wm"] > pre["dura"] / pre["wm"]


def test_only_the_delayed_phase_shows_excreted_gadolinium_in_urine():
    """Urine (bladder, collecting systems) is dark fluid on body T1w until the delayed phase, in
    most of whose draws excretion makes it brighter than the liver; plain fluid never enhances."""
    def over_liver(label, seed):  # (urine, fluid) relative to liver
        rng = np.random.default_rng(seed)
        proto = S.CLASS_PROTOCOLS[label](rng, label)
        lut = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
        urine, fluid, liver = (lut[TISSUE_INDEX[t]] for t in ("urine", "fluid", "liver"))
        return urine / liver, fluid / liver
    for label in ("body-T1w", "body-T1w-arterial", "body-T1w-venous"):
        for seed in range(30):
            urine, fluid = over_liver(label, seed)
            assert urine < 1.0 and abs(urine - fluid) < 0.25 * fluid, (label, seed)  # tissue jitter only
    delayed = [over_liver("body-T1w-delayed", seed) for seed in range(60)]
    bright = sum(urine > 1.0 for urine, _ in delayed)
    assert 0.5 * 60 < bright < 0.9 * 60
    c = [gd_concentration(np.random.default_rng(seed), "delayed") for seed in range(20)]
    kidney, bladder = (np.array([ci[TISSUE_INDEX[t]] for ci in c]) for t in ("urine", "bladder_urine"))
    assert (kidney > 0).any() and np.allclose(bladder, 0.03 * kidney)  # diluted by the urine already there
    assert all(fluid < 1.0 for _, fluid in delayed)


def test_collecting_systems_fill_the_water_density_part_of_the_renal_sinus():
    """A C-shaped kidney around a sinus of water and fat: the water becomes the collecting system;
    the fat, the parenchyma and everything outside stay as they were."""
    labels = np.zeros((40, 40, 3), np.int32)
    ct = np.full(labels.shape, -100.0)
    yy, xx = np.mgrid[:40, :40]
    ring = (np.hypot(yy - 20, xx - 20) < 12) & ~(np.hypot(yy - 20, xx - 24) < 7)
    labels[ring, 1] = label_maps.KIDNEYS[0]
    notch = (np.hypot(yy - 20, xx - 24) < 7) & (np.hypot(yy - 20, xx - 20) < 11)
    ct[notch & (xx < 24), 1] = 20.0  # water (the pelvis) medially, fat towards the hilum
    out = label_maps._collecting_systems(labels, ct)
    system = out == label_maps.COLLECTING_SYSTEM
    assert system[:, :, 1].sum() > 20 and not system[:, :, [0, 2]].any()
    assert (ct[system] > -30).all() and (labels[system] == 0).all()
    assert (out[labels != 0] == labels[labels != 0]).all()
    assert label_maps.TOTALSEG[label_maps.COLLECTING_SYSTEM] == "urine"


def test_every_class_and_the_open_set_render_finite_stacks():
    anatomies = [make_phantom(0)]
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(60):
        sample = S.simulate_sample(rng, anatomies, 4)
        assert sample.stack.shape == (4, SPEC.size, SPEC.size)
        assert np.isfinite(sample.stack).all() and sample.stack.max() > 0.5, sample.protocol
        assert sample.geometry.shape == (len(GEOMETRY_FEATURES),) and np.isfinite(sample.geometry).all()
        seen.add(sample.label)
    assert len(seen) >= 10
    assert S.label_index("other") == -1 and S.label_index("FLAIR") == LABELS.index("FLAIR")


def test_axial_geometry_puts_anterior_at_the_top():
    anat = make_phantom(0)
    rng = np.random.default_rng(0)
    proto = S.Protocol("T2w", "t", "se", tr=5000, te=100, thickness=3, res=1.5)
    geo = S.plan_geometry(rng, anat, proto, 30, "axial", 230.0, even=True, oblique=False)
    tissue = S.sample_tissue_slices(rng, anat, proto, geo)
    eyes = np.argwhere((tissue == TISSUE_INDEX["vitreous"]).any(axis=1))
    assert eyes.size, "eye globes should be covered by an axial series"
    assert eyes[:, 1].mean() < geo.size / 2


def test_load_anatomies_reads_label_maps_and_refuses_an_empty_folder(tmp_path):
    import nibabel as nib

    (tmp_path / "brainweb").mkdir()
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 3  # white matter
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "brainweb" / "subject00_crisp.nii.gz")
    anatomies = label_maps.load_anatomies(tmp_path, n_phantoms=1)
    assert [a.region for a in anatomies] == ["brain", "brain"]
    assert (anatomies[1].tissue == TISSUE_INDEX["wm"]).sum() == 1000
    with pytest.raises(FileNotFoundError):
        label_maps.load_anatomies(tmp_path / "missing", n_phantoms=1)


def test_air_cavities_inside_the_head_get_a_mucosa_lining_and_the_outer_skin_does_not(tmp_path):
    """BrainWeb draws sinuses as air lined by skin; loading lines them with mucosa, as in real heads."""
    import nibabel as nib

    zz, yy, xx = np.mgrid[:40, :40, :40] - 19.5
    labels = np.where(zz**2 + yy**2 + xx**2 < 18**2, 5, 0).astype(np.uint8)  # a ball of muscle
    labels[(zz**2 + yy**2 + xx**2 < 17**2)] = 3  # white matter under a 1-voxel shell
    labels[(zz - 8) ** 2 + yy**2 + xx**2 < 7**2] = 9  # connective tissue around ...
    labels[(zz - 8) ** 2 + yy**2 + xx**2 < 4**2] = 0  # ... an air cavity
    (tmp_path / "brainweb").mkdir()
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "brainweb" / "subject00_crisp.nii.gz")
    tissue = label_maps.load_anatomies(tmp_path)[0].tissue
    mucosa = tissue == TISSUE_INDEX["mucosa"]
    dist = np.sqrt(((np.argwhere(mucosa) - (27.5, 19.5, 19.5)) ** 2).sum(1))  # from the cavity's centre
    assert mucosa.sum() > 200 and dist.max() < 7  # a lining round the cavity, inside the connective tissue
    assert (tissue == TISSUE_INDEX["muscle"]).sum() == (labels == 5).sum()  # the outer shell is untouched


def test_mprage_readout_keeps_real_t1_contrast():
    """The readout train (not a pure inversion recovery) sets MPRAGE contrast: white matter above
    grey, CSF dark, and fat bright but within a few times white matter, at both field strengths."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        proto = S.CLASS_PROTOCOLS["T1w"](rng, "T1w")
        if proto.kind != "mprage":
            continue
        s = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
        wm, gm, csf, fat = (s[TISSUE_INDEX[n]] for n in ("wm", "gm", "csf", "fat"))
        assert wm > gm > csf, (seed, wm, gm, csf)
        assert csf < 0.6 * wm and fat < 3.0 * wm, (seed, csf / wm, fat / wm)


def test_stored_voxel_size_is_mostly_the_acquired_one_but_not_always():
    rng = np.random.default_rng(0)
    epi = S.CLASS_PROTOCOLS["DWI"](rng, "DWI")
    sizes = [S.stored_voxel_size(rng, epi, stripped=False) for _ in range(400)]
    in_plane = np.array([s[0] for s in sizes])
    assert np.mean(np.isclose(in_plane, epi.res)) > 0.4  # the commonest single case: as acquired (EPI: 0.85 x 0.65 x 0.85)
    assert np.any(np.isclose(in_plane, epi.res / 2))  # interpolated reconstructions
    assert all(sl >= epi.thickness or sl == ip for ip, sl in sizes)  # gaps widen; resampled is isotropic
    resampled = [S.stored_voxel_size(rng, epi, stripped=True) for _ in range(400)]
    assert 0.25 < np.mean([a == b for a, b in resampled]) < 0.6  # pre-processed data: often isotropic
    iso = [a for a, b in sizes + resampled if a == b and a != 1.0]
    assert min(iso) < 0.8 and max(iso) > 1.8  # resampled to many grids, not 1 mm alone


def test_pelvis_phantom_has_the_organs_of_prostate_mri_in_their_places():
    from bidsapp.train.phantom import PELVIS_MM, make_pelvis_phantom

    anat = make_pelvis_phantom(0)
    assert anat.region == "body"
    centre = {}
    for organ in ("bladder_urine", "prostate", "marrow", "fat", "muscle", "bowel"):
        vox = np.argwhere(anat.tissue == TISSUE_INDEX[organ])
        assert len(vox) * PELVIS_MM**3 > 5000, organ  # at least 5 ml of each
        centre[organ] = vox.mean(axis=0) * PELVIS_MM
    assert centre["prostate"][2] < centre["bladder_urine"][2] - 20  # below the bladder (z = superior)
    assert abs(centre["prostate"][0] - anat.tissue.shape[0] * PELVIS_MM / 2) < 10  # on the midline
    # the axial slice through the prostate's centre: rectum right behind it, bone on both sides
    k = int(round(centre["prostate"][2] / PELVIS_MM))
    axial = anat.tissue[:, :, k]
    px, py = np.argwhere(axial == TISSUE_INDEX["prostate"]).mean(axis=0)
    bowel = np.argwhere(axial == TISSUE_INDEX["bowel"])
    behind = bowel[(np.abs(bowel[:, 0] - px) < 10) & (bowel[:, 1] < py)]
    assert len(behind) and (py - behind[:, 1].max()) * PELVIS_MM < 40
    bone_x = np.argwhere(np.isin(axial, [TISSUE_INDEX["bone"], TISSUE_INDEX["marrow"]]))[:, 0]
    assert (bone_x < px - 40 / PELVIS_MM).any() and (bone_x > px + 40 / PELVIS_MM).any()
    # and T2 weighting shows its bladder fluid above prostate and muscle, as in real prostate MRI
    rng = np.random.default_rng(0)
    proto = S.Protocol("body-T2w", "t", "se", tr=4000, te=100, thickness=4, res=1.5)
    lut = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, 3.0))
    assert lut[TISSUE_INDEX["fluid"]] > max(lut[TISSUE_INDEX["prostate"]], lut[TISSUE_INDEX["muscle"]])
    # its peripheral zone brighter than the central gland and than muscle
    assert lut[TISSUE_INDEX["prostate"]] > max(lut[TISSUE_INDEX["gland"]], lut[TISSUE_INDEX["muscle"]])


def test_pelvis_phantom_has_fat_behind_the_rectum_at_the_glands_level():
    """Ischioanal fossae and the natal cleft: at the gland's level the band behind the rectum is
    largely fat, as a real prostate T2 shows it, not the body wall's muscle ring (before
    ``phantom._perineum`` 5-16% fat in seeds 1-5)."""
    from bidsapp.train.phantom import PELVIS_MM, make_pelvis_phantom

    for seed in (1, 2):
        anat = make_pelvis_phantom(seed)
        k = int(round(anat.organ_centres["prostate"][2] / PELVIS_MM + anat.tissue.shape[2] / 2))
        axial = anat.tissue[:, :, k]
        x = (np.arange(axial.shape[0]) - axial.shape[0] / 2)[:, None] * PELVIS_MM
        y = (np.arange(axial.shape[1]) - axial.shape[1] / 2)[None, :] * PELVIS_MM
        behind = (np.abs(x) < 60) & (y < -30) & (y > -75)
        behind &= ~np.isin(axial, [TISSUE_INDEX["bone"], TISSUE_INDEX["marrow"]])
        fat = np.mean(axial[behind] == TISSUE_INDEX["fat"])
        assert fat > 0.3, (seed, fat)
        assert np.mean(axial[behind] == TISSUE_INDEX["muscle"]) > 0.1  # the glutei still close it


def test_pelvis_spermatic_cords_lie_inside_the_mons_fat():
    """The cords are drawn in the mons, so no cord rises above the mons fat into the muscle of the
    body wall (until session 31 they ran up to 20 mm above the femoral heads wherever the fat
    stopped lower: seeds 0 and 1)."""
    from bidsapp.train import phantom as P

    for seed in (0, 1):
        rng = P._pelvis_rng(seed)
        cv, frame = P._bony_pelvis(rng)  # make_pelvis_phantom up to the perineum
        before = cv.tissue.copy()
        P._perineum(cv, rng, frame)
        front = np.broadcast_to(cv.y > 0.4 * frame.b, cv.tissue.shape)
        new_cords = (cv.tissue == TISSUE_INDEX["soft"]) & (before != TISSUE_INDEX["soft"]) & front
        new_fat = (cv.tissue == TISSUE_INDEX["fat"]) & (before != TISSUE_INDEX["fat"]) & front
        levels = lambda m: np.where(m.any(axis=(0, 1)))[0]  # noqa: E731
        assert len(levels(new_cords)) and levels(new_cords).max() <= levels(new_fat).max(), seed


def test_tof_draws_arteries_inside_the_brain_only():
    """The label maps lack arteries; without drawn ones a TOF of such a head is a T1w image."""
    anat = make_phantom(0)
    rng = np.random.default_rng(3)
    proto = S.Protocol("other", "tof", "gre", tr=25, te=5, flip=20, flow="tof", is3d=True, thickness=1.0)
    geo = S.plan_geometry(rng, anat, proto, 6, "axial", 220.0)
    tissue = S.sample_tissue_slices(rng, anat, proto, geo)
    artery = TISSUE_INDEX["artery"]
    before = tissue == artery
    drawn = S._with_arteries(rng, tissue)
    new = (drawn == artery) & ~before
    brain = S._IS_BRAIN[tissue].any(axis=1, keepdims=True)
    assert new.sum() > 50 * len(tissue), "a few dozen vessel pixels per slice at least"
    assert not (new & ~brain).any()
    assert (new.sum(axis=(2, 3)) == new[:, :1].sum(axis=(2, 3))).all(), "same vessels through the sub-planes"


def test_tof_background_is_suppressed_below_fat():
    """MT pulses darken parenchyma (not fat) and arteries outshine everything."""
    proto = S.Protocol("other", "tof", "gre", tr=25, te=5, flip=20, flow="tof", is3d=True, thickness=1.0)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        s = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, 3.0))
        sig = {n: s[TISSUE_INDEX[n]] for n in ("gm", "wm", "fat", "artery")}
        assert sig["artery"] > 1.9 * max(sig["gm"], sig["wm"], sig["fat"]), seed
        assert sig["fat"] > sig["wm"], seed


def test_epi_distortion_moves_pixels_along_the_phase_axis_and_keeps_the_signal():
    rng = np.random.default_rng(0)
    img = np.zeros((3, 64, 64), np.float32)
    img[:, 20:44, 20:44] = 1.0
    for axis in (1, 2):
        out = artefacts._epi_distortion(rng, img, axis)
        assert not np.allclose(out, img)
        assert abs(out.sum() - img.sum()) < 0.1 * img.sum(), "a shift redistributes intensity"
        # nothing moves along the frequency axis: the square spans the same rows (columns) as before
        frequency_extent = np.flatnonzero((out[0] > 0.1).any(axis=axis - 1))
        assert frequency_extent.tolist() == list(range(20, 44))


def test_bold_dropout_hits_the_orbitofrontal_and_inferior_temporal_brain_only():
    """Signal is lost where the brain meets the sinuses and ear canals, nowhere near its centre."""
    rng = np.random.default_rng(3)
    anat = label_maps.load_anatomies("phantom")[0]
    proto = S._other(np.random.default_rng(0), "brain")
    proto = replace(proto, seq="gre", epi=True, thickness=3.0, res=2.0)
    geo = S.plan_geometry(rng, anat, proto, 24, "sagittal", 240, even=True, oblique=False)
    keep = S.bold_dropout(rng, anat, proto, geo)
    assert keep.shape == (24, geo.size, geo.size)
    assert keep.min() < 0.3, "near-total loss somewhere"
    lo, hi = anat.brain_box
    lost, kept = [], []
    for k, vox in enumerate(geometry.slice_voxels(anat, proto, geo)):
        frac = (vox.mean(axis=0) - lo) / (hi - lo)  # position in the brain's box, RAS
        lost.append(frac[keep[k] < 0.5])
        kept.append(keep[k][(np.abs(frac - 0.5) < 0.1).all(axis=-1)])
    lost, kept = np.concatenate(lost), np.concatenate(kept)
    assert kept.size and kept.min() > 0.9, "the middle of the brain keeps its signal"
    assert (lost[:, 2] < 0.5).all(), "loss lies in the lower half of the brain"
    assert (lost[:, 1] > 0.35).all(), "and in front of the brainstem"


def test_dropout_is_drawn_for_bold_but_not_for_spin_echo_diffusion(monkeypatch):
    anat = label_maps.load_anatomies("phantom")[0]
    fmri = replace(S.CLASS_PROTOCOLS["DWI"](np.random.default_rng(0), "DWI"), label="other", seq="gre",
                     tr=2000.0, te=30.0, flip=80.0, b=0.0)
    calls = []
    real = S.bold_dropout
    monkeypatch.setattr(S, "bold_dropout", lambda *a, **k: calls.append(a[2].seq) or real(*a, **k))
    for proto in (fmri, replace(fmri, seq="dwi", label="DWI")):
        S.render(np.random.default_rng(1), anat, proto, 4, plane="axial", stripped=False)
    assert calls == ["gre"]


def test_render_draws_its_geometry_as_draw_geometry_does_so_a_probe_can_draw_it_first():
    """A probe that needs the slices' tissue draws the geometry itself and hands it, scale
    included, to ``render``: the series must be the one ``render`` draws alone from the same seed."""
    anat = label_maps.load_anatomies("phantom")[0]
    proto = S.CLASS_PROTOCOLS["T2w"](np.random.default_rng(0), "T2w")
    alone, geo_alone = S.render(np.random.default_rng(4), anat, proto, 3, stripped=False, storage=False)
    rng = np.random.default_rng(4)
    geo, scale = S.draw_geometry(rng, anat, proto, 3)
    handed, geo_handed = S.render(rng, anat, proto, 3, geometry=geo, scale=scale, stripped=False, storage=False)
    for field in ("centre", "normal", "positions"):
        np.testing.assert_array_equal(getattr(geo_handed, field), getattr(geo_alone, field))
    np.testing.assert_array_equal(handed, alone)
    unscaled, _ = S.render(np.random.default_rng(4), anat, proto, 3, geometry=geo, stripped=False, storage=False)
    assert not np.array_equal(unscaled, alone)  # without its scale the anatomy is sampled elsewhere


def test_scanner_masked_series_keep_the_head_on_an_exact_zero_background(monkeypatch):
    """Drawn masked, a native head series has the constant background that sends real masked
    scanner series down normalisation's masked path, and still shows its scalp; drawn unmasked,
    its background is noise. Skull-stripped series are never masked this way."""
    from bidsapp.train.tissues import _IS_BRAIN, TISSUE_INDEX
    from bidsapp.volume import _is_constant_background, foreground_mask

    anat = label_maps.load_anatomies("phantom")[0]
    proto = S.CLASS_PROTOCOLS["DWI"](np.random.default_rng(0), "DWI")
    for p, masked in ((1.0, True), (0.0, False)):
        monkeypatch.setitem(artefacts.SCANNER_MASKED, "p", p)
        for seed in range(3):
            img, _ = S.render(np.random.default_rng(seed), anat, proto, 4, plane="axial", stripped=False, storage=False)
            fg = foreground_mask(img)
            assert (np.mean(~fg) > 0.10 and _is_constant_background(img, fg)) == masked
            assert (np.mean(img == 0) > 0.2) == masked
    monkeypatch.setitem(artefacts.SCANNER_MASKED, "p", 1.0)
    img, geo = S.render(np.random.default_rng(1), anat, proto, 4, plane="axial", stripped=False, storage=False)
    tissue = geometry.sample_tissue_slices(None, anat, proto, geo, None).max(axis=1)
    outside_brain = ~_IS_BRAIN[tissue] & (tissue != TISSUE_INDEX["air"])
    assert np.sum(outside_brain & (img > 0)) > 50, "the scalp survives the mask"
    stripped = []
    for p in (1.0, 0.0):
        monkeypatch.setitem(artefacts.SCANNER_MASKED, "p", p)
        stripped.append(S.render(np.random.default_rng(1), anat, proto, 4, plane="axial", stripped=True, storage=False)[0])
    np.testing.assert_array_equal(*stripped)  # no threshold holes in a stripped brain


def test_coil_shading_is_bright_at_the_surface_and_falls_with_depth():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:160, :160]
    r = np.sqrt((yy - 80) ** 2 + (xx - 80) ** 2)
    mask = np.broadcast_to(r < 70, (3, 160, 160)).copy()
    gain = artefacts._coil_sensitivity(rng, mask, res=2.0, gain=(1.0, 1.5))
    rim, middle, centre = (gain[:, (r > a) & (r < b)].mean() for a, b in ((64, 69), (35, 40), (0, 5)))
    assert rim > middle > centre >= 1.0
    assert rim > 1.5 * centre, "a factor of ~2 between skin and depth, as on pelvic T2 without normalisation"
    assert np.allclose(gain[0], gain[1]), "one coil for the whole series"


def test_low_flip_reference_is_proton_density_weighted_unlike_body_t1w():
    """The DCE T1-mapping reference (flip below Ernst) is "other"; a body T1w gradient echo
    (flip well above Ernst) keeps fluid darker than muscle, so the two do not overlap."""
    def fluid_over_muscle(make, kind):
        ratios = []
        for seed in range(300):
            rng = np.random.default_rng(seed)
            proto = make(rng)
            if proto.kind == kind:
                s = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
                ratios.append(s[TISSUE_INDEX["fluid"]] / s[TISSUE_INDEX["muscle"]])
        return np.array(ratios)

    t1 = fluid_over_muscle(lambda rng: S.CLASS_PROTOCOLS["body-T1w"](rng, "body-T1w"), "body_gre_t1")
    pd = fluid_over_muscle(lambda rng: S._other(rng, "body"), "pd_gre")
    assert len(t1) > 50 and len(pd) > 5
    assert t1.max() < pd.min() and np.median(pd) > np.median(t1) + 0.4, (t1.max(), pd.min())


def test_body_open_set_is_body_acquisitions_with_pd_references_common():
    """Body "other" draws what a body protocol holds beside its classes: no TOF, BOLD, ASL or FA
    map, and proton-density references (the real ProstateX one was named body T1w) far more
    often than in the brain, whose open set is unchanged."""
    def kinds(region):
        rng = np.random.default_rng(4)
        return [S._other(rng, region).kind for _ in range(600)]

    body, brain = kinds("body"), kinds("brain")
    assert not {"tof", "fmri", "asl", "fa"} & set(body)
    assert {"tof", "fmri", "asl", "fa"} <= set(brain)
    pd_share = {name: np.mean([k in ("pd", "pd_gre") for k in ks]) for name, ks in (("body", body), ("brain", brain))}
    assert pd_share["body"] > 0.35 and pd_share["body"] > 1.7 * pd_share["brain"], pd_share


def test_lesions_are_no_class_cue_and_stripped_brains_mostly_carry_one():
    """Skull-stripped data come from tumour datasets, where every contrast shows the tumour: the
    share of brains with a painted lesion depends on storage alone (the class is not an argument),
    and stripped brains carry one far more often than native ones."""
    anat = make_phantom(0)
    lesion_tissues = [TISSUE_INDEX[t] for t in ("tumour", "oedema", "wm_lesion")]

    def share(stripped: bool) -> float:
        rng = np.random.default_rng(7)
        hits = [np.isin(S._maybe_lesions(rng, anat, stripped).tissue, lesion_tissues).any() for _ in range(60)]
        return float(np.mean(hits))

    stripped, native = share(True), share(False)
    assert stripped >= 0.8 and 0.35 <= native <= 0.75 and stripped > native + 0.2, (stripped, native)


def test_no_diffusion_target_is_a_b0_image_alone():
    """A b=0 image is a T2-weighted EPI: as a DWI target it teaches that any EPI with bright CSF
    is diffusion. Mixtures (the mean of a 4D series without b-values) stay mostly diffusion-weighted."""
    rng = np.random.default_rng(3)
    mixes = [S.CLASS_PROTOCOLS[label](rng, label).b0_mix for _ in range(300) for label in ("DWI", "body-DWI")]
    assert max(mixes) <= protocols.B0_MIX_MAX and 0.2 < np.mean(np.array(mixes) > 0) < 0.5


def test_diffusion_targets_keep_csf_below_grey_matter():
    """What tells a single BOLD volume from a diffusion image is CSF: brighter than grey matter on
    a T2*-weighted EPI, darker at b >= 500. A b=0 share above about 16% brightens CSF past grey
    matter (11% of DWI targets up to 0.8.0's simulator); only low b-values at long echo times may
    lift it, in under 3% of targets."""
    rng = np.random.default_rng(5)
    brighter = 0
    for _ in range(300):
        proto = S.CLASS_PROTOCOLS["DWI"](rng, "DWI")
        lut = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
        brighter += lut[TISSUE_INDEX["csf"]] > lut[TISSUE_INDEX["gm"]]
    assert brighter <= 9, brighter


def _tract_slice() -> np.ndarray:
    """One slice (1, 1, 64, 64): grey matter with a white-matter tract 8 px thick along the columns."""
    tissue = np.full((1, 1, 64, 64), TISSUE_INDEX["gm"], np.uint8)
    tissue[..., 28:36, :] = TISSUE_INDEX["wm"]
    return tissue


def test_fibres_run_along_a_tract_through_its_middle_too():
    """The structure tensor reads a tract's direction from its edges, so its middle, where the
    gradient of the white-matter fraction vanishes, runs the same way (not the random field's)."""
    f = appearance.fibre_orientation(np.random.default_rng(0), _tract_slice(), res=1.0)
    assert f.shape == (1, 64, 64, 3) and np.allclose(np.linalg.norm(f, axis=-1), 1.0, atol=1e-4)
    tract = f[0, 28:36, 8:56]
    assert np.median(np.abs(tract[..., 1])) > 0.95  # along the columns
    assert np.abs(tract[3:5, :, 1]).min() > 0.9  # its two middle rows too


def test_one_gradient_direction_darkens_a_tract_along_it_and_the_mean_of_many_does_not():
    """A single diffusion direction shows a tract dark when it runs along the gradient and bright
    across it (grey matter, isotropic, unchanged); averaging directions spread over the sphere
    (how a DTI's shell is read) leaves the tract near the trace, slightly above it."""
    tissue = _tract_slice()
    sub = np.ones(tissue.shape, np.float32)

    def read(directions):
        return appearance.directional_diffusion(np.random.default_rng(1), sub, tissue, 1000.0, 1.0, directions)
    along, across = read([[0.0, 1.0, 0.0]]), read([[1.0, 0.0, 0.0]])
    tract = np.s_[0, 0, 29:35, 8:56]
    assert along[tract].mean() < 0.8 < 1.1 < across[tract].mean()
    assert np.allclose(along[0, 0, :20], 1.0) and np.allclose(across[0, 0, :20], 1.0)
    g = np.random.default_rng(2).normal(size=(64, 3))
    spread = read(g / np.linalg.norm(g, axis=1, keepdims=True))
    assert 0.97 < spread[tract].mean() < 1.15 and spread[tract].std() < 0.25 * across[tract].std() + 0.02


def _fitted_ratio(b: float, snr: float, seed: int = 0) -> float:
    """CSF over white matter on an ADC map fitted from a 64x64 slice, half CSF (ADC 3.0, T2-bright
    b=0) and half white matter (0.7)."""
    s0 = np.ones((1, 64, 64), np.float32)
    s0[..., 32:] = 2.0
    adc = np.full((1, 64, 64), 0.7, np.float32)
    adc[..., 32:] = 3.0
    proto = replace(S.CLASS_PROTOCOLS["ADC"](np.random.default_rng(seed), "ADC"), b=b, snr=snr)
    fitted = artefacts.fitted_adc(np.random.default_rng(seed), s0, s0 * np.exp(-b / 1000 * adc), proto,
                                  np.ones(s0.shape, bool))
    return float(np.median(fitted[0, 8:56, 40:56]) / np.median(fitted[0, 8:56, 8:24]))


def test_adc_maps_are_fitted_so_csf_sinks_towards_the_noise_floor_at_high_b():
    """A map fitted at b=500 with little noise keeps CSF's ADC about 4.3 times white matter's; at
    b=1600 and a grainy b=0, CSF's diffusion-weighted signal is under the noise floor, its fitted
    ADC falls (as on the real Canon DTI's map): the ratio drops well below. Crisp maps with CSF
    at its true ADC whatever the b were all the simulator drew until session 32."""
    assert 3.8 < _fitted_ratio(500.0, 200.0) < 4.8
    assert _fitted_ratio(1600.0, 8.0) < 3.0
    rng = np.random.default_rng(4)
    for _ in range(5):
        slices, _ = S.render(rng, make_phantom(0), S.CLASS_PROTOCOLS["ADC"](rng, "ADC"), 3, stripped=False, storage=False)
        assert np.isfinite(slices).all() and slices.min() >= 0 and slices.max() <= 10000


def test_fa_maps_join_the_open_set_with_bright_white_matter():
    """Every DTI exports an FA map; a real one was named ADC (0.79) by 0.7.0. The open set now
    draws FA maps: values in [0, 1], white matter far above cortex and CSF."""
    rng = np.random.default_rng(0)
    protos = [S._other(rng, "brain") for _ in range(400)]
    fa = next(p for p in protos if p.kind == "fa")
    assert fa.label == "other" and fa.epi and fa.fat_sat == 1.0
    lut = S.tissue_signal(rng, fa, S.draw_tissue_params(rng, fa.field))
    wm, gm, csf = (lut[TISSUE_INDEX[t]] for t in ("wm", "gm", "csf"))
    assert wm > 2 * gm > 2 * csf
    slices, _ = S.render(rng, make_phantom(0), fa, 4, stripped=False, storage=False)
    assert 0 <= slices.min() and slices.max() <= 1.0


def _head_over_neck() -> S.Anatomy:
    """1 mm map: a neck of lumped soft tissue (z < 60) under a head whose brain fills z 65-95."""
    tissue = np.full((40, 40, 100), TISSUE_INDEX["head_soft"], np.uint8)
    tissue[10:30, 10:30, 65:96] = TISSUE_INDEX["wm"]
    return S.Anatomy("head-over-neck", "brain", tissue, np.eye(4))


def test_2d_brain_series_cover_the_brain_and_3d_volumes_the_whole_map():
    anat = _head_over_neck()
    normal, centre = np.array([0.0, 0.0, 1.0]), anat.fg_points.mean(axis=0)
    lowest = {True: [], False: []}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        for coverage in (True, False):
            z = centre[2] + geometry._slice_positions(rng, anat, normal, centre, 12, brain_coverage=coverage)
            lowest[coverage].append(z.min())
    # brain's lower edge less at most BRAIN_COVERAGE_BELOW_MM of skull base, and the face only sometimes
    assert min(lowest[True]) >= 65 - geometry.BRAIN_COVERAGE_BELOW_MM
    assert np.median(lowest[True]) > 65 - 0.75 * geometry.BRAIN_COVERAGE_BELOW_MM
    assert min(lowest[False]) < 65 - geometry.BRAIN_COVERAGE_BELOW_MM  # the whole map reaches into the neck
    rng = np.random.default_rng(0)
    proto2d = S.Protocol("T2w", "tse_t2", "se", is3d=False)
    drawn = [geometry._brain_coverage(rng, anat, proto2d) for _ in range(400)]
    assert 0.75 < np.mean(drawn) < 0.95
    assert not any(geometry._brain_coverage(rng, anat, S.Protocol("T1w", "mprage", "mprage", is3d=True)) for _ in range(50))


def test_lumped_soft_tissue_is_fat_under_the_skin_and_mostly_muscle_deeper():
    yy, xx = np.mgrid[:96, :96]
    radius = np.hypot(yy - 47.5, xx - 47.5)
    tissue = np.where(radius < 45, TISSUE_INDEX["head_soft"], TISSUE_INDEX["air"]).astype(np.uint8)[None, None]
    lut = np.zeros(len(TISSUE_INDEX), np.float32)
    lut[TISSUE_INDEX["fat"]] = 1.0  # muscle 0: the painted value is the fat fraction
    shell, deep = [], []
    for seed in range(12):
        frac = S._mix_lumped_soft_tissue(np.random.default_rng(seed), np.zeros(tissue.shape, np.float32), tissue, lut, 1.0)[0, 0]
        shell.append(frac[(radius > 42) & (radius < 44)].mean())
        deep.append(frac[radius < 25].mean())
    assert min(shell) > 0.7 and np.mean(deep) < 0.5, (shell, deep)


def test_brain_echo_planar_series_are_axial_stacks():
    """Real diffusion, ADC and BOLD are axial stacks; only 3D volumes are drawn in every plane often."""
    head = make_phantom(0)
    rng = np.random.default_rng(0)
    axial = {label: S.plane_probabilities(head, S.CLASS_PROTOCOLS[label](rng, label))[0] for label in ("DWI", "ADC")}
    assert min(axial.values()) >= 0.9, axial
    mprage = S.Protocol("T1w", "mprage", "mprage", is3d=True)
    tse = S.Protocol("T2w", "tse_t2", "se", is3d=False)
    assert S.plane_probabilities(head, mprage)[0] < S.plane_probabilities(head, tse)[0] < 0.9
    assert S.plane_probabilities(head, S.Protocol("other", "tof", "gre"))[0] == geometry.PLANE_P["tof"][0]
    assert all(abs(sum(p) - 1) < 1e-9 for p in geometry.PLANE_P.values())


def test_simulated_bold_has_the_bright_csf_of_real_bold():
    """Real single BOLD volumes show CSF brighter than grey matter (long T2*, inflow); a simulated
    BOLD whose CSF was darker than grey matter looked like a b=1000 diffusion image instead."""
    ratios, te = [], {1.5: [], 3.0: []}
    for seed in range(300):
        rng = np.random.default_rng(seed)
        proto = S._other(rng, "brain")
        if proto.kind != "fmri":
            continue
        te[proto.field].append(proto.te)
        s = S.tissue_signal(rng, proto, S.draw_tissue_params(rng, proto.field))
        ratios.append(s[TISSUE_INDEX["csf"]] / s[TISSUE_INDEX["gm"]])
    assert len(ratios) > 20 and np.median(ratios) > 1.05, np.percentile(ratios, [10, 50, 90])
    assert min(te[1.5]) >= 40 and max(te[3.0]) <= 40


def test_body_fields_of_view_include_organ_targeted_ones_and_brain_ones_do_not():
    """A third of body series are prostate-sized (PI-RADS: 12-20 cm), the rest trunk surveys."""
    from bidsapp.train.phantom import make_pelvis_phantom

    pelvis, head = make_pelvis_phantom(0), make_phantom(0)
    rng = np.random.default_rng(5)
    body = np.array([S.draw_fov(rng, pelvis) for _ in range(600)])
    brain = np.array([S.draw_fov(rng, head) for _ in range(200)])
    assert 0.25 < np.mean(body < 240) < 0.45
    assert body.min() >= 140 and body.max() <= 420 and np.mean(body > 300) > 0.3
    assert brain.min() >= 200 and brain.max() <= 260


def test_organ_targeted_pelvis_series_are_centred_on_the_prostate_and_cover_it():
    """A prostate-sized field of view is planned on the gland (as ProstateX's 19 x 3 mm T2 is);
    a trunk survey lands anywhere in the pelvis. Brains and maps without organs are never targeted."""
    import nibabel as nib

    from bidsapp.train import geometry
    from bidsapp.train.phantom import make_pelvis_phantom

    pelvis = make_pelvis_phantom(0)
    gland = np.argwhere(pelvis.tissue == TISSUE_INDEX["prostate"]).mean(axis=0)
    np.testing.assert_allclose(pelvis.organ_centres["prostate"], nib.affines.apply_affine(pelvis.affine, gland), atol=3)
    proto = S.CLASS_PROTOCOLS["body-T2w"](np.random.default_rng(0), "body-T2w")
    shown = {}
    for fov in (180.0, 350.0):
        per_series = []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            geo = geometry.plan_geometry(rng, pelvis, proto, 6, "axial", fov, target=geometry.draw_target(rng, pelvis, fov))
            tissue = geometry.sample_tissue_slices(rng, pelvis, proto, geo)
            per_series.append(np.mean([(t == TISSUE_INDEX["prostate"]).any() for t in tissue]))
        shown[fov] = np.mean(per_series)
    assert shown[180.0] > 0.55 and shown[180.0] > 1.8 * shown[350.0]
    rng = np.random.default_rng(1)
    assert geometry.draw_target(rng, make_phantom(0), 180.0) is None
    assert geometry.draw_target(rng, S.Anatomy("slab", "body", pelvis.tissue, pelvis.affine), 180.0) is None
    assert geometry.draw_target(rng, pelvis, 300.0) is None


def test_reduced_phase_fields_of_view_cut_body_series_along_one_axis_only():
    """ProstateX's diffusion series are 128 x 84: body series are often a strip of the body."""
    from bidsapp.train import geometry

    img = np.ones((3, 100, 100), np.float32)  # 250 mm at 2.5 mm
    rng = np.random.default_rng(0)
    shapes = [geometry.crop_phase_fov(rng, img, "body", 2.5).shape for _ in range(400)]
    cut = [s for s in shapes if s != img.shape]
    low = geometry.PHASE_FOV["fraction"][0]
    assert abs(len(cut) / len(shapes) - geometry.PHASE_FOV["p"]) < 0.08
    assert all(s[0] == 3 and min(s[1:]) >= 100 * low - 1 and max(s[1:]) == 100 for s in cut)
    assert {s[1] < 100 for s in cut} == {True, False}  # rows or columns
    assert all(geometry.crop_phase_fov(rng, img, "brain", 2.5).shape == img.shape for _ in range(50))
    ramp = np.broadcast_to(np.arange(100, dtype=np.float32), (3, 100, 100))
    kept = next(c for c in (geometry.crop_phase_fov(rng, ramp, "body", 2.5) for _ in range(50)) if c.shape[2] < 100)
    assert abs(kept[0, 0].mean() - 49.5) <= 1  # centred
    # a prostate-sized field of view (150 mm at 1.5 mm) keeps at least PHASE_FOV["min_mm"]
    small = [geometry.crop_phase_fov(rng, img, "body", 1.5).shape for _ in range(200)]
    assert min(min(s[1:]) for s in small) == int(geometry.PHASE_FOV["min_mm"] / 1.5)


def _brain_cube() -> S.Anatomy:
    """1 mm map: a 60 mm cube of white matter in air (skull stripping keeps all of it)."""
    tissue = np.full((80, 80, 80), TISSUE_INDEX["air"], np.uint8)
    tissue[10:70, 10:70, 10:70] = TISSUE_INDEX["wm"]
    return S.Anatomy("cube", "brain", tissue, np.eye(4))


def test_partial_slabs_cut_stripped_brains_with_a_straight_edge_across_the_slices(monkeypatch):
    anat, proto = _brain_cube(), S.Protocol("T2w", "tse_t2", "se", is3d=False, thickness=2.0)
    removed, crossing = [], 0
    for seed in range(12):
        shown = {}
        for p in (0.0, 1.0):  # same draws up to the cut: the rendering with and without it
            monkeypatch.setitem(S.PARTIAL_SLAB, "p", p)
            img, geo = S.render(np.random.default_rng(seed), anat, proto, 6, plane="sagittal", fov=100,
                                stripped=True, storage=False)
            shown[p] = img > 0
        assert not (shown[1.0] & ~shown[0.0]).any()  # a cut only removes brain
        cut = shown[0.0] & ~shown[1.0]
        removed.append(cut.sum() / shown[0.0].sum())
        crossing += any(cut[k].any() and shown[1.0][k].any() for k in range(len(cut)))
    lo, hi = S.PARTIAL_SLAB["cut"]
    assert lo / 2 < np.median(removed) < hi + 0.1
    assert crossing >= 10  # the edge runs through slices that keep brain on its other side


def test_only_stripped_series_are_cut(monkeypatch):
    anat, proto = _brain_cube(), S.Protocol("T2w", "tse_t2", "se", is3d=False, thickness=2.0)
    shown = []
    for p in (0.0, 1.0):
        monkeypatch.setitem(S.PARTIAL_SLAB, "p", p)
        shown.append(S.render(np.random.default_rng(0), anat, proto, 6, plane="sagittal", fov=100,
                              stripped=False, storage=False)[0])
    np.testing.assert_array_equal(shown[0], shown[1])


def _drawn(make, kind: str, tries: int = 400):
    """The first protocol of ``kind`` that ``make(rng)`` draws, with the rng that drew it."""
    for seed in range(tries):
        rng = np.random.default_rng(seed)
        proto = make(rng)
        if proto.kind == kind:
            return rng, proto
    raise AssertionError(f"{kind} never drawn")


def test_calculated_high_b_images_have_no_noise_floor_outside_the_body(monkeypatch):
    """A calculated b1400+ image is a fit: zero outside the body, where an acquired DWI stored
    unmasked (``artefacts.SCANNER_MASKED``) shows Rician noise (session-25 simulator change)."""
    monkeypatch.setitem(artefacts.SCANNER_MASKED, "p", 0.0)
    pelvis = make_pelvis_phantom(0)
    rng, calc = _drawn(lambda r: protocols._body_dwi(r, "body-DWI"), "body_dwi_calc")
    assert calc.computed and calc.b >= 1400 and calc.b0_mix == 0.0
    acquired = replace(calc, kind="body_dwi", computed=False)
    for proto, floor in ((calc, False), (acquired, True)):
        img, _ = S.render(np.random.default_rng(5), pelvis, proto, 3, plane="axial", fov=420.0, storage=False)
        zeros = float((img == 0).mean())
        assert (zeros == 0) == floor and (floor or zeros > 0.1), (proto.kind, zeros)


def test_single_shot_t2_is_blurred_along_one_axis_only():
    """HASTE/SSFSE: T2 decay over one long echo train widens the point spread along phase, not
    along read; a multi-shot TSE is not blurred."""
    rng, haste = _drawn(lambda r: protocols._body_t2(r, "body-T2w"), "haste")
    assert haste.single_shot and not haste.is3d
    img = np.zeros((1, 64, 64), np.float32)
    img[0, 32, 32] = 1.0
    mask = np.ones_like(img, bool)
    quiet = dict(snr=1e9)
    out = artefacts._artefacts(np.random.default_rng(1), img, replace(haste, **quiet), mask, "body", bias_corrected=True)
    tse = artefacts._artefacts(np.random.default_rng(1), img, replace(haste, single_shot=False, **quiet), mask,
                               "body", bias_corrected=True)
    spread = lambda a: (int((a[0, :, 32] > 0.2 * a.max()).sum()), int((a[0, 32, :] > 0.2 * a.max()).sum()))
    along = spread(out)
    assert max(along) > min(along), "blur along the phase axis only"
    assert max(along) > max(spread(tse))


def test_asl_m0_joins_the_brain_open_set_proton_density_weighted():
    """ASL's M0 reference (long TR, short TE EPI/GRASE) is "other" on the brain only, and proton
    density weighted: grey matter above white, CSF not black as on a b=1000 DWI (at TR 2-4 s it is
    partly saturated, so it may sit below white matter)."""
    assert OTHER_KINDS["asl_m0"][0] > 0 and OTHER_KINDS["asl_m0"][1] == 0
    drawn = 0
    for seed in range(600):
        rng = np.random.default_rng(seed)
        m0 = S._other(rng, "brain")
        if m0.kind != "asl_m0":
            continue
        drawn += 1
        s = S.tissue_signal(rng, m0, S.draw_tissue_params(rng, m0.field))
        gm, wm, csf = (s[TISSUE_INDEX[n]] for n in ("gm", "wm", "csf"))
        assert m0.label == "other" and m0.epi and gm > wm and csf > 0.3 * wm, (m0, gm, wm, csf)
    assert drawn > 10
