#!/usr/bin/env python3
"""Accuracy on the real development set: runs the evaluation command and keeps its output.

    python benchmarks/accuracy.py --json benchmarks/results/accuracy.json
    python benchmarks/accuracy.py --data DIR -- --weights runs/v2/mrclass.pt   # extra evaluate args

It runs exactly ``mrclass-bids-evaluate DATA --json ...`` (the numbers the README points to) and
stores that command's JSON, its printed report verbatim, the command line and the machine facts
together, so ``render.py`` can quote them in docs/benchmarks.md and check the accuracy bars of
ARCHITECTURE.md section 5.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def run_evaluate(data: Path, extra: list[str]) -> tuple[dict, str]:
    """(evaluate's JSON, its printed report)."""
    with tempfile.TemporaryDirectory(prefix="mrclass-acc-") as tmp:
        out = Path(tmp) / "evaluate.json"
        cmd = [benchlib.tool("mrclass-bids-evaluate"), str(data), "--json", str(out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=benchlib.tool_env())
        if proc.returncode != 0 or not out.is_file():
            sys.exit(f"error: mrclass-bids-evaluate exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text()), proc.stdout


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help=f"real development set (default {benchlib.default_data()})")
    p.add_argument("--json", type=Path, help="write the result as JSON")
    p.add_argument("extra", nargs="*", help="further mrclass-bids-evaluate arguments, after --")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = benchlib.resolve_data(args.data)
    evaluation, report = run_evaluate(data, args.extra)
    shown = ["mrclass-bids-evaluate", benchlib.display_path(data), "--json", "OUT.json", *args.extra]
    result = {"benchmark": "accuracy", "meta": benchlib.machine_info(),
              "config": {"data": benchlib.display_path(data), "command": " ".join(shown)},
              "report_text": report, "evaluation": evaluation}
    print(report, end="")
    benchlib.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
