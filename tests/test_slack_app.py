"""The Bolt app over real HTTP: request signatures, and every listener through signed requests."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from functools import partial
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from sqlalchemy import select, update

from bot.container import Container
from handlers import blocks
from handlers.blocks import ids
from sandbox import slack_driver
from sandbox.browser import consent_to_both
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.models import (
    AuditEntry,
    Integration,
    InvoiceStatus,
    LedgerItem,
    LedgerStatus,
    OAuthState,
    RunStatus,
    SyncRun,
)
from tests.conftest import payout_banks

SPEC = IntegrationSpec("Acme EU", Region.EU, ("A1PA6795UKMFR9",), date(2026, 1, 1))


def test_only_requests_signed_by_slack_in_the_last_five_minutes_get_in(slack: SlackDriver) -> None:
    body = "token=x&team_id=T0SANDBOX&user_id=U0ADMIN&command=%2Famazon&text=help"
    assert slack.send(body, signed=False).status_code == 401
    assert slack.send(body, secret="not-the-signing-secret").status_code == 401
    assert slack.send(body, timestamp=int(time.time()) - 6 * 60).status_code == 401
    assert slack.command("help").status_code == 200


def wait_for(read: Callable[[], list[Any]], count: int = 1, timeout: float = 10) -> list[Any]:
    """Bolt answers after the ack, on its own thread: wait for what reaches the sandbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = read()
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived after {timeout} s")


def texts(sent: dict[str, Any] | list[dict[str, Any]]) -> str:
    """A message (or several) as one searchable string."""
    return json.dumps(sent, ensure_ascii=False)


def setup_values(name: str, **changes: Any) -> dict[str, Any]:
    values: blocks.SetupValues = {
        "name": name,
        "region": Region.EU,
        "marketplaces": ["A1PA6795UKMFR9", "A1C3SOZRARQ6R3"],
        "start_date": date(2026, 1, 1),
        "invoice_status": InvoiceStatus.AUTHORISED,
        "sales_account_code": "200",
        "shipping_account_code": "200",
        "errors_channel": "C0ERRORS",
        "summary_channel": "C0FINANCE",
    }
    return blocks.setup_form_values(values | changes)  # type: ignore[arg-type]


def test_help_typos_and_unknown_names(slack: SlackDriver, container: Container) -> None:
    assert slack.command("", key="help").status_code == 200
    [help_] = wait_for(lambda: slack.slack.responses("help"))
    assert help_["response_type"] == "ephemeral" and "/amazon setup" in texts(help_)

    slack.command("stpo Acme", key="typo")
    [typo] = wait_for(lambda: slack.slack.responses("typo"))
    assert "stop" in texts(typo)

    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    slack.command("status Acme", key="unknown")
    [unknown] = wait_for(lambda: slack.slack.responses("unknown"))
    assert "Acme EU" in texts(unknown)

    slack.command("list", key="list")
    [listing] = wait_for(lambda: slack.slack.responses("list"))
    assert "Acme EU" in texts(listing)


