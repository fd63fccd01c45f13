"""`python -m bot run`: the web server, on waitress, and the monthly sync scheduler."""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode import SocketModeHandler
from waitress import serve as waitress_serve

from bot.container import Container
from bot.scheduler import SyncScheduler
from bot.slack_app import create_slack_app
from bot.web import create_web_app

log = logging.getLogger(__name__)


def serve(container: Container) -> int:
    # Build what the callbacks need now: a missing setting stops start-up, not a user's consent.
    container.connect  # noqa: B018
    slack = create_slack_app(container)
    container.migrate()
    settings = container.settings
    if settings.slack_app_token:
        # Socket Mode: Slack's events come over a websocket; the web server keeps the callbacks.
        SocketModeHandler(slack, settings.slack_app_token).connect()
        app = create_web_app(container)
    else:
        app = create_web_app(container, slack)
    log.info(
        "serving on port %s; OAuth callbacks under %s/oauth/",
        settings.port,
        settings.public_base_url,
    )
    scheduler = SyncScheduler(container)
    scheduler.start()
    try:
        waitress_serve(app, host="0.0.0.0", port=settings.port, threads=8)
    finally:
        scheduler.stop()
    return 0
