"""Amazon report files -> normalized transactions, one row at a time.

Reads the three reports the bot posts from (VAT transactions, settlement V2, all-orders) as
Seller Central or SP-API deliver them, and yields a `Transaction` per data row, or a `RowError`
for a row that cannot be read; a bad row never stops the rows after it. Nothing holds more
than one row (one refund, for the settlement report) and bounded memos of what rows repeat,
so a million-row file streams in constant memory; only an .xlsx workbook's table of distinct
texts is kept whole.

Decisions callers should know:
- Amounts are cents, rounded half-up from whatever the file holds (spreadsheets write
  19.989999999999998 for 19.99), signed as Amazon signs them: refunds are negative. Where a
  figure is blank it is derived from the others (net = gross - VAT, ...); with both net and
  VAT blank (Amazon did not calculate the VAT) the VAT comes from the rate, or is 0.
- net + VAT must equal the VAT-inclusive amount within one cent. Amazon rounds each figure on
  its own, so a one-cent gap happens; it is closed by trusting Amazon's VAT-inclusive and VAT
  figures (net = gross - VAT), so every document totals to Amazon's gross to the cent.
- VAT report schemes: EXPORT when EXPORT_OUTSIDE_EU is YES; REVERSE_CHARGE for a buyer VAT
  number, no VAT and different departure and arrival countries; OSS for an EU-to-EU distance
  sale with VAT; everything else DOMESTIC. US marketplace sales and refunds are FACILITATOR
  (Amazon collects the sales tax), as is any refund with marketplace-facilitator tax rows.
- Settlement V2: only customer refunds become transactions (type REFUND), one per run of
  consecutive rows with the same order, adjustment, shipment, order item and posting time;
  fees, orders (sales come from the all-orders report) and the summary line are skipped. The
  refund's quantity is made negative, as the VAT report writes it.
- All-orders: one SALE per shipped item; cancelled items are "CANCELLED", unshipped ones
  "PENDING", Multi-Channel Fulfilment orders from other shops "NON_AMAZON" (all skipped).
  Promotion discounts are negative whichever sign the file uses.
- Dates are read as DD-MM-YYYY, DD.MM.YYYY or YYYY-MM-DD, with an optional time and zone;
  a time with a zone counts as its UTC date. Slashed dates are refused: 03/04/2026 means
  different days in Europe and the US.
"""

from __future__ import annotations

import csv
import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import NamedTuple, TypeVar

from services.errors import ErrorKind, ServiceError
from services.marketplaces import BY_DOMAIN
from services.transactions import (
    CENT,
    POSTED_TYPES,
    Buyer,
    Charge,
    ChargeKind,
    RowError,
    SourceRef,
    TaxScheme,
    Transaction,
    TransactionType,
)

T = TypeVar("T")

ZERO = Decimal("0.00")
RATE_PLACES = Decimal("0.0001")  # a rate worked out from amounts
READ_CHUNK = 64 * 1024


class ReportKind(StrEnum):
    VAT_TRANSACTIONS = "GET_VAT_TRANSACTION_DATA"
    SETTLEMENT_V2 = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
    ALL_ORDERS = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"


# Columns a header must have to be taken for each report (compared after _key()).
_SIGNATURES: tuple[tuple[ReportKind, frozenset[str]], ...] = (
    (
        ReportKind.VAT_TRANSACTIONS,
        frozenset({"transaction-type", "transaction-event-id", "transaction-currency-code"}),
    ),
    (
        ReportKind.SETTLEMENT_V2,
        frozenset({"settlement-id", "amount-type", "amount-description", "amount"}),
    ),
    (
        ReportKind.ALL_ORDERS,
        frozenset({"amazon-order-id", "order-status", "purchase-date", "item-price"}),
    ),
)
_ORDER_ID_COLUMN = {
    ReportKind.VAT_TRANSACTIONS: "TRANSACTION_EVENT_ID",
    ReportKind.SETTLEMENT_V2: "order-id",
    ReportKind.ALL_ORDERS: "amazon-order-id",
}
# Reports people download by mistake, recognised before ours (a settlement V1 file shares the
# V2 file's first columns): what the file is, and which report to get instead.
_OTHER_REPORTS: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "Amazon's settlement report flat file V1",
        frozenset({"settlement-id", "shipment-fee-type", "price-type", "item-related-fee-type"}),
        "Download the settlement report as 'Flat File V2' "
        "(GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2) in Seller Central > Reports > Payments.",
    ),
    (
        "Amazon's Date Range (transaction) report",
        frozenset({"date/time", "settlement-id", "type", "order-id", "product-sales"}),
        "Post from the VAT transactions report (EU, UK) or the all-orders report and the "
        "settlement flat file V2 (North America, Far East).",
    ),
)
_DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", ",": "comma"}

# fmt: off
_EU = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# TAXABLE_JURISDICTION spells countries out in capitals; a few have more than one spelling.
_COUNTRY_NAMES = {
    "AUSTRIA": "AT", "BELGIUM": "BE", "BULGARIA": "BG", "CYPRUS": "CY", "CZECH REPUBLIC": "CZ",
    "CZECHIA": "CZ", "GERMANY": "DE", "DENMARK": "DK", "ESTONIA": "EE", "SPAIN": "ES",
    "FINLAND": "FI", "FRANCE": "FR", "GREECE": "GR", "CROATIA": "HR", "HUNGARY": "HU",
    "IRELAND": "IE", "ITALY": "IT", "LITHUANIA": "LT", "LUXEMBOURG": "LU", "LATVIA": "LV",
    "MALTA": "MT", "NETHERLANDS": "NL", "THE NETHERLANDS": "NL", "POLAND": "PL",
    "PORTUGAL": "PT", "ROMANIA": "RO", "SWEDEN": "SE", "SLOVENIA": "SI", "SLOVAKIA": "SK",
    "SLOVAK REPUBLIC": "SK", "UNITED KINGDOM": "GB", "GREAT BRITAIN": "GB", "UK": "GB",
    "SWITZERLAND": "CH", "NORWAY": "NO", "EL": "GR",
}
# fmt: on
# Where Amazon collects and remits the sales tax itself, as marketplace facilitator.
_FACILITATOR_COUNTRIES = frozenset({"US"})


# --- public API -------------------------------------------------------------------------------


