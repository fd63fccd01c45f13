"""The Bolt app: one Web API client, the services injected, every listener registered here."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

import handlers
from bot.container import Container
from bot.worker import ProcessLazyRunner, SlackWorker, ThreadLazyRunner
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


def create_slack_app(
    container: Container,
    *,
    listener_executor: ThreadPoolExecutor | None = None,
    worker: SlackWorker | None = None,
    verify_requests: bool = True,
) -> App:
    """The listeners' work after their ack runs in `worker`'s process when one is given, else
    on `listener_executor` (Bolt's own pool by default; whoever passes one can wait for the
    work to finish, as tests do before closing the database). `verify_requests=False` is for
    the worker's app alone: its requests were verified by the web process."""
    container.settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    executor = listener_executor or ThreadPoolExecutor(max_workers=5)  # Bolt's default pool
    app = App(
        listener_executor=executor,
        signing_secret=container.settings.slack_signing_secret,
        client=web_client(container),
        # auth.test at start would make start-up depend on Slack being reachable.
        token_verification_enabled=False,
        request_verification_enabled=verify_requests,
        logger=log,
    )
    runner = app.listener_runner
    runner.lazy_listener_runner = (
        ProcessLazyRunner(log, worker) if worker else ThreadLazyRunner(log, executor)
    )
    app.middleware(inject(container))
    handlers.register(app)
    return app
