"""Find the external programs the App runs (dcm2niix) even when the venv is not activated.

``pip install`` puts dcm2niix next to the Python interpreter; a user who calls
``.venv/bin/mrclass-bids`` directly has that folder nowhere on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def search_path() -> str:
    """PATH, followed by the running interpreter's own bin directory."""
    own_bin = str(Path(sys.executable).parent)
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts + ([own_bin] if own_bin not in parts else []))


def find_tool(name: str) -> str:
    """Absolute path of ``name``; a RuntimeError that says how to install it otherwise."""
    exe = shutil.which(name, path=search_path())
    if exe is None:
        raise RuntimeError(f"{name} not found on PATH or beside {sys.executable} (pip install {name})")
    return exe
