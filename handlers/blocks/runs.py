"""What a sync run posts: progress, the monthly summary, the error parent with its thread of
failed documents, the run that could not proceed, and each retry's outcome.

Channel posts show their buttons to everyone (Slack has no per-reader buttons in a channel);
the listener checks that whoever clicks may retry.

Thread replies: up to MAX_ITEM_REPLIES failed documents get one reply each. Beyond that they are
grouped by error kind and message (digits ignored, so "line 12" and "line 13" group together),
one reply per group, biggest first, with a count, a sample of order ids and one "Retry these N"
button whose value is "<run id>:<failure key>" (see retry_items_value): short whatever the group's
size, and the listener finds the items again with failure_key. Groups beyond MAX_GROUP_REPLIES
are counted in one last reply; "Retry all failed" covers them.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from slack_sdk.models.blocks import Block

from handlers.blocks import ids
from handlers.blocks.common import (
    Json,
    actions,
    button,
    context,
    describe_period,
    duration,
    escape,
    field_sections,
    header,
    link,
    link_button,
    message,
    money,
    number,
    packed_sections,
    plural,
    retrying,
    section,
    truncate,
    user,
    when,
)
from services.budget import BudgetShortfall
from services.errors import ErrorKind
from services.models import DocumentKind, LedgerItem, LedgerStatus, RunStatus
from services.results import RunResult
from services.vat_rates import country_name

MAX_ITEM_REPLIES = 20
MAX_GROUP_REPLIES = 20
MAX_GROUPS_IN_REPLY = 3  # after a retry, what still fails may have split into new groups
MAX_ORDERS_SHOWN = 5
TOP_COUNTRIES = 10
PROGRESS_BAR_WIDTH = 20
XERO_HOME = "https://go.xero.com/"

KIND_LABELS: dict[str, str] = {
    ErrorKind.VALIDATION: "Refused by Xero",
    ErrorKind.AUTH: "Authorization",
    ErrorKind.RATE_LIMIT: "Xero's rate limit",
    ErrorKind.UPSTREAM_UNAVAILABLE: "Xero unavailable",
    ErrorKind.BAD_DATA: "Bad data in Amazon's report",
    ErrorKind.NOT_FOUND: "Not found",
}
# What to fix, by what Xero's message names; checked in order, the kind's advice otherwise.
_FIXES = (
    (
        re.compile(r"account", re.IGNORECASE),
        "Check that the sales and shipping account codes in the integration's settings exist "
        "in Xero and take sales, then Retry.",
    ),
    (
        re.compile(r"tax", re.IGNORECASE),
        "Map this country and rate to an active Xero tax type in the integration's settings "
        "(Tax mapping), then Retry.",
    ),
    (
        re.compile(r"currenc", re.IGNORECASE),
        "Turn this currency on in Xero (Settings, Currencies; it needs a plan with "
        "multi-currency), then Retry.",
    ),
    (
        re.compile(r"lock date|period", re.IGNORECASE),
        "The document's date is before Xero's lock date: move the lock date in Xero "
        "(Financial settings), then Retry.",
    ),
    (
        re.compile(r"contact", re.IGNORECASE),
        "Check the buyer's contact in Xero (archived, or its name taken), then Retry.",
    ),
)
_KIND_FIXES: dict[str, str] = {
    ErrorKind.BAD_DATA: "Correct this in Amazon's report and import the report again; Retry "
    "cannot fix it.",
    ErrorKind.RATE_LIMIT: "Xero's daily or per-minute call limit was reached: Retry later.",
    ErrorKind.UPSTREAM_UNAVAILABLE: "Xero did not answer in time: Retry. A document Xero "
    "already has is found, not posted twice.",
    ErrorKind.AUTH: "Xero refused the connection: connect Xero again, then Retry.",
}
_DEFAULT_FIX = (
    "Fix what Xero's message names, in Xero or in the integration's settings, then Retry."
)


# --- failures ------------------------------------------------------------------------------


def failure_key(item: LedgerItem) -> str:
    """The group a failed item belongs to: its error kind and message, digits ignored."""
    pattern = re.sub(r"\d+", "#", item.error_message or "")
    digest = hashlib.sha256(f"{item.error_kind}|{pattern}".encode()).hexdigest()[:12]
    return f"{item.error_kind or 'unknown'}-{digest}"


@dataclass(frozen=True)
class FailureGroup:
    key: str
    items: tuple[LedgerItem, ...]

    @property
    def sample(self) -> LedgerItem:
        return self.items[0]


def group_failures(items: Sequence[LedgerItem]) -> list[FailureGroup]:
    """Failed items by failure_key, biggest group first."""
    groups: dict[str, list[LedgerItem]] = {}
    for item in items:
        groups.setdefault(failure_key(item), []).append(item)
    # Stable sort: groups of one size keep the order their first failure came in.
    return sorted(
        (FailureGroup(key, tuple(members)) for key, members in groups.items()),
        key=lambda group: -len(group.items),
    )


def retry_items_value(run_id: int, key: str) -> str:
    return f"{run_id}:{key}"


def parse_retry_items_value(value: str) -> tuple[int, str]:
    """RETRY_ITEMS's value back as (run id, failure key)."""
    run_id, _, key = value.partition(":")
    return int(run_id), key


