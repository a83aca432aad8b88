"""Shared fixtures: where the real development data lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MRCLASS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set MRCLASS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_data(shared_data: Path) -> Path:
    real = shared_data / "real"
    if not (real / "labels.tsv").is_file():
        pytest.skip(f"real development set not found under {real}")
    return real


@pytest.fixture(scope="session")
def anatomy_data(shared_data: Path) -> Path:
    anatomy = shared_data / "anatomy"
    if not anatomy.is_dir():
        pytest.skip(f"anatomy label maps not found under {anatomy}")
    return anatomy
