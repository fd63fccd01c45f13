"""Messages about connecting: both sides connected, a fresh Amazon consent link, the warning
before Amazon's 365-day authorization lapses, and a change of Xero organisation to confirm."""

from __future__ import annotations

from datetime import date, datetime

from slack_sdk.models.blocks import Block

from handlers.blocks import ids
from handlers.blocks.common import (
    IntegrationOverview,
    Json,
    actions,
    button,
    confirm,
    context,
    day,
    describe_period,
    escape,
    link_button,
    message,
    relative,
    section,
    user,
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


def xero_change_value(integration_id: int, tenant_id: str) -> str:
    """The Confirm/Cancel buttons name the organisation asked for: a click answers for that
    consent only, not for one that replaced it meanwhile."""
    return f"{integration_id}:{tenant_id}"


def parse_xero_change_value(value: str) -> tuple[int, str]:
    integration_id, _, tenant_id = value.partition(":")
    return int(integration_id), tenant_id


def _organisation(name: str | None, tenant_id: str | None) -> str:
    if name and tenant_id:
        return f"{name} ({tenant_id})"
    return name or tenant_id or "none"


def xero_change_message(integration: Integration) -> Json:
    """A Xero consent would move an integration's books to another organisation: held until
    an admin confirms it here."""
    name, asked_by = integration.name, integration.xero_pending_by or "someone"
    # Names are the organisations' owners' to choose, and can be copied: the ids tell apart.
    current = _organisation(integration.xero_tenant_name, integration.xero_tenant_id)
    wanted = _organisation(integration.xero_pending_tenant_name, integration.xero_pending_tenant_id)
    value = xero_change_value(integration.id, integration.xero_pending_tenant_id or "")
    text = f"Move {name} from Xero organisation {current} to {wanted}? Asked by {asked_by}"
    return message(
        text,
        [
            section(
                f":warning: {user(asked_by)} connected *{escape(name)}* to the Xero "
                f"organisation *{escape(wanted)}*; it posts to *{escape(current)}*. Its Amazon "
                "sales go to the new organisation only once an admin confirms."
            ),
            actions(
                button(
                    "Move to the new organisation",
                    ids.CONFIRM_XERO_CHANGE,
                    value,
                    style="danger",
                    confirm=confirm(
                        "Move the books?",
                        f"From now on *{escape(name)}* posts to *{escape(wanted)}*.",
                        "Move",
                        danger=True,
                    ),
                ),
                button("Keep the current one", ids.CANCEL_XERO_CHANGE, value),
            ),
        ],
    )


def xero_change_answered_message(integration: Integration, *, moved: bool, by: str) -> Json:
    """The question, once answered: the buttons go, who answered stays."""
    name, organisation = integration.name, integration.xero_tenant_name or ""
    verb = "now posts" if moved else "keeps posting"
    return message(
        f"{name} {verb} to the Xero organisation {organisation}",
        [
            section(
                f"*{escape(name)}* {verb} to the Xero organisation *{escape(organisation)}*, "
                f"as {user(by)} decided."
            )
        ],
    )
