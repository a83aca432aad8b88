"""Procedural phantoms: tissue maps the package can make without any external data.

The head: nested ellipsoids (scalp, fat, skull with marrow, CSF, cortex, white matter) whose
boundaries are perturbed by smooth noise so the cortex folds, plus ventricles with choroid plexus,
deep grey nuclei, eyes, a superior sagittal sinus and dura. It drives the bundled example study
and adds shape variety to training. The male pelvis (``make_pelvis_phantom``) stands in for the
body anatomy the shipped label maps lack. Neither is meant to be anatomically exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import Anatomy
from .tissues import TISSUE_INDEX

SHAPE = (160, 192, 168)  # x (R), y (A), z (S) at 1 mm


def _ellipsoid_distance(shape, centre, radii) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    return np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)))


def make_phantom(seed: int = 0) -> Anatomy:
    rng = np.random.default_rng(seed)
    c = np.array(SHAPE) / 2 + np.array([0, 0, 8])
    head = np.array([68, 88, 78]) * rng.uniform(0.93, 1.07, 3)
    d = _ellipsoid_distance(SHAPE, c, head)
    noise = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.5)
    noise /= noise.std()
    t = np.full(SHAPE, TISSUE_INDEX["air"], np.uint8)
    layers = [(1.0, "skin"), (0.965, "fat"), (0.93, "bone"), (0.915, "marrow"), (0.895, "bone"),
              (0.875, "dura"), (0.865, "csf")]
    for r, tissue in layers:
        t[d <= r] = TISSUE_INDEX[tissue]
    t[d + 0.012 * noise <= 0.845] = TISSUE_INDEX["gm"]
    # gyri: white matter reaches out in fingers, sulci (CSF) reach in from the surface
    t[(d + 0.07 * noise <= 0.74) & (d <= 0.82)] = TISSUE_INDEX["wm"]
    t[(d - 0.05 * noise >= 0.80) & (d <= 0.845)] = TISSUE_INDEX["csf"]
    # the brain sits on a flat skull base: below it, soft tissue and muscle of the neck
    below = np.ogrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]][2] < c[2] - 0.55 * head[2]
    t[(d <= 1.0) & below] = TISSUE_INDEX["muscle"]
    for side in (-1, 1):
        vent = _ellipsoid_distance(SHAPE, c + [side * 10, 2, 8], [7, 30, 11])
        t[vent <= 1] = TISSUE_INDEX["csf"]
        t[_ellipsoid_distance(SHAPE, c + [side * 9, -4, 2], [2.5, 6, 3]) <= 1] = TISSUE_INDEX["choroid"]
        t[_ellipsoid_distance(SHAPE, c + [side * 20, 4, -4], [7, 11, 8]) <= 1] = TISSUE_INDEX["deep_gm"]
        t[_ellipsoid_distance(SHAPE, c + [side * 30, 0.8 * head[1], -0.35 * head[2]], [11, 11, 11]) <= 1] = TISSUE_INDEX["vitreous"]
    midline = np.abs(np.arange(SHAPE[0]) - c[0])[:, None, None] <= 2.5
    t[midline & (d > 0.85) & (d <= 0.875)] = TISSUE_INDEX["vein"]  # superior sagittal sinus
    t[midline & (d <= 0.845) & (t == TISSUE_INDEX["gm"])] = TISSUE_INDEX["csf"]  # interhemispheric fissure
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -np.array(SHAPE) / 2
    return Anatomy(f"phantom/{seed}", "brain", t, affine)


PELVIS_SHAPE = (240, 180, 160)  # x (R), y (A), z (S) at PELVIS_MM
PELVIS_MM = 1.5


@dataclass
class _Canvas:
    """The pelvis being drawn: world coordinates in mm (broadcastable axes), smooth noise that
    perturbs boundaries, and the tissue map each ``put`` paints over."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    noise: np.ndarray
    tissue: np.ndarray

    @classmethod
    def blank(cls, rng) -> _Canvas:
        x, y, z = (((np.arange(n) - n / 2) * PELVIS_MM).reshape([-1 if i == k else 1 for i in range(3)])
                   for k, n in enumerate(PELVIS_SHAPE))
        noise = ndimage.gaussian_filter(rng.normal(size=PELVIS_SHAPE), 4.0)
        noise /= noise.std()
        return cls(x, y, z, noise, np.full(PELVIS_SHAPE, TISSUE_INDEX["air"], np.uint8))

    def put(self, mask, tissue: str) -> None:
        self.tissue[np.broadcast_to(mask, PELVIS_SHAPE)] = TISSUE_INDEX[tissue]

    def is_(self, tissue: str) -> np.ndarray:
        return self.tissue == TISSUE_INDEX[tissue]

    def ellipsoid(self, cx, cy, cz, rx, ry, rz) -> np.ndarray:
        return ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 + ((self.z - cz) / rz) ** 2

    def bone(self, outer, inner) -> None:
        """Cortex around marrow."""
        self.put(outer, "bone")
        self.put(inner, "marrow")


