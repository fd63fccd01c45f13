"""The HTTP edge of `python -m bot run` under hostile traffic, driven over loopback HTTP.

One real server process (waitress as deployed, its worker, the sandbox behind it) serves the
module; each test reads its log and its memory from outside, as an operator would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from bot.config import load_settings
from bot.container import Container
from bot.server import CHANNEL_TIMEOUT, MAX_BODY_BYTES
from handlers.blocks import ids
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.models import Integration, OAuthState
from tests.conftest import REPO, bot_process, free_port
from tests.test_slack_app import recording, texts

HEALTH_TOKEN = "edge-test-health-token"


@dataclass
class Bot:
    url: str
    port: int
    pid: int
    log: Path
    data: Path
    slack: SlackDriver
    env: dict[str, str]

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match.group(1))

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """`python -m bot run` in HTTP mode with its defaults (no BIND_ADDRESS), started under a
    permissive umask in a directory whose data/ does not exist yet."""
    home = tmp_path_factory.mktemp("edge")
    port = free_port()
    with SandboxWorld() as world:
        env = world.env() | {
            "DATABASE_URL": f"sqlite:///{home / 'data' / 'bot.sqlite3'}",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "HEALTH_TOKEN": HEALTH_TOKEN,
        }
        log = home / "bot.log"
        # Started from its own directory, whose data/ does not exist yet.
        with bot_process(env, log) as (url, pid):
            slack = SlackDriver(
                url, env["SLACK_SIGNING_SECRET"], world.slack, world.slack_server.url
            )
            yield Bot(url, port, pid, log, home / "data", slack, env)


def _raw(port: int, head: bytes, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send `head` and as much of `body` as the server takes; what it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head)
        answer = b""
        # The server may answer and close before the body is sent: then what it said is read.
        with contextlib.suppress(OSError):
            connection.sendall(body)
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                answer += chunk
        return answer


def test_bodies_over_a_mebibyte_are_refused_unread(bot: Bot) -> None:
    before = bot.rss_kib()
    # Announced: 200 MB, of which 20 MB are sent; the server answers without reading them.
    announced = 200 * 1024 * 1024
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {announced}\r\n\r\n"
    ).encode()
    answer = _raw(bot.port, head, b"x" * (20 * 1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 413 ")
    # Chunked, so no length is announced: cut off once past the cap.
    head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
    answer = _raw(bot.port, head, chunk * (2 * MAX_BODY_BYTES // (64 * 1024)))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert bot.rss_kib() - before < 20 * 1024
    # Under the cap the request reaches Bolt (and, unsigned, is refused there).
    small = bot.slack.send("x" * (MAX_BODY_BYTES // 2), signed=False)
    assert small.status_code == 401


def test_refused_requests_are_logged_once_per_source_and_minute_without_bodies(
    bot: Bot,
) -> None:
    marker = "BODY-THAT-MUST-NOT-BE-LOGGED"
    old = int(time.time()) - 600
    for attempt in range(30):
        body = f"command=/amazon&text={marker}{attempt}"
        if attempt % 3 == 0:
            refused = bot.slack.send(body, signed=False)
        elif attempt % 3 == 1:
            refused = bot.slack.send(body, secret="not-the-signing-secret")
        else:
            refused = bot.slack.send(body, timestamp=old)  # over five minutes old
        assert refused.status_code == 401
    time.sleep(0.5)
    logged = bot.logged()
    assert marker not in logged
    refusals = [line for line in logged.splitlines() if "refused a Slack request" in line]
    assert len(refusals) == 1 and "from 127.0.0.1" in refusals[0]


def test_half_open_connections_leave_the_bot_answering(bot: Bot) -> None:
    # Held open, a header line short of a request: more than waitress's default limit (100).
    held = []
    try:
        for _ in range(200):
            connection = socket.create_connection(("127.0.0.1", bot.port), timeout=5)
            connection.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
            held.append(connection)
        started = time.monotonic()
        health = requests.get(f"{bot.url}/healthz", timeout=5)
        assert health.status_code == 200 and time.monotonic() - started < 1
        started = time.monotonic()
        assert bot.slack.command("help", key="edge-help").status_code == 200
        assert time.monotonic() - started < 1
    finally:
        for connection in held:
            connection.close()


def test_a_request_trickling_in_is_dropped(bot: Bot) -> None:
    """One header line every few seconds (each well within the idle timeout) no longer keeps
    a connection: the whole request must arrive within CHANNEL_TIMEOUT of its first byte."""
    with socket.create_connection(("127.0.0.1", bot.port), timeout=1) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        dropped_after = None
        while time.monotonic() - started < CHANNEL_TIMEOUT * 3:
            try:
                connection.sendall(b"X-Slow: 1\r\n")
                if connection.recv(1) == b"":
                    dropped_after = time.monotonic() - started
                    break
            except TimeoutError:
                time.sleep(CHANNEL_TIMEOUT / 4)
            except OSError:
                dropped_after = time.monotonic() - started
                break
    # Detected within a poll (up to 3.5 s) of the deadline; a loaded machine adds a little.
    assert dropped_after is not None and dropped_after < CHANNEL_TIMEOUT * 2


def test_health_is_up_or_down_for_anyone_and_detailed_with_the_token(bot: Bot) -> None:
    public = requests.get(f"{bot.url}/healthz", timeout=5)
    assert (public.status_code, public.text) == (200, "ok\n")
    wrong = requests.get(f"{bot.url}/healthz", headers={"Authorization": "Bearer guess"}, timeout=5)
    assert wrong.status_code == 401 and "worker" not in wrong.text
    detailed = requests.get(
        f"{bot.url}/healthz", headers={"Authorization": f"Bearer {HEALTH_TOKEN}"}, timeout=5
    )
    assert detailed.status_code == 200
    assert detailed.json() == {
        "status": "ok",
        "database": "ok",
        "worker": "ok",
        "worker_pending": detailed.json()["worker_pending"],
    }


def test_callback_pages_forbid_framing_scripts_and_caching(bot: Bot) -> None:
    page = requests.get(
        f"{bot.url}/oauth/xero/callback", params={"error": "access_denied"}, timeout=5
    )
    assert page.status_code == 400 and "<style>" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    # The page's one inline style is allowed by its hash, and nothing else is.
    style = re.search(r"<style>(.*?)</style>", page.text, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy


def test_it_listens_on_loopback_only_by_default(bot: Bot) -> None:
    # 127.0.0.2 reaches this host too, but not a socket bound to 127.0.0.1 alone.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", bot.port), timeout=2).close()


def test_the_database_and_data_directory_are_private(bot: Bot) -> None:
    # Written by the running bot (its health checks and requests): the WAL is there too.
    assert stat.S_IMODE(bot.data.stat().st_mode) == 0o700
    files = sorted(bot.data.glob("bot.sqlite3*"))
    assert {path.name for path in files} >= {"bot.sqlite3", "bot.sqlite3-wal", "bot.sqlite3-shm"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_debug_log_of_a_report_download_never_shows_its_signed_query(
    container: Container, shop: Integration, world: SandboxWorld
) -> None:
    """The CLI at LOG_LEVEL=DEBUG syncs a month: urllib3 logs every request line, the report
    document's pre-signed URL among them."""
    settings = container.settings
    env = world.env() | {
        "DATABASE_URL": settings.database_url,
        "TOKEN_ENCRYPTION_KEY": settings.token_encryption_key or "",
        "LOG_LEVEL": "debug",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "sync", shop.name, "--period", "2026-01", "--json"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)
    # The download happened and was logged at DEBUG, without its query string.
    downloads = [line for line in done.stderr.splitlines() if "/documents-bucket/" in line]
    assert downloads and all("?[redacted]" in line for line in downloads)
    assert "X-Amz-Signature" not in done.stderr and "X-Amz-Date" not in done.stderr


