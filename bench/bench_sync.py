"""The monthly sync's own work on SQLite and PostgreSQL side by side, and its Xero budget.

1. Rows: a VAT transactions report of N rows is parsed, recorded in the ledger, mapped to Xero
   documents and marked posted, against a Xero stand-in that accepts everything at once (so
   the figure is our work, not the network). Each size runs on each database in a fresh
   process; peak RSS is that process's. The report files are generated first and not timed.
   SQLite is a file in a temporary directory. PostgreSQL is TEST_DATABASE_URL (left out when
   unset); the database is created when missing and its public schema is dropped and made
   afresh before each size, as the tests do: point it at a throwaway database.
   Where the time goes: the report parsed alone (nothing recorded, a process of its own), and
   each run cut at its progress reports into ingest (until the last chunk is recorded), before
   posting (contacts, tax rates and the first batch), posting (the other batches) and finish
   (allocations, the summary), each with its SQL statements, commits, rollbacks and pool
   pings per 1,000 rows and the seconds spent waiting for them.
2. Calls: 1,000 orders synced against the sandbox Xero; the calls made beside the bound
   ceil(documents/50) + ceil(new contacts/50) + allocations + a constant, and beside what
   posting one call per document would need.

    .venv/bin/python bench/bench_sync.py [rows ...] [--calls-only] [--profile DIR]
                                        (default rows: 10000 100000 1000000)

--profile DIR records each run with pyinstrument (DIR/sync-<rows>-<database>.pyisession, read
it with `pyinstrument --load FILE`, and a .txt call tree beside it) and prints the SQL of each
run by the service function that issued it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from queue import Empty
from types import CodeType, FrameType
from typing import Any, cast

from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

import services
from bot.config import load_settings
from bot.container import Container
from sandbox.amazon_reports import write_vat_report
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.report_files import read_report_file
from services.reports import parse_report
from services.sync import SyncEngine
from services.transactions import RowError
from services.xero import (
    DocumentResult,
    NewTaxRate,
    Organisation,
    XeroClient,
    XeroContactRef,
    XeroDocument,
    XeroTaxRate,
)

EU = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")
# What the database is asked, by kind: each is one round trip, or more (an executemany).
SQL_KINDS = ("statements", "commits", "rollbacks", "pings")
SERVICES = Path(services.__file__).parent


@dataclass
class AcceptingXero:
    """Answers like Xero when everything is valid, instantly; counts what it is asked."""

    api_calls: int = 0
    day_limit_remaining: int | None = None
    _ids: int = 0
    rates_made: int = 0

    def _call(self) -> None:
        self.api_calls += 1

    def tax_rates(self) -> list[XeroTaxRate]:
        self._call()
        return []

    def organisation(self) -> Organisation:
        self._call()
        return Organisation(name="Bench", country_code="GB", base_currency="GBP")

    def create_tax_rates(self, rates: Sequence[NewTaxRate], **_: Any) -> list[XeroTaxRate]:
        self._call()
        self.rates_made += len(rates)
        return [
            XeroTaxRate(
                tax_type=f"TAX{index:03d}",
                name=rate.name,
                report_tax_type=rate.report_tax_type,
                effective_rate=rate.rate,
                active=True,
                can_apply_to_revenue=True,
            )
            for index, rate in enumerate(rates, start=self.rates_made - len(rates) + 1)
        ]

    def create_documents(
        self, endpoint: str, documents: list[dict[str, Any]], **_: Any
    ) -> list[DocumentResult]:
        self._call()
        results = []
        for document in documents:
            self._ids += 1
            results.append(DocumentResult(True, f"id-{self._ids}", None, document, []))
        return results

    def find_invoices_by_number(self, numbers: Sequence[str]) -> list[XeroDocument]:
        self._call()
        return []

    def find_credit_notes_by_number(self, numbers: Sequence[str]) -> list[XeroDocument]:
        self._call()
        return []

    def find_contacts_by_name(self, names: Sequence[str]) -> list[XeroContactRef]:
        self._call()
        return []


@dataclass
class SqlTally:
    """What the database was asked in this process: counts and seconds waited, by kind, and
    by the service function that asked when `by_caller` is set (a stack walk per statement,
    so only when profiling)."""

    by_caller: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    caller_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    caller_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    checkouts: int = 0

    def add(self, kind: str, seconds: float, frame: FrameType | None = None) -> None:
        self.counts[kind] += 1
        self.seconds[kind] += seconds
        if self.by_caller and frame is not None:
            caller = _service_caller(frame)
            self.caller_counts[caller, kind] += 1
            self.caller_seconds[caller] += seconds

    def mark(self) -> Mark:
        return Mark(time.perf_counter(), Counter(self.counts), dict(self.seconds), self.checkouts)

    def watch(self, engine: Engine) -> None:
        """Count every statement, commit, rollback (a connection's reset when it goes back to
        the pool) and pre-ping (pool_pre_ping, on each check-out) of `engine`."""
        started: list[float] = []

        @event.listens_for(engine, "before_cursor_execute")
        def _before(*_: Any) -> None:
            started.append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _after(*_: Any) -> None:
            self.add("statements", time.perf_counter() - started.pop(), sys._getframe(1))

        @event.listens_for(engine, "checkout")
        def _checkout(*_: Any) -> None:
            self.checkouts += 1

        dialect = engine.dialect
        for method, kind in (("do_commit", "commits"), ("do_rollback", "rollbacks")) + (
            (("do_ping", "pings"),) if engine.pool._pre_ping else ()
        ):
            setattr(dialect, method, self._timed(getattr(dialect, method), kind))

    def _timed(self, call: Any, kind: str) -> Any:
        def timed(dbapi_connection: Any) -> Any:
            began = time.perf_counter()
            try:
                return call(dbapi_connection)
            finally:
                self.add(kind, time.perf_counter() - began, sys._getframe(1))

        return timed


def _service_caller(frame: FrameType | None) -> str:
    """The innermost function in services/ and the services function that called it, as
    `module.function < module.function` (ledger.insert_ignore < sync._ingest)."""
    found: list[str] = []
    while frame is not None and len(found) < 2:
        name = _service_function(frame.f_code)
        if name is not None and name not in found:
            found.append(name)
        frame = frame.f_back
    return " < ".join(found) or "(outside services)"


@cache
def _service_function(code: CodeType) -> str | None:
    """`module.function` for code in services/, else None (cached: asked once a frame, for
    every statement)."""
    path = Path(code.co_filename)
    return f"{path.stem}.{code.co_name}" if path.parent == SERVICES else None


@dataclass(frozen=True)
class Mark:
    """The tally at one instant of a run."""

    at: float
    counts: Counter[str]
    seconds: dict[str, float]
    checkouts: int

    def since(self, earlier: Mark, phase: str) -> dict[str, Any]:
        return {
            "phase": phase,
            "seconds": self.at - earlier.at,
            "counts": self.counts - earlier.counts,
            "waited": {
                kind: self.seconds.get(kind, 0.0) - earlier.seconds.get(kind, 0.0)
                for kind in SQL_KINDS
            },
            "checkouts": self.checkouts - earlier.checkouts,
        }


@dataclass
class Phases:
    """The run cut at its progress reports: after the last chunk read (ingest), after the
    first batch posted (before posting: contacts, tax rates, that batch), after the last one
    (posting), and at the end (finish: allocations, the summary)."""

    tally: SqlTally
    marks: dict[str, Mark] = field(default_factory=dict)

    def __call__(self, phase: str, _done: int, _total: int) -> None:
        if phase == "reading":
            self.marks["ingest"] = self.tally.mark()
        elif phase == "posting":
            self.marks.setdefault("before posting", self.tally.mark())
            self.marks["posting"] = self.tally.mark()

    def split(self, started: Mark, ended: Mark) -> list[dict[str, Any]]:
        cuts = [*self.marks.items(), ("finish", ended)]
        return [
            end.since(start, phase)
            for (phase, end), start in zip(cuts, [started, *self.marks.values()], strict=True)
        ]


def _parse_only(path: Path, queue: multiprocessing.Queue[Any]) -> None:
    """The report read and parsed to transactions, nothing recorded: the floor of the sync."""
    started = time.perf_counter()
    kinds = Counter(
        "unreadable" if isinstance(item, RowError) else "transactions"
        for item in parse_report(read_report_file(path), file_name=path.name)
    )
    queue.put((time.perf_counter() - started, kinds["transactions"], kinds["unreadable"]))


def _stage(
    path: Path,
    database_url: str,
    profile: Path | None,
    queue: multiprocessing.Queue[Any],
) -> None:
    env = {"DATABASE_URL": database_url, "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    container = Container(load_settings(env, dotenv=Path("/nonexistent")))
    container.migrate()
    integration = container.integrations.create_connected(
        IntegrationSpec("Bench", Region.EU, EU, date(2026, 1, 1)),
        actor="bench",
        selling_partner_id="A1BENCH",
        amazon_refresh_token="Atzr|bench",
        xero_tenant_id="tenant",
        xero_refresh_token="bench",
    )
    xero = AcceptingXero()
    engine = SyncEngine(
        container.sessions,
        container.integrations,
        spapi=container.spapi,
        # A stand-in with the client's surface that the engine uses, not a subclass.
        xero=lambda _: cast(XeroClient, xero),
    )
    tally = SqlTally(by_caller=profile is not None)
    tally.watch(container.engine)
    phases = Phases(tally)
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler  # a dev extra, needed only here

        profiler = Profiler()
        profiler.start()
    started = tally.mark()
    result = engine.import_report(integration, path, progress=phases)
    ended = tally.mark()
    if profiler is not None and profile is not None:
        profiler.stop()
        name = f"sync-{path.stem.removeprefix('vat-')}-{container.engine.dialect.name}"
        session = profiler.last_session
        assert session is not None
        session.save(str(profile / f"{name}.pyisession"))
        (profile / f"{name}.txt").write_text(profiler.output_text(unicode=True))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    posted = result.invoices_created + result.credit_notes_created
    callers = [
        (caller, [tally.caller_counts[caller, kind] for kind in SQL_KINDS], seconds)
        for caller, seconds in sorted(tally.caller_seconds.items(), key=lambda item: -item[1])
    ]
    queue.put(
        {
            "seconds": ended.at - started.at,
            "peak": peak,
            "posted": posted,
            "failed": result.failed,
            "calls": xero.api_calls,
            "phases": phases.split(started, ended),
            "callers": callers,
        }
    )


def _databases(directory: Path) -> dict[str, Any]:
    """The databases to run on: a function giving a fresh, empty one for each size."""
    databases: dict[str, Any] = {
        "sqlite": lambda rows: f"sqlite:///{directory / f'bench-{rows}.sqlite3'}"
    }
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        databases["postgresql"] = lambda _rows: _empty_postgres(url)
    return databases


def _empty_postgres(url: str) -> str:
    """The database at `url` with an empty public schema, created first if missing."""
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            exists = connection.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": target.database}
            ).scalar()
            if not exists:
                connection.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    finally:
        server.dispose()
    engine = create_engine(target)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()
    return url


def _in_child(target: Any, *args: Any) -> Any:
    """Run `target(*args, queue)` in a fresh interpreter, so that its peak memory is its own."""
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    child = spawn.Process(target=target, args=(*args, queue))
    child.start()
    while True:
        try:
            answer = queue.get(timeout=1)
        except Empty:
            if child.is_alive():
                continue
            raise RuntimeError(f"{target.__name__} died (exit code {child.exitcode})") from None
        child.join()
        return answer


def bench_rows(sizes: list[int], profile: Path | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        databases = _databases(Path(directory))
        if "postgresql" not in databases:
            print("PostgreSQL: left out (TEST_DATABASE_URL is not set)")
        runs = []
        for rows in sizes:
            report = write_vat_report(
                Path(directory) / f"vat-{rows}.txt", rows=rows, marketplace_ids=list(EU)
            )
            parse_seconds, transactions, unreadable = _in_child(_parse_only, report)
            assert unreadable == 0, f"{unreadable} rows unreadable"
            for database, fresh in databases.items():
                run = _in_child(_stage, report, fresh(rows), profile)
                assert run["failed"] == 0, f"{run['failed']} documents failed"
                runs.append((transactions, parse_seconds, database, run))
        if url := os.environ.get("TEST_DATABASE_URL"):
            _empty_postgres(url)  # the last size's rows are not left behind
    print(
        f"{'rows':>9} {'database':<10} {'documents':>10} {'seconds':>8} {'rows/s':>8} "
        f"{'peak RSS MB':>12} {'parse alone':>12}"
    )
    for rows, parse_seconds, database, run in runs:
        print(
            f"{rows:>9} {database:<10} {run['posted']:>10} {run['seconds']:>8.1f} "
            f"{rows / run['seconds']:>8.0f} {run['peak']:>12.1f} {parse_seconds:>12.1f}"
        )
    print()
    # A rollback on a connection with no transaction open is no round trip (the pool's reset
    # after a session's own rollback); its seconds say so.
    print("where the time goes: per 1,000 rows the driver calls, and the seconds waited for them")
    print(
        f"{'rows':>9} {'database':<10} {'phase':<15} {'seconds':>8} "
        + " ".join(f"{kind:>10}" for kind in SQL_KINDS)
        + f" {'checkouts':>10} | "
        + " ".join(f"{kind[:-1] + ' s':>11}" for kind in SQL_KINDS)
    )
    for rows, _parse, database, run in runs:
        for phase in run["phases"]:
            per_thousand = " ".join(
                f"{phase['counts'][kind] * 1000 / rows:>10.1f}" for kind in SQL_KINDS
            )
            waited = " ".join(f"{phase['waited'][kind]:>11.2f}" for kind in SQL_KINDS)
            print(
                f"{rows:>9} {database:<10} {phase['phase']:<15} {phase['seconds']:>8.2f} "
                f"{per_thousand} {phase['checkouts'] * 1000 / rows:>10.1f} | {waited}"
            )
    if profile is not None:
        print()
        print(f"profiles in {profile}; SQL by the service function that issued it:")
        for rows, _parse, database, run in runs:
            print(f"  {rows} rows, {database}:")
            print(
                "    "
                + " ".join(f"{kind:>10}" for kind in SQL_KINDS)
                + f" {'SQL wait s':>10}  function < its caller"
            )
            for caller, counts, seconds in run["callers"][:25]:
                print(
                    "    "
                    + " ".join(f"{count:>10}" for count in counts)
                    + f" {seconds:>10.2f}  {caller}"
                )


def bench_calls(orders: int = 1000) -> None:

    from bot.web import LateBoundApp, create_web_app
    from sandbox.browser import consent_to_both
    from sandbox.server import LoopbackServer
    from sandbox.world import SandboxWorld

    with tempfile.TemporaryDirectory() as directory, SandboxWorld() as world:
        world.amazon.orders_per_report = orders
        world.amazon.report_processing_polls = 0
        world.xero.minute_limit = 100_000
        org = world.xero.org()
        org.currencies = (*org.currencies, "PLN", "SEK")
        late = LateBoundApp()
        with LoopbackServer(late) as web:
            env = world.env() | {
                "DATABASE_URL": f"sqlite:///{directory}/calls.sqlite3",
                "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "PUBLIC_BASE_URL": web.url,
            }
            container = Container(load_settings(env, dotenv=Path("/nonexistent")))
            container.migrate()
            late.app = create_web_app(container)
            integration = container.integrations.create(
                IntegrationSpec("Calls", Region.EU, EU[:3], date(2026, 1, 1)), actor="bench"
            )
            consent_to_both(container.connect, integration, actor="b")
            result = container.sync.sync_period(container.integrations.get("Calls"), "2026-10")
            container.engine.dispose()
            breakdown = Counter(
                f"{call.method} {call.path.split('?')[0].removeprefix('/api.xro/2.0/')}"
                for call in world.xero.api_calls()
            )
    documents = result.invoices_created + result.credit_notes_created
    batches = math.ceil(result.invoices_created / 50) + math.ceil(result.credit_notes_created / 50)
    # Per batch: the documents, and one look-up of their numbers (a number Xero has is never sent).
    bound = (
        2 * batches
        + math.ceil((result.contacts_created + result.contacts_updated) / 50)
        + result.allocations_made
    )
    one_by_one = documents + result.contacts_created + result.allocations_made
    print(
        f"{orders} orders -> {documents} documents, {result.contacts_created} contacts, "
        f"{result.allocations_made} allocations (SQLite)"
    )
    print(f"  Xero calls made:                 {result.xero_api_calls}")
    print(f"  bound without the constant:      {bound} (+ tax rates, organisation, lookups)")
    print(f"  one call per document/contact:   {one_by_one}")
    print("  by endpoint (allocations grouped):")
    grouped: Counter[str] = Counter()
    for endpoint, count in breakdown.items():
        grouped["PUT CreditNotes/{id}/Allocations" if "/Allocations" in endpoint else endpoint] += (
            count
        )
    for endpoint, count in grouped.most_common():
        print(f"    {count:>5}  {endpoint}")


def _postgres_version() -> str:
    """The server and whether autovacuum runs: without it the planner knows nothing of the
    rows a run has just written, and its plans for the posting loop are other ones."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return ""
    engine = create_engine(make_url(url).set(database="postgres"))
    try:
        with engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
            autovacuum = connection.exec_driver_sql("SHOW autovacuum").scalar()
    finally:
        engine.dispose()
    shown = make_url(url).render_as_string(hide_password=True)
    return f", PostgreSQL {version} (autovacuum {autovacuum}, {shown})"


def main(arguments: list[str]) -> None:
    import sqlite3

    print(
        f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
        f"{_postgres_version()}; load average {os.getloadavg()[0]:.1f} at the start"
    )
    profile = None
    if "--profile" in arguments:
        at = arguments.index("--profile")
        profile = Path(arguments[at + 1]).resolve()
        profile.mkdir(parents=True, exist_ok=True)
        arguments = arguments[:at] + arguments[at + 2 :]
    if "--calls-only" not in arguments:
        sizes = [int(arg) for arg in arguments if arg.isdigit()]
        bench_rows(sizes or [10_000, 100_000, 1_000_000], profile)
    bench_calls()


if __name__ == "__main__":
    main(sys.argv[1:])