@dataclass(frozen=True)
class _Frame:
    """Body size and level that every structure is placed by: half-widths ``a`` (left-right,
    varying with height) and ``b`` (front-back), and the height ``zf`` of the femoral heads."""

    a: np.ndarray
    b: float
    zf: float


def make_pelvis_phantom(seed: int = 0) -> Anatomy:
    """A procedural male pelvis: the body anatomy the shipped label maps lack.

    The only body label map here is one CT of abdomen and pelvis at 3 mm (TotalSegmentator's
    example): one body, its prostate a few voxels, so prostate and bladder MRI (a large share of
    body MRI) had next to nothing to be learned from. Built level by level, as an axial
    prostate MRI shows it: body wall, bony pelvis, then the cavity and its organs, then vessels.
    Perturbed ellipsoids, not an atlas."""
    rng = _pelvis_rng(seed)
    cv, frame = _bony_pelvis(rng)
    _perineum(cv, rng, frame)
    prostate = _pelvic_contents(cv, rng, frame)
    _pelvic_vessels(cv, rng, frame)
    affine = np.diag([PELVIS_MM, PELVIS_MM, PELVIS_MM, 1.0])
    affine[:3, 3] = -np.array(PELVIS_SHAPE) / 2 * PELVIS_MM
    return Anatomy(f"phantom/pelvis{seed}", "body", cv.tissue, affine, organ_centres={"prostate": prostate})


def _pelvis_rng(seed: int):
    return np.random.default_rng([seed, 7])


def _bony_pelvis(rng) -> tuple[_Canvas, _Frame]:
    """The body wall and the bones: the frame the perineum and the organs are placed in."""
    cv = _Canvas.blank(rng)
    frame = _body_wall(cv, rng)
    for side in (-1, 1):
        _hemipelvis(cv, frame, side)
    _sacrum(cv, frame)
    return cv, frame


def _body_wall(cv: _Canvas, rng) -> _Frame:
    """Skin, subcutaneous fat (thicker over the buttocks), muscle with fatty septa."""
    u = rng.uniform
    zf = -u(10, 40)  # femoral head centres: the hips are widest there
    a = 165 * u(0.85, 1.12) * (1 + 0.08 * np.cos((cv.z - zf) / 70))
    b = 115 * u(0.85, 1.2)
    body = (cv.x / a) ** 2 + (cv.y / b) ** 2 + 0.02 * cv.noise
    cv.put(body <= 1.0, "skin")
    cv.put(body <= (1 - 3 / b) ** 2, "fat")
    fat = u(10, 35) * np.where(cv.y < 0, u(1.2, 1.6), 1.0)
    cv.put((cv.x / (a - fat)) ** 2 + (cv.y / (b - fat)) ** 2 + 0.03 * cv.noise <= 1.0, "muscle")
    septa = ndimage.gaussian_filter(rng.normal(size=PELVIS_SHAPE), 10.0)
    septa /= septa.std()
    cv.put(cv.is_("muscle") & (np.abs(septa) < u(0.02, 0.06)), "fat")  # intermuscular fat planes
    return _Frame(a, b, zf)


