"""A settlement's plan books every amount exactly once: the payments, the bank transaction's
lines and the payout leave the clearing account at 0.00, to the cent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings

from sandbox.amazon_reports import generate_settlement_report
from services.report_files import read_report_file
from services.settlement_plan import (
    BookedLine,
    LineKind,
    OrderPayment,
    SettlementPlan,
    plan_settlement,
)
from services.settlements import FeeKind, read_settlement
from tests.test_settlements import SAMPLE, Drawn, drawn_rows, read, written

D = Decimal


def test_the_real_samples_plan_pays_each_order_books_each_fee_kind_and_nets_to_zero() -> None:
    plan = plan_settlement(read_settlement(read_report_file(SAMPLE), file_name=SAMPLE.name))

    # Each invoice paid what its buyer paid (129.99 + 10.40 facilitator tax), the refund paid
    # out of clearing; the tax Amazon withheld is a line that clears the invoice's tax line.
    # Each with when Amazon posted it, to tell orders sold before the start date.
    assert [replace(payment, posted=None) for payment in plan.payments] == [
        OrderPayment("114-8829371-4410258", False, D("140.39"), "Order"),
        OrderPayment("113-2047718-9930613", False, D("142.49"), "Order"),
        OrderPayment("112-5561209-7742044", True, D("-129.99"), "Refund"),
        OrderPayment("114-9930211-5567819", False, D("210.00"), "Order"),
    ]
    assert all(payment.posted and payment.posted.tzinfo for payment in plan.payments)
    assert {line.kind: line.amount for line in plan.lines} == {
        FeeKind.REFERRAL: D("-56.68"),  # commissions, the refund's commission and its credit
        FeeKind.FBA_FULFILMENT: D("-7.25"),  # per unit -4.75 and per order -2.50
        FeeKind.FBA_STORAGE: D("-76.88"),  # storage -64.28 and low inventory level -12.60
        FeeKind.SHIPPING_CHARGEBACK: D("-7.99"),
        FeeKind.SUBSCRIPTION: D("-39.99"),
        FeeKind.REIMBURSEMENT: D("18.75"),
        LineKind.WITHHELD_TAX: D("-10.40"),
        LineKind.RESERVE: D("400.44"),  # 820.44 released, 420.00 held
    }
    storage = next(line for line in plan.lines if line.kind == FeeKind.FBA_STORAGE)
    assert storage.descriptions == ("Storage Fee", "LowInventoryLevelFee")
    assert plan.payout == D("582.89") and plan.deposit_date == datetime(2026, 7, 2, tzinfo=UTC)
    assert [sum(line.amount for line in lines) for lines in plan.transactions()] == [D("220.00")]
    assert plan.clearing_balance() == D("0.00")


@settings(max_examples=80, deadline=None)
@given(rows=drawn_rows)
def test_any_settlement_nets_the_clearing_account_to_zero(rows: list[Drawn]) -> None:
    total = sum((row.amount for row in rows), D("0.00"))
    settlement = read(written(rows, total))

    plan = plan_settlement(settlement)

    assert plan.clearing_balance() == 0
    # One payment per order and type that moved money, of what its buyer amounts add up to;
    # everything else is a line, and no line is empty.
    assert sum(p.amount for p in plan.payments) == sum(order.buyer for order in settlement.orders)
    assert all(p.amount and p.refund == (p.amount < 0) for p in plan.payments)
    assert all(line.amount for line in plan.lines)
    assert len({line.kind for line in plan.lines}) == len(plan.lines)
    transactions = plan.transactions()  # every line once, none in a transaction of 0.00
    assert sorted(line.kind for lines in transactions for line in lines) == sorted(
        line.kind for line in plan.lines
    )
    assert all(sum(line.amount for line in lines) for lines in transactions)
    unknown = sum((u.amount for u in settlement.unknown), D("0.00"))
    unmapped = sum((line.amount for line in plan.lines if line.kind == LineKind.UNMAPPED), D(0))
    assert unmapped == unknown  # Amazon's new words are booked apart, never as a fee kind


def test_a_negative_settlement_pays_out_from_the_bank_into_clearing() -> None:
    period = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 16, tzinfo=UTC))
    for seed in range(40):
        lines = generate_settlement_report(
            period=period, marketplace_id="A1PA6795UKMFR9", seed=seed, orders=6
        )
        plan = plan_settlement(read_settlement(lines, file_name="sandbox.txt"))
        assert plan.clearing_balance() == 0
        if plan.payout < 0:  # the transfer goes from the seller's bank into clearing
            return
    raise AssertionError("the sandbox made no negative settlement in 40 tries")


def test_fees_a_released_reserve_pays_exactly_are_two_transactions_not_one_of_zero() -> None:
    storage = BookedLine(FeeKind.FBA_STORAGE, D("-50.24"), ("Storage Fee",))
    subscription = BookedLine(FeeKind.SUBSCRIPTION, D("-169.00"), ("Subscription Fee",))
    reserve = BookedLine(LineKind.RESERVE, D("219.24"), ("Previous Reserve Amount Balance",))
    deposit = datetime(2026, 10, 20, tzinfo=UTC)
    plan = SettlementPlan("1", "PLN", deposit, (), (storage, reserve, subscription), D("0.00"))

    assert plan.transactions() == ((storage, subscription), (reserve,))
    assert plan.clearing_balance() == 0
