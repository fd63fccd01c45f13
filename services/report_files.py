"""Report files as text lines: plain text, gzip, or an .xlsx workbook's first sheet.

Seller Central hands out the same report as a tab-separated text file (UTF-8, Windows-1252
or, in Japan, Shift_JIS), a gzip of one, or an Excel workbook (strict or transitional OOXML);
SP-API downloads go through `services.textstream` too. Everything streams, in time linear in
the file and memory bounded whatever it holds: a workbook beyond Excel's own limits is refused.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

from services.errors import ErrorKind, ServiceError
from services.textstream import decode_lines, gunzip, sniff_stream, unpack_limit

READ_CHUNK = 64 * 1024

# Workbook bounds, above anything Excel writes (1,048,576 rows; cells of 32,767 characters)
# and Amazon's widest report (under 100 columns).
MAX_ROWS = 2_000_000
MAX_COLUMNS = 500
MAX_CELL_CHARS = 32_767
MAX_PART_BYTES = 200 << 20  # a sheet or the shared strings, unpacked; both are streamed
MAX_SMALL_PART_BYTES = 32 << 20  # workbook, relationships and styles, which are read whole
MAX_PART_RATIO = 100  # unpacked / packed: Excel's XML packs 5 to 30:1, a bomb 1,000:1
_PART_RATIO_FLOOR = 1 << 20
# A number outside these powers of ten is no amount, quantity or date: it passes as its text.
_LARGEST_EXPONENT, _SMALLEST_EXPONENT = 20, -30
_LAST_SERIAL = 2_958_465  # 9999-12-31, Excel's last date


def read_report_file(path: Path) -> Iterator[str]:
    """The text lines of a report downloaded from Seller Central, streamed: plain text in any
    encoding `decode_lines` recognises, gzip, or an .xlsx workbook's first sheet (strict or
    transitional OOXML) as tab-separated lines, one per spreadsheet row."""
    with path.open("rb") as file:
        magic = file.read(4)
    if magic.startswith(b"PK"):
        yield from _xlsx_lines(path)
        return

    def chunks(stream: IO[bytes]) -> Iterator[bytes]:
        read = _chunks(stream.read)
        if magic.startswith(b"\x1f\x8b"):
            return gunzip(read, source=path.name, limit=unpack_limit(path.stat().st_size))
        return read

    # The whole file decides its encoding (one more pass, linear): a Windows-1252 report may
    # be plain ASCII for far longer than the prefix a download is judged by.
    with path.open("rb") as stream:
        encoding = sniff_stream(chunks(stream))
    with path.open("rb") as stream:
        yield from decode_lines(chunks(stream), source=path.name, encoding=encoding)


def _chunks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while chunk := read(READ_CHUNK):
        yield chunk


def _local(tag: str) -> str:
    """An XML tag without its namespace: strict and transitional OOXML differ only there."""
    return tag.rpartition("}")[2]


# Built-in number formats that show a date or time (ECMA-376, 18.8.30).
_DATE_FORMAT_IDS = frozenset({*range(14, 23), *range(27, 37), 45, 46, 47, *range(50, 59)})
# The lines are tab-separated without quoting (as Amazon's own files), so a tab or line break
# inside a cell would split its field or its row: it becomes a space.
_SEPARATORS = re.compile(r"[\t\r\n]")
_CELL_REFERENCE = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]{1,7})")
_ROW_NUMBER = re.compile(r"[0-9]{1,7}")


class _BadWorkbook(Exception):
    """What makes a workbook unreadable, said for its user; the file name is added later."""


def _xlsx_lines(path: Path) -> Iterator[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            workbook = _target(_relationships(archive, ""), "officeDocument") or "xl/workbook.xml"
            root = ElementTree.fromstring(_read_small(archive, workbook))
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
            reader = _SheetReader(strings, date_styles, date1904)
            yield from _sheet_lines(_stream(archive, sheet, reader), reader)
    except _BadWorkbook as bad:
        raise ServiceError(ErrorKind.BAD_DATA, f"{path.name}: {bad}", retryable=False) from None
    except (
        zipfile.BadZipFile,
        KeyError,
        StopIteration,
        ValueError,
        ElementTree.ParseError,
    ):
        raise ServiceError(
            ErrorKind.BAD_DATA,
            f"{path.name} is not an Excel workbook this app can read (.xlsx).",
            retryable=False,
        ) from None


def _checked(archive: zipfile.ZipFile, part: str, ceiling: int) -> zipfile.ZipInfo:
    """The part's entry, if its unpacked size is sane. zipfile never unpacks more than the
    size an entry declares (and then fails its CRC), so checking the declaration suffices."""
    info = archive.getinfo(part)
    limit = min(ceiling, max(_PART_RATIO_FLOOR, info.compress_size * MAX_PART_RATIO))
    if info.file_size > limit:
        raise _BadWorkbook(
            f"its part {part} unpacks to {info.file_size:,} bytes, more than the "
            f"{limit:,} this app reads."
        )
    return info


def _read_small(archive: zipfile.ZipFile, part: str) -> bytes:
    return archive.read(_checked(archive, part, MAX_SMALL_PART_BYTES))


def _stream(archive: zipfile.ZipFile, part: str, target: object) -> Iterator[None]:
    """Feeds the part to an XML parser calling `target`, pausing after each chunk."""
    parser = ElementTree.XMLParser(target=target)
    with archive.open(_checked(archive, part, MAX_PART_BYTES)) as stream:
        for chunk in _chunks(stream.read):
            parser.feed(chunk)
            yield
    parser.close()
    yield


@dataclass(frozen=True)
class _Relation:
    id: str
    type: str  # the last part of the type URI: "worksheet", "styles", "sharedStrings", ...
    target: str  # the part's name in the archive


def _relationships(archive: zipfile.ZipFile, part: str) -> list[_Relation]:
    folder, name = posixpath.split(part)
    try:
        data = _read_small(archive, posixpath.join(folder, "_rels", f"{name}.rels"))
    except KeyError:
        return []
    relations = []
    for element in ElementTree.fromstring(data):
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


class _RichText:
    """An XML parser target's view of strings (shared <si> or inline <is>): the text of their
    runs without phonetic guides, each string bounded by MAX_CELL_CHARS."""

    def __init__(self, container: str) -> None:
        self._container = container
        self._inside = self._phonetic = self._collecting = False
        self._parts: list[str] = []
        self._size = 0

    def start(self, tag: str) -> None:
        if tag == self._container:
            self._inside, self._parts, self._size = True, [], 0
        elif tag == "rPh":
            self._phonetic = True
        elif tag == "t":
            self._collecting = self._inside and not self._phonetic

    def end(self, tag: str) -> str | None:
        """The whole string when its container ends."""
        if tag == "t":
            self._collecting = False
        elif tag == "rPh":
            self._phonetic = False
        elif tag == self._container and self._inside:
            self._inside = False
            return "".join(self._parts)
        return None

    def data(self, text: str) -> None:
        if self._collecting:
            self._parts.append(text)
            self._size += len(text)
            if self._size > MAX_CELL_CHARS:
                raise _BadWorkbook(f"a text is longer than Excel's {MAX_CELL_CHARS:,} characters.")


class _StringsReader:
    def __init__(self) -> None:
        self.strings: list[str] = []
        self._text = _RichText("si")

    def start(self, tag: str, _attributes: dict[str, str]) -> None:
        self._text.start(_local(tag))

    def end(self, tag: str) -> None:
        text = self._text.end(_local(tag))
        if text is not None:
            self.strings.append(text)

    def data(self, text: str) -> None:
        self._text.data(text)

    def close(self) -> None:
        return None


def _shared_strings(archive: zipfile.ZipFile, part: str | None) -> list[str]:
    # The sheet refers to them by index, so they are all kept: one copy of each distinct text.
    reader = _StringsReader()
    if part is not None:
        for _ in _stream(archive, part, reader):
            pass
    return reader.strings


def _date_styles(archive: zipfile.ZipFile, part: str | None) -> frozenset[int]:
    """Indexes of the cell styles that show numbers as dates (Excel keeps dates as numbers)."""
    if part is None:
        return frozenset()
    root = ElementTree.fromstring(_read_small(archive, part))
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


class _SheetReader:
    """An XML parser target that turns a sheet's rows into (row number, line) as they stream
    past, keeping one row's cells; whitespace and formulas between them are never stored."""

    def __init__(self, strings: list[str], date_styles: frozenset[int], date1904: bool) -> None:
        self.rows: list[tuple[int, str]] = []  # read, not yet taken
        self._strings, self._date_styles, self._date1904 = strings, date_styles, date1904
        self._row = 0
        self._cells: dict[int, str] = {}
        self._cell: dict[str, str] | None = None  # the attributes of the cell being read
        self._column = -1
        self._value: list[str] | None = None  # the text of its <v>, while inside it
        self._value_size = 0
        self._text: str | None = None
        self._inline = _RichText("is")

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        tag = _local(tag)
        if tag == "row":
            self._start_row(attributes.get("r"))
        elif tag == "c":
            self._start_cell(attributes)
        elif self._cell is not None:
            if tag == "v":
                self._value, self._value_size = [], 0
            self._inline.start(tag)

    def end(self, tag: str) -> None:
        tag = _local(tag)
        if tag == "row":
            self._end_row()
        elif tag == "c" and self._cell is not None:
            self._end_cell()
        elif tag == "v" and self._value is not None:
            self._text, self._value = "".join(self._value), None
        elif self._cell is not None and (text := self._inline.end(tag)) is not None:
            self._text = text
            self._cell["t"] = "inlineStr"

    def data(self, text: str) -> None:
        if self._value is not None:
            self._value.append(text)
            self._value_size += len(text)
            if self._value_size > MAX_CELL_CHARS:
                raise _BadWorkbook(
                    f"row {self._row} holds a value longer than Excel's {MAX_CELL_CHARS:,} "
                    "characters."
                )
        elif self._cell is not None:
            self._inline.data(text)

    def close(self) -> None:
        return None

    def _start_row(self, reference: str | None) -> None:
        if reference is None:
            number = self._row + 1
        elif _ROW_NUMBER.fullmatch(reference):
            number = int(reference)
        else:
            raise _BadWorkbook(f"a row is numbered {reference[:20]!r}.")
        if number <= self._row:
            raise _BadWorkbook(f"row {number} comes after row {self._row}.")
        self._row, self._cells, self._column = number, {}, -1

    def _start_cell(self, attributes: dict[str, str]) -> None:
        reference = attributes.get("r")
        if reference is None:
            self._column += 1
        elif match := _CELL_REFERENCE.fullmatch(reference):
            self._column = _column_index(match[1])
        else:
            raise _BadWorkbook(f"row {self._row} has a cell named {reference[:20]!r}.")
        self._cell, self._text = dict(attributes), None

    def _end_cell(self) -> None:
        assert self._cell is not None
        text = self._cell_text(self._cell, self._text) if self._text is not None else ""
        self._cell = None
        if not text:
            return  # formatted but empty: Excel writes those far beyond the data
        if self._column >= MAX_COLUMNS or self._row > MAX_ROWS:
            raise _BadWorkbook(
                f"it has data in column {self._column + 1:,} of row {self._row:,}, beyond the "
                f"{MAX_COLUMNS:,} columns and {MAX_ROWS:,} rows of a report."
            )
        self._cells[self._column] = _SEPARATORS.sub(" ", text)

    def _end_row(self) -> None:
        if self._cells:
            fields = [self._cells.get(position, "") for position in range(max(self._cells) + 1)]
            self.rows.append((self._row, "\t".join(fields)))
        self._cells = {}

    def _cell_text(self, cell: dict[str, str], value: str) -> str:
        kind = cell.get("t", "n")
        if kind == "s":
            if not (value.isdigit() and int(value) < len(self._strings)):
                raise _BadWorkbook(
                    f"row {self._row} refers to shared text {value[:20]!r}, "
                    "which the workbook does not have."
                )
            return self._strings[int(value)]
        if kind == "b":
            return "TRUE" if value == "1" else "FALSE"
        if kind != "n":
            return value  # text, a formula's text, an error such as #N/A, or an ISO date (strict)
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value  # text in a number cell: the parser refuses it with line and column
        if (
            not number.is_finite()
            or not _SMALLEST_EXPONENT <= number.adjusted() <= _LARGEST_EXPONENT
        ):
            return value
        style = cell.get("s", "0")
        if style.isdigit() and int(style) in self._date_styles:
            return _serial_date(number, self._date1904) if 0 <= number <= _LAST_SERIAL else value
        return format(number, "f")  # 19.989999999999998, never 1.9989999999999998E1


def _sheet_lines(progress: Iterator[None], reader: _SheetReader) -> Iterator[str]:
    """Tab-separated lines, line N being spreadsheet row N; empty rows at the end are dropped."""
    emitted = 0
    for _ in progress:
        for number, line in reader.rows:
            # Empty rows before this one become empty lines, so line numbers stay row numbers.
            for _ in range(number - 1 - emitted):
                yield ""
            yield line
            emitted = number
        reader.rows.clear()


def _column_index(letters: str) -> int:
    """0 for A, 26 for AA, ..."""
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _serial_date(serial: Decimal, date1904: bool) -> str:
    """An Excel date serial as ISO text (1900 system: day 1 is 1900-01-01, with its leap bug)."""
    base = datetime(1904, 1, 1) if date1904 else datetime(1899, 12, 30)
    days = int(serial)
    seconds = int(((serial - days) * 86400).to_integral_value(ROUND_HALF_UP))
    moment = base + timedelta(days=days, seconds=seconds)
    return moment.date().isoformat() if not seconds else moment.isoformat(sep=" ")