def report_kind(lines: Iterable[str], *, file_name: str) -> ReportKind:
    """Which report a file is, from its header: checked before anything is recorded, so that
    a wrong file is one clear error. Raises ServiceError (BAD_DATA) as parse_report does."""
    return read_header(iter(lines), file_name)[0].kind


def parse_report(lines: Iterable[str], *, file_name: str) -> Iterator[Transaction | RowError]:
    """One Transaction or RowError per data row of a report, streamed; blank rows yield
    nothing. A file whose first line is not a known header raises ServiceError (BAD_DATA)."""
    iterator = iter(lines)
    header, consumed = read_header(iterator, file_name)
    rows = report_rows(iterator, header, file_name, consumed)
    if header.kind == ReportKind.SETTLEMENT_V2:
        yield from _settlement_items(rows, header, file_name)
        return
    build: Callable[[list[str], SourceRef], Transaction]
    if header.kind == ReportKind.VAT_TRANSACTIONS:
        build = _VatReader(header).transaction
    else:
        build = functools.partial(_order_transaction, header)
    for row in rows:
        if isinstance(row, RowError):
            yield row
            continue
        line, values = row
        source = SourceRef(file_name, line)
        try:
            yield build(values, source)
        except BadValue as bad:
            yield RowError(source, header.label(bad.column), bad.message, header.order_id(values))


# --- header and rows --------------------------------------------------------------------------


def read_header(lines: Iterator[str], file_name: str) -> tuple[_Header, int]:
    """The header (the first non-blank line) and how many lines it took to find it."""
    consumed = 0
    for first in lines:
        consumed += 1
        if first.strip("\ufeff \t\r\n"):
            break
    else:
        raise ServiceError(
            ErrorKind.BAD_DATA, f"{file_name} is empty: it has no header line.", retryable=False
        )
    try:
        return _read_header(first), consumed
    except ServiceError as error:
        raise ServiceError(error.kind, f"{file_name}: {error.message}", retryable=False) from None


@functools.lru_cache(maxsize=1024)
def _key(name: str) -> str:
    """A column name as compared: case, "_", "-" and spaces do not matter."""
    return re.sub(r"[\s_-]+", "-", name.strip().lower())


@dataclass(frozen=True)
class _Header:
    kind: ReportKind
    delimiter: str
    names: tuple[str, ...]

    @functools.cached_property
    def index(self) -> dict[str, int]:
        positions: dict[str, int] = {}
        for position, name in enumerate(self.names):
            positions.setdefault(_key(name), position)
        return positions

    @functools.cached_property
    def positions(self) -> _Positions:
        return _Positions(self.index, len(self.names))

    def label(self, column: str) -> str:
        """The column as this file spells it, for messages."""
        position = self.positions[column]
        return self.names[position] if position < len(self.names) else column

    def order_id(self, values: list[str]) -> str | None:
        """The order of a row (its values padded as report_rows pads them), for its errors."""
        return values[self.positions[_ORDER_ID_COLUMN[self.kind]]].strip() or None


class _Positions(dict[str, int]):
    """Column positions by the names this module asks for, each worked out once: every row
    asks for dozens of columns, and _key() on each ask was a large part of the parsing time.
    A column the header lacks is at `width`, one past its last column, which is always blank
    (see _Record)."""

    def __init__(self, index: dict[str, int], width: int) -> None:
        super().__init__()
        self._index = index
        self._width = width

    def __missing__(self, column: str) -> int:
        position = self[column] = self._index.get(_key(column), self._width)
        return position


def _read_header(line: str) -> _Header:
    text = line.lstrip("\ufeff").rstrip("\r\n")
    for delimiter in _DELIMITER_NAMES:
        if delimiter not in text:
            continue
        names = next(csv.reader([text], delimiter=delimiter), [])
        keys = {_key(name) for name in names}
        for what, needed, instead in _OTHER_REPORTS:
            if needed <= keys:
                raise ServiceError(
                    ErrorKind.BAD_DATA,
                    f"this is {what} ({len(names)} columns), which this app does not read. "
                    f"{instead}",
                    retryable=False,
                )
        for kind, needed in _SIGNATURES:
            if needed <= keys:
                return _Header(kind, delimiter, tuple(name.strip() for name in names))
    start = text[:60] + ("..." if len(text) > 60 else "")
    raise ServiceError(
        ErrorKind.BAD_DATA,
        "the first line is not the header of a report this app reads. Expected the column "
        "names of Amazon's VAT transactions report (TRANSACTION_TYPE, TRANSACTION_EVENT_ID, "
        "...), settlement report flat file V2 (settlement-id, amount-type, amount, ...) or "
        f"all-orders report (amazon-order-id, order-status, ...); the file starts with {start!r}.",
        retryable=False,
    )


class ReportRow:
    """One data row of a settlement or all-orders report; columns are looked up by name."""

    __slots__ = ("header", "line", "positions", "values")

    def __init__(self, header: _Header, line: int, values: list[str]) -> None:
        self.header = header
        self.line = line
        self.values = values
        self.positions = header.positions

    def text(self, column: str) -> str:
        return self.values[self.positions[column]].strip()

    def label(self, column: str) -> str:
        return self.header.label(column)

    def order_id(self) -> str:
        return self.text(_ORDER_ID_COLUMN[self.header.kind])


