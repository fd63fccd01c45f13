"""`python -m bot run`: the web server on waitress, and its worker process.

The web process answers HTTP (Slack's requests, acked at once; the OAuth callbacks; the health
check) and receives Socket Mode events. Everything slower runs in the worker process
(bot.worker): Slack listeners' work after the ack, and the monthly sync scheduler.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from slack_bolt.adapter.socket_mode import SocketModeHandler
from waitress import serve as waitress_serve

from bot.container import Container
from bot.slack_app import create_slack_app
from bot.web import create_web_app
from bot.worker import SlackWorker

log = logging.getLogger(__name__)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A container's stop is SIGTERM: leave through the finally blocks, stopping the worker.
    sys.exit(0)


def serve(container: Container) -> int:
    # Build what the callbacks need now: a missing setting stops start-up, not a user's consent.
    container.connect  # noqa: B018
    container.migrate()
    settings = container.settings
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker = SlackWorker(settings)
    slack = create_slack_app(container, worker=worker)
    worker.start()
    try:
        if settings.slack_app_token:
            # Socket Mode: Slack's events come over a websocket; the web server keeps the callbacks.
            SocketModeHandler(slack, settings.slack_app_token).connect()
            app = create_web_app(container, worker=worker)
        else:
            app = create_web_app(container, slack, worker=worker)
        log.info(
            "serving on port %s; OAuth callbacks under %s/oauth/",
            settings.port,
            settings.public_base_url,
        )
        waitress_serve(app, host="0.0.0.0", port=settings.port, threads=8)
    finally:
        worker.stop()
    return 0
