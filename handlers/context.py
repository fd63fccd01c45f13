"""What listeners get in their context: the services, the workspace and the acting user."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, Protocol

from slack_bolt import BoltContext

from services.connect import ConnectService
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


def services_of(context: BoltContext) -> Services:
    services: Services = context["services"]
    return services


def inject(services: Services) -> Callable[..., Any]:
    """A middleware that puts the services into every listener's context."""

    def middleware(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["services"] = services
        return next()

    return middleware
