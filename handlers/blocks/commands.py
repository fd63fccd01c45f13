"""Replies to `/amazon ...`: help (with the nearest command for a typo), list, status, logs."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from slack_sdk.models.blocks import Block

from handlers.blocks import ids
from handlers.blocks.common import (
    IntegrationOverview,
    Json,
    actions,
    authorization_text,
    button,
    card_text,
    channel,
    context,
    day,
    describe_period,
    escape,
    field_sections,
    header,
    manage_buttons,
    message,
    money,
    next_run_text,
    number,
    packed_sections,
    page_bounds,
    pager,
    plural,
    run_outcome,
    section,
    status_text,
    truncate,
    user,
    when,
)
from services.marketplaces import MARKETPLACES
from services.models import AuditEntry, InvoiceStatus, SyncRun
from services.results import Payouts

COMMAND = "/amazon"
LIST_PAGE_SIZE = 20  # two blocks a row: 40 of a message's 50
MAX_NAMES_SHOWN = 30
MAX_LOG_RUNS = 12
MAX_LOG_ENTRIES = 25


@dataclass(frozen=True)
class CommandHelp:
    name: str
    arguments: str
    summary: str
    admin_only: bool


COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp("help", "", "What this bot can do", False),
    CommandHelp("list", "", "Every integration with its status, last and next run", False),
    CommandHelp("setup", "", "Connect an Amazon Seller Central account to Xero", True),
    CommandHelp("settings", "NAME", "Change an integration's settings and tax mapping", True),
    CommandHelp("stop", "NAME", "Stop pulling new periods from Amazon", True),
    CommandHelp("activate", "NAME", "Resume a stopped integration", True),
    CommandHelp("refresh", "NAME", "Send a fresh Amazon consent link", True),
    CommandHelp("sync", "NAME [YYYY-MM]", "Sync a month now (last month by default)", True),
    CommandHelp("status", "NAME", "An integration's settings, connections and runs", False),
    CommandHelp("logs", "NAME", "Recent runs and changes of an integration", False),
)
COMMAND_NAMES = tuple(command.name for command in COMMANDS)


def nearest_command(word: str) -> str | None:
    """The command a typo most likely meant ("stpo" -> "stop"), or None."""
    found = difflib.get_close_matches(word.strip().lower(), COMMAND_NAMES, n=1, cutoff=0.6)
    return found[0] if found else None


def _usage(command: CommandHelp) -> str:
    return f"`{COMMAND} {command.name}{' ' + command.arguments if command.arguments else ''}`"


def help_message(*, can_manage: bool, typed: str | None = None) -> Json:
    """What the bot can do; `typed` is a word that is not a command, answered with the
    nearest one."""
    blocks: list[Block] = []
    text = "Amazon Xero Bot posts each month's Amazon transactions to Xero."
    if typed is not None:
        word = truncate(typed, 40)
        suggestion = nearest_command(typed)
        text = f"{COMMAND} {word} is not a command."
        shown = f"`{COMMAND} {escape(word)}` is not a command."
        if suggestion:
            text += f" Did you mean {COMMAND} {suggestion}?"
            shown += f" Did you mean `{COMMAND} {suggestion}`?"
        blocks.append(section(f":grey_question: {shown}"))
    lines = []
    for command in COMMANDS:
        line = f"{_usage(command)}  {command.summary}"
        if command.admin_only and not can_manage:
            line += " _(admins)_"
        lines.append(line)
    blocks.append(section("*Amazon Xero Bot* posts each month's Amazon transactions to Xero."))
    blocks.append(section("\n".join(lines)))
    if not can_manage:
        blocks.append(context("Anyone can list and view; only workspace admins change things."))
    return message(text, blocks)


def notice_message(text: str) -> Json:
    """A one-line reply: a confirmation ("Stopped Acme EU.") or an error from a service."""
    return message(text, [section(escape(text))])


def queued_retry_message(busy: str, held_by: str | None) -> Json:
    """A Retry click on a month another retry holds: it runs when that one ends."""

    def said(behind: str, what: str) -> str:
        return f"{what} Your retry is queued behind {behind} and runs when it ends."

    text = said(f"the retry started by {held_by}" if held_by else "it", busy)
    behind = f"the retry started by {user(held_by)}" if held_by else "it"
    return message(text, [section(":hourglass: " + said(behind, escape(busy)))])


def unknown_integration_message(name: str, known: Sequence[str]) -> Json:
    """The name asked for does not exist: the closest names, then the ones that do."""
    asked = truncate(name, 60)
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    text = f"There is no integration named {asked}."
    lines = [f"There is no integration named *{escape(asked)}*."]
    if close:
        text += f" Did you mean {close[0]}?"
        lines.append(f"Did you mean *{escape(close[0])}*?")
    lines.append(_known_names(known))
    return message(text, [section("\n".join(lines))])


def name_needed_message(command: str, known: Sequence[str]) -> Json:
    """A command that acts on one integration came without its name: how to type it, and the
    names there are."""
    usage = _usage(next(c for c in COMMANDS if c.name == command))
    text = f"Say which integration: {usage.strip('`')}"
    lines = [f"Say which integration: {usage}"]
    if known:
        example = f"{COMMAND} {command} {sorted(known)[0]}"
        text += f", e.g. {example}"
        lines[0] += f", e.g. `{escape(example)}`"
    lines.append(_known_names(known))
    return message(text + ".", [section("\n".join(lines))])


def _known_names(known: Sequence[str]) -> str:
    if not known:
        return f"There are no integrations yet; admins can set one up: `{COMMAND} setup`."
    shown = ", ".join(f"`{escape(n)}`" for n in sorted(known)[:MAX_NAMES_SHOWN])
    more = len(known) - MAX_NAMES_SHOWN
    return "Integrations: " + shown + (f" and {number(more)} more" if more > 0 else "")


def integration_list_message(
    overviews: Sequence[IntegrationOverview], *, can_manage: bool, now: datetime, page: int = 0
) -> Json:
    """`/amazon list`: a page of integrations, each with its status, runs and (for admins)
    buttons; LIST_PAGE buttons page through the rest."""
    total = len(overviews)
    if total == 0:
        blocks: list[Block] = [section("No integrations yet.")]
        if can_manage:
            blocks.append(actions(button("Set up an integration", ids.OPEN_SETUP, style="primary")))
        return message("No integrations yet.", blocks)
    page, start, end = page_bounds(total, page, LIST_PAGE_SIZE)
    blocks = [section(f"*{plural(total, 'integration')}*")]
    for overview in overviews[start:end]:
        blocks.append(section(card_text(overview, now)))
        if can_manage:
            blocks.append(actions(*manage_buttons(overview, now)))
    blocks += pager(ids.LIST_PAGE, total, page, LIST_PAGE_SIZE)
    names = ", ".join(o.integration.name for o in overviews[start : start + 5])
    more = f" and {number(total - 5)} more" if total > 5 else ""
    return message(f"{plural(total, 'integration')}: {names}{more}", blocks)


def payout_text(payouts: Payouts) -> str:
    """The last settlement and each clearing account's balance, as finance people check them."""
    last = payouts.last
    if last is None:
        return "none yet"
    text = (
        f"{money(last.payout, last.currency)} on {day(last.deposit_date)} "
        f"(settlement {escape(last.settlement_id)})"
    )
    text += ", reconciled" if last.reconciled else f", {plural(len(last.problems), 'open point')}"
    balances = ", ".join(
        money(amount, currency) for currency, amount in payouts.clearing_balances.items()
    )
    return f"{text}; clearing balance {balances or money(Decimal(0), last.currency)}"


