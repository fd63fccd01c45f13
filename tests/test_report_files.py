"""Report files as text: gzip, encodings, damaged files and Excel workbooks."""

from __future__ import annotations

import gzip
import random
import re
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings
from sandbox.amazon_reports import VAT_HEADER, generate_settlement_report
from services import textstream
from services.errors import ErrorKind, ServiceError
from services.report_files import read_report_file
from services.textstream import MAX_LINE_CHARS, decode_lines, gunzip, sniff_encoding
from services.transactions import RowError, SourceRef
from tests.conftest import SHARED
from tests.test_cli import connected, one_line, run, settings  # noqa: F401 (fixtures)
from tests.test_reports import (
    DE,
    JUNE,
    SALE,
    SALE_ITEM,
    only_transaction,
    parse,
    transactions,
    vat_file,
)


def test_gzip_and_plain_files_read_the_same(tmp_path: Path) -> None:
    lines = list(generate_settlement_report(period=JUNE, marketplace_id=DE, seed=2, orders=50))
    text = "\n".join(lines) + "\n"
    plain, packed = tmp_path / "report.txt", tmp_path / "report.txt.gz"
    plain.write_text(text, encoding="utf-8")
    packed.write_bytes(gzip.compress(text.encode()) + gzip.compress(b""))  # two members

    assert list(read_report_file(plain)) == list(read_report_file(packed)) == lines


def test_windows_1252_and_bom_files(tmp_path: Path) -> None:
    header, row = vat_file(SALE)
    latin, bom = tmp_path / "latin.txt", tmp_path / "bom.csv"
    latin.write_bytes(f"{header}\r\n{row}\r\n".encode("cp1252"))
    bom.write_bytes(f"{header}\n{row}".encode("utf-8-sig"))

    for path in (latin, bom):
        item = only_transaction(list(read_report_file(path)))
        assert item.description == "Küchenwaage 5 kg"
        assert item.buyer.address == "Invalidenstraße 12"


def test_the_encoding_is_decided_once_and_bytes_that_do_not_fit_become_u_fffd() -> None:
    # A UTF-8 file with one Windows-1252 byte: the rest stays UTF-8, the byte is marked.
    chunks = [b"\xef\xbb\xbfcaf\xc3", b"\xa9\r\nna\xc3\xafve\n", b"caf\xe9 \x80\n", b"\xc3\xa9"]
    assert list(decode_lines(chunks)) == ["café", "naïve", "caf\ufffd \ufffd", "é"]
    assert sniff_encoding(b"caf\xc3\xa9 na\xc3", complete=False) == "utf-8"

    japanese = "注文番号\t商品名\n123\tコーヒーミル ①\n".encode("cp932")  # ① is Windows-31J
    assert sniff_encoding(japanese) == "cp932"
    assert list(decode_lines([japanese[:7], japanese[7:]])) == [
        "注文番号\t商品名",
        "123\tコーヒーミル ①",
    ]
    # Amazon labels Windows-1252 text ISO-8859-1; the declared Shift_JIS is Windows-31J.
    assert list(decode_lines([b"\x80 5 \x96 K\xfcche"], "ISO-8859-1")) == ["€ 5 – Küche"]
    assert list(decode_lines([japanese], "shift_jis"))[1] == "123\tコーヒーミル ①"
    assert list(decode_lines(["a\tb\nc".encode("utf-16")])) == ["a\tb", "c"]


def test_a_western_file_is_not_taken_for_japanese(tmp_path: Path) -> None:
    header, row = vat_file(SALE)
    path = tmp_path / "latin.txt"
    path.write_bytes(f"{header}\n{row}\n".encode("cp1252"))
    assert sniff_encoding(path.read_bytes()) == "cp1252"


