"""Checks that turn a run its environment dooms into a one-line usage error before any work.

Without them an unwritable output folder or a missing GPU surfaced minutes later, deep in
conversion, as an "internal failure" with a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


def unwritable(path: Path) -> str | None:
    """Why a folder cannot be created or written at ``path``, or None.

    Only the nearest existing ancestor is probed, so nothing is created here. ``os.access``
    answers for read-only mounts even as root (EROFS), whose permission bits it would ignore.
    """
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{path} cannot be a folder: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{path} is not writable by uid {os.getuid()} ({existing} is read-only or belongs to another user)"
    return None


def cuda_problem() -> str | None:
    """Why ``--device cuda`` cannot run here, or None."""
    import torch

    if torch.cuda.is_available():
        return None
    why = "this torch is a CPU-only build" if torch.version.cuda is None else "torch sees no CUDA GPU"
    return f"--device cuda: {why}; use --device cpu or auto"