def status_message(overview: IntegrationOverview, *, can_manage: bool, now: datetime) -> Json:
    """`/amazon status NAME`: settings, connections, last and next run."""
    integration = overview.integration
    marketplaces = ", ".join(
        MARKETPLACES[m].domain if m in MARKETPLACES else m for m in integration.marketplaces
    )
    invoices = (
        "Draft" if integration.invoice_status == InvoiceStatus.DRAFT else "Approved (AUTHORISED)"
    )
    xero = escape(integration.xero_tenant_name or integration.xero_tenant_id or "not connected")
    amazon = escape(integration.amazon_selling_partner_id or "not connected")
    authorization = authorization_text(overview, now)
    if authorization:
        amazon += f", {authorization}"
    pairs = [
        ("Status", status_text(integration)),
        ("Region", integration.region.upper()),
        ("Marketplaces", escape(marketplaces) or "none"),
        ("Start date", day(integration.start_date)),
        ("Invoices created as", invoices),
        (
            "Account codes",
            f"sales {escape(integration.sales_account_code)}, "
            f"shipping {escape(integration.shipping_account_code)}",
        ),
        ("Errors channel", channel(integration.errors_channel)),
        ("Summary channel", channel(integration.summary_channel)),
        ("Amazon seller", amazon),
        ("Xero organisation", xero),
        ("Last run", run_outcome(overview.last_run) if overview.last_run else "none yet"),
        ("Next run", next_run_text(overview)),
    ]
    if overview.payouts is not None:
        pairs.append(("Last payout", payout_text(overview.payouts)))
    overrides = len(integration.tax_overrides or {})
    if overrides:
        pairs.append(("Tax overrides", plural(overrides, "mapping")))
    if integration.vat_rates:
        rates = sorted(integration.vat_rates.items())
        pairs.append(
            (
                "Own VAT rates",
                ", ".join(f"{key.replace(':', ' ')} {percent}%" for key, percent in rates),
            )
        )
    blocks: list[Block] = [header(integration.name), *field_sections(pairs)]
    if can_manage:
        blocks.append(actions(*manage_buttons(overview, now)))
    text = f"{integration.name}: {integration.status.replace('_', ' ')}"
    if overview.last_run:
        text += (
            f"; last run {describe_period(overview.last_run.period)}: {overview.last_run.status}"
        )
    return message(text, blocks)


