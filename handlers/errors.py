"""The one global error handler: domain errors become a modal error or an ephemeral message."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.context.respond import Respond

from handlers.blocks import errors_response, notice_message
from services.errors import ServiceError
from services.integrations import InvalidInput

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on our side; the details are in the bot's log."


def handle_error(
    error: Exception, body: dict[str, Any], respond: Respond | None
) -> BoltResponse | None:
    if isinstance(error, ServiceError):
        message = error.message
    else:
        log.exception("unexpected error in a Slack listener", exc_info=error)
        message = UNEXPECTED
    if body.get("type") == "view_submission":
        # Shown under the fields of the open modal: each its own, else under the first.
        errors = error.errors if isinstance(error, InvalidInput) else {}
        return _json(errors_response(errors or _first_field(body, message)))
    notice = notice_message(f":warning: {message}")
    if respond is not None and body.get("response_url"):
        respond(**notice, response_type="ephemeral", replace_original=False)
        return None
    return _json({"response_type": "ephemeral", **notice})


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
