"""The settlement model: a real settlement file classified to the cent, every fee code Amazon is
known to write given a kind, and generated settlements whose amounts must add up to the payout."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.amazon_reports import SETTLEMENT_HEADER, generate_settlement_report
from services.errors import ErrorKind, ServiceError
from services.report_files import read_report_file
from services.settlements import (
    Amount,
    AmountKind,
    FeeKind,
    Settlement,
    UnknownAmount,
    classify,
    read_settlement,
)
from tests.conftest import SHARED

SAMPLES = SHARED / "samples" / "amazon" / "settlement-v2"
SAMPLE = SAMPLES / "settlement-sample.txt"
FEE_CODES = SAMPLES / "fee-codes.json"
D = Decimal


def read(lines: list[str], file_name: str = "settlement.txt") -> Settlement:
    return read_settlement(iter(lines), file_name=file_name)


def refused(lines: list[str], file_name: str = "settlement.txt") -> str:
    with pytest.raises(ServiceError) as raised:
        read(lines, file_name)
    assert raised.value.kind == ErrorKind.BAD_DATA and not raised.value.retryable
    return raised.value.message


def line(**values: str) -> str:
    """A settlement row; keyword names are the columns with "_" for "-"."""
    named = {"settlement-id": "1234567890"} | {k.replace("_", "-"): v for k, v in values.items()}
    return "\t".join(named.get(column, "") for column in SETTLEMENT_HEADER)


def summary(total: str, currency: str = "EUR", **values: str) -> str:
    dates = {
        "settlement_start_date": "01.06.2026 00:00:00 UTC",
        "settlement_end_date": "15.06.2026 00:00:00 UTC",
        "deposit_date": "17.06.2026 00:00:00 UTC",
    }
    return line(total_amount=total, currency=currency, **(dates | values))


HEADER = "\t".join(SETTLEMENT_HEADER)


# --- the real sample ----------------------------------------------------------------------------


def test_real_settlement_sample_classified_to_the_cent() -> None:
    settlement = read_settlement(read_report_file(SAMPLE), file_name=SAMPLE.name)

    assert (settlement.settlement_id, settlement.currency, settlement.total) == (
        "28471003921",
        "USD",
        D("582.89"),
    )
    assert (settlement.start, settlement.end, settlement.deposit_date) == (
        datetime(2026, 6, 16, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 7, 2, tzinfo=UTC),
    )
    by_order = {(o.order_id, o.transaction_type): o for o in settlement.orders}
    assert list(by_order) == [
        ("114-8829371-4410258", "Order"),
        ("113-2047718-9930613", "Order"),
        ("112-5561209-7742044", "Refund"),
        ("114-9930211-5567819", "Order"),
    ]
    # What the buyer paid (tax included) and got back, per order.
    assert {key[0]: o.buyer for key, o in by_order.items()} == {
        "114-8829371-4410258": D("140.39"),  # 129.99 + 10.40 sales tax
        "113-2047718-9930613": D("142.49"),  # 89.00 + 7.99 shipping + 45.50, two items
        "112-5561209-7742044": D("-129.99"),  # the refund
        "114-9930211-5567819": D("210.00"),
    }
    first = by_order["114-8829371-4410258", "Order"]
    assert first.total_of(AmountKind.SALES_TAX) == D("10.40")
    # US marketplace facilitator tax: Amazon keeps what the buyer paid as tax, so it nets off.
    assert first.withheld_tax == D("-10.40")
    assert first.fees() == {FeeKind.REFERRAL: D("-19.50"), FeeKind.FBA_FULFILMENT: D("-4.75")}
    assert by_order["113-2047718-9930613", "Order"].fees() == {
        FeeKind.REFERRAL: D("-20.18"),  # -13.35 and -6.83
        FeeKind.SHIPPING_CHARGEBACK: D("-7.99"),
    }
    refund = by_order["112-5561209-7742044", "Refund"]
    assert refund.fees() == {FeeKind.REFERRAL: D("14.50")}  # 19.50 back, 5.00 RefundCommission
    assert refund.total == D("-115.49")

    assert settlement.fees() == {
        FeeKind.REFERRAL: D("-56.68"),  # -19.50 - 20.18 + 14.50 - 31.50
        FeeKind.FBA_FULFILMENT: D("-7.25"),  # -4.75 per unit, -2.50 per order
        FeeKind.FBA_STORAGE: D("-76.88"),  # storage -64.28, low-inventory-level -12.60
        FeeKind.SHIPPING_CHARGEBACK: D("-7.99"),
        FeeKind.SUBSCRIPTION: D("-39.99"),
        FeeKind.REIMBURSEMENT: D("18.75"),  # Refund Reimbursal
    }
    own = {a.description: a.amount for a in settlement.amounts}
    assert own == {
        "Storage Fee": D("-64.28"),
        "Subscription Fee": D("-39.99"),
        "LowInventoryLevelFee": D("-12.60"),
        "FBAPerOrderFulfillmentFee": D("-2.50"),
        "Refund Reimbursal": D("18.75"),
        "Previous Reserve Amount Balance": D("820.44"),
        "Current Reserve Amount": D("-420.00"),
    }
    assert settlement.total_of(AmountKind.RESERVE_RELEASED) == D("820.44")
    assert settlement.total_of(AmountKind.RESERVE_HELD) == D("-420.00")
    assert settlement.total_of(AmountKind.SALE) == D("352.49")  # 482.48 sold, 129.99 refunded
    assert settlement.total_of(AmountKind.SALES_TAX) == D("10.40")
    assert settlement.unknown == ()
    assert settlement.sum_of_amounts() == settlement.total == D("582.89")


def test_real_sample_with_currency_only_on_its_summary_row_reads_the_same() -> None:
    lines = list(read_report_file(SAMPLE))
    currency = SETTLEMENT_HEADER.index("currency")

    def blank_currency(text: str) -> str:
        fields = text.split("\t")
        fields[currency] = ""
        return "\t".join(fields)

    real_shape = [*lines[:2], *(blank_currency(text) for text in lines[2:])]

    assert read(real_shape, SAMPLE.name) == read(lines, SAMPLE.name)


# --- the table ----------------------------------------------------------------------------------


def test_every_known_fee_code_has_a_kind() -> None:
    entries = json.loads(FEE_CODES.read_text(encoding="utf-8"))["entries"]
    unknown = []
    for entry in entries:
        # Two descriptions were seen without their amount-type; other-transaction is where
        # Amazon writes what belongs to no order.
        for amount_type in entry["amount_types"] or ["other-transaction"]:
            found = classify("", amount_type, entry["description"])
            assert (found.fee is not None) == (found.kind == AmountKind.FEE), found
            if found.kind == AmountKind.UNKNOWN:
                unknown.append((amount_type, entry["description"]))
    assert len(entries) == 64 and unknown == []


@pytest.mark.parametrize(
    ("transaction_type", "amount_type", "description", "kind", "fee"),
    [
        ("Order", "ItemPrice", "Shipping", AmountKind.SALE, None),
        ("Order", "Promotion", "Shipping", AmountKind.PROMOTION, None),
        ("Shipment", "Shipment-Fees", "Shipping", AmountKind.FEE, FeeKind.FBA_FULFILMENT),
        ("Order", "ItemPrice", "Tax", AmountKind.SALES_TAX, None),
        ("ServiceFee", "other-transaction", "Tax", AmountKind.FEE, FeeKind.OTHER),
        (
            "Refund",
            "ItemWithheldTax",
            "MarketplaceFacilitatorTax-Shipping",
            AmountKind.WITHHELD_TAX,
            None,
        ),
        ("Order", "ItemFees", "LowValueGoodsTax-Principal", AmountKind.WITHHELD_TAX, None),
        (
            "Cost of Advertising",
            "Cost of Advertising",
            "TransactionTotalAmount",
            AmountKind.FEE,
            FeeKind.ADVERTISING,
        ),
        (
            "other-transaction",
            "FBA Inventory Reimbursement",
            "CRETURN_WRONG_ITEM",
            AmountKind.FEE,
            FeeKind.REIMBURSEMENT,
        ),
        ("Previous Reserve Amount Balance", "", "", AmountKind.RESERVE_RELEASED, None),
        ("ServiceFee", "other-transaction", "storage fee", AmountKind.FEE, FeeKind.FBA_STORAGE),
        ("ServiceFee", "other-transaction", "A Fee From 2027", AmountKind.UNKNOWN, None),
        ("ServiceFee", "other-transaction", "", AmountKind.UNKNOWN, None),
    ],
)
def test_classification_by_description_then_its_types(
    transaction_type: str, amount_type: str, description: str, kind: AmountKind, fee: FeeKind | None
) -> None:
    found = classify(transaction_type, amount_type, description)

    assert (found.kind, found.fee) == (kind, fee)


# --- files as Amazon writes them ----------------------------------------------------------------


def test_eu_settlement_with_reserve_rows_and_an_unknown_description() -> None:
    lines = [
        HEADER,
        summary("16,00"),
        line(transaction_type="Previous Reserve Amount Balance", amount="52,44"),
        line(
            transaction_type="Refund",
            order_id="028-1",
            amount_type="ItemPrice",
            amount_description="Principal",
            amount="-19,19",
            posted_date_time="17.06.2026 08:14:22 UTC",
        ),
        line(
            transaction_type="Refund",
            order_id="028-1",
            amount_type="ItemPrice",
            amount_description="Tax",
            amount="-3,80",
        ),
        line(
            transaction_type="Refund",
            order_id="028-1",
            amount_type="ItemFees",
            amount_description="MarketplaceFacilitatorVAT-Principal",
            amount="3,80",
        ),
        line(
            transaction_type="other-transaction",
            amount_type="other-transaction",
            amount_description="Verpackungsgebühr",
            amount="-1.234,56",
        ),
        line(
            transaction_type="other-transaction",
            amount_type="other-transaction",
            amount_description="Verpackungsgebühr",
            amount="1.234,56",
        ),
        line(transaction_type="Current Reserve Amount", amount="-17,25"),
    ]

    settlement = read(lines)

    assert settlement.start == datetime(2026, 6, 1, tzinfo=UTC)
    (refund,) = settlement.orders
    assert (refund.buyer, refund.withheld_tax, refund.total) == (
        D("-22.99"),
        D("3.80"),
        D("-19.19"),
    )
    assert refund.posted == datetime(2026, 6, 17, 8, 14, 22, tzinfo=UTC)
    assert settlement.total_of(AmountKind.RESERVE_RELEASED) == D("52.44")
    assert settlement.total_of(AmountKind.RESERVE_HELD) == D("-17.25")
    # Kept and listed, never dropped or guessed; the two rows net to zero but both are there.
    assert settlement.unknown == (
        UnknownAmount(
            7, None, "other-transaction", "other-transaction", "Verpackungsgebühr", D("-1234.56")
        ),
        UnknownAmount(
            8, None, "other-transaction", "other-transaction", "Verpackungsgebühr", D("1234.56")
        ),
    )
    assert (
        Amount(
            AmountKind.UNKNOWN,
            None,
            "other-transaction",
            "other-transaction",
            "Verpackungsgebühr",
            D(0),
        )
        in settlement.amounts
    )


def test_summary_dates_in_iso_form_with_an_offset_are_utc() -> None:
    lines = [
        HEADER,
        summary(
            "0.00",
            settlement_start_date="2003-10-03T16:00:00-07:00",
            deposit_date="2003-10-15",
        ),
    ]

    settlement = read(lines)

    assert settlement.start == datetime(2003, 10, 3, 23, tzinfo=UTC)
    assert settlement.deposit_date == datetime(2003, 10, 15, tzinfo=UTC)
    assert settlement.orders == () and settlement.amounts == ()


def test_files_that_hold_no_single_readable_settlement_are_refused() -> None:
    fee = line(
        transaction_type="ServiceFee",
        amount_type="other-transaction",
        amount_description="Subscription Fee",
        amount="-39.00",
    )
    assert "no rows" in refused([HEADER])
    assert "summary row" in refused([HEADER, fee])
    message = refused([HEADER, summary("-39.00"), fee.replace("1234567890", "999")])
    assert "999" in message and "one settlement" in message
    assert "second summary row" in refused([HEADER, summary("-39.00"), summary("0.00")])
    assert "line 3, column amount" in refused(
        [HEADER, summary("-39.00"), fee.replace("-39.00", "x")]
    )
    assert "line 3, column amount: empty" in refused(
        [HEADER, summary("-39.00"), fee.replace("-39.00", "")]
    )
    assert "not a settlement report" in refused(
        ["amazon-order-id\torder-status\tpurchase-date\titem-price", "1\tShipped\t2026-06-01\t1"]
    )


@pytest.mark.parametrize(
    ("market", "currency"), [("A1PA6795UKMFR9", "EUR"), ("ATVPDKIKX0DER", "USD")]
)
def test_sandbox_settlements_are_all_known_and_add_up(market: str, currency: str) -> None:
    period = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 16, tzinfo=UTC))
    lines = generate_settlement_report(period=period, marketplace_id=market, seed=3, orders=80)

    settlement = read_settlement(lines, file_name="sandbox.txt")  # a generator: read as it comes

    assert settlement.currency == currency and settlement.unknown == ()
    assert settlement.sum_of_amounts() == settlement.total
    assert settlement.total_of(AmountKind.SALE) > 0 and FeeKind.REFERRAL in settlement.fees()


# --- generated settlements ----------------------------------------------------------------------


class Shape(NamedTuple):
    """A kind of row and what it must be classified as."""

    transaction_type: str
    amount_type: str
    description: str
    per_order: bool
    kind: AmountKind
    fee: FeeKind | None = None


FEE = AmountKind.FEE
SHAPES = (
    Shape("Order", "ItemPrice", "Principal", True, AmountKind.SALE),
    Shape("Order", "ItemPrice", "Tax", True, AmountKind.SALES_TAX),
    Shape("Order", "ItemPrice", "Shipping", True, AmountKind.SALE),
    Shape("Order", "Promotion", "Principal", True, AmountKind.PROMOTION),
    Shape("Order", "ItemFees", "Commission", True, FEE, FeeKind.REFERRAL),
    Shape("Order", "ItemFees", "FBAPerUnitFulfillmentFee", True, FEE, FeeKind.FBA_FULFILMENT),
    Shape(
        "Order", "ItemFees", "MarketplaceFacilitatorVAT-Principal", True, AmountKind.WITHHELD_TAX
    ),
    Shape("Order", "ItemFees", "DigitalServicesFee", True, FEE, FeeKind.DIGITAL_SERVICES),
    Shape("Refund", "ItemPrice", "Principal", True, AmountKind.SALE),
    Shape("Refund", "ItemFees", "RefundCommission", True, FEE, FeeKind.REFERRAL),
    Shape("Refund", "ItemWithheldTax", "LowValueGoodsTax-Principal", True, AmountKind.WITHHELD_TAX),
    Shape("ServiceFee", "other-transaction", "Storage Fee", False, FEE, FeeKind.FBA_STORAGE),
    Shape("ServiceFee", "other-transaction", "Subscription Fee", False, FEE, FeeKind.SUBSCRIPTION),
    Shape(
        "Cost of Advertising",
        "Cost of Advertising",
        "TransactionTotalAmount",
        False,
        FEE,
        FeeKind.ADVERTISING,
    ),
    Shape(
        "other-transaction",
        "other-transaction",
        "WAREHOUSE_LOST",
        False,
        FEE,
        FeeKind.REIMBURSEMENT,
    ),
    Shape("Adjustment", "other-transaction", "BalanceAdjustment", False, FEE, FeeKind.ADJUSTMENT),
    Shape(
        "Transfer",
        "other-transaction",
        "Previous Reserve Amount Balance",
        False,
        AmountKind.RESERVE_RELEASED,
    ),
    Shape(
        "Transfer", "other-transaction", "Current Reserve Amount", False, AmountKind.RESERVE_HELD
    ),
    Shape(
        "other-transaction", "other-transaction", "Amazon Capital Services", False, AmountKind.LOAN
    ),
    Shape(
        "other-transaction", "other-transaction", "Failed Disbursement", False, AmountKind.PAYOUT
    ),
    Shape(
        "other-transaction",
        "other-transaction",
        "SomethingAmazonAddedLater",
        False,
        AmountKind.UNKNOWN,
    ),
    Shape("Order", "ItemFees", "AnotherNewFee", True, AmountKind.UNKNOWN),
)
ORDER_IDS = ("111-0000001-0000001", "111-0000002-0000002", "112-0000003-0000003")


class Drawn(NamedTuple):
    shape: Shape
    order_id: str
    amount: Decimal


drawn_rows = st.lists(
    st.builds(
        Drawn,
        st.sampled_from(SHAPES),
        st.sampled_from(ORDER_IDS),
        st.decimals(min_value=-5000, max_value=5000, places=2, allow_nan=False),
    ),
    max_size=40,
)


def written(
    rows: list[Drawn],
    total: Decimal,
    *,
    decimal_comma: bool = False,
    row_currency: str = "",
    summary_currency: str = "EUR",
) -> list[str]:
    def money(value: Decimal) -> str:
        text = f"{value:.2f}"
        return text.replace(".", ",") if decimal_comma else text

    return [
        HEADER,
        summary(money(total), summary_currency),
        *(
            line(
                currency=row_currency,
                transaction_type=row.shape.transaction_type,
                order_id=row.order_id if row.shape.per_order else "",
                amount_type=row.shape.amount_type,
                amount_description=row.shape.description,
                amount=money(row.amount),
            )
            for row in rows
        ),
    ]


@settings(max_examples=60, deadline=None)
@given(rows=drawn_rows, decimal_comma=st.booleans())
def test_generated_settlements_add_up_by_kind_and_order(
    rows: list[Drawn], decimal_comma: bool
) -> None:
    total = sum((row.amount for row in rows), D("0.00"))

    settlement = read(written(rows, total, decimal_comma=decimal_comma))

    assert settlement.sum_of_amounts() == settlement.total == total
    for kind in AmountKind:
        expected = sum((row.amount for row in rows if row.shape.kind == kind), D(0))
        assert settlement.total_of(kind) == expected, kind
    expected_fees: dict[FeeKind, Decimal] = defaultdict(Decimal)
    expected_buyer: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.shape.fee is not None:
            expected_fees[row.shape.fee] += row.amount
        if row.shape.per_order and row.shape.kind.buyer:
            expected_buyer[row.order_id, row.shape.transaction_type] += row.amount
    assert settlement.fees() == {k: v for k, v in expected_fees.items() if k in settlement.fees()}
    assert set(settlement.fees()) == set(expected_fees)
    buyer = {(o.order_id, o.transaction_type): o.buyer for o in settlement.orders}
    assert {key: buyer[key] for key in expected_buyer} == expected_buyer
    unknown = [row.amount for row in rows if row.shape.kind == AmountKind.UNKNOWN]
    assert [each.amount for each in settlement.unknown] == unknown
    assert [each.line for each in settlement.unknown] == [
        number for number, row in enumerate(rows, 3) if row.shape.kind == AmountKind.UNKNOWN
    ]


@settings(max_examples=40, deadline=None)
@given(rows=drawn_rows, off_by=st.sampled_from([D("0.01"), D("-0.01")]))
def test_a_total_off_by_one_cent_is_refused(rows: list[Drawn], off_by: Decimal) -> None:
    total = sum((row.amount for row in rows), D("0.00"))

    message = refused(written(rows, total + off_by), "june.txt")

    assert "june.txt" in message and "settlement 1234567890" in message
    assert f"{total} EUR" in message and f"{total + off_by}" in message
    assert f"{-off_by} EUR apart" in message


@settings(max_examples=40, deadline=None)
@given(rows=drawn_rows, currency=st.sampled_from(["EUR", "GBP", "JPY"]))
def test_the_summary_rows_currency_is_the_settlements(rows: list[Drawn], currency: str) -> None:
    total = sum((row.amount for row in rows), D("0.00"))

    blank = read(written(rows, total, summary_currency=currency))
    repeated = read(written(rows, total, summary_currency=currency, row_currency=currency))

    assert blank.currency == currency
    assert blank == repeated
    if rows:  # a summary row without a currency: the rows' is the settlement's
        on_rows_only = read(written(rows, total, summary_currency="", row_currency=currency))
        assert on_rows_only == blank


@settings(max_examples=40, deadline=None)
@given(
    rows=drawn_rows.filter(bool),
    currencies=st.sampled_from([("EUR", "GBP"), ("USD", "CAD"), ("GBP", "EUR")]),
    at=st.integers(min_value=0),
)
def test_a_row_in_another_currency_is_refused(
    rows: list[Drawn], currencies: tuple[str, str], at: int
) -> None:
    settlement_currency, other = currencies
    total = sum((row.amount for row in rows), D("0.00"))
    lines = written(rows, total, summary_currency=settlement_currency)
    index = 2 + at % len(rows)
    fields = lines[index].split("\t")
    fields[SETTLEMENT_HEADER.index("currency")] = other
    lines[index] = "\t".join(fields)

    message = refused(lines)

    assert f"line {index + 1}, column currency: {other}" in message
    assert f"the settlement is in {settlement_currency}" in message
