"""Who may change things: ADMIN_USER_IDS, or else the workspace's admins and owners."""

from __future__ import annotations

import threading
import time

from slack_bolt import BoltContext
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


def require_admin(context: BoltContext, client: WebClient, user_id: str, doing: str) -> None:
    """Before anything is looked up: a refused user learns nothing of what exists. The
    refusal is logged and audited."""
    if not is_admin(context, client, user_id):
        services_of(context).integrations.record_refusal(
            actor=user_id, workspace_id=workspace_of(context), doing=doing
        )
        raise ServiceError(
            ErrorKind.AUTH,
            f"Only admins can {doing}. Ask a workspace admin, or someone listed in ADMIN_USER_IDS.",
            retryable=False,
        )
