"""Reading a report takes fast paths for what is common; each must agree with its careful twin:
a tab-separated line split at its tabs with the csv module's reading, a VAT row read from what
the rows before it left in the reader's memos with the same row read alone, and a piece of text
whose lines are checked together with the lines checked one at a time."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from unittest import mock

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.amazon_reports import VAT_HEADER
from services import reports, textstream
from services.errors import ServiceError
from services.reports import parse_report
from services.transactions import RowError, SourceRef, Transaction
from tests.test_reports import SALE, vat_line

# --- lines split at tabs ----------------------------------------------------------------------


@hypothesis.settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='ab "\t\r\n\x00', max_size=30), max_size=8))
def test_a_tab_separated_line_is_split_as_the_csv_module_reads_it(lines: list[str]) -> None:
    header = reports._read_header("\t".join(VAT_HEADER))  # wider than any line drawn
    width = len(VAT_HEADER)
    expected: list[tuple[int, list[str]] | tuple[int, str]] = []
    for number, line in enumerate(lines, start=2):
        try:
            values = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        except csv.Error as error:
            expected.append((number, f"the line cannot be read: {error}"))
            continue
        if "".join(values).strip():
            expected.append((number, values + [""] * (width + 1 - len(values))))

    read = [
        (item.source.line, item.message) if isinstance(item, RowError) else item
        for item in reports.report_rows(iter(lines), header, "vat.txt", 1)
    ]

    assert read == expected


# --- VAT rows from the reader's memos ---------------------------------------------------------

# Values each column may take, plain and odd: rows drawn from these share parts with the rows
# before them (their charges, dates, route, buyer), which the reader then takes from its memos.
_VARIANTS = {
    "TRANSACTION_TYPE": ["SALE", "REFUND", " sale", "FC_TRANSFER", "RETURN", ""],
    "TRANSACTION_EVENT_ID": ["302-1234567-7654321", "302-7654321-1234567", ""],
    "ACTIVITY_TRANSACTION_ID": ["Ab12Cd34E", ""],
    "TRANSACTION_CURRENCY_CODE": ["EUR", "eur", " GBP", "", "EURO", "EUR\t"],
    "QTY": ["1", "-2", "", "1.5", "x", "\t1"],
    "TRANSACTION_COMPLETE_DATE": ["31-03-2026", "2020-03-31", "", "31/03/2026"],
    "TAX_CALCULATION_DATE": ["31-03-2026", ""],
    "PRICE_OF_ITEMS_AMT_VAT_EXCL": ["16.80", "16,80", "", "x"],
    "PRICE_OF_ITEMS_VAT_AMT": ["3.19", "", "0.00"],
    "PRICE_OF_ITEMS_AMT_VAT_INCL": ["19.99", "", "20.50"],
    "PRICE_OF_ITEMS_VAT_RATE_PERCENT": ["0.19", "19%", ""],
    "SHIP_CHARGE_AMT_VAT_INCL": ["", "3.99"],
    "TAXABLE_JURISDICTION": ["GERMANY", "", "FRANCE", "Atlantis"],
    "SALE_DEPART_COUNTRY": ["DE", "PL", ""],
    "SALE_ARRIVAL_COUNTRY": ["DE", "FR", "CH", ""],
    "ARRIVAL_COUNTRY": ["DE", "fr", ""],
    "BUYER_VAT_NUMBER": ["", "DE123456789", "123 456 789"],
    "BUYER_VAT_NUMBER_COUNTRY": ["", "DE", "GR"],
    "BUYER_NAME": ["Anna Schmidt", "", " Bob "],
    "EXPORT_OUTSIDE_EU": ["NO", "YES"],
    "TAX_REPORTING_SCHEME": ["", "REGULAR", "UNION-OSS", "UK_VOEC-DOMESTIC", "NONSENSE"],
    "TAX_COLLECTION_RESPONSIBILITY": ["", "SELLER", "MARKETPLACE", "AMAZON"],
    "VAT_CALCULATION_IMPUTATION_COUNTRY": ["DE", "", "XX1"],
    "MARKETPLACE": ["amazon.de", "Amazon.FR", ""],
}
_ROWS = st.lists(
    st.fixed_dictionaries(
        {column: st.sampled_from(values) for column, values in _VARIANTS.items()}
    ).map(lambda changes: SALE | changes),
    min_size=1,
    max_size=10,
)


def _read(rows: list[dict[str, str]], sep: str) -> list[Transaction | RowError]:
    lines = [vat_line({c: c for c in VAT_HEADER}, sep=sep)]
    lines += [vat_line(row, sep=sep) for row in rows]
    return list(parse_report(lines, file_name="vat.txt"))


@pytest.mark.parametrize("sep", ["\t", ";"])
@hypothesis.settings(max_examples=300, deadline=None)
@given(rows=_ROWS)
def test_a_vat_row_reads_after_any_rows_as_it_reads_alone(
    rows: list[dict[str, str]], sep: str
) -> None:
    alone = []
    for row in rows:
        (item,) = _read([row], sep)
        alone.append(item)

    # Twice over: the second time, every part of every row is in the memos.
    together = _read(rows + rows, sep)

    assert together == [
        replace(item, source=SourceRef("vat.txt", line))
        for line, item in enumerate(alone + alone, start=2)
    ]


def test_a_row_whose_shape_is_known_still_needs_its_order() -> None:
    known, lacking = SALE, SALE | {"TRANSACTION_EVENT_ID": ""}

    first, second = _read([known, lacking], "\t")

    assert isinstance(first, Transaction)
    assert second == RowError(
        SourceRef("vat.txt", 3), "TRANSACTION_EVENT_ID", "empty, but a SALE row needs it"
    )


# --- lines checked a piece at a time ----------------------------------------------------------


def _one_at_a_time(text: str) -> tuple[list[str], str | None]:
    """The lines of a text and what is wrong with it, each line checked in turn."""
    lines = re.split(r"\r\n|\r|\n", text.replace("\x00", "\ufffd"))
    if lines[-1] == "":
        lines.pop()
    run = 0
    for number, line in enumerate(lines, start=1):
        if len(line) > textstream.MAX_LINE_CHARS:
            return lines[: number - 1], f"line {number} is longer"
        if number == len(lines) and text.endswith("\r"):
            break  # a lone "\r" ends the text: its line comes out last, not counted in the run
        run = 0 if line else run + 1
        if run > textstream.MAX_EMPTY_RUN:
            return lines[: number - 1], f"to {number:,} are empty"
    return lines, None


@hypothesis.settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet="ab\r\n\x00", max_size=12), max_size=8))
def test_lines_checked_a_piece_at_a_time_as_one_at_a_time(pieces: list[str]) -> None:
    read: list[str] = []
    problem = None
    with (
        mock.patch.object(textstream, "MAX_LINE_CHARS", 4),
        mock.patch.object(textstream, "MAX_EMPTY_RUN", 2),
    ):
        expected = _one_at_a_time("".join(pieces))
        try:
            for line in textstream._split(pieces, "f.txt"):
                read.append(line)
        except ServiceError as error:
            problem = error.message

    lines, wrong = expected
    assert read == lines
    assert (problem is None) == (wrong is None)
    assert wrong is None or (problem is not None and wrong in problem)
