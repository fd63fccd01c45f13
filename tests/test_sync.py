"""The monthly sync end to end: sandbox Amazon -> ledger -> sandbox Xero, on both databases."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, text, update

from bot.container import Container
from bot.scheduler import SyncScheduler
from sandbox.amazon_reports import generate_vat_report
from sandbox.browser import consent_to_both, submit_consent
from sandbox.world import SandboxWorld
from sandbox.xero import SandboxOrg
from services.budget import posting_calls
from services.errors import ServiceError
from services.integrations import IntegrationSpec, XeroTokenStore
from services.marketplaces import Region
from services.models import (
    AmazonSettlement,
    Integration,
    LedgerItem,
    RunStatus,
    SettlementItem,
    SyncRun,
)
from services.results import CurrencyTotals
from services.run_claims import ClaimLost
from services.sync import RunInProgress, SyncEngine
from services.xero import Endpoint, XeroClient
from tests.conftest import EU, ORDERS, SHARED, payout_banks
from tests.test_run_claims import claim_session_pid
from tests.test_slack_app import wait_for

PERIOD = "2026-10"

Totals = dict[str, tuple[Decimal, Decimal, Decimal]]


def report_rows(world: SandboxWorld, period: str = PERIOD) -> Iterator[dict[str, str]]:
    """The report as Amazon's sandbox makes it, read without our parser."""
    lines = generate_vat_report(
        period=period, marketplace_ids=list(EU), seed=world.amazon.seed, orders=ORDERS
    )
    header = next(lines).split("\t")
    for line in lines:
        yield dict(zip(header, line.split("\t"), strict=False))


def expected_totals(world: SandboxWorld, period: str = PERIOD) -> Totals:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for row in report_rows(world, period):
        if row["TRANSACTION_TYPE"] not in ("SALE", "REFUND"):
            continue
        gross = Decimal(row["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"])
        # VAT that Amazon collects as marketplace or deemed reseller is not the seller's.
        marketplace = row.get("TAX_COLLECTION_RESPONSIBILITY") == "MARKETPLACE"
        vat = Decimal(0) if marketplace else Decimal(row["TOTAL_ACTIVITY_VALUE_VAT_AMT"])
        entry = sums[row["TRANSACTION_CURRENCY_CODE"]]
        if row["TRANSACTION_TYPE"] == "SALE":
            entry[0] += gross
            entry[2] += vat
        elif row["TRANSACTION_TYPE"] == "REFUND":
            entry[1] -= gross
            entry[2] += vat
    return {currency: (s[0], s[1], s[2]) for currency, s in sums.items()}


def expected_documents(world: SandboxWorld) -> tuple[int, int]:
    invoices, credit_notes = set(), set()
    for row in report_rows(world):
        if row["TRANSACTION_TYPE"] == "SALE":
            key = row["VAT_INV_NUMBER"] or row["ACTIVITY_TRANSACTION_ID"]
            invoices.add((row["TRANSACTION_EVENT_ID"], key))
        elif row["TRANSACTION_TYPE"] == "REFUND":
            credit_notes.add(row["ACTIVITY_TRANSACTION_ID"])
    return len(invoices), len(credit_notes)


def result_totals(result: Any) -> Totals:
    return {c: (t.sales_gross, t.refunds_gross, t.tax) for c, t in result.totals.items()}


def xero_totals(world: SandboxWorld) -> dict[str, tuple[Decimal, Decimal]]:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    for invoice in world.xero.documents("Invoices"):
        sums[invoice["CurrencyCode"]][0] += Decimal(str(invoice["Total"]))
    for credit_note in world.xero.documents("CreditNotes"):
        sums[credit_note["CurrencyCode"]][1] += Decimal(str(credit_note["Total"]))
    return {currency: (s[0], s[1]) for currency, s in sums.items()}


def numbers(world: SandboxWorld, endpoint: str) -> Counter[str]:
    field = "InvoiceNumber" if endpoint == "Invoices" else "CreditNoteNumber"
    return Counter(document[field] for document in world.xero.documents(endpoint))


