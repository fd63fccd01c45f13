"""Many organisations at once: a bookkeeping firm's month, against Xero's real minute limit.

N client organisations, each with one integration of 1,000 orders a month, are synced by the
scheduler's `run_due` against the sandbox Xero enforcing 60 calls a minute per organisation
(the client keeps to it too: nothing is answered 429). The same month of one organisation alone
is the yardstick: side by side, N organisations should take about as long as one. On SQLite
(a file in a temporary directory) and on PostgreSQL (TEST_DATABASE_URL, when set: its public
schema is dropped and made afresh, as the tests do: point it at a throwaway database).

    .venv/bin/python bench/bench_organisations.py [organisations] [orders]
                                                  (default 20 organisations, 1,000 orders)
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bot.config import load_settings
from bot.container import Container
from bot.scheduler import SyncScheduler
from bot.web import LateBoundApp, create_web_app
from sandbox.browser import submit_consent
from sandbox.server import LoopbackServer
from sandbox.world import SandboxWorld
from sandbox.xero import SandboxOrg
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.models import RunStatus

EU = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3")  # DE, UK, PL
OCTOBER = date(2026, 10, 1)
SYNC_DAY = datetime(2026, 11, 5, tzinfo=UTC)  # October is due, nothing before it


def _fresh_postgres(url: str) -> str:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return url


def month_of(organisations: int, orders: int, database_url: str) -> tuple[float, int, int]:
    """Seconds `run_due` takes for `organisations` clients' October; Xero calls; 429s."""
    with SandboxWorld() as world:
        world.amazon.orders_per_report = orders
        world.amazon.report_processing_polls = 0
        world.xero.minute_limit = 60  # Xero's own
        orgs = [world.xero.org()]
        orgs += [SandboxOrg(name=f"Client {n} Ltd") for n in range(1, organisations)]
        for org in orgs:
            org.currencies = (*orgs[0].currencies, "PLN", "SEK")
        world.xero.tenants[1:] = orgs[1:]
        late = LateBoundApp()
        with LoopbackServer(late) as web:
            env = world.env() | {
                "DATABASE_URL": database_url,
                "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "PUBLIC_BASE_URL": web.url,
            }
            container = Container(load_settings(env, dotenv=Path("/nonexistent")))
            container.migrate()
            late.app = create_web_app(container)
            browser = requests.Session()
            for number, org in enumerate(orgs):
                # Each client is a seller of its own, with its own SP-API usage plans.
                if number:
                    world.amazon.signed_in = world.amazon.add_seller(f"Client {number}", EU)
                integration = container.integrations.create(
                    IntegrationSpec(f"Client {number}", Region.EU, EU, OCTOBER), actor="bench"
                )
                connect = container.connect
                submit_consent(browser, connect.amazon_consent_url(integration, actor="bench"))
                url = connect.xero_consent_url(integration, actor="bench")
                submit_consent(browser, url, choose={"tenant": org.tenant_id})
            started = time.perf_counter()
            results = SyncScheduler(container, clock=lambda: SYNC_DAY).run_due()
            seconds = time.perf_counter() - started
            container.engine.dispose()
        failed = [r for r in results if r.status not in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)]
        if len(results) != organisations or failed:
            raise SystemExit(f"not every month ran: {[r.to_json() for r in failed]}")
        calls = [call for call in world.xero.calls if call.path.startswith("/api.xro/")]
        return seconds, len(calls), sum(1 for call in calls if call.status == 429)


def main(arguments: list[str]) -> None:
    organisations = int(arguments[0]) if arguments else 20
    orders = int(arguments[1]) if len(arguments) > 1 else 1000
    print(
        f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}; {organisations} organisations x {orders} orders, "
        "Xero at 60 calls a minute per organisation"
    )
    with tempfile.TemporaryDirectory() as directory:
        databases = {"sqlite": lambda n: f"sqlite:///{directory}/bench-{n}.sqlite3"}
        postgres = os.environ.get("TEST_DATABASE_URL")
        if postgres:
            databases["postgresql"] = lambda _n: _fresh_postgres(postgres)
            shown = make_url(postgres).render_as_string(hide_password=True)
            print(f"postgresql: {shown}")
        for name, url in databases.items():
            alone, alone_calls, alone_429 = month_of(1, orders, url(1))
            together, calls, refused = month_of(organisations, orders, url(organisations))
            print(
                f"{name:>10}: 1 organisation {alone:6.1f} s ({alone_calls} calls, "
                f"{alone_429} refused); {organisations} organisations {together:6.1f} s "
                f"({calls} calls, {refused} refused): {together / alone:.2f}x"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
