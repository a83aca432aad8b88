"""Tissue MR parameters, the label-map → tissue tables of every anatomy source, and the per-image
draw of tissue parameters around them (``draw_tissue_params``).

Values are centres of wide random ranges (the simulator jitters them 15-25% per image).
T1/T2/T2* in ms, ADC in 1e-3 mm²/s, PD relative to CSF. Sources (see docs/simulator.md):
Stanisz 2005 MRM 54:507 (brain, muscle at 1.5/3 T), Gold 2004 AJR 183:343 (muscle), de Bazelaire 2004 Radiology 230:652 (body,
fat, marrow at 1.5/3 T), Lu 2004/2005 (blood, CSF), Peters 2007 (T2*), Helenius 2002 (ADC),
Jafar 2016 (body ADC), BrainWeb (Kwan 1999) PD values. ``ve``: extracellular volume that gadolinium
reaches (0 behind an intact blood-brain barrier); ``vp``: effective blood volume (brain parenchyma
0.3-0.5%, far below its anatomical 2-4%: water exchange limits how much intravascular agent relaxes
tissue water, and normal parenchyma brightens only a few percent after gadolinium; larger values
made contrast-enhanced images differ from native ones by a GM/WM contrast change that real T1w
scans of weak native contrast imitate); ``supply``: which blood pool
feeds it ("a" arterial, "v" portal/venous) for the body phases; ``fat``: fat fraction (Dixon, fat-sat);
``ex``: share of the urinary (excreted) gadolinium concentration it holds: urine in the renal
collecting systems and the bladder, which only the delayed phase shows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Tissue:
    pd: float
    t1_15: float
    t1_3: float
    t2_15: float
    t2_3: float
    t2s_3: float
    adc: float
    ve: float = 0.0
    vp: float = 0.0
    fat: float = 0.0
    supply: str = "a"
    ex: float = 0.0
    flow: bool = False  # flowing blood: flow voids on spin echo, inflow on short-TR gradient echo


_FLUID = Tissue(1.0, 3000, 3200, 800, 700, 400, 3.0)

TISSUES: dict[str, Tissue] = {
    "air": Tissue(0.0, 1000, 1000, 1, 1, 1, 0.0),
    "csf": Tissue(1.0, 4000, 3800, 1200, 1100, 800, 3.1),
    "gm": Tissue(0.80, 1120, 1600, 95, 99, 66, 0.85, vp=0.005),  # 3 T T1: centre of 1400-1820 (Stanisz 2005 high end)
    "wm": Tissue(0.70, 780, 1084, 72, 69, 53, 0.72, vp=0.003),  # 1.5 T T1: centre of 650-880 (Wansapura 1999, Stanisz 2005)
    "deep_gm": Tissue(0.80, 1000, 1400, 85, 80, 45, 0.75, vp=0.004),
    "fat": Tissue(0.95, 343, 382, 58, 68, 40, 0.02, vp=0.01, fat=0.95),
    # muscle: Stanisz 2005 (1008/1412, 44/50) and Gold 2004 (1130/1420, 35/32), not de Bazelaire 2004's
    # pelvic 856/898: a T1 shorter than white matter's paints muscle brighter than WM on T1w images
    "muscle": Tissue(0.75, 1070, 1415, 40, 40, 25, 1.5, ve=0.10, vp=0.03),
    "skin": Tissue(0.70, 800, 900, 40, 40, 30, 1.0, ve=0.15, vp=0.05, fat=0.1),
    "bone": Tissue(0.05, 500, 550, 5, 5, 2, 0.3),
    "marrow": Tissue(0.90, 549, 586, 49, 49, 30, 0.45, ve=0.10, vp=0.05, fat=0.6),
    "connective": Tissue(0.80, 600, 700, 60, 60, 40, 1.0, ve=0.15, vp=0.03, fat=0.4),
    "dura": Tissue(0.60, 1000, 1100, 60, 60, 40, 1.0, ve=0.40, vp=0.10),
    "vein": Tissue(0.90, 1440, 1930, 150, 120, 22, 2.0, vp=1.0, supply="v", flow=True),
    "artery": Tissue(0.90, 1440, 1930, 250, 200, 60, 2.0, vp=1.0, supply="a", flow=True),
    "choroid": Tissue(0.85, 1200, 1400, 100, 100, 60, 1.5, ve=0.40, vp=0.30),
    "mucosa": Tissue(0.85, 1100, 1300, 150, 140, 50, 1.5, ve=0.50, vp=0.10),
    "vitreous": Tissue(0.98, 3500, 3600, 1000, 900, 600, 2.8),
    "wm_lesion": Tissue(0.80, 1300, 1500, 120, 115, 80, 1.1, vp=0.02),
    "tumour": Tissue(0.85, 1300, 1500, 110, 105, 60, 1.0, ve=0.30, vp=0.10),
    "necrosis": Tissue(0.95, 2500, 2800, 250, 230, 150, 2.2, ve=0.05),
    "oedema": Tissue(0.88, 1400, 1600, 140, 130, 80, 1.4, ve=0.02),
    # body
    "liver": Tissue(0.75, 586, 809, 46, 34, 25, 1.28, ve=0.25, vp=0.12, fat=0.05, supply="v"),
    "spleen": Tissue(0.80, 1057, 1328, 79, 61, 40, 0.85, ve=0.25, vp=0.25),
    "kidney": Tissue(0.85, 1100, 1300, 86, 78, 50, 1.9, ve=0.30, vp=0.30),
    "pancreas": Tissue(0.75, 584, 725, 46, 43, 30, 1.6, ve=0.20, vp=0.15),
    "bowel": Tissue(0.80, 900, 1000, 60, 60, 30, 1.5, ve=0.15, vp=0.06),
    "fluid": _FLUID,
    # urine: fluid until the kidneys excrete gadolinium into it; in the collecting systems at the
    # concentration the kidneys make; in the bladder, 3-5 minutes in, a few jets mixed into the
    # urine already there (a bladder lit up whole is the later excretory phase)
    "urine": replace(_FLUID, ex=1.0),
    "bladder_urine": replace(_FLUID, ex=0.03),
    "lung": Tissue(0.10, 1200, 1300, 40, 35, 2, 2.0),
    # prostate: its peripheral zone (the central gland is drawn as "gland"), brighter than the
    # central gland and than muscle on T2w, as every prostate T2 shows it
    "prostate": Tissue(0.80, 1400, 1597, 120, 110, 50, 1.5, ve=0.20, vp=0.05),
    "soft": Tissue(0.78, 850, 950, 40, 40, 30, 1.3, ve=0.12, vp=0.04, fat=0.05),
    # SynthSeg's extra-cerebral label 507 lumps fat and muscle: render paints it per pixel as a smooth
    # fat/muscle mixture (appearance._mix_lumped_soft_tissue); these values only give it a place in the tables
    "head_soft": Tissue(0.85, 600, 650, 45, 50, 30, 0.8, ve=0.12, vp=0.03, fat=0.5),
    "gland": Tissue(0.80, 700, 800, 60, 55, 35, 1.4, ve=0.20, vp=0.10),
}

#: BrainWeb crisp labels (shared/data/anatomy/brainweb/labels.tsv).
BRAINWEB = {0: "air", 1: "csf", 2: "gm", 3: "wm", 4: "fat", 5: "muscle", 6: "skin", 7: "bone",
            8: "vein", 9: "connective", 10: "dura", 11: "marrow"}

#: SynthSeg training label maps (FreeSurfer LUT; 5xx read off rendered slices).
SYNTHSEG = {
    0: "air", 2: "wm", 41: "wm", 7: "wm", 46: "wm", 16: "wm", 28: "wm", 60: "wm", 85: "wm", 512: "wm",
    3: "gm", 42: "gm", 8: "gm", 47: "gm", 17: "gm", 53: "gm", 18: "gm", 54: "gm",
    10: "deep_gm", 49: "deep_gm", 11: "deep_gm", 50: "deep_gm", 12: "deep_gm", 51: "deep_gm",
    13: "deep_gm", 52: "deep_gm", 26: "deep_gm", 58: "deep_gm",
    4: "csf", 5: "csf", 43: "csf", 44: "csf", 14: "csf", 15: "csf", 24: "csf", 72: "csf",
    136: "choroid", 137: "choroid", 163: "choroid", 164: "choroid",
    25: "wm_lesion", 57: "wm_lesion", 30: "artery", 62: "artery", 514: "vein",
    502: "muscle", 508: "muscle", 530: "muscle", 506: "vitreous", 507: "head_soft", 509: "mucosa",
    511: "skin", 515: "bone", 516: "bone",
}

#: TotalSegmentator "total" task; unlisted organs default to "soft". CT fill labels 250-253; 254 the
#: renal collecting systems (``label_maps._collecting_systems``).
TOTALSEG = {
    0: "air", 1: "spleen", 2: "kidney", 3: "kidney", 4: "fluid", 5: "liver", 6: "bowel", 7: "pancreas",
    8: "gland", 9: "gland", 10: "lung", 11: "lung", 12: "lung", 13: "lung", 14: "lung",
    15: "muscle", 16: "air", 17: "gland", 18: "bowel", 19: "bowel", 20: "bowel", 21: "bladder_urine",
    22: "prostate", 23: "fluid", 24: "fluid", 51: "artery", 52: "artery", 53: "vein", 54: "artery",
    55: "artery", 56: "artery", 57: "artery", 58: "artery", 59: "vein", 60: "vein", 61: "artery",
    62: "vein", 63: "vein", 64: "vein", 65: "artery", 66: "artery", 67: "vein", 68: "vein",
    79: "wm", 80: "muscle", 81: "muscle", 82: "muscle", 83: "muscle", 84: "muscle", 85: "muscle",
    86: "muscle", 87: "muscle", 88: "muscle", 89: "muscle", 90: "gm", 116: "marrow", 117: "connective",
    250: "fat", 251: "soft", 252: "marrow", 253: "air", 254: "urine",
    **{i: "marrow" for i in range(25, 51)},  # sacrum, vertebrae
    **{i: "marrow" for i in range(69, 79)},  # humerus, scapula, clavicle, femur, hip
    **{i: "bone" for i in range(91, 116)},  # skull, ribs
}

#: Labels of the lesions the simulator paints into brains (outside every atlas's range).
LESION_LABELS = {240: "tumour", 241: "necrosis", 242: "oedema", 243: "csf", 244: "wm_lesion"}

TISSUE_NAMES: tuple[str, ...] = tuple(TISSUES)
TISSUE_INDEX: dict[str, int] = {n: i for i, n in enumerate(TISSUE_NAMES)}

#: Tissues that belong to the brain proper (kept by simulated skull stripping).
BRAIN_TISSUES = {"csf", "gm", "wm", "deep_gm", "choroid", "wm_lesion", "tumour", "necrosis", "oedema"}


# ------------------------------------------- per-tissue vectors (TISSUE_NAMES order) and per-image draws
N_TISSUES = len(TISSUE_NAMES)
_T = {name: np.array([getattr(TISSUES[n], name) for n in TISSUE_NAMES], np.float64)
      for name in ("pd", "t1_15", "t1_3", "t2_15", "t2_3", "t2s_3", "adc", "ve", "vp", "fat", "ex")}
_ARTERIAL = np.array([TISSUES[n].supply == "a" for n in TISSUE_NAMES])
_FLOW = np.array([TISSUES[n].flow for n in TISSUE_NAMES])
_IS_BRAIN = np.array([n in BRAIN_TISSUES for n in TISSUE_NAMES])
#: Tissues whose macromolecules saturate under magnetisation-transfer pulses (TOF background suppression).
_MT_SUPPRESSED = np.isin(TISSUE_NAMES, ("gm", "wm", "deep_gm", "wm_lesion", "muscle"))


def _idx(*names: str) -> np.ndarray:
    return np.array([TISSUE_INDEX[n] for n in names])


@dataclass
class TissueParams:
    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    t2s: np.ndarray
    adc: np.ndarray


def draw_tissue_params(rng, field_t: float, jitter: float = 0.2, tissue_jitter: float = 0.05) -> TissueParams:
    """Per-image tissue parameters around the literature values.

    Each parameter gets one shared factor (±``jitter``: field strength, method and population
    differences move all tissues together) times a small per-tissue factor (±``tissue_jitter``).
    Independent ±20% per tissue would swap white and grey matter T1 at 1.5 T (a 27% gap) and
    teach the network T1w images with inverted contrast."""
    def j(v):
        return v * rng.uniform(1 - jitter, 1 + jitter) * rng.uniform(1 - tissue_jitter, 1 + tissue_jitter, size=v.shape)
    t1 = _T["t1_3"] if field_t >= 2 else _T["t1_15"]
    t2 = _T["t2_3"] if field_t >= 2 else _T["t2_15"]
    t2s = _T["t2s_3"] * (1.0 if field_t >= 2 else 1.3)
    return TissueParams(j(_T["pd"]), j(t1), j(t2), np.minimum(j(t2s), j(t2)), j(_T["adc"]))
