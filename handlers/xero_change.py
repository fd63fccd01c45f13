"""A Xero consent for another organisation than the one an integration posts to: asked about
in the integration's channel, and applied only when an admin confirms it there."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers import blocks
from handlers.authz import admin_only
from handlers.blocks import ids
from handlers.context import ack_at_once, services_of, workspace_of
from services.errors import ErrorKind, ServiceError
from services.models import Integration

log = logging.getLogger(__name__)


def ask_to_confirm(
    client: WebClient, integration: Integration, default_channel: str | None
) -> bool:
    """Post the question with Confirm/Cancel where the integration's errors go (its own
    channel, else the default one); False when there is nowhere to ask."""
    channel = integration.errors_channel or integration.summary_channel or default_channel
    if channel is None:
        log.warning("%s: no channel to confirm a Xero organisation change in", integration.name)
        return False
    try:
        client.chat_postMessage(channel=channel, **blocks.xero_change_message(integration))
    except SlackApiError as error:
        log.warning(
            "Xero change of %s not asked: %s", integration.name, error.response.get("error")
        )
        return False
    return True


def answered(body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    user, workspace = body["user"]["id"], workspace_of(context)
    action = body["actions"][0]
    try:
        integration_id, tenant_id = blocks.parse_xero_change_value(str(action.get("value")))
    except ValueError:
        raise ServiceError(
            ErrorKind.NOT_FOUND, "There is no such integration.", retryable=False
        ) from None
    integrations = services_of(context).integrations
    moving = action["action_id"] == ids.CONFIRM_XERO_CHANGE
    answer = integrations.confirm_xero_change if moving else integrations.cancel_xero_change
    integration = answer(integration_id, tenant_id, actor=user, workspace_id=workspace)
    message = blocks.xero_change_answered_message(integration, moved=moving, by=user)
    # In place of the question, for everyone in the channel.
    respond(**message, response_type="in_channel", replace_original=True)


def register(app: App) -> None:
    admins = admin_only("move an integration to another Xero organisation")
    for action_id in (ids.CONFIRM_XERO_CHANGE, ids.CANCEL_XERO_CHANGE):
        app.action(action_id, middleware=[admins])(ack=ack_at_once, lazy=[answered])