def _hemipelvis(cv: _Canvas, f: _Frame, side: int) -> None:
    """One side's bones: femoral head under the acetabular roof, neck to the greater trochanter,
    shaft below; iliac wing above; ischial tuberosity behind and pubis in front, lower down."""
    x, y, z, a, b, zf = cv.x, cv.y, cv.z, f.a, f.b, f.zf
    hx, hy = side * 0.52 * a, 0.02 * b
    head = np.sqrt((x - hx) ** 2 + (y - hy) ** 2 + (z - zf) ** 2)
    roof = (head <= 34) & (z > zf - 5) & (np.abs(x) < np.abs(hx) + 5)
    cv.bone(roof, roof & (head <= 30) & (head > 27))
    cv.bone(head <= 24, head <= 21)
    tx = side * 0.8 * a
    along = np.clip((x - hx) / (tx - hx), 0, 1)  # neck: head → trochanter, sloping down
    neck = np.sqrt((x - (hx + along * (tx - hx))) ** 2 + (y - hy) ** 2 + (z - (zf - 18 * along)) ** 2)
    on_neck = (along > 0) & (along < 1)
    cv.bone((neck <= 16) & on_neck, (neck <= 12) & on_neck)
    shaft = np.sqrt((x - side * 0.74 * a) ** 2 + y ** 2)
    cv.bone((shaft <= 15) & (z < zf - 25), (shaft <= 10) & (z < zf - 25))
    # iliac wing: an oblique plate from the sacroiliac joint forward and out to the anterior spine
    x0, y0 = side * 0.22 * a, -0.5 * b
    wx, wy = side * 0.33 * a, 0.65 * b
    along = np.clip(((x - x0) * wx + (y - y0) * wy) / (wx ** 2 + wy ** 2), 0, 1)
    wing = np.sqrt((x - x0 - along * wx) ** 2 + (y - y0 - along * wy) ** 2)
    above = z > zf + 30
    cv.bone((wing <= 8) & above, (wing <= 5) & above)
    isch = cv.ellipsoid(side * 0.3 * a, -0.18 * b, zf - 35, 14, 20, 22)
    cv.bone(isch <= 1.0, isch <= 0.55)
    pubis = (((x - side * 0.17 * a) / (0.16 * a)) ** 2 + ((y - 0.48 * b) / 12) ** 2 <= 1) & (z > zf - 45) & (z < zf + 5)
    cv.bone(pubis, pubis & (((y - 0.48 * b) / 7) ** 2 <= 1))


def _sacrum(cv: _Canvas, f: _Frame) -> None:
    """Sacrum, wide above the hips, narrowing to the coccyx; it curves back going up."""
    x, y, z, b, zf = cv.x, cv.y, cv.z, f.b, f.zf
    sy = -0.5 * b - 0.1 * b * np.clip((z - zf) / 80, -1, 1)
    sac = ((x / np.where(z > zf, 40, 12)) ** 2 + ((y - sy) / np.where(z > zf, 18, 9)) ** 2 <= 1) & (z > zf - 60)
    cv.bone(sac, sac & ((x / np.where(z > zf, 34, 8)) ** 2 + ((y - sy) / np.where(z > zf, 13, 5)) ** 2 <= 1))


def _perineum(cv: _Canvas, rng, f: _Frame) -> None:
    """The fat below the hips that an axial prostate MRI shows around the gland's level.

    ``_body_wall`` fills the body with muscle; below the femoral heads a real pelvis is not a
    muscle ring: the ischioanal fossae are wedges of fat behind and beside the rectum, lined
    laterally by obturator internus on the inner face of the ischium and closed behind by the
    two gluteal muscles, which the natal cleft's fat parts in the midline; in front of the pubis
    lie the fat and spermatic cords of the mons, not muscle. The real ProstateX T2's lower
    slices show that fat (``benchmarks/studies/gland_level.py``: 37% of the stack's foreground
    above 0.5, against a median of 24% simulated without it)."""
    u = rng.uniform
    x, y, z, a, b, zf = cv.x, cv.y, cv.z, f.a, f.b, f.zf
    soft_tissue = ~cv.is_("bone") & ~cv.is_("marrow") & ~cv.is_("skin") & ~cv.is_("air")
    low = z < zf + u(0, 15)
    for side in (-1, 1):
        cx, cy, cz = side * u(0.2, 0.26) * a, -u(0.25, 0.32) * b, zf - u(15, 25)
        fossa = cv.ellipsoid(cx, cy, cz, u(0.15, 0.2) * a, u(0.3, 0.36) * b, u(50, 65)) + 0.08 * cv.noise
        cv.put(soft_tissue & low & (fossa <= 1.0), "fat")  # gluteus maximus stays behind it
        lateral = side * (x - cx) > 0  # obturator internus: the fossa's lateral wall
        cv.put(soft_tissue & low & (fossa <= 1.0) & (fossa > u(0.55, 0.7)) & lateral, "muscle")
    cleft = (np.abs(x) < u(4, 10) + 0.15 * np.clip(zf - z, 0, None)) & (y < -u(0.3, 0.45) * b)
    cv.put(soft_tissue & (z < zf - u(10, 25)) & cleft, "fat")  # natal cleft between the glutei
    mons = (np.abs(x) < u(0.18, 0.28) * a) & (y > 0.45 * b) & (z < zf + u(0, 20))
    cv.put(soft_tissue & mons, "fat")
    cv.put(soft_tissue & mons & (cv.noise > u(1.0, 1.5)), "soft")  # spermatic cords, inside the mons fat