def what_to_fix(item: LedgerItem) -> str:
    kind = item.error_kind or ""
    if kind in _KIND_FIXES:
        return _KIND_FIXES[kind]
    text = item.error_message or ""
    return next((fix for pattern, fix in _FIXES if pattern.search(text)), _DEFAULT_FIX)


def can_retry(item: LedgerItem) -> bool:
    """Retry posts again; a row Amazon's report got wrong stays wrong until re-imported."""
    return item.error_kind != ErrorKind.BAD_DATA


def _kind_label(kind: str | None) -> str:
    return KIND_LABELS.get(kind or "", kind or "Failed")


def _what(item: LedgerItem) -> str:
    if item.document_type == DocumentKind.INVOICE:
        return f"Invoice {item.document_number or item.source_key}"
    if item.document_type == DocumentKind.CREDIT_NOTE:
        return f"Credit note {item.document_number or item.source_key}"
    if item.transaction_type == "UNREADABLE":
        return "Unreadable report row"
    return f"Document {item.source_key}"


def _amount(item: LedgerItem) -> str | None:
    if not item.currency or not item.gross_cents:
        return None
    return money(Decimal(item.gross_cents) / 100, item.currency)


def _item_lines(item: LedgerItem) -> list[str]:
    lines = []
    if item.amazon_order_id:
        lines.append(f"*Amazon order:* `{escape(item.amazon_order_id)}`")
    amount = _amount(item)
    if amount:
        lines.append(f"*Amount:* {amount}")
    error = item.error_message or "Xero has not confirmed it yet."
    lines.append(f"*Error:* {truncate(escape(error), 1500)}")
    lines.append(f"*What to fix:* {what_to_fix(item)}")
    return lines


def failed_item_message(
    item: LedgerItem, *, retrying_by: str | None = None, retried_by: str | None = None
) -> Json:
    """One failed document in the error thread; after a retry, what became of it."""
    what = _what(item)
    if item.status == LedgerStatus.POSTED:
        number_text = item.document_number or what
        blocks: list[Block] = [
            section(f":white_check_mark: *{escape(what)}* is in Xero as {escape(number_text)}.")
        ]
        if retried_by:
            blocks.append(context(f"Retried by {user(retried_by)}"))
        return message(f"{what} posted to Xero as {number_text}", blocks)
    retry = None
    if can_retry(item) and not retrying_by:
        retry = button("Retry", ids.RETRY_ITEM, str(item.id), style="primary")
    title = f":x: *{escape(what)}* failed: {_kind_label(item.error_kind)}"
    blocks = [section("\n".join([title, *_item_lines(item)]), accessory=retry)]
    if retrying_by:
        blocks.append(retrying(retrying_by))
    elif retried_by:
        blocks.append(context(f"Retried by {user(retried_by)}: it failed again."))
    order = f" (order {item.amazon_order_id})" if item.amazon_order_id else ""
    return message(f"{what}{order} failed: {item.error_message or 'not confirmed'}", blocks)


def _group_section(run_id: int, group: FailureGroup, *, retrying: bool) -> Block:
    sample = group.sample
    count = len(group.items)
    orders = [i.amazon_order_id for i in group.items if i.amazon_order_id]
    lines = [
        f":x: *{plural(count, 'document')} failed: {_kind_label(sample.error_kind)}*",
        "> " + truncate(escape(sample.error_message or "Xero has not confirmed them."), 1200),
    ]
    if orders:
        shown = ", ".join(f"`{escape(o)}`" for o in orders[:MAX_ORDERS_SHOWN])
        more = len(orders) - MAX_ORDERS_SHOWN
        lines.append(
            f"*Amazon orders:* {shown}" + (f" and {number(more)} more" if more > 0 else "")
        )
    lines.append(f"*What to fix:* {what_to_fix(sample)}")
    retry = None
    if can_retry(sample) and not retrying:
        text = "Retry" if count == 1 else f"Retry these {number(count)}"
        retry = button(text, ids.RETRY_ITEMS, retry_items_value(run_id, group.key), style="primary")
    return section("\n".join(lines), accessory=retry)


