"""What discovery read from each file's header, saved so parallel tasks need not read it again.

Discovery reads a few tags of every file of the tree (``discover._INDEX_TAGS``). In a job array
where each task converts one participant, every task would read every header of the tree again
(4.7 s for 1,649 files; minutes on a network file system with 100,000). With a saved index, a
file's header is read only when the file is new or its size or modification time changed, so
discovery sees what it would see without the index. Elements are kept as stored (raw bytes with
their encoding); a file whose elements cannot be kept that way is simply read every time.

The index holds what the index tags hold (PatientID, StudyDate, UIDs): keep it with scratch
data, not in the output dataset.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from bidsapp.derivatives import atomic_write_text

log = logging.getLogger(__name__)

FORMAT = "mrclass-header-index/2"  # /2: StudyTime joined the index tags (session order); older indexes lack it

#: what discovery makes of one file: (index tags or None, why it is left out or broken, is an image)
Indexed = tuple[Dataset | None, str | None, bool]


def _element_record(elem: DataElement | RawDataElement) -> list | None:
    """[tag, VR, value, form] with form "raw" (the stored bytes as latin-1 text + encoding) or "value"
    (an already converted string or number); None when neither fits."""
    if isinstance(elem, RawDataElement):
        if elem.value is None:
            return [int(elem.tag), elem.VR, None, ["raw", elem.is_implicit_VR, elem.is_little_endian]]
        return [int(elem.tag), elem.VR, bytes(elem.value).decode("latin-1"), ["raw", elem.is_implicit_VR, elem.is_little_endian]]
    value = elem.value
    if value is None or isinstance(value, str | int | float):
        return [int(elem.tag), elem.VR, value, ["value"]]
    return None


def _element(record: list) -> DataElement | RawDataElement:
    tag, vr, value, form = record
    if form[0] == "value":
        return DataElement(Tag(tag), vr, value)
    raw = value.encode("latin-1") if value is not None else None
    return RawDataElement(Tag(tag), vr, len(raw or b""), raw, 0, form[1], form[2])


def _dataset_record(ds: Dataset) -> list | None:
    records = [_element_record(e) for e in ds.elements()]
    return None if any(r is None for r in records) else records


def _dataset(records: list) -> Dataset:
    ds = Dataset()
    for record in records:
        elem = _element(record)
        ds._dict[elem.tag] = elem  # as read: raw elements are converted on first access
    return ds


class HeaderIndex:
    """The saved index of one input tree (``path``), read at start and written by ``save``."""

    def __init__(self, path: str | Path, root: Path) -> None:
        self.path, self.root = Path(path), Path(root)
        self._files: dict[str, list] = {}
        self._seen: set[str] = set()
        self._changed = False
        self.hits = self.reads = 0
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") == FORMAT and data.get("root") == str(self.root):
                self._files = data["files"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            log.warning("header index %s unreadable, rebuilt (%s)", self.path, exc)

    def read(self, path: Path, reader: Callable[[Path], Indexed]) -> Indexed:
        """``reader(path)``, or what it gave last time when the file has not changed since."""
        rel = os.path.relpath(path, self.root)
        self._seen.add(rel)
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        saved = self._files.get(rel)
        if saved is not None and saved[0] == stamp:
            self.hits += 1
            elements, reason, is_image = saved[1:]
            return (_dataset(elements) if elements is not None else None), reason, is_image
        self.reads += 1
        ds, reason, is_image = reader(path)
        elements = _dataset_record(ds) if ds is not None else None
        if ds is None or elements is not None:
            self._files[rel], self._changed = [stamp, elements, reason, is_image], True
        elif rel in self._files:
            del self._files[rel]
            self._changed = True
        return ds, reason, is_image

    def save(self) -> None:
        """Write the index when anything changed; files no longer in the tree (not read through
        it since it was loaded) are forgotten."""
        gone = set(self._files) - self._seen
        for rel in gone:
            del self._files[rel]
        if not (self._changed or gone):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"format": FORMAT, "root": str(self.root), "files": self._files}))
        log.info("header index %s: %d files read, %d from the index", self.path, self.reads, self.hits)
