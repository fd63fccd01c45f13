"""The Slack side of services.notifications.Notifier: what a sync run did, in the integration's
errors and summary channels, every message built by handlers.blocks.

Every Slack call goes through `_send`, which
- uses the process's paced client (bot.slack_client): one message a second per channel, shared
  with the Slack listeners' updates, and 429s retried after Retry-After;
- logs a failure (the kind, Slack's error code, the channel; never the token) and carries on:
  a sync must not fail because a channel is wrong or Slack is down.

Decisions:
- A run's progress message becomes its summary: run_finished updates it in place, so the summary
  channel holds one message per run, with no stale progress bar. Without one (or when the update
  fails), the summary is posted.
- The summary's failed count links to the error parent by the permalink Slack documents,
  `https://<workspace>.slack.com/archives/<channel id>/p<ts without the dot>`, the workspace's
  URL from auth.test (asked once). When auth.test fails the summary has no link.
- A run that could not proceed keeps its progress message as it last stood: the builders have
  no "stopped" state, and the errors channel has the message that matters.
- A run announced again (a retry from the CLI) updates its error parent in place, wherever that
  was posted: the engine keeps it with the run (`run_finished` returns it). Progress messages
  live in memory only: after a restart the next run posts a new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from handlers.blocks import (
    authorization_warning_message,
    budget_message,
    connected_message,
    error_parent_message,
    error_thread_replies,
    progress_message,
    reconciliation_message,
    run_failed_message,
    run_paused_message,
    settlement_message,
    summary_message,
)
from handlers.blocks.common import Json, describe_period
from services.budget import BudgetShortfall
from services.errors import ErrorKind
from services.http import Clock
from services.models import Integration, LedgerItem
from services.notifications import PostedMessage
from services.reconcile import Reconciliation
from services.results import RunResult, SettlementReport

log = logging.getLogger(__name__)

PROGRESS_EVERY = 3.0  # seconds between updates of a progress message

# Slack's error codes by what they mean to whoever reads the log.
_ERROR_KINDS: dict[str, ErrorKind] = {
    "channel_not_found": ErrorKind.NOT_FOUND,
    "message_not_found": ErrorKind.NOT_FOUND,
    "thread_not_found": ErrorKind.NOT_FOUND,
    "not_authed": ErrorKind.AUTH,
    "invalid_auth": ErrorKind.AUTH,
    "account_inactive": ErrorKind.AUTH,
    "token_revoked": ErrorKind.AUTH,
    "token_expired": ErrorKind.AUTH,
    "missing_scope": ErrorKind.AUTH,
    "not_in_channel": ErrorKind.AUTH,
    "ratelimited": ErrorKind.RATE_LIMIT,
    "fatal_error": ErrorKind.UPSTREAM_UNAVAILABLE,
    "internal_error": ErrorKind.UPSTREAM_UNAVAILABLE,
    "service_unavailable": ErrorKind.UPSTREAM_UNAVAILABLE,
    "request_timeout": ErrorKind.UPSTREAM_UNAVAILABLE,
}

Message = tuple[str, str]  # (channel id, ts)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Progress:
    started_at: datetime
    shown_at: float
    # None: not shown for this run (no channel, or the post failed: not tried again, since
    # progress is called often and a wrong channel would log a warning each time).
    message: Message | None = None


class SlackNotifier:
    def __init__(
        self,
        client: WebClient,
        *,
        default_errors_channel: str | None,
        default_summary_channel: str | None,
        clock: Clock = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        """`clock` throttles progress; `now` is the wall clock that messages show
        ("Started …", "lapses in 7 days")."""
        self._client = client
        self._default_errors = default_errors_channel
        self._default_summary = default_summary_channel
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._progress: dict[tuple[int, str], _Progress] = {}
        self._workspace_url: str | None = None

    # --- the Notifier port ------------------------------------------------------------------

    def progress(
        self, integration: Integration, period: str, phase: str, done: int, total: int
    ) -> None:
        """One message per run, posted at the first call and updated at most every
        PROGRESS_EVERY seconds, and always when done == total. A run reports from one thread."""
        key = (integration.id, period)
        now = self._clock()
        with self._lock:
            state = self._progress.get(key)
            first = state is None
            if state is None:
                state = self._progress[key] = _Progress(started_at=self._now(), shown_at=now)
            elif state.message is None or (done != total and now - state.shown_at < PROGRESS_EVERY):
                return
            else:
                state.shown_at = now
        built = progress_message(
            integration.name, period, phase, done, total, started_at=state.started_at
        )
        what = f"progress of {integration.name}, {describe_period(period)}"
        if first:
            state.message = self._post(self._summary_channel(integration), built, what=what)
        elif state.message is not None:
            self._update(state.message, built, what=what)

    def run_finished(
        self,
        integration: Integration,
        result: RunResult,
        failures: Sequence[LedgerItem],
        *,
        error_report: PostedMessage | None = None,
    ) -> PostedMessage | None:
        run = f"{integration.name}, {describe_period(result.period)}"
        parent = self._error_report(integration, result, failures, error_report, run=run)
        summary = summary_message(
            result, errors_link=self._permalink(parent) if parent is not None else None
        )
        with self._lock:
            state = self._progress.pop((integration.id, result.period), None)
        shown = state.message if state is not None else None
        if shown is None or not self._update(shown, summary, what=f"summary of {run}"):
            self._post(self._summary_channel(integration), summary, what=f"summary of {run}")
        return PostedMessage(*parent) if parent is not None else None

    def _error_report(
        self,
        integration: Integration,
        result: RunResult,
        failures: Sequence[LedgerItem],
        earlier: PostedMessage | None,
        *,
        run: str,
    ) -> Message | None:
        """The run's error parent, with a thread reply per failure. A run announced again (a
        retry) updates its parent, whose thread already has each item with its Retry button."""
        built = error_parent_message(result, failures=failures)
        if earlier is not None:
            posted = (earlier.channel, earlier.ts)
            if self._update(posted, built, what=f"error report of {run}"):
                return posted
        if not failures:
            return None
        parent = self._post(self._errors_channel(integration), built, what=f"error report of {run}")
        if parent is not None:
            channel, ts = parent
            for reply in error_thread_replies(result.run_id, failures):
                self._post(channel, reply, what=f"error thread of {run}", thread_ts=ts)
        return parent

    def run_blocked(self, integration: Integration, result: RunResult) -> None:
        with self._lock:
            self._progress.pop((integration.id, result.period), None)
        self._post(
            self._errors_channel(integration),
            run_failed_message(result, integration_id=integration.id),
            what=f"failed run of {integration.name}, {describe_period(result.period)}",
        )

    def budget_short(self, integration: Integration, shortfall: BudgetShortfall) -> None:
        self._post(
            self._summary_channel(integration),
            budget_message(integration.name, shortfall),
            what=f"Xero budget of {integration.name}, {describe_period(shortfall.period)}",
        )

    def run_paused(self, integration: Integration, result: RunResult) -> None:
        """In place of the run's progress message, which a resumed run posts anew."""
        with self._lock:
            state = self._progress.pop((integration.id, result.period), None)
        built = run_paused_message(result)
        what = f"pause of {integration.name}, {describe_period(result.period)}"
        shown = state.message if state is not None else None
        if shown is None or not self._update(shown, built, what=what):
            self._post(self._summary_channel(integration), built, what=what)

    def settlement_posted(self, integration: Integration, report: SettlementReport) -> None:
        what = f"payout of {integration.name}, settlement {report.settlement_id}"
        self._post(self._summary_channel(integration), settlement_message(report), what=what)
        if report.failed:  # where failures are handled, with its Retry
            self._post(
                self._errors_channel(integration),
                settlement_message(report, retry=True),
                what=f"failed items of the {what}",
            )

    def month_checked(self, integration: Integration, check: Reconciliation) -> None:
        if not check.currencies:
            return  # nothing recorded for the month: the summary said so
        self._post(
            self._summary_channel(integration),
            reconciliation_message(check),
            what=f"three-way check of {integration.name}, {describe_period(check.period)}",
        )

    def integration_connected(
        self, integration: Integration, *, first_sync: datetime, period: str
    ) -> None:
        self._post(
            self._summary_channel(integration) or self._errors_channel(integration),
            connected_message(integration.name, first_sync=first_sync.date(), period=period),
            what=f"connection of {integration.name}",
        )

    def authorization_expiring(self, integration: Integration, *, expires_at: datetime) -> None:
        # The builder reads the expiry from the integration itself; expires_at names it in logs.
        self._post(
            self._errors_channel(integration),
            authorization_warning_message(integration, now=self._now()),
            what=f"authorization warning for {integration.name} (lapses {expires_at:%Y-%m-%d})",
        )

    # --- channels and links -----------------------------------------------------------------

    def _errors_channel(self, integration: Integration) -> str | None:
        return integration.errors_channel or self._default_errors

    def _summary_channel(self, integration: Integration) -> str | None:
        return integration.summary_channel or self._default_summary

    def _permalink(self, message: Message) -> str | None:
        if self._workspace_url is None:
            answer = self._send(self._client.auth_test, None, what="the workspace's URL")
            if answer is None:
                return None
            self._workspace_url = str(answer["url"]).rstrip("/")
        channel, ts = message
        return f"{self._workspace_url}/archives/{channel}/p{ts.replace('.', '')}"

    # --- Slack calls --------------------------------------------------------------------------

    def _post(
        self, channel: str | None, message: Json, *, what: str, thread_ts: str | None = None
    ) -> Message | None:
        if channel is None:
            log.warning("Slack: no channel configured, so the %s was not posted", what)
            return None
        answer = self._send(
            self._client.chat_postMessage, channel, what=what, thread_ts=thread_ts, **message
        )
        if answer is None:
            return None
        return str(answer["channel"]), str(answer["ts"])

    def _update(self, message: Message, built: Json, *, what: str) -> bool:
        channel, ts = message
        return self._send(self._client.chat_update, channel, what=what, ts=ts, **built) is not None

    def _send(
        self,
        method: Callable[..., SlackResponse],
        channel: str | None,
        *,
        what: str,
        **arguments: Any,
    ) -> SlackResponse | None:
        """Call Slack; None (and a log line) on failure."""
        if channel is not None:
            arguments["channel"] = channel
        try:
            return method(**arguments)
        except SlackApiError as error:
            code = str(error.response.get("error") or error.response.status_code)
            kind = _ERROR_KINDS.get(code, ErrorKind.VALIDATION)
            log.warning(
                "Slack %s to %s failed (%s: %s), so the %s was not shown",
                method.__name__,
                channel or "Slack",
                kind.value,
                code,
                what,
            )
        except (SlackClientError, OSError) as error:
            # Slack out of reach (after the WebClient's own retries): only the exception's type
            # is logged, since its text may quote the request.
            log.warning(
                "Slack %s to %s failed (%s: %s), so the %s was not shown",
                method.__name__,
                channel or "Slack",
                ErrorKind.UPSTREAM_UNAVAILABLE.value,
                type(error).__name__,
                what,
            )
        return None
