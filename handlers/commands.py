"""`/amazon ...`: acked at once; after the ack, answer the one who asked or open a modal.

Each verb an admin alone may use is a listener of its own, matched on the verb and declared
`admin_only` in `register`; help, list, status, logs and typos share the last listener."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from slack_bolt import App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from handlers import blocks, lifecycle
from handlers.answers import reply
from handlers.authz import admin_only, is_admin
from handlers.context import Services, ack_at_once, services_of, workspace_of
from handlers.overviews import overview, overviews
from services.errors import ErrorKind, ServiceError
from services.models import Integration

COMMAND = "/amazon"


class Managing(NamedTuple):
    """A verb that changes one integration."""

    doing: str  # what a refusal says its user may not do
    flow: lifecycle.Flow  # what its button runs too


MANAGING = {
    "settings": Managing("change integrations", lifecycle.open_settings),
    "stop": Managing("stop integrations", lifecycle.confirm_stop),
    "activate": Managing("activate integrations", lifecycle.activate),
    "refresh": Managing("refresh integrations", lifecycle.send_refresh_link),
    "sync": Managing("sync integrations", lifecycle.start_sync),
}


def _verb_and_rest(command: dict[str, Any]) -> tuple[str, str]:
    words = command.get("text", "").split()
    return (words[0].lower() if words else "help"), " ".join(words[1:])


def verb_is(verb: str) -> Callable[[dict[str, Any]], bool]:
    """A listener matcher: `/amazon <verb> ...`."""

    def matches(command: dict[str, Any]) -> bool:
        return _verb_and_rest(command)[0] == verb

    return matches


def amazon(
    command: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext
) -> None:
    """What anyone may ask: help, list, status, logs; a typo gets the help."""
    services = services_of(context)
    user, workspace = command["user_id"], workspace_of(context)
    action, rest = _verb_and_rest(command)
    now = datetime.now(UTC)

    if action == "help":
        reply(respond, blocks.help_message(can_manage=is_admin(context, client, user)))
    elif action == "list":
        reply(
            respond,
            blocks.integration_list_message(
                overviews(services, workspace), can_manage=is_admin(context, client, user), now=now
            ),
        )
    elif action in ("status", "logs"):
        _show(action, services, workspace, rest, respond, context, client, user)
    else:
        # A typo: the help, naming the nearest command.
        reply(
            respond, blocks.help_message(can_manage=is_admin(context, client, user), typed=action)
        )


def setup(command: dict[str, Any], client: WebClient) -> None:
    client.views_open(
        trigger_id=command["trigger_id"], view=blocks.setup_modal(today=datetime.now(UTC).date())
    )


def manage(
    command: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext
) -> None:
    """`/amazon settings|stop|activate|refresh|sync NAME`: the integration named in this
    workspace, then the flow its button runs."""
    services, workspace = services_of(context), workspace_of(context)
    verb, name = _verb_and_rest(command)
    period = None
    if verb == "sync" and name.split() and _looks_like_period(name.split()[-1]):
        period = name.split()[-1]
        name = " ".join(name.split()[:-1])
    integration = _named(verb, services, workspace, name, respond)
    if integration is None:
        return
    asker = lifecycle.Asker.of(command, respond, client, context)
    if period is not None:
        lifecycle.start_sync(asker, integration, period)
    else:
        MANAGING[verb].flow(asker, integration)


def _looks_like_period(word: str) -> bool:
    return len(word) == 7 and word[4] == "-" and word.replace("-", "").isdigit()


def _show(
    action: str,
    services: Services,
    workspace: str,
    name: str,
    respond: Respond,
    context: BoltContext,
    client: WebClient,
    user: str,
) -> None:
    integration = _named(action, services, workspace, name, respond)
    if integration is None:
        return
    if action == "status":
        reply(
            respond,
            blocks.status_message(
                overview(services, integration, payouts=True),
                can_manage=is_admin(context, client, user),
                now=datetime.now(UTC),
            ),
        )
    else:
        reply(
            respond,
            blocks.logs_message(
                integration.name,
                runs=services.sync.runs(integration.id, workspace_id=integration.workspace_id),
                audit=services.integrations.audit_log(integration.id),
            ),
        )


def _named(
    action: str, services: Services, workspace: str, name: str, respond: Respond
) -> Integration | None:
    """The integration, or None after saying how to name one and listing the names that exist."""
    if not name:
        reply(respond, blocks.name_needed_message(action, _names(services, workspace)))
        return None
    try:
        return services.integrations.get(name, workspace)
    except ServiceError as error:
        if error.kind != ErrorKind.NOT_FOUND:
            raise
        reply(respond, blocks.unknown_integration_message(name, _names(services, workspace)))
        return None


def _names(services: Services, workspace: str) -> list[str]:
    return [integration.name for integration in services.integrations.list(workspace)]


def register(app: App) -> None:
    # Listeners are tried in this order: the catch-all comes last.
    app.command(
        COMMAND, matchers=[verb_is("setup")], middleware=[admin_only("set up integrations")]
    )(ack=ack_at_once, lazy=[setup])
    for verb, managing in MANAGING.items():
        app.command(COMMAND, matchers=[verb_is(verb)], middleware=[admin_only(managing.doing)])(
            ack=ack_at_once, lazy=[manage]
        )
    app.command(COMMAND)(ack=ack_at_once, lazy=[amazon])