class BadValue(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


# A data row: the file line it starts on, and its values padded with blanks to one past the
# header's columns, so that a missing trailing column and a column the header lacks both read
# as "" without a check on every look-up.
_Record = tuple[int, list[str]]


def report_rows(
    lines: Iterator[str], header: _Header, file_name: str, offset: int
) -> Iterator[_Record | RowError]:
    """Non-blank rows after the header, numbered by the file line they start on.

    Amazon's flat files are tab-separated without quoting: there a quote is data, so a stray
    one cannot swallow the rows after it. Files a spreadsheet saved with commas or semicolons
    do quote; a quoted value never spans lines in a report, so a row that does is refused
    with the lines it took."""
    if header.delimiter == "\t":
        return _tab_rows(lines, header, file_name, offset)
    return _quoted_rows(lines, header, file_name, offset)


def _tab_rows(
    lines: Iterator[str], header: _Header, file_name: str, offset: int
) -> Iterator[_Record | RowError]:
    """Each line is a row, split at its tabs: what csv.reader reads without quoting, in a
    third of its time. A line it would read otherwise (one holding a line break, or longer
    than its field size limit) still goes through it."""
    width = len(header.names)
    limit = csv.field_size_limit()
    line = offset
    for text in lines:
        line += 1
        if "\n" in text or "\r" in text or len(text) > limit:
            try:
                values = next(csv.reader((text,), delimiter="\t", quoting=csv.QUOTE_NONE))
            except csv.Error as error:
                message = f"the line cannot be read: {error}"
                yield RowError(SourceRef(file_name, line), None, message)
                continue
            text = "".join(values)
        else:
            values = text.split("\t")
        if not text or text.isspace():
            continue
        fields = len(values)
        if fields == width:
            values.append("")
        elif fields < width:
            values.extend([""] * (width + 1 - fields))
        if fields > width or "\ufffd" in text:
            damage = _damaged(header, file_name, line, values, fields)
            if damage is not None:
                yield damage
                continue
        yield line, values


def _quoted_rows(
    lines: Iterator[str], header: _Header, file_name: str, offset: int
) -> Iterator[_Record | RowError]:
    reader = csv.reader(lines, delimiter=header.delimiter)
    width = len(header.names)
    end = offset
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            end = offset + reader.line_num
            yield RowError(SourceRef(file_name, end), None, f"the line cannot be read: {error}")
            continue
        start, end = end + 1, offset + reader.line_num
        if end > start:
            yield RowError(
                SourceRef(file_name, start),
                None,
                f"a quote opened on this line is not closed before line {end}; lines {start} "
                f"to {end} were not read.",
            )
            continue
        joined = "".join(values)  # one scan of the row in C rather than one per value
        if not joined.strip():
            continue
        fields = len(values)
        if fields <= width:
            values.extend([""] * (width + 1 - fields))
        if fields > width or "\ufffd" in joined:
            damage = _damaged(header, file_name, start, values, fields)
            if damage is not None:
                yield damage
                continue
        yield start, values


def _damaged(
    header: _Header, file_name: str, line: int, values: list[str], fields: int
) -> RowError | None:
    """Why a row that has bytes the encoding lacks, or more fields than the header, cannot be
    read; None for a row whose fields past the header's are blank."""
    width = len(header.names)
    garbled = next((i for i, value in enumerate(values) if "\ufffd" in value), None)
    if garbled is not None:
        return RowError(
            SourceRef(file_name, line),
            header.names[garbled] if garbled < width else None,
            "holds bytes that are not valid in the file's text encoding; export the "
            "report again from Seller Central.",
            header.order_id(values),
        )
    # A stray delimiter inside a value shifts every column after it: refuse the row.
    if fields > width and any(value.strip() for value in values[width:]):
        return RowError(
            SourceRef(file_name, line),
            None,
            f"the row has {fields} fields but the header has {width} columns; a value "
            f"may contain a stray {_DELIMITER_NAMES[header.delimiter]}.",
            header.order_id(values),
        )
    return None


# --- values -----------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_COMMA_DECIMAL = re.compile(r"([+-]?)(\d+),(\d+)")
_DOT_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # 1,234.56
_COMMA_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?")  # 1.234,56
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY_CODE = re.compile(r"[A-Z]{2}")
_VAT_NUMBER_SEPARATORS = re.compile(r"[\s./-]")
_DATE = re.compile(
    r"(?:(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"|(?P<day2>\d{1,2})(?P<sep>[-.])(?P<month2>\d{1,2})(?P=sep)(?P<year2>\d{4}))"
    r"(?:[T ](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d+)?)?)?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)


def _to_decimal(text: str, what: str) -> Decimal:
    """A number written by Amazon or by a spreadsheet in any locale, when unambiguous."""
    compact = text.replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    if _PLAIN_NUMBER.fullmatch(compact):
        return Decimal(compact)
    comma = _COMMA_DECIMAL.fullmatch(compact)
    if comma:
        sign, whole, fraction = comma.groups()
        if len(fraction) == 3 and len(whole) <= 3 and not whole.startswith("0"):
            raise ValueError(
                f"{text!r} is ambiguous: the comma may separate thousands or decimals "
                f"(write {whole}{fraction} or {whole}.{fraction})"
            )
        return Decimal(f"{sign}{whole}.{fraction}")
    if _DOT_THOUSANDS.fullmatch(compact):
        return Decimal(compact.replace(",", ""))
    if _COMMA_THOUSANDS.fullmatch(compact):
        return Decimal(compact.replace(".", "").replace(",", "."))
    raise ValueError(f"{text!r} is not {what}")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


# Amounts, rates, quantities and dates repeat across rows (0.00, a product's price, the days of
# one month): each distinct text is parsed once, in caches of bounded size.
@functools.lru_cache(maxsize=4096)
def to_money(text: str) -> Decimal:
    try:
        return _cents(_to_decimal(text, "an amount"))
    except InvalidOperation:  # too many digits to be money
        raise ValueError(f"{text!r} is not an amount") from None


@functools.lru_cache(maxsize=256)
def _to_rate(text: str) -> Decimal:
    """A VAT rate as a fraction; Amazon writes 0.19, people and spreadsheets 19 or 19%."""
    percent = text.endswith("%")
    value = _to_decimal(text.removesuffix("%").strip(), "a VAT rate")
    if percent or value >= 1:  # no VAT rate is 100 %, so 1 and above are percentages
        value /= 100
    if not 0 <= value < 1:
        raise ValueError(f"{text!r} is not a VAT rate")
    return value.quantize(Decimal("0.000001"), ROUND_HALF_UP).normalize()


@functools.lru_cache(maxsize=256)
def _to_quantity(text: str) -> int:
    value = _to_decimal(text, "a quantity")
    if abs(value) >= 10**9:
        raise ValueError(f"{text!r} is not a quantity")
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole quantity")
    return int(value)


@functools.lru_cache(maxsize=1024)
def to_moment(text: str) -> datetime:
    """A date and time as reports.py reads them ("2026-06-16 00:00:00 UTC", "16.06.2026
    00:00:00 UTC", "2026-06-16T00:00:00-07:00", ...), in UTC; a date alone, or a time without
    a zone, counts as UTC as Amazon's settlement files write them."""
    match = _DATE.fullmatch(text)
    wrong = ValueError(f"{text!r} is not a date (expected DD-MM-YYYY, DD.MM.YYYY or YYYY-MM-DD)")
    if match is None:
        raise wrong
    parts = match.groupdict()
    try:
        day = date(
            int(parts["year"] or parts["year2"]),
            int(parts["month"] or parts["month2"]),
            int(parts["day"] or parts["day2"]),
        )
        clock = time(int(parts["hour"] or 0), int(parts["minute"] or 0), int(parts["second"] or 0))
    except ValueError:
        raise wrong from None
    zone = (parts["zone"] or "").upper()
    offset = timedelta(0)
    if zone not in ("", "Z", "UTC", "GMT"):
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone.startswith("-") else offset
    return datetime.combine(day, clock, timezone(offset)).astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def _to_date(text: str) -> date:
    """The UTC date of a date, or of a date and time (see to_moment)."""
    return to_moment(text).date()


def row_value(row: ReportRow, column: str, parse: Callable[[str], T]) -> T | None:
    """The parsed value of a column, None when blank; an unreadable value is a BadValue."""
    try:
        return _parsed(row.text(column), column, parse)
    except BadValue as bad:
        raise BadValue(row.label(column), bad.message) from None


def _parsed(text: str, column: str, parse: Callable[[str], T]) -> T | None:
    """As row_value, for a column's text taken already: the BadValue names the column as this
    module does, for the caller to put the file's spelling."""
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise BadValue(column, str(error)) from None


def _needed(column: str, kind: str) -> BadValue:
    return BadValue(column, f"empty, but a {kind} row needs it")


def _required(row: ReportRow, column: str, needed: bool, kind: str) -> str:
    text = row.text(column)
    if needed and not text:
        raise _needed(row.label(column), kind)
    return text


@functools.lru_cache(maxsize=64)
def to_currency(text: str) -> str:
    code = text.upper()
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"{code!r} is not a currency code")
    return code


