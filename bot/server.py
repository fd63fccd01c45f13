"""`python -m bot run`: the web server on waitress, and its worker process.

The web process answers HTTP (Slack's requests, acked at once; the OAuth callbacks; the health
check) and receives Socket Mode events. Everything slower runs in the worker process
(bot.worker): Slack listeners' work after the ack, and the monthly sync scheduler.

Waitress is set for hostile traffic (the README's "Running in production" puts a reverse proxy
in front of HTTP mode as well): bodies over 1 MiB are refused with 413 before they are read;
a request must arrive whole within CHANNEL_TIMEOUT of its first byte, however slowly it
trickles in; and there is room for far more idle or half-open connections than the threads,
which they never hold, so that a few hundred of them leave Slack's requests answered.
"""

from __future__ import annotations

import logging
import resource
import signal
import sys
import time
from types import FrameType
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from bot.container import Container
from bot.slack_app import create_slack_app
from bot.web import create_web_app
from bot.worker import SlackWorker

log = logging.getLogger(__name__)

# Slack's payloads are a few KiB (a large modal's state some tens); 1 MiB is generous.
MAX_BODY_BYTES = 1024 * 1024
# Slack gives up on an ack after 3 s, so a request still arriving after 10 s is worth nothing.
CHANNEL_TIMEOUT = 10
CONNECTION_LIMIT = 1000
WAITRESS_OPTIONS: dict[str, Any] = {
    "threads": 8,
    "max_request_body_size": MAX_BODY_BYTES,
    # Browsers may send a parent domain's cookies to the callbacks; nothing else is large.
    "max_request_header_size": 32 * 1024,
    # A body beyond this waits in a temporary file rather than in memory.
    "inbuf_overflow": 128 * 1024,
    "channel_timeout": CHANNEL_TIMEOUT,
    "cleanup_interval": 1,  # how often lapsed connections are looked for
    "connection_limit": CONNECTION_LIMIT,
    "asyncore_use_poll": True,  # select() stops at file descriptor 1024
    "ident": "amazon-xero-bot",
}


class OncePerMinute(logging.Filter):
    """Waitress warns at every request queued behind busy threads: under a flood, a line per
    request. One a minute says as much."""

    def __init__(self) -> None:
        super().__init__()
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last < 60:
            return False
        self._last = now
        return True


class RequestDeadlineChannel(HTTPChannel):
    """Waitress drops a connection CHANNEL_TIMEOUT after its last byte, so one header line every
    50 s would hold it forever. Here a request's clock starts at its first byte: a request still
    incomplete CHANNEL_TIMEOUT later is dropped, while the gaps between requests of a
    keep-alive connection count as before."""

    _request_started = 0.0

    def received(self, data: bytes) -> bool:
        reading = self.request
        result: bool = super().received(data)
        # With nothing partly read, the last byte's time (set by handle_read) counts.
        if self.request is not None:
            if self.request is reading:
                self.last_activity = self._request_started
            else:  # these bytes began a new request
                self._request_started = self.last_activity
        return result


def create_http_server(app: Any, host: str, port: int) -> BaseWSGIServer | MultiSocketServer:
    """The waitress server `python -m bot run` runs (port 0: any free one); `.run()` serves."""
    _raise_open_files_limit(CONNECTION_LIMIT + 64)
    queue_log = logging.getLogger("waitress.queue")
    if not any(isinstance(f, OncePerMinute) for f in queue_log.filters):
        queue_log.addFilter(OncePerMinute())
    sockets: dict[int, Any] = {}
    server = create_server(app, map=sockets, host=host, port=port, **WAITRESS_OPTIONS)
    for dispatcher in sockets.values():
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = RequestDeadlineChannel
    return server


def _raise_open_files_limit(wanted: int) -> None:
    # Each connection is a file descriptor; many systems start processes at a soft 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))


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
        server = create_http_server(app, settings.bind_address, settings.port)
        log.info(
            "serving on %s port %s; OAuth callbacks under %s/oauth/",
            settings.bind_address,
            settings.port,
            settings.public_base_url,
        )
        server.run()
    finally:
        worker.stop()
    return 0
