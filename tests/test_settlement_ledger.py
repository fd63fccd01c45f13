"""A settlement is recorded once whatever reads it again, and its items keep what became of
them: on SQLite and PostgreSQL."""

from __future__ import annotations

from bot.container import Container
from services.models import Integration, SettlementItemKind, SettlementItemStatus
from services.report_files import read_report_file
from services.settlement_ledger import SettlementLedger, payment_key
from services.settlement_plan import plan_settlement
from services.settlements import read_settlement
from tests.test_settlements import SAMPLE


def test_a_settlement_read_twice_is_recorded_once_and_keeps_its_items_outcomes(
    container: Container, shop: Integration
) -> None:
    ledger = SettlementLedger(container.sessions)
    settlement = read_settlement(read_report_file(SAMPLE), file_name=SAMPLE.name)
    plan = plan_settlement(settlement)

    first = ledger.record(shop.id, settlement, plan)
    items = ledger.items(first.id)
    assert first.new
    assert [(item.kind, item.amount_cents) for item in items] == [
        (SettlementItemKind.PAYMENT, 14039),  # 129.99 and the 10.40 tax Amazon collected
        (SettlementItemKind.PAYMENT, 14249),
        (SettlementItemKind.REFUND, -12999),
        (SettlementItemKind.PAYMENT, 21000),
        (SettlementItemKind.BANK_TRANSACTION, 22000),  # fees, the withheld tax, the reserve
        (SettlementItemKind.TRANSFER, -58289),  # the payout leaves clearing
    ]
    assert sum(item.amount_cents for item in items) == 0  # clearing nets to zero
    assert items[0].item_key == payment_key("Order", "114-8829371-4410258")
    lines = items[4].lines
    assert (
        lines is not None
        and ["reserve", 40044, ["Previous Reserve Amount Balance", "Current Reserve Amount"]]
        in lines
    )

    attempts = ledger.mark_in_flight(items[:2])
    ledger.record_outcomes(
        [{"id": items[0].id, "status": SettlementItemStatus.POSTED, "xero_id": "pay-1"}]
    )
    again = ledger.record(shop.id, settlement, plan)

    assert again == type(first)(first.id, new=False)
    after = ledger.items(first.id)
    assert len(after) == len(items) and attempts == {items[0].id: 1, items[1].id: 1}
    assert [(item.status, item.xero_id) for item in after[:3]] == [
        (SettlementItemStatus.POSTED, "pay-1"),
        (SettlementItemStatus.IN_FLIGHT, None),
        (SettlementItemStatus.PENDING, None),
    ]
    ledger.reopen_in_flight(first.id)
    assert [item.id for item in ledger.items(first.id, SettlementItemStatus.PENDING)] == [
        item.id for item in items[1:]
    ]