@pytest.fixture
def database(bot: Bot) -> Iterator[Container]:
    """The running server's database, seen from the test."""
    container = Container(load_settings(bot.env, dotenv=Path("/nonexistent/.env")))
    yield container
    container.engine.dispose()


def answered(bot: Bot, *keys: str, settle: float = 0.0) -> list[list[dict[str, object]]]:
    """What the bot sent to each response_url, once every one has an answer."""
    deadline = time.monotonic() + 15
    while not all(bot.slack.slack.responses(key) for key in keys):
        assert time.monotonic() < deadline, "no answer"
        time.sleep(0.1)
    time.sleep(settle)  # room for a second answer, where one must not come
    return [bot.slack.slack.responses(key) for key in keys]


def test_another_workspaces_integration_is_not_found_through_the_real_server(
    bot: Bot, database: Container
) -> None:
    theirs = database.integrations.create(
        IntegrationSpec("Their shop", Region.EU, ("A1PA6795UKMFR9",), date(2026, 1, 1)),
        actor="U0THEIRS",
        workspace_id="T0THEIRS",
    )
    bot.slack.click(ids.OPEN_SETTINGS, str(theirs.id), key="theirs")
    bot.slack.click(ids.OPEN_SETTINGS, "999999", key="missing")

    [theirs_said], [missing_said] = answered(bot, "theirs", "missing")

    # The same answer as for an id that does not exist, and the attempt audited.
    assert texts(theirs_said) == texts(missing_said).replace("999999", str(theirs.id))
    refused = [e.action for e in database.integrations.audit_log(theirs.id)]
    assert "workspace.access_refused" in refused


def test_a_replayed_request_acts_once_through_the_real_server_and_its_worker(
    bot: Bot, database: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = database.integrations.create(
        IntegrationSpec("Our shop", Region.EU, ("A1PA6795UKMFR9",), date(2026, 1, 1)),
        actor="U0ADMIN",
        workspace_id=TEAM,
    )
    monkeypatch.setattr(bot.slack, "_post", bot.slack._post)  # put back after the test
    sent, post = recording(bot.slack)
    bot.slack.command("refresh Our shop", key="replayed")
    [(data, headers)] = sent
    assert post(data, headers).status_code == 200
    assert post(data, headers | {"X-Slack-Retry-Num": "1"}).status_code == 200

    # The worker acted on the first alone: one answer, one consent link minted.
    [replies] = answered(bot, "replayed", settle=1.5)
    assert len(replies) == 1 and "Seller Central" in texts(replies[0])
    with database.sessions() as session:
        states = session.scalars(select(OAuthState).where(OAuthState.integration_id == ours.id))
        assert len(states.all()) == 1


def test_slack_response_urls_are_redacted_like_signed_queries() -> None:
    from bot.logs import redact

    line = (
        "Sending a request - url: https://hooks.slack.com/actions/T0A/1234/Zx9SeCrEt, "
        "then GET /documents/abc?X-Amz-Signature=deadbeef HTTP/1.1"
    )

    assert redact(line) == (
        "Sending a request - url: https://hooks.slack.com/[redacted], "
        "then GET /documents/abc?[redacted] HTTP/1.1"
    )
