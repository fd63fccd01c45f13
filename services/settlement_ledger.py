"""The settlements' ledger: every statement about settlements and what each makes in Xero.

A settlement is recorded once per integration, whatever reads it again (the month's sync, an
import of its file, a retry): its plan's payments, bank transaction and payout become items
with a key each, so recording twice changes nothing. An item lives like a ledger item: pending
(or waiting for its invoice), in flight (committed before it is sent), then posted or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from services.ledger_rows import insert_ignore, update_by_id
from services.models import (
    AmazonSettlement,
    SettlementItem,
    SettlementItemKind,
    SettlementItemStatus,
)
from services.money import cents
from services.settlement_plan import SettlementPlan
from services.settlements import Settlement

BANK_TRANSACTION_KEY = "BTX"
TRANSFER_KEY = "XFER"


def payment_key(transaction_type: str, order_id: str) -> str:
    """An order's payment (or refund) of one settlement: Amazon's type keeps an order's sale
    and its refund in the same settlement apart."""
    return f"PAY:{transaction_type}:{order_id}"[:120]


@dataclass(frozen=True, slots=True)
class RecordedSettlement:
    id: int  # the settlements row
    new: bool  # recorded by this call, not found from an earlier read


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
                )
                for payment in plan.payments
            ]
            if plan.lines:
                items.append(
                    _item(
                        row_id,
                        integration_id,
                        BANK_TRANSACTION_KEY,
                        SettlementItemKind.BANK_TRANSACTION,
                        cents(plan.lines_total()),
                        now,
                        lines=[
                            [str(line.kind), cents(line.amount), list(line.descriptions)]
                            for line in plan.lines
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

    def waiting(self, integration_id: int) -> list[int]:
        """The integration's settlements with payments waiting for their documents."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(SettlementItem.settlement_id)
                    .where(
                        SettlementItem.integration_id == integration_id,
                        SettlementItem.status == SettlementItemStatus.WAITING,
                    )
                    .distinct()
                    .order_by(SettlementItem.settlement_id)
                )
            )

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


def _item(
    settlement_row_id: int,
    integration_id: int,
    key: str,
    kind: SettlementItemKind,
    amount_cents: int,
    now: datetime,
    *,
    amazon_order_id: str | None = None,
    lines: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "settlement_id": settlement_row_id,
        "integration_id": integration_id,
        "item_key": key,
        "kind": kind,
        "amazon_order_id": amazon_order_id,
        "amount_cents": amount_cents,
        "lines": lines,
        "status": SettlementItemStatus.PENDING,
        "xero_id": None,
        "attempts": 0,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
        "updated_at": now,
    }
