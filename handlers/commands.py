"""`/amazon ...`: acked at once; after the ack, answer the one who asked or open a modal."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers import blocks
from handlers.authz import is_admin, require_admin
from handlers.blocks.common import describe_period
from handlers.context import Services, ack_at_once, services_of, workspace_of
from handlers.overviews import overview, overviews
from services.connect import STATE_LIFETIME, Purpose
from services.errors import ErrorKind, ServiceError
from services.models import Integration
from services.periods import previous_period

log = logging.getLogger(__name__)

COMMAND = "/amazon"


def reply(respond: Respond, message: dict[str, Any], **options: Any) -> None:
    """Only the person who asked sees the answer."""
    respond(**message, **options, response_type="ephemeral")


def amazon(
    command: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext
) -> None:
    services = services_of(context)
    user, workspace = command["user_id"], workspace_of(context)
    words = command.get("text", "").split()
    action = words[0].lower() if words else "help"
    rest = " ".join(words[1:])
    now = datetime.now(UTC)

    if action == "help":
        reply(respond, blocks.help_message(can_manage=is_admin(context, client, user)))
    elif action == "list":
        reply(
            respond,
            blocks.integration_list_message(
                overviews(services, workspace), can_manage=is_admin(context, client, user), now=now
            ),
        )
    elif action == "setup":
        require_admin(context, client, user, "set up integrations")
        client.views_open(
            trigger_id=command["trigger_id"], view=blocks.setup_modal(today=now.date())
        )
    elif action in ("status", "logs"):
        _show(action, services, workspace, rest, respond, context, client, user)
    elif action in ("settings", "stop", "activate", "refresh", "sync"):
        _manage(action, services, workspace, command, rest, respond, context, client)
    else:
        # A typo: the help, naming the nearest command.
        reply(
            respond, blocks.help_message(can_manage=is_admin(context, client, user), typed=action)
        )


def _show(
    action: str,
    services: Services,
    workspace: str,
    name: str,
    respond: Respond,
    context: BoltContext,
    client: WebClient,
    user: str,
) -> None:
    integration = _named(action, services, workspace, name, respond)
    if integration is None:
        return
    if action == "status":
        reply(
            respond,
            blocks.status_message(
                overview(services, integration),
                can_manage=is_admin(context, client, user),
                now=datetime.now(UTC),
            ),
        )
    else:
        reply(
            respond,
            blocks.logs_message(
                integration.name,
                runs=services.sync.runs(integration.id),
                audit=services.integrations.audit_log(integration.id),
            ),
        )


def _named(
    action: str, services: Services, workspace: str, name: str, respond: Respond
) -> Integration | None:
    """The integration, or None after saying how to name one and listing the names that exist."""
    if not name:
        reply(respond, blocks.name_needed_message(action, _names(services, workspace)))
        return None
    try:
        return services.integrations.get(name, workspace)
    except ServiceError as error:
        if error.kind != ErrorKind.NOT_FOUND:
            raise
        reply(respond, blocks.unknown_integration_message(name, _names(services, workspace)))
        return None


def _names(services: Services, workspace: str) -> list[str]:
    return [integration.name for integration in services.integrations.list(workspace)]


def _manage(
    action: str,
    services: Services,
    workspace: str,
    command: dict[str, Any],
    rest: str,
    respond: Respond,
    context: BoltContext,
    client: WebClient,
) -> None:
    user = command["user_id"]
    # Before the name is looked up: a refused user learns nothing of which names exist.
    require_admin(context, client, user, f"{action} integrations")
    period = None
    if action == "sync" and rest.split() and _looks_like_period(rest.split()[-1]):
        period = rest.split()[-1]
        rest = " ".join(rest.split()[:-1])
    integration = _named(action, services, workspace, rest, respond)
    if integration is None:
        return
    trigger = command["trigger_id"]
    if action == "settings":
        open_settings(services, client, trigger, integration)
    elif action == "stop":
        view = blocks.stop_confirm_modal(overview(services, integration))
        client.views_open(trigger_id=trigger, view=view)
    elif action == "activate":
        activated = services.integrations.activate(
            integration.name, actor=user, workspace_id=workspace
        )
        reply(
            respond,
            blocks.notice_message(f"{activated.name} is active: the next period is pulled."),
        )
    elif action == "refresh":
        reply(respond, refresh_link(services, integration, user, workspace))
    else:
        period = period or previous_period(datetime.now(UTC))
        reply(respond, start_sync(services, integration, period, workspace, user))


def _looks_like_period(word: str) -> bool:
    return len(word) == 7 and word[4] == "-" and word.replace("-", "").isdigit()


def open_settings(
    services: Services, client: WebClient, trigger_id: str, integration: Integration
) -> None:
    """The settings modal opens at once (its trigger lasts 3 s) with the tax types the last
    sync saw, then shows the organisation's live list, with names, once Xero has answered."""
    seen = set(integration.xero_tax_types.values()) | set(integration.tax_overrides.values())
    view = blocks.settings_modal(integration, tax_types=[(code, code) for code in sorted(seen)])
    opened = client.views_open(trigger_id=trigger_id, view=view)["view"]
    if integration.xero_tenant_id is None:
        return
    try:
        live = services.sync.tax_types(integration)
    except ServiceError as error:
        log.warning("settings of %s show the known tax types: %s", integration.name, error)
        return
    try:
        client.views_update(
            view_id=opened["id"],
            hash=opened["hash"],
            view=blocks.settings_modal(integration, tax_types=live),
        )
    except SlackApiError as error:
        # Closed or submitted meanwhile: nothing to show it in.
        log.info("settings modal not updated: %s", error.response.get("error"))


def refresh_link(
    services: Services, integration: Integration, user: str, workspace: str
) -> dict[str, Any]:
    url = services.connect.amazon_consent_url(
        integration, actor=user, purpose=Purpose.REFRESH, workspace_id=workspace
    )
    return blocks.refresh_link_message(
        integration.name, amazon_url=url, expires_at=datetime.now(UTC) + STATE_LIFETIME
    )


def start_sync(
    services: Services, integration: Integration, period: str, workspace: str, user: str
) -> dict[str, Any]:
    """The sync runs on its own thread; its progress and outcome are posted by the notifier.
    `integration` must be `workspace`'s: checked again before the sync is started."""

    def work() -> None:
        try:
            services.sync.sync_period(integration, period, by=user)
        except ServiceError as error:  # e.g. already running: nothing was started
            log.warning("sync of %s %s did not start: %s", integration.name, period, error)

    services.sync.check_can_sync(integration, period, workspace_id=workspace, actor=user)
    services.background.submit(work)
    return blocks.notice_message(
        f"Syncing {describe_period(period)} for {integration.name}: progress and "
        "the summary are posted in its channels."
    )


def register(app: App) -> None:
    app.command(COMMAND)(ack=ack_at_once, lazy=[amazon])
