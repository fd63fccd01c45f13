"""The Bolt app: one Web API client, the services injected, every listener registered here."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient

import handlers
from bot.container import Container
from bot.lazy import JobQueue, ProcessLazyRunner, ThreadLazyRunner
from handlers.context import inject

log = logging.getLogger(__name__)


def _shared_client(client: WebClient) -> Callable[..., Any]:
    """Bolt builds a Web API client per request; listeners get the process's own instead, so
    that their messages keep each channel's pace with the notifier's."""

    def middleware(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["client"] = client
        return next()

    return middleware


# Slack refuses a signature older than five minutes: a request can only come back within them.
REPLAY_WINDOW = 300.0


def _once_per_request(clock: Callable[[], float] = time.monotonic) -> Callable[..., Any]:
    """A request Slack sends again (a retry, with X-Slack-Retry-Num) or that someone replays
    (the same signed body within the window) is answered, and acts once: each click, command
    or submission has its own trigger_id, each event its event_id."""
    seen: OrderedDict[str, float] = OrderedDict()  # identity -> when it stops counting
    lock = threading.Lock()

    def middleware(req: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
        identity = _identity(req)
        if req.lazy_only or identity is None:  # the work after an ack is not a new request
            return next()
        now = clock()
        with lock:
            while seen and _oldest(seen) <= now:
                seen.popitem(last=False)
            if identity in seen:
                log.info("A Slack request came again (%s); answered, not acted on", identity)
                return BoltResponse(status=200, body="")
            seen[identity] = now + REPLAY_WINDOW
        try:
            response = next()
        except Exception:
            forget(identity)
            raise
        if response is not None and response.status >= 500:
            forget(identity)  # it did not act: Slack's retry of it must
        return response

    def forget(identity: str) -> None:
        with lock:
            seen.pop(identity, None)

    return middleware


def _oldest(seen: OrderedDict[str, float]) -> float:
    """When the oldest identity stops counting (they are kept in the order they came)."""
    return next(iter(seen.values()))


def _identity(req: BoltRequest) -> str | None:
    body = req.body or {}
    for field in ("trigger_id", "event_id"):
        if isinstance(body.get(field), str):
            return f"{field}:{body[field]}"
    signature = req.headers.get("x-slack-signature", [None])[0] if req.headers else None
    stamp = req.headers.get("x-slack-request-timestamp", [None])[0] if req.headers else None
    return f"signature:{stamp}:{signature}" if signature else None


def create_slack_app(
    container: Container,
    *,
    listener_executor: ThreadPoolExecutor | None = None,
    worker: JobQueue | None = None,
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
        ProcessLazyRunner(log, worker) if worker else ThreadLazyRunner(log, executor, app.dispatch)
    )
    app.middleware(_once_per_request())
    app.middleware(_shared_client(container.slack_client))
    app.middleware(inject(container))
    handlers.register(app)
    return app
