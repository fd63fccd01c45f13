"""The settlements' ledger: every statement about settlements and what each makes in Xero.

A settlement is recorded once per integration, whatever reads it again (the month's sync, an
import of its file, a retry): its plan's payments, bank transaction and payout become items
with a key each, so recording twice changes nothing. An item lives like a ledger item: pending
(or waiting for its invoice), in flight (committed before it is sent), then posted or failed.
The month's reconciliation (services/reconcile.py) reads settlements and documents through here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from services.ledger_rows import chunks, insert_ignore, update_by_id
from services.models import (
    AmazonSettlement,
    AmazonTransaction,
    DocumentKind,
    LedgerItem,
    SettlementItem,
    SettlementItemKind,
    SettlementItemStatus,
)
from services.money import cents, from_cents
from services.row_codec import transaction_from_json
from services.settlement_plan import SettlementPlan
from services.settlements import Settlement

BANK_TRANSACTION_KEY = "BTX"
# The money-in half of fee lines that net to zero (SettlementPlan.transactions).
BANK_TRANSACTION_IN_KEY = "BTX-IN"
BANK_TRANSACTION_KEYS = (BANK_TRANSACTION_KEY, BANK_TRANSACTION_IN_KEY)
TRANSFER_KEY = "XFER"


def payment_key(transaction_type: str, order_id: str) -> str:
    """An order's payment (or refund) of one settlement: Amazon's type keeps an order's sale
    and its refund in the same settlement apart."""
    return f"PAY:{transaction_type}:{order_id}"[:120]


@dataclass(frozen=True, slots=True)
class RecordedSettlement:
    id: int  # the settlements row
    new: bool  # recorded by this call, not found from an earlier read


@dataclass(frozen=True, slots=True)
class ReportDocument:
    """A document of Amazon's report as the ledger has it, whatever became of it in Xero."""

    order_id: str | None
    refund: bool  # a credit note
    currency: str
    amount: Decimal  # Amazon's figure from the document's rows: a refund's is negative
    status: str  # a LedgerStatus
    in_xero: bool
    error_message: str | None


@dataclass(frozen=True, slots=True)
class SettledOrder:
    """An order's payment (or refund) item in one of the integration's settlements."""

    order_id: str
    refund: bool
    amount_cents: int  # as it moves the clearing account: a refund's is negative
    status: str  # a SettlementItemStatus
    settlement_id: str  # Amazon's
    deposit_at: datetime


