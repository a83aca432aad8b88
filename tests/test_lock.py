"""participants.tsv's lock: exclusive across processes, and no lock file left in the dataset."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from bidsapp.derivatives import add_participants, locked, read_tsv


def _increment(path: str, times: int) -> None:
    for _ in range(times):
        with locked(Path(path)):
            value = int(Path(path).read_text())
            Path(path).write_text(str(value + 1))


def test_lock_is_exclusive_and_leaves_no_file(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_increment, args=(str(counter), 40)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert counter.read_text() == "160"  # no increment lost to a lock held twice
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"]


def test_participants_tsv_without_lock_file(tmp_path):
    add_participants(tmp_path, ["01", "02"])
    assert [r["participant_id"] for r in read_tsv(tmp_path / "participants.tsv")] == ["sub-01", "sub-02"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["participants.tsv"]
