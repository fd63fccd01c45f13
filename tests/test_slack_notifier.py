"""SlackNotifier against the Slack sandbox, through slack_sdk's WebClient over a loopback server.

The notifier and the sandbox share one fake clock, and the notifier's sleep advances it: the
sandbox's own per-channel rate limit judges the pacing, and no test waits in real time.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.slack_client import PacedWebClient
from bot.slack_notifier import SlackNotifier
from handlers.blocks import (
    authorization_warning_message,
    connected_message,
    error_parent_message,
    error_thread_replies,
    progress_message,
    run_failed_message,
    summary_message,
)
from sandbox.server import LoopbackServer
from sandbox.slack import SlackSandbox
from services.errors import ErrorKind
from services.models import (
    Integration,
    IntegrationStatus,
    InvoiceStatus,
    LedgerItem,
    RunStatus,
)
from services.notifications import PostedMessage
from services.results import CurrencyTotals, RunResult
from tests.factories import failed_item

TOKEN = "xoxb-sandbox-token"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
WORKSPACE = "https://sandbox-finance.slack.com"
Json = dict[str, Any]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sandbox(fake: FakeTime) -> SlackSandbox:
    return SlackSandbox(clock=fake.clock)


@pytest.fixture
def server(sandbox: SlackSandbox) -> Iterator[LoopbackServer]:
    with LoopbackServer(sandbox.app) as server:
        yield server


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch, fake: FakeTime) -> list[float]:
    """Waits the WebClient's RateLimitErrorRetryHandler asked for: a 429 got through."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        fake.now += seconds

    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=sleep))
    return waits


@pytest.fixture
def client(server: LoopbackServer, retries: list[float], fake: FakeTime) -> WebClient:
    # As bot.slack_client.paced_web_client builds it, on the fake clock.
    return PacedWebClient(
        token=TOKEN,
        base_url=f"{server.url}/api/",
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
        clock=fake.clock,
        sleep=fake.sleep,
    )


MakeNotifier = Callable[..., SlackNotifier]


@pytest.fixture
def make_notifier(client: WebClient, fake: FakeTime) -> MakeNotifier:
    def make(
        errors: str | None = "C0ERRORS",
        summary: str | None = "C0FINANCE",
        client: WebClient = client,
    ) -> SlackNotifier:
        return SlackNotifier(
            client,
            default_errors_channel=errors,
            default_summary_channel=summary,
            clock=fake.clock,
            now=lambda: NOW,
        )

    return make


@pytest.fixture
def notifier(make_notifier: MakeNotifier) -> SlackNotifier:
    return make_notifier()


# --- domain values, unsaved ---------------------------------------------------------------


def integration(**changes: Any) -> Integration:
    values: Json = {
        "id": 7,
        "workspace_id": "T0SANDBOX",
        "name": "Acme EU",
        "region": "eu",
        "marketplaces": ["A1PA6795UKMFR9"],
        "start_date": date(2026, 1, 1),
        "status": IntegrationStatus.ACTIVE,
        "invoice_status": InvoiceStatus.AUTHORISED,
        "sales_account_code": "200",
        "shipping_account_code": "210",
        "errors_channel": None,
        "summary_channel": None,
        "amazon_authorized_at": NOW - timedelta(days=100),
        "created_by": "U0ADMIN",
    }
    return Integration(**(values | changes))


def result(**changes: Any) -> RunResult:
    values: Json = {
        "run_id": 3,
        "integration": "Acme EU",
        "period": "2026-10",
        "status": RunStatus.PARTIAL,
        "invoices_created": 40,
        "credit_notes_created": 2,
        "documents": 42,
        "failed": 3,
        "totals": {"EUR": CurrencyTotals(Decimal("4760.00"), Decimal("119.00"), Decimal("760"))},
        "duration_seconds": 12.0,
        "xero_api_calls": 9,
        "amazon_api_calls": 3,
    }
    return RunResult(**(values | changes))


def tax_failures(count: int) -> list[LedgerItem]:
    return [
        failed_item(n, f"Xero: The TaxType code 'TAX{n:03d}' does not exist.")
        for n in range(1, count + 1)
    ]


def content(message: Json) -> Json:
    """What the bot sent, as the builders return it."""
    return {"text": message["text"], "blocks": message["blocks"]}


def methods(sandbox: SlackSandbox) -> list[str]:
    return [method for method, _ in sandbox.calls]


