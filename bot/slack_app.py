"""The Bolt app: one Web API client, the services injected, every listener registered here."""

from __future__ import annotations

import logging
from concurrent.futures import Executor

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

import handlers
from bot.container import Container
from handlers.context import inject

log = logging.getLogger(__name__)


def web_client(container: Container) -> WebClient:
    """The one place Slack's Web API is called from: retries on rate limits and dropped links."""
    settings = container.settings
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


def create_slack_app(container: Container, *, listener_executor: Executor | None = None) -> App:
    """`listener_executor` runs the listeners after their ack; whoever passes one can wait
    for them to finish (tests do, before closing the database)."""
    container.settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    app = App(
        listener_executor=listener_executor,
        signing_secret=container.settings.slack_signing_secret,
        client=web_client(container),
        # auth.test at start would make start-up depend on Slack being reachable.
        token_verification_enabled=False,
        logger=log,
    )
    app.middleware(inject(container))
    handlers.register(app)
    return app
