"""The consent flows end to end: the bot's web server, the sandbox consent pages, real HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import requests
from sqlalchemy import update

from bot.container import Container
from bot.web import LateBoundApp, create_web_app
from sandbox.browser import consent_to_both, submit_consent
from sandbox.server import LoopbackServer
from sandbox.world import SandboxWorld
from sandbox.xero import SandboxOrg, XeroSandbox
from services.connect import Purpose
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.models import Integration, IntegrationStatus, OAuthState
from tests.conftest import make_settings

SPEC = IntegrationSpec(
    name="Acme EU",
    region=Region.EU,
    marketplaces=("A1PA6795UKMFR9",),
    start_date=date(2026, 1, 1),
)


def _new(container: Container) -> Integration:
    return container.integrations.create(SPEC, actor="U0ADMIN")


def _connect_both(container: Container) -> Integration:
    consent_to_both(container.connect, _new(container), actor="U0ADMIN")
    return container.integrations.get(SPEC.name)


def test_connecting_amazon_then_xero_activates_the_integration(container: Container) -> None:
    integration = _new(container)
    browser = requests.Session()

    amazon_url = container.connect.amazon_consent_url(integration, actor="U0ADMIN")
    query = parse_qs(urlparse(amazon_url).query)
    assert query["application_id"] == [container.settings.amazon_spapi_application_id]
    assert "version" not in query
    page = submit_consent(browser, amazon_url)
    assert page.status_code == 200, page.text
    assert "Amazon Seller Central is connected to Acme EU. Next, connect Xero." in page.text
    assert container.integrations.get("Acme EU").status == IntegrationStatus.PENDING_AUTHORIZATION

    xero_url = container.connect.xero_consent_url(integration, actor="U0ADMIN")
    assert "offline_access" in parse_qs(urlparse(xero_url).query)["scope"][0]
    page = submit_consent(browser, xero_url)
    assert page.status_code == 200, page.text
    assert "The integration is active." in page.text

    stored = container.integrations.get("Acme EU")
    assert stored.status == IntegrationStatus.ACTIVE
    assert stored.amazon_selling_partner_id
    assert stored.xero_tenant_id and stored.xero_tenant_name
    # The stored tokens are encrypted and they work: Amazon issues an access token for one,
    # Xero answers an API call with the other (which also rotates it).
    amazon_token = container.integrations.amazon_refresh_token(stored)
    assert amazon_token.encode() not in (stored.amazon_refresh_token_encrypted or b"")
    assert container.lwa.access_token(amazon_token)
    before = container.integrations.xero_refresh_token(stored.id)
    assert container.xero(stored).organisation().name
    assert container.integrations.xero_refresh_token(stored.id) != before
    actions = [e.action for e in container.integrations.audit_log(stored.id)]
    assert actions == ["integration.created", "amazon.authorized", "xero.connected"]
    assert {e.actor for e in container.integrations.audit_log(stored.id)} == {"U0ADMIN"}


def test_a_callback_link_works_once(container: Container) -> None:
    integration = _new(container)
    page = submit_consent(
        requests.Session(), container.connect.amazon_consent_url(integration, actor="U0ADMIN")
    )
    assert page.status_code == 200
    replay = requests.get(page.url, timeout=10)
    assert replay.status_code == 400
    assert "This link was already used. Nothing was changed." in replay.text


def test_an_expired_state_changes_nothing(container: Container) -> None:
    integration = _new(container)
    url = container.connect.xero_consent_url(integration, actor="U0ADMIN")
    with container.sessions.begin() as session:
        session.execute(
            update(OAuthState).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    page = submit_consent(requests.Session(), url)
    assert page.status_code == 400
    assert "This link expired (links are valid for 10 minutes)" in page.text
    assert container.integrations.get("Acme EU").xero_tenant_id is None


def test_forged_and_missing_states_are_refused(container: Container) -> None:
    _new(container)
    base = container.settings.public_base_url
    for params in (
        {"state": "forged", "spapi_oauth_code": "x", "selling_partner_id": "A1"},
        {"spapi_oauth_code": "x", "selling_partner_id": "A1"},
    ):
        page = requests.get(f"{base}/oauth/amazon/callback", params=params, timeout=10)
        assert page.status_code == 400
        assert "This link is not one the bot issued" in page.text
    assert container.integrations.get("Acme EU").amazon_refresh_token_encrypted is None


def test_an_amazon_state_cannot_complete_the_xero_callback(container: Container) -> None:
    integration = _new(container)
    amazon_url = container.connect.amazon_consent_url(integration, actor="U0ADMIN")
    state = parse_qs(urlparse(amazon_url).query)["state"][0]
    page = requests.get(
        f"{container.settings.public_base_url}/oauth/xero/callback",
        params={"state": state, "code": "x"},
        timeout=10,
    )
    assert page.status_code == 400
    assert "not one the bot issued" in page.text


def test_declining_at_xero_says_so(container: Container) -> None:
    integration = _new(container)
    url = container.connect.xero_consent_url(integration, actor="U0ADMIN")
    state = parse_qs(urlparse(url).query)["state"][0]
    page = requests.get(
        f"{container.settings.public_base_url}/oauth/xero/callback",
        params={"error": "access_denied", "state": state},
        timeout=10,
    )
    assert page.status_code == 400
    assert "Xero access was not granted" in page.text


def test_refresh_replaces_the_amazon_token_and_restarts_the_clock(container: Container) -> None:
    connected = _connect_both(container)
    old_token = container.integrations.amazon_refresh_token(connected)
    with container.sessions.begin() as session:
        session.execute(
            update(Integration).values(
                status=IntegrationStatus.AUTHORIZATION_EXPIRED,
                amazon_authorized_at=datetime.now(UTC) - timedelta(days=366),
            )
        )
    url = container.connect.amazon_consent_url(connected, actor="U0ADMIN", purpose=Purpose.REFRESH)
    page = submit_consent(requests.Session(), url)
    assert "renewed for another 365 days" in page.text
    refreshed = container.integrations.get("Acme EU")
    assert refreshed.status == IntegrationStatus.ACTIVE
    assert container.integrations.amazon_refresh_token(refreshed) != old_token
    assert refreshed.amazon_authorized_at is not None
    assert datetime.now(UTC) - refreshed.amazon_authorized_at < timedelta(minutes=1)
    assert container.integrations.audit_log(refreshed.id)[-1].action == "amazon.reauthorized"


def test_draft_apps_send_version_beta(world: SandboxWorld, database_url: str) -> None:
    draft = Container(make_settings(world, database_url, AMAZON_APP_IS_DRAFT="true"))
    draft.migrate()
    integration = draft.integrations.create(SPEC, actor="U0ADMIN")
    url = draft.connect.amazon_consent_url(integration, actor="U0ADMIN")
    assert parse_qs(urlparse(url).query)["version"] == ["beta"]
    draft.engine.dispose()


def test_health_check(container: Container) -> None:
    response = requests.get(f"{container.settings.public_base_url}/healthz", timeout=10)
    # The public answer is up or down only (the details need HEALTH_TOKEN).
    assert (response.status_code, response.text) == (200, "ok\n")


def test_each_xero_consent_connects_the_organisation_chosen_in_it(
    world: SandboxWorld, database_url: str, web_app: tuple[LateBoundApp, LoopbackServer]
) -> None:
    first, second = SandboxOrg(name="Acme Ltd"), SandboxOrg(name="Acme GmbH")
    xero = XeroSandbox(tenants=[first, second])
    late_app, web = web_app
    with LoopbackServer(xero.app) as xero_server:
        settings = make_settings(
            world,
            database_url,
            PUBLIC_BASE_URL=web.url,
            XERO_API_URL=xero_server.url,
            XERO_IDENTITY_URL=xero_server.url,
            XERO_LOGIN_URL=xero_server.url,
        )
        container = Container(settings)
        container.migrate()
        late_app.app = create_web_app(container)
        browser = requests.Session()
        uk = container.integrations.create(SPEC, actor="U0ADMIN")
        de = container.integrations.create(replace(SPEC, name="Acme DE"), actor="U0ADMIN")

        fr = container.integrations.create(replace(SPEC, name="Acme FR"), actor="U0ADMIN")
        for integration, org in ((uk, first), (de, second), (fr, first)):
            url = container.connect.xero_consent_url(integration, actor="U0ADMIN")
            assert submit_consent(browser, url, choose={"tenant": org.tenant_id}).ok
        # Acme FR re-consented to the older connection: the newest one must not be picked.
        assert container.integrations.get("Acme EU").xero_tenant_name == "Acme Ltd"
        assert container.integrations.get("Acme DE").xero_tenant_name == "Acme GmbH"
        assert container.integrations.get("Acme FR").xero_tenant_name == "Acme Ltd"

        both = container.integrations.create(replace(SPEC, name="Both"), actor="U0ADMIN")
        url = container.connect.xero_consent_url(both, actor="U0ADMIN")
        page = submit_consent(browser, url, choose={"tenant": [first.tenant_id, second.tenant_id]})
        assert page.status_code == 400
        assert "2 were chosen" in page.text
        assert container.integrations.get("Both").xero_tenant_id is None
        container.engine.dispose()
