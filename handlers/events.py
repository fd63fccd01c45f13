"""App Home: a card per integration, published when the user opens the tab."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from handlers import blocks
from handlers.authz import is_admin
from handlers.context import ack_at_once, services_of, workspace_of
from handlers.overviews import overviews


def publish_home(
    client: WebClient, context: BoltContext, user: str, workspace: str, page: int = 0
) -> None:
    view = blocks.home_view(
        overviews(services_of(context), workspace),
        can_manage=is_admin(context, client, user),
        now=datetime.now(UTC),
        page=page,
    )
    client.views_publish(user_id=user, view=view)


def home_opened(
    event: dict[str, Any], body: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    if event.get("tab") == "home":
        publish_home(client, context, event["user"], workspace_of(context))


def register(app: App) -> None:
    app.event("app_home_opened")(ack=ack_at_once, lazy=[home_opened])
