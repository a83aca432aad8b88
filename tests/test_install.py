"""The documented install is CPU-only on any machine: the README's quick start and CI take torch
from PyTorch's CPU index (PyPI's Linux torch is the multi-GB CUDA build). The Dockerfile's
TORCH_INDEX is checked in test_containers.py."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_installs(text: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r"pip install[^&\n]*", text)]


def test_readme_quick_start_installs_cpu_torch():
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    torch, package = pip_installs(quick_start)  # torch alone first, from the CPU index (as CI)
    assert f"--extra-index-url {CPU_INDEX}" in torch and torch.rstrip().endswith(" torch")
    assert all("-c constraints.txt" in cmd for cmd in (torch, package)) and "-e ." in package
    assert "GPU users" in readme and "whl/cu" in readme  # which line a GPU user changes


def test_ci_installs_cpu_torch_before_the_package():
    text = (REPO / ".ci" / "run").read_text()
    assert f"TORCH_INDEX={CPU_INDEX}" in text
    installs = pip_installs(text)
    assert '--extra-index-url "$TORCH_INDEX"' in installs[0] and installs[0].rstrip().endswith(" torch")
    assert all("-c constraints.txt" in cmd for cmd in installs)
    assert "-e '.[test]'" in installs[-1]
