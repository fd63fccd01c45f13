"""Shared pieces of every message and view: Slack's limits, safe text, blocks and buttons.

Builders compose these and stay within the limits by construction: texts are cut here, lists
are budgeted by the builders, and `message`, `modal` and `home` refuse more blocks than fit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.blocks.block_elements import BlockElement, InteractiveElement
from slack_sdk.models.views import View

from handlers.blocks import ids
from services.errors import ServiceError
from services.integrations import AMAZON_AUTHORIZATION_LIFETIME
from services.models import Integration, IntegrationStatus, RunStatus, SyncRun
from services.periods import period_label
from services.results import Payouts

Json = dict[str, Any]

# Block Kit limits (docs.slack.dev/reference/block-kit).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTIONS = 100
MAX_LABEL_TEXT = 2000
MAX_HINT_TEXT = 2000
MAX_PLACEHOLDER_TEXT = 150
MAX_MODAL_TITLE = 24
MAX_MODAL_BUTTON = 24
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
# Slack takes 40,000 characters of `text` but advises under 4,000; fallbacks are short anyway.
MAX_FALLBACK_TEXT = 4000

# Room kept at the end of a packed section for its "…and N more" line.
_MORE_RESERVE = 100
ELLIPSIS = "…"
_ZWJ = "\u200d"
# Amazon's authorization lasts 365 days; this long before it lapses, the bot warns.
AUTHORIZATION_WARNING = timedelta(days=7)


# --- text ----------------------------------------------------------------------------------


def _units(text: str) -> int:
    """Length in UTF-16 code units: never less than the code point count, so a text within
    this length is within Slack's limit however Slack counts."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _joins_previous(char: str) -> bool:
    """Combining marks, zero-width joiners and variation selectors belong to the character
    before them: cutting between would leave half a glyph."""
    return (
        unicodedata.combining(char) > 0
        or char in (_ZWJ, "\ufe0e", "\ufe0f")
        or 0x1F3FB <= ord(char) <= 0x1F3FF  # emoji skin tones
    )


def truncate(text: str, limit: int) -> str:
    """`text` within `limit` characters, ending in "…" when cut. Never splits a character or
    a combining sequence, nor an escape (&amp;) or a <link|label>, <@U123> token."""
    if _units(text) <= limit:
        return text
    budget, used, end = limit - 1, 0, 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > budget:
            break
        used += width
        end += 1
    # Back off to the start of the sequence the cut falls in (a ZWJ joins both neighbours).
    while end > 0 and (_joins_previous(text[end]) or text[end - 1] == _ZWJ):
        end -= 1
    kept = text[:end]
    opened = kept.rfind("<")
    if opened > kept.rfind(">"):
        kept = kept[:opened]
    entity = re.search(r"&[a-z]{0,3}$", kept)
    if entity:
        kept = kept[: entity.start()]
    return kept.rstrip() + ELLIPSIS


