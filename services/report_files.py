"""Report files as text lines: plain text, gzip, or an .xlsx workbook's first sheet.

Seller Central hands out the same report as a tab-separated text file (UTF-8 or
Windows-1252), a gzip of one, or an Excel workbook (strict or transitional OOXML); SP-API
downloads go through `services.textstream` too. Everything streams.
"""

from __future__ import annotations

import gzip
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

from services.errors import ErrorKind, ServiceError
from services.textstream import decode_lines

READ_CHUNK = 64 * 1024


def read_report_file(path: Path) -> Iterator[str]:
    """The text lines of a report downloaded from Seller Central, streamed: plain text in
    UTF-8 (with or without BOM) or Windows-1252, gzip, or an .xlsx workbook's first sheet
    (strict or transitional OOXML) as tab-separated lines, one per spreadsheet row."""
    with path.open("rb") as file:
        magic = file.read(4)
    if magic.startswith(b"PK"):
        yield from _xlsx_lines(path)
        return
    if magic.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as stream:
                yield from decode_lines(_chunks(stream.read))
        except (OSError, EOFError, zlib.error):
            raise ServiceError(
                ErrorKind.BAD_DATA,
                f"{path.name} is damaged or truncated gzip data.",
                retryable=False,
            ) from None
        return
    with path.open("rb") as stream:
        yield from decode_lines(_chunks(stream.read))


def _chunks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while chunk := read(READ_CHUNK):
        yield chunk


def _local(tag: str) -> str:
    """An XML tag without its namespace: strict and transitional OOXML differ only there."""
    return tag.rpartition("}")[2]


# Built-in number formats that show a date or time (ECMA-376, 18.8.30).
_DATE_FORMAT_IDS = frozenset({*range(14, 23), *range(27, 37), 45, 46, 47, *range(50, 59)})
_NEEDS_QUOTES = re.compile(r'[\t\n\r"]')


