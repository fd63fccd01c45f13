"""Report parsing: Amazon's real samples, the sandbox's generated reports, and what real files
do to a parser (encodings, locales, spreadsheets, misspelt and missing columns)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sandbox.amazon_reports import (
    ALL_ORDERS_HEADER,
    SETTLEMENT_HEADER,
    VAT_HEADER,
    generate_all_orders_report,
    generate_settlement_report,
    generate_vat_report,
)
from services.errors import ErrorKind, ServiceError
from services.report_files import read_report_file
from services.reports import ReportKind, parse_report, report_kind
from services.transactions import (
    Buyer,
    Charge,
    ChargeKind,
    RowError,
    SourceRef,
    TaxScheme,
    Transaction,
)
from tests.conftest import SHARED

SAMPLES = SHARED / "samples" / "amazon"
VAT_XLSX = SAMPLES / "vat-transactions-row" / "sheet_with_strict_ooxml.xlsx"
VAT_CSV = SAMPLES / "vat-transactions-row" / "sheet_with_strict_ooxml.derived.csv"
SETTLEMENT = SAMPLES / "settlement-v2" / "settlement-sample.txt"
AIRBYTE = SAMPLES / "airbyte-sp-api-records"
ALL_ORDERS = AIRBYTE / "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL.reconstructed.tsv"

DE, GB, FR, PL, SE, IT, ES = (
    "A1PA6795UKMFR9",
    "A1F83G8C2ARO7P",
    "A13V1IB3VIYZZH",
    "A1C3SOZRARQ6R3",
    "A2NODRKZP88ZB9",
    "APJ6JRA9NG5V4",
    "A1RKKUPIHCS9HS",
)
US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"
JUNE = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 16, tzinfo=UTC))
D = Decimal

# A domestic German sale, as the VAT report writes it.
SALE: dict[str, str] = {
    "MARKETPLACE": "amazon.de",
    "TRANSACTION_TYPE": "SALE",
    "TRANSACTION_EVENT_ID": "302-1234567-7654321",
    "ACTIVITY_TRANSACTION_ID": "Ab12Cd34E",
    "TAX_CALCULATION_DATE": "31-03-2026",
    "TRANSACTION_DEPART_DATE": "31-03-2026",
    "TRANSACTION_COMPLETE_DATE": "31-03-2026",
    "SELLER_SKU": "NX-SCALE",
    "ITEM_DESCRIPTION": "Küchenwaage 5 kg",
    "QTY": "1",
    "PRICE_OF_ITEMS_AMT_VAT_EXCL": "16.80",
    "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.19",
    "PRICE_OF_ITEMS_VAT_AMT": "3.19",
    "PRICE_OF_ITEMS_AMT_VAT_INCL": "19.99",
    "TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL": "19.99",
    "TRANSACTION_CURRENCY_CODE": "EUR",
    "DEPATURE_CITY": "Leipzig",
    "DEPARTURE_COUNTRY": "DE",
    "ARRIVAL_CITY": "Berlin",
    "ARRIVAL_COUNTRY": "DE",
    "ARRIVAL_POST_CODE": "10115",
    "SALE_DEPART_COUNTRY": "DE",
    "SALE_ARRIVAL_COUNTRY": "DE",
    "VAT_CALCULATION_IMPUTATION_COUNTRY": "DE",
    "TAXABLE_JURISDICTION": "GERMANY",
    "VAT_INV_NUMBER": "DE-AEU-2026-1",
    "EXPORT_OUTSIDE_EU": "NO",
    "BUYER_NAME": "Anna Schmidt",
    "ARRIVAL_ADDRESS": "Invalidenstraße 12",
}
SALE_ITEM = Charge(ChargeKind.ITEM, D("16.80"), D("3.19"), D("19.99"), D("0.19"))


def vat_line(values: dict[str, str], header: tuple[str, ...] = VAT_HEADER, sep: str = "\t") -> str:
    if sep == "\t":  # as Amazon writes its flat files: no quoting
        return "\t".join(values.get(column, "") for column in header)
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=sep, lineterminator="\n").writerow(
        [values.get(column, "") for column in header]
    )
    return buffer.getvalue().removesuffix("\n")


def written(amount: str) -> Decimal:
    """An amount as Amazon writes it, with a decimal point (UK, NA) or comma (EU)."""
    return D(amount.replace(",", ".") or "0")


def vat_file(*rows: dict[str, str], header: tuple[str, ...] = VAT_HEADER) -> list[str]:
    return [vat_line({c: c for c in header}, header), *(vat_line(row, header) for row in rows)]


def parse(lines: list[str], name: str = "vat.txt") -> list[Transaction | RowError]:
    return list(parse_report(lines, file_name=name))


def only_transaction(lines: list[str]) -> Transaction:
    items = parse(lines)
    assert len(items) == 1 and isinstance(items[0], Transaction), items
    return items[0]


def only_error(lines: list[str]) -> RowError:
    items = parse(lines)
    assert len(items) == 1 and isinstance(items[0], RowError), items
    return items[0]


def transactions(items: list[Transaction | RowError]) -> list[Transaction]:
    errors = [item for item in items if isinstance(item, RowError)]
    assert errors == []
    return [item for item in items if isinstance(item, Transaction)]


# --- the real samples ------------------------------------------------------------------------

SAMPLE_SALE = Transaction(
    source=SourceRef("sheet_with_strict_ooxml.xlsx", 2),
    type="SALE",
    marketplace="amazon.es",
    order_id="408-9590879-6335512",
    activity_id="DcsTwLyp7",
    invoice_number=None,
    date=date(2020, 3, 31),
    currency="EUR",
    sku="HC-CG-UK",
    description=(
        "Oliver James Molinillo de Caf√© Manual | La Mejor Colecci√≥n de Henry Charles | "
        "De Acero Inoxidable con Moledores Ajustable de Cer√°mica - Tama√±o Compacto hogar, "
        "la Oficina o los Viajes"
    ),
    quantity=1,
    charges=(
        # Amazon computed no VAT (the seller does not use its VAT calculation): only the
        # VAT-inclusive amounts are known, flagged by amazon_vat=False.
        Charge(ChargeKind.ITEM, D("19.99"), D("0.00"), D("19.99"), D(0)),
        Charge(ChargeKind.SHIPPING, D("0.31"), D("0.00"), D("0.31"), D(0)),
        Charge(ChargeKind.SHIPPING_PROMOTION, D("-0.31"), D("0.00"), D("-0.31"), D(0)),
    ),
    # A distance sale from Spain to Portugal in March 2020, before the One-Stop Shop: taxed
    # where it was supplied from.
    tax_country="ES",
    scheme=TaxScheme.DOMESTIC,
    buyer=Buyer(city="LISBOA", postcode="1700-233", country="PT"),
    amazon_vat=False,
)


def test_real_vat_report_in_strict_ooxml() -> None:
    lines = list(read_report_file(VAT_XLSX))
    assert len(lines) == 2  # the ~6,800 formatted but empty rows make no lines
    assert lines[0].split("\t")[:2] == ["UNIQUE_ACCOUNT_IDENTIFIER", "ACTIVITY_PERIOD"]
    assert len(lines[1].split("\t")) == 70  # up to the last filled cell, SALE_ARRIVAL_COUNTRY

    items = parse(lines, VAT_XLSX.name)

    assert items == [SAMPLE_SALE]
    assert SAMPLE_SALE.gross == D("19.99") and SAMPLE_SALE.tax == 0


def test_real_vat_report_csv_gives_the_same_transaction() -> None:
    items = list(parse_report(read_report_file(VAT_CSV), file_name=VAT_CSV.name))

    assert items == [replace(SAMPLE_SALE, source=SourceRef(VAT_CSV.name, 2))]


def test_real_settlement_sample_gives_its_refund() -> None:
    items = transactions(parse(list(read_report_file(SETTLEMENT)), SETTLEMENT.name))

    assert items == [
        Transaction(
            source=SourceRef(SETTLEMENT.name, 14),
            type="REFUND",
            marketplace="amazon.com",
            order_id="112-5561209-7742044",
            activity_id="DS7K9LM1A",  # no adjustment id in this file: the refund's shipment
            invoice_number=None,
            date=date(2026, 6, 22),
            currency="USD",
            sku="NX-HD-1200",
            description=None,
            quantity=-1,  # quantity-purchased is 1: negative, as the VAT report writes refunds
            charges=(Charge(ChargeKind.ITEM, D("-129.99"), D("0.00"), D("-129.99"), D(0)),),
            tax_country="US",
            scheme=TaxScheme.FACILITATOR,
            buyer=Buyer(),
        )
    ]
    # The customer's money in the file (refund rows, not Amazon's fees) is what we post.
    with SETTLEMENT.open(newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    refunded = sum(
        D(row["amount"])
        for row in rows
        if row["transaction-type"] == "Refund" and row["amount-type"] in ("ItemPrice", "Promotion")
    )
    assert sum(item.gross for item in items) == refunded == D("-129.99")


def test_real_all_orders_sample_cancelled_orders_are_skipped() -> None:
    records = [
        json.loads(line)["data"]
        for line in (AIRBYTE / "expected_records_subset.jsonl").read_text().splitlines()
        if json.loads(line)["stream"] == "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
    ]

    items = transactions(parse(list(read_report_file(ALL_ORDERS)), ALL_ORDERS.name))

    assert len(items) == len(records) == 15
    for item, record in zip(items, records, strict=True):
        assert item.type == "CANCELLED"
        assert item.order_id == item.activity_id == record["amazon-order-id"]
        assert item.date == date.fromisoformat(record["purchase-date"][:10])
        assert item.currency == record["currency"]
        assert item.sku == record["sku"] and item.description == record["product-name"]
        assert item.quantity == int(record["quantity"])
        price = D(record["item-price"] or 0) + D(record["item-tax"] or 0)
        assert item.gross == price
        assert item.buyer == Buyer(
            city=record["ship-city"],
            postcode=record["ship-postal-code"],
            country=record["ship-country"],
        )
        assert item.tax_country == "US" and item.scheme == TaxScheme.FACILITATOR


# --- the sandbox's reports --------------------------------------------------------------------


def test_generated_vat_report_reads_without_errors_and_totals_to_amazon() -> None:
    lines = list(
        generate_vat_report(period="2026-03", marketplace_ids=[DE, GB, FR, PL, SE], seed=11)
    )

    items = transactions(parse(lines))

    assert len(items) == len(lines) - 1
    for item in items:
        for charge in item.charges:
            assert charge.net + charge.tax == charge.gross
            assert charge.gross == charge.gross.quantize(D("0.01"))
    gross: dict[str, Decimal] = defaultdict(Decimal)
    for item in items:
        gross[item.currency] += item.gross
    amazon: dict[str, Decimal] = defaultdict(Decimal)
    for row in csv.DictReader(lines, delimiter="\t"):
        if row["TRANSACTION_CURRENCY_CODE"]:  # returns and movements carry no money
            amazon[row["TRANSACTION_CURRENCY_CODE"]] += written(
                row["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"]
            )
    assert {c: g for c, g in gross.items() if c} == amazon
    assert set(amazon) == {"EUR", "GBP", "PLN", "SEK"}

    assert {item.scheme for item in items} == {
        TaxScheme.DOMESTIC,
        TaxScheme.OSS,
        TaxScheme.REVERSE_CHARGE,
        TaxScheme.EXPORT,
        TaxScheme.FACILITATOR,  # VAT Amazon collects as deemed reseller (UK VOEC, IOSS)
    }
    assert set(Counter(item.type for item in items)) == {
        "SALE",
        "REFUND",
        "RETURN",
        "FC_TRANSFER",
        "INBOUND",
    }
    posted = [item for item in items if item.type in ("SALE", "REFUND")]
    assert all(item.tax_country for item in posted)
    # Refund rows carry no address: their contact is their order's (services/sync.py).
    assert all(item.buyer.country for item in posted if item.type == "SALE")
    assert all(item.quantity < 0 for item in posted if item.type == "REFUND")
    reverse = [item for item in items if item.scheme == TaxScheme.REVERSE_CHARGE]
    assert all(
        item.buyer.vat_number and item.buyer.vat_number[:2] == item.buyer.vat_country
        for item in reverse
    )
    oss = [item for item in items if item.scheme == TaxScheme.OSS]
    assert all(item.tax_country == item.buyer.country for item in oss if item.type == "SALE")


@pytest.mark.parametrize(
    ("market", "scheme"), [(US, TaxScheme.FACILITATOR), (DE, TaxScheme.DOMESTIC)]
)
def test_generated_settlement_report_gives_the_refunds(market: str, scheme: TaxScheme) -> None:
    lines = list(generate_settlement_report(period=JUNE, marketplace_id=market, seed=5, orders=400))

    items = transactions(parse(lines, "settlement.txt"))

    rows = list(csv.DictReader(lines, delimiter="\t"))
    refunds = [row for row in rows if row["transaction-type"] == "Refund"]
    assert (
        len(items)
        == len({(row["order-id"], row["shipment-id"], row["order-item-code"]) for row in refunds})
        > 10
    )
    # Where Amazon collected the VAT itself, it hands it back in the refund: not the seller's.
    collected = {
        row["order-id"] for row in refunds if row["amount-description"].startswith("Marketplace")
    }
    assert all(item.type == "REFUND" for item in items)
    assert all(
        item.scheme == (TaxScheme.FACILITATOR if item.order_id in collected else scheme)
        for item in items
    )
    customer = [row for row in refunds if row["amount-type"] in ("ItemPrice", "Promotion")]
    assert sum(item.gross for item in items) == sum(written(row["amount"]) for row in customer)
    assert sum(item.tax for item in items) == sum(
        written(row["amount"])
        for row in customer
        if row["amount-description"] in ("Tax", "ShippingTax", "GiftWrapTax")
    )
    for item in items:
        assert item.gross < 0 and item.quantity < 0
        assert all(charge.net + charge.tax == charge.gross for charge in item.charges)


@pytest.mark.parametrize(
    ("market", "scheme"), [(US, TaxScheme.FACILITATOR), (CA, TaxScheme.DOMESTIC)]
)
def test_generated_all_orders_report_gives_shipped_items_as_sales(
    market: str, scheme: TaxScheme
) -> None:
    lines = list(generate_all_orders_report(period=JUNE, marketplace_id=market, seed=5, orders=300))

    items = transactions(parse(lines, "orders.txt"))

    rows = list(csv.DictReader(lines, delimiter="\t"))
    assert len(items) == len(rows)
    expected = {"Shipped": "SALE", "Cancelled": "CANCELLED", "Pending": "PENDING"}
    assert [item.type for item in items] == [expected[row["order-status"]] for row in rows]
    assert {item.scheme for item in items} == {scheme}
    sales = [item for item in items if item.type == "SALE"]
    shipped = [row for row in rows if row["order-status"] == "Shipped"]
    columns = (
        "item-price",
        "item-tax",
        "shipping-price",
        "shipping-tax",
        "item-promotion-discount",
    )
    assert sum(item.gross for item in sales) == sum(
        D(row[column] or 0) for row in shipped for column in columns
    )
    assert any(
        charge.kind == ChargeKind.ITEM_PROMOTION for item in sales for charge in item.charges
    )
    assert all(item.activity_id == item.order_id and item.quantity > 0 for item in sales)


# --- tolerances -------------------------------------------------------------------------------


def test_bom_and_crlf() -> None:
    header, row = vat_file(SALE)

    item = only_transaction(["\ufeff" + header + "\r\n", row + "\r\n"])

    assert item.charges == (SALE_ITEM,)
    assert item.source == SourceRef("vat.txt", 2)


def test_the_sale_reads_completely() -> None:
    item = only_transaction(vat_file(SALE))

    assert item == Transaction(
        source=SourceRef("vat.txt", 2),
        type="SALE",
        marketplace="amazon.de",
        order_id="302-1234567-7654321",
        activity_id="Ab12Cd34E",
        invoice_number="DE-AEU-2026-1",
        date=date(2026, 3, 31),
        currency="EUR",
        sku="NX-SCALE",
        description="Küchenwaage 5 kg",
        quantity=1,
        charges=(SALE_ITEM,),
        tax_country="DE",
        scheme=TaxScheme.DOMESTIC,
        buyer=Buyer(
            name="Anna Schmidt",
            address="Invalidenstraße 12",
            city="Berlin",
            postcode="10115",
            country="DE",
        ),
    )


@pytest.mark.parametrize(
    ("written", "day"),
    [
        ("31-03-2026", date(2026, 3, 31)),
        ("31.03.2026", date(2026, 3, 31)),
        ("2026-03-31", date(2026, 3, 31)),
        ("1.4.2026", date(2026, 4, 1)),
        ("2026-03-31T08:14:22", date(2026, 3, 31)),
        ("2026-03-31 08:14:22 UTC", date(2026, 3, 31)),
        ("2026-03-31T23:30:00-02:00", date(2026, 4, 1)),  # 01:30 UTC on the 1st
        ("2026-04-01T00:30:00+02:00", date(2026, 3, 31)),
        ("2026-03-31T08:14:22Z", date(2026, 3, 31)),
    ],
)
def test_date_formats(written: str, day: date) -> None:
    item = only_transaction(vat_file({**SALE, "TRANSACTION_COMPLETE_DATE": written}))

    assert item.date == day


def test_date_falls_back_to_tax_calculation_then_departure() -> None:
    no_complete = {**SALE, "TRANSACTION_COMPLETE_DATE": "", "TAX_CALCULATION_DATE": "30-03-2026"}
    departure_only = {
        **no_complete,
        "TAX_CALCULATION_DATE": "",
        "TRANSACTION_DEPART_DATE": "29-03-2026",
    }

    items = transactions(parse(vat_file(no_complete, departure_only)))

    assert [item.date for item in items] == [date(2026, 3, 30), date(2026, 3, 29)]


def test_decimal_commas_and_percentages_in_a_semicolon_file() -> None:
    german = {
        **SALE,
        "PRICE_OF_ITEMS_AMT_VAT_EXCL": "1.680,67",
        "PRICE_OF_ITEMS_VAT_AMT": "319,33",
        "PRICE_OF_ITEMS_AMT_VAT_INCL": "2.000,00",
        "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "19%",
        "ITEM_DESCRIPTION": "Waage; digital",
    }
    lines = [vat_line({c: c for c in VAT_HEADER}, sep=";"), vat_line(german, sep=";")]

    item = only_transaction(lines)

    assert item.charges == (
        Charge(ChargeKind.ITEM, D("1680.67"), D("319.33"), D("2000.00"), D("0.19")),
    )
    assert item.description == "Waage; digital"


@pytest.mark.parametrize(
    ("written", "amount"),
    [
        ("19,99", D("19.99")),
        ("1,234.56", D("1234.56")),
        ("1.234,56", D("1234.56")),
        ("1 234,56", D("1234.56")),
        ("1,234,567.00", D("1234567.00")),
        ("0,055", D("0.06")),
        ("19.989999999999998", D("19.99")),  # a spreadsheet's float
        ("20.004999", D("20.00")),
        ("20.005", D("20.01")),  # half-up
        ("-3.335", D("-3.34")),
        ("2E1", D("20.00")),
    ],
)
def test_amount_formats(written: str, amount: Decimal) -> None:
    row = {**SALE, "PRICE_OF_ITEMS_AMT_VAT_INCL": written, "PRICE_OF_ITEMS_AMT_VAT_EXCL": ""}
    row |= {"PRICE_OF_ITEMS_VAT_AMT": "0", "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0"}

    item = only_transaction(vat_file(row))

    assert item.gross == amount


@pytest.mark.parametrize("written", ["0.19", "19", "19%", "19 %", "19,0", "0.19000000000000003"])
def test_rate_formats(written: str) -> None:
    item = only_transaction(vat_file({**SALE, "PRICE_OF_ITEMS_VAT_RATE_PERCENT": written}))

    assert item.charges[0].rate == D("0.19")


def test_reduced_rates_keep_their_precision() -> None:
    row = {**SALE, "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "5.5", "PRICE_OF_ITEMS_AMT_VAT_EXCL": ""}
    row |= {"PRICE_OF_ITEMS_VAT_AMT": "", "PRICE_OF_ITEMS_AMT_VAT_INCL": "21.10"}

    item = only_transaction(vat_file(row))

    # Only the VAT-inclusive price is given: VAT is worked out from the rate.
    assert item.charges == (Charge(ChargeKind.ITEM, D("20.00"), D("1.10"), D("21.10"), D("0.055")),)


def test_float_noise_from_a_spreadsheet() -> None:
    noisy = {
        **SALE,
        "PRICE_OF_ITEMS_AMT_VAT_EXCL": "16.799999999999997",
        "PRICE_OF_ITEMS_VAT_AMT": "3.1900000000000004",
        "PRICE_OF_ITEMS_AMT_VAT_INCL": "19.989999999999998",
        "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.19000000000000003",
        "QTY": "1.0",
    }

    item = only_transaction(vat_file(noisy))

    assert item.charges == (SALE_ITEM,) and item.quantity == 1


def test_one_cent_gap_trusts_the_vat_inclusive_amount() -> None:
    row = {**SALE, "PRICE_OF_ITEMS_AMT_VAT_EXCL": "16.81"}  # 16.81 + 3.19 = 20.00, not 19.99

    item = only_transaction(vat_file(row))

    assert item.charges == (SALE_ITEM,)


def test_missing_trailing_columns_read_as_empty() -> None:
    header, row = vat_file(SALE)
    cut = "\t".join(row.split("\t")[: VAT_HEADER.index("TRANSACTION_CURRENCY_CODE") + 1])

    item = only_transaction([header, cut])

    assert item.charges == (SALE_ITEM,)
    assert item.buyer == Buyer() and item.invoice_number is None
    assert item.tax_country == "DE"  # no jurisdiction and no countries: the marketplace's


def test_column_names_in_any_case_and_spelling() -> None:
    fixed = tuple("DEPARTURE_CITY" if c == "DEPATURE_CITY" else c for c in VAT_HEADER)
    lower = tuple(c.lower() for c in VAT_HEADER)
    expected = only_transaction(vat_file(SALE))

    for header in (fixed, lower):
        lines = [vat_line({c: c for c in header}, header), vat_line(SALE)]
        assert only_transaction(lines) == expected


def test_quoted_fields_in_a_comma_file() -> None:
    row = {**SALE, "ITEM_DESCRIPTION": 'Waage "Präzision", 5 kg', "BUYER_NAME": "Schmidt, Anna"}
    lines = [vat_line({c: c for c in VAT_HEADER}, sep=","), vat_line(row, sep=",")]

    item = only_transaction(lines)

    assert item.description == 'Waage "Präzision", 5 kg'
    assert item.buyer.name == "Schmidt, Anna"


def test_a_quote_in_amazons_tab_separated_file_is_data() -> None:
    # Amazon's flat files are not quoted: an opening quote that is never closed used to
    # swallow the rows after it (3 invoices and 2 credit notes became 1 and 1).
    rows = [
        {**SALE, "TRANSACTION_EVENT_ID": f"302-0000000-000000{n}", "ITEM_DESCRIPTION": text}
        for n, text in enumerate(['"Waage 5 kg', "Waage", 'Zoll 12" Display', "x"])
    ]

    items = transactions(parse(vat_file(*rows)))

    assert [item.description for item in items] == [
        '"Waage 5 kg',
        "Waage",
        'Zoll 12" Display',
        "x",
    ]


def test_a_quoted_value_over_two_lines_of_a_comma_file_is_refused_with_its_lines() -> None:
    header = vat_line({c: c for c in VAT_HEADER}, sep=",")
    broken = vat_line({**SALE, "ITEM_DESCRIPTION": "Waage\nrot"}, sep=",")
    unclosed = vat_line({**SALE, "ITEM_DESCRIPTION": '"Waage'}, sep=",").replace(
        '"""Waage"', '"Waage'
    )
    lines = [
        header,
        *broken.split("\n"),
        vat_line(SALE, sep=","),
        unclosed,
        vat_line(SALE, sep=","),
    ]

    items = parse(lines)

    assert [type(item).__name__ for item in items] == ["RowError", "Transaction", "RowError"]
    first, _, last = items
    assert isinstance(first, RowError) and isinstance(last, RowError)
    assert first.source.line == 2 and "not closed before line 3" in first.message
    assert last.source.line == 5 and "lines 5 to 6 were not read" in last.message