def test_lines_end_at_lf_crlf_or_a_lone_cr_even_across_chunks() -> None:
    chunks = [b"a\r", b"\nb\rc\r\r\nd\n", b"\r", b"e\r"]
    assert list(decode_lines(chunks)) == ["a", "b", "c", "", "d", "", "e"]
    assert list(decode_lines([b"x\ry", b"z"])) == ["x", "yz"]


@hypothesis.settings(deadline=None)
@given(st.text(alphabet="a\r\n", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_lines_are_split_as_the_line_end_pattern_splits_whatever_the_chunks(
    text: str, cuts: list[int]
) -> None:
    # The first line fills the prefix that decides the encoding, so the rest arrives in
    # pieces cut anywhere, "\r\n" included.
    first = b"x" * textstream.SNIFF_BYTES + b"\n"
    data = text.encode()
    points = sorted({min(cut, len(data)) for cut in cuts})
    pieces = [
        data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)
    ]
    expected = ["x" * textstream.SNIFF_BYTES, *re.split(r"\r\n|\r|\n", text)]
    if expected[-1] == "":
        expected.pop()  # a last line end ends the last line; it does not start one
    assert list(decode_lines([first, *pieces])) == expected


def test_a_line_without_end_is_refused_after_the_cap_in_linear_time() -> None:
    read = 0

    def endless() -> Iterator[bytes]:
        nonlocal read
        for _ in range(128):  # 8 MiB, never a line break
            read += 1
            yield b"x" * 65536

    with pytest.raises(ServiceError) as raised:
        list(decode_lines(endless(), source="big.txt"))
    assert raised.value.kind == ErrorKind.BAD_DATA and not raised.value.retryable
    assert raised.value.message.startswith("big.txt: line 1 is longer than 1,048,576 characters")
    assert read <= MAX_LINE_CHARS // 65536 + 2  # stopped at the cap, not at the end


def test_binary_files_and_gzip_bombs_are_bad_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary, zeros = tmp_path / "random.bin", tmp_path / "zeros.txt.gz"
    binary.write_bytes(random.Random(8).randbytes(300_000))
    zeros.write_bytes(gzip.compress(bytes(20 << 20)))
    for path, says in ((binary, "binary data"), (zeros, "binary data")):
        with pytest.raises(ServiceError) as raised:
            list(read_report_file(path))
        assert raised.value.kind == ErrorKind.BAD_DATA and path.name in raised.value.message
        assert says in raised.value.message

    # Lines that unpack beyond 100 times the gzip's size (here with a 1 MB floor, not 64 MiB).
    monkeypatch.setattr(textstream, "_RATIO_FLOOR", 1 << 20)
    bomb = tmp_path / "lines.txt.gz"
    bomb.write_bytes(gzip.compress(b"a\tb\n" * (1 << 20)))
    with pytest.raises(ServiceError) as raised:
        list(read_report_file(bomb))
    assert "lines.txt.gz unpacks to more than 1,048,576 bytes" in raised.value.message


def test_thousands_of_empty_lines_in_a_row_are_refused() -> None:
    assert len(list(decode_lines([b"a\n" + b"\n" * 10_000 + b"b\n"]))) == 10_002
    with pytest.raises(ServiceError) as raised:
        list(decode_lines([b"a\r\n" + b"\r\n" * 10_001 + b"b"], source="r.txt"))
    assert raised.value.message == (
        "r.txt: lines 2 to 10,002 are empty: not a report this app reads."
    )


def test_the_gunzip_of_a_download_is_bounded_in_each_chunk_and_in_total() -> None:
    packed = gzip.compress(b"0123456789" * 1_000_000)
    sizes = [len(out) for out in gunzip([packed], source="doc", limit=10_000_000)]
    assert sum(sizes) == 10_000_000 and max(sizes) <= 256 * 1024
    with pytest.raises(ServiceError) as raised:
        list(gunzip([packed[:5000], packed[5000:]], source="doc", limit=9_999_999))
    assert (
        raised.value.message
        == "doc unpacks to more than 9,999,999 bytes: not a report this app reads."
    )
    with pytest.raises(ServiceError) as raised:
        list(gunzip([packed[:-3]], source="doc", limit=10_000_000))
    assert raised.value.message == "doc is damaged or truncated gzip data."


def test_damaged_files_are_bad_data(tmp_path: Path) -> None:
    truncated, broken = tmp_path / "cut.txt.gz", tmp_path / "broken.xlsx"
    truncated.write_bytes(gzip.compress(b"x" * 100_000)[:-12])
    broken.write_bytes(b"PK\x03\x04 not really a zip")

    for path in (truncated, broken):
        with pytest.raises(ServiceError) as raised:
            list(read_report_file(path))
        assert raised.value.kind == ErrorKind.BAD_DATA and path.name in raised.value.message


def write_xlsx(path: Path, rows: dict[int, list[object]]) -> None:
    """A transitional-OOXML workbook as Excel writes one: shared strings, dates as serials."""
    strings: list[str] = []
    sheet_rows = []
    for number, values in rows.items():  # in the order given, as a broken file may
        cells = []
        for position, value in enumerate(values):
            ref = f"{column_letters(position)}{number}"
            if value is None or value == "":
                cells.append(f'<c r="{ref}" s="1"/>')  # formatted but empty
            elif isinstance(value, date):
                serial = (value - date(1899, 12, 30)).days
                cells.append(f'<c r="{ref}" s="2"><v>{serial}</v></c>')
            elif isinstance(value, int | float | Decimal):
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif str(value).startswith("number:"):  # a number as Excel may store it, 1.999E1
                cells.append(f'<c r="{ref}"><v>{str(value).removeprefix("number:")}</v></c>')
            elif str(value).startswith("xml:"):  # a cell written as it stands
                cells.append(str(value).removeprefix("xml:"))
            elif str(value).startswith("inline:"):
                text = escape(str(value).removeprefix("inline:"))
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>')
            else:
                strings.append(str(value))
                cells.append(f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>')
        sheet_rows.append(f'<row r="{number}">{"".join(cells)}</row>')
    main = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    shared = "".join(
        f"<si><r><t>{escape(text[:3])}</t></r><r><t>{escape(text[3:])}</t></r>"
        "<rPh><t>ignored</t></rPh></si>"
        for text in strings
    )
    parts = {
        "_rels/.rels": f'<Relationships xmlns="{package}"><Relationship Id="rId1" '
        f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {main} xmlns:r="{rel}"><workbookPr/><sheets>'
        '<sheet name="VAT" sheetId="1" r:id="rId7"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{package}">'
        f'<Relationship Id="rId2" Type="{rel}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId7" Type="{rel}/worksheet" Target="/xl/worksheets/data.xml"/>'
        f'<Relationship Id="rId3" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>",
        "xl/styles.xml": f'<styleSheet {main}><numFmts count="1">'
        '<numFmt numFmtId="164" formatCode="dd/mm/yyyy;@"/></numFmts>'
        '<cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="49"/><xf numFmtId="164"/>'
        "</cellXfs></styleSheet>",
        "xl/sharedStrings.xml": f'<sst {main} count="{len(strings)}">{shared}</sst>',
        "xl/worksheets/data.xml": f"<worksheet {main}><sheetData>{''.join(sheet_rows)}"
        "</sheetData></worksheet>",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + xml)


def column_letters(position: int) -> str:
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def test_transitional_xlsx_as_excel_saves_it(tmp_path: Path) -> None:
    def cells(values: dict[str, object]) -> list[object]:
        return [values.get(column, "") for column in VAT_HEADER]

    typed: dict[str, object] = {
        **SALE,
        "TRANSACTION_COMPLETE_DATE": date(2026, 3, 31),
        "TAX_CALCULATION_DATE": date(2026, 3, 30),
        "QTY": 1,
        "PRICE_OF_ITEMS_AMT_VAT_EXCL": Decimal("16.799999999999997"),
        "PRICE_OF_ITEMS_VAT_AMT": Decimal("3.19"),
        "PRICE_OF_ITEMS_AMT_VAT_INCL": "number:1.999E1",
        "PRICE_OF_ITEMS_VAT_RATE_PERCENT": Decimal("0.19"),
        "ITEM_DESCRIPTION": 'inline:Waage\t"Präzision"',
        "ARRIVAL_POST_CODE": 10115,
    }
    path = tmp_path / "vat.xlsx"
    write_xlsx(
        path,
        {
            1: list(VAT_HEADER),
            2: cells(typed),
            3: [None, None, None],
            5: cells({**typed, "TRANSACTION_EVENT_ID": "302-7654321-1234567"}),
            6: [None] * 10,
            7: [],
        },
    )

    lines = list(read_report_file(path))
    items = transactions(parse(lines, "vat.xlsx"))

    assert len(lines) == 5  # rows 1 to 5; rows 3 and 4 are empty lines, 6 and 7 are dropped
    assert [item.source.line for item in items] == [2, 5]
    item = items[0]
    assert item.date == date(2026, 3, 31)
    assert item.charges == (SALE_ITEM,)
    assert item.description == 'Waage "Präzision"'  # a tab would split an unquoted line
    assert item.buyer.postcode == "10115"
    assert item == replace(
        only_transaction(vat_file({**SALE, "ITEM_DESCRIPTION": 'Waage "Präzision"'})),
        source=SourceRef("vat.xlsx", 2),
    )


def test_xlsx_cells_that_are_no_amount_or_date_pass_as_their_text(tmp_path: Path) -> None:
    row: list[object] = [SALE.get(column, "") for column in VAT_HEADER]
    price = VAT_HEADER.index("PRICE_OF_ITEMS_AMT_VAT_INCL")
    row[price] = "xml:<c><v>1E999999999</v></c>"  # r omitted: the next column
    values: list[object] = [
        "xml:<c r='A1' s='2'><v>99999999</v></c>",  # a date serial beyond 9999-12-31
        "xml:<c r='B1' s='2'><v>-1</v></c>",
        "xml:<c r='C1' t='n'><v>abc</v></c>",
        "xml:<c r='D1'><v>1e-99</v></c>",
        "xml:<c r='E1'><v>12.5E1</v></c>",
    ]
    path = tmp_path / "odd.xlsx"
    write_xlsx(path, {1: values, 2: [*VAT_HEADER], 3: row})

    lines = list(read_report_file(path))

    assert lines[0] == "99999999\t-1\tabc\t1e-99\t125"
    assert lines[2].split("\t")[price] == "1E999999999"
    [error] = parse(lines[1:], "odd.xlsx")
    assert isinstance(error, RowError) and error.column == "PRICE_OF_ITEMS_AMT_VAT_INCL"


def test_xlsx_empty_rows_keep_line_numbers_up_to_excels_last_row(tmp_path: Path) -> None:
    path = tmp_path / "far.xlsx"
    write_xlsx(path, {1: ["a"], 1_048_576: ["xml:<c r='XFD1048576' s='1'/>", "z"]})
    lines = list(read_report_file(path))
    assert (len(lines), lines[0], lines[-1], set(lines[1:-1])) == (1_048_576, "a", "\tz", {""})


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ({1: ["a"], 5: ["xml:<c r='XFD5'><v>1</v></c>"]}, "column 16,384 of row 5"),
        ({1: ["a"], 2_000_001: ["b"]}, "row 2,000,001, beyond the 500 columns and 2,000,000"),
        ({99_999_999: ["b"]}, "a row is numbered '99999999'"),
        ({1: ["xml:<c r='AAAA1'><v>1</v></c>"]}, "row 1 has a cell named 'AAAA1'"),
        ({1: ["xml:<c r='A1' t='s'><v>99</v></c>"]}, "refers to shared text '99'"),
        ({1: ["inline:" + "x" * 40_000]}, "longer than Excel's 32,767 characters"),
        ({1: ["x" * 40_000]}, "longer than Excel's 32,767 characters"),
        ({1: ["xml:<c><v>" + "9" * 40_000 + "</v></c>"]}, "longer than Excel's 32,767"),
        ({2: ["a"], 1: ["b"]}, "row 1 comes after row 2"),
        ({1: ["xml:" + " " * (8 << 20)]}, "xl/worksheets/data.xml unpacks to 8,"),
    ],
)
def test_xlsx_beyond_excels_limits_is_one_bad_data_error(
    tmp_path: Path, rows: dict[int, list[object]], says: str
) -> None:
    path = tmp_path / "bomb.xlsx"
    write_xlsx(path, rows)
    with pytest.raises(ServiceError) as raised:
        list(read_report_file(path))
    assert raised.value.kind == ErrorKind.BAD_DATA and not raised.value.retryable
    assert raised.value.message.startswith("bomb.xlsx: ") and says in raised.value.message


