"""One Slack workspace never touches another's books: signed requests from two workspaces to
the real Bolt app, the sandbox's consent pages and two Xero organisations and Amazon sellers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from sqlalchemy import select, update

from bot.container import Container
from handlers import blocks
from handlers.blocks import ids
from sandbox import slack_driver
from sandbox.browser import consent_to_both, submit_consent
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from sandbox.xero import SandboxOrg
from services.amazon import LwaClient
from services.connect import Purpose
from services.errors import ErrorKind
from services.models import AuditEntry, Integration, LedgerItem, OAuthState
from tests.test_slack_app import (
    SPEC,
    connected_shop,
    failed_item_in_errors,
    setup_values,
    texts,
    wait_for,
)

OTHER = "T0OTHER"  # a second workspace the same deployment serves


@pytest.fixture
def container(served_container: Container) -> Container:
    """Every click here goes through the real `python -m bot run` and its worker."""
    return served_container


@contextmanager
def from_workspace(team: str) -> Iterator[None]:
    """The driver's requests come from `team` meanwhile (Slack signs them all the same)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slack_driver, "TEAM", team)
        yield


def answer(slack: SlackDriver, key: str) -> str:
    [reply] = wait_for(lambda: slack.slack.responses(key))
    return texts(reply)


def refusals(container: Container, integration: Integration) -> list[AuditEntry]:
    return [
        entry
        for entry in container.integrations.audit_log(integration.id)
        if entry.action == "workspace.access_refused"
    ]


def test_buttons_with_another_workspaces_integration_find_nothing_and_are_audited(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    # Starting this month, it has nothing for the bot's scheduler to catch up on: any run
    # would be the clicks'.
    this_month = replace(SPEC, start_date=datetime.now(UTC).date().replace(day=1))
    theirs = container.integrations.create(this_month, actor="U0ADMIN", workspace_id=TEAM)
    consent_to_both(container.connect, theirs, actor="U0ADMIN")
    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=OTHER)  # same name
    states_before = len(_states(container))
    with from_workspace(OTHER):
        slack.click(ids.OPEN_SETTINGS, "999999", key="missing")
        missing = answer(slack, "missing")
        for action in (
            ids.OPEN_SETTINGS,
            ids.SEND_CONNECT_LINKS,
            ids.REFRESH_INTEGRATION,
            ids.SYNC_NOW,
            ids.STOP_INTEGRATION,
        ):
            slack.click(action, str(theirs.id), key=action)
            # The same answer as for an id that does not exist.
            assert answer(slack, action) == missing.replace("999999", str(theirs.id))
    assert "No integration with id" in missing
    assert not [call for call in world.slack.calls if call[0] == "views.open"]
    assert len(_states(container)) == states_before  # no consent link was made
    assert container.sync.runs(theirs.id, workspace_id=None) == []
    assert not world.xero.api_calls()  # no live tax types fetched with their token
    assert len(refusals(container, theirs)) == 5
    assert {entry.details["workspace_id"] for entry in refusals(container, theirs)} == {OTHER}


def _states(container: Container) -> list[OAuthState]:
    with container.sessions() as session:
        return list(session.scalars(select(OAuthState)))


def test_retry_buttons_with_another_workspaces_items_and_runs_find_nothing(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    item, posted = failed_item_in_errors(container, world)
    with from_workspace(OTHER):
        slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted, key="item")
        assert f"There is no ledger item {item.id}." in answer(slack, "item")
        slack.click(ids.RETRY_ALL_FAILED, str(item.run_id), channel="C0ERRORS", key="run")
        assert f"There is no run {item.run_id}." in answer(slack, "run")
        value = blocks.retry_items_value(item.run_id, blocks.failure_key(item))
        slack.click(ids.RETRY_ITEMS, value, channel="C0ERRORS", key="group")
        assert f"There is no run {item.run_id}." in answer(slack, "group")
    assert container.sync.item(item.id, workspace_id=None).status == "failed"
    assert not [call for call in world.slack.calls if call[0] == "chat.update"]
    shop = container.integrations.get(SPEC.name, TEAM)
    assert len(refusals(container, shop)) == 3


