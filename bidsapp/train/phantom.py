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
    (a large share of body MRI) had nothing to be learned from. Ellipsoids and tubes with
    perturbed edges: skin, subcutaneous fat, muscle wall and gluteal muscles, a bony ring with
    marrow, femoral heads, sacrum, bladder (fluid, wall), prostate with a central gland, rectum,
    bowel loops above the bladder, iliac arteries and veins, perivesical fat."""
    rng = np.random.default_rng([seed, 7])
    u = rng.uniform
    x, y, z = (((np.arange(n) - n / 2) * PELVIS_MM).reshape([-1 if i == k else 1 for i in range(3)])
               for k, n in enumerate(PELVIS_SHAPE))
    noise = ndimage.gaussian_filter(rng.normal(size=PELVIS_SHAPE), 4.0)
    noise /= noise.std()
    t = np.full(PELVIS_SHAPE, TISSUE_INDEX["air"], np.uint8)

    def put(mask, tissue):
        t[np.broadcast_to(mask, PELVIS_SHAPE)] = TISSUE_INDEX[tissue]

    zf = -u(30, 50)  # femoral heads: the hips are widest there
    a = 165 * u(0.85, 1.12) * (1 + 0.1 * np.cos((z - zf) / 70))  # body half-widths (mm)
    b = 115 * u(0.85, 1.2)
    body = (x / a) ** 2 + (y / b) ** 2 + 0.02 * noise
    fat = u(12, 40)
    put(body <= 1.0, "skin")
    put(body <= (1 - 3 / b) ** 2, "fat")
    wall = (x / (a - fat)) ** 2 + (y / (b - fat)) ** 2 + 0.03 * noise
    put(wall <= 1.0, "muscle")
    for side in (-1, 1):  # gluteal muscles
        put(((x - side * 0.45 * a) / (0.4 * a)) ** 2 + ((y + 0.55 * b) / (0.38 * b)) ** 2 + 0.05 * noise <= 1, "muscle")
    cavity = (x / (0.42 * a)) ** 2 + ((y - 0.1 * b) / (0.5 * b)) ** 2
    ring = (cavity > 1.0) & (cavity <= u(1.35, 1.6)) & (y < 0.25 * b + 0.1 * z)  # open in front above the pubis
    put(ring, "marrow")
    put(ring & (np.abs(cavity - 1.18) > 0.13), "bone")
    put(cavity <= 1.0, "soft")
    put((cavity <= 0.97) & (noise < u(0.8, 1.6)), "fat")  # perivesical / perirectal fat, soft-tissue strands
    put(((x / 30) ** 2 + ((y + 0.78 * b) / 25) ** 2 <= 1) & (z > -20), "marrow")  # sacrum
    for side in (-1, 1):
        head = np.sqrt((x - side * 0.62 * a) ** 2 + y ** 2 + (z - zf) ** 2)
        put(head <= 25, "bone")
        put(head <= 22, "marrow")
        for vessel, dx in (("artery", 0.36), ("vein", 0.30)):
            put((x - side * dx * a) ** 2 + (y - 0.35 * b) ** 2 <= u(4, 6) ** 2, vessel)
    zb = u(0, 30)
    bladder = (x / u(35, 60)) ** 2 + ((y - 0.25 * b) / u(28, 45)) ** 2 + ((z - zb) / u(30, 50)) ** 2
    put(bladder <= 1.15, "muscle")
    put(bladder <= 1.0, "fluid")
    rz = u(15, 22)
    zp = zb - 45 - rz
    prostate = (x / u(18, 26)) ** 2 + ((y - 0.12 * b) / u(13, 18)) ** 2 + ((z - zp) / rz) ** 2 + 0.05 * noise
    put(prostate <= 1.0, "prostate")
    put(prostate <= u(0.3, 0.55), "gland")
    rectum = np.sqrt(x ** 2 + (y + 0.4 * b) ** 2)
    put(rectum <= u(13, 20), "bowel")
    put(rectum <= u(4, 9), "air" if rng.random() < 0.5 else "fluid")
    for _ in range(int(rng.integers(3, 7))):  # small bowel / sigmoid above the bladder
        c = (u(-0.35, 0.35) * a, u(-0.1, 0.4) * b, u(zb + 30, 110))
        loop = ((x - c[0]) / u(12, 25)) ** 2 + ((y - c[1]) / u(12, 25)) ** 2 + ((z - c[2]) / u(15, 40)) ** 2
        put((loop <= 1.0) & (cavity <= 1.1), "bowel")
    affine = np.diag([PELVIS_MM, PELVIS_MM, PELVIS_MM, 1.0])
    affine[:3, 3] = -np.array(PELVIS_SHAPE) / 2 * PELVIS_MM
    return Anatomy(f"phantom/pelvis{seed}", "body", t, affine)
