"""Messages about connecting: both sides connected, a fresh Amazon consent link, and the
warning before Amazon's 365-day authorization lapses."""

from __future__ import annotations

from datetime import date, datetime

from slack_sdk.models.blocks import Block

from handlers.blocks import ids
from handlers.blocks.common import (
    IntegrationOverview,
    Json,
    actions,
    button,
    context,
    day,
    describe_period,
    escape,
    link_button,
    message,
    relative,
    section,
    when,
)
from services.models import Integration


def connected_message(name: str, *, first_sync: date, period: str) -> Json:
    """Posted once both consent callbacks came back."""
    label = describe_period(period)
    text = f"Integration {name} is connected; first sync on {day(first_sync)} for {label}"
    return message(
        text,
        [
            section(
                f":link: Integration *{escape(name)}* is connected; first sync on "
                f"{day(first_sync)} for {label}."
            )
        ],
    )


def refresh_link_message(name: str, *, amazon_url: str, expires_at: datetime) -> Json:
    """`/amazon refresh NAME` or a Refresh button: a new Amazon consent, which restarts the
    365 days. Shown only to the admin who asked (the link is theirs to use)."""
    blocks: list[Block] = [
        section(
            f"Authorize Amazon again for *{escape(name)}*: sign in to Seller Central as the "
            "same seller. The authorization then lasts another 365 days."
        ),
        actions(
            link_button("Authorize Amazon again", amazon_url, ids.CONNECT_AMAZON, style="primary")
        ),
        context(f"The link works once and expires {when(expires_at)}."),
    ]
    return message(f"Authorize Amazon again for {name}", blocks)


def authorization_warning_message(integration: Integration, *, now: datetime) -> Json:
    """For the errors channel, from seven days before Amazon's authorization lapses."""
    expires = IntegrationOverview(integration).authorization_expires_at
    if expires is None:
        raise ValueError(f"{integration.name} has no Amazon authorization to warn about")
    name = integration.name
    text = (
        f"Amazon authorization for {name} lapses on {day(expires.date())} "
        f"({relative(expires, now)}): refresh it or syncs stop"
    )
    blocks: list[Block] = [
        section(
            f":warning: Amazon's authorization for *{escape(name)}* lapses {when(expires)} "
            f"({relative(expires, now)}). After that no period is pulled until an admin "
            "refreshes it."
        ),
        actions(button("Refresh", ids.REFRESH_INTEGRATION, str(integration.id), style="primary")),
    ]
    return message(text, blocks)
