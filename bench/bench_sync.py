"""The monthly sync's own work and its Xero budget.

1. Rows: a VAT transactions report of N rows is parsed, recorded in the ledger, mapped to Xero
   documents and marked posted, against a Xero stand-in that accepts everything at once (so
   the figure is our work, not the network). Each size runs in a fresh process; peak RSS is
   that process's. The report files are generated first and not timed.
2. Calls: 1,000 orders synced against the sandbox Xero; the calls made beside the bound
   ceil(documents/50) + ceil(new contacts/50) + allocations + a constant, and beside what
   posting one call per document would need.

    .venv/bin/python bench/bench_sync.py [rows ...] [--calls-only]
                                        (default rows: 10000 100000 1000000)
"""

from __future__ import annotations

import math
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bot.config import load_settings
from bot.container import Container
from sandbox.amazon_reports import generate_vat_report
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.sync import SyncEngine
from services.xero import DocumentResult

EU = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")
ROWS_PER_ORDER = 1.51  # what the generator makes, measured


@dataclass
class AcceptingXero:
    """Answers like Xero when everything is valid, instantly; counts what it is asked."""

    api_calls: int = 0
    day_limit_remaining: int | None = None
    _ids: int = 0
    created_rates: list[dict[str, Any]] = field(default_factory=list)

    def _call(self) -> None:
        self.api_calls += 1

    def tax_rates(self) -> list[dict[str, Any]]:
        self._call()
        return []

    def organisation(self) -> dict[str, Any]:
        self._call()
        return {"CountryCode": "GB"}

    def create_tax_rates(self, rates: Sequence[Any], **_: Any) -> list[dict[str, Any]]:
        self._call()
        return [
            {
                "Name": rate.name,
                "TaxType": f"TAX{index:03d}",
                "Status": "ACTIVE",
                "ReportTaxType": rate.report_tax_type,
                "EffectiveRate": rate.rate,
                "TaxComponents": [{"Name": "VAT", "Rate": rate.rate}],
            }
            for index, rate in enumerate(rates, start=len(self.created_rates))
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

    def find_invoices_by_number(self, numbers: Sequence[str]) -> list[dict[str, Any]]:
        self._call()
        return []

    def find_credit_notes_by_number(self, numbers: Sequence[str]) -> list[dict[str, Any]]:
        self._call()
        return []

    def find_contacts_by_name(self, names: Sequence[str]) -> list[dict[str, Any]]:
        self._call()
        return []


def _write_report(rows: int, directory: Path) -> Path:
    path = directory / f"vat-{rows}.txt"
    orders = math.ceil(rows / ROWS_PER_ORDER)
    with path.open("w") as handle:
        for line in generate_vat_report(
            period="2026-10", marketplace_ids=list(EU), seed=11, orders=orders
        ):
            handle.write(line + "\n")
    return path


def _stage(path: Path, database: Path, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
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
        container.sessions, container.integrations, spapi=container.spapi, xero=lambda _: xero
    )
    started = time.perf_counter()
    result = engine.import_report(integration, path)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    posted = result.invoices_created + result.credit_notes_created
    queue.put((seconds, peak, posted, result.failed, xero.api_calls))


def bench_rows(sizes: list[int]) -> None:
    print(f"{'rows':>9} {'documents':>10} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as directory:
        for rows in sizes:
            report = _write_report(rows, Path(directory))
            actual = sum(1 for _ in report.open()) - 1
            # A fresh interpreter per size, so that its peak memory is this size's alone.
            spawn = multiprocessing.get_context("spawn")
            queue = spawn.Queue()
            database = Path(directory) / f"bench-{rows}.sqlite3"
            child = spawn.Process(target=_stage, args=(report, database, queue))
            child.start()
            seconds, peak, posted, failed, _calls = queue.get()
            child.join()
            assert failed == 0, f"{failed} documents failed"
            print(
                f"{actual:>9} {posted:>10} {seconds:>8.1f} {actual / seconds:>8.0f} {peak:>12.1f}"
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
        f"{result.allocations_made} allocations"
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


def main(arguments: list[str]) -> None:
    print(
        f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite"
    )
    if "--calls-only" not in arguments:
        sizes = [int(arg) for arg in arguments if arg.isdigit()]
        bench_rows(sizes or [10_000, 100_000, 1_000_000])
    bench_calls()


if __name__ == "__main__":
    main(sys.argv[1:])