def test_a_settings_submission_for_another_workspaces_integration_changes_nothing(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    theirs = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    container.integrations.update_settings(
        theirs.id, actor="U0ADMIN", workspace_id=TEAM, tax_overrides={"DE:19:domestic": "OUTPUT"}
    )
    ours = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=OTHER)
    # The settings modal of their integration, as a forged payload would carry it.
    view = blocks.settings_modal(theirs, tax_types=[]) | {"id": "V1"}
    with from_workspace(OTHER):
        refused = slack.submit(view, setup_values(SPEC.name, marketplaces=["A1PA6795UKMFR9"]))
    assert refused.json()["response_action"] == "errors"
    assert f"No integration with id {theirs.id}." in texts(refused.json())
    assert container.integrations.get_by_id(ours.id, workspace_id=None).tax_overrides == {}
    assert len(refusals(container, theirs)) == 1


def test_the_admin_check_comes_before_any_lookup_and_refusals_are_audited(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    slack.click(ids.STOP_INTEGRATION, str(shop.id), user="U0VIEWER", key="real")
    slack.click(ids.STOP_INTEGRATION, "999999", user="U0VIEWER", key="missing")
    slack.command("stop Nobody Here", user="U0VIEWER", key="name")
    # The same refusal whether the id or name exists or not.
    assert answer(slack, "real") == answer(slack, "missing")
    assert "Only admins can stop integrations" in answer(slack, "name")
    assert "Nobody" not in answer(slack, "name")
    with container.sessions() as session:
        refused = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "admin.refused"))
        )
    assert [(e.actor, e.details["workspace_id"]) for e in refused] == [("U0VIEWER", TEAM)] * 3


def test_ephemerals_after_a_retry_escape_report_text(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    item, posted = failed_item_in_errors(container, world)
    with container.sessions.begin() as session:
        session.execute(
            update(LedgerItem)
            .where(LedgerItem.id == item.id)
            .values(error_kind=ErrorKind.BAD_DATA, error_message="Buyer <!channel> *B* is odd.")
        )
    slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted)
    [(_, told)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "chat.postEphemeral"])
    assert "<!channel>" not in texts(told)
    assert "&lt;!channel&gt;" in told["text"]


