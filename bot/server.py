"""`python -m bot run`: the web server, on waitress, and the monthly sync scheduler."""

from __future__ import annotations

import logging

from waitress import serve as waitress_serve

from bot.container import Container
from bot.scheduler import SyncScheduler
from bot.web import create_web_app

log = logging.getLogger(__name__)


def serve(container: Container) -> int:
    # Build what the callbacks need now: a missing setting stops start-up, not a user's consent.
    container.connect  # noqa: B018
    container.migrate()
    settings = container.settings
    app = create_web_app(container)
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