def failure_group_message(
    run_id: int,
    items: Sequence[LedgerItem],
    *,
    retrying_by: str | None = None,
    retried_by: str | None = None,
) -> Json:
    """One group of failed documents (items of one failure_key); after a retry, the same items
    as they stand: those posted are counted, those still failing are grouped anew."""
    failing = [item for item in items if item.status != LedgerStatus.POSTED]
    posted = len(items) - len(failing)
    if not failing:
        blocks: list[Block] = [
            section(f":white_check_mark: All {plural(len(items), 'document')} are in Xero.")
        ]
        if retried_by:
            blocks.append(context(f"Retried by {user(retried_by)}"))
        return message(f"All {plural(len(items), 'document')} posted to Xero", blocks)
    groups = group_failures(failing)
    blocks = [
        _group_section(run_id, group, retrying=retrying_by is not None)
        for group in groups[:MAX_GROUPS_IN_REPLY]
    ]
    others = sum(len(group.items) for group in groups[MAX_GROUPS_IN_REPLY:])
    if others:
        blocks.append(context(f"{plural(others, 'more document')} fail with other errors."))
    if retrying_by:
        blocks.append(retrying(retrying_by))
    elif retried_by:
        blocks.append(
            context(
                f"Retried by {user(retried_by)}: {number(posted)} posted, "
                f"{number(len(failing))} still failing."
            )
        )
    sample = groups[0].sample
    text = (
        f"{plural(len(failing), 'document')} failed: {_kind_label(sample.error_kind)}: "
        f"{sample.error_message or 'not confirmed'}"
    )
    return message(text, blocks)


def _other_failures_message(groups: Sequence[FailureGroup]) -> Json:
    count = sum(len(group.items) for group in groups)
    lines = [
        f"• {number(len(group.items))} × {_kind_label(group.sample.error_kind)}: "
        + truncate(escape(group.sample.error_message or "not confirmed"), 200)
        for group in groups
    ]
    blocks: list[Block] = [
        section(
            f"*{plural(count, 'more document')} failed with {plural(len(groups), 'other error')}:*"
        ),
        *packed_sections(
            lines, max_blocks=40, more=lambda left: f"…and {plural(left, 'more error')}"
        ),
        context("*Retry all failed* on the first message retries these too."),
    ]
    return message(f"{plural(count, 'more document')} failed with other errors", blocks)


def error_thread_replies(run_id: int, failures: Sequence[LedgerItem]) -> list[Json]:
    """The replies under the error parent, in order: one per document up to
    MAX_ITEM_REPLIES, else one per group (see the module's docstring)."""
    if len(failures) <= MAX_ITEM_REPLIES:
        return [failed_item_message(item) for item in failures]
    groups = group_failures(failures)
    replies = [failure_group_message(run_id, group.items) for group in groups[:MAX_GROUP_REPLIES]]
    if len(groups) > MAX_GROUP_REPLIES:
        replies.append(_other_failures_message(groups[MAX_GROUP_REPLIES:]))
    return replies


def error_parent_message(
    result: RunResult,
    *,
    failures: Sequence[LedgerItem] = (),
    retrying_by: str | None = None,
    retried_by: str | None = None,
) -> Json:
    """The errors channel's message about a run with failures; its thread holds the
    details. Updated in place by "Retry all failed"."""
    period = describe_period(result.period)
    total = result.documents + result.failed
    name = result.integration
    if result.failed == 0:
        text = f"{period} sync for {name}: all {plural(total, 'document')} are in Xero"
        blocks: list[Block] = [section(f":white_check_mark: {escape(text)}")]
        if retried_by:
            blocks.append(context(f"Retried by {user(retried_by)}"))
        return message(text, blocks)
    text = (
        f"{period} sync for {name}: {number(result.failed)} of {plural(total, 'document')} failed"
    )
    blocks = [section(f":warning: *{escape(text)}*")]
    kinds = Counter(item.error_kind for item in failures)
    if kinds:
        blocks.append(
            section(
                "\n".join(
                    f"• {_kind_label(kind)}: {number(count)}" for kind, count in kinds.most_common()
                )
            )
        )
    notes = ["Each failed document is in the thread, with Xero's message and what to fix."]
    if kinds.get(ErrorKind.BAD_DATA):
        notes.append(
            "Bad data in Amazon's report is not retried: correct the report and import it."
        )
    blocks.append(context(*notes))
    retryable = not failures or any(can_retry(item) for item in failures)
    if retrying_by:
        blocks.append(retrying(retrying_by))
    elif retryable:
        blocks.append(
            actions(
                button(
                    "Retry all failed", ids.RETRY_ALL_FAILED, str(result.run_id), style="primary"
                )
            )
        )
    if retried_by and not retrying_by:
        blocks.append(
            context(f"Retried by {user(retried_by)}: {number(result.failed)} still failing.")
        )
    return message(text, blocks)


