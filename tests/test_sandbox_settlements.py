"""The sandbox Amazon's settlements settle the orders and refunds its VAT reports serve (issue 11):
the same order ids, shipments and amounts, so that each order's payment in a settlement's plan is
the gross of the document its VAT rows make; with fees, reserves, a negative settlement for some
seed, and settlement reports listed for EU marketplaces as for North America's. Through the
sandbox over HTTP, with the bot's own client, readers and document builder."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from sandbox.amazon_reports import SETTLEMENT_REPORT, VAT_REPORT, generate_settlement_report
from services.documents import Document, build_document, document_key
from services.integrations import PostingSettings
from services.marketplaces import MARKETPLACES
from services.reports import parse_report
from services.settlement_plan import plan_settlement
from services.settlements import AmountKind, FeeKind, Settlement, read_settlement
from services.transactions import Transaction, TransactionType
from tests.test_amazon_client import Amazon
from tests.test_sandbox_amazon import REPORTS, Spec

DE, UK, PL, US = "A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3", "ATVPDKIKX0DER"
SELLER_EU = (DE, UK, PL)  # the sandbox seller's EU and UK marketplaces: its VAT report's
OCTOBER = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
# Settlements deposited in October began in September at the earliest.
VAT_SPAN = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))


@dataclass(frozen=True)
class Served:
    settlement: Settlement
    marketplace_id: str
    rows: list[dict[str, str]]  # the file's rows after the header, as written


@dataclass(frozen=True)
class Month:
    settlements: list[Served]  # deposited in October, of every EU marketplace
    vat: list[Transaction]  # the VAT report's sales and refunds, September and October


@pytest.fixture(scope="module")
def amazon() -> Iterator[Amazon]:
    running = Amazon(orders_per_report=120)
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def october(amazon: Amazon) -> Month:
    client = amazon.client
    served = []
    for marketplace_id in SELLER_EU:
        # A settlement's report is made when it closes, a few days before its deposit.
        reports = client.get_reports(
            [SETTLEMENT_REPORT],
            created_since=OCTOBER[0] - timedelta(days=5),
            created_until=OCTOBER[1],
            marketplace_ids=[marketplace_id],
        )
        for report in reports:
            document = client.get_report_document(report.report_document_id or "")
            lines = list(client.iter_report_lines(document))
            settlement = read_settlement(lines, file_name=f"{report.report_id}.txt")
            if OCTOBER[0] <= settlement.deposit_date < OCTOBER[1]:
                rows = list(csv.DictReader(lines, delimiter="\t"))[1:]
                served.append(Served(settlement, marketplace_id, rows))
    report_id = client.create_report(VAT_REPORT, list(SELLER_EU), *VAT_SPAN)
    done = client.wait_for_report(report_id)
    document = client.get_report_document(done.report_document_id or "", restricted=True)
    items = list(parse_report(client.iter_report_lines(document), file_name="vat.txt"))
    assert all(isinstance(item, Transaction) for item in items)
    vat = [
        item
        for item in items
        if isinstance(item, Transaction)
        and item.type in (TransactionType.SALE, TransactionType.REFUND)
    ]
    return Month(served, vat)


def test_every_settlement_of_the_month_adds_up_and_is_known(october: Month) -> None:
    per_marketplace = defaultdict(list)
    for served in october.settlements:
        per_marketplace[served.marketplace_id].append(served.settlement)
    # Two or three 14-day settlements a month, in each EU marketplace.
    assert {m: len(s) >= 2 for m, s in per_marketplace.items()} == dict.fromkeys(SELLER_EU, True)
    for served in october.settlements:
        settlement = served.settlement  # read_settlement refuses one that does not add up
        assert settlement.unknown == ()
        assert settlement.currency == MARKETPLACES[served.marketplace_id].currency
        assert plan_settlement(settlement).clearing_balance() == 0
        assert settlement.total_of(AmountKind.SALE) > 0
        assert {FeeKind.REFERRAL, FeeKind.SUBSCRIPTION, FeeKind.FBA_STORAGE} <= set(
            settlement.fees()
        )
        assert settlement.total_of(AmountKind.RESERVE_RELEASED) > 0
    assert any(s.settlement.total_of(AmountKind.RESERVE_HELD) < 0 for s in october.settlements)
    assert any(
        order.transaction_type == "Refund"
        for served in october.settlements
        for order in served.settlement.orders
    )


def test_settled_orders_are_the_vat_reports_in_the_settlements_period(october: Month) -> None:
    dated: dict[tuple[str, str, str], set[datetime]] = defaultdict(set)
    for item in october.vat:
        word = "Order" if item.type == TransactionType.SALE else "Refund"
        dated[item.marketplace or "", item.order_id, word].add(
            datetime.combine(item.date, datetime.min.time(), UTC)
        )
    settled = 0
    for served in october.settlements:
        settlement, domain = served.settlement, MARKETPLACES[served.marketplace_id].domain
        first_day = settlement.start.replace(hour=0, minute=0, second=0)
        for order in settlement.orders:
            days = dated[domain, order.order_id, order.transaction_type]
            assert any(first_day <= day <= settlement.end for day in days), order
            assert order.marketplace == domain
            assert order.posted is not None and settlement.start <= order.posted
            assert order.posted <= settlement.end
            settled += 1
    assert settled > 100


def _documents(vat: list[Transaction]) -> dict[str, list[tuple[Transaction, Document]]]:
    """Order id -> each of its documents, with its first row, as the bot builds them."""
    rows: dict[str, list[Transaction]] = defaultdict(list)
    for item in vat:
        key = document_key(item)
        assert key is not None
        rows[key].append(item)
    documents = defaultdict(list)
    for group in rows.values():
        documents[group[0].order_id].append((group[0], build_document(group, PostingSettings())))
    return documents


def test_each_orders_payment_is_the_gross_of_its_document(october: Month) -> None:
    documents = _documents(october.vat)
    paid = collected = 0
    for served in october.settlements:
        settlement = served.settlement
        shipments: dict[str, set[str]] = defaultdict(set)
        for row in served.rows:
            if row["transaction-type"] == "Order":
                shipments[row["order-id"]].add(row["shipment-id"])
        plan = plan_settlement(settlement)
        assert len(plan.payments) == len(settlement.orders)
        for payment in plan.payments:
            if payment.refund:
                first_day, last_day = settlement.start.date(), settlement.end.date()
                mine = [
                    document
                    for item, document in documents[payment.order_id]
                    if item.type == TransactionType.REFUND and first_day <= item.date <= last_day
                ]
            else:
                mine = [
                    document
                    for item, document in documents[payment.order_id]
                    if item.type == TransactionType.SALE
                    and item.activity_id in shipments[payment.order_id]
                ]
            assert mine, payment
            sign = -1 if payment.refund else 1
            # The VAT Amazon collects itself as deemed supplier (UK VAT on eCommerce, IOSS)
            # is in the document's gross and in the payment; what Amazon withholds of it is a
            # line of the settlement's bank transaction, to the sales account.
            kept = sum((d.collected_by_amazon for d in mine), Decimal("0.00"))
            gross = sum((d.gross for d in mine), Decimal("0.00"))
            assert payment.amount == sign * gross, (payment, mine)
            paid += 1
            collected += bool(kept)
    assert paid > 100 and collected


def test_some_settlement_is_negative_fees_and_refunds_exceed_sales() -> None:
    period = (
        datetime(2026, 10, 12, 8, 24, 51, tzinfo=UTC),
        datetime(2026, 10, 26, 8, 24, 50, tzinfo=UTC),
    )
    for seed in range(20):
        lines = generate_settlement_report(
            period=period,
            marketplace_id=DE,
            seed=seed,
            orders=120,
            vat_marketplace_ids=SELLER_EU,
        )
        settlement = read_settlement(lines, file_name="negative.txt")
        if settlement.total < 0:
            break
    else:
        raise AssertionError("no negative settlement in 20 seeds")
    sales = sum(
        (order.buyer for order in settlement.orders if order.transaction_type == "Order"),
        Decimal(0),
    )
    refunds = sum(
        (order.buyer for order in settlement.orders if order.transaction_type == "Refund"),
        Decimal(0),
    )
    fees = sum(settlement.fees().values(), Decimal(0))
    assert sales > 0 and -(fees + refunds) > sales
    plan = plan_settlement(settlement)
    assert plan.payout == settlement.total < 0 and plan.clearing_balance() == 0


def test_get_reports_lists_eu_settlements_as_amazon_dates_them(amazon: Amazon) -> None:
    spec = Spec("models/reports-api-model/reports_2021-06-30.json")
    token = amazon.lwa.access_token(amazon.refresh_token)
    answer = requests.get(
        f"{amazon.server.url}{REPORTS}/reports",
        headers={"x-amz-access-token": token},
        params={
            "reportTypes": SETTLEMENT_REPORT,
            "marketplaceIds": ",".join((*SELLER_EU, US)),
            "pageSize": "100",
        },
        timeout=10,
    )
    reports = spec.check("getReports", answer)["reports"]
    cycles: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for report in reports:
        [marketplace_id] = report["marketplaceIds"]
        start = datetime.fromisoformat(report["dataStartTime"])
        end = datetime.fromisoformat(report["dataEndTime"])
        created = datetime.fromisoformat(report["createdTime"])
        assert end - start == timedelta(days=14, seconds=-1)
        # Made when the settlement closes, within hours.
        assert end < created < end + timedelta(hours=4)
        cycles[marketplace_id].append((start, end))
    assert set(cycles) == {*SELLER_EU, US}
    for periods in cycles.values():
        periods.sort()
        # One settlement after the other, each starting the second after the last ended.
        assert all(b[0] - a[1] == timedelta(seconds=1) for a, b in itertools.pairwise(periods))
    # Each marketplace on its own cycle, from an odd time of day as Amazon's are.
    assert len({periods[0][0].time() for periods in cycles.values()}) == len(cycles)

    # The file says what the listing says.
    germany = next(r for r in reports if r["marketplaceIds"] == [DE])
    document = amazon.client.get_report_document(germany["reportDocumentId"])
    lines = amazon.client.iter_report_lines(document)
    settlement = read_settlement(lines, file_name="de.txt")
    assert settlement.start == datetime.fromisoformat(germany["dataStartTime"])
    assert settlement.end == datetime.fromisoformat(germany["dataEndTime"])
    assert settlement.end < settlement.deposit_date < settlement.end + timedelta(days=4)