def test_blank_rows_yield_nothing() -> None:
    header, row = vat_file(SALE)

    items = parse([header, "", row, "\t" * 91, "   ", row])

    assert [item.source.line for item in items] == [3, 6]


def test_skipped_types_are_read_leniently() -> None:
    transfer = {
        "TRANSACTION_TYPE": "FC_TRANSFER",
        "TRANSACTION_EVENT_ID": "12345678901",
        "TRANSACTION_DEPART_DATE": "02-03-2026",
        "TRANSACTION_ARRIVAL_DATE": "04-03-2026",
        "QTY": "",
        "PRICE_OF_ITEMS_AMT_VAT_INCL": "64.00",
        "TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL": "64.00",
    }
    inbound = {"TRANSACTION_TYPE": "Inbound", "TRANSACTION_ARRIVAL_DATE": "05-03-2026"}

    first, second = transactions(parse(vat_file(transfer, inbound)))

    assert (first.type, first.date, first.currency, first.quantity) == (
        "FC_TRANSFER",
        date(2026, 3, 2),
        "",
        0,
    )
    assert first.gross == D("64.00") and first.tax_country is None
    assert (second.type, second.date, second.charges) == ("INBOUND", date(2026, 3, 5), ())


@pytest.mark.parametrize(
    ("changes", "scheme", "tax_country"),
    [
        ({}, TaxScheme.DOMESTIC, "DE"),
        (
            {
                "SALE_ARRIVAL_COUNTRY": "FR",
                "ARRIVAL_COUNTRY": "FR",
                "TAXABLE_JURISDICTION": "FRANCE",
            }
            | {"VAT_CALCULATION_IMPUTATION_COUNTRY": "", "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.2"},
            TaxScheme.OSS,
            "FR",
        ),
        (
            {
                "SALE_ARRIVAL_COUNTRY": "IT",
                "ARRIVAL_COUNTRY": "IT",
                "BUYER_VAT_NUMBER_COUNTRY": "IT",
            }
            | {"BUYER_VAT_NUMBER": "IT 0143 8580 154", "PRICE_OF_ITEMS_VAT_AMT": "0.00"}
            | {"PRICE_OF_ITEMS_AMT_VAT_EXCL": "19.99", "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0"},
            TaxScheme.REVERSE_CHARGE,
            "DE",
        ),
        (
            {"SALE_ARRIVAL_COUNTRY": "CH", "ARRIVAL_COUNTRY": "CH", "EXPORT_OUTSIDE_EU": "YES"},
            TaxScheme.EXPORT,
            "DE",
        ),
        (
            {"SALE_DEPART_COUNTRY": "GB", "SALE_ARRIVAL_COUNTRY": "GB", "TAXABLE_JURISDICTION": ""}
            | {"VAT_CALCULATION_IMPUTATION_COUNTRY": "UNITED KINGDOM"},
            TaxScheme.DOMESTIC,
            "GB",
        ),
        (
            {"VAT_CALCULATION_IMPUTATION_COUNTRY": "", "TAXABLE_JURISDICTION": "CZECH REPUBLIC"},
            TaxScheme.DOMESTIC,
            "CZ",
        ),
    ],
)
def test_schemes_and_tax_country(
    changes: dict[str, str], scheme: TaxScheme, tax_country: str
) -> None:
    item = only_transaction(vat_file({**SALE, **changes}))

    assert (item.scheme, item.tax_country) == (scheme, tax_country)


