"""The month's three-way check (issue 11): Amazon's report, the settlements, and Xero, per currency.

- Amazon's report: the invoices and credit notes whose rows are dated in the month, at Amazon's
  figures, whatever became of them in Xero.
- The settlements deposited in the month: what they paid for orders and refunds, their fees and
  reserve moves, and their payouts.
- Xero, as the ledger records it (no call is made): the month's documents that are in Xero, the
  settlements' payments that are, and the clearing account as their posted items move it.

Amounts are signed as money moves for the seller: sales and payouts positive, refunds, fees and
a reserve held negative. A settlement item's difference is signed as it moves the clearing
account, so the differences of a month's unposted items add up to minus its clearing balance.

Every difference is listed with whether it is explained: an order not settled yet, or settled
in another month; a payment waiting for its invoice, or paying one of another month; an Amazon
Lending repayment. Anything else (a failed or unposted document or item, an order Amazon
settled for another amount than its documents, an amount booked to suspense) is flagged: the
month does not reconcile until it is dealt with.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from services.models import AmazonSettlement, Integration, SettlementItem, SettlementItemKind
from services.models import SettlementItemStatus as Status
from services.money import from_cents
from services.periods import period_bounds
from services.settlement_ledger import (
    ReportDocument,
    SettledOrder,
    SettlementLedger,
    moved,
    sold_before,
)
from services.settlement_plan import FEE_LINES, LineKind

ZERO = Decimal("0.00")
_CENT = Decimal("0.01")
_PAYMENTS = (SettlementItemKind.PAYMENT, SettlementItemKind.REFUND)
_ITEM_WORDS: dict[str, str] = {
    SettlementItemKind.PAYMENT: "payment",
    SettlementItemKind.REFUND: "refund",
    SettlementItemKind.BANK_TRANSACTION: "fees transaction",
    SettlementItemKind.TRANSFER: "payout transfer",
}


class DifferenceKind(StrEnum):
    # Explained: the books are right, the money or the document is in another month.
    NOT_SETTLED = "not_settled"  # a document of the month no settlement has paid yet
    SETTLED_IN_OTHER_MONTH = "settled_in_other_month"
    NOT_INVOICED = "not_invoiced"  # a payment waiting for its invoice or credit note
    INVOICED_IN_OTHER_MONTH = "invoiced_in_other_month"
    LOAN = "loan"  # an Amazon Lending repayment, booked to the lending liability
    WITHHELD_TAX = "withheld_tax"  # tax Amazon remits itself: clears the invoices' tax lines
    # Part of a payment a credit note's allocation settled in Xero: held in clearing until
    # Amazon settles the sale or refund on the other side.
    SETTLED_BY_ALLOCATION = "settled_by_allocation"
    # Flagged: someone must act.
    DOCUMENT_FAILED = "document_failed"
    DOCUMENT_NOT_POSTED = "document_not_posted"
    PAYMENT_FAILED = "payment_failed"
    ITEM_FAILED = "item_failed"  # a settlement's bank transaction or payout transfer
    ITEM_NOT_POSTED = "item_not_posted"
    AMOUNT_MISMATCH = "amount_mismatch"  # Amazon settled another amount than the documents'
    SUSPENSE = "suspense"  # booked to "Amazon suspense" for someone to move
    # A payment for an order sold before the integration's start date: no invoice of the bot's.
    SOLD_BEFORE_START = "sold_before_start"

    @property
    def explained(self) -> bool:
        return self in _EXPLAINED


_EXPLAINED = frozenset(
    {
        DifferenceKind.NOT_SETTLED,
        DifferenceKind.SETTLED_IN_OTHER_MONTH,
        DifferenceKind.NOT_INVOICED,
        DifferenceKind.INVOICED_IN_OTHER_MONTH,
        DifferenceKind.LOAN,
        DifferenceKind.WITHHELD_TAX,
        DifferenceKind.SETTLED_BY_ALLOCATION,
    }
)


@dataclass
class CurrencyFigures:
    report_sales: Decimal = ZERO
    report_refunds: Decimal = ZERO
    settled_sales: Decimal = ZERO
    settled_refunds: Decimal = ZERO
    fees: Decimal = ZERO  # reimbursements and adjustments included
    reserve: Decimal = ZERO
    payouts: Decimal = ZERO
    xero_invoiced: Decimal = ZERO  # documents in Xero: invoices less credit notes
    xero_paid: Decimal = ZERO  # payments in Xero: on invoices less on credit notes
    clearing_balance: Decimal = ZERO

    def to_json(self) -> dict[str, str]:
        return {name: str(value.quantize(_CENT)) for name, value in vars(self).items()}


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    currency: str
    amount: Decimal
    explanation: str
    amazon_order_id: str | None = None
    settlement_id: str | None = None  # Amazon's

    @property
    def explained(self) -> bool:
        return self.kind.explained

    def to_json(self) -> dict[str, Any]:
        ids = {"amazon_order_id": self.amazon_order_id, "settlement_id": self.settlement_id}
        return {
            "kind": self.kind.value,
            **{name: value for name, value in ids.items() if value is not None},
            "currency": self.currency,
            "amount": str(self.amount.quantize(_CENT)),
            "explanation": self.explanation,
            "explained": self.explained,
        }


@dataclass
class Reconciliation:
    integration: str
    period: str  # YYYY-MM
    currencies: dict[str, CurrencyFigures] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        """Every difference is explained."""
        return all(difference.explained for difference in self.differences)

    def to_json(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "period": self.period,
            "reconciled": self.reconciled,
            "currencies": {
                code: self.currencies[code].to_json() for code in sorted(self.currencies)
            },
            "differences": [difference.to_json() for difference in self.differences],
        }


def reconcile(
    sessions: sessionmaker[Session], integration: Integration, period: str
) -> Reconciliation:
    """The three-way check of one month (YYYY-MM) of one integration, from the database only."""
    start, end = period_bounds(period)
    ledger = SettlementLedger(sessions)
    check = _Check(Reconciliation(integration.name, period), start, end, integration.start_date)
    for document in ledger.documents_dated(integration.id, start, end):
        check.document(document)
    for settlement in ledger.deposited(integration.id, start, end):
        check.settlement(settlement, ledger.items(settlement.id))
    orders = {order for order, _ in check.invoiced}
    check.against_settlements(
        ledger.settled_orders(integration.id, orders), ledger.posted_totals(integration.id, orders)
    )
    return check.result


class _Check:
    """The figures and differences, added as the month's documents and settlements are read."""

    def __init__(
        self, result: Reconciliation, start: datetime, end: datetime, start_date: date
    ) -> None:
        self.result = result
        self.start, self.end = start, end
        self.start_date = start_date  # the integration's
        # (order, refund) -> the month's documents' amount, and their currency
        self.invoiced: dict[tuple[str, bool], Decimal] = defaultdict(lambda: ZERO)
        self.currency_of: dict[tuple[str, bool], str] = {}

    def figures(self, currency: str) -> CurrencyFigures:
        return self.result.currencies.setdefault(currency, CurrencyFigures())

    def differ(
        self, kind: DifferenceKind, currency: str, amount: Decimal, why: str, **ids: str | None
    ) -> None:
        self.result.differences.append(Difference(kind, currency, amount, why, **ids))

    # -- Amazon's report and the documents in Xero ----------------------------------------------

    def document(self, document: ReportDocument) -> None:
        figures = self.figures(document.currency)
        if document.refund:
            figures.report_refunds += document.amount
        else:
            figures.report_sales += document.amount
        if document.in_xero:
            figures.xero_invoiced += document.amount
        else:
            failed = document.status == Status.FAILED
            what = "credit note" if document.refund else "invoice"
            self.differ(
                DifferenceKind.DOCUMENT_FAILED if failed else DifferenceKind.DOCUMENT_NOT_POSTED,
                document.currency,
                document.amount,
                f"Its {what} failed: {document.error_message} Retry it once that is fixed."
                if failed
                else f"Its {what} is not in Xero yet (a sync stopped before posting it): run "
                "the sync of the month again.",
                amazon_order_id=document.order_id,
            )
        if document.order_id is not None:
            key = (document.order_id, document.refund)
            self.invoiced[key] += document.amount
            self.currency_of[key] = document.currency

    # -- the settlements deposited in the month ---------------------------------------------------

    def settlement(self, settlement: AmazonSettlement, items: list[SettlementItem]) -> None:
        figures = self.figures(settlement.currency)
        figures.payouts += from_cents(settlement.total_cents)
        for item in items:
            if item.status == Status.POSTED:
                figures.clearing_balance += from_cents(moved(item))
                if moved(item) != item.amount_cents:
                    self.differ(
                        DifferenceKind.SETTLED_BY_ALLOCATION,
                        settlement.currency,
                        from_cents(item.amount_cents - moved(item)),
                        f"Settlement {settlement.settlement_id}: a credit note of the order was "
                        "allocated to its invoice in Xero, which settled this much of it; it "
                        "stays in the clearing account until Amazon settles the other side.",
                        amazon_order_id=item.amazon_order_id,
                        settlement_id=settlement.settlement_id,
                    )
            if item.kind in _PAYMENTS:
                self.payment(settlement, item, figures)
            elif item.kind == SettlementItemKind.BANK_TRANSACTION:
                self.lines(settlement, item, figures)
            self.item_status(settlement, item)

    def payment(
        self, settlement: AmazonSettlement, item: SettlementItem, figures: CurrencyFigures
    ) -> None:
        amount = from_cents(item.amount_cents)
        refund = item.kind == SettlementItemKind.REFUND
        if refund:
            figures.settled_refunds += amount
        else:
            figures.settled_sales += amount
        if item.status != Status.POSTED:
            return
        figures.xero_paid += from_cents(moved(item))
        if (item.amazon_order_id or "", refund) not in self.invoiced:
            what = "credit note" if refund else "invoice"
            self.differ(
                DifferenceKind.INVOICED_IN_OTHER_MONTH,
                settlement.currency,
                amount,
                f"Settlement {settlement.settlement_id} paid its {what} of another month's report.",
                amazon_order_id=item.amazon_order_id,
                settlement_id=settlement.settlement_id,
            )

    def lines(
        self, settlement: AmazonSettlement, item: SettlementItem, figures: CurrencyFigures
    ) -> None:
        for kind, line_cents, words in item.lines or []:
            amount = from_cents(line_cents)
            if kind in FEE_LINES:
                figures.fees += amount
            elif kind == LineKind.RESERVE:
                figures.reserve += amount
            elif kind == LineKind.WITHHELD_TAX:
                self.differ(
                    DifferenceKind.WITHHELD_TAX,
                    settlement.currency,
                    amount,
                    "Tax Amazon collected and remitted itself (marketplace facilitator or deemed "
                    "supplier), booked to the sales account, where it clears the invoices' "
                    "lines of that tax.",
                    settlement_id=settlement.settlement_id,
                )
            elif kind == LineKind.LOAN:
                self.differ(
                    DifferenceKind.LOAN,
                    settlement.currency,
                    amount,
                    "An Amazon Lending repayment, booked to the Amazon lending liability.",
                    settlement_id=settlement.settlement_id,
                )
            else:
                self.differ(
                    DifferenceKind.SUSPENSE,
                    settlement.currency,
                    amount,
                    f"Booked to Amazon suspense ({kind.replace('_', ' ')}: "
                    f"{', '.join(words) or 'no description'}): move it to the right account "
                    "in Xero.",
                    settlement_id=settlement.settlement_id,
                )

    def item_status(self, settlement: AmazonSettlement, item: SettlementItem) -> None:
        if item.status == Status.POSTED:
            return
        payment = item.kind in _PAYMENTS
        if item.status == Status.WAITING:
            before = sold_before(item, self.start_date)
            kind = DifferenceKind.SOLD_BEFORE_START if before else DifferenceKind.NOT_INVOICED
            why = item.error_message or "It waits for its document to be posted."
        elif item.status == Status.FAILED:
            kind = DifferenceKind.PAYMENT_FAILED if payment else DifferenceKind.ITEM_FAILED
            why = f"{item.error_message} Retry it once that is fixed."
        else:
            kind = DifferenceKind.ITEM_NOT_POSTED
            why = "Not in Xero yet (a posting stopped before it): import the settlement again."
        self.differ(
            kind,
            settlement.currency,
            from_cents(item.amount_cents),
            f"Settlement {settlement.settlement_id}'s {_ITEM_WORDS[item.kind]}: {why}",
            amazon_order_id=item.amazon_order_id,
            settlement_id=settlement.settlement_id,
        )

    # -- the month's documents against every settlement -----------------------------------------

    def against_settlements(
        self,
        settled: dict[tuple[str, bool], list[SettledOrder]],
        everywhere: dict[tuple[str, bool], Decimal],
    ) -> None:
        """`everywhere`: what each order's documents add up to over every month's report."""
        for key, amount in self.invoiced.items():
            order, refund = key
            currency = self.currency_of[key]
            what = "refund" if refund else "order"
            items = settled.get(key, [])
            if not items:
                self.differ(
                    DifferenceKind.NOT_SETTLED,
                    currency,
                    amount,
                    f"The {what} is in no settlement yet: Amazon pays it in a later one.",
                    amazon_order_id=order,
                )
                continue
            settled_amount = from_cents(sum(item.amount_cents for item in items))
            if settled_amount != amount and settled_amount == everywhere.get(key):
                # Shipments of one order in two months' reports, settled together.
                self.differ(
                    DifferenceKind.INVOICED_IN_OTHER_MONTH,
                    currency,
                    settled_amount - amount,
                    f"Amazon settled the {what} whole, with its documents of other months' "
                    "reports.",
                    amazon_order_id=order,
                )
            elif settled_amount != amount:
                self.differ(
                    DifferenceKind.AMOUNT_MISMATCH,
                    currency,
                    settled_amount - amount,
                    f"Amazon settled {settled_amount} {currency} for the {what} (settlement "
                    f"{', '.join(item.settlement_id for item in items)}), its documents are "
                    f"{amount} {currency}: settle the difference by hand in Xero.",
                    amazon_order_id=order,
                )
            outside = [i for i in items if not self.start <= i.deposit_at < self.end]
            for item in outside:
                self.differ(
                    DifferenceKind.SETTLED_IN_OTHER_MONTH,
                    currency,
                    from_cents(item.amount_cents),
                    f"Settled in settlement {item.settlement_id}, deposited "
                    f"{item.deposit_at:%-d %B %Y}.",
                    amazon_order_id=order,
                    settlement_id=item.settlement_id,
                )
