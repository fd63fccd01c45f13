"""Buttons: lifecycle actions, Retry (item, group, run), paging, and link buttons (ack only).
Which are for admins alone is declared in `register`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from handlers import blocks, lifecycle
from handlers.answers import reply
from handlers.authz import admin_only, is_admin
from handlers.blocks import ids
from handlers.context import ack_at_once, payload_id, services_of, workspace_of
from handlers.events import publish_home
from handlers.overviews import overviews
from services.errors import ErrorKind, ServiceError
from services.models import Integration
from services.sync import RunInProgress

log = logging.getLogger(__name__)

# How long a click waits for another retry of its month before showing things as they stand,
# and how often it looks whether that retry has finished.
RUN_WAIT_SECONDS = 30 * 60
RUN_POLL_SECONDS = 2.0


def _message_location(body: dict[str, Any]) -> tuple[str, str]:
    container = body["container"]
    return container["channel_id"], container["message_ts"]


def clicked_id(body: dict[str, Any], what: str) -> int:
    """The id the clicked button carries."""
    return payload_id(body["actions"][0].get("value"), what)


def _clicked_integration(body: dict[str, Any], context: BoltContext) -> Integration:
    """The integration a button names, if it is one of the clicking workspace's."""
    return services_of(context).integrations.get_by_id(
        clicked_id(body, "integration"),
        workspace_id=workspace_of(context),
        actor=body["user"]["id"],
    )


def _retry(
    body: dict[str, Any],
    client: WebClient,
    context: BoltContext,
    *,
    showing: Callable[[str | None, str | None], dict[str, Any]],
    retry: Callable[[], object],
) -> None:
    """Mark the clicked message "Retrying (by @user)", retry, then show the outcome, all on
    the background pool: the updates wait for the channel's pace and the retry for Xero's rate
    limit, while the threads that answer Slack must stay free. `showing(retrying_by,
    retried_by)` renders the message as things stand when it is called."""
    user, workspace = body["user"]["id"], workspace_of(context)
    channel, ts = _message_location(body)

    def tell(text: str) -> None:
        # Service messages carry names and report text: escaped as in channel posts.
        client.chat_postEphemeral(channel=channel, user=user, **blocks.notice_message(text))

    services = services_of(context)
    deadline = time.monotonic() + RUN_WAIT_SECONDS

    def run(first: bool) -> None:
        try:
            if first:
                client.chat_update(channel=channel, ts=ts, **showing(user, None))
            try:
                retry()
            except RunInProgress as busy:
                if time.monotonic() < deadline:
                    if first:  # a double click, or a retry of the whole month meanwhile
                        queued = blocks.queued_retry_message(busy.message, busy.held_by)
                        client.chat_postEphemeral(channel=channel, user=user, **queued)
                    _when_free(busy.run_id, resume)
                    return
                tell(f":hourglass: {busy.message} Still running after 30 minutes: retry later.")
            except ServiceError as error:
                tell(f":warning: {error.message}")
            # The outcome, or things as they stand when the retry could not start.
            client.chat_update(channel=channel, ts=ts, **showing(None, user))
        except ServiceError as error:
            tell(f":warning: {error.message}")
        except Exception:
            log.exception("a retry started from Slack failed")

    def resume() -> None:
        try:
            services.background.submit(run, False)
        except RuntimeError:  # the pool is shut down: the bot is stopping
            log.info("a queued retry was dropped as the bot stopped; its Retry button stays")

    def _when_free(run_id: int, then: Callable[[], object]) -> None:
        """`then` once the run is no longer held, looked at every few seconds by a timer:
        waiting holds none of the background pool's threads."""

        def look() -> None:
            try:
                held = services.sync.is_held(run_id, workspace_id=workspace, actor=user)
            except Exception:
                log.exception("could not look whether run %s is still held", run_id)
                held = False
            if held and time.monotonic() < deadline:
                _when_free(run_id, then)
            else:
                then()

        timer = threading.Timer(RUN_POLL_SECONDS, look)
        timer.daemon = True
        timer.start()

    services.background.submit(run, True)


