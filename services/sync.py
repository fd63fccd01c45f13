"""The monthly sync: Amazon report -> ledger -> Xero documents, each posted exactly once.

The ledger makes it exactly-once. Every Amazon row is recorded under a content key, every
document under its document key, every buyer under a contact key (unique per integration).
A document is marked in flight (committed) before it is sent, and posted or failed (committed)
after Xero answers. Anything found in flight later, after a crash at any instant, is first
looked up in Xero by its number and only sent again if Xero does not have it. Batches carry a
deterministic Idempotency-Key so that a retried request is answered from Xero's cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from services.amazon import SpApiClient
from services.documents import (
    ContactSpec,
    Document,
    TaxKey,
    build_document,
    contact_for,
    contact_name,
    contact_payload,
    document_key,
    document_number,
    document_payload,
    tax_keys,
    transaction_tax_keys,
)
from services.errors import ErrorKind, ServiceError
from services.integrations import IntegrationService
from services.ledger import (
    RowKeys,
    cents,
    chunks,
    from_cents,
    insert_ignore,
    transaction_from_json,
    transaction_to_json,
)
from services.marketplaces import Region
from services.models import (
    AllocationStatus,
    AmazonTransaction,
    DocumentKind,
    Integration,
    IntegrationStatus,
    LedgerItem,
    LedgerStatus,
    RunStatus,
    SyncRun,
    XeroContact,
)
from services.notifications import Notifier, NullNotifier, PostedMessage
from services.periods import describe_period, period_bounds
from services.posting_rules import document_label, posting_settings, posting_verdict
from services.report_files import read_report_file
from services.reports import ReportKind, parse_report, report_kind
from services.results import CurrencyTotals, RunResult
from services.taxes import TaxMap
from services.transactions import RowError, TaxScheme, Transaction, TransactionType
from services.xero import Endpoint, XeroClient

BATCH = 50  # Xero takes at most 50 documents a request
INGEST_CHUNK = 1000
LEASE = timedelta(minutes=10)
VAT_REPORT_READY_DAY = 3  # Amazon's VAT transactions report for a month is ready from the 3rd
NOT_READY_RETRY = timedelta(hours=3)
FAILED_RUN_RETRY = timedelta(hours=6)
CONTACT_NAME_ATTEMPTS = 5
_NAME_TAKEN = "is already assigned to another contact"
# Outcomes Xero may have acted on although we never saw its answer.
_UNCERTAIN = {ErrorKind.UPSTREAM_UNAVAILABLE.value, ErrorKind.RATE_LIMIT.value}

Progress = Callable[[str, int, int], None]  # phase, done, total


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


class RunInProgress(ServiceError):
    """Another sync or retry holds the period's run; it reports its own outcome. `held_by` is
    the user who started it, when a user did (not the schedule or the CLI)."""

    def __init__(self, run_id: int, message: str, held_by: str | None = None) -> None:
        super().__init__(ErrorKind.VALIDATION, message, retryable=False)
        self.run_id = run_id
        self.held_by = held_by


@dataclass
class _Counters:
    """What this invocation did; the database holds what the run as a whole did."""

    invoices: int = 0
    credit_notes: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    allocations: int = 0
    already_posted: int = 0
    country_rates: dict[str, set[str]] = field(default_factory=dict)


class SyncEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        integrations: IntegrationService,
        *,
        spapi: Callable[[Integration], SpApiClient],
        xero: Callable[[Integration], XeroClient],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notifier: Notifier | None = None,
    ) -> None:
        self._sessions = sessions
        self._integrations = integrations
        self._spapi = spapi
        self._xero = xero
        self._clock = clock
        self._notifier: Notifier = notifier or NullNotifier()

    # -- entry points ----------------------------------------------------------------------

    def sync_period(
        self,
        integration: Integration,
        period: str,
        *,
        progress: Progress = _no_progress,
        by: str | None = None,
    ) -> RunResult:
        """Run (or resume) one month of one integration; `by` is the user who started it, if
        one did (told to whoever finds the month held meanwhile)."""
        integration = self._integrations.get_by_id(integration.id)
        start, end = period_bounds(period)
        self._check_can_sync(integration, start, end)
        run = self._claim(integration, period, by=by)
        if run.status == RunStatus.SUCCEEDED:
            return self._finished_already(integration, run)
        progress = self._reporting(integration, period, progress)
        started = time.monotonic()
        counters = _Counters()
        amazon_calls = 0
        xero = self._xero(integration)
        try:
            if not run.summary.get("ingested"):
                if integration.region == Region.EU and not self._vat_report_ready(end):
                    return self._wait(integration, run, end)
                amazon = self._spapi(integration)
                try:
                    self._ingest_from_amazon(integration, run, amazon, start, end, progress)
                finally:
                    amazon_calls = amazon.api_calls
            self._post(integration, run, xero, counters, progress)
        except ServiceError as error:
            return self._fail(integration, run, error, counters, xero, amazon_calls, started)
        return self._finish(integration, run, counters, xero, amazon_calls, started)

    def import_report(
        self, integration: Integration, path: Path, *, progress: Progress = _no_progress
    ) -> RunResult:
        """Post a report downloaded from Seller Central through the same pipeline."""
        integration = self._integrations.get_by_id(integration.id)
        if integration.status != IntegrationStatus.ACTIVE:
            raise self._not_active(integration)
        report_kind(read_report_file(path), file_name=path.name)  # a wrong file: no run at all
        with path.open("rb") as handle:  # streamed: reports can be hundreds of MB
            digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
        run = self._claim(integration, f"import:{digest}")
        if run.status == RunStatus.SUCCEEDED:
            return self._finished_already(integration, run)
        progress = self._reporting(integration, run.period, progress)
        started = time.monotonic()
        counters = _Counters()
        xero = self._xero(integration)
        try:
            if not run.summary.get("ingested"):
                items = parse_report(read_report_file(path), file_name=path.name)
                self._mark_ingested(run, self._ingest(integration, run, items, progress))
            self._post(integration, run, xero, counters, progress)
        except ServiceError as error:
            return self._fail(integration, run, error, counters, xero, 0, started)
        return self._finish(integration, run, counters, xero, 0, started)

    def runs(
        self,
        integration_id: int,
        *,
        limit: int = 10,
        workspace_id: str | None = None,
        actor: str = "system",
    ) -> list[SyncRun]:
        """The latest runs first. With `workspace_id`, only of that workspace's integrations
        (the ids came in a request from it): another's are not found."""
        self._integrations.get_by_id(integration_id, workspace_id=workspace_id, actor=actor)
        with self._sessions() as session:
            query = (
                select(SyncRun)
                .where(SyncRun.integration_id == integration_id)
                .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
                .limit(limit)
            )
            return list(session.scalars(query))

    def is_held(
        self, run_id: int, *, workspace_id: str | None = None, actor: str = "system"
    ) -> bool:
        """Whether a sync or retry holds the run now (a lapsed lease means its process died)."""
        self._run(run_id, workspace_id, actor)
        with self._sessions() as session:
            return bool(
                session.scalar(
                    select(func.count())
                    .select_from(SyncRun)
                    .where(
                        SyncRun.id == run_id,
                        SyncRun.status == RunStatus.RUNNING,
                        SyncRun.lease_until >= self._clock(),
                    )
                )
            )

    def result_of(
        self, run_id: int, *, workspace_id: str | None = None, actor: str = "system"
    ) -> RunResult:
        """A run's result as it stands, from the ledger (what Slack shows on a Retry click)."""
        run = self._run(run_id, workspace_id, actor)
        integration = self._integrations.get_by_id(run.integration_id)
        result = self._summarize(integration, run, _Counters(), RunStatus(run.status))
        result.error_kind, result.error_message = run.error_kind, run.error_message
        return result

    def item(
        self, item_id: int, *, workspace_id: str | None = None, actor: str = "system"
    ) -> LedgerItem:
        """A ledger item; with `workspace_id` only one of that workspace's integrations."""
        with self._sessions() as session:
            item = session.get(LedgerItem, item_id)
        if item is None or not self._belongs(
            item.integration_id, workspace_id, actor, f"ledger item {item_id}"
        ):
            raise ServiceError(
                ErrorKind.NOT_FOUND, f"There is no ledger item {item_id}.", retryable=False
            )
        return item

    def failed_items(
        self, run_id: int, *, workspace_id: str | None = None, actor: str = "system"
    ) -> list[LedgerItem]:
        self._run(run_id, workspace_id, actor)
        with self._sessions() as session:
            query = select(LedgerItem).where(
                LedgerItem.run_id == run_id, LedgerItem.status == LedgerStatus.FAILED
            )
            return list(session.scalars(query.order_by(LedgerItem.id)))

    def retry_item(
        self, item_id: int, *, workspace_id: str | None = None, actor: str = "system"
    ) -> LedgerItem:
        """Post one failed document again; returns it as it stands afterwards."""
        item = self.item(item_id, workspace_id=workspace_id, actor=actor)
        with self._sessions() as session:
            run = session.get(SyncRun, item.run_id)
        assert run is not None
        if item.status == LedgerStatus.POSTED:
            return item
        if item.error_kind == ErrorKind.BAD_DATA:
            raise ServiceError(
                ErrorKind.BAD_DATA,
                f"{item.error_message} Correct the report and import it again.",
                retryable=False,
            )
        # The clicked message shows the outcome; no new run summary for one item.
        self.retry_run(run.id, only=[item_id], announce=False, actor=actor)
        with self._sessions() as session:
            refreshed = session.get(LedgerItem, item_id)
            assert refreshed is not None
            return refreshed

    def retry_run(
        self,
        run_id: int,
        *,
        only: list[int] | None = None,
        announce: bool = True,
        progress: Progress = _no_progress,
        workspace_id: str | None = None,
        actor: str = "system",
    ) -> RunResult:
        """Post the failed documents of a run again (all of them, or `only` those)."""
        run = self._run(run_id, workspace_id, actor)
        integration = self._integrations.get_by_id(run.integration_id)
        retryable = select(LedgerItem.id).where(
            LedgerItem.run_id == run_id,
            LedgerItem.status == LedgerStatus.FAILED,
            LedgerItem.error_kind != ErrorKind.BAD_DATA,
        )
        if only is not None:
            retryable = retryable.where(LedgerItem.id.in_(only))
        with self._sessions() as session:
            failed = session.scalars(retryable).all()
        self._reopen(integration, run, list(failed))
        if run.status == RunStatus.FAILED and not run.summary.get("ingested"):
            return self.sync_period(integration, run.period, progress=progress)
        by = None if actor == "system" else actor
        run = self._claim(integration, run.period, resume_finished=True, by=by)
        started = time.monotonic()
        counters = _Counters()
        xero = self._xero(integration)
        try:
            self._post(integration, run, xero, counters, progress)
        except ServiceError as error:
            return self._fail(integration, run, error, counters, xero, 0, started, announce)
        return self._finish(integration, run, counters, xero, 0, started, announce)

    # -- the run record --------------------------------------------------------------------

    def tax_types(self, integration: Integration) -> list[tuple[str, str]]:
        """The Xero organisation's active tax rates that apply to sales, as (TaxType, Name)
        sorted by name, to choose overrides from: one GET /TaxRates."""
        return TaxMap.from_xero(self._xero(integration).tax_rates()).sales_tax_types()

    def check_can_sync(
        self,
        integration: Integration,
        period: str,
        *,
        workspace_id: str | None = None,
        actor: str = "system",
    ) -> None:
        """Raise what would stop a sync of this period before any work starts, including
        another sync or retry holding it now (RunInProgress): nothing would start."""
        current = self._integrations.get_by_id(
            integration.id, workspace_id=workspace_id, actor=actor
        )
        self._check_can_sync(current, *period_bounds(period))
        with self._sessions() as session:
            run = session.scalar(
                select(SyncRun).where(
                    SyncRun.integration_id == current.id,
                    SyncRun.period == period,
                    SyncRun.status == RunStatus.RUNNING,
                    SyncRun.lease_until >= self._clock(),
                )
            )
        if run is not None:
            raise RunInProgress(
                run.id,
                f"The {describe_period(period)} sync of {current.name} is already running "
                "(a sync or a retry started earlier); its progress and outcome are posted in "
                "its channels. Nothing new was started.",
                held_by=run.summary.get("held_by"),
            )

    def _run(self, run_id: int, workspace_id: str | None, actor: str) -> SyncRun:
        """A run, looked up for a request from `workspace_id` (None: the CLI, any workspace);
        another workspace's run is not found, as a missing one is."""
        with self._sessions() as session:
            run = session.get(SyncRun, run_id)
        if run is None or not self._belongs(
            run.integration_id, workspace_id, actor, f"run {run_id}"
        ):
            raise ServiceError(ErrorKind.NOT_FOUND, f"There is no run {run_id}.", retryable=False)
        return run

    def _belongs(
        self, integration_id: int, workspace_id: str | None, actor: str, looked_up: str
    ) -> bool:
        if workspace_id is None:
            return True
        integration = self._integrations.get_by_id(integration_id)
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

    def _claim(
        self,
        integration: Integration,
        period: str,
        *,
        resume_finished: bool = False,
        by: str | None = None,
    ) -> SyncRun:
        """Create or take over the run of this period; refuse while another process holds it."""
        now = self._clock()
        with self._sessions.begin() as session:
            insert_ignore(
                session,
                SyncRun,
                [
                    {
                        "integration_id": integration.id,
                        "period": period,
                        "status": RunStatus.WAITING,
                        "started_at": now,
                        "attempts": 0,
                        "summary": {},
                    }
                ],
                ["integration_id", "period"],
            )
            run = session.scalars(
                select(SyncRun)
                .where(SyncRun.integration_id == integration.id, SyncRun.period == period)
                .with_for_update()
            ).one()
            if run.status == RunStatus.SUCCEEDED and not resume_finished:
                return run
            # One conditional UPDATE decides between two racing claimers.
            claimed = (
                session.connection()
                .execute(
                    update(SyncRun)
                    .where(
                        SyncRun.id == run.id,
                        (SyncRun.status != RunStatus.RUNNING) | (SyncRun.lease_until < now),
                    )
                    .values(
                        status=RunStatus.RUNNING,
                        lease_until=now + LEASE,
                        attempts=SyncRun.attempts + 1,
                        error_kind=None,
                        error_message=None,
                    )
                )
                .rowcount
            )
            if claimed != 1:
                raise RunInProgress(
                    run.id,
                    f"The {describe_period(period)} sync of {integration.name} is already running.",
                    held_by=run.summary.get("held_by"),
                )
            session.refresh(run)
            # Who holds it, for whoever finds it held meanwhile.
            run.summary = {**run.summary, "held_by": by}
            return run

    def _renew(self, run: SyncRun) -> None:
        self._record(run.id, lease_until=self._clock() + LEASE)

    def _mark_ingested(self, run: SyncRun, tax_keys: set[str]) -> None:
        run.summary = {**run.summary, "ingested": True, "tax_keys": sorted(tax_keys)}
        self._record(run.id, summary=run.summary)

    def _record(self, run_id: int, **values: Any) -> None:
        """Write what a run has come to (one UPDATE, committed)."""
        with self._sessions.begin() as session:
            session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))

    def _vat_report_ready(self, end: datetime) -> bool:
        return self._clock() >= end + timedelta(days=VAT_REPORT_READY_DAY - 1)

    def _wait(self, integration: Integration, run: SyncRun, end: datetime) -> RunResult:
        ready = end + timedelta(days=VAT_REPORT_READY_DAY - 1)
        next_attempt = max(ready, self._clock() + NOT_READY_RETRY)
        message = (
            f"Amazon's VAT transactions report for {describe_period(run.period)} is ready from "
            f"{ready:%-d %B}; the sync will try again at {next_attempt:%-d %B %H:%M} UTC."
        )
        self._record(
            run.id,
            status=RunStatus.WAITING,
            lease_until=None,
            next_attempt_at=next_attempt,
            error_message=message,
        )
        return RunResult(run.id, integration.name, run.period, RunStatus.WAITING, message)

    def _finished_already(self, integration: Integration, run: SyncRun) -> RunResult:
        result = self._summarize(integration, run, _Counters(), RunStatus.SUCCEEDED)
        result.already_posted = result.documents
        result.message = (
            f"The {describe_period(run.period)} sync of {integration.name} already finished: "
            f"all {result.documents} documents are in Xero; nothing was posted."
        )
        return result

    def _fail(
        self,
        integration: Integration,
        run: SyncRun,
        error: ServiceError,
        counters: _Counters,
        xero: XeroClient,
        amazon_calls: int,
        started: float,
        announce: bool = True,
    ) -> RunResult:
        """The run could not proceed; what was posted stays posted and the run resumes later."""
        retry_at = self._clock() + FAILED_RUN_RETRY if error.retryable else None
        self._note_left_out(integration, run)
        result = self._summarize(integration, run, counters, RunStatus.FAILED)
        self._record(
            run.id,
            status=RunStatus.FAILED,
            lease_until=None,
            next_attempt_at=retry_at,
            error_kind=error.kind.value,
            error_message=error.message,
            finished_at=self._clock(),
            summary=run.summary,
        )
        result.error_kind, result.error_message = error.kind.value, error.message
        result.message = (
            f"The {describe_period(run.period)} sync could not proceed: {error.message}"
        )
        result.xero_api_calls, result.amazon_api_calls = xero.api_calls, amazon_calls
        result.duration_seconds = time.monotonic() - started
        if announce:
            self._notifier.run_blocked(integration, result)
        return result

    def _finish(
        self,
        integration: Integration,
        run: SyncRun,
        counters: _Counters,
        xero: XeroClient,
        amazon_calls: int,
        started: float,
        announce: bool = True,
    ) -> RunResult:
        self._note_left_out(integration, run)
        result = self._summarize(integration, run, counters, RunStatus.SUCCEEDED)
        status = RunStatus.PARTIAL if result.failed else RunStatus.SUCCEEDED
        result.status = status
        result.xero_api_calls, result.amazon_api_calls = xero.api_calls, amazon_calls
        result.duration_seconds = time.monotonic() - started
        posted = result.invoices_created + result.credit_notes_created
        result.message = (
            f"{describe_period(run.period)}: {posted} documents posted, "
            f"{result.already_posted} already in Xero, {result.failed} failed."
        )
        summary = {**run.summary, "result": result.to_json()}
        self._record(
            run.id,
            status=status,
            lease_until=None,
            next_attempt_at=None,
            finished_at=self._clock(),
            summary=summary,
        )
        if announce:
            earlier = summary.get("error_report")
            shown = self._notifier.run_finished(
                integration,
                result,
                self.failed_items(run.id),
                error_report=PostedMessage(**earlier) if earlier else None,
            )
            if shown is not None and asdict(shown) != earlier:
                # Kept with the run: a retry from another process (the CLI) updates it.
                summary = {**summary, "error_report": asdict(shown)}
                self._record(run.id, summary=summary)
        return result

    def _reporting(self, integration: Integration, period: str, progress: Progress) -> Progress:
        """The caller's progress listener, and the notifier's."""

        def report(phase: str, done: int, total: int) -> None:
            progress(phase, done, total)
            self._notifier.progress(integration, period, phase, done, total)

        return report

    # -- reading Amazon --------------------------------------------------------------------

    def _ingest_from_amazon(
        self,
        integration: Integration,
        run: SyncRun,
        amazon: SpApiClient,
        start: datetime,
        end: datetime,
        progress: Progress,
    ) -> None:
        data_end = end - timedelta(seconds=1)
        self._drop_unreadable(run)
        tax_keys: set[str] = set()
        if integration.region == Region.EU:
            kinds = [ReportKind.VAT_TRANSACTIONS]
        else:
            kinds = [ReportKind.ALL_ORDERS]
        for kind in kinds:
            report_id = amazon.create_report(kind.value, integration.marketplaces, start, data_end)
            try:
                report = amazon.wait_for_report(report_id)
            except ServiceError as error:
                if error.kind == ErrorKind.NOT_FOUND:
                    continue  # Amazon cancels a report that has no data: nothing to post
                raise
            document = amazon.get_report_document(
                report.report_document_id or "", restricted=kind == ReportKind.VAT_TRANSACTIONS
            )
            lines = amazon.iter_report_lines(document)
            items = parse_report(lines, file_name=report.name)
            tax_keys |= self._ingest(
                integration, run, items, progress, since=integration.start_date
            )
        if integration.region != Region.EU:
            # Refunds come from settlement reports, which Amazon makes on its own schedule.
            settlements = amazon.get_reports(
                [ReportKind.SETTLEMENT_V2.value],
                created_since=start,
                created_until=min(end + timedelta(days=30), self._clock()),
                marketplace_ids=integration.marketplaces,
            )
            for report in settlements:
                document = amazon.get_report_document(report.report_document_id or "")
                items = parse_report(amazon.iter_report_lines(document), file_name=report.name)
                in_period = (
                    item
                    for item in items
                    if isinstance(item, RowError) or start.date() <= item.date < end.date()
                )
                tax_keys |= self._ingest(
                    integration, run, in_period, progress, since=integration.start_date
                )
        self._mark_ingested(run, tax_keys)

    def _drop_unreadable(self, run: SyncRun) -> None:
        """A re-read report reports its unreadable rows again; keep only the new ones."""
        with self._sessions.begin() as session:
            session.execute(
                delete(LedgerItem).where(
                    LedgerItem.run_id == run.id, LedgerItem.error_kind == ErrorKind.BAD_DATA
                )
            )

    def _ingest(
        self,
        integration: Integration,
        run: SyncRun,
        items: Iterable[Transaction | RowError],
        progress: Progress,
        *,
        since: date | None = None,
    ) -> set[str]:
        """Record rows, documents and buyers in chunks: constant memory, few round trips.

        Rows dated before `since` (the integration's start date) are left out. Returns the
        tax keys the documents will need.
        """
        read = 0
        posting = posting_settings(integration)
        row_key = RowKeys()
        needed_tax_keys: set[str] = set()
        for chunk in chunks(items, INGEST_CHUNK):
            rows: list[dict[str, Any]] = []
            documents: dict[str, dict[str, Any]] = {}
            contacts: dict[str, ContactSpec] = {}
            unreadable: list[dict[str, Any]] = []
            order_contacts = self._order_contacts(integration, chunk)
            for item in chunk:
                if isinstance(item, RowError):
                    unreadable.append(self._unreadable_item(integration, run, item))
                    continue
                if since is not None and item.date < since:
                    continue
                payload = transaction_to_json(item)
                key = document_key(item)
                rows.append(
                    {
                        "integration_id": integration.id,
                        "run_id": run.id,
                        "row_key": row_key(payload),
                        "document_key": key,
                        "transaction_type": item.type,
                        "payload": payload,
                    }
                )
                if key is not None:
                    needed_tax_keys.update(str(k) for k in transaction_tax_keys(item, posting))
                if key is not None and key not in documents:
                    # One order, one buyer: each shipment's invoice takes the contact of the
                    # order's first. A refund's contact is its order's, found before posting
                    # (refund rows carry less of the buyer than the sale's rows).
                    contact_key = None
                    if key.startswith("INV:"):
                        contact = contact_for(item)
                        contact_key = order_contacts.setdefault(item.order_id, contact.key)
                        if contact_key == contact.key:
                            contacts[contact.key] = contact
                    documents[key] = self._new_item(integration, run, key, item, contact_key)
            with self._sessions.begin() as session:
                insert_ignore(session, AmazonTransaction, rows, ["integration_id", "row_key"])
                insert_ignore(
                    session,
                    LedgerItem,
                    [*documents.values(), *unreadable],
                    ["integration_id", "source_key"],
                )
                # Documents that failed in another run (an import, say) are this run's now,
                # and, unless Xero has them, read afresh: a corrected report posts them.
                session.execute(
                    update(LedgerItem)
                    .where(
                        LedgerItem.integration_id == integration.id,
                        LedgerItem.source_key.in_(list(documents)),
                        LedgerItem.status != LedgerStatus.POSTED,
                        LedgerItem.run_id != run.id,
                    )
                    .values(run_id=run.id)
                )
                session.execute(
                    update(LedgerItem)
                    .where(
                        LedgerItem.integration_id == integration.id,
                        LedgerItem.source_key.in_(list(documents)),
                        LedgerItem.status == LedgerStatus.FAILED,
                        LedgerItem.xero_id.is_(None),
                    )
                    .values(status=LedgerStatus.PENDING)
                )
                self._record_contacts(session, integration, contacts)
            read += len(chunk)
            progress("reading", read, 0)
            self._renew(run)
        return needed_tax_keys

    @staticmethod
    def _new_item(
        integration: Integration,
        run: SyncRun,
        key: str,
        transaction: Transaction,
        contact_key: str | None,
    ) -> dict[str, Any]:
        is_invoice = key.startswith("INV:")
        return _item_row(
            integration,
            run,
            source_key=key,
            transaction_type=transaction.type,
            amazon_order_id=transaction.order_id,
            document_type=DocumentKind.INVOICE if is_invoice else DocumentKind.CREDIT_NOTE,
            document_number=document_number(transaction),
            contact_key=contact_key,
            currency=transaction.currency,
            country=transaction.tax_country,
            allocation_status=None if is_invoice else AllocationStatus.PENDING,
        )

    def _order_contacts(
        self, integration: Integration, chunk: list[Transaction | RowError]
    ) -> dict[str, str]:
        """The contact of each order of this chunk that already has an invoice."""
        orders = {item.order_id for item in chunk if isinstance(item, Transaction)}
        with self._sessions() as session:
            found: dict[str, str] = {}
            for order, key in session.execute(
                select(LedgerItem.amazon_order_id, LedgerItem.contact_key)
                .where(
                    LedgerItem.integration_id == integration.id,
                    LedgerItem.document_type == DocumentKind.INVOICE,
                    LedgerItem.amazon_order_id.in_(orders),
                    LedgerItem.contact_key.is_not(None),
                )
                .order_by(LedgerItem.id)
            ):
                if order is not None and key is not None:
                    found.setdefault(order, key)
            return found

    @staticmethod
    def _unreadable_item(integration: Integration, run: SyncRun, error: RowError) -> dict[str, Any]:
        return _item_row(
            integration,
            run,
            # Per run: the same file and line in a corrected file is another row.
            source_key=f"ROW:{run.id}:{error.source.file}:{error.source.line}"[:200],
            transaction_type="UNREADABLE",
            amazon_order_id=error.order_id,
            status=LedgerStatus.FAILED,
            error_kind=ErrorKind.BAD_DATA,
            error_message=error.describe(),
        )

    @staticmethod
    def _record_contacts(
        session: Session, integration: Integration, contacts: dict[str, ContactSpec]
    ) -> None:
        if not contacts:
            return
        known = {
            contact.contact_key: contact
            for contact in session.scalars(
                select(XeroContact).where(
                    XeroContact.integration_id == integration.id,
                    XeroContact.contact_key.in_(list(contacts)),
                )
            )
        }
        new_rows = []
        for key, spec in contacts.items():
            spec_json = asdict(spec)
            fingerprint = _fingerprint(spec_json)
            existing = known.get(key)
            if existing is None:
                new_rows.append(
                    _contact_row(integration, key, spec=spec_json, fingerprint=fingerprint)
                )
            elif existing.fingerprint != fingerprint:
                # The buyer's details changed (a new address, say): update the contact.
                existing.spec, existing.fingerprint = spec_json, fingerprint
                if existing.status != LedgerStatus.IN_FLIGHT:
                    existing.status = LedgerStatus.PENDING
        insert_ignore(session, XeroContact, new_rows, ["integration_id", "contact_key"])

    # -- posting to Xero -------------------------------------------------------------------

    def _post(
        self,
        integration: Integration,
        run: SyncRun,
        xero: XeroClient,
        counters: _Counters,
        progress: Progress,
    ) -> None:
        counters.already_posted += self._count_already_posted(run)
        self._reconcile_contacts(integration, xero)
        self._reconcile_documents(run)
        self._resolve_refund_contacts(integration, run, xero)
        self._post_contacts(integration, run, xero, counters)
        tax_map: TaxMap | None = None
        total = self._count(run, LedgerStatus.PENDING)
        done = 0
        for kind in (DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE):
            while batch := self._next_batch(run, kind):
                if tax_map is None:  # only when there is something to post
                    tax_map = TaxMap.from_xero(
                        xero.tax_rates(),
                        integration.tax_overrides,
                        home_country=xero.organisation().get("CountryCode") or "GB",
                    )
                    # Every rate the run needs, made in one call before its first document.
                    needed = run.summary.get("tax_keys", [])
                    tax_map.ensure([TaxKey.parse(key) for key in needed], xero)
                self._post_batch(integration, run, xero, tax_map, kind, batch, counters)
                done += len(batch)
                progress("posting", done, total)
                self._renew(run)
        if tax_map is not None:
            self._save_tax_map(integration, tax_map)
        self._allocate(integration, run, xero, counters)

    def _count(self, run: SyncRun, status: LedgerStatus) -> int:
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(LedgerItem)
                    .where(LedgerItem.run_id == run.id, LedgerItem.status == status)
                )
                or 0
            )

    def _count_already_posted(self, run: SyncRun) -> int:
        """Documents of this run that an earlier invocation already put in Xero."""
        return self._count(run, LedgerStatus.POSTED)

    def _next_batch(self, run: SyncRun, kind: DocumentKind) -> list[LedgerItem]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(LedgerItem)
                    .where(
                        LedgerItem.run_id == run.id,
                        LedgerItem.status == LedgerStatus.PENDING,
                        LedgerItem.document_type == kind,
                    )
                    .order_by(LedgerItem.id)
                    .limit(BATCH)
                )
            )

    def _load_documents(
        self, integration: Integration, items: list[LedgerItem]
    ) -> dict[int, Document | ServiceError]:
        posting = posting_settings(integration)
        built: dict[int, Document | ServiceError] = {}
        for item, rows in self._rows_of(integration, items).items():
            try:
                built[item.id] = build_document(rows, posting)
            except ServiceError as error:
                built[item.id] = error
        return built

    def _contact_ids(self, integration: Integration, keys: set[str]) -> dict[str, XeroContact]:
        with self._sessions() as session:
            return {
                contact.contact_key: contact
                for contact in session.scalars(
                    select(XeroContact).where(
                        XeroContact.integration_id == integration.id,
                        XeroContact.contact_key.in_(list(keys)),
                    )
                )
            }

    def _post_batch(
        self,
        integration: Integration,
        run: SyncRun,
        xero: XeroClient,
        tax_map: TaxMap,
        kind: DocumentKind,
        items: list[LedgerItem],
        counters: _Counters,
    ) -> None:
        loaded = self._load_documents(integration, items)
        documents: dict[int, Document | ServiceError | str] = {
            **loaded,
            **self._whole_and_unique(integration, run, kind, items, loaded, xero),
        }
        contacts = self._contact_ids(integration, {item.contact_key or "" for item in items})
        buildable = [doc for doc in documents.values() if isinstance(doc, Document)]
        # One look at the tax map per batch: missing rates are created together.
        tax_types = tax_map.ensure(set().union(*(tax_keys(doc) for doc in buildable)), xero)
        sendable: list[tuple[LedgerItem, Document, dict[str, Any]]] = []
        outcomes: list[dict[str, Any]] = []
        for item in items:
            built = documents[item.id]
            if isinstance(built, str):  # Xero has it already: sent by an attempt we lost
                adopted = _posted(item.id, built)
                if isinstance(document := loaded[item.id], Document):
                    adopted |= _figures(document)
                if kind == DocumentKind.CREDIT_NOTE:
                    # It may be allocated too: look before allocating again.
                    adopted["allocation_status"] = AllocationStatus.IN_FLIGHT
                outcomes.append(adopted)
                counters.already_posted += 1
                continue
            if isinstance(built, ServiceError):
                self._set_failed(item.id, built)
                continue
            contact = contacts.get(item.contact_key or "")
            if contact is None or contact.xero_contact_id is None:
                reason = (contact.error_message if contact else None) or "Xero has not confirmed it"
                self._set_failed(
                    item.id,
                    ServiceError(
                        ErrorKind.VALIDATION,
                        f"The Xero contact for this document could not be made: {reason}",
                        retryable=True,
                    ),
                )
                continue
            payload = document_payload(
                built,
                contact_id=contact.xero_contact_id,
                tax_types=tax_types,
                status=integration.invoice_status,
            )
            sendable.append((item, built, payload))
        if not sendable:
            self._record_outcomes(outcomes)
            return
        attempts = self._mark_in_flight([(item, doc) for item, doc, _ in sendable])
        endpoint: Endpoint = "Invoices" if kind == DocumentKind.INVOICE else "CreditNotes"
        key_material = ",".join(f"{item.source_key}#{attempts[item.id]}" for item, _, _ in sendable)
        try:
            results = xero.create_documents(
                endpoint,
                [payload for _, _, payload in sendable],
                idempotency_key=_idempotency_key(integration, endpoint, key_material),
            )
        except ServiceError as error:
            if error.kind == ErrorKind.AUTH:
                raise
            # Xero may or may not have acted: the items stay uncertain (looked up before resend).
            for item, _, _ in sendable:
                self._set_failed(item.id, error)
            self._record_outcomes(outcomes)
            return
        for (item, doc, _), result in zip(sendable, results, strict=True):
            if result.ok:
                outcomes.append(_posted(item.id, result.xero_id))
                if kind == DocumentKind.INVOICE:
                    counters.invoices += 1
                else:
                    counters.credit_notes += 1
                _count_country(counters, doc)
            else:
                outcomes.append(
                    {
                        "id": item.id,
                        "status": LedgerStatus.FAILED,
                        "xero_id": None,
                        "error_kind": ErrorKind.VALIDATION,
                        "error_message": "Xero: " + " ".join(result.errors),
                        # Fixable in Xero (enable the currency, add the account...).
                        "retryable": True,
                    }
                )
        self._record_outcomes(outcomes)

    def _record_outcomes(self, outcomes: list[dict[str, Any]]) -> None:
        if not outcomes:
            return
        with self._sessions.begin() as session:
            session.execute(update(LedgerItem), outcomes)  # one executemany by primary key

    def _whole_and_unique(
        self,
        integration: Integration,
        run: SyncRun,
        kind: DocumentKind,
        items: list[LedgerItem],
        documents: dict[int, Document | ServiceError],
        xero: XeroClient,
    ) -> dict[int, ServiceError | str]:
        """What becomes of a batch's items before anything is sent, by item id.

        One look-up of the batch's numbers in Xero (Xero updates the document whose number it
        already has). A number Xero has for this very order is the document itself, sent by an
        attempt whose answer was lost: its Xero id is returned. Otherwise a document with an
        unreadable row is not posted without it, and a number that another document has, in
        the ledger or in Xero, is never sent."""
        label = document_label(kind)
        numbers: dict[int, str] = {}
        for item in items:
            built = documents[item.id]
            number = item.document_number or (built.number if isinstance(built, Document) else None)
            if number:
                numbers[item.id] = number
        in_xero = self._find_numbers(xero, kind, set(numbers.values()))
        with self._sessions() as session:
            unreadable = dict(
                session.execute(
                    select(LedgerItem.amazon_order_id, LedgerItem.error_message).where(
                        LedgerItem.run_id == run.id,
                        LedgerItem.transaction_type == "UNREADABLE",
                        LedgerItem.amazon_order_id.in_({item.amazon_order_id for item in items}),
                    )
                ).all()
            )
            holders: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
            for item_id, number, order in session.execute(
                select(LedgerItem.id, LedgerItem.document_number, LedgerItem.amazon_order_id).where(
                    LedgerItem.integration_id == integration.id,
                    LedgerItem.document_type == kind,
                    LedgerItem.document_number.in_(set(numbers.values())),
                    # A document failed for good in another run holds no number.
                    (LedgerItem.run_id == run.id)
                    | LedgerItem.xero_id.is_not(None)
                    | LedgerItem.status.in_([LedgerStatus.POSTED, LedgerStatus.IN_FLIGHT]),
                )
            ):
                if number is not None:
                    holders[number].append((item_id, order))
        verdicts: dict[int, ServiceError | str] = {}
        for item in items:
            order, number = item.amazon_order_id or "?", numbers.get(item.id, "")
            element = in_xero.get(number)
            if element is not None and element.get("Reference") == order:
                verdicts[item.id] = str(element.get("InvoiceID") or element.get("CreditNoteID"))
                continue
            others = sorted({o or "?" for i, o in holders.get(number, []) if i != item.id})
            verdict = posting_verdict(order, label, number, unreadable.get(order), others)
            if verdict is None and element is not None:
                verdict = ServiceError(
                    ErrorKind.VALIDATION,
                    f"Order {order}: Xero already has {label} {number} for "
                    f"{element.get('Reference') or 'another document'}, made outside this bot, "
                    "and this bot never changes it. Void or renumber that one in Xero, then "
                    "retry.",
                    retryable=True,
                )
            if verdict is not None:
                verdicts[item.id] = verdict
        return verdicts

    @staticmethod
    def _find_numbers(
        xero: XeroClient, kind: DocumentKind, numbers: set[str]
    ) -> dict[str, dict[str, Any]]:
        """The sales documents of this kind Xero has under these numbers, by number (deleted
        and voided ones do not count: their numbers can be used again)."""
        if not numbers:
            return {}
        if kind == DocumentKind.INVOICE:
            found, wire_type = xero.find_invoices_by_number(sorted(numbers)), "ACCREC"
        else:
            found, wire_type = xero.find_credit_notes_by_number(sorted(numbers)), "ACCRECCREDIT"
        return {
            str(element.get("InvoiceNumber") or element.get("CreditNoteNumber")): element
            for element in found
            if element.get("Type", wire_type) == wire_type
            and element.get("Status") not in ("DELETED", "VOIDED")
        }

    def _mark_in_flight(self, sent: list[tuple[LedgerItem, Document]]) -> dict[int, int]:
        attempts = {item.id: item.attempts + 1 for item, _ in sent}
        with self._sessions.begin() as session:
            # One executemany: bulk UPDATE by primary key.
            session.execute(
                update(LedgerItem),
                [
                    {
                        "id": item.id,
                        "status": LedgerStatus.IN_FLIGHT,
                        "attempts": attempts[item.id],
                        **_figures(doc),
                    }
                    for item, doc in sent
                ],
            )
        return attempts

    def _set_failed(self, item_id: int, error: ServiceError, **values: Any) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem)
                .where(LedgerItem.id == item_id)
                .values(
                    status=LedgerStatus.FAILED,
                    error_kind=error.kind.value,
                    error_message=error.message,
                    retryable=error.retryable,
                    **values,
                )
            )

    def _reconcile_documents(self, run: SyncRun) -> None:
        """Documents a crash left in flight go back to pending: the look-up of each batch's
        numbers (`_whole_and_unique`) finds those Xero has before anything is sent again."""
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem)
                .where(LedgerItem.run_id == run.id, LedgerItem.status == LedgerStatus.IN_FLIGHT)
                .values(status=LedgerStatus.PENDING)
            )

    def _reopen(self, integration: Integration, run: SyncRun, item_ids: list[int]) -> None:
        """Failed items become pending; those whose outcome is unknown stay marked uncertain.
        A document already in Xero (its allocation failed) is posted again, its allocation
        to be made."""
        failed = (
            LedgerItem.id.in_(item_ids),
            LedgerItem.integration_id == integration.id,
            LedgerItem.status == LedgerStatus.FAILED,
        )
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem)
                .where(*failed, LedgerItem.xero_id.is_not(None))
                .values(status=LedgerStatus.POSTED, error_kind=None, error_message=None)
            )
            session.execute(update(LedgerItem).where(*failed).values(status=LedgerStatus.PENDING))
            session.execute(
                update(XeroContact)
                .where(
                    XeroContact.integration_id == integration.id,
                    XeroContact.status == LedgerStatus.FAILED,
                )
                .values(status=LedgerStatus.PENDING, name_attempt=0)
            )

    # -- contacts --------------------------------------------------------------------------

    def _reconcile_contacts(self, integration: Integration, xero: XeroClient) -> None:
        with self._sessions() as session:
            in_flight = list(
                session.scalars(
                    select(XeroContact).where(
                        XeroContact.integration_id == integration.id,
                        XeroContact.status == LedgerStatus.IN_FLIGHT,
                    )
                )
            )
        for chunk in chunks(in_flight, BATCH):
            names = [contact.name or "" for contact in chunk]
            found = {
                element["Name"].casefold(): element["ContactID"]
                for element in xero.find_contacts_by_name(names)
            }
            with self._sessions.begin() as session:
                for contact in chunk:
                    contact_id = found.get((contact.name or "").casefold())
                    values: dict[str, Any] = (
                        {"status": LedgerStatus.POSTED, "xero_contact_id": contact_id}
                        if contact_id
                        else {"status": LedgerStatus.PENDING}
                    )
                    session.execute(
                        update(XeroContact).where(XeroContact.id == contact.id).values(**values)
                    )

    def _resolve_refund_contacts(
        self, integration: Integration, run: SyncRun, xero: XeroClient
    ) -> None:
        """Each credit note goes to its order's contact: Xero allocates a credit note only to
        invoices of its own contact, and one buyer is one customer ledger. The order's invoice
        contact comes from the ledger (this month or an earlier one), else from the order's
        invoice in Xero (made before this bot, or by hand), else from the refund's own rows."""
        invoice = aliased(LedgerItem)
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem)
                .where(
                    LedgerItem.run_id == run.id,
                    LedgerItem.document_type == DocumentKind.CREDIT_NOTE,
                    LedgerItem.status.in_([LedgerStatus.PENDING, LedgerStatus.FAILED]),
                    LedgerItem.xero_id.is_(None),
                )
                .values(
                    # Every credit note not yet sent, so that a sale read after its refund
                    # still gives the refund its contact.
                    contact_key=func.coalesce(
                        select(invoice.contact_key)
                        .where(
                            invoice.integration_id == LedgerItem.integration_id,
                            invoice.amazon_order_id == LedgerItem.amazon_order_id,
                            invoice.document_type == DocumentKind.INVOICE,
                            invoice.contact_key.is_not(None),
                        )
                        .order_by(invoice.id)
                        .limit(1)
                        .scalar_subquery(),
                        LedgerItem.contact_key,
                    )
                )
                .execution_options(synchronize_session=False)
            )
        for page in self._pages(
            LedgerItem,
            LedgerItem.run_id == run.id,
            LedgerItem.document_type == DocumentKind.CREDIT_NOTE,
            LedgerItem.contact_key.is_(None),
        ):
            in_xero = xero.find_sales_invoice_contacts(
                {item.amazon_order_id or "" for item in page}
            )
            own: dict[str, ContactSpec] = {}
            keys: dict[int, str] = {}
            for item, rows in self._rows_of(integration, page).items():
                contact_id = in_xero.get(item.amazon_order_id or "")
                if contact_id is not None:
                    keys[item.id] = f"xero:{contact_id}"
                elif rows:
                    spec = contact_for(rows[0])
                    own[spec.key] = spec
                    keys[item.id] = spec.key
            with self._sessions.begin() as session:
                insert_ignore(
                    session,
                    XeroContact,
                    [
                        _contact_row(
                            integration,
                            key,
                            xero_contact_id=key.removeprefix("xero:"),
                            status=LedgerStatus.POSTED,
                        )
                        for key in sorted(set(keys.values()) - set(own))
                    ],
                    ["integration_id", "contact_key"],
                )
                self._record_contacts(session, integration, own)
                session.execute(
                    update(LedgerItem),
                    [{"id": item_id, "contact_key": key} for item_id, key in keys.items()],
                )

    def _rows_of(
        self, integration: Integration, items: list[LedgerItem]
    ) -> dict[LedgerItem, list[Transaction]]:
        """The report rows of each item's document, in file order."""
        by_key = {item.source_key: item for item in items}
        rows: dict[LedgerItem, list[Transaction]] = {item: [] for item in items}
        with self._sessions() as session:
            for key, payload in session.execute(
                select(AmazonTransaction.document_key, AmazonTransaction.payload)
                .where(
                    AmazonTransaction.integration_id == integration.id,
                    AmazonTransaction.document_key.in_(list(by_key)),
                )
                .order_by(AmazonTransaction.id)
            ):
                rows[by_key[key]].append(transaction_from_json(payload))
        return rows

    def _post_contacts(
        self, integration: Integration, run: SyncRun, xero: XeroClient, counters: _Counters
    ) -> None:
        """Pending contacts, 50 at a time, paged by id: every one was recorded because a
        document needs it. A name Xero refused (taken) stays pending with its next name for
        the next round.
        """
        for _round in range(CONTACT_NAME_ATTEMPTS):
            pages = self._pages(
                XeroContact,
                XeroContact.integration_id == integration.id,
                XeroContact.status == LedgerStatus.PENDING,
            )
            posted_any = False
            for batch in pages:
                self._post_contact_batch(integration, xero, batch, counters)
                posted_any = True
            if not posted_any:
                return

    def _pages(self, model: Any, *conditions: Any) -> Iterator[list[Any]]:
        """Rows matching `conditions`, 50 at a time, paged by id: constant memory, and rows
        changed while a page is worked on do not shift the next page."""
        after = 0
        while True:
            with self._sessions() as session:
                page = list(
                    session.scalars(
                        select(model)
                        .where(*conditions, model.id > after)
                        .order_by(model.id)
                        .limit(BATCH)
                    )
                )
            if not page:
                return
            yield page
            after = page[-1].id

    def _post_contact_batch(
        self,
        integration: Integration,
        xero: XeroClient,
        contacts: list[XeroContact],
        counters: _Counters,
    ) -> None:
        payloads = []
        with self._sessions.begin() as session:
            for contact in contacts:
                spec = ContactSpec(**contact.spec)
                contact.name = contact_name(spec, contact.name_attempt)
                payload = contact_payload(spec, contact.name)
                if contact.xero_contact_id:
                    payload["ContactID"] = contact.xero_contact_id
                payloads.append(payload)
                session.execute(
                    update(XeroContact)
                    .where(XeroContact.id == contact.id)
                    .values(status=LedgerStatus.IN_FLIGHT, name=contact.name)
                )
        material = ",".join(f"{c.contact_key}#{c.name}#{c.fingerprint}" for c in contacts)
        try:
            results = xero.create_documents(
                "Contacts",
                payloads,
                method="POST",
                idempotency_key=_idempotency_key(integration, "Contacts", material),
            )
        except ServiceError as error:
            if error.kind == ErrorKind.AUTH:
                raise
            return  # left in flight: looked up by name before the next attempt
        with self._sessions.begin() as session:
            for contact, result in zip(contacts, results, strict=True):
                values: dict[str, Any]
                if result.ok:
                    if contact.xero_contact_id:
                        counters.contacts_updated += 1
                    else:
                        counters.contacts_created += 1
                    values = {
                        "status": LedgerStatus.POSTED,
                        "xero_contact_id": result.xero_id,
                        "error_message": None,
                    }
                elif any(_NAME_TAKEN in message for message in result.errors):
                    # Another buyer (or someone in Xero) has this name: try the next name.
                    values = {
                        "status": LedgerStatus.PENDING,
                        "name_attempt": contact.name_attempt + 1,
                    }
                else:
                    values = {
                        "status": LedgerStatus.FAILED,
                        "error_message": "Xero: " + " ".join(result.errors),
                    }
                session.execute(
                    update(XeroContact).where(XeroContact.id == contact.id).values(**values)
                )

    def _save_tax_map(self, integration: Integration, tax_map: TaxMap) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Integration)
                .where(Integration.id == integration.id)
                .values(xero_tax_types=tax_map.as_dict())
            )

    # -- allocations -----------------------------------------------------------------------

    def _allocate(
        self, integration: Integration, run: SyncRun, xero: XeroClient, counters: _Counters
    ) -> None:
        """Allocate each posted credit note to an invoice of its order when Xero allows it:
        an order shipped in several parts has several invoices, any of which may take it."""
        for chunk in self._pages(
            LedgerItem,
            LedgerItem.run_id == run.id,
            LedgerItem.document_type == DocumentKind.CREDIT_NOTE,
            LedgerItem.status == LedgerStatus.POSTED,
            LedgerItem.allocation_status.in_(
                [AllocationStatus.PENDING, AllocationStatus.WAITING, AllocationStatus.IN_FLIGHT]
            ),
        ):
            invoices: dict[str | None, list[LedgerItem]] = defaultdict(list)
            with self._sessions() as session:
                for invoice in session.scalars(
                    select(LedgerItem)
                    .where(
                        LedgerItem.integration_id == integration.id,
                        LedgerItem.document_type == DocumentKind.INVOICE,
                        LedgerItem.status == LedgerStatus.POSTED,
                        LedgerItem.amazon_order_id.in_({cn.amazon_order_id for cn in chunk}),
                    )
                    .order_by(LedgerItem.id)
                ):
                    invoices[invoice.amazon_order_id].append(invoice)
            numbers = sorted(
                {i.document_number or "" for group in invoices.values() for i in group}
            )
            found = xero.find_invoices_by_number(numbers) if numbers else []
            state = {element["InvoiceID"]: element for element in found}
            for credit_note in chunk:
                self._allocate_one(
                    integration,
                    xero,
                    credit_note,
                    invoices.get(credit_note.amazon_order_id, []),
                    state,
                    counters,
                )

    def _allocate_one(
        self,
        integration: Integration,
        xero: XeroClient,
        credit_note: LedgerItem,
        invoices: list[LedgerItem],
        state: dict[str, dict[str, Any]],
        counters: _Counters,
    ) -> None:
        """The first invoice of the order, on the credit note's contact, that is authorised and
        has enough left to pay takes it. None in Xero yet, or only drafts: later. All too
        little: not possible (the refund exceeds what is due), said in the ledger."""
        amount = from_cents(credit_note.gross_cents)
        in_xero = [
            (invoice, state[invoice.xero_id or ""])
            for invoice in invoices
            if invoice.xero_id in state and invoice.contact_key == credit_note.contact_key
        ]
        if credit_note.allocation_status == AllocationStatus.IN_FLIGHT and _already_allocated(
            xero, credit_note, {invoice.xero_id or "" for invoice, _ in in_xero}
        ):
            self._set_allocation(credit_note.id, AllocationStatus.DONE)
            return
        authorised = [(i, e) for i, e in in_xero if e.get("Status") == "AUTHORISED"]
        target = next(
            (
                (invoice, element)
                for invoice, element in authorised
                if Decimal(str(element.get("AmountDue", "0"))) >= amount
            ),
            None,
        )
        if target is None:
            waiting = len(authorised) < len(in_xero) or not in_xero  # a draft, or none yet
            self._set_allocation(
                credit_note.id,
                AllocationStatus.WAITING if waiting else AllocationStatus.NOT_POSSIBLE,
            )
            return
        invoice, element = target
        self._set_allocation(credit_note.id, AllocationStatus.IN_FLIGHT)
        try:
            xero.allocate_credit_note(
                credit_note.xero_id or "",
                invoice_id=invoice.xero_id or "",
                amount=amount,
                date=self._clock().date(),
                idempotency_key=_idempotency_key(
                    integration, "Allocations", f"{credit_note.source_key}>{invoice.xero_id}"
                ),
            )
        except ServiceError as error:
            if error.kind == ErrorKind.AUTH or error.kind.value in _UNCERTAIN:
                raise  # the run resumes later; an allocation in flight is looked for first
            refused = ServiceError(
                error.kind,
                f"Credit note {credit_note.document_number} is in Xero, but Xero refused its "
                f"allocation to invoice {invoice.document_number}: {error.message}",
                retryable=True,
            )
            # A failed item with Retry like any other; the credit note stays in Xero.
            self._set_failed(credit_note.id, refused, allocation_status=AllocationStatus.PENDING)
            return
        element["AmountDue"] = Decimal(str(element["AmountDue"])) - amount
        self._set_allocation(credit_note.id, AllocationStatus.DONE)
        counters.allocations += 1

    def _set_allocation(self, item_id: int, status: AllocationStatus) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem).where(LedgerItem.id == item_id).values(allocation_status=status)
            )

    # -- the result ------------------------------------------------------------------------

    def _note_left_out(self, integration: Integration, run: SyncRun) -> None:
        """Amazon's figures of the documents that are not in Xero, per currency, kept with the
        run when it ends (not worked out again for every look at the result)."""
        left_out: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        for page in self._pages(
            LedgerItem,
            LedgerItem.run_id == run.id,
            LedgerItem.document_type.is_not(None),
            LedgerItem.xero_id.is_(None),
            LedgerItem.status != LedgerStatus.POSTED,
        ):
            for rows in self._rows_of(integration, page).values():
                for row in rows:
                    entry = left_out[row.currency]
                    if row.type == TransactionType.SALE:
                        entry.sales_gross += row.gross
                    else:
                        entry.refunds_gross -= row.gross  # positive, as in the totals
                    if row.scheme != TaxScheme.FACILITATOR:
                        entry.tax += row.tax
        run.summary = {
            **run.summary,
            "left_out": {currency: t.to_json() for currency, t in sorted(left_out.items())},
        }

    def _summarize(
        self, integration: Integration, run: SyncRun, counters: _Counters, status: RunStatus
    ) -> RunResult:
        result = RunResult(
            run_id=run.id,
            integration=integration.name,
            period=run.period,
            status=status,
            invoices_created=counters.invoices,
            credit_notes_created=counters.credit_notes,
            contacts_created=counters.contacts_created,
            contacts_updated=counters.contacts_updated,
            allocations_made=counters.allocations,
            already_posted=counters.already_posted,
        )
        # A credit note whose allocation failed is in Xero all the same: its amounts count.
        in_xero = LedgerItem.xero_id.is_not(None)
        result.left_out = {
            currency: CurrencyTotals.from_json(figures)
            for currency, figures in run.summary.get("left_out", {}).items()
        }
        with self._sessions() as session:
            totals: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
            for kind, currency, gross, tax, count in session.execute(
                select(
                    LedgerItem.document_type,
                    LedgerItem.currency,
                    func.sum(LedgerItem.gross_cents),
                    func.sum(LedgerItem.tax_cents),
                    func.count(),
                )
                .where(LedgerItem.run_id == run.id, in_xero)
                .group_by(LedgerItem.document_type, LedgerItem.currency)
            ):
                result.documents += count
                entry = totals[str(currency)]
                if kind == DocumentKind.INVOICE:
                    entry.sales_gross += from_cents(gross)
                    entry.tax += from_cents(tax)
                else:
                    entry.refunds_gross += from_cents(gross)
                    entry.tax -= from_cents(tax)
            result.totals = dict(totals)
            result.failed = (
                session.scalar(
                    select(func.count())
                    .select_from(LedgerItem)
                    .where(LedgerItem.run_id == run.id, LedgerItem.status != LedgerStatus.POSTED)
                )
                or 0
            )
            result.skipped = dict(
                Counter(
                    {
                        kind: count
                        for kind, count in session.execute(
                            select(AmazonTransaction.transaction_type, func.count())
                            .where(
                                AmazonTransaction.run_id == run.id,
                                AmazonTransaction.document_key.is_(None),
                            )
                            .group_by(AmazonTransaction.transaction_type)
                        )
                    }
                )
            )
            # Rates are only known from the documents themselves: kept across invocations.
            rates: dict[str, list[str]] = dict(run.summary.get("country_rates", {}))
            for code, seen in counters.country_rates.items():
                rates[code] = sorted(set(rates.get(code, [])) | seen, key=Decimal)
            run.summary = {**run.summary, "country_rates": rates}
            countries: dict[str, dict[str, Any]] = {}
            for country, kind, currency, gross, tax, count in session.execute(
                select(
                    LedgerItem.country,
                    LedgerItem.document_type,
                    LedgerItem.currency,
                    func.sum(LedgerItem.gross_cents),
                    func.sum(LedgerItem.tax_cents),
                    func.count(),
                )
                .where(LedgerItem.run_id == run.id, in_xero)
                .group_by(LedgerItem.country, LedgerItem.document_type, LedgerItem.currency)
            ):
                code = country or "??"
                figures = countries.setdefault(
                    code,
                    {"documents": 0, "sales_gross": {}, "refunds_gross": {}, "tax": {},
                     "rates": rates.get(code, [])},
                )  # fmt: skip
                figures["documents"] += count
                side = "sales_gross" if kind == DocumentKind.INVOICE else "refunds_gross"
                signed_tax = from_cents(tax) if kind == DocumentKind.INVOICE else -from_cents(tax)
                figures[side][currency] = str(from_cents(gross))
                figures["tax"][currency] = str(
                    Decimal(figures["tax"].get(currency, "0")) + signed_tax
                )
        result.countries = dict(sorted(countries.items(), key=lambda item: -item[1]["documents"]))
        return result


