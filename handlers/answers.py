"""Answering the one who typed or clicked, and no one else."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from handlers.blocks import notice_modal

log = logging.getLogger(__name__)


def reply(respond: Respond, message: dict[str, Any], **options: Any) -> None:
    """Through the response_url of a command or of a message's button."""
    respond(**message, **options, response_type="ephemeral")


def tell(
    body: dict[str, Any], respond: Respond | None, client: WebClient, message: dict[str, Any]
) -> None:
    """After the ack, wherever the request came from: through its response_url (a command, a
    message's button), else in its channel, else in a modal (App Home: no channel, and the
    bot has no DMs). Beside the message clicked on, never in its place."""
    user = body.get("user_id") or body.get("user", {}).get("id")
    channel = body.get("channel_id") or body.get("channel", {}).get("id")
    if respond is not None and body.get("response_url"):
        reply(respond, message, replace_original=False)
    elif channel:
        client.chat_postEphemeral(channel=channel, user=user, **message)
    elif body.get("trigger_id"):
        client.views_open(trigger_id=body["trigger_id"], view=notice_modal(message))
    else:
        log.warning("nowhere to tell %s: %s", user, message["text"])