def escape(text: str) -> str:
    """User and upstream text shown in mrkdwn: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def number(count: int) -> str:
    return f"{count:,}"


def money(amount: Decimal, currency: str) -> str:
    return format_currency(amount, currency, locale="en_GB")


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    word = singular if count == 1 else plural_form or singular + "s"
    return f"{number(count)} {word}"


def user(user_id: str) -> str:
    """A user mention; "system" and other non-ids are shown as they are."""
    return f"<@{user_id}>" if re.fullmatch(r"[UW][A-Z0-9]+", user_id) else escape(user_id)


def channel(channel_id: str | None) -> str:
    return f"<#{channel_id}>" if channel_id else "not set"


def link(url: str, label: str) -> str:
    return f"<{url}|{escape(label).replace('|', '/')}>"


def day(value: date) -> str:
    """A plain date, for fallback texts and plain_text objects: "3 Dec 2026"."""
    return f"{value.day} {value:%b %Y}"


def when(moment: datetime) -> str:
    """A moment in the reader's own time zone (Slack renders it), UTC where it cannot."""
    fallback = f"{day(moment)} {moment:%H:%M} UTC"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def relative(moment: datetime, now: datetime) -> str:
    """ "in 3 days", "5 hours ago": coarse, for deadlines and last runs."""
    delta = moment - now
    seconds = abs(delta.total_seconds())
    if seconds < 60:
        return "now"
    if seconds < 3600:
        amount = plural(int(seconds // 60), "minute")
    elif seconds < 86400:
        amount = plural(int(seconds // 3600), "hour")
    else:
        amount = plural(int(seconds // 86400), "day")
    return f"in {amount}" if delta.total_seconds() > 0 else f"{amount} ago"


def duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def describe_period(period: str) -> str:
    """ "October 2026" for a month; a run of an imported report file has no month."""
    try:
        return period_label(period)
    except ServiceError:
        return "Imported report"


# --- blocks and elements ---------------------------------------------------------------------


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, limit))


def plain(text: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=truncate(text, limit), emoji=True)


def section(
    text: str, *, accessory: BlockElement | None = None, block_id: str | None = None
) -> SectionBlock:
    return SectionBlock(text=mrkdwn(text), accessory=accessory, block_id=block_id)


def field_sections(pairs: Sequence[tuple[str, str]]) -> list[SectionBlock]:
    """Label/value pairs as two-column fields, ten to a section."""
    texts = [mrkdwn(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in pairs]
    return [
        SectionBlock(fields=texts[start : start + MAX_SECTION_FIELDS])
        for start in range(0, len(texts), MAX_SECTION_FIELDS)
    ]


def packed_sections(
    lines: Sequence[str],
    *,
    max_blocks: int,
    more: Callable[[int], str] = lambda left: f"{ELLIPSIS}and {number(left)} more",
) -> list[SectionBlock]:
    """Lines packed into as few sections as fit, at most `max_blocks`; what does not fit is
    counted on a last line."""
    room = MAX_SECTION_TEXT - _MORE_RESERVE
    chunks: list[list[str]] = []
    size = 0
    for index, raw in enumerate(lines):
        line = truncate(raw, room)
        width = _units(line)
        if chunks and size + 1 + width <= room:
            chunks[-1].append(line)
            size += 1 + width
        elif len(chunks) < max_blocks:
            chunks.append([line])
            size = width
        else:
            chunks[-1].append(more(len(lines) - index))
            break
    return [section("\n".join(chunk)) for chunk in chunks]


def context(*texts: str) -> ContextBlock:
    return ContextBlock(elements=[mrkdwn(text) for text in texts[:MAX_CONTEXT_ELEMENTS]])


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=plain(text, MAX_HEADER_TEXT))


def divider() -> DividerBlock:
    return DividerBlock()


def retrying(by: str) -> ContextBlock:
    """Under a message whose Retry was clicked, until the retry is done."""
    return context(f":hourglass_flowing_sand: Retrying (by {user(by)})…")


def actions(*elements: InteractiveElement) -> ActionsBlock:
    return ActionsBlock(elements=list(elements[:MAX_ACTIONS_ELEMENTS]))


def button(
    text: str,
    action_id: str,
    value: str | None = None,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    if value is not None and len(value) > MAX_BUTTON_VALUE:
        # A cut value would point at something else: a builder bug, not a text to shorten.
        raise ValueError(f"button value over {MAX_BUTTON_VALUE} characters for {action_id}")
    return ButtonElement(
        text=plain(text, MAX_BUTTON_TEXT),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def link_button(text: str, url: str, action_id: str, *, style: str | None = None) -> ButtonElement:
    return ButtonElement(
        text=plain(text, MAX_BUTTON_TEXT), action_id=action_id, url=url, style=style
    )


def confirm(title: str, text: str, yes: str, *, danger: bool = False) -> ConfirmObject:
    return ConfirmObject(
        title=plain(title, MAX_CONFIRM_TITLE),
        text=mrkdwn(text, MAX_CONFIRM_TEXT),
        confirm=plain(yes, MAX_CONFIRM_BUTTON),
        deny=plain("Cancel", MAX_CONFIRM_BUTTON),
        style="danger" if danger else None,
    )


def message(text: str, blocks: Sequence[Block]) -> Json:
    """A chat.postMessage / chat.update / respond payload: blocks plus the fallback `text`
    that notifications and screen readers show."""
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: a message takes {MAX_MESSAGE_BLOCKS}")
    return {
        # Slack reads `text` as mrkdwn too: names and upstream messages are escaped.
        "text": truncate(escape(text), MAX_FALLBACK_TEXT),
        "blocks": [block.to_dict() for block in blocks],
    }


def modal(
    title: str,
    blocks: Sequence[Block],
    *,
    callback_id: str,
    submit: str | None = None,
    close: str = "Cancel",
    private_metadata: str = "",
) -> Json:
    if len(blocks) > MAX_VIEW_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: a view takes {MAX_VIEW_BLOCKS}")
    return View(
        type="modal",
        callback_id=callback_id,
        title=plain(title, MAX_MODAL_TITLE),
        submit=plain(submit, MAX_MODAL_BUTTON) if submit else None,
        close=plain(close, MAX_MODAL_BUTTON),
        blocks=list(blocks),
        private_metadata=private_metadata or None,
    ).to_dict()


def home(blocks: Sequence[Block]) -> Json:
    if len(blocks) > MAX_VIEW_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: a view takes {MAX_VIEW_BLOCKS}")
    return View(type="home", blocks=list(blocks)).to_dict()


# --- integrations, as every list, card and status shows them ----------------------------------


@dataclass(frozen=True)
class IntegrationOverview:
    """One integration as a list row or a card shows it; the listener gathers it from the
    services (the last run from the sync_runs table, the next run from the scheduler)."""

    integration: Integration
    last_run: SyncRun | None = None
    next_run: datetime | None = None
    next_period: str | None = None  # the YYYY-MM the next run pulls
    payouts: Payouts | None = None  # `/amazon status` only

    @property
    def authorization_expires_at(self) -> datetime | None:
        authorized = self.integration.amazon_authorized_at
        return authorized + AMAZON_AUTHORIZATION_LIFETIME if authorized else None


_STATUS = {
    IntegrationStatus.ACTIVE: ":large_green_circle: Active",
    IntegrationStatus.PENDING_AUTHORIZATION: ":hourglass_flowing_sand: Waiting to be connected",
    IntegrationStatus.STOPPED: ":double_vertical_bar: Stopped",
    IntegrationStatus.AUTHORIZATION_EXPIRED: ":red_circle: Amazon authorization expired",
}


def status_text(integration: Integration) -> str:
    label = _STATUS.get(IntegrationStatus(integration.status), integration.status)
    if integration.status == IntegrationStatus.PENDING_AUTHORIZATION:
        missing = [
            provider
            for provider, token in (
                ("Amazon", integration.amazon_refresh_token_encrypted),
                ("Xero", integration.xero_refresh_token_encrypted),
            )
            if token is None
        ]
        label += f" (connect {' and '.join(missing)})" if missing else ""
    return label


def _run_result(run: SyncRun) -> Json:
    result = (run.summary or {}).get("result")
    return result if isinstance(result, dict) else {}


def run_outcome(run: SyncRun) -> str:
    """What became of a run, in a line: "October 2026: 12 of 5,031 documents failed"."""
    period = describe_period(run.period)
    result = _run_result(run)
    failed = int(result.get("failed", 0))
    total = int(result.get("documents", 0)) + failed
    status = RunStatus(run.status)
    if status == RunStatus.RUNNING:
        outcome = f"running since {when(run.started_at)}"
    elif status == RunStatus.SUCCEEDED:
        outcome = f":white_check_mark: {plural(total, 'document')} in Xero"
    elif status == RunStatus.PARTIAL:
        outcome = f":warning: {number(failed)} of {plural(total, 'document')} failed"
    elif status == RunStatus.WAITING:
        outcome = ":hourglass_flowing_sand: waiting for Amazon's report"
        if run.next_attempt_at:
            outcome += f", next try {when(run.next_attempt_at)}"
    else:
        outcome = f":x: could not proceed: {escape(run.error_message or 'unknown error')}"
    if run.finished_at and status != RunStatus.WAITING:
        outcome += f" ({when(run.finished_at)})"
    return truncate(f"{period}: {outcome}", 600)


def next_run_text(overview: IntegrationOverview) -> str:
    if overview.next_run is None:
        return "not scheduled"
    text = when(overview.next_run)
    if overview.next_period:
        text += f" for {describe_period(overview.next_period)}"
    return text


def authorization_text(overview: IntegrationOverview, now: datetime) -> str | None:
    """When Amazon's authorization lapses, flagged in its last week; None before consent."""
    expires = overview.authorization_expires_at
    if expires is None:
        return None
    if expires <= now:
        return f":red_circle: lapsed {when(expires)}"
    text = f"until {when(expires)} ({relative(expires, now)})"
    return f":warning: {text}" if expires - now <= AUTHORIZATION_WARNING else text


def card_text(overview: IntegrationOverview, now: datetime) -> str:
    """The lines a list row and a Home card show for one integration."""
    integration = overview.integration
    last = run_outcome(overview.last_run) if overview.last_run else "none yet"
    lines = [
        f"*{escape(integration.name)}*  {status_text(integration)}",
        f"*Last run:* {last}",
        f"*Next run:* {next_run_text(overview)}",
    ]
    expires = overview.authorization_expires_at
    # A card mentions Amazon's authorization only when it needs someone (status shows it always).
    if expires is not None and expires - now <= AUTHORIZATION_WARNING:
        lines.append(f"*Amazon authorization:* {authorization_text(overview, now)}")
    return "\n".join(lines)


def manage_buttons(overview: IntegrationOverview, now: datetime) -> list[ButtonElement]:
    """What an admin can do to one integration in its current state."""
    integration = overview.integration
    value = str(integration.id)
    name = escape(integration.name)
    status = IntegrationStatus(integration.status)
    found: list[ButtonElement] = []
    if status == IntegrationStatus.ACTIVE:
        found.append(button("Sync now", ids.SYNC_NOW, value, style="primary"))
    found.append(button("Settings", ids.OPEN_SETTINGS, value))
    if status == IntegrationStatus.ACTIVE:
        found.append(button("Stop", ids.STOP_INTEGRATION, value))
    elif status == IntegrationStatus.STOPPED:
        found.append(
            button(
                "Activate",
                ids.ACTIVATE_INTEGRATION,
                value,
                confirm=confirm(
                    "Activate integration",
                    f"*{name}* will pull and post the next period on schedule again.",
                    "Activate",
                ),
            )
        )
    elif status == IntegrationStatus.PENDING_AUTHORIZATION:
        found.append(button("Connect", ids.SEND_CONNECT_LINKS, value, style="primary"))
    expires = overview.authorization_expires_at
    if status == IntegrationStatus.AUTHORIZATION_EXPIRED or (
        expires is not None and expires - now <= AUTHORIZATION_WARNING
    ):
        found.append(button("Refresh authorization", ids.REFRESH_INTEGRATION, value))
    return found


def page_bounds(total: int, page: int, size: int) -> tuple[int, int, int]:
    """The page actually shown (clamped), and its [start, end) in the list."""
    last_page = max(0, (total - 1) // size)
    page = min(max(page, 0), last_page)
    start = page * size
    return page, start, min(start + size, total)


def pager(action_id: str, total: int, page: int, size: int) -> list[Block]:
    """ "Showing 21–40 of 500" and Previous / Next buttons, when there is more than a page."""
    page, start, end = page_bounds(total, page, size)
    if total <= size:
        return []
    buttons = []
    if page > 0:
        buttons.append(button("Previous", action_id, str(page - 1)))
    if end < total:
        buttons.append(button("Next", action_id, str(page + 1)))
    return [
        context(f"Showing {number(start + 1)}–{number(end)} of {number(total)}"),
        actions(*buttons),
    ]
