"""The monthly sync's entry points: a month, an imported report, a retry; and their outcome.

One run per integration and period. Its claim is held by the process that works on it and ends
with that process (services/run_claims.py); the steps are ingest (services/ingest.py), posting
(services/posting.py, services/contact_posting.py) and allocations (services/allocations.py),
every ledger statement is services/ledger.py's. The ledger makes it exactly-once: a document is
marked in flight before it is sent and looked up in Xero before it is ever sent again.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from services.amazon import SpApiClient
from services.budget import shortfall
from services.errors import UNCERTAIN, ErrorKind, ServiceError
from services.ingest import ingest, ingest_from_amazon, mark_ingested
from services.integrations import IntegrationService
from services.ledger import Ledger
from services.marketplaces import Region
from services.models import (
    DocumentKind,
    Integration,
    IntegrationStatus,
    LedgerItem,
    LedgerStatus,
    RunStatus,
    SyncRun,
)
from services.money import from_cents
from services.notifications import Notifier, NullNotifier
from services.payouts import deposited_in, unlisted_note
from services.periods import describe_period, is_month, period_bounds
from services.posting import post
from services.reconcile import reconcile
from services.report_files import read_report_file
from services.reports import ReportKind, parse_report, report_kind
from services.results import CurrencyTotals, Payouts, RunResult, SettlementReport
from services.run_claims import Claim, ClaimLost, RunClaims
from services.run_context import Counters, Progress, RunContext, no_progress
from services.run_summary import RunSummary
from services.settlement_ledger import SettlementLedger
from services.settlement_plan import plan_settlement
from services.settlement_posting import (
    PayoutRetry,
    SettlementAccounts,
    post_settlement,
    settlement_report,
)
from services.settlements import Settlement, read_settlement
from services.taxes import TaxMap
from services.transactions import TaxScheme, TransactionType
from services.xero import XeroClient

VAT_REPORT_READY_DAY = 3  # Amazon's VAT transactions report for a month is ready from the 3rd
NOT_READY_RETRY = timedelta(hours=3)
FAILED_RUN_RETRY = timedelta(hours=6)


class RunInProgress(ServiceError):
    """Another sync or retry holds the period's run; it reports its own outcome. `held_by` is
    the user who started it, when a user did (not the schedule or the CLI)."""

    def __init__(self, run_id: int, message: str, held_by: str | None = None) -> None:
        super().__init__(ErrorKind.VALIDATION, message, retryable=False)
        self.run_id = run_id
        self.held_by = held_by


@dataclass
class _Held:
    """A claimed run: its row as claimed and its summary; `claim` is None when the run had
    finished already and nothing is to be done."""

    run: SyncRun
    summary: RunSummary
    claim: Claim | None


class SyncEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        integrations: IntegrationService,
        *,
        claims: RunClaims | None = None,
        spapi: Callable[[Integration], SpApiClient],
        xero: Callable[[Integration], XeroClient],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notifier: Notifier | None = None,
        xero_daily_calls: int = 5_000,
    ) -> None:
        """`xero_daily_calls`: Xero's daily allowance per organisation for the bot's Xero app
        (5,000; 1,000 on Xero's free developer tier)."""
        self._sessions = sessions
        self._ledger = Ledger(sessions)
        self._settlements = SettlementLedger(sessions)
        bind = sessions.kw["bind"]
        self._claims = claims or RunClaims(bind)
        self._integrations = integrations
        self._spapi = spapi
        self._xero = xero
        self._clock = clock
        self._notifier: Notifier = notifier or NullNotifier()
        self._xero_daily_calls = xero_daily_calls

    # -- entry points ----------------------------------------------------------------------

    def sync_period(
        self,
        integration: Integration,
        period: str,
        *,
        progress: Progress = no_progress,
        by: str | None = None,
    ) -> RunResult:
        """Run (or resume) one month of one integration; `by` is the user who started it, if
        one did (told to whoever finds the month held meanwhile)."""
        integration = self._integrations.get_by_id(integration.id, workspace_id=None)
        start, end = period_bounds(period)
        self._check_can_sync(integration, start, end)
        with self._hold(integration, period, by=by) as held:
            if held.claim is None:
                return self._finished_already(integration, held)
            ctx = self._context(integration, held, progress)
            try:
                vat_report_due = integration.region == Region.EU and not held.summary.state.ingested
                if vat_report_due and not self._vat_report_ready(end):
                    return self._wait(ctx, end)
                amazon = self._spapi(integration)
                try:
                    if not held.summary.state.ingested:
                        ingest_from_amazon(ctx, amazon, start, end)
                    self._plan_calls(ctx)
                    post(ctx)
                    accounts: dict[str, SettlementAccounts] = {}  # looked up once a currency
                    unlisted = unlisted_note(start, self._clock())
                    if unlisted:
                        ctx.counters.notes.append(unlisted)
                    self._pay_waiting(ctx, accounts)
                    # After the month's invoices: the payouts pay them.
                    for settlement in deposited_in(
                        amazon, integration.marketplaces, start, end, self._clock()
                    ):
                        self._settle(ctx, settlement, accounts)
                finally:
                    ctx.amazon_calls = amazon.api_calls
            except ServiceError as error:
                return self._fail(ctx, error)
            result = self._finish(ctx)
        # Where finance looks at the month as a whole: report, payouts and Xero side by side.
        self._notifier.month_checked(integration, reconcile(self._sessions, integration, period))
        return result

    def import_report(
        self, integration: Integration, path: Path, *, progress: Progress = no_progress
    ) -> RunResult:
        """Post a report downloaded from Seller Central through the same pipeline."""
        integration = self._integrations.get_by_id(integration.id, workspace_id=None)
        if integration.status != IntegrationStatus.ACTIVE:
            raise self._not_active(integration)
        kind = report_kind(read_report_file(path), file_name=path.name)  # a wrong file: no run
        with path.open("rb") as handle:  # streamed: reports can be hundreds of MB
            digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
        with self._hold(integration, f"import:{digest}") as held:
            if held.claim is None:
                return self._finished_already(integration, held)
            ctx = self._context(integration, held, progress)
            try:
                if not held.summary.state.ingested:
                    # In the EU the VAT report holds every refund, with its VAT: a settlement's
                    # refund rows would post them a second time. Elsewhere they are the refunds.
                    settlement_in_eu = (
                        kind == ReportKind.SETTLEMENT_V2 and integration.region == Region.EU
                    )
                    items = (
                        ()
                        if settlement_in_eu
                        else parse_report(read_report_file(path), file_name=path.name)
                    )
                    mark_ingested(ctx, ingest(ctx, items))
                post(ctx)
                self._pay_waiting(ctx)
                if kind == ReportKind.SETTLEMENT_V2:
                    self._settle(
                        ctx, read_settlement(read_report_file(path), file_name=path.name), {}
                    )
            except ServiceError as error:
                return self._fail(ctx, error)
            return self._finish(ctx)

    def _plan_calls(self, ctx: RunContext) -> None:
        """Say at the start when the month takes more Xero calls than are left today: it is
        posted as far as they go, and the run pauses for the rest (see _pause)."""
        unsent = ctx.ledger.unsent(ctx.run_id)
        short = shortfall(
            ctx.run.period,
            unsent.get(DocumentKind.INVOICE, 0),
            unsent.get(DocumentKind.CREDIT_NOTE, 0),
            left=ctx.xero.day_limit_remaining,
            daily=self._xero_daily_calls,
        )
        if short is not None:
            self._notifier.budget_short(ctx.integration, short)

    def _pay_waiting(
        self, ctx: RunContext, accounts: dict[str, SettlementAccounts] | None = None
    ) -> None:
        """Settlements with items still to send: payments that waited for the invoices just
        posted, items a stopped posting left, requests whose answer was lost. `accounts`: the
        Xero accounts found so far, per currency, when the caller posts more payouts after."""
        accounts = {} if accounts is None else accounts
        for row_id in self._settlements.unfinished(ctx.integration_id, uncertain=UNCERTAIN):
            self._post_settlement(ctx, row_id, accounts, announce=False)

    def _settle(
        self,
        ctx: RunContext,
        settlement: Settlement,
        accounts: dict[str, SettlementAccounts],
    ) -> None:
        """Record the settlement once and post what it makes: payments, fees, the payout.
        `accounts`: the Xero accounts found so far, per currency, shared by a month's payouts."""
        recorded = self._settlements.record(
            ctx.integration_id, settlement, plan_settlement(settlement)
        )
        self._post_settlement(ctx, recorded.id, accounts, announce=recorded.new)
        ctx.counters.settlements.append(
            {
                "settlement_id": settlement.settlement_id,
                "currency": settlement.currency,
                "payout": str(settlement.total),
                "deposit_date": settlement.deposit_date.date().isoformat(),
            }
        )

    def _post_settlement(
        self,
        ctx: RunContext,
        row_id: int,
        accounts: dict[str, SettlementAccounts],
        *,
        announce: bool,
    ) -> None:
        """Under the settlement's own claim: two runs (a month's sync and an import, say) may
        both find it unfinished, and only one may send its items. Slack hears of it when it
        is new (`announce`) or when something was sent or failed, not at every run."""
        claim = self._claims.hold(ctx.integration_id, f"settlement:{row_id}")
        if claim is None:
            return  # another process posts it now
        with claim:
            posted = post_settlement(ctx, self._settlements, row_id, accounts)
        counters = ctx.counters
        counters.payments += posted.payments
        counters.bank_transactions += posted.bank_transactions
        counters.transfers += posted.transfers
        counters.already_posted += posted.already_posted
        counters.settlement_items_failed += posted.failed
        sent = posted.payments + posted.bank_transactions + posted.transfers + posted.failed
        if announce or sent:
            self._notifier.settlement_posted(
                ctx.integration,
                settlement_report(self._settlements, row_id, ctx.integration.start_date),
            )

    def retry_run(
        self,
        run_id: int,
        *,
        only: list[int] | None = None,
        announce: bool = True,
        progress: Progress = no_progress,
        workspace_id: str | None,
        actor: str = "system",
    ) -> RunResult:
        """Post the failed documents of a run again (all of them, or `only` those); a whole
        run's retry sends the integration's failed settlement items again too (a payout
        whose bank account was missing, say)."""
        run = self._run(run_id, workspace_id, actor)
        integration = self._integrations.get_by_id(run.integration_id, workspace_id=None)
        if run.status == RunStatus.FAILED and not RunSummary.from_json(run.summary).state.ingested:
            self._ledger.reopen(integration.id, self._ledger.retryable_ids(run_id, only))
            return self.sync_period(integration, run.period, progress=progress)
        by = None if actor == "system" else actor
        with self._hold(integration, run.period, resume_finished=True, by=by) as held:
            # Under the claim: a run posting meanwhile pages past what is reopened behind it.
            self._ledger.reopen(integration.id, self._ledger.retryable_ids(run_id, only))
            if only is None:
                self._settlements.reopen_failed(integration.id)
            ctx = self._context(integration, held, progress)
            try:
                post(ctx)
                self._pay_waiting(ctx)
            except ServiceError as error:
                return self._fail(ctx, error, announce)
            return self._finish(ctx, announce)

    def retry_item(
        self, item_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> LedgerItem:
        """Post one failed document again; returns it as it stands afterwards."""
        item = self.item(item_id, workspace_id=workspace_id, actor=actor)
        if item.status == LedgerStatus.POSTED:
            return item
        if item.error_kind == ErrorKind.BAD_DATA:
            raise ServiceError(
                ErrorKind.BAD_DATA,
                f"{item.error_message} Correct the report and import it again.",
                retryable=False,
            )
        # The clicked message shows the outcome; no new run summary for one item.
        self.retry_run(item.run_id, only=[item_id], announce=False, actor=actor, workspace_id=None)
        refreshed = self._ledger.item(item_id)
        assert refreshed is not None
        return refreshed

    def retry_settlement(
        self, row_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> SettlementReport:
        """Send a payout's failed items again (its transfer once the bank account is in
        Xero, say); returns the payout as it stands afterwards."""
        integration_id = self._settlement_owner(row_id, workspace_id, actor)
        integration = self._integrations.get_by_id(integration_id, workspace_id=None)
        claim = self._claims.hold(integration.id, f"settlement:{row_id}")
        if claim is None:
            raise ServiceError(
                ErrorKind.VALIDATION,
                "This payout is being posted right now; try again in a minute.",
                retryable=True,
            )
        with claim:
            # Under the claim: a posting meanwhile would send what is reopened a second time.
            self._settlements.reopen_failed(integration.id, row_id)
            retry = PayoutRetry(integration, self._xero(integration), self._ledger)
            post_settlement(retry, self._settlements, row_id, {})
        return settlement_report(self._settlements, row_id, integration.start_date)

    # -- what Slack and the CLI look at ----------------------------------------------------

    def payout(
        self, row_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> SettlementReport:
        """One payout as it stands in Xero (a Slack message shows it again after a Retry)."""
        integration_id = self._settlement_owner(row_id, workspace_id, actor)
        integration = self._integrations.get_by_id(integration_id, workspace_id=None)
        return settlement_report(self._settlements, row_id, integration.start_date)

    def payouts(
        self, integration_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> Payouts:
        """The last settlement as it stands in Xero, and the clearing balances."""
        integration = self._integrations.get_by_id(
            integration_id, workspace_id=workspace_id, actor=actor
        )
        latest = self._settlements.latest(integration_id)
        return Payouts(
            settlement_report(self._settlements, latest, integration.start_date)
            if latest is not None
            else None,
            self._settlements.clearing_balances(integration_id),
        )

    def runs(
        self,
        integration_id: int,
        *,
        limit: int = 10,
        workspace_id: str | None,
        actor: str = "system",
    ) -> list[SyncRun]:
        """The latest runs first. With `workspace_id`, only of that workspace's integrations
        (the ids came in a request from it): another's are not found."""
        self._integrations.get_by_id(integration_id, workspace_id=workspace_id, actor=actor)
        return self._ledger.runs(integration_id, limit)

    def is_held(self, run_id: int, *, workspace_id: str | None, actor: str = "system") -> bool:
        """Whether a sync or retry holds the run now (a process that died holds nothing)."""
        run = self._run(run_id, workspace_id, actor)
        return self._claims.is_held(run.integration_id, run.period)

    def result_of(
        self, run_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> RunResult:
        """A run's result as it stands, from the ledger (what Slack shows on a Retry click)."""
        run = self._run(run_id, workspace_id, actor)
        integration = self._integrations.get_by_id(run.integration_id, workspace_id=None)
        summary = RunSummary.from_json(run.summary)
        result = self._result(integration, run, summary, Counters(), RunStatus(run.status))
        result.error_kind, result.error_message = run.error_kind, run.error_message
        return result

    def item(self, item_id: int, *, workspace_id: str | None, actor: str = "system") -> LedgerItem:
        """A ledger item; with `workspace_id` only one of that workspace's integrations."""
        item = self._ledger.item(item_id)
        if item is None or not self._belongs(
            item.integration_id, workspace_id, actor, f"ledger item {item_id}"
        ):
            raise ServiceError(
                ErrorKind.NOT_FOUND, f"There is no ledger item {item_id}.", retryable=False
            )
        return item

    def failed_items(
        self, run_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> list[LedgerItem]:
        self._run(run_id, workspace_id, actor)
        return self._ledger.failed_items(run_id)

    def tax_types(self, integration: Integration) -> list[tuple[str, str]]:
        """The Xero organisation's active tax rates that apply to sales, as (TaxType, Name)
        sorted by name, to choose overrides from: one GET /TaxRates."""
        return TaxMap.from_xero(self._xero(integration).tax_rates()).sales_tax_types()

    def check_can_sync(
        self,
        integration: Integration,
        period: str,
        *,
        workspace_id: str | None,
        actor: str = "system",
    ) -> None:
        """Raise what would stop a sync of this period before any work starts, including
        another sync or retry holding it now (RunInProgress): nothing would start."""
        current = self._integrations.get_by_id(
            integration.id, workspace_id=workspace_id, actor=actor
        )
        self._check_can_sync(current, *period_bounds(period))
        if not self._claims.is_held(current.id, period):
            return
        run = self._ledger.run_of(current.id, period)
        raise RunInProgress(
            run.id if run else 0,
            f"The {describe_period(period)} sync of {current.name} is already running "
            "(a sync or a retry started earlier); its progress and outcome are posted in "
            "its channels. Nothing new was started.",
            held_by=RunSummary.from_json(run.summary).state.held_by if run else None,
        )

    # -- the run's claim -------------------------------------------------------------------

    @contextmanager
    def _hold(
        self,
        integration: Integration,
        period: str,
        *,
        resume_finished: bool = False,
        by: str | None = None,
    ) -> Iterator[_Held]:
        """Claim the period's run for this process until the block ends (or the process
        does); refuse while a live process holds it. A finished run is not claimed unless
        `resume_finished` (a retry)."""
        run = self._ledger.open_run(integration.id, period, self._clock())
        if run.status == RunStatus.SUCCEEDED and not resume_finished:
            yield _Held(run, RunSummary.from_json(run.summary), None)
            return
        claim = self._claims.hold(integration.id, period)
        if claim is None:
            raise RunInProgress(
                run.id,
                f"The {describe_period(period)} sync of {integration.name} is already running.",
                held_by=RunSummary.from_json(run.summary).state.held_by,
            )
        try:
            # Read again under the claim: the previous holder may have finished it.
            current = self._ledger.run(run.id)
            assert current is not None
            if current.status == RunStatus.SUCCEEDED and not resume_finished:
                yield _Held(current, RunSummary.from_json(current.summary), None)
                return
            summary = self._ledger.start_run(current, held_by=by)
            yield _Held(current, summary, claim)
        finally:
            claim.release()

    def _context(self, integration: Integration, held: _Held, progress: Progress) -> RunContext:
        def report(phase: str, done: int, total: int) -> None:
            progress(phase, done, total)
            self._notifier.progress(integration, held.run.period, phase, done, total)

        return RunContext(
            integration=integration,
            run=held.run,
            summary=held.summary,
            xero=self._xero(integration),
            ledger=self._ledger,
            clock=self._clock,
            progress=report,
            claim=held.claim,
        )

    # -- checks ----------------------------------------------------------------------------

    def _run(self, run_id: int, workspace_id: str | None, actor: str) -> SyncRun:
        """A run, looked up for a request from `workspace_id` (None: the CLI, any workspace);
        another workspace's run is not found, as a missing one is."""
        run = self._ledger.run(run_id)
        if run is None or not self._belongs(
            run.integration_id, workspace_id, actor, f"run {run_id}"
        ):
            raise ServiceError(ErrorKind.NOT_FOUND, f"There is no run {run_id}.", retryable=False)
        return run

    def _settlement_owner(self, row_id: int, workspace_id: str | None, actor: str) -> int:
        """The integration of a settlement the request may see; another workspace's is not
        found, as a missing one is."""
        settlement = self._settlements.settlement(row_id)
        if settlement is None or not self._belongs(
            settlement.integration_id, workspace_id, actor, f"settlement {row_id}"
        ):
            raise ServiceError(ErrorKind.NOT_FOUND, "There is no such payout.", retryable=False)
        return settlement.integration_id

    def _belongs(
        self, integration_id: int, workspace_id: str | None, actor: str, looked_up: str
    ) -> bool:
        if workspace_id is None:
            return True
        integration = self._integrations.get_by_id(integration_id, workspace_id=None)
        return self._integrations.belongs(
            integration, workspace_id, actor=actor, looked_up=looked_up
        )

    def _check_can_sync(self, integration: Integration, start: datetime, end: datetime) -> None:
        if integration.status != IntegrationStatus.ACTIVE:
            raise self._not_active(integration)
        if end > self._clock():
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"{start:%B %Y} is not over yet; it can be synced from {end:%-d %B %Y}.",
                retryable=False,
            )
        if end.date() <= integration.start_date.replace(day=1):
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"{integration.name} pulls data from {integration.start_date:%-d %B %Y}; "
                f"{start:%B %Y} is before that.",
                retryable=False,
            )

    @staticmethod
    def _not_active(integration: Integration) -> ServiceError:
        if integration.status == IntegrationStatus.AUTHORIZATION_EXPIRED:
            return ServiceError(
                ErrorKind.AUTH,
                f"The Amazon authorization of {integration.name} has lapsed: refresh it first.",
                retryable=False,
            )
        return ServiceError(
            ErrorKind.VALIDATION,
            f"{integration.name} is {integration.status.replace('_', ' ')}, so no data is "
            "pulled. Activate it first.",
            retryable=False,
        )

    def _vat_report_ready(self, end: datetime) -> bool:
        return self._clock() >= end + timedelta(days=VAT_REPORT_READY_DAY - 1)

    # -- how a run ends --------------------------------------------------------------------

    def _wait(self, ctx: RunContext, end: datetime) -> RunResult:
        ready = end + timedelta(days=VAT_REPORT_READY_DAY - 1)
        next_attempt = max(ready, self._clock() + NOT_READY_RETRY)
        message = (
            f"Amazon's VAT transactions report for {describe_period(ctx.run.period)} is ready "
            f"from {ready:%-d %B}; the sync will try again at {next_attempt:%-d %B %H:%M} UTC."
        )
        self._ledger.update_run(
            ctx.run_id, status=RunStatus.WAITING, next_attempt_at=next_attempt,
            error_message=message,
        )  # fmt: skip
        return RunResult(
            ctx.run_id, ctx.integration.name, ctx.run.period, RunStatus.WAITING, message
        )

    def _finished_already(self, integration: Integration, held: _Held) -> RunResult:
        result = self._result(integration, held.run, held.summary, Counters(), RunStatus.SUCCEEDED)
        result.already_posted = result.documents
        result.message = (
            f"The {describe_period(held.run.period)} sync of {integration.name} already "
            f"finished: all {result.documents} documents are in Xero; nothing was posted."
        )
        return result

    def _fail(self, ctx: RunContext, error: ServiceError, announce: bool = True) -> RunResult:
        """The run could not proceed; what was posted stays posted and the run resumes later."""
        if isinstance(error, ClaimLost):
            raise error  # the run's record is its new holder's now
        if error.retry_after is not None:
            return self._pause(ctx, error.retry_after, announce=announce)
        retry_at = self._clock() + FAILED_RUN_RETRY if error.retryable else None
        self._note_left_out(ctx)
        result = self._ended(ctx, RunStatus.FAILED)
        self._ledger.save_summary(
            ctx.run_id,
            ctx.summary,
            status=RunStatus.FAILED,
            next_attempt_at=retry_at,
            error_kind=error.kind.value,
            error_message=error.message,
            finished_at=self._clock(),
        )
        result.error_kind, result.error_message = error.kind.value, error.message
        result.message = (
            f"The {describe_period(ctx.run.period)} sync could not proceed: {error.message}"
        )
        if announce:
            self._notifier.run_blocked(ctx.integration, result)
        return result

    def _pause(self, ctx: RunContext, wait: timedelta, *, announce: bool) -> RunResult:
        """Xero takes no more calls from this organisation for `wait` (its daily allowance is
        spent): what was sent stays sent, nothing is failed for it, and the run waits; the
        scheduler resumes a month's run at the time said, an import is run again by whoever
        imported it."""
        resume_at = _on_the_next_five_minutes(self._clock() + wait)
        self._note_left_out(ctx)
        result = self._ended(ctx, RunStatus.WAITING)
        total = self._ledger.documents_in(ctx.run_id)
        result.failed = len(self._ledger.failed_items(ctx.run_id))
        result.failed += ctx.counters.settlement_items_failed
        month = is_month(ctx.run.period)
        what = describe_period(ctx.run.period) if month else "the imported report"
        if result.documents == total:
            done, rest = f"all {total:,} documents of {what} are in Xero", "its payouts continue"
        else:
            done = f"{result.documents:,} of {total:,} documents of {what} posted"
            rest = "the rest continues"
        at = f"{resume_at:%H:%M} UTC on {resume_at:%-d %B}"
        then = f"{rest} at {at}" if month else f"import the file again after {at} for the rest"
        result.message = (
            f"Xero's daily allowance of API calls for this organisation is spent: {done}; {then}."
        )
        ctx.summary.result = result.to_json()
        self._ledger.save_summary(
            ctx.run_id,
            ctx.summary,
            status=RunStatus.WAITING,
            next_attempt_at=resume_at,
            error_kind=ErrorKind.RATE_LIMIT.value,
            error_message=result.message,
        )
        if announce:
            self._notifier.run_paused(ctx.integration, result)
        return result

    def _finish(self, ctx: RunContext, announce: bool = True) -> RunResult:
        self._note_left_out(ctx)
        result = self._ended(ctx, RunStatus.SUCCEEDED)
        status = RunStatus.PARTIAL if result.failed else RunStatus.SUCCEEDED
        result.status = status
        posted = result.invoices_created + result.credit_notes_created
        result.message = (
            f"{describe_period(ctx.run.period)}: {posted} documents posted, "
            f"{result.already_posted} already in Xero, {result.failed} failed."
        )
        summary = ctx.summary
        summary.result = result.to_json()
        self._ledger.save_summary(
            ctx.run_id, summary, status=status, next_attempt_at=None, finished_at=self._clock()
        )
        if announce:
            shown = self._notifier.run_finished(
                ctx.integration,
                result,
                self._ledger.failed_items(ctx.run_id),
                error_report=summary.shown,
            )
            if shown is not None and shown != summary.shown:
                # Kept with the run: a retry from another process (the CLI) updates it.
                summary.shown = shown
                self._ledger.save_summary(ctx.run_id, summary)
        return result

    def _ended(self, ctx: RunContext, status: RunStatus) -> RunResult:
        result = self._result(ctx.integration, ctx.run, ctx.summary, ctx.counters, status)
        result.xero_api_calls, result.amazon_api_calls = ctx.xero.api_calls, ctx.amazon_calls
        result.duration_seconds = time.monotonic() - ctx.started
        return result

    def _note_left_out(self, ctx: RunContext) -> None:
        """Amazon's figures of the documents that are not in Xero, per currency, kept with the
        run when it ends (not worked out again for every look at the result)."""
        left_out: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        for page in self._ledger.unposted_documents(ctx.run_id):
            for rows in self._ledger.rows_of(ctx.integration_id, page).values():
                for row in rows:
                    entry = left_out[row.currency]
                    if row.type == TransactionType.SALE:
                        entry.sales_gross += row.gross
                    else:
                        entry.refunds_gross -= row.gross  # positive, as in the totals
                    if row.scheme != TaxScheme.FACILITATOR:
                        entry.tax += row.tax
        ctx.summary.state.left_out = dict(left_out)

    def _result(
        self,
        integration: Integration,
        run: SyncRun,
        summary: RunSummary,
        counters: Counters,
        status: RunStatus,
    ) -> RunResult:
        figures = self._ledger.figures(run.id)
        summary.state.add_rates(counters.country_rates)
        rates = summary.state.country_rates
        countries: dict[str, dict[str, Any]] = {}
        for country, kind, currency, gross, tax, count in figures.by_country:
            code = country or "??"
            entry = countries.setdefault(
                code,
                {"documents": 0, "sales_gross": {}, "refunds_gross": {}, "tax": {},
                 "rates": rates.get(code, [])},
            )  # fmt: skip
            entry["documents"] += count
            side = "sales_gross" if kind == DocumentKind.INVOICE else "refunds_gross"
            signed_tax = from_cents(tax) if kind == DocumentKind.INVOICE else -from_cents(tax)
            entry[side][currency] = str(from_cents(gross))
            entry["tax"][currency] = str(Decimal(entry["tax"].get(currency, "0")) + signed_tax)
        return RunResult(
            run_id=run.id,
            integration=integration.name,
            period=run.period,
            status=status,
            invoices_created=counters.invoices,
            credit_notes_created=counters.credit_notes,
            contacts_created=counters.contacts_created,
            contacts_updated=counters.contacts_updated,
            allocations_made=counters.allocations,
            payments_created=counters.payments,
            bank_transactions_created=counters.bank_transactions,
            transfers_created=counters.transfers,
            settlements=list(counters.settlements),
            notes=list(counters.notes),
            already_posted=counters.already_posted,
            documents=figures.documents,
            failed=figures.failed + counters.settlement_items_failed,
            skipped=figures.skipped,
            totals=figures.totals,
            left_out=dict(summary.state.left_out),
            countries=dict(sorted(countries.items(), key=lambda item: -item[1]["documents"])),
        )


def _on_the_next_five_minutes(moment: datetime) -> datetime:
    """A time to say and to resume at: `moment` rounded up to five minutes (00:05, not
    00:01:17), a little after Xero frees the allowance."""
    rounded = moment.replace(second=0, microsecond=0)
    return rounded + timedelta(minutes=5 - rounded.minute % 5)