def _currency(row: ReportRow, column: str, needed: bool, kind: str) -> str:
    _required(row, column, needed, kind)
    return row_value(row, column, to_currency) or ""


def _quantity(row: ReportRow, column: str, needed: bool, kind: str) -> int:
    _required(row, column, needed, kind)
    return row_value(row, column, _to_quantity) or 0


def _country(text: str, column: str) -> str | None:
    """An ISO alpha-2 code from a code or an English country name; None when blank."""
    text = text.upper()
    if not text:
        return None
    if text in _COUNTRY_NAMES:
        return _COUNTRY_NAMES[text]
    if _COUNTRY_CODE.fullmatch(text):
        return text
    raise BadValue(column, f"{text!r} is not a country this app knows")


def _charge(
    kind: ChargeKind, net: Decimal, tax: Decimal, rate: Decimal | None = None
) -> Charge | None:
    """A charge from its net and tax, at the rate given or else worked out from them."""
    if not net and not tax:
        return None
    if rate is None:
        rate = (tax / net).quantize(RATE_PLACES, ROUND_HALF_UP) if net and tax else ZERO
    return Charge(kind, net, tax, net + tax, rate)


# --- VAT transactions report ------------------------------------------------------------------

# (charge, its net, VAT and VAT-inclusive columns, its rate's column): a promotion is taxed at
# the rate of what it discounts.
_VAT_CHARGES: tuple[tuple[ChargeKind, str, str, str, str], ...] = tuple(
    (
        kind,
        f"{prefix}_AMT_VAT_EXCL",
        f"{prefix}_VAT_AMT",
        f"{prefix}_AMT_VAT_INCL",
        f"{family}_VAT_RATE_PERCENT",
    )
    for kind, prefix, family in (
        (ChargeKind.ITEM, "PRICE_OF_ITEMS", "PRICE_OF_ITEMS"),
        (ChargeKind.ITEM_PROMOTION, "PROMO_PRICE_OF_ITEMS", "PRICE_OF_ITEMS"),
        (ChargeKind.SHIPPING, "SHIP_CHARGE", "SHIP_CHARGE"),
        (ChargeKind.SHIPPING_PROMOTION, "PROMO_SHIP_CHARGE", "SHIP_CHARGE"),
        (ChargeKind.GIFT_WRAP, "GIFT_WRAP", "GIFT_WRAP"),
        (ChargeKind.GIFT_WRAP_PROMOTION, "PROMO_GIFT_WRAP", "GIFT_WRAP"),
    )
)
_VAT_CHARGE_COLUMNS = tuple(column for _, *columns in _VAT_CHARGES for column in columns)
# The columns holding Amazon's VAT calculation (see _VatCharges.figures), by their place
# among _VAT_CHARGE_COLUMNS.
_VAT_FIGURES = tuple(
    _VAT_CHARGE_COLUMNS.index(f"{promo}{family}_{suffix}")
    for family in ("PRICE_OF_ITEMS", "SHIP_CHARGE", "GIFT_WRAP")
    for promo in ("", "PROMO_")
    for suffix in ("AMT_VAT_EXCL", "VAT_AMT")
) + tuple(
    _VAT_CHARGE_COLUMNS.index(f"{family}_VAT_RATE_PERCENT")
    for family in ("PRICE_OF_ITEMS", "SHIP_CHARGE", "GIFT_WRAP")
)
# Of the dates a row has, the one the transaction counts on; movements have only the last two.
_VAT_DATES = (
    "TRANSACTION_COMPLETE_DATE",
    "TAX_CALCULATION_DATE",
    "TRANSACTION_DEPART_DATE",
    "TRANSACTION_ARRIVAL_DATE",
)
# The columns read for each row alone; those a row shares with many others (_vat_shape:
# its type, currency, quantity, marketplace, jurisdiction and dates), those of its buyer
# (_vat_buyer) and those its scheme and taxing country come from (_vat_tax).
_VAT_OWN_COLUMNS = (
    "TRANSACTION_EVENT_ID",
    "ACTIVITY_TRANSACTION_ID",
    "VAT_INV_NUMBER",
    "SELLER_SKU",
    "ITEM_DESCRIPTION",
)
_VAT_SHAPE_COLUMNS = (
    "TRANSACTION_TYPE",
    "TRANSACTION_CURRENCY_CODE",
    "QTY",
    "MARKETPLACE",
    "TAXABLE_JURISDICTION",
    *_VAT_DATES,
)
_VAT_BUYER_COLUMNS = (
    "BUYER_NAME",
    "BUYER_VAT_NUMBER",
    "BUYER_VAT_NUMBER_COUNTRY",
    "ARRIVAL_ADDRESS",
    "ARRIVAL_CITY",
    "ARRIVAL_POST_CODE",
    "ARRIVAL_COUNTRY",
)
_VAT_TAX_COLUMNS = (
    "TAX_COLLECTION_RESPONSIBILITY",
    "TAX_REPORTING_SCHEME",
    "SALE_DEPART_COUNTRY",
    "DEPARTURE_COUNTRY",
    "SALE_ARRIVAL_COUNTRY",
    "ARRIVAL_COUNTRY",
    "EXPORT_OUTSIDE_EU",
    "TAXABLE_JURISDICTION",
    "VAT_CALCULATION_IMPUTATION_COUNTRY",
    "MARKETPLACE",
)
# What a reader keeps of the rows before (a product's charges, a route's taxes): each memo
# is emptied when it holds this many, so that a file of distinct values costs no more memory.
_MEMO_SIZE = 4096
# Joins the texts of a memo's key: one string hashes faster than a tuple of a dozen. No value
# that reaches a reader holds it, so that two keys never run together: a tab-separated file's
# values hold no tab, and no file's values hold U+FFFD (_damaged refuses those rows); the tab
# keeps keys of ASCII texts ASCII, which hash twice as fast.
_JOINS = {"\t": "\t", ";": "\ufffd", ",": "\ufffd"}