def retry_item(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    user, workspace = body["user"]["id"], workspace_of(context)
    sync = services_of(context).sync
    item_id = clicked_id(body, "ledger item")
    sync.item(item_id, workspace_id=workspace, actor=user)  # another workspace's: not found
    _retry(
        body,
        client,
        context,
        showing=lambda retrying, retried: blocks.failed_item_message(
            sync.item(item_id, workspace_id=workspace), retrying_by=retrying, retried_by=retried
        ),
        retry=lambda: sync.retry_item(item_id, workspace_id=workspace, actor=user),
    )


def retry_items(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    user, workspace = body["user"]["id"], workspace_of(context)
    sync = services_of(context).sync
    try:
        run_id, key = blocks.parse_retry_items_value(body["actions"][0]["value"])
    except ValueError:
        raise ServiceError(ErrorKind.NOT_FOUND, "There is no such run.", retryable=False) from None
    failed = sync.failed_items(run_id, workspace_id=workspace, actor=user)
    group = [i.id for i in failed if blocks.failure_key(i) == key]
    _retry(
        body,
        client,
        context,
        showing=lambda retrying, retried: blocks.failure_group_message(
            run_id,
            [sync.item(i, workspace_id=workspace) for i in group],
            retrying_by=retrying,
            retried_by=retried,
        ),
        retry=lambda: sync.retry_run(
            run_id, only=group, announce=False, workspace_id=workspace, actor=user
        ),
    )


def retry_run(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Retry all failed (the error parent) or the whole run (a run that could not proceed)."""
    user, workspace = body["user"]["id"], workspace_of(context)
    sync = services_of(context).sync
    action = body["actions"][0]
    run_id = clicked_id(body, "run")
    sync.result_of(run_id, workspace_id=workspace, actor=user)  # another workspace's: not found
    integrations = services_of(context).integrations

    def showing(retrying: str | None, retried: str | None) -> dict[str, Any]:
        result = sync.result_of(run_id, workspace_id=workspace)
        if action["action_id"] == ids.RETRY_RUN:
            integration = integrations.get(result.integration, workspace)
            return blocks.run_failed_message(
                result, integration_id=integration.id, retrying_by=retrying, retried_by=retried
            )
        failures = sync.failed_items(run_id, workspace_id=workspace)
        return blocks.error_parent_message(
            result, failures=failures, retrying_by=retrying, retried_by=retried
        )

    _retry(
        body,
        client,
        context,
        showing=showing,
        retry=lambda: sync.retry_run(run_id, announce=False, workspace_id=workspace, actor=user),
    )


def retry_settlement(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """A payout's failed items (in the errors channel): sent again, the message updated."""
    user, workspace = body["user"]["id"], workspace_of(context)
    sync = services_of(context).sync
    row_id = clicked_id(body, "payout")
    sync.payout(row_id, workspace_id=workspace, actor=user)  # another workspace's: not found
    _retry(
        body,
        client,
        context,
        showing=lambda retrying, retried: blocks.settlement_message(
            sync.payout(row_id, workspace_id=workspace),
            retry=True,
            retrying_by=retrying,
            retried_by=retried,
        ),
        retry=lambda: sync.retry_settlement(row_id, workspace_id=workspace, actor=user),
    )


# What each lifecycle button runs: the flow its `/amazon` command runs too.
LIFECYCLE_BUTTONS: dict[str, lifecycle.Flow] = {
    ids.OPEN_SETTINGS: lifecycle.open_settings,
    ids.STOP_INTEGRATION: lifecycle.confirm_stop,
    ids.ACTIVATE_INTEGRATION: lifecycle.activate,
    ids.SYNC_NOW: lifecycle.start_sync,
    ids.REFRESH_INTEGRATION: lifecycle.send_refresh_link,
    ids.SEND_CONNECT_LINKS: lifecycle.open_connect_links,
}


def lifecycle_clicked(
    body: dict[str, Any], client: WebClient, respond: Respond | None, context: BoltContext
) -> None:
    flow = LIFECYCLE_BUTTONS[body["actions"][0]["action_id"]]
    flow(lifecycle.Asker.of(body, respond, client, context), _clicked_integration(body, context))


def open_setup(body: dict[str, Any], client: WebClient) -> None:
    view = blocks.setup_modal(today=datetime.now(UTC).date())
    client.views_open(trigger_id=body["trigger_id"], view=view)


def list_page(
    body: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext
) -> None:
    user, workspace = body["user"]["id"], workspace_of(context)
    page = blocks.integration_list_message(
        overviews(services_of(context), workspace),
        can_manage=is_admin(context, client, user),
        now=datetime.now(UTC),
        page=clicked_id(body, "page"),
    )
    reply(respond, page, replace_original=True)


def home_page(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    page = clicked_id(body, "page")
    publish_home(client, context, body["user"]["id"], workspace_of(context), page)


def register(app: App) -> None:
    # Every click is acked at once; its work comes after (Bolt's lazy listeners).
    retry_failed = admin_only("retry failed items")
    app.action(ids.RETRY_ITEM, middleware=[retry_failed])(ack=ack_at_once, lazy=[retry_item])
    app.action(ids.RETRY_ITEMS, middleware=[retry_failed])(ack=ack_at_once, lazy=[retry_items])
    app.action(ids.RETRY_SETTLEMENT, middleware=[retry_failed])(
        ack=ack_at_once, lazy=[retry_settlement]
    )
    retry_runs = admin_only("retry runs")
    for action_id in (ids.RETRY_ALL_FAILED, ids.RETRY_RUN):
        app.action(action_id, middleware=[retry_runs])(ack=ack_at_once, lazy=[retry_run])
    change = admin_only("change integrations")
    for action_id in LIFECYCLE_BUTTONS:
        app.action(action_id, middleware=[change])(ack=ack_at_once, lazy=[lifecycle_clicked])
    set_up = admin_only("set up integrations")
    app.action(ids.OPEN_SETUP, middleware=[set_up])(ack=ack_at_once, lazy=[open_setup])
    app.action(ids.LIST_PAGE)(ack=ack_at_once, lazy=[list_page])
    app.action(ids.HOME_PAGE)(ack=ack_at_once, lazy=[home_page])
    # Link buttons open their URL in the browser; Slack still tells us, and wants an ack.
    for action_id in (ids.CONNECT_AMAZON, ids.CONNECT_XERO, ids.OPEN_XERO, ids.OPEN_ERRORS):
        app.action(action_id)(ack_at_once)
