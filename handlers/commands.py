"""`/amazon ...`: ack at once, then answer the one who asked (ephemeral) or open a modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

COMMAND = "/amazon"
SUBCOMMANDS = (
    "help",
    "list",
    "setup",
    "settings",
    "stop",
    "activate",
    "refresh",
    "sync",
    "status",
    "logs",
)


def amazon(
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    client: WebClient,
    context: BoltContext,
) -> None:
    ack()
    words = command.get("text", "").split()
    name = words[0].lower() if words else "help"
    respond(text=f"/amazon {name}", response_type="ephemeral")


def register(app: App) -> None:
    app.command(COMMAND)(amazon)