K = TypeVar("K")
V = TypeVar("V")


def _memo(memo: dict[K, V], key: K, value: V) -> V:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


class _VatReader:
    """The rows of one VAT transactions report as transactions. The columns are found once
    and each row is read by position. Most of a row repeats rows before it (a product's
    figures, the buyer over the rows of an order, a route and its taxes, the days of the
    month), so those parts are worked out once for each distinct set of texts the file writes
    for them, and kept; only a row's own texts are read every time."""

    __slots__ = (
        "_buyer",
        "_buyer_texts",
        "_buyer_texts_before",
        "_charge_texts",
        "_charges",
        "_join",
        "_own",
        "_shape_texts",
        "_shapes",
        "_tax_texts",
        "_taxes",
    )

    def __init__(self, header: _Header) -> None:
        at = header.positions

        def texts(columns: tuple[str, ...]) -> Callable[[list[str]], tuple[str, ...]]:
            return operator.itemgetter(*(at[column] for column in columns))

        self._join = _JOINS[header.delimiter]
        self._own = texts(_VAT_OWN_COLUMNS)
        self._shape_texts = texts(_VAT_SHAPE_COLUMNS)
        self._charge_texts = texts(_VAT_CHARGE_COLUMNS)
        self._buyer_texts = texts(_VAT_BUYER_COLUMNS)
        self._tax_texts = texts(_VAT_TAX_COLUMNS)
        self._shapes: dict[str, _VatShape] = {}
        self._charges: dict[str, _VatCharges] = {}
        self._taxes: dict[tuple[object, ...], tuple[TaxScheme, str | None]] = {}
        self._buyer_texts_before: tuple[str, ...] = ()
        self._buyer = Buyer()

    def transaction(self, values: list[str], source: SourceRef) -> Transaction:
        """The transaction of a row, or a BadValue naming the column as this module does."""
        join = self._join
        order_id, activity_id, invoice_number, sku, description = map(str.strip, self._own(values))
        shape_texts = self._shape_texts(values)
        key = join.join(shape_texts)
        shape = self._shapes.get(key)
        if shape is None or (shape.posted and not (order_id and activity_id)):
            # Read with care, which raises the first thing wrong in the order of the columns.
            shape = _memo(self._shapes, key, _vat_shape(shape_texts, order_id, activity_id))
        kind, posted, currency, quantity, marketplace, jurisdiction, day = shape
        key = join.join(self._charge_texts(values))
        found = self._charges.get(key)
        if found is None:
            found = _memo(self._charges, key, _vat_charges(key.split(join)))
        charges, figures, taxed = found
        buyer_texts = self._buyer_texts(values)
        if buyer_texts != self._buyer_texts_before:  # the rows of an order come together
            self._buyer, self._buyer_texts_before = _vat_buyer(buyer_texts), buyer_texts
        buyer = self._buyer
        amazon_vat = bool(jurisdiction) or figures
        if posted:
            has_vat_number = buyer.vat_number is not None
            tax_texts = self._tax_texts(values)
            # All a row's scheme and taxing country depend on (the day only before or after
            # the One-Stop Shop began).
            facts = (join.join(tax_texts), day < OSS_START, taxed, has_vat_number, amazon_vat)
            tax = self._taxes.get(facts)
            if tax is None:
                found_tax = _vat_tax(tax_texts, day, taxed, has_vat_number, amazon_vat)
                tax = _memo(self._taxes, facts, found_tax)
            scheme, tax_country = tax
        else:
            scheme, tax_country = TaxScheme.DOMESTIC, _country(jurisdiction, "TAXABLE_JURISDICTION")
        # By position, in the order of Transaction's fields: a third faster than by keyword.
        return Transaction(
            source,
            kind,
            marketplace,
            order_id,
            activity_id,
            invoice_number or None,
            day,
            currency,
            sku or None,
            description or None,
            quantity,
            charges,
            tax_country,
            scheme,
            buyer,
            amazon_vat,
        )


class _VatShape(NamedTuple):
    """What a row's _VAT_SHAPE_COLUMNS say."""

    kind: str
    posted: bool  # a type that becomes a document (the others are only counted)
    currency: str
    quantity: int
    marketplace: str | None
    jurisdiction: str  # TAXABLE_JURISDICTION as written
    day: date


