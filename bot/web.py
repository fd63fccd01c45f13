"""The web server: Amazon and Xero OAuth callbacks, the health check and Slack's HTTP endpoint.

Served by waitress (bot/server.py), a production WSGI server, never Flask's development server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, render_template_string, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk.errors import SlackApiError
from sqlalchemy import text

from bot.container import Container
from bot.worker import SlackWorker
from handlers.context import context_for
from handlers.events import publish_home
from handlers.xero_change import ask_to_confirm
from services.connect import AMAZON_CALLBACK_PATH, XERO_CALLBACK_PATH, CallbackOutcome
from services.errors import ServiceError

log = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]+$")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}
h1{font-size:1.4rem}.ok{color:#1a7f37}.fail{color:#b42318}</style></head>
<body><h1 class="{{ 'ok' if ok else 'fail' }}">{{ title }}</h1><p id="message">{{ message }}</p>
<p>You can close this window and return to Slack.</p></body></html>"""


def _style_hash(page: str) -> str:
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    assert style is not None
    return base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()


# The pages run no script and load nothing: only their own inline style, by its hash.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_style_hash(_PAGE)}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the callbacks' URLs carry OAuth codes and states
    "Cache-Control": "no-store",
}


class RefusalLog:
    """Slack requests refused for their signature (missing, wrong or over five minutes old),
    logged once per source and minute with how many came meanwhile, never with their bodies:
    a flood of them must not become a flood of log."""

    WINDOW = 60.0
    MAX_SOURCES = 10_000  # sources remembered at once; beyond, the lapsed ones are forgotten

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[float, int]] = {}  # source: (logged at, refused since)

    def refused(self, source: str) -> None:
        now = time.monotonic()
        with self._lock:
            logged_at, since = self._sources.get(source, (now - self.WINDOW, 0))
            if now - logged_at < self.WINDOW:
                self._sources[source] = (logged_at, since + 1)
                return
            if len(self._sources) >= self.MAX_SOURCES:
                self._sources = {
                    key: value
                    for key, value in self._sources.items()
                    if now - value[0] < self.WINDOW
                }
            self._sources[source] = (now, 0)
        log.warning(
            "refused a Slack request from %s: missing, wrong or expired signature "
            "(%d more from it since the last such line)",
            source,
            since,
        )


def _drop(record: logging.LogRecord) -> bool:
    return False


def _page(title: str, message: str, *, ok: bool, status: int) -> Response:
    html = render_template_string(_PAGE, title=title, message=message, ok=ok)
    return Response(html, status=status, mimetype="text/html")


def _announce(container: Container, outcome: CallbackOutcome) -> None:
    """The setup is complete: say so in Slack, with when the first sync runs, and show it on
    the App Home of whoever set it up there."""
    if not outcome.became_active:
        return
    integration = outcome.integration
    first_sync, period = container.next_sync()
    container.notifier.integration_connected(integration, first_sync=first_sync, period=period)
    if container.settings.slack_bot_token and _SLACK_USER.match(integration.created_by):
        context = context_for(container, integration.workspace_id)
        try:
            publish_home(
                container.slack_client, context, integration.created_by, integration.workspace_id
            )
        except SlackApiError as error:
            log.warning("App Home not updated: %s", error.response.get("error"))


def _outcome_page(outcome: CallbackOutcome) -> Response:
    title = "Connected" if outcome.connected else "Step complete"
    return _page(title, outcome.message, ok=True, status=200)


def _failure_page(error: ServiceError) -> Response:
    status = 400 if not error.retryable else 502
    return _page("Connection not completed", error.message, ok=False, status=status)


def _health(container: Container, worker: SlackWorker | None) -> dict[str, str | int]:
    health: dict[str, str | int] = {"status": "ok", "database": "ok"}
    try:
        with container.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check: database unreachable")
        health |= {"status": "unavailable", "database": "unreachable"}
    if worker is not None:
        # Without its worker the bot acks but does nothing more, scheduled syncs included.
        health["worker"] = "ok" if worker.alive else "stopped"
        health["worker_pending"] = worker.pending
        if not worker.alive:
            health["status"] = "unavailable"
    return health


class LateBoundApp:
    """A WSGI app set after its server is listening, when the server's URL is needed to build it."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            raise RuntimeError("the web app is not built yet")
        return self.app(environ, start_response)


def create_web_app(
    container: Container, slack: App | None = None, *, worker: SlackWorker | None = None
) -> Flask:
    """The web server; with `slack`, also Slack's HTTP endpoint (requests are signature-checked
    by Bolt: unsigned, badly signed or over five minutes old get 401). With `worker`, the
    health check covers the worker process too."""
    app = Flask("amazon-xero-bot")
    if slack is not None:
        slack_handler = SlackRequestHandler(slack)
        refusals = RefusalLog()
        # Bolt logs each refused request whole, body included, at INFO: RefusalLog says it.
        logging.getLogger("slack_bolt.RequestVerification").addFilter(_drop)

        @app.post(SLACK_EVENTS_PATH)
        def slack_events() -> Response:
            response = slack_handler.handle(request)
            if response.status_code == 401:
                refusals.refused(request.remote_addr or "unknown")
            return response

    @app.after_request
    def secure(response: Response) -> Response:
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    health_token = container.settings.health_token

    @app.get("/healthz")
    def healthz() -> Response | tuple[dict[str, str | int], int]:
        """Up or down for anyone; the details with `Authorization: Bearer HEALTH_TOKEN`."""
        authorization = request.headers.get("Authorization")
        if authorization is not None and not (
            health_token
            and hmac.compare_digest(authorization.encode(), f"Bearer {health_token}".encode())
        ):
            return Response("unauthorized\n", status=401, mimetype="text/plain")
        health = _health(container, worker)
        status = 200 if health["status"] == "ok" else 503
        if authorization is not None:
            return health, status
        return Response("ok\n" if status == 200 else "down\n", status=status, mimetype="text/plain")

    @app.get(AMAZON_CALLBACK_PATH)
    def amazon_callback() -> Response:
        try:
            outcome = container.connect.complete_amazon(
                state=request.args.get("state", ""),
                code=request.args.get("spapi_oauth_code", ""),
                selling_partner_id=request.args.get("selling_partner_id", ""),
            )
        except ServiceError as error:
            return _failure_page(error)
        _announce(container, outcome)
        return _outcome_page(outcome)

    @app.get(XERO_CALLBACK_PATH)
    def xero_callback() -> Response:
        if request.args.get("error"):
            # The user declined at Xero (error=access_denied); the state stays unused.
            return _page(
                "Connection not completed",
                "Xero access was not granted, so nothing was connected. Start again from Slack "
                "when you are ready.",
                ok=False,
                status=400,
            )
        try:
            outcome = container.connect.complete_xero(
                state=request.args.get("state", ""), code=request.args.get("code", "")
            )
        except ServiceError as error:
            return _failure_page(error)
        if outcome.held:
            # Only this view asks Slack to confirm a change of organisation.
            asked = bool(container.settings.slack_bot_token) and ask_to_confirm(
                container.slack_client, outcome.integration, container.settings.errors_channel
            )
            where = (
                "An admin confirms it in the integration's Slack channel."
                if asked
                else "Slack could not be asked (no channel is set for the integration): set "
                "its errors channel in Settings, then connect Xero again."
            )
            return _page("Confirmation needed", f"{outcome.message} {where}", ok=False, status=200)
        _announce(container, outcome)
        return _outcome_page(outcome)

    return app