@pytest.mark.parametrize(
    ("number", "country", "expected"),
    [
        ("DE123456789", "DE", "DE123456789"),
        ("123456789", "DE", "DE123456789"),
        ("U 123.456.78", "AT", "ATU12345678"),
        ("B-1234567-8", "ES", "ESB12345678"),
        ("094259216", "GR", "EL094259216"),
        ("fr 40 303265045", "", "FR40303265045"),
    ],
)
def test_buyer_vat_number_carries_its_country_prefix(
    number: str, country: str, expected: str
) -> None:
    row = {**SALE, "BUYER_VAT_NUMBER": number, "BUYER_VAT_NUMBER_COUNTRY": country}

    buyer = only_transaction(vat_file(row)).buyer

    assert buyer.vat_number == expected
    assert buyer.vat_country == (country or expected[:2])


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "written", "message"),
    [
        (
            "TRANSACTION_COMPLETE_DATE",
            "31/02/2026",
            "'31/02/2026' is not a date (expected DD-MM-YYYY, DD.MM.YYYY or YYYY-MM-DD)",
        ),
        (
            "TRANSACTION_COMPLETE_DATE",
            "31-02-2026",
            "'31-02-2026' is not a date (expected DD-MM-YYYY, DD.MM.YYYY or YYYY-MM-DD)",
        ),
        ("PRICE_OF_ITEMS_VAT_AMT", "3,19 EUR", "'3,19 EUR' is not an amount"),
        ("PRICE_OF_ITEMS_AMT_VAT_EXCL", "NaN", "'NaN' is not an amount"),
        (
            "PRICE_OF_ITEMS_AMT_VAT_INCL",
            "1,999",
            "'1,999' is ambiguous: the comma may separate thousands or decimals "
            "(write 1999 or 1.999)",
        ),
        ("PRICE_OF_ITEMS_VAT_RATE_PERCENT", "190%", "'190%' is not a VAT rate"),
        ("QTY", "1.5", "'1.5' is not a whole quantity"),
        ("TRANSACTION_CURRENCY_CODE", "EURO", "'EURO' is not a currency code"),
        ("TRANSACTION_CURRENCY_CODE", "", "empty, but a SALE row needs it"),
        ("ACTIVITY_TRANSACTION_ID", "", "empty, but a SALE row needs it"),
        ("TAXABLE_JURISDICTION", "ATLANTIS", "'ATLANTIS' is not a country this app knows"),
    ],
)
def test_unreadable_values_are_row_errors(column: str, written: str, message: str) -> None:
    row = {**SALE, column: written}
    if column == "TAXABLE_JURISDICTION":
        row["VAT_CALCULATION_IMPUTATION_COUNTRY"] = ""

    error = only_error(vat_file(row))

    assert error == RowError(SourceRef("vat.txt", 2), column, message, "302-1234567-7654321")