def _vat_shape(texts: tuple[str, ...], order_id: str, activity_id: str) -> _VatShape:
    """The shape of a row from the texts of its _VAT_SHAPE_COLUMNS; its order and activity
    ids are checked here too, so that the first thing wrong is the one said."""
    kind, currency, quantity_text, marketplace, jurisdiction, *dates = map(str.strip, texts)
    kind = kind.upper()
    if not kind:
        raise BadValue("TRANSACTION_TYPE", "empty: every row needs a type")
    # Stock movements and returns are only counted: be lenient about what they leave blank.
    posted = kind in POSTED_TYPES
    for column, text in (
        ("TRANSACTION_EVENT_ID", order_id),
        ("ACTIVITY_TRANSACTION_ID", activity_id),
        ("TRANSACTION_CURRENCY_CODE", currency),
    ):
        if posted and not text:
            raise _needed(column, kind)
    currency = _parsed(currency, "TRANSACTION_CURRENCY_CODE", to_currency) or ""
    day = _vat_date(dates)
    if posted and not quantity_text:
        raise _needed("QTY", kind)
    quantity = _parsed(quantity_text, "QTY", _to_quantity) or 0
    if kind == TransactionType.REFUND:
        quantity = -abs(quantity)  # Amazon writes a refund's QTY with either sign
    return _VatShape(
        kind, posted, currency, quantity, marketplace.lower() or None, jurisdiction, day
    )


def _vat_date(texts: list[str]) -> date:
    """The day of a row from the texts of its _VAT_DATES: the first one written."""
    for column, text in zip(_VAT_DATES, texts, strict=True):
        if text:
            try:
                return _to_date(text)
            except ValueError as error:
                raise BadValue(column, str(error)) from None
    raise BadValue(_VAT_DATES[0], f"empty, and so are {', '.join(_VAT_DATES[1:])}: no date")


class _VatCharges(NamedTuple):
    """What the charge columns of a row say."""

    charges: tuple[Charge, ...]  # in the order of _VAT_CHARGES, but those with no amounts
    # Whether Amazon worked out the VAT of this row, as far as these columns tell: sellers
    # without Amazon's VAT calculation (and reports from before it) get VAT-inclusive amounts
    # only, no VAT, net or rate (nor jurisdiction). An explicit 0 is Amazon's figure (an
    # export, say), a blank is not.
    figures: bool
    taxed: bool  # whether any charge bears VAT


def _vat_charges(texts: list[str]) -> _VatCharges:
    """The charges of a row from the texts of its _VAT_CHARGE_COLUMNS."""
    stripped = [text.strip() for text in texts]
    charges = []
    for index in range(len(_VAT_CHARGES)):
        at = 4 * index
        charge = _vat_charge(index, *stripped[at : at + 4])
        if charge is not None:
            charges.append(charge)
    return _VatCharges(
        tuple(charges),
        any(stripped[at] for at in _VAT_FIGURES),
        any(charge.tax for charge in charges),
    )


# The same figures come back row after row (a product's price and shipping, zeros): each
# distinct set is worked out once, in a cache of bounded size. Charges are immutable.
@functools.lru_cache(maxsize=4096)
def _vat_charge(
    index: int, net_text: str, tax_text: str, gross_text: str, rate_text: str
) -> Charge | None:
    """The charge _VAT_CHARGES[index] from the texts of its four columns."""
    kind, net_column, tax_column, incl, rate_column = _VAT_CHARGES[index]
    net = _parsed(net_text, net_column, to_money)
    tax = _parsed(tax_text, tax_column, to_money)
    gross = _parsed(gross_text, incl, to_money)
    rate = _parsed(rate_text, rate_column, _to_rate)
    if gross is None:
        net = net if net is not None else ZERO
        tax = tax if tax is not None else _cents(net * (rate or 0))
    else:
        if tax is None:
            if net is not None:
                tax = gross - net
            else:
                tax = _cents(gross * rate / (1 + rate)) if rate else ZERO
        elif net is not None and abs(net + tax - gross) > CENT:
            raise BadValue(
                incl, f"{net} net + {tax} VAT = {net + tax}, not the VAT-inclusive {gross}"
            )
        # Amazon rounds each figure on its own, so net + VAT may miss the VAT-inclusive
        # amount by a cent: trust the VAT-inclusive and VAT figures (what the customer paid
        # and the invoice's VAT) and make net the difference, so documents total to the cent.
        net = gross - tax
    return _charge(kind, net, tax, rate)


def _vat_buyer(texts: tuple[str, ...]) -> Buyer:
    """The buyer from the texts of a row's _VAT_BUYER_COLUMNS."""
    name, number, vat_country, address, city, postcode, country = map(str.strip, texts)
    vat_country = vat_country.upper()
    vat_number = _vat_number(number, vat_country) if number else None  # most buyers have none
    if vat_number and not vat_country:
        vat_country = "GR" if vat_number.startswith("EL") else vat_number[:2]
    return Buyer(  # by position, as the transaction (see _VatReader.transaction)
        name or None,
        vat_number,
        vat_country if vat_number else None,
        address or None,
        city or None,
        postcode or None,
        country.upper() or None,
    )


def _vat_number(number: str, country: str) -> str | None:
    """One string with the country prefix, e.g. DE123456789 (Greece's prefix is EL)."""
    compact = _VAT_NUMBER_SEPARATORS.sub("", number).upper()
    if not compact:
        return None
    if compact[:2].isalpha() or not country:
        return compact
    return ("EL" if country == "GR" else country) + compact


# The Union One-Stop Shop (and the Import OSS) started on 1 July 2021 (Council Directive (EU)
# 2017/2455 as amended by 2020/1756); before it, cross-border sales were taxed as local sales.
OSS_START = date(2021, 7, 1)


def _reported_scheme(responsibility: str, reported: str) -> TaxScheme | None:
    """The scheme Amazon states (reports since July 2021 carry TAX_REPORTING_SCHEME and
    TAX_COLLECTION_RESPONSIBILITY, given here in capitals); None when it states none, or
    REGULAR (work it out).

    Tax that the marketplace collects (responsibility MARKETPLACE; the UK and Norwegian VOEC
    schemes; deemed-reseller IOSS) is Amazon's to remit, never the seller's VAT."""
    if responsibility not in ("", "SELLER", "MARKETPLACE"):
        raise BadValue(
            "TAX_COLLECTION_RESPONSIBILITY",
            f"{responsibility!r} is neither SELLER nor MARKETPLACE",
        )
    if responsibility == "MARKETPLACE":
        return TaxScheme.FACILITATOR
    if reported in ("", "REGULAR"):
        return None
    if "VOEC" in reported or reported.startswith("DEEMED_RESELLER"):
        return TaxScheme.FACILITATOR
    if "IOSS" in reported or reported == "IMPORT-OSS":
        return TaxScheme.IOSS
    if "OSS" in reported:
        return TaxScheme.OSS
    raise BadValue(
        "TAX_REPORTING_SCHEME",
        f"{reported!r} is not a tax reporting scheme this app knows (REGULAR, UNION-OSS, "
        "IMPORT-OSS, UK_VOEC-DOMESTIC, UK_VOEC-IMPORT, CH_VOEC, NO_VOEC, DEEMED_RESELLER-IOSS)",
    )