def budget_message(integration: str, short: BudgetShortfall) -> Json:
    """A month that takes more Xero calls than are left today, said before it is posted."""
    period = describe_period(short.period)
    text = (
        f"{period} for {integration} needs about {number(short.needed)} Xero API calls for "
        f"{plural(short.documents, 'document')}; Xero allows this organisation "
        f"{number(short.left)} more today ({number(short.daily)} a day)."
    )
    blocks: list[Block] = [
        section(f":hourglass_flowing_sand: {escape(text)}"),
        context(
            "The bot posts what fits today and continues by itself when Xero allows more; "
            "nothing is sent twice. Sellers with this volume may prefer summary posting."
        ),
    ]
    return message(text, blocks)


def run_paused_message(result: RunResult) -> Json:
    """A run waiting for Xero's daily allowance: how far it got, when it goes on by itself."""
    period = describe_period(result.period)
    text = f"{period} sync for {result.integration} paused: {result.message}"
    blocks: list[Block] = [
        section(
            f":double_vertical_bar: *{escape(period)} sync for {escape(result.integration)} "
            f"paused*\n{escape(truncate(result.message, 2000))}"
        ),
        context(
            "Nothing is lost or sent twice: what was posted stays posted, and the sync picks "
            "up where it stopped."
        ),
    ]
    return message(text, blocks)


def run_failed_message(
    result: RunResult,
    *,
    integration_id: int,
    retrying_by: str | None = None,
    retried_by: str | None = None,
) -> Json:
    """A run that could not proceed (authorization, Amazon's report...): "Retry run", and
    "Refresh integration" when authorization is the cause. After a retry that went through,
    the same message says so (its failures, if any, get their own error post)."""
    period = describe_period(result.period)
    name = result.integration
    if result.status != RunStatus.FAILED:
        text = (
            f"{period} sync for {name} went through: {plural(result.documents, 'document')} "
            f"in Xero, {number(result.failed)} failed"
        )
        blocks: list[Block] = [section(f":white_check_mark: {escape(text)}")]
        if retried_by:
            blocks.append(context(f"Retried by {user(retried_by)}"))
        return message(text, blocks)
    reason = result.error_message or result.message or "unknown error"
    text = f"{period} sync for {name} could not proceed: {reason}"
    blocks = [
        section(
            f":x: *{escape(period)} sync for {escape(name)} could not proceed*\n"
            + escape(truncate(reason, 2000))
        ),
    ]
    notes = ["What was posted stays posted; a retry resumes where the run stopped."]
    auth = result.error_kind == ErrorKind.AUTH
    if auth:
        notes.append("Refresh the integration (a new Amazon consent), then retry the run.")
    blocks.append(context(*notes))
    if retrying_by:
        blocks.append(retrying(retrying_by))
    else:
        buttons = [button("Retry run", ids.RETRY_RUN, str(result.run_id), style="primary")]
        if auth:
            buttons.append(
                button("Refresh integration", ids.REFRESH_INTEGRATION, str(integration_id))
            )
        blocks.append(actions(*buttons))
        if retried_by:
            blocks.append(context(f"Retried by {user(retried_by)}: it failed again."))
    return message(text, blocks)


# --- progress and summary ----------------------------------------------------------------------


