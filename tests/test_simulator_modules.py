"""The simulator split into modules (issue 44): imports run one way, the validation cache hashes
every piece, and ``simulate`` is exactly the documented composition of the pieces (same random
draws in the same order, so a set drawn with a seed before the split is the same after it)."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bidsapp.train import anatomy, appearance, artefacts, draws, geometry, open_set, protocols, sequences, tissues
from bidsapp.train import simulate as S
from bidsapp.train.label_maps import load_anatomies
from bidsapp.train.phantom import make_pelvis_phantom, make_phantom
from bidsapp.train.validation import SOURCES
from bidsapp.volume import SPEC, geometry_features, normalise_stack

TRAIN = Path(S.__file__).parent


def _imports(module: str) -> set[str]:
    """Sibling modules of bidsapp.train that ``module`` imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse((TRAIN / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {a.name for a in node.names}
    return {m.split(".")[0] for m in out if (TRAIN / f"{m.split('.')[0]}.py").is_file()}


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(m))
    return seen


def test_simulator_imports_run_one_way_and_the_cache_hashes_every_piece():
    modules = [p.stem for p in TRAIN.glob("*.py") if p.stem != "__init__"]
    for m in modules:
        assert m not in set().union(*(_closure(d) for d in _imports(m))), f"{m} is in an import cycle"
    assert "simulate" not in _closure("phantom") | _closure("synthetic_header")
    simulator = _closure("simulate")
    assert {f"train/{m}.py" for m in simulator} <= set(SOURCES), "validation.SOURCES misses a simulator module"


def _render_by_hand(rng, anat, proto, n_slices, stripped=None):
    """``simulate.render`` written out from its pieces, step by step as its docstring lists them."""
    plane = str(rng.choice(list(geometry._PLANES), p=geometry.plane_probabilities(anat, proto)))
    fov = geometry.draw_fov(rng, anat)
    geo = geometry.plan_geometry(rng, anat, proto, n_slices, plane, fov, target=geometry.draw_target(rng, anat, fov))
    scale = np.diag(rng.uniform(0.88, 1.12, size=3))
    tissue = geometry.sample_tissue_slices(rng, anat, proto, geo, scale)
    if stripped is None:
        stripped = artefacts.draw_skull_stripped(rng, anat, proto)
    is_brain, air = tissues._IS_BRAIN, tissues.TISSUE_INDEX["air"]
    if stripped:
        tissue = np.where(is_brain[tissue], tissue, air).astype(np.uint8)
    if proto.flow == "tof":
        tissue = appearance._with_arteries(rng, tissue)
    tp = tissues.draw_tissue_params(rng, proto.field)
    lut = sequences.tissue_signal(rng, proto, tp)
    sub = appearance._mix_lumped_soft_tissue(rng, lut[tissue].astype(np.float32), tissue, lut, geo.res)
    if proto.raw_direction:
        sub = appearance.directional_diffusion(rng, sub, tissue, proto.b, geo.res)
    if proto.seq == "fa":
        field_ = draws._smooth_field(rng, tissue.shape[2:], 4, 1.0)[None, None]
        sub = np.where(np.isin(tissue, tissues._idx("wm")), np.clip(sub * (1.0 + 0.5 * field_), 0.2, 0.95), sub)
        scalp = ~is_brain[tissue] & (tissue != air)
        sub = np.where(scalp, rng.uniform(0.05, 0.7, sub.shape).astype(np.float32), sub)
    sub = appearance._tissue_texture(rng, sub, geo.res, appearance.TEXTURE[anat.region])
    combine = {"mean": np.mean, "min": np.min, "max": np.max}[proto.combine]
    if proto.seq == "adc":
        s0 = sequences.tissue_signal(rng, replace(proto, seq="dwi", b=0.0, b0_mix=0.0), tp)[tissue]
        img = artefacts.fitted_adc(rng, combine(s0, axis=1), combine(s0 * np.exp(-proto.b / 1000 * sub), axis=1), proto,
                                   (tissue != air).any(axis=1))
    else:
        img = combine(sub, axis=1)
        if proto.epi and proto.seq == "gre" and anat.region == "brain":
            img = img * artefacts.bold_dropout(rng, anat, proto, geo, scale)
        img = artefacts._artefacts(rng, img, proto, (tissue != air).any(axis=1), anat.region, geo.res,
                                   bias_corrected=stripped and rng.random() < artefacts.BIAS_CORRECTED_P, stripped=stripped)
    if stripped:
        img[~is_brain[tissue].any(axis=1)] = 0.0
        if rng.random() < artefacts.PARTIAL_SLAB["p"]:
            img[~artefacts.slab_coverage(rng, anat, proto, geo, scale)] = 0.0
    return artefacts._storage(rng, img, stripped), geo


def _protocols():
    """(region, protocol) of every class's generator and every open-set kind of each region."""
    for i, (label, generator) in enumerate(protocols.CLASS_PROTOCOLS.items()):
        yield "body" if label.startswith("body-") else "brain", generator(np.random.default_rng([1, i]), label)
    for region in ("brain", "body"):
        rng, seen = np.random.default_rng([2, region == "body"]), set()
        while len(seen) < sum(w[region == "body"] > 0 for w in open_set.OTHER_KINDS.values()):
            p = open_set._other(rng, region)
            if p.kind not in seen:
                seen.add(p.kind)
                yield region, p


@pytest.fixture(scope="module")
def anatomies():
    """A phantom head, the same head with SynthSeg's lumped scalp soft tissue (label 507) in place
    of its fat (the only draw that reads it), and a phantom pelvis."""
    head = make_phantom(0)
    fat, soft = tissues.TISSUE_INDEX["fat"], tissues.TISSUE_INDEX["head_soft"]
    lumped = anatomy.Anatomy("lumped", "brain", np.where(head.tissue == fat, soft, head.tissue).astype(np.uint8),
                             head.affine)
    return [head, lumped, make_pelvis_phantom(0)]


def test_render_is_the_composition_of_its_pieces(anatomies):
    for k, (region, proto) in enumerate(_protocols()):
        for seed in range(2):
            anat = anatomies[2] if region == "body" else anatomies[seed]
            drawn, geo = S.render(np.random.default_rng([k, seed]), anat, proto, 3)
            by_hand, geo_by_hand = _render_by_hand(np.random.default_rng([k, seed]), anat, proto, 3)
            np.testing.assert_array_equal(drawn, by_hand, err_msg=f"{proto.kind} seed {seed}")
            np.testing.assert_array_equal(geo.positions, geo_by_hand.positions)


def test_a_training_sample_is_the_composition_of_its_pieces(anatomies):
    """``simulate_sample`` with fixed seeds against its steps written out, for all targets."""
    anatomies = anatomies[1:]  # the lumped-scalp head and the pelvis
    targets = list(S.TARGET_WEIGHTS)
    weights = np.array([S.TARGET_WEIGHTS[t] for t in targets])
    for seed in range(40):
        sample = S.simulate_sample(np.random.default_rng(seed), anatomies, 3, SPEC)
        rng = np.random.default_rng(seed)
        label = str(rng.choice(targets, p=weights / weights.sum()))
        if label == "other":
            region = "body" if rng.random() < 0.3 else "brain"
        else:
            region = "body" if label.startswith("body-") else "brain"
        pool = [a for a in anatomies if a.region == region]
        anat = pool[rng.integers(len(pool))]
        proto = open_set._other(rng, region) if label == "other" else protocols.CLASS_PROTOCOLS[label](rng, label)
        stripped = artefacts.draw_skull_stripped(rng, anat, proto)
        if anat.region == "brain" and rng.random() < S.LESION_P["stripped" if stripped else "native"]:
            anat = anatomy.with_lesions(rng, anat, kind_p=S.LESION_KIND_P)
        slices, geo = _render_by_hand(rng, anat, proto, 3, stripped)
        slices = geometry.crop_phase_fov(rng, slices, anat.region, geo.res)
        stored = geometry_features(*artefacts.stored_voxel_size(rng, proto, stripped))
        assert (sample.label, sample.protocol) == (label, proto)
        np.testing.assert_array_equal(sample.stack, normalise_stack(slices, geo.res, geo.res, SPEC))
        np.testing.assert_array_equal(sample.geometry, stored)


def test_phantom_anatomies_load_without_the_simulator():
    """The phantom needs only ``anatomy`` and ``tissues``; the label-map loader composes them."""
    assert load_anatomies("phantom", n_phantoms=2)[1].tissue.shape == make_phantom(1).tissue.shape
    assert _imports("phantom") == {"anatomy", "tissues"}
