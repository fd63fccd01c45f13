"""Report files as text: gzip, encodings, damaged files and Excel workbooks."""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from sandbox.amazon_reports import VAT_HEADER, generate_settlement_report
from services.errors import ErrorKind, ServiceError
from services.report_files import read_report_file
from services.textstream import decode_lines
from services.transactions import SourceRef
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


def test_decoding_switches_to_windows_1252_at_the_first_non_utf8_byte() -> None:
    chunks = [b"\xef\xbb\xbfcaf\xc3", b"\xa9\r\nna\xc3\xafve\n", b"caf\xe9 \x80\n", b"\xc3\xa9"]

    assert list(decode_lines(chunks)) == ["café", "naïve", "café €", "Ã©"]


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
    for number, values in sorted(rows.items()):
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
    assert item.description == 'Waage\t"Präzision"'
    assert item.buyer.postcode == "10115"
    assert item == replace(
        only_transaction(vat_file({**SALE, "ITEM_DESCRIPTION": 'Waage\t"Präzision"'})),
        source=SourceRef("vat.xlsx", 2),
    )