def _contact_row(integration: Integration, key: str, **values: Any) -> dict[str, Any]:
    """A xero_contacts row for a bulk insert: a contact to make unless `values` say more."""
    row: dict[str, Any] = {
        "integration_id": integration.id,
        "contact_key": key,
        "spec": {},
        "fingerprint": "",
        "name_attempt": 0,
        "status": LedgerStatus.PENDING,
        "updated_at": datetime.now(UTC),
    }
    return row | values


def _posted(item_id: int, xero_id: str | None) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": LedgerStatus.POSTED,
        "xero_id": xero_id,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
    }


def _figures(doc: Document) -> dict[str, Any]:
    """What the ledger keeps of a document for the summary and the error posts."""
    return {
        "document_number": doc.number,
        "gross_cents": cents(doc.gross),
        "tax_cents": cents(doc.tax),
        "country": doc.country,
        "currency": doc.currency,
    }


def _item_row(integration: Integration, run: SyncRun, **values: Any) -> dict[str, Any]:
    """A ledger_items row for a bulk insert: every row of one insert has the same columns."""
    row: dict[str, Any] = {
        "integration_id": integration.id,
        "run_id": run.id,
        "amazon_order_id": None,
        "document_type": None,
        "document_number": None,
        "contact_key": None,
        "currency": None,
        "country": None,
        "gross_cents": 0,
        "tax_cents": 0,
        "status": LedgerStatus.PENDING,
        "xero_id": None,
        "allocation_status": None,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
        "attempts": 0,
        "updated_at": datetime.now(UTC),
    }
    unknown = set(values) - set(row) - {"source_key", "transaction_type"}
    if unknown:
        raise ValueError(f"not ledger_items columns: {sorted(unknown)}")
    return row | values


def _count_country(counters: _Counters, doc: Document) -> None:
    rates = counters.country_rates.setdefault(doc.country or "??", set())
    rates.update(f"{key.rate.normalize():f}" for key in tax_keys(doc))


def _already_allocated(xero: XeroClient, credit_note: LedgerItem, invoice_ids: set[str]) -> bool:
    """Whether Xero shows the credit note allocated to one of these invoices."""
    if not invoice_ids:
        return False
    body = xero.request("GET", f"CreditNotes/{credit_note.xero_id}")
    return any(
        allocation.get("Invoice", {}).get("InvoiceID") in invoice_ids
        for element in body.get("CreditNotes", [])
        for allocation in element.get("Allocations") or []
    )


def _idempotency_key(integration: Integration, endpoint: str, material: str) -> str:
    digest = hashlib.sha256(f"{integration.id}:{endpoint}:{material}".encode()).hexdigest()
    return f"axb-{digest[:40]}"


def _fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
