"""What one settlement does to the books, decided before anything is sent to Xero.

Everything Amazon settles passes through the integration's clearing account (a Xero bank account
per currency), the way A2X and Link My Books book it:
- each order's invoice is paid from it for what the buyer paid (the invoice's total), and each
  refund is paid out of it on its credit note;
- the settlement's fees, charges, reimbursements, adjustments and reserve moves are the lines of
  one bank transaction on it, one line per kind; so is the tax Amazon withheld as marketplace
  facilitator or deemed supplier, booked to the sales account, where it clears the invoice's
  line of tax Amazon collected (services/documents.py);
- the payout is a transfer from it to the seller's bank account (the other way when the
  settlement is negative).
Each amount of the settlement lands in exactly one of these, so the clearing account returns to
0.00 once all of them are in Xero (`SettlementPlan.clearing_balance`). Which account and tax rate
each line kind takes is the integration's mapping, resolved when the plan is posted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.settlements import AmountKind, FeeKind, Settlement

ZERO = Decimal("0.00")


class LineKind(StrEnum):
    """The lines of a settlement's bank transaction besides the fees (which go by FeeKind)."""

    WITHHELD_TAX = "withheld_tax"  # to the sales account: clears the invoices' collected tax
    RESERVE = "reserve"  # to and from the "Amazon reserve" current asset account
    LOAN = "loan"  # Amazon Lending repayments: a liability, not an expense
    RETURNED_PAYOUT = "returned_payout"  # an earlier payout the bank refused, back in clearing
    UNMAPPED = "unmapped"  # an amount Amazon describes in words no mapping knows yet
    NO_ORDER = "no_order"  # a buyer's amount with no order to pay (Amazon wrote no order-id)


# The line kinds that are Amazon's fees and charges (a FeeKind's value each), as a bank
# transaction's stored lines name them.
FEE_LINES = frozenset(kind.value for kind in FeeKind)

# The line kinds a seller may code to an account of their own (the settings' fee accounts):
# the fees and charges, the reserve and lending. Withheld tax goes to the sales account, where
# the invoices booked it; what no mapping knows to the suspense account, to be looked at.
MAPPABLE_LINES: tuple[str, ...] = (
    *(kind.value for kind in FeeKind),
    LineKind.RESERVE.value,
    LineKind.LOAN.value,
)


@dataclass(frozen=True, slots=True)
class LineAccountChoice:
    """The account (by code) and tax rate a seller chose for a line kind. No tax type: the
    line carries no tax, as Amazon's fee lines do for a seller who reclaims none on them."""

    code: str
    tax_type: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"code": self.code} | ({"tax_type": self.tax_type} if self.tax_type else {})

    @classmethod
    def from_json(cls, value: dict[str, str]) -> LineAccountChoice:
        return cls(value["code"], value.get("tax_type"))

    def __str__(self) -> str:
        return f"{self.code} {self.tax_type}" if self.tax_type else self.code


@dataclass(frozen=True, slots=True)
class OrderPayment:
    """Money into clearing for an order's invoice, or out of it for a refund's credit note."""

    order_id: str
    refund: bool
    amount: Decimal  # as it moves the clearing account: negative for a refund
    transaction_type: str  # Amazon's word: "Order", "Refund", "Chargeback Refund", ...
    posted: datetime | None = None  # when Amazon posted it (its first row)


@dataclass(frozen=True, slots=True)
class BookedLine:
    """One line of the settlement's bank transaction, signed as it moves the clearing account
    (a fee is negative, a reimbursement or a released reserve positive)."""

    kind: FeeKind | LineKind
    amount: Decimal
    descriptions: tuple[str, ...]  # Amazon's words for what it sums, for the line's text


@dataclass(frozen=True, slots=True)
class SettlementPlan:
    settlement_id: str
    currency: str
    deposit_date: datetime
    payments: tuple[OrderPayment, ...]
    lines: tuple[BookedLine, ...]
    payout: Decimal  # out of clearing to the seller's bank: Amazon's total-amount

    def clearing_balance(self) -> Decimal:
        """What the clearing account holds after the plan is booked: 0.00 for a whole one."""
        booked = sum((p.amount for p in self.payments), ZERO)
        booked += sum((line.amount for line in self.lines), ZERO)
        return booked - self.payout

    def transactions(self) -> tuple[tuple[BookedLine, ...], ...]:
        """The bank transactions the lines make: one, unless its lines net to 0.00 (fees a
        released reserve pays exactly), which Xero refuses; then one of the lines that take
        money out and one of those that bring it in."""
        if not self.lines:
            return ()
        if sum((line.amount for line in self.lines), ZERO) != 0:
            return (self.lines,)
        out = tuple(line for line in self.lines if line.amount < 0)
        into = tuple(line for line in self.lines if line.amount > 0)
        return tuple(lines for lines in (out, into) if lines)


def plan_settlement(settlement: Settlement) -> SettlementPlan:
    """The payments, the bank transaction's lines and the payout of one settlement."""
    payments = []
    booked: dict[FeeKind | LineKind, Decimal] = defaultdict(lambda: ZERO)
    words: dict[FeeKind | LineKind, list[str]] = defaultdict(list)

    def book(kind: FeeKind | LineKind, amount: Decimal, description: str) -> None:
        booked[kind] += amount
        if description and description not in words[kind]:
            words[kind].append(description)

    for order in settlement.orders:
        received = order.buyer  # what its invoice (or credit note) totals
        if received:
            payments.append(
                OrderPayment(
                    order.order_id,
                    refund=received < 0,
                    amount=received,
                    transaction_type=order.transaction_type,
                    posted=order.posted,
                )
            )
        for amount in order.amounts:
            if not amount.kind.buyer:
                book(_line_kind(amount.kind, amount.fee), amount.amount, amount.description)
    for amount in settlement.amounts:
        book(_line_kind(amount.kind, amount.fee), amount.amount, amount.description)
    lines = tuple(
        BookedLine(kind, booked[kind], tuple(words[kind]))
        for kind in [*FeeKind, *LineKind]
        if booked.get(kind)
    )
    return SettlementPlan(
        settlement.settlement_id,
        settlement.currency,
        settlement.deposit_date,
        tuple(payments),
        lines,
        settlement.total,
    )


def _line_kind(kind: AmountKind, fee: FeeKind | None) -> FeeKind | LineKind:
    if kind == AmountKind.FEE and fee is not None:
        return fee
    if kind in (AmountKind.RESERVE_HELD, AmountKind.RESERVE_RELEASED):
        return LineKind.RESERVE
    if kind == AmountKind.LOAN:
        return LineKind.LOAN
    if kind == AmountKind.PAYOUT:
        return LineKind.RETURNED_PAYOUT
    if kind == AmountKind.WITHHELD_TAX:
        return LineKind.WITHHELD_TAX
    if kind.buyer:
        return LineKind.NO_ORDER
    return LineKind.UNMAPPED
