"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
the sandbox world, and a bot container wired to both."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine

from bot.config import Settings, load_settings
from bot.container import Container
from bot.slack_app import create_slack_app
from bot.web import LateBoundApp, create_web_app
from sandbox.browser import consent_to_both
from sandbox.server import LoopbackServer
from sandbox.slack_driver import SlackDriver
from sandbox.world import SandboxWorld
from sandbox.xero_books import bank_account
from services import xero as xero_module
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.models import Integration

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NO_DOTENV = Path("/nonexistent/.env")


def _postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail("REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")
        pytest.skip("TEST_DATABASE_URL is not set")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            # Each test starts from an empty schema, as a fresh deployment would.
            connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    except Exception as error:
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at TEST_DATABASE_URL is unusable: {error}")
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL is unusable: {error}")
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    return _postgres_url()


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    with SandboxWorld() as sandbox_world:
        yield sandbox_world


@pytest.fixture
def web_app() -> Iterator[tuple[LateBoundApp, LoopbackServer]]:
    app = LateBoundApp()
    with LoopbackServer(app) as server:
        yield app, server


def make_settings(world: SandboxWorld, database_url: str, **overrides: str) -> Settings:
    env = world.env() | {
        "DATABASE_URL": database_url,
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    return load_settings(env | overrides, dotenv=NO_DOTENV)


@pytest.fixture
def container(
    world: SandboxWorld,
    database_url: str,
    web_app: tuple[LateBoundApp, LoopbackServer],
) -> Iterator[Container]:
    """The bot wired to the sandbox, its OAuth callbacks served on a loopback port."""
    late_app, server = web_app
    built = Container(make_settings(world, database_url, PUBLIC_BASE_URL=server.url))
    built.migrate()
    listeners = ThreadPoolExecutor(max_workers=8, thread_name_prefix="slack-listener")
    late_app.app = create_web_app(built, create_slack_app(built, listener_executor=listeners))
    yield built
    # Listeners and their background work must finish before their database goes away.
    listeners.shutdown(wait=True)
    built.background.shutdown(wait=True)
    built.engine.dispose()


@pytest.fixture
def slack(container: Container, world: SandboxWorld) -> SlackDriver:
    """Slack's side of the conversation with the bot under test."""
    return SlackDriver(
        container.settings.public_base_url,
        container.settings.slack_signing_secret or "",
        world.slack,
        world.slack_server.url,
    )


EU = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3")  # DE, UK, PL
ORDERS = 60


@pytest.fixture(autouse=True)
def xero_minute_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Xero's minute limit has a test of its own (tests/test_xero_client.py): a month and its
    re-run, payouts included, take more than 60 calls, and waiting out a minute only slows."""
    monkeypatch.setattr(xero_module, "MINUTE_LIMIT", 100_000)


# The seller's own bank accounts by currency (a multi-currency bank, Wise say): code, currency.
PAYOUT_BANKS = (("091", "EUR"), ("092", "USD"), ("093", "PLN"), ("094", "SEK"))


def payout_banks(world: SandboxWorld) -> None:
    """A bank account for Amazon's payouts in each currency the organisation has enabled."""
    org = world.xero.org()
    codes = {account["Code"] for account in org.accounts}
    org.accounts += [
        bank_account(code, currency)
        for code, currency in PAYOUT_BANKS
        if currency in org.currencies and code not in codes
    ]


@pytest.fixture
def shop(container: Container, world: SandboxWorld) -> Integration:
    """An active EU integration connected through the sandbox consent pages."""
    world.amazon.orders_per_report = ORDERS
    # Polling with backoff is the Amazon client's own test; here reports are ready at once.
    world.amazon.report_processing_polls = 0
    world.xero.minute_limit = 100_000
    org = world.xero.org()
    org.currencies = (*org.currencies, "PLN", "SEK")
    payout_banks(world)
    integration = container.integrations.create(
        IntegrationSpec(
            name="Acme EU", region=Region.EU, marketplaces=EU, start_date=date(2026, 1, 1)
        ),
        actor="U0ADMIN",
    )
    consent_to_both(container.connect, integration, actor="U0ADMIN")
    return container.integrations.get("Acme EU")


SERVED_HEALTH_TOKEN = "served-bot-health-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def bot_process(env: dict[str, str], log: Path, *, cwd: Path = REPO) -> Iterator[tuple[str, int]]:
    """`python -m bot run` (its web process and its worker) with `env`, logging to `log`,
    under a permissive umask, once it answers /healthz: its URL and the web process's pid.
    Stopped with SIGTERM, as a service manager stops it."""
    url = f"http://127.0.0.1:{env['PORT']}"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env={k: v for k, v in os.environ.items() if k != "LOG_LEVEL"} | env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            umask=0o022,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                requests.get(f"{url}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the bot did not start"
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(60)


@pytest.fixture
def served_container(world: SandboxWorld, database_url: str, tmp_path: Path) -> Iterator[Container]:
    """The real `python -m bot run` (its web process and its worker) serving the sandbox,
    and the test's own view of the same database (a test module makes it its `container`)."""
    port = free_port()
    settings = make_settings(world, database_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    env = world.env() | {
        "DATABASE_URL": database_url,
        "TOKEN_ENCRYPTION_KEY": settings.token_encryption_key or "",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PORT": str(port),
        "HEALTH_TOKEN": SERVED_HEALTH_TOKEN,
    }
    with bot_process(env, tmp_path / "bot.log") as (url, _pid):
        # The worker's scheduler catches up once when it starts: with nothing to sync yet,
        # so that no run the tests do not start appears meanwhile.
        health = {"Authorization": f"Bearer {SERVED_HEALTH_TOKEN}"}
        deadline = time.monotonic() + 30
        while requests.get(f"{url}/healthz", headers=health, timeout=5).json()["worker"] != "ok":
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        time.sleep(1)
        built = Container(settings)
        yield built
        built.engine.dispose()
