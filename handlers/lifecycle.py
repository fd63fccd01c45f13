"""What an admin does to one integration from Slack: open its settings, stop it (asked first),
activate it, sync a month, get a new Amazon consent link, get the links to connect it.

`/amazon <verb> NAME` finds the integration by name, a button by the id it carries, both in
the asking workspace alone; then both run the same flow here, so a command and its button
do and say the same. Admins only: `admin_only` is declared where the listeners are registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt import BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers import blocks
from handlers.answers import tell
from handlers.blocks.common import describe_period
from handlers.context import Services, services_of, workspace_of
from handlers.overviews import overview
from services.connect import STATE_LIFETIME, Purpose
from services.errors import ServiceError
from services.models import Integration
from services.periods import previous_period

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asker:
    """Who asked, from which workspace, and how to answer them alone."""

    user: str
    workspace: str
    trigger_id: str
    services: Services
    client: WebClient
    tell: Callable[[dict[str, Any]], None]

    @classmethod
    def of(
        cls, body: dict[str, Any], respond: Respond | None, client: WebClient, context: BoltContext
    ) -> Asker:
        """From a command's or a click's request."""
        return cls(
            user=body.get("user_id") or body["user"]["id"],
            workspace=workspace_of(context),
            trigger_id=body["trigger_id"],
            services=services_of(context),
            client=client,
            tell=lambda message: tell(body, respond, client, message),
        )


Flow = Callable[[Asker, Integration], None]


def open_settings(asker: Asker, integration: Integration) -> None:
    """The settings modal opens at once (its trigger lasts 3 s) with the tax types the last
    sync saw, then shows the organisation's live list, with names, once Xero has answered."""
    seen = set(integration.xero_tax_types.values()) | set(integration.tax_overrides.values())
    view = blocks.settings_modal(integration, tax_types=[(code, code) for code in sorted(seen)])
    opened = asker.client.views_open(trigger_id=asker.trigger_id, view=view)["view"]
    if integration.xero_tenant_id is None:
        return
    try:
        live = asker.services.sync.tax_types(integration)
    except ServiceError as error:
        log.warning("settings of %s show the known tax types: %s", integration.name, error)
        return
    try:
        asker.client.views_update(
            view_id=opened["id"],
            hash=opened["hash"],
            view=blocks.settings_modal(integration, tax_types=live),
        )
    except SlackApiError as error:
        # Closed or submitted meanwhile: nothing to show it in.
        log.info("settings modal not updated: %s", error.response.get("error"))


def confirm_stop(asker: Asker, integration: Integration) -> None:
    """Stopping asks first, saying what it means; the modal's submission stops it."""
    view = blocks.stop_confirm_modal(overview(asker.services, integration))
    asker.client.views_open(trigger_id=asker.trigger_id, view=view)


def activate(asker: Asker, integration: Integration) -> None:
    activated = asker.services.integrations.activate(
        integration.id, actor=asker.user, workspace_id=asker.workspace
    )
    asker.tell(
        blocks.notice_message(
            f"{activated.name} is active again: the next period is pulled on schedule."
        )
    )


def start_sync(asker: Asker, integration: Integration, period: str | None = None) -> None:
    """Last month unless `period` says which. The sync runs on the background pool; its
    progress and outcome are posted in the integration's channels by the notifier."""
    services, user = asker.services, asker.user
    period = period or previous_period(datetime.now(UTC))

    def work() -> None:
        try:
            services.sync.sync_period(integration, period, by=user)
        except ServiceError as error:  # e.g. already running: nothing was started
            log.warning("sync of %s %s did not start: %s", integration.name, period, error)

    # What would stop it (another sync holding the month, ...) is said now, to the asker: the
    # background work could only log it.
    services.sync.check_can_sync(integration, period, workspace_id=asker.workspace, actor=user)
    services.background.submit(work)
    asker.tell(
        blocks.notice_message(
            f"Syncing {describe_period(period)} for {integration.name}: progress and "
            "the summary are posted in its channels."
        )
    )


def send_refresh_link(asker: Asker, integration: Integration) -> None:
    """A new Amazon consent, which restarts the 365 days: the link is the asker's alone."""
    url = asker.services.connect.amazon_consent_url(
        integration, actor=asker.user, purpose=Purpose.REFRESH, workspace_id=asker.workspace
    )
    asker.tell(
        blocks.refresh_link_message(
            integration.name, amazon_url=url, expires_at=datetime.now(UTC) + STATE_LIFETIME
        )
    )


def open_connect_links(asker: Asker, integration: Integration) -> None:
    """Fresh links for an integration not connected yet, as setup showed them."""
    view = connect_links(asker.services, integration, user=asker.user, workspace=asker.workspace)
    asker.client.views_open(trigger_id=asker.trigger_id, view=view)


def connect_links(
    services: Services, integration: Integration, *, user: str, workspace: str
) -> dict[str, Any]:
    """The modal with a link for each side to connect, each link `user`'s."""
    connect = services.connect
    return blocks.connect_links_modal(
        integration.name,
        amazon_url=connect.amazon_consent_url(integration, actor=user, workspace_id=workspace),
        xero_url=connect.xero_consent_url(integration, actor=user, workspace_id=workspace),
        expires_at=datetime.now(UTC) + STATE_LIFETIME,
    )