def test_net_plus_vat_must_make_the_vat_inclusive_amount() -> None:
    row = {**SALE, "PRICE_OF_ITEMS_AMT_VAT_EXCL": "16.70"}

    error = only_error(vat_file(row))

    assert error == RowError(
        SourceRef("vat.txt", 2),
        "PRICE_OF_ITEMS_AMT_VAT_INCL",
        "16.70 net + 3.19 VAT = 19.89, not the VAT-inclusive 19.99",
        "302-1234567-7654321",
    )
    assert error.describe() == (
        "vat.txt, line 2, column PRICE_OF_ITEMS_AMT_VAT_INCL: "
        "16.70 net + 3.19 VAT = 19.89, not the VAT-inclusive 19.99"
    )


def test_errors_name_the_column_as_the_file_spells_it() -> None:
    header = tuple(c.lower() for c in VAT_HEADER)
    lines = [vat_line({c: c for c in header}, header), vat_line({**SALE, "QTY": "x"})]

    error = only_error(lines)

    assert error.column == "qty"


def test_a_bad_row_in_the_middle_does_not_stop_the_rest() -> None:
    bad = {**SALE, "TRANSACTION_EVENT_ID": "302-0000000-0000000", "TAX_CALCULATION_DATE": ""}
    bad["TRANSACTION_COMPLETE_DATE"] = "2026-13-01"
    lines = vat_file(SALE, SALE, bad, SALE)
    wide = len(VAT_HEADER) + 3
    lines.insert(3, "\t".join(["x"] * wide))  # more fields than the header: a stray tab

    items = parse(lines)

    assert [type(item).__name__ for item in items] == [
        "Transaction",
        "Transaction",
        "RowError",
        "RowError",
        "Transaction",
    ]
    too_wide, bad_date = items[2], items[3]
    assert isinstance(too_wide, RowError) and isinstance(bad_date, RowError)
    assert too_wide.source.line == 4 and too_wide.column is None
    assert f"{wide} fields but the header has {len(VAT_HEADER)} columns" in too_wide.message
    assert bad_date == RowError(
        SourceRef("vat.txt", 5),
        "TRANSACTION_COMPLETE_DATE",
        "'2026-13-01' is not a date (expected DD-MM-YYYY, DD.MM.YYYY or YYYY-MM-DD)",
        "302-0000000-0000000",
    )
    assert items[4].source.line == 6