_AUDIT_LABELS = {
    "integration.created": "set up the integration",
    "integration.settings_updated": "changed settings",
    "integration.stopped": "stopped it",
    "integration.activated": "activated it",
    "amazon.authorized": "connected Amazon",
    "amazon.reauthorized": "refreshed the Amazon authorization",
    "amazon.authorization_expired": "Amazon authorization expired",
    "xero.connected": "connected Xero",
}


def _audit_line(entry: AuditEntry) -> str:
    what = _AUDIT_LABELS.get(entry.action, entry.action)
    line = f"{when(entry.at)}  {user(entry.actor)} {what}"
    if entry.action == "integration.settings_updated" and entry.details:
        changes = "; ".join(
            f"{key}: {_short(change.get('from'))} → {_short(change.get('to'))}"
            for key, change in entry.details.items()
            if isinstance(change, dict)
        )
        line += f": {escape(changes)}" if changes else ""
    return truncate(line, 400)


def _short(value: Any) -> str:
    return truncate(str(value), 60) if value not in (None, "", [], {}) else "none"


def logs_message(name: str, *, runs: Sequence[SyncRun], audit: Sequence[AuditEntry]) -> Json:
    """`/amazon logs NAME`: the latest runs and changes, newest first."""
    recent_runs = sorted(runs, key=lambda run: run.started_at, reverse=True)
    recent_audit = sorted(audit, key=lambda entry: entry.at, reverse=True)
    blocks: list[Block] = [header(f"Logs: {name}"), section("*Runs*")]
    if recent_runs:
        blocks += packed_sections(
            [f"• {run_outcome(run)}" for run in recent_runs[:MAX_LOG_RUNS]], max_blocks=4
        )
        if len(recent_runs) > MAX_LOG_RUNS:
            blocks.append(context(f"and {plural(len(recent_runs) - MAX_LOG_RUNS, 'earlier run')}"))
    else:
        blocks.append(context("No runs yet."))
    blocks.append(section("*Changes*"))
    if recent_audit:
        blocks += packed_sections(
            [f"• {_audit_line(entry)}" for entry in recent_audit[:MAX_LOG_ENTRIES]], max_blocks=4
        )
        if len(recent_audit) > MAX_LOG_ENTRIES:
            left = len(recent_audit) - MAX_LOG_ENTRIES
            blocks.append(context(f"and {plural(left, 'earlier change')}"))
    else:
        blocks.append(context("No changes recorded."))
    text = f"Logs of {name}: {plural(len(runs), 'run')}, {plural(len(audit), 'change')}"
    return message(text, blocks)
