"""Who may change things: ADMIN_USER_IDS, or else the workspace's admins and owners."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient

from handlers.context import services_of, workspace_of
from services.errors import ErrorKind, ServiceError

_CACHE_SECONDS = 300.0
_cache: dict[tuple[str, str], tuple[float, bool]] = {}
_lock = threading.Lock()


def is_admin(context: BoltContext, client: WebClient, user_id: str) -> bool:
    configured = services_of(context).admin_user_ids
    if configured:
        return user_id in configured
    key = (context.team_id or "", user_id)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
    if cached and now - cached[0] < _CACHE_SECONDS:
        return cached[1]
    user = client.users_info(user=user_id)["user"]
    allowed = bool(user.get("is_admin") or user.get("is_owner"))
    with _lock:
        _cache[key] = (now, allowed)
    return allowed


def admin_only(doing: str) -> Callable[..., BoltResponse | None]:
    """Bolt listener middleware: the listener runs for admins alone. Anyone else is told "Only
    admins can {doing}", and the refusal is audited, before anything is looked up, so a
    refused user learns nothing of what exists.

    Checked where the listener's work runs. A modal submission's answer carries the refusal,
    so it is checked before that answer. Every other listener is lazy (`ack_at_once`, then its
    work): Slack gets its ack first, and the check (which may ask Slack who the user is) comes
    when the work is dispatched after it, in the worker or on a thread (bot.slack_app)."""

    def middleware(
        req: BoltRequest,
        body: dict[str, Any],
        context: BoltContext,
        client: WebClient,
        next: Callable[[], BoltResponse | None],
    ) -> BoltResponse | None:
        if not req.lazy_only and body.get("type") != "view_submission":
            return next()
        user = body.get("user_id") or body["user"]["id"]
        if not is_admin(context, client, user):
            services_of(context).integrations.record_refusal(
                actor=user, workspace_id=workspace_of(context), doing=doing
            )
            raise ServiceError(
                ErrorKind.AUTH,
                f"Only admins can {doing}. Ask a workspace admin, or someone listed in "
                "ADMIN_USER_IDS.",
                retryable=False,
            )
        return next()

    return middleware