def test_a_line_the_csv_module_cannot_read_is_a_row_error() -> None:
    header, row = vat_file(SALE)

    items = parse([header, row.replace("Berlin", "Ber\rlin"), row])

    assert isinstance(items[0], RowError) and items[0].source.line == 2
    assert isinstance(items[1], Transaction) and items[1].source.line == 3


def test_unknown_header_is_bad_data() -> None:
    with pytest.raises(ServiceError) as raised:
        list(parse_report(["date,description,amount", "1,2,3"], file_name="bank.csv"))

    assert raised.value.kind == ErrorKind.BAD_DATA and raised.value.retryable is False
    assert raised.value.message.startswith("bank.csv: the first line is not the header")
    assert "TRANSACTION_EVENT_ID" in raised.value.message
    assert "settlement-id" in raised.value.message
    assert "amazon-order-id" in raised.value.message


def test_empty_file_is_bad_data() -> None:
    with pytest.raises(ServiceError, match=r"empty\.txt is empty"):
        list(parse_report(["", "  "], file_name="empty.txt"))


def test_header_only_file_yields_nothing() -> None:
    assert parse(vat_file()) == []


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("\t".join(VAT_HEADER), ReportKind.VAT_TRANSACTIONS),
        ("\ufeff" + ",".join(c.lower() for c in VAT_HEADER), ReportKind.VAT_TRANSACTIONS),
        (";".join(f'"{c}"' for c in VAT_HEADER) + "\r\n", ReportKind.VAT_TRANSACTIONS),
        ("\t".join(SETTLEMENT_HEADER), ReportKind.SETTLEMENT_V2),
        (
            ",".join(c.upper().replace("-", "_") for c in SETTLEMENT_HEADER),
            ReportKind.SETTLEMENT_V2,
        ),
        ("\t".join(ALL_ORDERS_HEADER), ReportKind.ALL_ORDERS),
        ("\ufeff" + ";".join(ALL_ORDERS_HEADER), ReportKind.ALL_ORDERS),
    ],
)
def test_report_kind(header: str, kind: ReportKind) -> None:
    assert report_kind([" ", header], file_name="report.txt") == kind
    assert kind.value.startswith("GET_")


