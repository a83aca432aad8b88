"""A simulated validation set kept on disk, so that its simulation is paid once per simulator.

The open-set threshold is set by the upper tail of the simulated "other" series, so it needs a
large validation set (thousands of series, half an hour of CPU to simulate), and comparing models
needs the *same* set for each. The set is a pure function of its parameters and of the code that
simulates and augments it; the file name is a hash of both, so a changed simulator, augmentation
or input geometry never reads a stale set, and an unchanged one never simulates it twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: The code a validation set depends on: the simulator and its tissue tables, the training
#: augmentation applied to it (train.py), and the input geometry (volume.py). Hashing whole files
#: is conservative: an unrelated edit there costs one re-simulation, never a stale set.
_PACKAGE = Path(__file__).resolve().parents[1]
SOURCES = ("train/simulate.py", "train/tissues.py", "train/phantom.py", "train/train.py", "volume.py")


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


def cached_validation_set(folder: Path | None, params: dict, anatomy_dir: str, build: Callable[[], tuple]) -> tuple:
    """``build()``'s (stacks, geometry, labels, kinds), read from ``folder`` when a set with the
    same key is there, else built and written there (atomically: an interrupted write leaves no
    file). ``folder`` None: always build, write nothing."""
    if folder is None:
        return build()
    path = Path(folder) / f"validation-{cache_key(params, anatomy_dir)}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["stacks"], f["geometry"], [str(x) for x in f["labels"]], [str(x) for x in f["kinds"]]
    stacks, geometry, labels, kinds = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    with open(partial, "wb") as f:
        np.savez(f, stacks=stacks, geometry=geometry, labels=np.array(labels), kinds=np.array(kinds),
                 params=np.array(json.dumps(params, sort_keys=True)))
    partial.replace(path)
    return stacks, geometry, labels, kinds