# --- a finished run ----------------------------------------------------------------------


def test_a_partial_run_posts_a_thread_of_failures_and_a_summary_linking_to_it(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    failures = tax_failures(3)
    partial = result()
    shown = notifier.run_finished(integration(), partial, failures)

    parent, *replies = sandbox.messages("#errors")
    assert content(parent) == error_parent_message(partial, failures=failures)
    assert [content(reply) for reply in replies] == error_thread_replies(3, failures)
    assert [reply["thread_ts"] for reply in replies] == [parent["ts"]] * 3
    assert shown == PostedMessage("C0ERRORS", parent["ts"])

    [summary] = sandbox.messages("#finance")
    link = f"{WORKSPACE}/archives/C0ERRORS/p{parent['ts'].replace('.', '')}"
    assert content(summary) == summary_message(partial, errors_link=link)
    assert f"<{link}|3: see the errors>" in json.dumps(summary["blocks"])

    transcript = sandbox.transcript()
    assert transcript[0] == (
        "#errors  bot: :warning: *October 2026 sync for Acme EU: 3 of 45 documents failed*"
    )
    assert sum(line.startswith("    ↳ bot: :x: *Invoice INV-DE-") for line in transcript) == 3
    assert "#finance  bot: October 2026: Acme EU" in transcript


def test_beyond_twenty_failures_the_thread_groups_them(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    failures = [
        failed_item(n, "Xero: Account code '200' is not a valid code for this document.")
        for n in range(1, 31)
    ] + [failed_item(n, f"Xero: Contact 'buyer {n}' is archived.") for n in range(31, 46)]
    partial = result(failed=45, documents=0)
    notifier.run_finished(integration(), partial, failures)

    parent, *replies = sandbox.messages("#errors")
    assert [content(reply) for reply in replies] == error_thread_replies(3, failures)
    assert [reply["text"][:22] for reply in replies] == [
        "30 documents failed: R",
        "15 documents failed: R",
    ]
    assert {reply["thread_ts"] for reply in replies} == {parent["ts"]}


def test_a_run_announced_again_updates_its_error_report_in_place(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    """A retry of the run from the CLI: the parent shows the run as it stands now, and its
    thread, which has every item with its Retry button, is not posted again."""
    failures = tax_failures(3)
    first = notifier.run_finished(integration(), result(), failures)
    again = notifier.run_finished(integration(), result(failed=1), failures[:1], error_report=first)
    assert again == first
    parent, *replies = sandbox.messages("#errors")
    assert len(replies) == 3
    assert content(parent) == error_parent_message(result(failed=1), failures=failures[:1])

    fixed = notifier.run_finished(integration(), result(failed=0), [], error_report=first)
    assert fixed == first
    assert "all 42 documents are in Xero" in sandbox.messages("#errors")[0]["text"]
    assert len(sandbox.messages("#finance")) == 3  # a summary each time


def test_a_run_without_failures_posts_only_its_summary(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    clean = result(failed=0)
    shown = notifier.run_finished(integration(), clean, [])

    assert methods(sandbox) == ["chat.postMessage"]
    assert [content(m) for m in sandbox.messages("#finance")] == [summary_message(clean)]
    assert shown is None


def test_the_integrations_own_channels_come_first(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    own = integration(errors_channel="#general", summary_channel="C0GENERAL")
    shown = notifier.run_finished(own, result(), tax_failures(1))

    assert len(sandbox.messages("#general")) == 3
    assert sandbox.messages("#errors") == sandbox.messages("#finance") == []
    assert shown == PostedMessage("C0GENERAL", sandbox.messages("#general")[0]["ts"])


# --- progress ------------------------------------------------------------------------------


def test_progress_is_one_message_updated_at_most_every_three_seconds(
    notifier: SlackNotifier, sandbox: SlackSandbox, fake: FakeTime
) -> None:
    acme = integration()
    notifier.progress(acme, "2026-10", "reading", 100, 0)
    fake.now += 1
    notifier.progress(acme, "2026-10", "reading", 5000, 0)  # too soon: not shown
    fake.now += 2.5
    notifier.progress(acme, "2026-10", "posting", 10, 45)
    fake.now += 0.5
    notifier.progress(acme, "2026-10", "posting", 44, 45)  # too soon
    notifier.progress(acme, "2026-10", "posting", 45, 45)  # done: shown at once

    assert methods(sandbox) == ["chat.postMessage", "chat.update", "chat.update"]
    # The last update came half a second after the one before: paced, chat.update counts.
    assert fake.sleeps == [0.5]
    [message] = sandbox.messages("#finance")
    assert content(message) == progress_message(
        "Acme EU", "2026-10", "posting", 45, 45, started_at=NOW
    )

    # The finished run's summary takes the progress message's place.
    clean = result(failed=0)
    notifier.run_finished(acme, clean, [])
    [message] = sandbox.messages("#finance")
    assert content(message) == summary_message(clean)
    assert methods(sandbox)[-1] == "chat.update"
    assert sandbox.transcript()[-1].endswith("(edited)")

    # The next run of the same month (a retry) starts a message of its own.
    fake.now += 10
    notifier.progress(acme, "2026-10", "posting", 1, 3)
    assert len(sandbox.messages("#finance")) == 2


def test_runs_have_a_progress_message_each(notifier: SlackNotifier, sandbox: SlackSandbox) -> None:
    notifier.progress(integration(), "2026-10", "reading", 1, 0)
    notifier.progress(integration(id=8, name="Acme UK"), "2026-10", "reading", 1, 0)
    notifier.progress(integration(), "2026-09", "reading", 1, 0)
    assert len(sandbox.messages("#finance")) == 3


def test_a_summary_is_posted_when_its_progress_message_is_gone(
    notifier: SlackNotifier, sandbox: SlackSandbox, fake: FakeTime
) -> None:
    acme = integration()
    notifier.progress(acme, "2026-10", "posting", 1, 45)
    sandbox.faults.add("/api/chat.update", 200, body={"ok": False, "error": "message_not_found"})
    fake.now += 5
    notifier.run_finished(acme, result(failed=0), [])

    progress, summary = sandbox.messages("#finance")
    assert progress["text"].startswith("Posting October 2026 for Acme EU to Xero: 1 of 45")
    assert content(summary) == summary_message(result(failed=0))


# --- pacing -----------------------------------------------------------------------------------


def test_ten_quick_messages_to_a_channel_are_paced_to_one_a_second(
    notifier: SlackNotifier, sandbox: SlackSandbox, fake: FakeTime, retries: list[float]
) -> None:
    started = time.monotonic()
    notifier.run_finished(integration(), result(failed=9), tax_failures(9))

    # The sandbox answers 429 past a burst of 5 at one a second: none was needed.
    assert retries == []
    assert methods(sandbox).count("chat.postMessage") == 11
    assert len(sandbox.messages("#errors")) == 10
    assert len(sandbox.messages("#finance")) == 1
    # Parent and 9 replies, one a second; the summary's channel has its own pace.
    assert fake.sleeps == [1.0] * 9
    assert time.monotonic() - started < 5


def test_a_channel_named_and_by_id_is_paced_as_one(
    make_notifier: MakeNotifier, sandbox: SlackSandbox, fake: FakeTime
) -> None:
    notifier = make_notifier(errors="#errors")
    notifier.run_blocked(integration(), result(status=RunStatus.FAILED))
    notifier.run_blocked(integration(errors_channel="C0ERRORS"), result(status=RunStatus.FAILED))
    assert fake.sleeps == [1.0]


def test_a_listeners_update_keeps_the_channels_pace_with_the_notifiers_posts(
    notifier: SlackNotifier, client: WebClient, sandbox: SlackSandbox, fake: FakeTime
) -> None:
    """One client per process (a Retry click's update and a run's posts): one pace."""
    notifier.run_blocked(integration(), result(status=RunStatus.FAILED))
    [message] = sandbox.messages("C0ERRORS")
    client.chat_update(channel="C0ERRORS", ts=message["ts"], text="Retrying")
    assert fake.sleeps == [1.0]


# --- when Slack is not there -----------------------------------------------------------------


def test_wrong_channels_are_logged_and_skipped(
    notifier: SlackNotifier, sandbox: SlackSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # slack_sdk's own request logs too
    wrong = integration(errors_channel="C0NOPE", summary_channel="#random")
    shown = notifier.run_finished(wrong, result(), tax_failures(3))
    notifier.progress(wrong, "2026-11", "reading", 1, 0)
    notifier.progress(wrong, "2026-11", "reading", 2, 0)  # the failed post is not tried again
    notifier.run_blocked(wrong, result(status=RunStatus.FAILED))

    # The parent failed, so no thread; the summary and the progress were refused too.
    assert methods(sandbox) == ["chat.postMessage"] * 4
    assert shown is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Slack chat_postMessage to C0NOPE failed (not_found: channel_not_found), so the error "
        "report of Acme EU, October 2026 was not shown",
        "Slack chat_postMessage to #random failed (auth: not_in_channel), so the summary of "
        "Acme EU, October 2026 was not shown",
        "Slack chat_postMessage to #random failed (auth: not_in_channel), so the progress of "
        "Acme EU, November 2026 was not shown",
        "Slack chat_postMessage to C0NOPE failed (not_found: channel_not_found), so the failed "
        "run of Acme EU, October 2026 was not shown",
    ]
    assert TOKEN not in caplog.text


def test_no_channel_anywhere_posts_nothing(
    make_notifier: MakeNotifier, sandbox: SlackSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = make_notifier(errors=None, summary=None)
    unset = integration()
    notifier.progress(unset, "2026-10", "reading", 1, 0)
    notifier.progress(unset, "2026-10", "reading", 2, 0)
    notifier.run_finished(unset, result(), tax_failures(2))
    notifier.run_blocked(unset, result(status=RunStatus.FAILED))
    notifier.integration_connected(unset, first_sync=NOW, period="2026-11")
    notifier.authorization_expiring(unset, expires_at=NOW + timedelta(days=7))

    assert sandbox.calls == []
    assert [r.getMessage() for r in caplog.records] == [
        f"Slack: no channel configured, so the {what} was not posted"
        for what in (
            "progress of Acme EU, October 2026",
            "error report of Acme EU, October 2026",
            "summary of Acme EU, October 2026",
            "failed run of Acme EU, October 2026",
            "connection of Acme EU",
            "authorization warning for Acme EU (lapses 2026-11-29)",
        )
    ]


def test_a_wrong_token_is_logged_never_shown(
    make_notifier: MakeNotifier, server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "xoxb-1234-5678-NotTheSandboxToken"
    wrong = WebClient(token=secret, base_url=f"{server.url}/api/")
    make_notifier(client=wrong).run_blocked(integration(), result(status=RunStatus.FAILED))

    assert "(auth: invalid_auth)" in caplog.text
    assert secret not in caplog.text and "NotTheSandboxToken" not in caplog.text


def test_slack_out_of_reach_is_logged_and_skipped(
    make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # No retry handlers: the default ConnectionErrorRetryHandler would wait in real time.
    down = WebClient(token=TOKEN, base_url=f"http://127.0.0.1:{port}/api/", retry_handlers=[])
    make_notifier(client=down).run_finished(integration(), result(), tax_failures(1))

    assert "(upstream_unavailable: URLError)" in caplog.text
    assert TOKEN not in caplog.text


# --- the other messages -------------------------------------------------------------------------


def test_a_blocked_run_goes_to_the_errors_channel(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    blocked = result(
        status=RunStatus.FAILED,
        failed=0,
        documents=0,
        error_kind=ErrorKind.AUTH,
        error_message="Amazon refused the authorization: it was revoked.",
    )
    notifier.run_blocked(integration(), blocked)

    assert [content(m) for m in sandbox.messages("#errors")] == [
        run_failed_message(blocked, integration_id=7)
    ]
    assert sandbox.messages("#finance") == []


def test_a_connected_integration_goes_to_the_summary_channel_else_errors(
    make_notifier: MakeNotifier, sandbox: SlackSandbox
) -> None:
    first_sync = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    expected = connected_message("Acme EU", first_sync=date(2026, 12, 4), period="2026-11")

    make_notifier().integration_connected(integration(), first_sync=first_sync, period="2026-11")
    assert [content(m) for m in sandbox.messages("#finance")] == [expected]

    no_summary = make_notifier(summary=None)
    no_summary.integration_connected(integration(), first_sync=first_sync, period="2026-11")
    assert [content(m) for m in sandbox.messages("#errors")] == [expected]


def test_an_expiring_authorization_warns_in_the_errors_channel(
    notifier: SlackNotifier, sandbox: SlackSandbox
) -> None:
    lapsing = integration(amazon_authorized_at=NOW - timedelta(days=358))
    notifier.authorization_expiring(lapsing, expires_at=NOW + timedelta(days=7))

    assert [content(m) for m in sandbox.messages("#errors")] == [
        authorization_warning_message(lapsing, now=NOW)
    ]