def test_names_and_fields_are_checked_inline(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    view = {"id": "V1", "type": "modal", "callback_id": ids.SETUP_CALLBACK}
    cases = [
        ({"name": "Acme\x1b[2J EU"}, ids.NAME.block),
        ({"name": "Acme \u202eUE"}, ids.NAME.block),
        ({"name": "Ac\u200bme"}, ids.NAME.block),
        ({"sales_account_code": "2" * 10_000}, ids.SALES_ACCOUNT_CODE.block),
        ({"shipping_account_code": "20 0"}, ids.SHIPPING_ACCOUNT_CODE.block),
    ]
    for changes, block in cases:
        values = setup_values(str(changes.pop("name", "Acme EU")), **changes)
        refused = slack.submit(view, values)
        assert refused.json()["response_action"] == "errors", changes
        assert block in refused.json()["errors"]
    long_channel = setup_values("Acme EU")
    long_channel[ids.ERRORS_CHANNEL.block][ids.ERRORS_CHANNEL.action]["selected_conversation"] = (
        "C" * 10_000
    )
    refused = slack.submit(view, long_channel)
    assert ids.ERRORS_CHANNEL.block in refused.json()["errors"]
    for field, bad in ((ids.REGION, "mars"), (ids.INVOICE_STATUS, "PAID")):
        values = setup_values("Acme EU")
        values[field.block][field.action]["selected_option"] = {"value": bad}
        refused = slack.submit(view, values)
        assert refused.status_code == 200
        assert field.block in refused.json()["errors"]
    assert container.integrations.list(TEAM) == []


def test_a_consent_link_is_bound_to_its_workspace(
    container: Container, world: SandboxWorld
) -> None:
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    with pytest.raises(Exception, match="No integration with id"):
        container.connect.amazon_consent_url(shop, actor="U0ADMIN", workspace_id=OTHER)
    url = container.connect.xero_consent_url(shop, actor="U0ADMIN", workspace_id=TEAM)
    [state] = parse_qs(urlparse(url).query)["state"]
    with container.sessions.begin() as session:
        stored = session.get(OAuthState, state)
        assert stored is not None and stored.workspace_id == TEAM
        stored.workspace_id = OTHER  # a state whose workspace is not its integration's
    page = submit_consent(requests.Session(), url)
    assert page.status_code == 400 and "Connection not completed" in page.text
    assert container.integrations.get_by_id(shop.id, workspace_id=None).xero_tenant_id is None


def test_moving_an_integration_to_another_xero_organisation_waits_for_an_admin(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    shop = connected_shop(container, world)
    shop = container.integrations.update_settings(
        shop.id, actor="U0ADMIN", workspace_id=TEAM, errors_channel="C0ERRORS"
    )
    books = shop.xero_tenant_id
    other = SandboxOrg(name="Someone Else Ltd")
    world.xero.tenants.append(other)
    url = container.connect.xero_consent_url(shop, actor="U0ADMIN", workspace_id=TEAM)
    page = submit_consent(requests.Session(), url, choose={"tenant": other.tenant_id})
    assert "Confirmation needed" in page.text and "Someone Else Ltd" in page.text
    held = container.integrations.get_by_id(shop.id, workspace_id=None)
    assert held.xero_tenant_id == books  # nothing moved
    [question] = world.slack.messages("C0ERRORS")
    assert "Someone Else Ltd" in texts(question)
    [value] = {
        button["value"]
        for block in question["blocks"]
        if block["type"] == "actions"
        for button in block["elements"]
    }

    slack.click(ids.CONFIRM_XERO_CHANGE, value, user="U0VIEWER", channel="C0ERRORS", key="v")
    assert "Only admins" in answer(slack, "v")
    with from_workspace(OTHER):
        slack.click(ids.CONFIRM_XERO_CHANGE, value, channel="C0ERRORS", key="other")
        assert f"No integration with id {shop.id}" in answer(slack, "other")
    assert container.integrations.get_by_id(shop.id, workspace_id=None).xero_tenant_id == books

    slack.click(ids.CONFIRM_XERO_CHANGE, value, channel="C0ERRORS", message=question, key="ok")
    assert "now posts to the Xero organisation *Someone Else Ltd*" in answer(slack, "ok")
    moved = container.integrations.get_by_id(shop.id, workspace_id=None)
    assert moved.xero_tenant_id == other.tenant_id and moved.xero_pending_tenant_id is None
    actions = [e.action for e in container.integrations.audit_log(shop.id)]
    assert actions[actions.index("xero.change_held") :] == [
        "xero.change_held",
        "workspace.access_refused",  # the click from the other workspace
        "xero.change_confirmed",
    ]
    # Answered: the same button again finds nothing waiting.
    slack.click(ids.CANCEL_XERO_CHANGE, value, channel="C0ERRORS", key="again")
    assert "No change of Xero organisation is waiting" in answer(slack, "again")


def test_an_amazon_refresh_must_come_from_the_seller_the_token_proves(
    container: Container, world: SandboxWorld
) -> None:
    connect = container.connect  # asks the Sellers API what a new token proves
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    browser = requests.Session()
    assert submit_consent(browser, connect.amazon_consent_url(shop, actor="U0ADMIN")).ok
    connected = container.integrations.get_by_id(shop.id, workspace_id=None)
    assert connected.amazon_stores and "Sandbox Store" in connected.amazon_stores.values()
    seller = connected.amazon_selling_partner_id
    token = connected.amazon_refresh_token_encrypted

    # Someone else signs in at Amazon and edits the redirect to name the original seller.
    world.amazon.signed_in = world.amazon.add_seller("Other Store", ["A1PA6795UKMFR9"])
    url = connect.amazon_consent_url(shop, actor="U0ADMIN", purpose=Purpose.REFRESH)
    edited = _redirect_naming(browser, url, seller or "")
    assert edited.status_code == 400 and "Other Store" in edited.text
    assert (
        container.integrations.get_by_id(shop.id, workspace_id=None).amazon_refresh_token_encrypted
        == token
    )

    # A selling_partner_id that is not one is refused before any code is exchanged.
    url = connect.amazon_consent_url(shop, actor="U0ADMIN", purpose=Purpose.REFRESH)
    forged = _redirect_naming(browser, url, "a1<script>")
    assert forged.status_code == 400 and "does not name a seller" in forged.text

    world.amazon.signed_in = world.amazon.selling_partner_id
    url = connect.amazon_consent_url(shop, actor="U0ADMIN", purpose=Purpose.REFRESH)
    assert "renewed" in submit_consent(browser, url).text


def _redirect_naming(
    browser: requests.Session, consent_url: str, selling_partner_id: str
) -> requests.Response:
    """Consent at Amazon, but stop at its redirect and send it on with the seller id edited."""
    page = browser.get(consent_url, timeout=10)
    form = dict(_hidden_fields(page.text))
    redirect = browser.post(
        page.url.split("?")[0], data={**form, "confirm": "1"}, allow_redirects=False, timeout=10
    )
    location = urlparse(redirect.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    query["selling_partner_id"] = selling_partner_id
    return browser.get(
        f"{location.scheme}://{location.netloc}{location.path}?{urlencode(query)}", timeout=10
    )


def _hidden_fields(html: str) -> list[tuple[str, str]]:
    return re.findall(r"name='([^']+)' value='([^']*)'", html)


def test_sandbox_sellers_api_answers_for_the_tokens_seller(world: SandboxWorld) -> None:
    lwa = LwaClient(
        token_url=f"{world.amazon_server.url}/auth/o2/token",
        client_id=world.amazon.client_id,
        client_secret=world.amazon.client_secret,
    )
    world.amazon.signed_in = world.amazon.add_seller("Other Store", ["A1PA6795UKMFR9"])
    code = world.amazon.authorization_code()
    token = lwa.exchange_code(code, "https://bot.example/amazon/callback")
    response = requests.get(
        f"{world.amazon_server.url}/sellers/v1/marketplaceParticipations",
        headers={"x-amz-access-token": lwa.access_token(token)},
        timeout=10,
    )
    assert response.status_code == 200 and response.headers["x-amzn-RateLimit-Limit"] == "0.016"
    [participation] = response.json()["payload"]
    assert participation["storeName"] == "Other Store"
    assert participation["marketplace"]["countryCode"] == "DE"
    assert "sellerId" not in json.dumps(participation)  # the spec's answer names no seller id
    unauthorized = requests.get(
        f"{world.amazon_server.url}/sellers/v1/marketplaceParticipations", timeout=10
    )
    assert unauthorized.status_code == 403


def test_the_cli_still_reaches_every_workspace(container: Container, world: SandboxWorld) -> None:
    """The operator's CLI passes no workspace: ids resolve in any workspace, as before."""
    item, _ = failed_item_in_errors(container, world)
    assert container.sync.item(item.id, workspace_id=None).id == item.id
    assert container.sync.result_of(item.run_id, workspace_id=None).failed > 0
    assert (
        container.integrations.get_by_id(item.integration_id, workspace_id=None).workspace_id
        == TEAM
    )


def test_a_refresh_is_proved_against_the_current_token_even_with_no_stores_on_record(
    container: Container, world: SandboxWorld
) -> None:
    connect = container.connect
    shop = container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    browser = requests.Session()
    assert submit_consent(browser, connect.amazon_consent_url(shop, actor="U0ADMIN")).ok
    seller = (
        container.integrations.get_by_id(shop.id, workspace_id=None).amazon_selling_partner_id or ""
    )
    # Connected before tokens were checked: nothing on record to compare with.
    with container.sessions.begin() as session:
        session.execute(update(Integration).values(amazon_stores=None))

    world.amazon.signed_in = world.amazon.add_seller("Other Store", ["A1PA6795UKMFR9"])
    url = connect.amazon_consent_url(shop, actor="U0ADMIN", purpose=Purpose.REFRESH)
    edited = _redirect_naming(browser, url, seller)
    assert edited.status_code == 400 and "Other Store" in edited.text

    # The real seller renamed its store since: its current token still proves it.
    world.amazon.signed_in = seller
    renamed = world.amazon.sellers[seller]
    world.amazon.sellers[seller] = replace(renamed, store_name="Renamed Store")
    url = connect.amazon_consent_url(shop, actor="U0ADMIN", purpose=Purpose.REFRESH)
    assert "renewed" in submit_consent(browser, url).text
