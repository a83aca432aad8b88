"""Per-series progress while heudiconv runs in-process: the verdict files are the signal."""

from __future__ import annotations

import time

from bidsapp.convert import counting_files


def test_counting_files_reports_each_new_verdict(tmp_path):
    seen: list[int] = []
    with counting_files(tmp_path, seen.append, interval=0.02):
        for i in range(3):
            (tmp_path / f"{i}.json").write_text("{}")
            time.sleep(0.1)
    assert seen[-1] == 3
    assert seen == sorted(seen) and {1, 2} <= set(seen)


def test_counting_files_without_a_reporter_is_a_no_op(tmp_path):
    with counting_files(tmp_path, None):
        (tmp_path / "a.json").write_text("{}")