def test_setup_modal_validates_inline_then_shows_the_connect_links(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    slack.command("setup")
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    view = opened["view"]
    assert view["callback_id"] == ids.SETUP_CALLBACK

    future = setup_values("", start_date=date(2999, 1, 1))
    refused = slack.submit(view, future)
    assert refused.status_code == 200
    assert refused.json()["response_action"] == "errors"
    assert set(refused.json()["errors"]) >= {ids.NAME.block, ids.START_DATE.block}
    assert container.integrations.list(TEAM) == []

    accepted = slack.submit(view, setup_values("Acme EU"))
    body = accepted.json()
    assert body["response_action"] == "update"
    urls = re.findall(r'"url": "([^"]+)"', json.dumps(body["view"]))
    assert any("/apps/authorize/consent" in url for url in urls)
    assert any("/identity/connect/authorize" in url for url in urls)
    created = container.integrations.get("Acme EU", TEAM)
    assert container.integrations.audit_log(created.id)[0].actor == "U0ADMIN"


def test_only_admins_change_things(slack: SlackDriver, container: Container) -> None:
    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    slack.command("stop Acme EU", user="U0VIEWER", key="viewer")
    [refusal] = wait_for(lambda: slack.slack.responses("viewer"))
    assert "Only admins can stop integrations" in texts(refusal)
    slack.command("status Acme EU", user="U0VIEWER", key="view")
    [status] = wait_for(lambda: slack.slack.responses("view"))
    assert "Acme EU" in texts(status)


ADMIN_ONLY_CLICKS = [
    (ids.OPEN_SETTINGS, "change integrations"),
    (ids.STOP_INTEGRATION, "change integrations"),
    (ids.ACTIVATE_INTEGRATION, "change integrations"),
    (ids.SYNC_NOW, "change integrations"),
    (ids.REFRESH_INTEGRATION, "change integrations"),
    (ids.SEND_CONNECT_LINKS, "change integrations"),
    (ids.OPEN_SETUP, "set up integrations"),
    (ids.RETRY_ITEM, "retry failed items"),
    (ids.RETRY_ITEMS, "retry failed items"),
    (ids.RETRY_ALL_FAILED, "retry runs"),
    (ids.RETRY_RUN, "retry runs"),
    (ids.CONFIRM_XERO_CHANGE, "move an integration to another Xero organisation"),
    (ids.CANCEL_XERO_CHANGE, "move an integration to another Xero organisation"),
]
ADMIN_ONLY_COMMANDS = [
    ("setup", "set up integrations"),
    ("settings Acme EU", "change integrations"),
    ("stop Acme EU", "stop integrations"),
    ("activate Acme EU", "activate integrations"),
    ("refresh Acme EU", "refresh integrations"),
    ("sync Acme EU 2026-10", "sync integrations"),
]


def test_a_non_admin_is_refused_every_admin_button_and_command_and_nothing_happens(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    for action_id, doing in ADMIN_ONLY_CLICKS:
        assert slack.click(action_id, str(shop.id), user="U0VIEWER", key=action_id).ok
        [refusal] = wait_for(partial(slack.slack.responses, action_id))
        assert f"Only admins can {doing}." in texts(refusal), action_id
    for text, doing in ADMIN_ONLY_COMMANDS:
        key = text.split()[0]
        assert slack.command(text, user="U0VIEWER", key=key).ok
        [refusal] = wait_for(partial(slack.slack.responses, key))
        assert f"Only admins can {doing}." in texts(refusal), text
    # A modal submission is answered with the refusal on its first field.
    setup = blocks.setup_modal(today=date(2026, 11, 22)) | {"id": "V1"}
    refused_setup = slack.submit(setup, setup_values("Acme UK"), user="U0VIEWER").json()
    assert refused_setup["response_action"] == "errors"
    assert "Only admins can set up integrations." in texts(refused_setup["errors"])
    assert [i.name for i in container.integrations.list(TEAM)] == ["Acme EU"]
    assert not [c for c in world.slack.calls if c[0] in ("views.open", "chat.update")]
    with container.sessions() as session:
        refused = session.scalars(select(AuditEntry).where(AuditEntry.action == "admin.refused"))
        assert len(refused.all()) == len(ADMIN_ONLY_CLICKS) + len(ADMIN_ONLY_COMMANDS) + 1
    assert [e.action for e in container.integrations.audit_log(shop.id)] == ["integration.created"]
    assert container.sync.runs(shop.id, workspace_id=None) == []


def test_the_ack_does_not_wait_for_the_admin_check(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    """Who is an admin may take Slack a while to say (here users.info is rate limited for
    3 s): the click is acked at once, and the check comes after, where the work runs."""
    team = f"T0{uuid.uuid4().hex[:9].upper()}"  # nobody's admin status is cached for it yet
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=team)
    world.slack.faults.add("/api/users.info", 429, headers={"Retry-After": "3"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slack_driver, "TEAM", team)
        started = time.monotonic()
        assert slack.click(ids.STOP_INTEGRATION, str(shop.id), user="U0VIEWER").ok
        acked = time.monotonic() - started
    assert acked < 2
    [refusal] = wait_for(lambda: slack.slack.responses("click"))
    assert time.monotonic() - started >= 3
    assert "Only admins can change integrations." in texts(refusal)


def connected_then_stopped(container: Container) -> Integration:
    shop = container.integrations.create_connected(
        SPEC,
        actor="U0ADMIN",
        workspace_id=TEAM,
        selling_partner_id="A1",
        amazon_refresh_token="Atzr|x",
        xero_tenant_id="t",
        xero_refresh_token="x",
    )
    return container.integrations.stop(shop.id, actor="U0ADMIN", workspace_id=TEAM)


def test_a_button_and_its_command_say_and_do_the_same(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = connected_then_stopped(container)
    slack.command("activate Acme EU", key="typed")
    [typed] = wait_for(lambda: slack.slack.responses("typed"))
    container.integrations.stop(shop.id, actor="U0ADMIN", workspace_id=TEAM)
    slack.click(ids.ACTIVATE_INTEGRATION, str(shop.id), key="clicked")
    [clicked] = wait_for(lambda: slack.slack.responses("clicked"))
    assert (typed["text"], typed["blocks"]) == (clicked["text"], clicked["blocks"])
    assert "Acme EU is active again" in typed["text"]
    activations = [
        e for e in container.integrations.audit_log(shop.id) if e.action == "integration.activated"
    ]
    assert [e.actor for e in activations] == ["U0ADMIN", "U0ADMIN"]

    slack.command("stop Acme EU")
    slack.click(ids.STOP_INTEGRATION, str(shop.id))
    [(_, by_command), (_, by_button)] = wait_for(
        lambda: [c for c in world.slack.calls if c[0] == "views.open"], 2
    )
    assert by_command["view"] == by_button["view"]
    assert by_command["view"]["callback_id"] == ids.STOP_CALLBACK


def test_a_click_on_app_home_is_answered_in_a_modal(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    """App Home has no channel to answer in: what a click came to opens as a modal."""
    shop = connected_then_stopped(container)
    assert slack.click(ids.ACTIVATE_INTEGRATION, str(shop.id), channel=None).ok
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    assert opened["view"]["callback_id"] == ids.NOTICE_CALLBACK
    assert "Acme EU is active again" in texts(opened["view"])
    assert container.integrations.get_by_id(shop.id, workspace_id=None).status == "active"


def test_stop_asks_for_confirmation_and_says_what_it_means(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    integration = container.integrations.create_connected(
        SPEC,
        actor="U0ADMIN",
        workspace_id=TEAM,
        selling_partner_id="A1",
        amazon_refresh_token="Atzr|x",
        xero_tenant_id="t",
        xero_refresh_token="x",
    )
    slack.command("stop Acme EU")
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    assert "next period" in texts(opened["view"])
    assert slack.submit(opened["view"], {}).status_code == 200
    assert container.integrations.get_by_id(integration.id, workspace_id=None).status == "stopped"
    assert container.integrations.audit_log(integration.id)[-1].actor == "U0ADMIN"


def test_a_retry_click_shows_retrying_then_the_outcome(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    item, posted = failed_item_in_errors(container, world)
    slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted)

    updates = wait_for(lambda: [c for c in world.slack.calls if c[0] == "chat.update"], 2)
    assert "Retrying" in texts(updates[0][1])
    [message] = world.slack.messages("C0ERRORS")
    assert item.document_number and item.document_number in texts(message)
    assert container.sync.item(item.id, workspace_id=None).status == "posted"
    assert "Retrying" not in texts(message)


def test_app_home_shows_a_card_per_integration(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    event = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0SANDBOX",
        "type": "event_callback",
        "event_id": "Ev0001",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "U0ADMIN", "channel": "D0", "tab": "home"},
    }
    slack.send(json.dumps(event), content_type="application/json")
    wait_for(lambda: [world.slack.home_view("U0ADMIN")] if world.slack.home_view("U0ADMIN") else [])
    assert "Acme EU" in texts(world.slack.home_view("U0ADMIN") or {})


def test_a_partly_failed_month_posts_its_errors_and_summary_and_retry_all_fixes_it(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    from tests.test_sync import EU

    # A small month: the notifier posts one message a second per channel, as Slack wants.
    world.amazon.orders_per_report = 17  # a month with a few PLN documents, which fail
    world.amazon.report_processing_polls = 0
    world.xero.minute_limit = 100_000
    payout_banks(world)
    shop = container.integrations.create(
        replace(SPEC, marketplaces=EU, errors_channel="C0ERRORS", summary_channel="C0FINANCE"),
        actor="U0ADMIN",
        workspace_id=TEAM,
    )
    consent_to_both(container.connect, shop, actor="U0ADMIN")
    connected = world.slack.messages("C0FINANCE")
    assert "Acme EU" in texts(connected) and "connected" in texts(connected)
    assert "Acme EU" in texts(world.slack.home_view("U0ADMIN") or {})  # App Home updated

    result = container.sync.sync_period(
        container.integrations.get_by_id(shop.id, workspace_id=None), "2026-10"
    )
    assert result.failed > 0
    errors = world.slack.messages("C0ERRORS")
    # The run's error parent (the złoty payout, which failed too, has a post of its own).
    [parent] = [
        m
        for m in errors
        if ("thread_ts" not in m or m["thread_ts"] == m["ts"]) and "October 2026" in m["text"]
    ]
    assert f"{result.failed}" in parent["text"]
    assert any(m["text"].startswith("Payout") and "PLN" in m["text"] for m in errors)
    replies = [m for m in errors if m.get("thread_ts") == parent["ts"] and m is not parent]
    assert replies and "PLN" in texts(replies)
    # The summary takes the place of the progress message, above the month's payout posts;
    # the three-way check of the month comes last, the failed documents flagged in it.
    finance = world.slack.messages("C0FINANCE")
    [summary] = [m for m in finance if "October 2026: Acme EU" in texts(m)]
    assert "Failed" in texts(summary)
    check = finance[-1]
    assert check["text"].startswith("Three-way check of October 2026 for Acme EU: ")
    assert "to look at" in check["text"] and "Xero: invoiced" in texts(check)
    assert "python -m bot reconcile" in texts(check)

    enable_pln(world)
    slack.click(ids.RETRY_ALL_FAILED, str(result.run_id), channel="C0ERRORS", message=parent)

    def parent_now() -> list[dict[str, Any]]:
        [now] = [m for m in world.slack.messages("C0ERRORS") if m["ts"] == parent["ts"]]
        done = not container.sync.failed_items(
            result.run_id, workspace_id=None
        ) and "Retrying" not in texts(now)
        return [now] if done else []

    [updated] = wait_for(parent_now, timeout=30)
    assert "U0ADMIN" in texts(updated)


def test_an_error_after_a_click_on_app_home_opens_a_modal_saying_so(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    """App Home has no channel to answer in and the bot has no DMs: the notice is a modal."""
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    assert slack.click(ids.STOP_INTEGRATION, str(shop.id), user="U0VIEWER", channel=None).ok
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    assert opened["view"]["callback_id"] == ids.NOTICE_CALLBACK
    assert "Only admins can change integrations" in texts(opened["view"])
    assert container.integrations.get_by_id(shop.id, workspace_id=None).status == shop.status


def connected_shop(container: Container, world: SandboxWorld) -> Integration:
    """Acme EU, selling in Germany, the UK and Poland, connected through the consent pages."""
    from tests.test_sync import EU, ORDERS

    world.amazon.orders_per_report = ORDERS
    world.amazon.report_processing_polls = 0
    world.xero.minute_limit = 100_000
    payout_banks(world)
    shop = container.integrations.create(
        replace(SPEC, marketplaces=EU), actor="U0ADMIN", workspace_id=TEAM
    )
    consent_to_both(container.connect, shop, actor="U0ADMIN")
    return container.integrations.get_by_id(shop.id, workspace_id=None)


def sandbox_client(world: SandboxWorld) -> WebClient:
    """The bot's token against the sandbox Slack: to post what the notifier would."""
    return WebClient(token=world.slack.bot_token, base_url=f"{world.slack_server.url}/api/")


def enable_pln(world: SandboxWorld) -> None:
    """The PLN documents failed as Xero refused the currency; now a retry posts them."""
    org = world.xero.org()
    org.currencies = (*org.currencies, "PLN")
    payout_banks(world)


def failed_item_in_errors(
    container: Container, world: SandboxWorld
) -> tuple[LedgerItem, dict[str, Any]]:
    """A failed PLN document of October and its message in #errors, PLN then turned on."""
    result = container.sync.sync_period(connected_shop(container, world), "2026-10")
    [item, *_] = container.sync.failed_items(result.run_id, workspace_id=None)
    message = blocks.failed_item_message(item, retrying_by=None, retried_by=None)
    posted = sandbox_client(world).chat_postMessage(channel="C0ERRORS", **message)
    enable_pln(world)
    return item, posted["message"]


def test_settings_open_prefilled_then_list_xeros_tax_types_by_name_and_save(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop_id = connected_shop(container, world).id
    container.sync.sync_period(
        container.integrations.get_by_id(shop_id, workspace_id=None), "2026-10"
    )
    shop = container.integrations.get_by_id(shop_id, workspace_id=None)
    key, code = sorted(shop.xero_tax_types.items())[0]

    slack.command("settings Acme EU")
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    assert opened["view"]["callback_id"] == ids.SETTINGS_CALLBACK
    assert "Acme EU" in texts(opened["view"])  # prefilled
    # Then the organisation's own list, each type with its name, in the same modal.
    [(_, updated)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.update"])
    live = container.sync.tax_types(shop)
    assert live and all(name != type_ for type_, name in live)
    other, other_name = next((t, n) for t, n in live if t != code)
    assert f"{other_name} ({other})" in texts(updated["view"])
    assert f"{other_name} ({other})" not in texts(opened["view"])

    values = setup_values("Acme EU", marketplaces=list(shop.marketplaces))
    values[ids.TAX_BLOCK_PREFIX + key] = {
        ids.TAX_TYPE_ACTION: {"type": "static_select", "selected_option": {"value": other}}
    }
    view = world.slack.calls[-1][1]["view"] | {"id": "V", "private_metadata": str(shop_id)}
    assert slack.submit(view, values).status_code == 200
    assert container.integrations.get_by_id(shop_id, workspace_id=None).tax_overrides == {
        key: other
    }
    assert container.integrations.audit_log(shop_id)[-1].actor == "U0ADMIN"


def vat_rates_value(text: str) -> dict[str, Any]:
    return {
        ids.VAT_RATES.block: {ids.VAT_RATES.action: {"type": "plain_text_input", "value": text}}
    }


def test_own_vat_rates_are_set_in_the_settings_modal_and_a_bad_one_is_refused_inline(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    slack.command("settings Acme EU")
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    view = opened["view"]
    [field] = [b for b in view["blocks"] if b.get("block_id") == ids.VAT_RATES.block]
    assert field["label"]["text"] == "Your own VAT rates (for sales Amazon calculated no VAT for)"
    assert "initial_value" not in field["element"]
    values = setup_values("Acme EU", marketplaces=list(SPEC.marketplaces))

    for text, message in [
        ("DE domestic 19\nAT domestic 23", "AT:domestic 23: Austria has no 23% VAT rate today"),
        ("XX domestic 5", "XX:domestic 5: XX is not an ISO country code"),
        ("DE domestic nineteen", "DE:domestic nineteen: the rate is a percentage"),
        ("DE domestic 19\nGermany 19", "Line 2 (Germany 19): write country, scheme"),
    ]:
        refused = slack.submit(view, values | vat_rates_value(text))
        assert refused.json()["response_action"] == "errors"
        assert list(refused.json()["errors"]) == [ids.VAT_RATES.block]
        assert message in refused.json()["errors"][ids.VAT_RATES.block]
    assert container.integrations.get_by_id(shop.id, workspace_id=None).vat_rates == {}

    accepted = slack.submit(view, values | vat_rates_value("DE domestic: 19%\nFR:oss 20"))
    assert (accepted.status_code, accepted.text) == (200, "")
    assert container.integrations.get_by_id(shop.id, workspace_id=None).vat_rates == {
        "DE:domestic": "19",
        "FR:oss": "20",
    }
    [entry] = [
        e
        for e in container.integrations.audit_log(shop.id)
        if e.action == "integration.settings_updated"
    ]
    assert entry.actor == "U0ADMIN"
    assert entry.details["vat_rates"]["to"] == {"DE:domestic": "19", "FR:oss": "20"}

    slack.command("settings Acme EU")
    reopened = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"], 2)[1][1]
    [field] = [b for b in reopened["view"]["blocks"] if b.get("block_id") == ids.VAT_RATES.block]
    assert field["element"]["initial_value"] == "DE domestic 19\nFR oss 20"


def test_retrying_a_group_of_failures_updates_its_reply_with_each_outcome(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = connected_shop(container, world)
    result = container.sync.sync_period(shop, "2026-10")
    failed = container.sync.failed_items(result.run_id, workspace_id=None)  # PLN is not enabled yet
    key = blocks.failure_key(failed[0])
    group = [item for item in failed if blocks.failure_key(item) == key]
    posted = sandbox_client(world).chat_postMessage(
        channel="C0ERRORS",
        **blocks.failure_group_message(result.run_id, group, retrying_by=None, retried_by=None),
    )
    enable_pln(world)
    value = blocks.retry_items_value(result.run_id, key)
    slack.click(ids.RETRY_ITEMS, value, channel="C0ERRORS", message=posted["message"])

    updates = wait_for(lambda: [c for c in world.slack.calls if c[0] == "chat.update"], 2)
    assert "Retrying" in texts(updates[0][1])
    [message] = world.slack.messages("C0ERRORS")
    assert "Retrying" not in texts(message)
    assert f"All {len(group)} documents are in Xero" in texts(message)
    assert "Retried by <@U0ADMIN>" in texts(message)
    assert {container.sync.item(item.id, workspace_id=None).status for item in group} == {"posted"}


def recording(
    slack: SlackDriver,
) -> tuple[list[tuple[bytes, dict[str, str]]], Callable[[bytes, dict[str, str]], Any]]:
    """Keep every request the driver sends, to send one again byte for byte; and the way to."""
    sent: list[tuple[bytes, dict[str, str]]] = []
    post = slack._post

    def keep(data: bytes, headers: dict[str, str]) -> requests.Response:
        sent.append((data, headers))
        return post(data, headers)

    slack._post = keep  # type: ignore[method-assign]
    return sent, post


def test_a_double_click_and_a_resent_click_retry_once(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    from tests.test_sync import numbers

    item, posted = failed_item_in_errors(container, world)
    sent, post = recording(slack)
    slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted)
    slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted)
    assert post(*sent[0]).status_code == 200  # the first click again, byte for byte

    def settled() -> list[dict[str, Any]]:
        [message] = world.slack.messages("C0ERRORS")
        posted_now = container.sync.item(item.id, workspace_id=None).status == "posted"
        return [message] if posted_now and "Retrying" not in texts(message) else []

    [message] = wait_for(settled, timeout=30)
    assert item.document_number and item.document_number in texts(message)
    assert numbers(world, "Invoices")[item.document_number] == 1


def test_a_sync_from_the_cli_posts_to_slack_and_its_retry_button_works_in_the_bot(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    from bot import cli

    connected_shop(container, world)
    world.amazon.orders_per_report = 17  # a few PLN failures: the thread is posted at one a second
    # Another process, as `python -m bot sync` is: its own container, the same database.
    settings = replace(container.settings, errors_channel="C0ERRORS", summary_channel="C0FINANCE")
    assert cli.main(["sync", "Acme EU", "--period", "2026-10"], settings=settings) == 1
    [parent] = [m for m in world.slack.messages("C0ERRORS") if ids.RETRY_ALL_FAILED in texts(m)]
    assert "October 2026" in parent["text"]
    assert any("October 2026" in texts(m) for m in world.slack.messages("C0FINANCE"))  # summary
    [run_id] = [
        button["value"]
        for block in parent["blocks"]
        if block["type"] == "actions"
        for button in block["elements"]
        if button["action_id"] == ids.RETRY_ALL_FAILED
    ]

    enable_pln(world)
    slack.click(ids.RETRY_ALL_FAILED, run_id, channel="C0ERRORS", message=parent)

    def retried() -> list[dict[str, Any]]:
        [now] = [m for m in world.slack.messages("C0ERRORS") if m["ts"] == parent["ts"]]
        done = not container.sync.failed_items(
            int(run_id), workspace_id=None
        ) and "Retrying" not in texts(now)
        return [now] if done else []

    [updated] = wait_for(retried, timeout=30)
    assert "Retried by <@U0ADMIN>" in texts(updated)


def test_a_retry_from_the_cli_updates_the_error_report_an_earlier_process_posted(
    container: Container, world: SandboxWorld
) -> None:
    from bot import cli

    connected_shop(container, world)
    world.amazon.orders_per_report = 17  # a month with a few PLN documents, which fail
    settings = replace(container.settings, errors_channel="C0ERRORS", summary_channel="C0FINANCE")
    assert cli.main(["sync", "Acme EU", "--period", "2026-10"], settings=settings) == 1
    [parent] = [m for m in world.slack.messages("C0ERRORS") if m.get("thread_ts") == m["ts"]]
    [run] = container.sync.runs(container.integrations.find("Acme EU", None).id, workspace_id=None)

    enable_pln(world)
    assert cli.main(["retry", "--run", str(run.id)], settings=settings) == 0
    parents = [m for m in world.slack.messages("C0ERRORS") if m.get("thread_ts") == m["ts"]]
    assert [m["ts"] for m in parents] == [parent["ts"]]
    assert "are in Xero" in parents[0]["text"]


def test_a_click_while_its_month_is_being_retried_shows_what_that_retry_came_to(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    from tests.test_sync import numbers

    item, posted = failed_item_in_errors(container, world)

    def month(**values: Any) -> None:
        with container.sessions.begin() as session:
            session.execute(update(SyncRun).where(SyncRun.id == item.run_id).values(**values))

    # Ada's "Retry all failed" holds the month (its claim, as her retry's process would hold
    # it) when the item's Retry is clicked, four times.
    with container.sessions() as session:
        run = session.get(SyncRun, item.run_id)
        assert run is not None
        summary, period = run.summary, run.period
    adas = container.claims.hold(item.integration_id, period)
    assert adas is not None
    with adas:
        month(status=RunStatus.RUNNING, summary=summary | {"held_by": "U0ADA"})
        for _ in range(4):
            slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted)
        told = wait_for(lambda: [c for c in world.slack.calls if c[0] == "chat.postEphemeral"], 4)
        for _, call in told:
            assert "already running" in call["text"]
            assert "queued behind the retry started by <@U0ADA>" in json.dumps(call["blocks"])
        assert "Retrying" in texts(world.slack.messages("C0ERRORS")[0])
        # Waiting holds none of the background threads: other work still runs at once.
        for future in [container.background.submit(lambda: None) for _ in range(8)]:
            future.result(timeout=2)
        # A sync of the held month says so, rather than "Syncing..." with nothing started.
        slack.command("sync Acme EU 2026-10", key="sync-now")
        [answer] = wait_for(lambda: slack.slack.responses("sync-now"))
        assert "already running" in texts(answer) and "Syncing" not in texts(answer)

        # That retry posts the item, and ends.
        with container.sessions.begin() as session:
            posted_values = {"status": LedgerStatus.POSTED, "xero_id": "xero-id-1"}
            session.execute(
                update(LedgerItem).where(LedgerItem.id == item.id).values(posted_values)
            )
        month(status=RunStatus.PARTIAL)

    def outcome() -> list[dict[str, Any]]:
        [message] = world.slack.messages("C0ERRORS")
        return [message] if "Retrying" not in texts(message) else []

    [message] = wait_for(outcome)
    assert "is in Xero" in texts(message)
    assert item.document_number is not None
    assert numbers(world, "Invoices")[item.document_number] == 0  # the click posted nothing


def test_retry_run_on_a_run_that_could_not_proceed_runs_it_again(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = connected_shop(container, world)
    world.amazon.end_next_report_with("FATAL")
    result = container.sync.sync_period(shop, "2026-10")
    assert result.status == RunStatus.FAILED
    message = blocks.run_failed_message(result, integration_id=shop.id)
    posted = sandbox_client(world).chat_postMessage(channel="C0ERRORS", **message)
    slack.click(ids.RETRY_RUN, str(result.run_id), channel="C0ERRORS", message=posted["message"])

    def outcome() -> list[dict[str, Any]]:
        [now] = world.slack.messages("C0ERRORS")
        return [now] if "Retried by <@U0ADMIN>" in texts(now) else []

    wait_for(outcome, timeout=30)
    assert container.sync.result_of(result.run_id, workspace_id=None).status != RunStatus.FAILED


def test_a_request_sent_again_is_answered_but_acts_once(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    sent, post = recording(slack)
    assert slack.command("refresh Acme EU", key="refresh").status_code == 200
    [(data, headers)] = sent
    # A replay of the same signed request, and Slack's own retry of it: both answered.
    assert post(data, headers).status_code == 200
    assert post(data, headers | {"X-Slack-Retry-Num": "1"}).status_code == 200

    [link] = wait_for(lambda: slack.slack.responses("refresh"))
    time.sleep(1)  # time for a second answer, if one were coming
    assert slack.slack.responses("refresh") == [link]
    with container.sessions() as session:
        states = session.scalars(select(OAuthState).where(OAuthState.integration_id == shop.id))
        assert len(states.all()) == 1  # one consent link minted, not three


def test_a_request_that_failed_is_acted_on_when_slack_sends_it_again() -> None:
    from slack_bolt import BoltRequest, BoltResponse

    from bot.slack_app import _once_per_request

    once = _once_per_request()
    request = BoltRequest(body='{"event_id": "Ev0FAILED", "type": "event_callback"}')
    answers = iter([BoltResponse(status=500), BoltResponse(status=200, body="acted")])
    acted: list[int] = []

    def handle() -> BoltResponse:
        response = next(answers)
        acted.append(response.status)
        return response

    assert once(req=request, next=handle).status == 500
    assert once(req=request, next=handle).body == "acted"  # Slack's retry: acted on
    assert once(req=request, next=handle).body == ""  # and now only answered
    assert acted == [500, 200]
