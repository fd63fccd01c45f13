"""The monthly schedule: on SYNC_DAY_OF_MONTH at SYNC_HOUR_UTC, sync last month everywhere.

`run_due` is idempotent: it syncs every period that is due and not done, oldest first, so the
same function is the monthly job, the catch-up at start, the retry of a report that was not
ready, and the backfill of a new integration from its start date. Organisations are synced side
by side (a thread each, up to SYNC_WORKERS), the integrations of one organisation in turn.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select

from bot.container import Container
from bot.db import CONCURRENT_RUNS
from services.errors import ServiceError
from services.models import Integration, RunStatus, SyncRun
from services.periods import period_bounds, period_of, periods_between
from services.results import RunResult

log = logging.getLogger(__name__)

RETRY_EVERY = timedelta(hours=3)
# Organisations synced at once. Their runs mostly wait on Xero's per-organisation minute
# limit and on Amazon, so many more than cores proceed side by side (bench_organisations.py:
# 20 firms' clients of 1,000 orders); the database pool is sized for them.
SYNC_WORKERS = CONCURRENT_RUNS
MISFIRE_GRACE = timedelta(hours=12)
RESUME_BUSY_AFTER = timedelta(minutes=1)
RESUMES_LOOKED_UP_EVERY = timedelta(minutes=5)


class SyncScheduler:
    def __init__(
        self, container: Container, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._container = container
        self._clock = clock
        self._scheduler: BackgroundScheduler | None = None
        self._busy: set[str] = set()  # organisations a pass is syncing
        self._busy_lock = threading.Lock()
        self._warning = threading.Lock()

    def due_periods(self, integration: Integration) -> list[str]:
        """Periods whose scheduled sync time has passed and that are not done, oldest first."""
        settings, claims = self._container.settings, self._container.claims
        now = self._clock()
        last = period_of(now.date().replace(day=1) - timedelta(days=1))
        scheduled = datetime(
            now.year, now.month, settings.sync_day_of_month, settings.sync_hour_utc, tzinfo=UTC
        )
        if now < scheduled:
            # Last month is not due before this month's sync day.
            last = period_of(period_bounds(last)[0].date() - timedelta(days=1))
        first = period_of(integration.start_date)
        if first > last:
            return []
        with self._container.sessions() as session:
            runs = {
                run.period: run
                for run in session.scalars(
                    select(SyncRun).where(SyncRun.integration_id == integration.id)
                )
            }
        due = []
        for period in periods_between(first, last):
            run = runs.get(period)
            if run is None:
                due.append(period)
            elif run.status in (RunStatus.WAITING, RunStatus.FAILED):
                if run.next_attempt_at is not None and run.next_attempt_at <= now:
                    due.append(period)
            elif run.status == RunStatus.RUNNING and not claims.is_held(integration.id, period):
                due.append(period)  # its process died; resume it
        return due

    def run_due(self) -> list[RunResult]:
        """Passes may overlap (the catch-up, a resume, the monthly job): an organisation a pass
        is syncing is left to it by the others, whose other organisations go on."""
        if self._warning.acquire(blocking=False):
            try:
                self._warn_of_lapsing_authorizations()
            finally:
                self._warning.release()
        organisations: dict[str, list[Integration]] = defaultdict(list)
        for integration in self._container.integrations.list_active():
            organisation = integration.xero_tenant_id or f"integration {integration.id}"
            organisations[organisation].append(integration)
        with self._busy_lock:
            busy = organisations.keys() & self._busy
            mine = {org: group for org, group in organisations.items() if org not in busy}
            self._busy |= mine.keys()
        results: list[RunResult] = []
        try:
            if mine:
                # Each organisation's integrations one after another (Xero's limits are the
                # organisation's), the organisations side by side: one's backfill, or its
                # wait for Xero's minute, never holds another's month.
                with ThreadPoolExecutor(
                    min(SYNC_WORKERS, len(mine)), thread_name_prefix="sync"
                ) as pool:
                    synced = [pool.submit(self._sync_in_turn, group) for group in mine.values()]
                    for future in synced:
                        results += future.result()
        finally:
            with self._busy_lock:
                self._busy -= mine.keys()
            self._resume_on_time(soon=bool(busy))
        return results

    def _warn_of_lapsing_authorizations(self) -> None:
        integrations = self._container.integrations
        for lapsed in integrations.expire_lapsed_authorizations():
            log.warning("Amazon authorization of %s lapsed; refresh it", lapsed.name)
        for expiring in integrations.due_expiry_warnings():
            expires_at = integrations.authorization_expires_at(expiring)
            assert expires_at is not None
            self._container.notifier.authorization_expiring(expiring, expires_at=expires_at)
            integrations.record_expiry_warning(expiring.id)

    def _sync_in_turn(self, integrations: list[Integration]) -> list[RunResult]:
        results: list[RunResult] = []
        for integration in integrations:
            for period in self.due_periods(integration):
                try:
                    result = self._container.sync.sync_period(integration, period)
                except ServiceError as error:
                    log.warning("sync of %s %s not started: %s", integration.name, period, error)
                    break
                except Exception:
                    # A defect, or the database gone: the organisation's next integrations,
                    # and the other organisations, go on; the run resumes at the next pass.
                    log.exception("sync of %s %s broke off", integration.name, period)
                    break
                log.info("sync %s %s: %s", integration.name, period, result.message)
                results.append(result)
                if result.status in (RunStatus.WAITING, RunStatus.FAILED):
                    break  # keep the months in order: the later ones wait for this one
        return results

    def next_resume(self) -> datetime | None:
        """The earliest time a waiting or failed run said it would go on, if still ahead."""
        with self._container.sessions() as session:
            return session.scalar(
                select(func.min(SyncRun.next_attempt_at)).where(
                    SyncRun.status.in_([RunStatus.WAITING, RunStatus.FAILED]),
                    SyncRun.next_attempt_at > self._clock(),
                )
            )

    @property
    def resume_planned_at(self) -> datetime | None:
        """When the running scheduler looks at waiting runs next (None: no look planned)."""
        job = self._scheduler.get_job("resume") if self._scheduler is not None else None
        return getattr(job, "next_run_time", None)  # a job not yet planned has none

    def _resume_on_time(self, *, soon: bool) -> None:
        """A run that waits (for Xero's daily allowance, for Amazon's report) resumes at the
        time it said, not at the next catch-up; `soon`: this pass left organisations to
        another, whose due runs are looked at again in a minute."""
        if self._scheduler is None:
            return
        earliest = self.next_resume()
        if soon:
            again = self._clock() + RESUME_BUSY_AFTER
            earliest = again if earliest is None else min(earliest, again)
        planned = self.resume_planned_at
        if planned is not None and earliest is not None and planned <= earliest:
            return  # an earlier look is planned already
        if earliest is not None:
            self._scheduler.add_job(
                self.run_due,
                DateTrigger(run_date=earliest),
                id="resume",
                replace_existing=True,
                misfire_grace_time=int(MISFIRE_GRACE.total_seconds()),
            )

    def start(self) -> None:
        settings = self._container.settings
        scheduler = BackgroundScheduler(timezone=UTC)
        options = {
            "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            "coalesce": True,
            "max_instances": 1,
        }
        scheduler.add_job(
            self.run_due,
            CronTrigger(day=settings.sync_day_of_month, hour=settings.sync_hour_utc, minute=0),
            id="monthly-sync",
            **options,
        )
        # Catch-up now, then retries of reports that were not ready or runs that failed.
        scheduler.add_job(
            self.run_due,
            IntervalTrigger(seconds=int(RETRY_EVERY.total_seconds())),
            id="catch-up",
            next_run_time=self._clock(),
            **options,
        )
        # A run paused by another process (the CLI) is resumed at its time too: its time is
        # looked up every few minutes, a query, not a pass.
        scheduler.add_job(
            self._resume_on_time,
            IntervalTrigger(seconds=int(RESUMES_LOOKED_UP_EVERY.total_seconds())),
            kwargs={"soon": False},
            id="plan-resumes",
            **options,
        )
        self._scheduler = scheduler  # before the catch-up's first run, which schedules resumes
        scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