def _xlsx_lines(path: Path) -> Iterator[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            workbook = _target(_relationships(archive, ""), "officeDocument") or "xl/workbook.xml"
            root = ElementTree.fromstring(archive.read(workbook))
            sheets = [element for element in root.iter() if _local(element.tag) == "sheet"]
            if not sheets:
                raise KeyError("no worksheet")
            sheet_id = next(
                value for name, value in sheets[0].attrib.items() if name.endswith("}id")
            )
            date1904 = any(
                _local(element.tag) == "workbookPr"
                and element.get("date1904", "").lower() in ("1", "true")
                for element in root.iter()
            )
            relations = _relationships(archive, workbook)
            sheet = next(relation.target for relation in relations if relation.id == sheet_id)
            strings = _shared_strings(archive, _target(relations, "sharedStrings"))
            date_styles = _date_styles(archive, _target(relations, "styles"))
            with archive.open(sheet) as stream:
                yield from _sheet_lines(stream, strings, date_styles, date1904)
    except (
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        StopIteration,
        ValueError,
        ElementTree.ParseError,
    ):
        raise ServiceError(
            ErrorKind.BAD_DATA,
            f"{path.name} is not an Excel workbook this app can read (.xlsx).",
            retryable=False,
        ) from None


@dataclass(frozen=True)
class _Relation:
    id: str
    type: str  # the last part of the type URI: "worksheet", "styles", "sharedStrings", ...
    target: str  # the part's name in the archive


def _relationships(archive: zipfile.ZipFile, part: str) -> list[_Relation]:
    folder, name = posixpath.split(part)
    try:
        root = ElementTree.fromstring(archive.read(posixpath.join(folder, "_rels", f"{name}.rels")))
    except KeyError:
        return []
    relations = []
    for element in root:
        target = element.get("Target", "")
        if target.startswith("/"):
            target = target.lstrip("/")
        else:
            target = posixpath.normpath(posixpath.join(folder, target))
        kind = element.get("Type", "").rpartition("/")[2]
        relations.append(_Relation(element.get("Id", ""), kind, target))
    return relations


def _target(relations: list[_Relation], kind: str) -> str | None:
    return next((relation.target for relation in relations if relation.type == kind), None)


def _rich_text(element: ElementTree.Element) -> str:
    """The text of a shared or inline string: its runs, without phonetic guides."""
    parts = []
    for child in element:
        tag = _local(child.tag)
        if tag == "t":
            parts.append(child.text or "")
        elif tag == "r":
            parts.extend(run.text or "" for run in child if _local(run.tag) == "t")
    return "".join(parts)


def _shared_strings(archive: zipfile.ZipFile, part: str | None) -> list[str]:
    # The sheet refers to them by index, so they are all kept: one copy of each distinct text.
    strings: list[str] = []
    if part is None:
        return strings
    with archive.open(part) as stream:
        for _event, element in ElementTree.iterparse(stream):
            if _local(element.tag) == "si":
                strings.append(_rich_text(element))
                element.clear()
    return strings


def _date_styles(archive: zipfile.ZipFile, part: str | None) -> frozenset[int]:
    """Indexes of the cell styles that show numbers as dates (Excel keeps dates as numbers)."""
    if part is None:
        return frozenset()
    root = ElementTree.fromstring(archive.read(part))
    custom: dict[str, str] = {}
    styles: list[str] = []
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "numFmt":
            custom[element.get("numFmtId", "")] = element.get("formatCode", "")
        elif tag == "cellXfs":
            styles = [xf.get("numFmtId", "0") for xf in element if _local(xf.tag) == "xf"]
    return frozenset(
        position
        for position, format_id in enumerate(styles)
        if (int(format_id) in _DATE_FORMAT_IDS if format_id.isdigit() else False)
        or _is_date_format(custom.get(format_id, ""))
    )


def _is_date_format(code: str) -> bool:
    # Quoted text, escaped characters and [colour]/[$currency] sections are not date parts.
    bare = re.sub(r'"[^"]*"|\\.|\[[^\]]*\]', "", code)
    return bool(re.search(r"[dmyhs]", bare, re.IGNORECASE))


def _sheet_lines(
    stream: IO[bytes], strings: list[str], date_styles: frozenset[int], date1904: bool
) -> Iterator[str]:
    """Tab-separated lines, line N being spreadsheet row N; empty rows at the end are dropped."""
    emitted = last_row = 0
    container: ElementTree.Element | None = None
    for event, element in ElementTree.iterparse(stream, events=("start", "end")):
        tag = _local(element.tag)
        if event == "start":
            if tag == "sheetData":
                container = element
            continue
        if tag != "row":
            continue
        reference = element.get("r")
        last_row = int(reference) if reference else last_row + 1
        cells: dict[int, str] = {}
        column = -1
        for cell in element:
            if _local(cell.tag) != "c":
                continue
            reference = cell.get("r")
            column = _column_index(reference) if reference else column + 1
            text = _cell_text(cell, strings, date_styles, date1904)
            if text:
                cells[column] = text
        if container is not None:
            container.clear()  # rows already read: keep memory flat
        if not cells:
            continue
        # Empty rows before this one become empty lines, so line numbers stay row numbers.
        for _ in range(last_row - 1 - emitted):
            yield ""
        fields = [cells.get(position, "") for position in range(max(cells) + 1)]
        yield "\t".join(_quoted(field) for field in fields)
        emitted = last_row


def _quoted(field: str) -> str:
    """A field as the csv module reads it back: quoted if it holds a tab, quote or newline."""
    if _NEEDS_QUOTES.search(field):
        return '"' + field.replace('"', '""') + '"'
    return field


def _column_index(reference: str) -> int:
    """0 for A1, 26 for AA7, ..."""
    index = 0
    for letter in reference:
        if not letter.isalpha():
            break
        index = index * 26 + ord(letter.upper()) - ord("A") + 1
    return index - 1


def _cell_text(
    cell: ElementTree.Element, strings: list[str], date_styles: frozenset[int], date1904: bool
) -> str:
    kind = cell.get("t", "n")
    value: str | None = None
    for child in cell:
        tag = _local(child.tag)
        if tag == "v":
            value = child.text
        elif tag == "is":
            return _rich_text(child)
    if value is None:
        return ""
    if kind == "s":
        return strings[int(value)]
    if kind == "b":
        return "TRUE" if value == "1" else "FALSE"
    if kind != "n":
        return value  # text, a formula's text, an error such as #N/A, or an ISO date (strict)
    number = Decimal(value)
    if not number.is_finite():
        return value
    if int(cell.get("s", "0")) in date_styles:
        return _serial_date(number, date1904)
    return format(number, "f")  # 19.989999999999998, never 1.9989999999999998E1


def _serial_date(serial: Decimal, date1904: bool) -> str:
    """An Excel date serial as ISO text (1900 system: day 1 is 1900-01-01, with its leap bug)."""
    base = datetime(1904, 1, 1) if date1904 else datetime(1899, 12, 30)
    days = int(serial)
    seconds = int(((serial - days) * 86400).to_integral_value(ROUND_HALF_UP))
    moment = base + timedelta(days=days, seconds=seconds)
    return moment.date().isoformat() if not seconds else moment.isoformat(sep=" ")
