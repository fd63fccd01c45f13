"""The Bolt app: one Web API client, the services injected, every listener registered here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

import handlers
from bot.container import Container
from bot.worker import ProcessLazyRunner, SlackWorker, ThreadLazyRunner
from handlers.context import inject

log = logging.getLogger(__name__)


def _shared_client(client: WebClient) -> Callable[..., Any]:
    """Bolt builds a Web API client per request; listeners get the process's own instead, so
    that their messages keep each channel's pace with the notifier's."""

    def middleware(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["client"] = client
        return next()

    return middleware


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
        client=container.slack_client,
        # auth.test at start would make start-up depend on Slack being reachable.
        token_verification_enabled=False,
        request_verification_enabled=verify_requests,
        logger=log,
    )
    runner = app.listener_runner
    runner.lazy_listener_runner = (
        ProcessLazyRunner(log, worker) if worker else ThreadLazyRunner(log, executor)
    )
    app.middleware(_shared_client(container.slack_client))
    app.middleware(inject(container))
    handlers.register(app)
    return app
