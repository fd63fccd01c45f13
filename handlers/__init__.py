"""Slack listeners: parse the payload, ack fast, call a service, render Block Kit.

Nothing registers itself on import: `register` shows the whole Slack surface in one place.
"""

from __future__ import annotations

from slack_bolt import App

from handlers import actions, commands, errors, events, views, xero_change


def register(app: App) -> None:
    commands.register(app)
    views.register(app)
    actions.register(app)
    events.register(app)
    xero_change.register(app)
    errors.register(app)