def _vat_tax(
    texts: tuple[str, ...], day: date, taxed: bool, has_vat_number: bool, amazon_vat: bool
) -> tuple[TaxScheme, str | None]:
    """The scheme and the taxing country of a row, from the texts of its _VAT_TAX_COLUMNS,
    its date, whether any charge bears VAT, whether the buyer gave a VAT number and whether
    Amazon calculated the VAT.

    The country is TAXABLE_JURISDICTION: it agrees with Amazon's VAT invoice and its rate.
    VAT_CALCULATION_IMPUTATION_COUNTRY is where Amazon imputed the calculation; on Pan-EU stock
    it can differ (taxed in Poland, shipped to Austria), so it only stands in when Amazon
    calculated the VAT of a domestic or distance sale but left the jurisdiction blank.

    Amazon's stated scheme wins. Otherwise: an export or an intra-EU B2B supply without VAT is
    taxed (at 0%) where the goods leave; a distance sale to an EU consumer is OSS from 1 July
    2021 when taxed in the arrival country (or when Amazon did not calculate the VAT), and
    before that date it is taxed where the goods leave unless Amazon says otherwise; the rest
    is a domestic sale of the taxing country.
    """
    (
        responsibility,
        reported,
        sale_depart,
        departure,
        sale_arrival,
        arrival,
        export,
        jurisdiction_text,
        imputed_text,
        marketplace,
    ) = (text.strip() for text in texts)
    scheme = _reported_scheme(responsibility.upper(), reported.upper())
    if scheme in (TaxScheme.OSS, TaxScheme.IOSS) and day < OSS_START:
        raise BadValue(
            "TAX_REPORTING_SCHEME",
            f"{reported} on {day.isoformat()}, but the One-Stop Shop "
            f"exists only from {OSS_START.isoformat()}",
        )
    depart = (sale_depart or departure).upper()
    arrive = (sale_arrival or arrival).upper()
    across = bool(depart and arrive and depart != arrive)
    if scheme is None:
        if export.upper() in ("YES", "Y", "TRUE"):
            scheme = TaxScheme.EXPORT
        elif across and has_vat_number and not taxed:
            scheme = TaxScheme.REVERSE_CHARGE
    jurisdiction = _country(jurisdiction_text, "TAXABLE_JURISDICTION")
    if scheme is None:
        distance_sale = across and depart in _EU and arrive in _EU
        # A stated REGULAR means the seller declares the sale in the taxing country's return.
        oss_possible = day >= OSS_START and not reported
        if distance_sale and oss_possible and (jurisdiction or arrive) == arrive:
            scheme = TaxScheme.OSS
        else:
            scheme = TaxScheme.DOMESTIC
    if jurisdiction:
        return scheme, jurisdiction
    if scheme in (TaxScheme.OSS, TaxScheme.IOSS) and arrive:
        return scheme, arrive
    if scheme in (TaxScheme.EXPORT, TaxScheme.REVERSE_CHARGE) and depart:
        return scheme, depart
    if amazon_vat and (imputed := _country(imputed_text, "VAT_CALCULATION_IMPUTATION_COUNTRY")):
        return scheme, imputed
    place = BY_DOMAIN.get(marketplace.lower())
    return scheme, depart or arrive or (place.country if place else None)


# --- settlement report V2 ---------------------------------------------------------------------

_REFUND_TYPES = frozenset({"refund", "chargeback refund", "a-to-z guarantee claim"})
# What the customer got back, by (amount-type, amount-description): (charge, is it the tax).
# Goodwill and restocking fees change what the customer gets back for the item, untaxed.
_REFUND_CHARGES: dict[tuple[str, str], tuple[ChargeKind, bool]] = {
    ("itemprice", "principal"): (ChargeKind.ITEM, False),
    ("itemprice", "tax"): (ChargeKind.ITEM, True),
    ("itemprice", "goodwill"): (ChargeKind.ITEM, False),
    ("itemprice", "restockingfee"): (ChargeKind.ITEM, False),
    ("itemprice", "shipping"): (ChargeKind.SHIPPING, False),
    ("itemprice", "shippingtax"): (ChargeKind.SHIPPING, True),
    ("itemprice", "giftwrap"): (ChargeKind.GIFT_WRAP, False),
    ("itemprice", "giftwraptax"): (ChargeKind.GIFT_WRAP, True),
    ("promotion", "principal"): (ChargeKind.ITEM_PROMOTION, False),
    ("promotion", "shipping"): (ChargeKind.SHIPPING_PROMOTION, False),
    ("promotion", "giftwrap"): (ChargeKind.GIFT_WRAP_PROMOTION, False),
}
# The rows of one refunded item share these; they come one after the other in the file.
_REFUND_KEY = (
    "transaction-type",
    "order-id",
    "adjustment-id",
    "shipment-id",
    "order-item-code",
    "merchant-adjustment-item-id",
    "posted-date-time",
    "posted-date",
)


def _settlement_items(
    records: Iterator[_Record | RowError], header: _Header, file_name: str
) -> Iterator[Transaction | RowError]:
    """Refunds of a settlement file. Amazon writes the settlement's currency (one settlement,
    one currency) only on its summary row, the first data row: detail rows leave it blank."""
    group: list[ReportRow] = []
    group_key: tuple[str, ...] | None = None
    currency = ""
    for record in records:
        if isinstance(record, RowError):
            yield record
            continue
        row = ReportRow(header, *record)
        kind = row.text("transaction-type").lower()
        if not kind and not currency and row.text("total-amount"):
            try:
                currency = _currency(row, "currency", False, "summary")
            except BadValue as bad:
                yield RowError(SourceRef(file_name, row.line), bad.column, bad.message)
        key = tuple(row.text(column) for column in _REFUND_KEY) if kind in _REFUND_TYPES else None
        if key != group_key:
            if group:
                yield from _refund(group, file_name, currency)
            group, group_key = [], key
        if key is not None:
            group.append(row)
    if group:
        yield from _refund(group, file_name, currency)