def _pelvic_contents(cv: _Canvas, rng, f: _Frame) -> np.ndarray:
    """The cavity (fat with a levator sling, narrowing to the floor) and what it holds: bladder
    (urine, wall), prostate with its central gland, seminal vesicles, rectum, bowel loops above.
    Returns the prostate's centre (world mm), where a prostate series is planned."""
    u = rng.uniform
    x, y, z, a, b, zf = cv.x, cv.y, cv.z, f.a, f.b, f.zf
    cw = 0.38 * a * np.clip(1 + (z - zf) / 150, 0.55, 1.3)
    cavity = (x / cw) ** 2 + ((y - 0.05 * b) / (0.42 * b)) ** 2 + 0.05 * cv.noise
    inside = (cavity <= 1.0) & ~cv.is_("bone") & ~cv.is_("marrow")
    cv.put(inside, "fat")
    cv.put(inside & (z < zf) & (np.abs(cavity - u(0.55, 0.75)) < 0.05), "muscle")  # levator ani
    hips = (z > zf - 45) & (z < zf + 25)  # obturator internus lines the side walls at hip level
    cv.put(inside & hips & (np.abs(x) > u(0.65, 0.8) * cw) & (cavity > u(0.5, 0.65)), "muscle")
    cv.put(inside & (cv.noise > u(1.4, 2.0)), "soft")  # vessels and strands in the fat
    # the gland sits behind the symphysis between the femoral heads, the bladder on top of it
    rz = u(15, 22)
    zp = zf - u(0, 20)
    rb = (u(25, 60), u(20, 45), u(20, 45))
    zb = zp + 0.7 * rz + rb[2]
    bladder = cv.ellipsoid(0, 0.2 * b, zb, *rb)
    cv.put(bladder <= 1.15, "muscle")
    cv.put(bladder <= 1.0, "bladder_urine")
    centre = np.array([0.0, 0.08 * b, zp])
    prostate = cv.ellipsoid(*centre, u(18, 26), u(13, 18), rz) + 0.05 * cv.noise
    cv.put(prostate <= 1.0, "prostate")
    cv.put(prostate <= u(0.3, 0.55), "gland")
    for side in (-1, 1):  # seminal vesicles: behind the bladder base, above the prostate
        cv.put(cv.ellipsoid(side * 18, -0.05 * b, zp + rz + 4, u(14, 22), u(5, 8), u(6, 10)) <= 1, "fluid")
    rectum = np.sqrt(x ** 2 + (y + 0.2 * b) ** 2)
    cv.put((rectum <= u(13, 20)) & (z < zb + 40), "bowel")
    cv.put((rectum <= u(4, 9)) & (z < zb + 40), "air" if rng.random() < 0.5 else "fluid")
    for _ in range(int(rng.integers(16, 28))):  # small bowel / sigmoid fill the cavity above the bladder
        c = (u(-0.35, 0.35), u(-0.3, 0.4) * b, u(zb + rb[2] * 0.5, 120))
        loop = cv.ellipsoid(c[0] * cw, c[1], c[2], u(12, 28), u(12, 28), u(15, 40))
        cv.put((loop <= 1.0) & (cavity <= 1.1) & (bladder > 1.15), "bowel")
    return centre


def _pelvic_vessels(cv: _Canvas, rng, f: _Frame) -> None:
    """External iliac artery and vein, becoming the femoral vessels in front of the hip."""
    for side in (-1, 1):
        vx = side * np.where(cv.z > f.zf, 0.36, 0.45) * f.a
        vy = np.where(cv.z > f.zf, 0.3, 0.42) * f.b
        for vessel, offset in (("artery", 0.0), ("vein", side * 10.0)):
            cv.put((cv.x - vx - offset) ** 2 + (cv.y - vy) ** 2 <= rng.uniform(4, 6) ** 2, vessel)