def test_report_kind_refuses_an_unknown_layout() -> None:
    v1 = "settlement-id\ttotal-amount\ttransaction-type\torder-id\tprice-type\tprice-amount"

    with pytest.raises(ServiceError, match=r"report\.txt: the first line is not the header"):
        report_kind([v1], file_name="report.txt")


# --- settlement details -----------------------------------------------------------------------


def settlement_line(**values: str) -> str:
    """A settlement row; keyword names are the columns with "_" for "-"."""
    named = {"settlement-id": "1234567890", "currency": "EUR"}
    named |= {key.replace("_", "-"): value for key, value in values.items()}
    return "\t".join(named.get(column, "") for column in SETTLEMENT_HEADER)


def refund_row(description: str, amount: str, amount_type: str = "ItemPrice", **extra: str) -> str:
    values = {
        "transaction_type": "Refund",
        "order_id": "028-1234567-1234567",
        "adjustment_id": "amzn1:crow:abc",
        "marketplace_name": "amazon.de",
        "amount_type": amount_type,
        "amount_description": description,
        "amount": amount,
        "posted_date": "17.06.2026 08:14:22 UTC",  # as German settlement files write it
        "posted_date_time": "17.06.2026 08:14:22 UTC",
        "order_item_code": "55182930114",
        "sku": "NX-TEA-SET",
        "quantity_purchased": "2",
    }
    return settlement_line(**(values | extra))


def test_settlement_refund_with_every_customer_charge() -> None:
    lines = [
        "\t".join(SETTLEMENT_HEADER),
        settlement_line(total_amount="-80.00"),
        settlement_line(transaction_type="Order", order_id="028-1", amount_type="ItemPrice"),
        refund_row("Principal", "-41.97"),
        refund_row("Tax", "-7.98"),
        refund_row("Shipping", "-3.35"),
        refund_row("ShippingTax", "-0.64"),
        refund_row("Principal", "4.20", "Promotion"),
        refund_row("Commission", "6.30", "ItemFees"),
        refund_row("RefundCommission", "-1.26", "ItemFees"),
        refund_row("Principal", "-41.97", adjustment_id="amzn1:crow:def"),
        refund_row("Tax", "-7.98", adjustment_id="amzn1:crow:def"),
        refund_row(
            "MarketplaceFacilitatorTax-Principal",
            "7.98",
            "ItemWithheldTax",
            adjustment_id="amzn1:crow:def",
        ),
    ]

    first, second = transactions(parse(lines, "settlement.txt"))

    assert first.source == SourceRef("settlement.txt", 4)
    assert (first.activity_id, first.date, first.quantity) == (
        "amzn1:crow:abc",
        date(2026, 6, 17),
        -2,
    )
    assert first.charges == (
        Charge(ChargeKind.ITEM, D("-41.97"), D("-7.98"), D("-49.95"), D("0.1901")),
        Charge(ChargeKind.ITEM_PROMOTION, D("4.20"), D("0.00"), D("4.20"), D(0)),
        Charge(ChargeKind.SHIPPING, D("-3.35"), D("-0.64"), D("-3.99"), D("0.1910")),
    )
    assert (first.scheme, first.tax_country, first.currency) == (TaxScheme.DOMESTIC, "DE", "EUR")
    assert second.source.line == 11 and second.activity_id == "amzn1:crow:def"
    assert second.scheme == TaxScheme.FACILITATOR  # Amazon withheld the tax on this one


def test_settlement_refund_with_an_unknown_customer_charge_is_a_row_error() -> None:
    lines = [
        "\t".join(SETTLEMENT_HEADER),
        refund_row("Principal", "-10.00"),
        refund_row("ExportCharge", "-1.00"),
        refund_row("Principal", "-5.00", order_id="028-7654321-7654321"),
        refund_row("Principal", "-1,00x", order_id="028-1111111-1111111"),
    ]

    items = parse(lines, "settlement.txt")

    assert items[0] == RowError(
        SourceRef("settlement.txt", 3),
        "amount-description",
        "'ExportCharge' under 'ItemPrice' is not a refund charge this app knows",
        "028-1234567-1234567",
    )
    assert isinstance(items[1], Transaction) and items[1].gross == D("-5.00")
    assert items[2] == RowError(
        SourceRef("settlement.txt", 5), "amount", "'-1,00x' is not an amount", "028-1111111-1111111"
    )


def test_settlement_refund_of_fees_only_yields_nothing() -> None:
    lines = ["\t".join(SETTLEMENT_HEADER), refund_row("RefundCommission", "-1.00", "ItemFees")]

    assert parse(lines) == []


# --- all-orders details -----------------------------------------------------------------------


def order_row(**values: str) -> str:
    base = {
        "amazon-order-id": "113-1234567-1234567",
        "purchase-date": "2026-06-30T20:15:00-07:00",
        "order-status": "Shipped",
        "sales-channel": "Amazon.com",
        "product-name": "Coffee scale",
        "sku": "NX-SCALE",
        "item-status": "Shipped",
        "quantity": "2",
        "currency": "USD",
        "item-price": "34.00",
        "item-tax": "2.81",
        "shipping-price": "4.99",
        "shipping-tax": "0.41",
        "ship-city": "Portland",
        "ship-state": "OR",
        "ship-postal-code": "97205",
        "ship-country": "US",
    }
    values = base | {key.replace("_", "-"): value for key, value in values.items()}
    return "\t".join(values.get(column, "") for column in ALL_ORDERS_HEADER)


@pytest.mark.parametrize("discount", ["-3.40", "3.40"])
def test_all_orders_shipped_item(discount: str) -> None:
    lines = ["\t".join(ALL_ORDERS_HEADER), order_row(item_promotion_discount=discount)]

    item = only_transaction(lines)

    assert (item.type, item.date, item.quantity) == ("SALE", date(2026, 7, 1), 2)  # UTC date
    assert item.charges == (
        Charge(ChargeKind.ITEM, D("34.00"), D("2.81"), D("36.81"), D("0.0826")),
        Charge(ChargeKind.ITEM_PROMOTION, D("-3.40"), D("0.00"), D("-3.40"), D(0)),
        Charge(ChargeKind.SHIPPING, D("4.99"), D("0.41"), D("5.40"), D("0.0822")),
    )
    assert item.buyer == Buyer(city="Portland", postcode="97205", country="US")
    assert (item.scheme, item.tax_country, item.marketplace) == (
        TaxScheme.FACILITATOR,
        "US",
        "amazon.com",
    )


