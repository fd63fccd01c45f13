"""The error handlers: domain errors become a modal error or a message only the user sees.

`handle_error` is Bolt's global error handler; `report_after_ack` does the same for work done
after the ack, which Bolt's own lazy runner would only log (bot.slack_app installs it)."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.answers import tell
from handlers.blocks import errors_response, notice_message
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
    error: Exception,
    request: BoltRequest,
    body: dict[str, Any],
    respond: Respond | None,
    client: WebClient,
) -> BoltResponse | None:
    """An error before or in the ack: its answer can still carry the message. Or an error in
    a listener middleware (`admin_only`) when the work after an ack is dispatched."""
    if request.lazy_only:
        report_after_ack(error, body, respond, client)
        return None
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
    try:
        tell(body, respond, client, notice_message(f":warning: {_message(error)}"))
    except SlackApiError as failed:
        user = body.get("user_id") or body.get("user", {}).get("id")
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
