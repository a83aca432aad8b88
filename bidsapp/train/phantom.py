"""A procedural head phantom: a tissue map the package can make without any external data.

Nested ellipsoids (scalp, fat, skull with marrow, CSF, cortex, white matter) whose boundaries are
perturbed by smooth noise so the cortex folds, plus ventricles with choroid plexus, deep grey
nuclei, eyes, a superior sagittal sinus and dura. It drives the bundled example study and adds
shape variety to training; it is not meant to be anatomically exact.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .simulate import Anatomy
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


def make_pelvis_phantom(seed: int = 0) -> Anatomy:
    """A procedural male pelvis: the body anatomy the shipped label maps lack.

    The only body label map here is a 9 cm slab of upper abdomen, so prostate and bladder MRI
    (a large share of body MRI) had nothing to be learned from. Built level by level, as an axial
    prostate MRI shows it: subcutaneous fat (thicker over the buttocks) around muscle with fatty
    septa; femoral heads under an acetabular roof, necks to the trochanters, shafts below; iliac
    wings above, pubic symphysis and rami in front and ischial tuberosities behind below; sacrum
    and coccyx; a pelvic cavity narrowing to the floor, filled with fat and levator sling, holding
    the bladder (fluid, wall), seminal vesicles, prostate with its central gland, rectum, bowel
    loops higher up, iliac then femoral vessels. Perturbed ellipsoids, not an atlas."""
    rng = np.random.default_rng([seed, 7])
    u = rng.uniform
    x, y, z = (((np.arange(n) - n / 2) * PELVIS_MM).reshape([-1 if i == k else 1 for i in range(3)])
               for k, n in enumerate(PELVIS_SHAPE))
    noise = ndimage.gaussian_filter(rng.normal(size=PELVIS_SHAPE), 4.0)
    noise /= noise.std()
    t = np.full(PELVIS_SHAPE, TISSUE_INDEX["air"], np.uint8)

    def put(mask, tissue):
        t[np.broadcast_to(mask, PELVIS_SHAPE)] = TISSUE_INDEX[tissue]

    def ellipsoid(cx, cy, cz, rx, ry, rz):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2

    def bone(mask_outer, mask_inner):  # cortex around marrow
        put(mask_outer, "bone")
        put(mask_inner, "marrow")

    zf = -u(10, 40)  # femoral head centres: the hips are widest there
    a = 165 * u(0.85, 1.12) * (1 + 0.08 * np.cos((z - zf) / 70))  # body half-widths (mm)
    b = 115 * u(0.85, 1.2)
    body = (x / a) ** 2 + (y / b) ** 2 + 0.02 * noise
    put(body <= 1.0, "skin")
    put(body <= (1 - 3 / b) ** 2, "fat")
    fat = u(10, 35) * np.where(y < 0, u(1.2, 1.6), 1.0)  # buttocks carry more
    put((x / (a - fat)) ** 2 + (y / (b - fat)) ** 2 + 0.03 * noise <= 1.0, "muscle")
    septa = ndimage.gaussian_filter(rng.normal(size=PELVIS_SHAPE), 10.0)
    septa /= septa.std()
    put((t == TISSUE_INDEX["muscle"]) & (np.abs(septa) < u(0.02, 0.06)), "fat")  # intermuscular fat planes

    # bony pelvis, by level
    for side in (-1, 1):
        hx, hy = side * 0.52 * a, 0.02 * b
        head = np.sqrt((x - hx) ** 2 + (y - hy) ** 2 + (z - zf) ** 2)
        roof = (head <= 34) & (z > zf - 5) & (np.abs(x) < np.abs(hx) + 5)
        bone(roof, roof & (head <= 30) & (head > 27))
        bone(head <= 24, head <= 21)
        tx = side * 0.8 * a
        s = np.clip((x - hx) / (tx - hx), 0, 1)  # neck: head → greater trochanter, sloping down
        neck = np.sqrt((x - (hx + s * (tx - hx))) ** 2 + (y - hy) ** 2 + (z - (zf - 18 * s)) ** 2)
        bone((neck <= 16) & (s > 0) & (s < 1), (neck <= 12) & (s > 0) & (s < 1))
        shaft = np.sqrt((x - side * 0.74 * a) ** 2 + y ** 2)
        bone((shaft <= 15) & (z < zf - 25), (shaft <= 10) & (z < zf - 25))
        # iliac wing: an oblique plate from the sacroiliac joint forward and out to the anterior spine
        x0, y0 = side * 0.22 * a, -0.5 * b
        dx, dy = side * 0.33 * a, 0.65 * b
        s = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx ** 2 + dy ** 2), 0, 1)
        wing = np.sqrt((x - x0 - s * dx) ** 2 + (y - y0 - s * dy) ** 2)
        above = z > zf + 30
        bone((wing <= 8) & above, (wing <= 5) & above)
        isch = ellipsoid(side * 0.3 * a, -0.18 * b, zf - 35, 14, 20, 22)
        bone(isch <= 1.0, isch <= 0.55)
        pubis = (((x - side * 0.17 * a) / (0.16 * a)) ** 2 + ((y - 0.48 * b) / 12) ** 2 <= 1) & (z > zf - 45) & (z < zf + 5)
        bone(pubis, pubis & (((y - 0.48 * b) / 7) ** 2 <= 1))
    sy = -0.5 * b - 0.1 * b * np.clip((z - zf) / 80, -1, 1)  # sacrum curves back going up
    sac = ((x / np.where(z > zf, 40, 12)) ** 2 + ((y - sy) / np.where(z > zf, 18, 9)) ** 2 <= 1) & (z > zf - 60)
    bone(sac, sac & ((x / np.where(z > zf, 34, 8)) ** 2 + ((y - sy) / np.where(z > zf, 13, 5)) ** 2 <= 1))

    # the pelvic cavity: fat with a levator sling, narrowing towards the floor
    cw = 0.38 * a * np.clip(1 + (z - zf) / 150, 0.55, 1.3)
    cavity = (x / cw) ** 2 + ((y - 0.05 * b) / (0.42 * b)) ** 2 + 0.05 * noise
    inside = (cavity <= 1.0) & (t != TISSUE_INDEX["bone"]) & (t != TISSUE_INDEX["marrow"])
    put(inside, "fat")
    put(inside & (z < zf) & (np.abs(cavity - u(0.55, 0.75)) < 0.05), "muscle")  # levator ani
    put(inside & (noise > u(1.4, 2.0)), "soft")  # vessels and strands in the fat
    zb = zf + u(5, 30)
    rb = (u(25, 60), u(20, 45), u(20, 45))
    bladder = ellipsoid(0, 0.2 * b, zb, *rb)
    put(bladder <= 1.15, "muscle")
    put(bladder <= 1.0, "fluid")
    rz = u(15, 22)
    zp = zb - rb[2] - 0.7 * rz
    prostate = ellipsoid(0, 0.08 * b, zp, u(18, 26), u(13, 18), rz) + 0.05 * noise
    put(prostate <= 1.0, "prostate")
    put(prostate <= u(0.3, 0.55), "gland")
    for side in (-1, 1):  # seminal vesicles: behind the bladder base, above the prostate
        put(ellipsoid(side * 18, -0.05 * b, zp + rz + 4, u(14, 22), u(5, 8), u(6, 10)) <= 1, "fluid")
    rectum = np.sqrt(x ** 2 + (y + 0.2 * b) ** 2)
    put((rectum <= u(13, 20)) & (z < zb + 40), "bowel")
    put((rectum <= u(4, 9)) & (z < zb + 40), "air" if rng.random() < 0.5 else "fluid")
    for _ in range(int(rng.integers(16, 28))):  # small bowel / sigmoid fill the cavity above the bladder
        c = (u(-0.35, 0.35), u(-0.3, 0.4) * b, u(zb + rb[2] * 0.5, 120))
        loop = ellipsoid(c[0] * cw, c[1], c[2], u(12, 28), u(12, 28), u(15, 40))
        put((loop <= 1.0) & (cavity <= 1.1) & (bladder > 1.15), "bowel")
    for side in (-1, 1):  # external iliac, then femoral vessels in front of the hip
        vx = side * np.where(z > zf, 0.36, 0.45) * a
        vy = np.where(z > zf, 0.3, 0.42) * b
        for vessel, dx in (("artery", 0.0), ("vein", side * 10.0)):
            put((x - vx - dx) ** 2 + (y - vy) ** 2 <= u(4, 6) ** 2, vessel)
    affine = np.diag([PELVIS_MM, PELVIS_MM, PELVIS_MM, 1.0])
    affine[:3, 3] = -np.array(PELVIS_SHAPE) / 2 * PELVIS_MM
    return Anatomy(f"phantom/pelvis{seed}", "body", t, affine)