@pytest.mark.parametrize(
    ("order_status", "item_status", "channel", "kind"),
    [
        ("Shipped - Delivered to Buyer", "", "Amazon.com", "SALE"),
        ("Shipped", "Cancelled", "Amazon.com", "CANCELLED"),
        ("PartiallyShipped", "Unshipped", "Amazon.com", "PENDING"),
        ("Pending", "", "Amazon.com", "PENDING"),
        ("Canceled", "", "Amazon.com", "CANCELLED"),
        ("Shipped", "Shipped", "Non-Amazon", "NON_AMAZON"),
    ],
)
def test_all_orders_statuses(order_status: str, item_status: str, channel: str, kind: str) -> None:
    row = order_row(order_status=order_status, item_status=item_status, sales_channel=channel)

    assert only_transaction(["\t".join(ALL_ORDERS_HEADER), row]).type == kind


# --- streaming --------------------------------------------------------------------------------


def test_parse_report_consumes_its_lines_lazily() -> None:
    header, row = vat_file(SALE)
    read = 0

    def lines() -> Iterator[str]:
        nonlocal read
        for index in range(200_000):
            read += 1
            yield header if index == 0 else row

    source = lines()
    first = list(itertools.islice(parse_report(source, file_name="big.txt"), 10))

    assert len(first) == 10 and all(isinstance(item, Transaction) for item in first)
    assert read <= 12
    assert next(source) == row  # the rest is still unread


def test_settlement_parsing_is_lazy_too() -> None:
    rows = itertools.chain(
        ["\t".join(SETTLEMENT_HEADER)],
        (
            refund_row("Principal", "-1.00", adjustment_id=f"adj-{index}")
            for index in range(200_000)
        ),
    )

    first = list(itertools.islice(parse_report(rows, file_name="s.txt"), 10))

    assert [item.activity_id for item in first if isinstance(item, Transaction)] == [
        f"adj-{index}" for index in range(10)
    ]
    assert next(rows).count("adj-") == 1


# --- what real files do (issue 8) -------------------------------------------------------------

BOOKWORK = SAMPLES / "vat-bookwork-2018-01" / "2018_01_Amazon_Transaktionsbericht_dummy.txt"
# The layout of reports since July 2021: Amazon states the scheme and who collects the tax.
LAYOUT_2021 = tuple(
    dict.fromkeys((*VAT_HEADER, "TAX_REPORTING_SCHEME", "TAX_COLLECTION_RESPONSIBILITY"))
)


def test_real_bookwork_report_without_amazons_vat_is_flagged_and_taxed_in_germany() -> None:
    items = parse(list(read_report_file(BOOKWORK)), BOOKWORK.name)

    assert not [item for item in items if isinstance(item, RowError)]
    posted = [item for item in transactions(items) if item.type in ("SALE", "REFUND")]
    assert [(t.type, t.order_id, t.date, t.gross) for t in posted] == [
        ("SALE", "111-1111111-1111111", date(2018, 1, 29), D("215.00")),
        ("SALE", "111-1111111-1111112", date(2018, 1, 27), D("215.00")),
        ("SALE", "111-1111111-1111114", date(2018, 1, 23), D("139.99")),
        ("REFUND", "111-1111111-1111113", date(2018, 1, 17), D("-124.99")),
    ]
    # Amazon calculated no VAT: the amounts are VAT-inclusive, the rate is the seller's to
    # give, and the country comes from where the goods went from and to (Germany).
    assert {(t.amazon_vat, t.tax, t.scheme, t.tax_country) for t in posted} == {
        (False, D("0.00"), TaxScheme.DOMESTIC, "DE")
    }
    skipped = {t.type for t in transactions(items)} - {"SALE", "REFUND"}
    assert skipped == {"RETURN", "FC_TRANSFER"}


def test_real_settlement_with_currency_only_on_its_summary_row_imports_its_refund() -> None:
    lines = list(read_report_file(SETTLEMENT))
    currency = SETTLEMENT_HEADER.index("currency")

    def blank_currency(line: str) -> str:
        fields = line.split("\t")
        fields[currency] = ""
        return "\t".join(fields)

    # As real files are: the summary row (line 2) alone carries the currency.
    real_shape = [*lines[:2], *(blank_currency(line) for line in lines[2:])]

    assert transactions(parse(real_shape, SETTLEMENT.name)) == transactions(
        parse(lines, SETTLEMENT.name)
    )


def test_eu_settlement_as_amazon_de_writes_it() -> None:
    # Decimal commas, dotted dates, a refund whose Tax row comes before its Principal, Amazon's
    # facilitator VAT, reserve rows and a zero total: the summary row alone has the currency.
    lines = [
        "\t".join(SETTLEMENT_HEADER),
        settlement_line(
            settlement_start_date="01.06.2026 00:00:00 UTC",
            settlement_end_date="15.06.2026 00:00:00 UTC",
            deposit_date="17.06.2026 00:00:00 UTC",
            total_amount="0,00",
            currency="EUR",
        ),
        settlement_line(
            currency="", transaction_type="Previous Reserve Amount Balance", amount="52,44"
        ),
        refund_row("Tax", "-8,37", currency=""),
        refund_row("Principal", "-44,07", currency=""),
        refund_row("Commission", "6,61", "ItemFees", currency=""),
        refund_row("Tax", "-3,80", currency="", adjustment_id="amzn1:crow:gb"),
        refund_row("Principal", "-19,19", currency="", adjustment_id="amzn1:crow:gb"),
        refund_row(
            "MarketplaceFacilitatorVAT-Principal",
            "3,80",
            "ItemFees",
            currency="",
            adjustment_id="amzn1:crow:gb",
        ),
        settlement_line(currency="", transaction_type="Current Reserve Amount", amount="-52,44"),
    ]

    first, second = transactions(parse(lines, "settlement.txt"))

    assert (first.currency, first.date, first.source.line) == ("EUR", date(2026, 6, 17), 4)
    assert first.charges == (
        Charge(ChargeKind.ITEM, D("-44.07"), D("-8.37"), D("-52.44"), D("0.1899")),
    )
    assert first.scheme == TaxScheme.DOMESTIC and first.tax_country == "DE"
    assert second.currency == "EUR" and second.gross == D("-22.99")
    assert second.scheme == TaxScheme.FACILITATOR  # Amazon collected and gives back that VAT


def test_settlement_currency_that_disagrees_with_the_summary_or_is_nowhere_is_a_row_error() -> None:
    header = "\t".join(SETTLEMENT_HEADER)
    disagrees = [
        header,
        settlement_line(total_amount="-10.00", currency="EUR"),
        refund_row("Principal", "-10.00", currency="GBP"),
    ]
    nowhere = [header, refund_row("Principal", "-10.00", currency="")]

    assert only_error(disagrees).message == "GBP, but the settlement's summary row says EUR"
    assert "no summary row" in only_error(nowhere).message