def progress_message(
    integration: str,
    period: str,
    phase: str,
    done: int,
    total: int,
    *,
    started_at: datetime | None = None,
) -> Json:
    """The one message a running sync updates in place (phases as SyncEngine reports them)."""
    label = describe_period(period)
    if phase == "reading":
        text = f"Reading Amazon's report for {label} ({integration}): {plural(done, 'row')} read"
    elif phase == "posting" and total:
        percent = min(100, 100 * done // total)
        text = (
            f"Posting {label} for {integration} to Xero: {number(done)} of "
            f"{plural(total, 'document')} ({percent}%)"
        )
    else:
        text = f"{phase.capitalize()} {label} for {integration}: {number(done)}"
        text += f" of {number(total)}" if total else ""
    blocks: list[Block] = [section(f":arrows_counterclockwise: {escape(text)}")]
    if total:
        filled = PROGRESS_BAR_WIDTH * min(done, total) // total
        blocks.append(section(f"`{'█' * filled}{'░' * (PROGRESS_BAR_WIDTH - filled)}`"))
    if started_at:
        blocks.append(context(f"Started {when(started_at)}"))
    return message(text, blocks)


def _amounts(values: Mapping[str, str]) -> str:
    return ", ".join(
        money(Decimal(amount), currency) for currency, amount in sorted(values.items())
    )


def _country_line(code: str, facts: Mapping[str, Any]) -> str:
    """One entry of RunResult.countries: rates, documents and amounts per currency."""
    parts = [f"*{escape(code)}* {escape(country_name(code))}"]
    rates = facts.get("rates") or []
    if rates:
        parts.append(", ".join(f"{rate}%" for rate in rates))
    parts.append(plural(int(facts.get("documents", 0)), "document"))
    for label, key in (("sales", "sales_gross"), ("refunds", "refunds_gross"), ("VAT", "tax")):
        values = facts.get(key)
        if values:
            parts.append(f"{label} {_amounts(values)}")
    return truncate(" · ".join(parts), 500)


def summary_message(result: RunResult, *, errors_link: str | None = None) -> Json:
    """The month's summary for the summary channel. `errors_link` is the error parent's
    permalink, when the run had failures."""
    period = describe_period(result.period)
    name = result.integration
    skipped = sum(result.skipped.values())
    skipped_text = number(skipped)
    if skipped:
        kinds = ", ".join(f"{escape(k)} {number(v)}" for k, v in sorted(result.skipped.items()))
        skipped_text += f" ({kinds})"
    failed_text = number(result.failed)
    if result.failed and errors_link:
        failed_text = link(errors_link, f"{number(result.failed)}: see the errors")
    pairs = [
        ("Invoices", number(result.invoices_created)),
        ("Credit notes", number(result.credit_notes_created)),
        (
            "Contacts",
            f"{number(result.contacts_created)} created, {number(result.contacts_updated)} updated",
        ),
        ("Skipped", skipped_text),
        ("Failed", failed_text),
        ("Already in Xero", number(result.already_posted)),
        ("Credit notes allocated", number(result.allocations_made)),
        ("Duration", duration(result.duration_seconds)),
    ]
    blocks: list[Block] = [header(f"{period}: {name}"), *field_sections(pairs)]
    totals = sorted(result.totals.items())
    if totals:
        lines = ["*Totals per currency*"] + [
            f"*{escape(currency)}*  sales {money(t.sales_gross, currency)} · "
            f"refunds {money(t.refunds_gross, currency)} · VAT {money(t.tax, currency)}"
            for currency, t in totals
        ]
        blocks += packed_sections(
            lines,
            max_blocks=4,
            more=lambda left: f"…and {plural(left, 'more currency', 'more currencies')}",
        )
    if result.left_out:
        # With the totals, Amazon's own figures: what the failed documents leave out of Xero.
        left_out = "; ".join(
            f"{escape(currency)} sales {money(t.sales_gross, currency)} · "
            f"refunds {money(t.refunds_gross, currency)}"
            for currency, t in sorted(result.left_out.items())
        )
        blocks.append(context(truncate(f"Not in Xero (failed documents): {left_out}", 2000)))
    countries = sorted(
        result.countries.items(), key=lambda item: (-int(item[1].get("documents", 0)), item[0])
    )
    if countries:
        lines = ["*Top countries*"] + [
            _country_line(code, facts) for code, facts in countries[:TOP_COUNTRIES]
        ]
        blocks += packed_sections(lines, max_blocks=3)
        left = len(countries) - TOP_COUNTRIES
        if left > 0:
            blocks.append(context(f"and {plural(left, 'more country', 'more countries')}"))
    blocks += [context(truncate(note, 2000)) for note in result.notes]
    blocks.append(
        context(
            f"Xero API calls: {number(result.xero_api_calls)} · "
            f"Amazon API calls: {number(result.amazon_api_calls)}"
        )
    )
    buttons = [link_button("Open in Xero", XERO_HOME, ids.OPEN_XERO)]
    if result.failed and errors_link:
        buttons.append(link_button("See the errors", errors_link, ids.OPEN_ERRORS))
    blocks.append(actions(*buttons))
    text = (
        f"{period} summary for {name}: {plural(result.invoices_created, 'invoice')}, "
        f"{plural(result.credit_notes_created, 'credit note')}, {number(result.failed)} failed"
    )
    if totals:
        sales = ", ".join(money(t.sales_gross, currency) for currency, t in totals[:3])
        text += f"; sales {sales}"
        if len(totals) > 3:
            text += f" and {plural(len(totals) - 3, 'more currency', 'more currencies')}"
    return message(text, blocks)
