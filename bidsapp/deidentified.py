"""Values that de-identification tools leave unreadable become absent.

Some de-identification tools overwrite dates, times and ages with placeholders (``***``,
``00000000``, ``1900``) that no reader can parse. heudiconv then stops the whole participant
("Unable to parse datetime string: ***"), and dcm2niix copies the junk into sidecars. An element
whose value does not parse under its value representation (VR) says nothing, so it is removed:
a value that is absent is something every reader already handles.

Only the VRs below are checked (a date, a time, an age or a number is either readable or
useless); text, UIDs and binary data are left as they are. Values are checked as stored, so no
element is converted (nor can a bad one raise) while looking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

_DA = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TM = re.compile(r"(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?")
_DT = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?)?)?)?([+-]\d{4})?")
_AS = re.compile(r"\d{3}[DWMY]")
_DS = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_IS = re.compile(r"[+-]?\d+")


def _date(text: str) -> bool:
    m = _DA.fullmatch(text)
    return bool(m) and _valid(lambda: date(int(m[1]), int(m[2]), int(m[3])))


def _time(text: str) -> bool:
    m = _TM.fullmatch(text)
    return bool(m) and int(m[1]) < 24 and int(m[2] or 0) < 60 and int(m[3] or 0) < 60


def _datetime(text: str) -> bool:
    m = _DT.fullmatch(text)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) if g else d for g, d in zip(m.groups()[:6], (0, 1, 1, 0, 0, 0)))
    return _valid(lambda: datetime(year, month, day, hour, minute, second))


def _valid(build: Callable[[], object]) -> bool:
    try:
        build()
    except ValueError:
        return False
    return True


#: VR -> whether one (non-empty) value of that VR is readable. DA/TM/DT as heudiconv parses them
#: (PS3.5 6.2 formats, no ACR-NEMA "YYYY.MM.DD"), AS/DS/IS as PS3.5 defines them.
READABLE: dict[str, Callable[[str], bool]] = {
    "DA": _date,
    "TM": _time,
    "DT": _datetime,
    "AS": lambda t: bool(_AS.fullmatch(t)),
    "DS": lambda t: bool(_DS.fullmatch(t)),
    "IS": lambda t: bool(_IS.fullmatch(t)),
}


def readable_or_empty(vr: str, text: str) -> str:
    """``text`` when it parses under ``vr``, else "" (absent)."""
    return text if text and READABLE[vr](text.strip(" \0")) else ""


def _values(elem: DataElement | RawDataElement) -> list[str]:
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split("\\")
    else:  # converted already: a number, or several (MultiValue)
        items = [str(v) for v in value] if isinstance(value, Iterable) else [str(value)]
    return [v.strip(" \0") for v in items]


def _vr(elem: DataElement | RawDataElement) -> str | None:
    if elem.VR is not None:
        return str(elem.VR)
    try:  # implicit VR: the dictionary's, when the tag is public
        return dictionary_VR(elem.tag)
    except KeyError:
        return None


def unreadable(ds: Dataset) -> Iterator[tuple[Dataset, BaseTag, str]]:
    """(containing dataset, tag, VR) of every element whose value does not parse, nested
    sequences included. A value that is empty as a whole is absent already and passes."""
    for elem in list(ds.elements()):
        vr = _vr(elem)
        if vr == "SQ":
            for item in ds[elem.tag].value or ():
                yield from unreadable(item)
            continue
        readable = READABLE.get(vr or "")
        if readable is None:
            continue
        values = _values(elem)
        if values and any(values) and not all(readable(v) for v in values):
            yield ds, elem.tag, vr


def remove_unreadable(ds: Dataset) -> list[str]:
    """Delete every unreadable element in place; their keywords (or tags), for the log."""
    found = list(unreadable(ds))
    for parent, tag, _ in found:
        del parent[tag]
    return [keyword_for_tag(tag) or str(tag) for _, tag, _ in found]