def _refund(
    rows: list[ReportRow], file_name: str, settlement_currency: str
) -> Iterator[Transaction | RowError]:
    """The refund of one item, from its consecutive rows; fees in them are not the customer's."""
    first = rows[0]
    amounts: dict[ChargeKind, list[Decimal]] = {}
    facilitator = False
    quantity = 0
    current = first
    try:
        for current in rows:
            amount_type = current.text("amount-type").lower()
            description = current.text("amount-description").lower()
            if amount_type == "itemwithheldtax" or description.startswith(
                ("marketplacefacilitator", "lowvaluegoodstax")
            ):
                facilitator = True
                continue
            if amount_type not in ("itemprice", "promotion"):
                continue  # Amazon's fees and their refunds
            spec = _REFUND_CHARGES.get((amount_type, description))
            if spec is None:
                raise BadValue(
                    current.label("amount-description"),
                    f"{current.text('amount-description')!r} under "
                    f"{current.text('amount-type')!r} is not a refund charge this app knows",
                )
            kind, is_tax = spec
            amount = row_value(current, "amount", to_money) or ZERO
            pair = amounts.setdefault(kind, [ZERO, ZERO])
            pair[int(is_tax)] += amount
            quantity = quantity or row_value(current, "quantity-purchased", _to_quantity) or 0
        current = first
        kind_name = first.text("transaction-type")
        order_id = _required(first, "order-id", True, kind_name)
        currency = _currency(first, "currency", False, kind_name)
        if not currency and not settlement_currency:
            raise BadValue(
                first.label("currency"),
                "empty, and no summary row (the first data row) gives the settlement's currency",
            )
        if currency and settlement_currency and currency != settlement_currency:
            raise BadValue(
                first.label("currency"),
                f"{currency}, but the settlement's summary row says {settlement_currency}",
            )
        currency = currency or settlement_currency
        posted = row_value(first, "posted-date", _to_date) or row_value(
            first, "posted-date-time", _to_date
        )
        if posted is None:
            raise BadValue(first.label("posted-date"), f"empty, but a {kind_name} row needs it")
    except BadValue as bad:
        yield RowError(
            SourceRef(file_name, current.line), bad.column, bad.message, first.order_id() or None
        )
        return
    charges = tuple(
        charge
        for kind in ChargeKind  # in the order of the contract, whatever the rows' order
        if kind in amounts and (charge := _charge(kind, *amounts[kind])) is not None
    )
    if not charges:
        return  # only Amazon's fees moved: nothing for the customer's document
    marketplace = first.text("marketplace-name").lower() or None
    place = BY_DOMAIN.get(marketplace or "")
    country = place.country if place else None
    facilitator = facilitator or country in _FACILITATOR_COUNTRIES
    yield Transaction(
        source=SourceRef(file_name, first.line),
        type=TransactionType.REFUND,
        marketplace=marketplace,
        order_id=order_id,
        activity_id=(
            first.text("adjustment-id")
            or first.text("shipment-id")
            or f"{order_id}@{first.text('posted-date-time') or first.text('posted-date')}"
        ),
        invoice_number=None,
        date=posted,
        currency=currency,
        sku=first.text("sku") or None,
        description=None,
        quantity=-abs(quantity),
        charges=charges,
        tax_country=country,
        scheme=TaxScheme.FACILITATOR if facilitator else TaxScheme.DOMESTIC,
        buyer=Buyer(),
    )


# --- all-orders report ------------------------------------------------------------------------


def _order_type(row: ReportRow) -> str:
    """SALE for a shipped item; the item's status wins over the order's (partial shipments)."""
    if row.text("sales-channel").lower() == "non-amazon":
        return "NON_AMAZON"  # Multi-Channel Fulfilment of another shop's order
    status = (row.text("item-status") or row.text("order-status")).lower()
    if status.startswith("shipped"):  # also "Shipped - Delivered to Buyer" and the like
        return TransactionType.SALE
    if status in ("cancelled", "canceled"):
        return "CANCELLED"
    if status.startswith(("pending", "unshipped", "partiallyshipped", "shipping")):
        return "PENDING"
    return re.sub(r"\W+", "_", status.upper()).strip("_") or "UNKNOWN"


def _order_transaction(header: _Header, values: list[str], source: SourceRef) -> Transaction:
    row = ReportRow(header, source.line, values)
    kind = _order_type(row)
    posted = kind in POSTED_TYPES
    order_id = _required(row, "amazon-order-id", posted, kind)
    day = row_value(row, "purchase-date", _to_date)
    if day is None:
        raise BadValue(row.label("purchase-date"), "empty, but every row needs it")

    def money(column: str) -> Decimal:
        return row_value(row, column, to_money) or ZERO

    def discount(column: str) -> Decimal:
        return -abs(money(column))  # a discount, whichever sign the file gives it

    parts = (
        (ChargeKind.ITEM, money("item-price"), money("item-tax")),
        (ChargeKind.ITEM_PROMOTION, discount("item-promotion-discount"), ZERO),
        (ChargeKind.SHIPPING, money("shipping-price"), money("shipping-tax")),
        (ChargeKind.SHIPPING_PROMOTION, discount("ship-promotion-discount"), ZERO),
        (ChargeKind.GIFT_WRAP, money("gift-wrap-price"), money("gift-wrap-tax")),
    )
    charges = tuple(
        charge
        for charge_kind, net, tax in parts
        if (charge := _charge(charge_kind, net, tax)) is not None
    )
    marketplace = None if kind == "NON_AMAZON" else row.text("sales-channel").lower() or None
    place = BY_DOMAIN.get(marketplace or "")
    country = place.country if place else None
    return Transaction(
        source=source,
        type=kind,
        marketplace=marketplace,
        order_id=order_id,
        activity_id=order_id,  # all items of an order make one invoice
        invoice_number=None,
        date=day,
        currency=_currency(row, "currency", posted, kind),
        sku=row.text("sku") or None,
        description=row.text("product-name") or None,
        quantity=_quantity(row, "quantity", posted, kind),
        charges=charges,
        tax_country=country,
        scheme=TaxScheme.FACILITATOR if country in _FACILITATOR_COUNTRIES else TaxScheme.DOMESTIC,
        buyer=Buyer(
            city=row.text("ship-city") or None,
            postcode=row.text("ship-postal-code") or None,
            country=row.text("ship-country").upper() or None,
        ),
    )