@pytest.mark.parametrize(
    ("changes", "scheme", "tax_country"),
    [
        # Pan-EU stock: taxed in Poland at 23% (Amazon's invoice is Polish), shipped to Austria.
        (
            {
                "SALE_DEPART_COUNTRY": "PL",
                "DEPARTURE_COUNTRY": "PL",
                "SALE_ARRIVAL_COUNTRY": "AT",
                "ARRIVAL_COUNTRY": "AT",
                "VAT_CALCULATION_IMPUTATION_COUNTRY": "AT",
                "TAXABLE_JURISDICTION": "POLAND",
                "VAT_INV_NUMBER": "PL-AEU-2026-7",
                "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.23",
            },
            TaxScheme.DOMESTIC,
            "PL",
        ),
        # The same goods taxed where they arrive: an OSS sale.
        (
            {
                "SALE_DEPART_COUNTRY": "PL",
                "SALE_ARRIVAL_COUNTRY": "AT",
                "VAT_CALCULATION_IMPUTATION_COUNTRY": "PL",
                "TAXABLE_JURISDICTION": "AUSTRIA",
            },
            TaxScheme.OSS,
            "AT",
        ),
        # Intra-EU B2B from a Polish warehouse, no jurisdiction stated: reverse charge in Poland.
        (
            {
                "SALE_DEPART_COUNTRY": "PL",
                "SALE_ARRIVAL_COUNTRY": "DE",
                "VAT_CALCULATION_IMPUTATION_COUNTRY": "DE",
                "TAXABLE_JURISDICTION": "",
                "BUYER_VAT_NUMBER": "DE136695976",
                "PRICE_OF_ITEMS_VAT_AMT": "0.00",
                "PRICE_OF_ITEMS_AMT_VAT_EXCL": "19.99",
                "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0",
            },
            TaxScheme.REVERSE_CHARGE,
            "PL",
        ),
        # Before the One-Stop Shop, a cross-border sale taxed in the arrival country was a
        # sale under that country's own registration.
        (
            {
                "SALE_ARRIVAL_COUNTRY": "FR",
                "TAXABLE_JURISDICTION": "FRANCE",
                "TRANSACTION_COMPLETE_DATE": "30-06-2021",
                "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.2",
            },
            TaxScheme.DOMESTIC,
            "FR",
        ),
    ],
)
def test_tax_country_is_the_taxable_jurisdiction(
    changes: dict[str, str], scheme: TaxScheme, tax_country: str
) -> None:
    item = only_transaction(vat_file({**SALE, **changes}))

    assert (item.scheme, item.tax_country) == (scheme, tax_country)


@pytest.mark.parametrize(
    ("stated", "responsibility", "scheme"),
    [
        ("UNION-OSS", "SELLER", TaxScheme.OSS),
        ("IMPORT-OSS", "SELLER", TaxScheme.IOSS),
        ("CH_VOEC", "", TaxScheme.FACILITATOR),
        ("VCS_EU_IOSS", "SELLER", TaxScheme.IOSS),
        ("UK_VOEC-DOMESTIC", "MARKETPLACE", TaxScheme.FACILITATOR),
        ("UK_VOEC-IMPORT", "", TaxScheme.FACILITATOR),
        ("DEEMED_RESELLER-IOSS", "MARKETPLACE", TaxScheme.FACILITATOR),
        ("REGULAR", "MARKETPLACE", TaxScheme.FACILITATOR),
        # REGULAR: declared in the taxing country's own return, even when sold across a border.
        ("REGULAR", "SELLER", TaxScheme.DOMESTIC),
    ],
)
def test_stated_scheme_and_responsibility_win_over_inference(
    stated: str, responsibility: str, scheme: TaxScheme
) -> None:
    row = {
        **SALE,
        "SALE_ARRIVAL_COUNTRY": "FR",
        "TAXABLE_JURISDICTION": "FRANCE",
        "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.2",
        "TAX_REPORTING_SCHEME": stated,
        "TAX_COLLECTION_RESPONSIBILITY": responsibility,
    }

    item = only_transaction(vat_file(row, header=LAYOUT_2021))

    assert (item.scheme, item.tax_country) == (scheme, "FR")


@pytest.mark.parametrize(
    ("changes", "column", "message"),
    [
        (
            {"TAX_REPORTING_SCHEME": "UNION-OSS", "TRANSACTION_COMPLETE_DATE": "30-06-2021"},
            "TAX_REPORTING_SCHEME",
            "UNION-OSS on 2021-06-30, but the One-Stop Shop exists only from 2021-07-01",
        ),
        (
            {"TAX_REPORTING_SCHEME": "MOON_SCHEME"},
            "TAX_REPORTING_SCHEME",
            "'MOON_SCHEME' is not a tax reporting scheme",
        ),
        (
            {"TAX_COLLECTION_RESPONSIBILITY": "AMAZON"},
            "TAX_COLLECTION_RESPONSIBILITY",
            "'AMAZON' is neither SELLER nor MARKETPLACE",
        ),
    ],
)
def test_a_scheme_that_cannot_be_is_a_row_error(
    changes: dict[str, str], column: str, message: str
) -> None:
    error = only_error(vat_file({**SALE, **changes}, header=LAYOUT_2021))

    assert error.column == column and message in error.message


def test_a_row_with_bytes_outside_the_files_encoding_is_a_row_error() -> None:
    garbled = {**SALE, "TRANSACTION_EVENT_ID": "302-0000000-0000009", "BUYER_NAME": "M\ufffdller"}

    items = parse(vat_file(SALE, garbled, SALE))

    assert [type(item).__name__ for item in items] == ["Transaction", "RowError", "Transaction"]
    error = items[1]
    assert isinstance(error, RowError)
    assert (error.source.line, error.column, error.order_id) == (
        3,
        "BUYER_NAME",
        "302-0000000-0000009",
    )


@pytest.mark.parametrize(
    ("columns", "said"),
    [
        (
            "settlement-id\tsettlement-start-date\ttotal-amount\tcurrency\ttransaction-type\t"
            "order-id\tshipment-fee-type\tshipment-fee-amount\tprice-type\tprice-amount\t"
            "item-related-fee-type\titem-related-fee-amount",
            "settlement report flat file V1",
        ),
        (
            "date/time,settlement id,type,order id,sku,description,quantity,product sales,total",
            "Date Range (transaction) report",
        ),
    ],
)
def test_a_report_we_do_not_read_is_named_with_the_one_to_download(columns: str, said: str) -> None:
    with pytest.raises(ServiceError) as raised:
        parse([columns, columns.replace("-", "x")], "statement.txt")

    assert raised.value.kind == ErrorKind.BAD_DATA
    assert said in raised.value.message and "this app does not read" in raised.value.message
