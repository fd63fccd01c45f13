"""The error handlers: domain errors become a modal error or a message only the user sees.

`handle_error` is Bolt's global error handler; `report_after_ack` does the same for work done
after the ack, which Bolt's own lazy runner would only log (bot.slack_app installs it)."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.blocks import errors_response, notice_message, notice_modal
from services.errors import ServiceError
from services.integrations import InvalidInput

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on our side; the details are in the bot's log."


def _message(error: Exception) -> str:
    if isinstance(error, ServiceError):
        return error.message
    log.exception("unexpected error in a Slack listener", exc_info=error)
    return UNEXPECTED


def handle_error(
    error: Exception, body: dict[str, Any], respond: Respond | None
) -> BoltResponse | None:
    """An error before or in the ack: its answer can still carry the message."""
    message = _message(error)
    if body.get("type") == "view_submission":
        # Shown under the fields of the open modal: each its own, else under the first.
        errors = error.errors if isinstance(error, InvalidInput) else {}
        return _json(errors_response(errors or _first_field(body, message)))
    notice = notice_message(f":warning: {message}")
    if respond is not None and body.get("response_url"):
        respond(**notice, response_type="ephemeral", replace_original=False)
        return None
    return _json({"response_type": "ephemeral", **notice})


def report_after_ack(
    error: Exception, body: dict[str, Any], respond: Respond | None, client: WebClient
) -> None:
    """An error in a listener's work after its ack (Bolt's lazy listeners): Slack has had its
    answer, so the message goes where the user typed or clicked, seen by them alone."""
    text = f":warning: {_message(error)}"
    user = body.get("user_id") or body.get("user", {}).get("id")
    channel = body.get("channel_id") or body.get("channel", {}).get("id")
    try:
        if respond is not None and body.get("response_url"):  # a command, a message's button
            respond(**notice_message(text), response_type="ephemeral", replace_original=False)
        elif channel:
            client.chat_postEphemeral(channel=channel, user=user, **notice_message(text))
        elif body.get("trigger_id"):  # App Home: no channel, and the bot has no DMs
            client.views_open(trigger_id=body["trigger_id"], view=notice_modal(text))
        else:
            log.warning("could not tell %s: %s", user, text)
    except SlackApiError as failed:
        log.warning("could not tell %s of an error: %s", user, failed.response.get("error"))


def _first_field(body: dict[str, Any], message: str) -> dict[str, str]:
    blocks = body.get("view", {}).get("blocks", [])
    first = next((b["block_id"] for b in blocks if b.get("type") == "input"), None)
    return {first: message} if first else {}


def _json(payload: dict[str, Any]) -> BoltResponse:
    return BoltResponse(
        status=200, body=json.dumps(payload), headers={"content-type": "application/json"}
    )


def register(app: App) -> None:
    app.error(handle_error)
