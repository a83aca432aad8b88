"""Every runtime dependency in pyproject.toml is used by the code: an unused one costs every
install and image its size (SimpleITK was 0.27 GB of the image and never imported)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = [*(REPO / "bidsapp").rglob("*.py"), *(REPO / "heuristics").glob("*.py")]

# Distribution name → how the code uses it: ("import", module) or ("tool", executable name).
USE = {
    "numpy": ("import", "numpy"),
    "scipy": ("import", "scipy"),
    "nibabel": ("import", "nibabel"),
    "pydicom": ("import", "pydicom"),
    "heudiconv": ("import", "heudiconv"),
    "dcm2niix": ("tool", "dcm2niix"),
    "torch": ("import", "torch"),
    "monai": ("import", "monai"),
    "jinja2": ("import", "jinja2"),
    "tqdm": ("import", "tqdm"),
    "pybids": ("import", "bids"),
}
PENDING: set[str] = set()  # declared ahead of the code that uses it


def declared() -> list[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps]


def imported_roots() -> set[str]:
    roots = set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def test_every_declared_dependency_is_used():
    roots = imported_roots()
    text = "\n".join(p.read_text(encoding="utf-8") for p in CODE)
    for dist in declared():
        if dist in PENDING:
            continue
        assert dist in USE, f"{dist} is declared but the code has no known use for it"
        kind, name = USE[dist]
        if kind == "import":
            assert name in roots, f"{dist} is declared but nothing imports {name}"
        else:
            assert f'find_tool("{name}")' in text, f"{dist} is declared but {name} is never run"


def test_no_unneeded_heavy_dependencies():
    assert not {"simpleitk", "templateflow"} & set(declared())
    pins = (REPO / "constraints.txt").read_text().lower()
    assert "simpleitk" not in pins and "templateflow" not in pins
