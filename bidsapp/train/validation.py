"""The simulated validation set that sets a model's open-set threshold, kept on disk on request.

The threshold is set by the upper tail of the simulated "other" series, so it needs a large set
(thousands of series, half an hour of CPU to simulate), and comparing models needs the *same* set
for each. The set is a pure function of its parameters and of the code that simulates and
augments it; a cached file is named by a hash of both, so a changed simulator, augmentation or
input geometry never reads a stale set, and an unchanged one is never simulated twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..volume import InputSpec
from . import simulate
from .augment import augment
from .label_maps import split_heads, training_anatomies
from .protocols import Protocol

#: The code a validation set depends on, relative to the package: every module of the simulator
#: (``simulate`` and the pieces it composes, tissue tables and phantoms included), the
#: augmentation, this module and the input geometry. Whole files are hashed: an unrelated edit
#: there costs one re-simulation, never a stale set.
_PACKAGE = Path(__file__).resolve().parents[1]
SIMULATOR = ("simulate", "tissues", "draws", "anatomy", "phantom", "label_maps", "protocols", "open_set",
             "sequences", "geometry", "appearance", "artefacts")
SOURCES = (*(f"train/{m}.py" for m in SIMULATOR), "train/augment.py", "train/validation.py", "volume.py")


def validation_set(anatomy_dir: str, n: int, seed: int, spec: InputSpec, holdout_heads: int = 0,
                   cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(stacks, geometry, labels, protocol kinds) of ``n`` fixed simulated series at inference
    geometry (``spec.n_slices`` slices), passed through the training augmentation once: the
    threshold should be chosen on images that differ from the simulator's clean look the way real
    scanners do, not on the easiest possible inputs. With ``holdout_heads``, brain series come
    from the heads training does not see (``label_maps.split_heads``); body series from every body
    map. With ``cache``, the set is read from that folder when simulated before, else written there."""
    return validation_series(anatomy_dir, n, seed, spec, holdout_heads, cache)[:4]


def validation_series(anatomy_dir: str, n: int, seed: int, spec: InputSpec, holdout_heads: int = 0,
                      cache: Path | None = None):
    """``validation_set``'s four, plus the ``protocols.Protocol`` each series was rendered with: what
    a synthetic header is written from (``synthetic_header``), to calibrate the fused decision on
    the same series and the same cache."""
    params = {"n": n, "seed": seed, "spec": asdict(spec), "holdout_heads": holdout_heads}
    built = cached(cache, params, anatomy_dir, lambda: simulate_set(anatomy_dir, n, seed, spec, holdout_heads))
    if len(built) < 5:
        raise ValueError("this cached validation set was written without its protocols")
    return built


def simulate_set(anatomy_dir: str, n: int, seed: int, spec: InputSpec, holdout_heads: int = 0):
    rng = np.random.default_rng([seed, 12345])
    anatomies = training_anatomies(anatomy_dir)
    if holdout_heads:
        _, held = split_heads(anatomies, holdout_heads)
        anatomies = held + [a for a in anatomies if a.region != "brain"]
    stacks, geometry, labels, kinds, protocols = [], [], [], [], []
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    for _ in tqdm(range(n), desc="simulating validation set", unit="series", mininterval=30, leave=False):
        sample = simulate.simulate_sample(rng, anatomies, spec.n_slices, spec)
        stacks.append(augment(torch.from_numpy(sample.stack)[None])[0].numpy().astype(np.float16))
        geometry.append(sample.geometry)
        labels.append(sample.label)
        kinds.append(sample.protocol.kind)
        protocols.append(sample.protocol)
    torch.random.set_rng_state(generator_state)
    return np.stack(stacks), np.stack(geometry), labels, kinds, protocols


# ------------------------------------------------------------------------------------------ cache
def anatomy_listing(anatomy_dir: str) -> list[tuple[str, int]]:
    """(relative path, size) of every file under the anatomy folder ('phantom': none)."""
    root = Path(anatomy_dir)
    if not root.is_dir():
        return []
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def cache_key(params: dict, anatomy_dir: str) -> str:
    """Hash of the set's parameters, the anatomy files and the simulator's code."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    h.update(json.dumps(anatomy_listing(anatomy_dir)).encode())
    for name in SOURCES:
        h.update((_PACKAGE / name).read_bytes())
    return h.hexdigest()[:16]


def cached(folder: Path | None, params: dict, anatomy_dir: str, build: Callable[[], tuple]) -> tuple:
    """``build()``'s (stacks, geometry, labels, kinds[, protocols]), read from ``folder`` when a set
    with the same key is there, else built and written there (atomically: an interrupted write
    leaves no file). ``folder`` None: always build, write nothing."""
    if folder is None:
        return build()
    path = Path(folder) / f"validation-{cache_key(params, anatomy_dir)}.npz"
    if path.exists():
        with np.load(path) as f:
            read = (f["stacks"], f["geometry"], [str(x) for x in f["labels"]], [str(x) for x in f["kinds"]])
            return read + ((protocols_from_json(f["protocols"]),) if "protocols" in f.files else ())
    built = build()
    stacks, geometry, labels, kinds = built[:4]
    extra = {"protocols": np.array([json.dumps(asdict(p)) for p in built[4]])} if len(built) > 4 else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    with open(partial, "wb") as f:
        np.savez(f, stacks=stacks, geometry=geometry, labels=np.array(labels), kinds=np.array(kinds),
                 params=np.array(json.dumps(params, sort_keys=True)), **extra)
    partial.replace(path)
    return built


def protocols_from_json(rows) -> list[Protocol]:
    """Protocols back from their JSON rows (the key hashes protocols.py: the fields always match)."""
    return [Protocol(**json.loads(str(r))) for r in rows]