class SettlementLedger:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(
        self, integration_id: int, settlement: Settlement, plan: SettlementPlan
    ) -> RecordedSettlement:
        """The settlement and its items, in one transaction; a settlement read before keeps
        its items as they are (posted ones stay posted)."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            new = insert_ignore(
                session,
                AmazonSettlement,
                [
                    {
                        "integration_id": integration_id,
                        "settlement_id": settlement.settlement_id,
                        "currency": settlement.currency,
                        "start_at": settlement.start,
                        "end_at": settlement.end,
                        "deposit_at": settlement.deposit_date,
                        "total_cents": cents(settlement.total),
                        "recorded_at": now,
                    }
                ],
                ["integration_id", "settlement_id"],
            )
            row_id = session.scalars(
                select(AmazonSettlement.id).where(
                    AmazonSettlement.integration_id == integration_id,
                    AmazonSettlement.settlement_id == settlement.settlement_id,
                )
            ).one()
            items = [
                _item(
                    row_id,
                    integration_id,
                    payment_key(payment.transaction_type, payment.order_id),
                    SettlementItemKind.REFUND if payment.refund else SettlementItemKind.PAYMENT,
                    cents(payment.amount),
                    now,
                    amazon_order_id=payment.order_id,
                    posted_at=payment.posted,
                )
                for payment in plan.payments
            ]
            for key, lines in zip(BANK_TRANSACTION_KEYS, plan.transactions(), strict=False):
                items.append(
                    _item(
                        row_id,
                        integration_id,
                        key,
                        SettlementItemKind.BANK_TRANSACTION,
                        sum(cents(line.amount) for line in lines),
                        now,
                        lines=[
                            [str(line.kind), cents(line.amount), list(line.descriptions)]
                            for line in lines
                        ],
                    )
                )
            if plan.payout:
                items.append(
                    _item(
                        row_id,
                        integration_id,
                        TRANSFER_KEY,
                        SettlementItemKind.TRANSFER,
                        -cents(plan.payout),  # out of clearing
                        now,
                    )
                )
            insert_ignore(session, SettlementItem, items, ["settlement_id", "item_key"])
        return RecordedSettlement(row_id, bool(new))

    def settlement(self, row_id: int) -> AmazonSettlement | None:
        with self._sessions() as session:
            return session.get(AmazonSettlement, row_id)

    def record_clearing(self, row_id: int, account_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(AmazonSettlement)
                .where(
                    AmazonSettlement.id == row_id, AmazonSettlement.clearing_account_id.is_(None)
                )
                .values(clearing_account_id=account_id)
            )

    def items(
        self, row_id: int, *statuses: SettlementItemStatus, kinds: Sequence[str] = ()
    ) -> list[SettlementItem]:
        """The settlement's items in these statuses (all when none are named), by id."""
        query = select(SettlementItem).where(SettlementItem.settlement_id == row_id)
        if statuses:
            query = query.where(SettlementItem.status.in_(statuses))
        if kinds:
            query = query.where(SettlementItem.kind.in_(kinds))
        with self._sessions() as session:
            return list(session.scalars(query.order_by(SettlementItem.id)))

    def latest(self, integration_id: int) -> int | None:
        """The integration's settlement deposited last, if any."""
        with self._sessions() as session:
            return session.scalar(
                select(AmazonSettlement.id)
                .where(AmazonSettlement.integration_id == integration_id)
                .order_by(AmazonSettlement.deposit_at.desc(), AmazonSettlement.id.desc())
                .limit(1)
            )

    def clearing_balances(self, integration_id: int) -> dict[str, Decimal]:
        """Per currency, what the clearing account holds of what this bot booked to it: the
        posted items of every settlement, as each moved it."""
        with self._sessions() as session:
            return {
                currency: from_cents(int(total))
                for currency, total in session.execute(
                    select(AmazonSettlement.currency, func.sum(SettlementItem.amount_cents))
                    .join(AmazonSettlement, AmazonSettlement.id == SettlementItem.settlement_id)
                    .where(
                        SettlementItem.integration_id == integration_id,
                        SettlementItem.status == SettlementItemStatus.POSTED,
                    )
                    .group_by(AmazonSettlement.currency)
                    .order_by(AmazonSettlement.currency)
                )
            }

    def to_send(
        self, row_id: int, kinds: Sequence[str], *, uncertain: Collection[str]
    ) -> list[SettlementItem]:
        """The settlement's items of these kinds to send (again): pending, waiting for their
        document, or failed with an error of one of the `uncertain` kinds (Xero may have acted:
        each is looked for by its Reference before it is sent)."""
        query = select(SettlementItem).where(
            SettlementItem.settlement_id == row_id,
            SettlementItem.kind.in_(kinds),
            SettlementItem.status.in_([SettlementItemStatus.PENDING, SettlementItemStatus.WAITING])
            | (
                (SettlementItem.status == SettlementItemStatus.FAILED)
                & SettlementItem.error_kind.in_(uncertain)
            ),
        )
        with self._sessions() as session:
            return list(session.scalars(query.order_by(SettlementItem.id)))

    def unfinished(self, integration_id: int, *, uncertain: Collection[str]) -> list[int]:
        """The integration's settlements with items still to send: waiting for their
        documents, left pending or in flight by a stopped posting, or failed uncertainly."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(SettlementItem.settlement_id)
                    .where(
                        SettlementItem.integration_id == integration_id,
                        SettlementItem.status.in_(
                            [
                                SettlementItemStatus.PENDING,
                                SettlementItemStatus.WAITING,
                                SettlementItemStatus.IN_FLIGHT,
                            ]
                        )
                        | (
                            (SettlementItem.status == SettlementItemStatus.FAILED)
                            & SettlementItem.error_kind.in_(uncertain)
                        ),
                    )
                    .distinct()
                    .order_by(SettlementItem.settlement_id)
                )
            )

    def deposited(
        self, integration_id: int, start: datetime, end: datetime
    ) -> list[AmazonSettlement]:
        """The integration's settlements deposited in [start, end), by deposit date."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(AmazonSettlement)
                    .where(
                        AmazonSettlement.integration_id == integration_id,
                        AmazonSettlement.deposit_at >= start,
                        AmazonSettlement.deposit_at < end,
                    )
                    .order_by(AmazonSettlement.deposit_at, AmazonSettlement.id)
                )
            )

    def settled_orders(
        self, integration_id: int, orders: Collection[str]
    ) -> dict[tuple[str, bool], list[SettledOrder]]:
        """(order, refund) -> the payment items of these orders in any of the integration's
        settlements, by deposit date."""
        found: dict[tuple[str, bool], list[SettledOrder]] = defaultdict(list)
        with self._sessions() as session:
            for page in chunks(sorted(orders), 1000):
                rows = session.execute(
                    select(
                        SettlementItem.amazon_order_id,
                        SettlementItem.kind,
                        SettlementItem.amount_cents,
                        SettlementItem.status,
                        AmazonSettlement.settlement_id,
                        AmazonSettlement.deposit_at,
                    )
                    .join(AmazonSettlement, AmazonSettlement.id == SettlementItem.settlement_id)
                    .where(
                        SettlementItem.integration_id == integration_id,
                        SettlementItem.amazon_order_id.in_(page),
                        SettlementItem.kind.in_(
                            [SettlementItemKind.PAYMENT, SettlementItemKind.REFUND]
                        ),
                    )
                    .order_by(AmazonSettlement.deposit_at, SettlementItem.id)
                )
                for order, kind, amount, status, settlement_id, deposit_at in rows:
                    assert order is not None  # asked for by it
                    refund = kind == SettlementItemKind.REFUND
                    found[order, refund].append(
                        SettledOrder(order, refund, amount, status, settlement_id, deposit_at)
                    )
        return dict(found)

    def posted_totals(
        self, integration_id: int, orders: Collection[str]
    ) -> dict[tuple[str, bool], Decimal]:
        """(order, refund) -> what the order's documents in Xero add up to, whichever
        month's report made them (signed as Amazon writes them)."""
        totals: dict[tuple[str, bool], Decimal] = defaultdict(lambda: Decimal(0))
        with self._sessions() as session:
            for chunk in chunks(sorted(orders), 500):
                for order, kind, gross in session.execute(
                    select(
                        LedgerItem.amazon_order_id, LedgerItem.document_type, LedgerItem.gross_cents
                    ).where(
                        LedgerItem.integration_id == integration_id,
                        LedgerItem.amazon_order_id.in_(chunk),
                        LedgerItem.xero_id.is_not(None),
                    )
                ):
                    refund = kind == DocumentKind.CREDIT_NOTE
                    totals[(order or "", refund)] += _signed(from_cents(gross), kind)
        return dict(totals)

    def documents_dated(
        self, integration_id: int, start: datetime, end: datetime
    ) -> list[ReportDocument]:
        """The integration's invoices and credit notes whose first report row is dated in
        [start, end): Amazon's report of that month, read by sync or import alike (a run's
        period does not say, and an item moves to whichever run read it last)."""
        day = func.min(AmazonTransaction.payload["date"].as_string())
        of_month = (
            select(AmazonTransaction.document_key)
            .where(
                AmazonTransaction.integration_id == integration_id,
                AmazonTransaction.document_key.is_not(None),
            )
            .group_by(AmazonTransaction.document_key)
            .having(day >= start.date().isoformat(), day < end.date().isoformat())
        )
        query = (
            select(
                LedgerItem.source_key,
                LedgerItem.amazon_order_id,
                LedgerItem.document_type,
                LedgerItem.currency,
                LedgerItem.gross_cents,
                LedgerItem.status,
                LedgerItem.xero_id,
                LedgerItem.error_message,
            )
            .where(
                LedgerItem.integration_id == integration_id,
                LedgerItem.source_key.in_(of_month),
            )
            .order_by(LedgerItem.id)
        )
        with self._sessions() as session:
            items = session.execute(query).all()
            # A document in Xero has Amazon's gross recorded (positive on a credit note); the
            # others' are summed from their rows, signed as Amazon writes them.
            unposted = self._gross_of_rows(
                session, integration_id, [item.source_key for item in items if not item.xero_id]
            )
        return [
            ReportDocument(
                item.amazon_order_id,
                item.document_type == DocumentKind.CREDIT_NOTE,
                item.currency or "",
                unposted[item.source_key]
                if not item.xero_id
                else _signed(from_cents(item.gross_cents), item.document_type),
                item.status,
                bool(item.xero_id),
                item.error_message,
            )
            for item in items
        ]

    @staticmethod
    def _gross_of_rows(
        session: Session, integration_id: int, keys: list[str]
    ) -> dict[str, Decimal]:
        gross: dict[str, Decimal] = defaultdict(Decimal)
        for page in chunks(keys, 1000):
            for key, payload in session.execute(
                select(AmazonTransaction.document_key, AmazonTransaction.payload).where(
                    AmazonTransaction.integration_id == integration_id,
                    AmazonTransaction.document_key.in_(page),
                )
            ):
                gross[key] += transaction_from_json(payload).gross
        return gross

    def reopen_failed(self, integration_id: int, row_id: int | None = None) -> None:
        """Failed items (of one settlement, or all of the integration's) are sent again by
        the next posting, each looked for in Xero by its Reference first (it keeps its
        attempts)."""
        query = update(SettlementItem).where(
            SettlementItem.integration_id == integration_id,
            SettlementItem.status == SettlementItemStatus.FAILED,
        )
        if row_id is not None:
            query = query.where(SettlementItem.settlement_id == row_id)
        with self._sessions.begin() as session:
            session.execute(query.values(status=SettlementItemStatus.PENDING))

    def reopen_in_flight(self, row_id: int) -> None:
        """Items a crash left in flight go back to pending: each is looked for in Xero before
        it is sent again."""
        with self._sessions.begin() as session:
            session.execute(
                update(SettlementItem)
                .where(
                    SettlementItem.settlement_id == row_id,
                    SettlementItem.status == SettlementItemStatus.IN_FLIGHT,
                )
                .values(status=SettlementItemStatus.PENDING)
            )

    def mark_in_flight(self, items: Sequence[SettlementItem]) -> dict[int, int]:
        """Committed before the items are sent: each item's attempt number, which its
        request's Idempotency-Key is made from."""
        attempts = {item.id: item.attempts + 1 for item in items}
        self.record_outcomes(
            [
                {"id": item_id, "status": SettlementItemStatus.IN_FLIGHT, "attempts": attempt}
                for item_id, attempt in attempts.items()
            ]
        )
        return attempts

    def record_outcomes(self, outcomes: Sequence[dict[str, Any]]) -> None:
        """What became of each item, by id ({"id": ..., column: value, ...})."""
        if outcomes:
            with self._sessions.begin() as session:
                update_by_id(session, SettlementItem, outcomes)


def sold_before(item: SettlementItem, start_date: date) -> bool:
    """A payment for an order Amazon posted before the integration's start date: its invoice
    is not the bot's to make (the seller's earlier bookkeeping made it)."""
    return item.posted_at is not None and item.posted_at.date() < start_date


def moved(item: SettlementItem) -> int:
    """The cents the item moved in the clearing account in Xero."""
    return item.amount_cents if item.moved_cents is None else item.moved_cents


def _signed(gross: Decimal, document_type: str | None) -> Decimal:
    return -gross if document_type == DocumentKind.CREDIT_NOTE else gross


def _item(
    settlement_row_id: int,
    integration_id: int,
    key: str,
    kind: SettlementItemKind,
    amount_cents: int,
    now: datetime,
    *,
    amazon_order_id: str | None = None,
    posted_at: datetime | None = None,
    lines: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "settlement_id": settlement_row_id,
        "integration_id": integration_id,
        "item_key": key,
        "kind": kind,
        "amazon_order_id": amazon_order_id,
        "amount_cents": amount_cents,
        "posted_at": posted_at,
        "lines": lines,
        "moved_cents": None,
        "status": SettlementItemStatus.PENDING,
        "xero_id": None,
        "attempts": 0,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
        "updated_at": now,
    }