def hostile_files(folder: Path) -> list[Path]:
    binary, long_line, bomb = folder / "random.txt", folder / "long.txt", folder / "bomb.xlsx"
    binary.write_bytes(random.Random(1).randbytes(100_000))
    long_line.write_bytes(b"a" * (2 << 20))
    write_xlsx(bomb, {1: ["a"], 2: ["xml:<c r='XFD2'><v>1</v></c>"]})
    return [binary, long_line, bomb]


def import_dry_run(
    config: Settings, capsys: pytest.CaptureFixture[str], path: Path
) -> tuple[int, str, str]:
    return run(
        config, capsys, "import-report", str(path), "--integration", "Acme EU",
        "--dry-run", "--json",
    )  # fmt: skip


@pytest.mark.usefixtures("connected")
def test_hostile_files_end_in_one_line_through_the_cli(
    settings: Settings,  # noqa: F811 (the fixture from test_cli)
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for path in hostile_files(tmp_path):
        code, out, err = import_dry_run(settings, capsys, path)
        assert code != 0 and out == "" and "Traceback" not in err
        assert path.name in one_line(err)

    # A file with old Mac line ends (CR only) reads as the same file with CRLF.
    sample = SHARED / "samples" / "amazon" / "vat-transactions-row"
    text = (sample / "sheet_with_strict_ooxml.derived.csv").read_text()
    crlf, old_mac = tmp_path / "report.txt", tmp_path / "mac" / "report.txt"
    old_mac.parent.mkdir()
    crlf.write_bytes(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())
    old_mac.write_bytes(text.replace("\r\n", "\n").replace("\n", "\r").encode())
    results = [import_dry_run(settings, capsys, path) for path in (crlf, old_mac)]
    _, out, err = results[0]
    assert results[0] == results[1] and "408-9590879-6335512" in out + err  # the row was read


@pytest.mark.usefixtures("connected")
def test_a_refused_file_exits_2(
    settings: Settings,  # noqa: F811 (the fixture from test_cli)
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    codes = [import_dry_run(settings, capsys, path)[0] for path in hostile_files(tmp_path)]
    assert codes == [2, 2, 2]


def test_a_windows_1252_file_that_is_ascii_for_its_first_rows_is_read_as_windows_1252(
    tmp_path: Path,
) -> None:
    header, row = vat_file(SALE)
    plain = row.replace("Küchenwaage", "Kitchen scale").replace("Invalidenstraße", "Main St")
    rows = [plain] * 600  # far more than the prefix a download's encoding is judged by
    latin = tmp_path / "latin.txt"
    latin.write_bytes("\n".join([header, *rows, row]).encode("cp1252") + b"\n")

    last = list(read_report_file(latin))[-1]

    assert "Küchenwaage" in last and "\ufffd" not in last
