"""What listeners get in their context: the services, the workspace and the acting user."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, Protocol

from slack_bolt import Ack, BoltContext

from services.connect import ConnectService
from services.errors import ErrorKind, ServiceError
from services.integrations import IntegrationService
from services.sync import SyncEngine


class Services(Protocol):
    """The slice of the application that Slack listeners use (bot.container.Container)."""

    @property
    def integrations(self) -> IntegrationService: ...

    @property
    def connect(self) -> ConnectService: ...

    @property
    def sync(self) -> SyncEngine: ...

    @property
    def admin_user_ids(self) -> tuple[str, ...]: ...

    @property
    def background(self) -> Executor: ...

    def next_sync(self) -> tuple[datetime, str]:
        """When the monthly job runs next, and the period it pulls."""
        ...


class _Shared:
    """Bolt deep-copies a request's context for its lazy listeners: the services are shared
    by every request, never copied."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


def services_of(context: BoltContext) -> Services:
    shared: _Shared = context["services"]
    return shared.services


def workspace_of(context: BoltContext) -> str:
    """The workspace a signed request came from: every id in its payload is looked up in it
    alone. Bolt reads it from the payload (`team.id`, the user's team where an Enterprise Grid
    org-wide install sends none, else the org's `enterprise.id`)."""
    workspace = context.team_id or context.enterprise_id
    if not workspace:
        raise ServiceError(ErrorKind.AUTH, "Slack did not say which workspace this came from.")
    return workspace


def payload_id(value: object, what: str) -> int:
    """An id a payload carries (a button's value, a modal's private_metadata). One that is
    not an id (a forged payload) is not found, with the answer a missing id gets."""
    text = str(value or "")
    if not re.fullmatch(r"[0-9]{1,9}", text):  # "²" is a digit to isdigit(); ids are int32
        raise ServiceError(ErrorKind.NOT_FOUND, f"There is no {what} {text!r}.", retryable=False)
    return int(text)


def context_for(services: Services, team_id: str) -> BoltContext:
    """A listener's context outside a Slack request (an OAuth callback refreshes App Home)."""
    return BoltContext({"services": _Shared(services), "team_id": team_id})


def inject(services: Services) -> Callable[..., Any]:
    """A middleware that puts the services into every listener's context."""
    shared = _Shared(services)

    def middleware(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["services"] = shared
        return next()

    return middleware


def ack_at_once(ack: Ack) -> None:
    """The ack of a listener whose work comes after it (Bolt's lazy listeners): Slack gets its
    answer before any database, Slack or Xero call, wherever the work then runs."""
    ack()
