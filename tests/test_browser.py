"""The Connect links in a real browser: headless Chromium clicks through the sandbox consent
pages and lands on the bot's callback pages, as a person would.

Debian's Chromium (/usr/bin/chromium, installed by .ci/run) is driven by Playwright; Playwright's
own browser download is never used. Runs on SQLite only: the browser adds HTML forms, redirects
and rendering, none of it database-specific, and test_connect_flow covers the same callbacks
on both backends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bot.container import Container
from sandbox.world import SandboxWorld
from services.connect import AMAZON_CALLBACK_PATH, XERO_CALLBACK_PATH
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.models import IntegrationStatus

CHROMIUM = Path("/usr/bin/chromium")
# The background-networking flags stop Chromium's own calls home, which a closed network
# refuses; headless boxes and root (CI) need the sandbox and GPU off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 5_000  # loopback pages answer in milliseconds; fail fast rather than hang

SPEC = IntegrationSpec(
    name="Acme EU",
    region=Region.EU,
    marketplaces=("A1PA6795UKMFR9",),
    start_date=date(2026, 1, 1),
)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (see the module docstring): overrides conftest's two-backend fixture."""
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        # CI installs it (.ci/run), so there a missing browser is a broken setup, not a skip.
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def _press(page: Page, button: str, callback: str) -> None:
    """Press the consent page's button and wait for our callback page to answer 200."""
    with page.expect_response(lambda response: response.url.startswith(callback)) as answer:
        page.get_by_role("button", name=button).click()
    assert answer.value.status == 200, answer.value.text()


def test_connect_links_in_a_real_browser(
    browser: Browser, container: Container, world: SandboxWorld, tmp_path: Path
) -> None:
    integration = container.integrations.create(SPEC, actor="U0ADMIN")
    base = container.settings.public_base_url.rstrip("/")
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    page.goto(container.connect.amazon_consent_url(integration, actor="U0ADMIN"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Authorize {world.amazon.application_name}"
    )
    _press(page, "Confirm", base + AMAZON_CALLBACK_PATH)
    expect(page.get_by_role("heading", level=1)).to_have_text("Step complete")
    expect(page.locator("#message")).to_have_text(
        "Amazon Seller Central is connected to Acme EU. Next, connect Xero."
    )
    page.screenshot(path=tmp_path / "amazon-callback.png", full_page=True)

    page.goto(container.connect.xero_consent_url(integration, actor="U0ADMIN"))
    # The organisation picker shows the sandbox's one organisation, already chosen.
    [org] = world.xero.tenants
    expect(page.get_by_label("Organisation")).to_have_value(org.tenant_id)
    _press(page, "Allow access", base + XERO_CALLBACK_PATH)
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected")
    expect(page.locator("#message")).to_have_text(
        f"Xero organisation {org.name} is connected to Acme EU. The integration is active."
    )
    page.screenshot(path=tmp_path / "xero-callback.png", full_page=True)

    stored = container.integrations.get(SPEC.name)
    assert stored.status == IntegrationStatus.ACTIVE
    assert stored.amazon_selling_partner_id
    assert stored.xero_tenant_name == org.name