def assert_exactly_once(world: SandboxWorld) -> None:
    invoices, credit_notes = expected_documents(world)
    assert len(numbers(world, "Invoices")) == invoices
    assert set(numbers(world, "Invoices").values()) == {1}
    assert len(numbers(world, "CreditNotes")) == credit_notes
    assert set(numbers(world, "CreditNotes").values()) == {1}
    names = Counter(contact["Name"] for contact in world.xero.org().contacts.values())
    assert set(names.values()) == {1}
    for credit_note in world.xero.documents("CreditNotes"):
        assert len(credit_note.get("Allocations") or []) <= 1


def test_a_month_reconciles_to_the_cent_and_a_rerun_posts_nothing(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    result = container.sync.sync_period(shop, PERIOD)
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    expected = expected_totals(world)
    assert result_totals(result) == expected
    assert xero_totals(world) == {c: (s, r) for c, (s, r, _tax) in expected.items()}
    invoices, credit_notes = expected_documents(world)
    assert (result.invoices_created, result.credit_notes_created) == (invoices, credit_notes)
    assert set(result.skipped) >= {"FC_TRANSFER", "INBOUND", "RETURN"}
    assert result.allocations_made > 0
    assert_exactly_once(world)
    # Batches, not one call per document. The constant: the tax rates, the organisation, the
    # missing rates made in one call, invoice lookups for the allocations (one per 50 credit
    # notes) and one more contacts round for two buyers of the same name. Per batch also one
    # look-up of its numbers (Xero updates a number it has, so one it has is never sent), and
    # one per 50 refunds whose order's invoice is not in the ledger (its contact, in Xero).
    documents = invoices + credit_notes
    bound = (
        2 * math.ceil(invoices / 50)
        + 3 * math.ceil(credit_notes / 50)
        + math.ceil(result.contacts_created / 50)
        + result.allocations_made
        + 3
        + math.ceil(credit_notes / 50)
        + 1
    )
    # The month's payouts: per settlement the look-ups of its orders' invoices and credit
    # notes, its payments, fee transaction and transfer; per currency the chart of accounts,
    # the organisation and the clearing account; once the fee, reserve and other accounts.
    currencies = {settled["currency"] for settled in result.settlements}
    bound += 5 * len(result.settlements) + 3 * len(currencies) + 6
    # The payouts Amazon deposited in October, each once, whenever its settlement began.
    assert all(settled["deposit_date"].startswith("2026-10") for settled in result.settlements)
    assert len({settled["settlement_id"] for settled in result.settlements}) == len(
        result.settlements
    )
    payouts = [settled for settled in result.settlements if Decimal(settled["payout"])]
    assert payouts and result.transfers_created == len(payouts)
    assert result.xero_api_calls <= bound, (result.xero_api_calls, bound, documents)

    again = container.sync.sync_period(shop, PERIOD)
    assert again.status == RunStatus.SUCCEEDED
    assert (again.invoices_created, again.credit_notes_created, again.xero_api_calls) == (0, 0, 0)
    assert again.already_posted == documents
    assert "nothing was posted" in again.message
    assert_exactly_once(world)


class Crash(BaseException):
    """A process dying: nothing in the engine may catch it."""


STEPS = {
    "contacts, before Xero hears": ("Contacts", "before"),
    "contacts, after Xero answered": ("Contacts", "after"),
    "invoices, before Xero hears": ("Invoices", "before"),
    "invoices, after Xero answered": ("Invoices", "after"),
    "credit notes, after Xero answered": ("CreditNotes", "after"),
    "allocation, after Xero answered": ("Allocations", "after"),
    "payments, after Xero answered": ("Payments", "after"),
    "fee transaction, after Xero answered": ("BankTransactions", "after"),
    "payout transfer, after Xero answered": ("BankTransfers", "after"),
}
BANKING = {
    "Payments": "create_payments",
    "BankTransactions": "create_bank_transactions",
    "BankTransfers": "create_bank_transfer",
}


def test_a_month_older_than_amazons_report_listing_says_how_to_book_its_payouts(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    with container.sessions.begin() as session:
        session.execute(
            update(Integration).where(Integration.id == shop.id).values(summary_channel="C0FINANCE")
        )
    recent = container.sync.sync_period(shop, PERIOD)
    assert recent.settlements and recent.notes == []

    # June's settlements were made over 90 days ago: getReports lists none of them.
    old = container.sync.sync_period(shop, "2026-06")

    assert old.status == RunStatus.SUCCEEDED and old.invoices_created, old.to_json()
    assert old.settlements == []
    [note] = old.notes
    assert "90 days only" in note and "import-report" in note
    [summary] = [m for m in world.slack.messages("C0FINANCE") if "June 2026 summary" in m["text"]]
    assert "import-report" in str(summary["blocks"])


def test_a_spent_daily_allowance_pauses_the_month_and_it_resumes_by_itself(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    with container.sessions.begin() as session:
        session.execute(
            update(Integration).where(Integration.id == shop.id).values(summary_channel="C0FINANCE")
        )
    world.xero.day_limit = 8  # the month needs more calls than Xero allows today
    now = datetime.now(UTC)
    engine = SyncEngine(
        container.sessions,
        container.integrations,
        claims=container.claims,
        spapi=container.spapi,
        xero=container.xero,
        notifier=container.notifier,
        xero_daily_calls=8,  # XERO_DAILY_CALL_LIMIT, as the bot's Xero app is allowed
    )

    paused = engine.sync_period(shop, PERIOD)
    total = sum(expected_documents(world))

    assert paused.status == RunStatus.WAITING, paused.to_json()
    assert paused.failed == 0 and 0 < paused.documents < total, paused.to_json()
    assert f"{paused.documents:,} of {total:,} documents of October 2026 posted" in paused.message
    assert "the rest continues at" in paused.message
    # Said before posting began, then where it stopped.
    [budget] = [m for m in world.slack.messages("C0FINANCE") if "needs about" in m["text"]]
    [shown] = [m for m in world.slack.messages("C0FINANCE") if "paused" in m["text"]]
    needed = posting_calls(*expected_documents(world))
    assert budget["text"] == (
        f"October 2026 for Acme EU needs about {needed:,} Xero API calls for {total:,} "
        "documents; Xero allows this organisation 8 more today (8 a day)."
    )
    assert "continues at" in shown["text"]
    assert world.slack.messages("C0ERRORS") == []  # nothing failed: nothing to retry
    # The scheduler resumes it once Xero's day has turned (the sandbox said when), not before.
    with container.sessions() as session:
        resume_at = session.scalar(select(SyncRun.next_attempt_at))
    assert resume_at is not None and now + timedelta(hours=23) < resume_at
    before = SyncScheduler(container, clock=lambda: resume_at - timedelta(minutes=1))
    assert PERIOD not in before.due_periods(shop)
    assert before.next_resume() == resume_at  # when the running scheduler wakes up for it
    assert PERIOD in SyncScheduler(container, clock=lambda: resume_at).due_periods(shop)

    world.xero.day_limit = 1_000_000  # a day later
    day_later = time.monotonic() + 86_400
    resumed = SyncEngine(
        container.sessions,
        container.integrations,
        spapi=container.spapi,
        xero=lambda integration: XeroClient(
            auth=container.xero_auth,
            api_url=container.settings.xero_api_url,
            tenant_id=integration.xero_tenant_id or "",
            token_store=XeroTokenStore(container.integrations, integration.id),
            clock=lambda: day_later,
        ),
        clock=lambda: resume_at,
        notifier=container.notifier,
        xero_daily_calls=8,
    ).sync_period(shop, PERIOD)

    assert resumed.status == RunStatus.SUCCEEDED, resumed.to_json()
    assert resumed.documents == total
    assert_exactly_once(world)
    # What Xero said yesterday (0 left) is not today's allowance: today's is the day's.
    budgets = [m["text"] for m in world.slack.messages("C0FINANCE") if "needs about" in m["text"]]
    assert len(budgets) == 2 and "allows this organisation 8 more today" in budgets[1]


def test_a_run_whose_claim_session_is_cut_stops_before_sending_more(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL restarted, or the claim's session cut, while the run lives: another process
    may take the month, so this one sends nothing more and leaves the run's record alone."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("a file lock or an in-memory claim cannot be lost by a live holder")
    real_create = XeroClient.create_documents
    sent: list[str] = []

    def create(self: XeroClient, target: Endpoint, documents: Any, **kwargs: Any) -> Any:
        sent.append(target)
        answer = real_create(self, target, documents, **kwargs)
        if target == "Contacts":
            with container.engine.connect() as admin:
                pid = claim_session_pid(admin, shop.id, PERIOD)
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                admin.commit()
        return answer

    monkeypatch.setattr(XeroClient, "create_documents", create)
    with pytest.raises(ClaimLost):
        container.sync.sync_period(shop, PERIOD)
    assert set(sent) == {"Contacts"}, sent  # no invoice left after the claim did
    run = container.sync.runs(shop.id, workspace_id=None)[0]
    assert run.status == RunStatus.RUNNING and run.error_kind is None

    monkeypatch.setattr(XeroClient, "create_documents", real_create)
    result = container.sync.sync_period(shop, PERIOD)
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result_totals(result) == expected_totals(world)
    assert_exactly_once(world)


@pytest.mark.parametrize("step", list(STEPS))
def test_a_crash_at_any_step_then_a_rerun_posts_each_document_once(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    endpoint, when = STEPS[step]
    crashed = False
    real_create = XeroClient.create_documents
    real_allocate = XeroClient.allocate_credit_note

    def crash_once(call: Callable[[], Any]) -> Any:
        nonlocal crashed
        if crashed:
            return call()
        crashed = True
        if when == "before":
            raise Crash
        call()
        raise Crash

    def create(self: XeroClient, target: Endpoint, documents: Any, **kwargs: Any) -> Any:
        call = lambda: real_create(self, target, documents, **kwargs)  # noqa: E731
        return crash_once(call) if target == endpoint else call()

    def allocate(self: XeroClient, *args: Any, **kwargs: Any) -> Any:
        call = lambda: real_allocate(self, *args, **kwargs)  # noqa: E731
        return crash_once(call) if endpoint == "Allocations" else call()

    monkeypatch.setattr(XeroClient, "create_documents", create)
    monkeypatch.setattr(XeroClient, "allocate_credit_note", allocate)
    if endpoint in BANKING:
        real_banking = getattr(XeroClient, BANKING[endpoint])

        def banking(self: XeroClient, *args: Any, **kwargs: Any) -> Any:
            return crash_once(lambda: real_banking(self, *args, **kwargs))

        monkeypatch.setattr(XeroClient, BANKING[endpoint], banking)
    with pytest.raises(Crash):
        container.sync.sync_period(shop, PERIOD)

    # The crashed invocation's claim ended with it: the next one proceeds at once.
    assert not container.claims.is_held(shop.id, PERIOD)
    result = container.sync.sync_period(shop, PERIOD)
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result_totals(result) == expected_totals(world)
    assert_exactly_once(world)
    # The payouts too: each payment, fee transaction and transfer once, by its Reference.
    for kind in BANKING:
        references = Counter(
            made["Reference"]
            for made in world.xero.documents(kind)
            if made.get("Status") != "DELETED" and "TRANSFER" not in made.get("Type", "")
        )
        assert references and set(references.values()) == {1}, (kind, references)


def test_rate_limits_server_errors_and_expired_tokens_change_nothing(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    world.xero.faults.add("/api.xro/2.0/Contacts", 503, times=1)
    world.xero.faults.add("/api.xro/2.0/Invoices", 429, headers={"Retry-After": "1"}, times=2)
    world.xero.faults.add("/api.xro/2.0/CreditNotes", 500, times=1)
    world.amazon.faults.add("/reports/2021-06-30/reports", 429, times=1)
    world.amazon.expire_access_tokens()
    expired = False

    def expire_mid_run(phase: str, done: int, total: int) -> None:
        nonlocal expired
        if phase == "posting" and not expired:
            expired = True
            world.xero.expire_access_tokens()

    result = container.sync.sync_period(shop, PERIOD, progress=expire_mid_run)
    assert expired
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result_totals(result) == expected_totals(world)
    assert_exactly_once(world)


def test_a_disabled_currency_fails_alone_and_retry_posts_it_once_fixed(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    org = world.xero.org()
    org.currencies = tuple(c for c in org.currencies if c != "PLN")
    result = container.sync.sync_period(shop, PERIOD)
    assert result.status == RunStatus.PARTIAL
    assert result.exit_code == 1
    with container.sessions() as session:
        failed = list(session.scalars(select(LedgerItem).where(LedgerItem.status == "failed")))
    assert failed and {item.currency for item in failed} == {"PLN"}
    assert all("PLN" in (item.error_message or "") for item in failed)
    assert all(item.retryable for item in failed)
    with container.sessions() as session:
        failed_payout_items = list(
            session.scalars(
                select(AmazonSettlement.currency)
                .join(SettlementItem, SettlementItem.settlement_id == AmazonSettlement.id)
                .where(SettlementItem.status == "failed")
            )
        )
    # The złoty payouts cannot be booked either (no PLN clearing account): they fail alone.
    assert failed_payout_items and set(failed_payout_items) == {"PLN"}
    assert result.failed == len(failed) + len(failed_payout_items)

    org.currencies = (*org.currencies, "PLN")
    # While another process holds the month, a retry is refused and reopens nothing: that
    # run pages past the documents behind it and would leave them pending.
    claim = container.claims.hold(shop.id, PERIOD)
    assert claim is not None
    with claim, pytest.raises(RunInProgress):
        container.sync.retry_run(result.run_id, workspace_id=None)
    still_failed = container.sync.failed_items(result.run_id, workspace_id=None)
    assert {item.id for item in still_failed} == {item.id for item in failed}
    first = container.sync.retry_item(failed[0].id, workspace_id=None)
    assert first.status == "posted" and first.xero_id
    retried = container.sync.retry_run(result.run_id, workspace_id=None)
    assert retried.status == RunStatus.SUCCEEDED, retried.to_json()
    assert_exactly_once(world)
    assert container.sync.sync_period(shop, PERIOD).already_posted > 0


def test_a_document_with_an_unreadable_row_is_not_posted_without_it(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    lines = list(generate_vat_report(period=PERIOD, marketplace_ids=list(EU), seed=7, orders=40))
    header = lines[0].split("\t")
    order_at, date_at = (
        header.index("TRANSACTION_EVENT_ID"),
        header.index("TRANSACTION_COMPLETE_DATE"),
    )
    rows = [line.split("\t") for line in lines]
    sales = Counter(cells[order_at] for cells in rows if "SALE" in cells)
    order = next(order for order, count in sales.items() if count > 1)  # a shipment of 2 rows
    bad_line = next(
        i for i, cells in enumerate(rows) if cells[order_at] == order and "SALE" in cells
    )
    rows[bad_line][date_at] = "31-02-2026"
    report = tmp_path / "vat-october.txt"
    report.write_text("\n".join("\t".join(cells) for cells in rows) + "\n")

    result = container.sync.import_report(shop, report)

    assert result.status == RunStatus.PARTIAL
    with container.sessions() as session:
        failed = session.scalars(select(LedgerItem).where(LedgerItem.status == "failed")).all()
    unreadable = [item for item in failed if item.transaction_type == "UNREADABLE"]
    documents = [item for item in failed if item.document_type is not None]
    assert len(unreadable) == 1 and unreadable[0].amazon_order_id == order
    assert f"vat-october.txt, line {bad_line + 1}, column TRANSACTION_COMPLETE_DATE" in (
        unreadable[0].error_message or ""
    )
    # The order's invoice fails whole: its readable row is not posted alone.
    assert {item.amazon_order_id for item in documents} == {order}
    assert all("could not be read" in (item.error_message or "") for item in documents)
    assert order not in {invoice["Reference"] for invoice in world.xero.documents("Invoices")}
    assert result.invoices_created > 0
    assert result.left_out  # the month's totals say what was left out
    for item in [*unreadable, *documents]:
        with pytest.raises(ServiceError, match="Correct the report"):
            container.sync.retry_item(item.id, workspace_id=None)


@pytest.mark.parametrize(
    "sample",
    [
        "vat-transactions-row/sheet_with_strict_ooxml.xlsx",
        "vat-transactions-row/sheet_with_strict_ooxml.derived.csv",
    ],
)
def test_the_real_vat_sample_needs_the_sellers_rate_then_imports(
    container: Container, world: SandboxWorld, shop: Integration, sample: str
) -> None:
    # Amazon calculated no VAT on this row (a Spanish sale to Portugal in March 2020).
    result = container.sync.import_report(shop, SHARED / "samples" / "amazon" / sample)
    assert result.status == RunStatus.PARTIAL, result.to_json()
    [failed] = container.sync.failed_items(result.run_id, workspace_id=None)
    assert "needs a VAT rate for ES domestic sales" in (failed.error_message or "")
    assert world.xero.documents("Invoices") == []  # never the organisation's 0%
    assert result.left_out == {"EUR": CurrencyTotals(sales_gross=Decimal("19.99"))}

    with container.sessions.begin() as session:
        session.execute(update(Integration).values(vat_rates={"ES:domestic": "21"}))
    retried = container.sync.retry_run(result.run_id, workspace_id=None)

    assert retried.status == RunStatus.SUCCEEDED, retried.to_json()
    [invoice] = world.xero.documents("Invoices")
    assert invoice["Reference"] == "408-9590879-6335512"
    assert invoice["LineAmountTypes"] == "Inclusive"
    assert (invoice["CurrencyCode"], Decimal(str(invoice["Total"]))) == ("EUR", Decimal("19.99"))
    assert Decimal(str(invoice["TotalTax"])) == Decimal("3.47")  # 19.99 x 21/121, per line


def test_a_month_not_ready_waits_and_says_so(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    early = SyncEngine(
        container.sessions,
        container.integrations,
        spapi=container.spapi,
        xero=container.xero,
        clock=lambda: datetime(2026, 11, 2, 6, tzinfo=UTC),
    )
    result = early.sync_period(shop, PERIOD)
    assert result.status == RunStatus.WAITING
    assert "ready from 3 November" in result.message
    assert world.amazon.calls == [] or all(
        "/reports" not in path for _m, path in world.amazon.calls
    )


def test_the_scheduler_backfills_from_the_start_date_and_skips_stopped(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    container.integrations.update_settings(
        shop.id, actor="U0ADMIN", workspace_id=None, start_date=date(2026, 8, 20)
    )
    scheduler = SyncScheduler(container, clock=lambda: datetime(2026, 11, 4, 7, tzinfo=UTC))
    assert scheduler.due_periods(container.integrations.get("Acme EU")) == [
        "2026-08",
        "2026-09",
        "2026-10",
    ]
    before_sync_day = SyncScheduler(container, clock=lambda: datetime(2026, 11, 4, 5, tzinfo=UTC))
    assert before_sync_day.due_periods(container.integrations.get("Acme EU"))[-1] == "2026-09"

    results = scheduler.run_due()
    assert [r.period for r in results] == ["2026-08", "2026-09", "2026-10"]
    assert all(r.status == RunStatus.SUCCEEDED for r in results)
    assert scheduler.due_periods(container.integrations.get("Acme EU")) == []

    container.integrations.stop(shop.id, actor="U0ADMIN", workspace_id=None)
    later = SyncScheduler(container, clock=lambda: datetime(2026, 12, 5, tzinfo=UTC))
    assert later.run_due() == []


def test_a_run_paused_by_another_process_is_resumed_at_its_time(container: Container) -> None:
    # Paused by the CLI, say: the running scheduler did not see it happen.
    pending = container.integrations.create(
        IntegrationSpec("Paused", Region.EU, EU[:1], date(2026, 1, 1)), actor="U0ADMIN"
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    with container.sessions.begin() as session:
        session.add(
            SyncRun(
                integration_id=pending.id,
                period=PERIOD,
                status=RunStatus.WAITING,
                next_attempt_at=tomorrow,
            )
        )
    scheduler = SyncScheduler(container)
    scheduler.start()
    try:
        planned = wait_for(lambda: [at] if (at := scheduler.resume_planned_at) else [])
    finally:
        scheduler.stop()
    assert planned == [tomorrow]


def test_organisations_sync_side_by_side_and_one_organisations_integrations_in_turn(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    october = date(2026, 10, 1)
    container.integrations.update_settings(
        shop.id, actor="U0ADMIN", workspace_id=None, start_date=october
    )
    books, other_books = world.xero.org(), SandboxOrg(name="Other Client Ltd")
    other_books.currencies = books.currencies
    world.xero.tenants.append(other_books)
    world.xero.latency = 0.02  # each call takes a while: runs that overlap do so visibly
    browser = requests.Session()
    for name, marketplace, org in (
        ("Acme FR", "A13V1IB3VIYZZH", books),  # the same organisation as shop's
        ("Other IT", "APJ6JRA9NG5V4", other_books),
    ):
        integration = container.integrations.create(
            IntegrationSpec(name, Region.EU, (marketplace,), october), actor="U0ADMIN"
        )
        submit_consent(browser, container.connect.amazon_consent_url(integration, actor="U0ADMIN"))
        url = container.connect.xero_consent_url(integration, actor="U0ADMIN")
        submit_consent(browser, url, choose={"tenant": org.tenant_id})

    results = SyncScheduler(container, clock=lambda: datetime(2026, 11, 5, tzinfo=UTC)).run_due()

    assert sorted((r.integration, r.period) for r in results) == [
        ("Acme EU", PERIOD), ("Acme FR", PERIOD), ("Other IT", PERIOD)
    ]  # fmt: skip
    assert all(r.invoices_created for r in results), [r.to_json() for r in results]
    with container.sessions() as session:
        spans = {
            name: (run.started_at, run.finished_at)
            for name, run in session.execute(
                select(Integration.name, SyncRun).join(
                    SyncRun, SyncRun.integration_id == Integration.id
                )
            )
        }
    first, second = sorted([spans["Acme EU"], spans["Acme FR"]])
    assert first[1] is not None and first[1] <= second[0]  # one organisation: in turn
    other = spans["Other IT"]
    assert other[1] is not None and other[0] < second[0] and first[0] < other[1]  # side by side


def test_two_schedulers_at_once_post_each_document_once(
    container: Container, world: SandboxWorld, shop: Integration
) -> None:
    container.integrations.update_settings(
        shop.id, actor="U0ADMIN", workspace_id=None, start_date=date(2026, 10, 1)
    )
    world.xero.latency = 0.01  # long enough for the two to meet
    # Two processes' schedulers (the bot's and a second worker's), due October at once.
    schedulers = [
        SyncScheduler(container, clock=lambda: datetime(2026, 11, 5, tzinfo=UTC)) for _ in "ab"
    ]
    with ThreadPoolExecutor(2) as pool:
        ran = [
            result for results in pool.map(SyncScheduler.run_due, schedulers) for result in results
        ]

    posted = sum(r.invoices_created + r.credit_notes_created for r in ran)
    assert posted == sum(expected_documents(world)), [r.to_json() for r in ran]
    assert_exactly_once(world)


def test_north_america_posts_orders_and_settlement_refunds(
    container: Container, world: SandboxWorld, us_shop: Integration
) -> None:
    world.amazon.orders_per_report = ORDERS
    world.amazon.report_processing_polls = 0
    result = container.sync.sync_period(us_shop, PERIOD)
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result.invoices_created > 0 and result.credit_notes_created > 0
    [(currency, totals)] = result.totals.items()
    assert currency == "USD"
    assert xero_totals(world) == {"USD": (totals.sales_gross, totals.refunds_gross)}
    # Amazon collects US sales tax: none of it is VAT the seller owes.
    assert totals.tax == 0
    invoices = world.xero.documents("Invoices")
    assert all(invoice["Reference"] for invoice in invoices)
    assert set(numbers(world, "Invoices").values()) == {1}


def test_a_returning_buyer_with_a_new_address_updates_the_contact(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    lines = generate_vat_report(period=PERIOD, marketplace_ids=list(EU), seed=3, orders=30)
    header = next(lines)
    columns = header.split("\t")
    row = next(
        dict(zip(columns, line.split("\t"), strict=False))
        for line in lines
        if "\tSALE\t" in line and _cell(columns, line, "BUYER_NAME")
        and not _cell(columns, line, "BUYER_VAT_NUMBER")
    )  # fmt: skip
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(header + "\n" + "\t".join(row[c] for c in columns) + "\n")
    moved = row | {
        "TRANSACTION_EVENT_ID": "302-0000000-0000001",
        "ACTIVITY_TRANSACTION_ID": "NewShipment1",
        "VAT_INV_NUMBER": "",
        "ARRIVAL_ADDRESS": "Neue Straße 1",
    }
    second.write_text(header + "\n" + "\t".join(moved[c] for c in columns) + "\n")

    created = container.sync.import_report(shop, first)
    updated = container.sync.import_report(shop, second)
    assert (created.contacts_created, created.contacts_updated) == (1, 0)
    assert (updated.contacts_created, updated.contacts_updated) == (0, 1)
    named = [c for c in world.xero.org().contacts.values() if c["Name"] == row["BUYER_NAME"]]
    assert len(named) == 1
    assert "Neue Straße 1" in str(named[0].get("Addresses"))


def _cell(columns: list[str], line: str, column: str) -> str:
    cells = line.split("\t")
    index = columns.index(column)
    return cells[index] if index < len(cells) else ""


@pytest.fixture
def us_shop(container: Container, world: SandboxWorld) -> Integration:
    world.xero.minute_limit = 100_000
    payout_banks(world)
    us = container.integrations.create(
        IntegrationSpec(
            name="Acme US", region=Region.NA, marketplaces=("ATVPDKIKX0DER",),
            start_date=date(2020, 1, 1),
        ),
        actor="U0ADMIN",
    )  # fmt: skip
    consent_to_both(container.connect, us, actor="U0ADMIN")
    return container.integrations.get("Acme US")


def test_the_real_settlement_sample_posts_its_refunds_then_closes_with_its_invoices(
    container: Container, world: SandboxWorld, us_shop: Integration, tmp_path: Path
) -> None:
    sample = SHARED / "samples" / "amazon" / "settlement-v2" / "settlement-sample.txt"
    refunds = {
        line.split("\t")[7] for line in sample.read_text().splitlines() if "\tRefund\t" in line
    }
    result = container.sync.import_report(us_shop, sample)
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result.invoices_created == 0  # sales come from the all-orders report
    assert result.credit_notes_created == len(refunds) > 0
    assert {cn["Reference"] for cn in world.xero.documents("CreditNotes")} == refunds
    assert set(result.totals) == {"USD"}
    # Its payout: the refund paid out of clearing, the fees booked, the deposit transferred;
    # the sales' payments wait for their invoices.
    assert (result.payments_created, result.bank_transactions_created) == (1, 1)
    assert result.transfers_created == 1
    assert world.xero.balance("092") == Decimal("582.89")

    # Its sales' invoices come with the all-orders report (the real one's columns): the
    # payments that waited for them are made, and the books close to the cent.
    header = (
        next((SHARED / "samples" / "amazon" / "airbyte-sp-api-records").glob("*.tsv"))
        .read_text()
        .splitlines()[0]
        .split("\t")
    )

    def order(order_id: str, day: str, sku: str, **amounts: str) -> str:
        values = {
            "amazon-order-id": order_id, "purchase-date": f"2026-06-{day}T08:00:00+00:00",
            "last-updated-date": f"2026-06-{day}T09:00:00+00:00", "order-status": "Shipped",
            "fulfillment-channel": "Amazon", "sales-channel": "Amazon.com", "sku": sku,
            "item-status": "Shipped", "quantity": "1", "currency": "USD", "ship-country": "US",
            "ship-city": "SEATTLE", "ship-state": "WA", "ship-postal-code": "98101",
        } | {name.replace("_", "-"): amount for name, amount in amounts.items()}  # fmt: skip
        return "\t".join(values.get(column, "") for column in header)

    orders = tmp_path / "all-orders.tsv"
    orders.write_text("\n".join([
        "\t".join(header),
        order("114-8829371-4410258", "17", "NX-HD-1200", item_price="129.99", item_tax="10.40"),
        order("113-2047718-9930613", "19", "NX-A", item_price="89.00", shipping_price="7.99"),
        order("113-2047718-9930613", "19", "NX-B", item_price="45.50"),
        order("114-9930211-5567819", "21", "NX-C", item_price="210.00"),
    ]) + "\n")  # fmt: skip
    invoiced = container.sync.import_report(us_shop, orders)

    assert invoiced.invoices_created == 3 and invoiced.payments_created == 3, invoiced.to_json()
    invoices = world.xero.documents("Invoices")
    assert [(i["Status"], Decimal(str(i["AmountDue"]))) for i in invoices] == [("PAID", 0)] * 3
    assert world.xero.balance("AMZUSD") == 0  # the clearing account nets to zero


def test_the_real_all_orders_sample_skips_its_cancelled_orders(
    container: Container, world: SandboxWorld, us_shop: Integration
) -> None:
    sample = next((SHARED / "samples" / "amazon" / "airbyte-sp-api-records").glob("*.tsv"))
    rows = len(sample.read_text().splitlines()) - 1
    result = container.sync.import_report(us_shop, sample)
    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result.skipped == {"CANCELLED": rows}
    assert world.xero.documents("Invoices") == []
