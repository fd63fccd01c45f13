"""Notifications as a port: the sync says what happened; an adapter (Slack) shows it.

The services never import Slack. `bot.slack_notifier.SlackNotifier` implements this for Slack;
`NullNotifier` is for the CLI without Slack and for tests that do not look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.budget import BudgetShortfall
from services.models import Integration, LedgerItem
from services.reconcile import Reconciliation
from services.results import RunResult, SettlementReport


@dataclass(frozen=True)
class PostedMessage:
    """Where an adapter showed something (Slack: channel id and ts), kept with the run."""

    channel: str
    ts: str


class Notifier(Protocol):
    def progress(
        self, integration: Integration, period: str, phase: str, done: int, total: int
    ) -> None:
        """A run's progress; called often, so an adapter throttles what it shows."""

    def run_finished(
        self,
        integration: Integration,
        result: RunResult,
        failures: Sequence[LedgerItem],
        *,
        error_report: PostedMessage | None = None,
    ) -> PostedMessage | None:
        """A run ended (succeeded or partly failed): the failures, then the monthly summary.
        `error_report` is where an earlier announcement of this run showed its failures (a
        retry of the run): updated there rather than shown again. Returns where the failures
        are shown now, if anywhere."""

    def run_blocked(self, integration: Integration, result: RunResult) -> None:
        """A run could not proceed (authorization, Amazon report failed...)."""

    def budget_short(self, integration: Integration, shortfall: BudgetShortfall) -> None:
        """A month about to be posted needs more Xero calls than are left today."""

    def run_paused(self, integration: Integration, result: RunResult) -> None:
        """A run waits for Xero's daily allowance; `result.message` says how far it got and
        when it continues."""

    def settlement_posted(self, integration: Integration, report: SettlementReport) -> None:
        """A payout's payments, fees and transfer went to Xero (or some could not)."""

    def month_checked(self, integration: Integration, check: Reconciliation) -> None:
        """A month's sync ended: Amazon's report, its payouts and Xero, checked per currency."""

    def integration_connected(
        self, integration: Integration, *, first_sync: datetime, period: str
    ) -> None: ...

    def authorization_expiring(self, integration: Integration, *, expires_at: datetime) -> None:
        """Seven days before Amazon's 365-day authorization lapses."""


class NullNotifier:
    def progress(
        self, integration: Integration, period: str, phase: str, done: int, total: int
    ) -> None:
        return None

    def run_finished(
        self,
        integration: Integration,
        result: RunResult,
        failures: Sequence[LedgerItem],
        *,
        error_report: PostedMessage | None = None,
    ) -> PostedMessage | None:
        return None

    def run_blocked(self, integration: Integration, result: RunResult) -> None:
        return None

    def budget_short(self, integration: Integration, shortfall: BudgetShortfall) -> None:
        return None

    def run_paused(self, integration: Integration, result: RunResult) -> None:
        return None

    def settlement_posted(self, integration: Integration, report: SettlementReport) -> None:
        return None

    def month_checked(self, integration: Integration, check: Reconciliation) -> None:
        return None

    def integration_connected(
        self, integration: Integration, *, first_sync: datetime, period: str
    ) -> None:
        return None

    def authorization_expiring(self, integration: Integration, *, expires_at: datetime) -> None:
        return None
