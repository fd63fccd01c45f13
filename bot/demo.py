"""`make demo`: the bot's main job on embedded defaults, offline, in seconds.

It starts the sandbox world and the bot's own web server, sets up an integration, walks
through Amazon's and Xero's consent pages as a user would, and shows the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from bot.config import DATA_DIR, load_settings
from bot.container import Container
from bot.results import describe_result, money
from bot.web import LateBoundApp, create_web_app
from sandbox.browser import submit_consent
from sandbox.server import LoopbackServer
from sandbox.world import SandboxWorld
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.sync import period_label, previous_period

DEMO_DATABASE = DATA_DIR / "demo.sqlite3"
DEMO_ACTOR = "demo:finance-admin"


def _page_message(response: requests.Response) -> str:
    text = response.text
    start = text.find('id="message">')
    return text[start + len('id="message">') : text.find("</p>", start)] if start >= 0 else text


def run_demo(database: Path = DEMO_DATABASE, out: Callable[[str], None] = print) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    period = previous_period(datetime.now(UTC))
    database.parent.mkdir(parents=True, exist_ok=True)
    for stale in database.parent.glob(database.name + "*"):
        stale.unlink()
    late_app = LateBoundApp()
    with SandboxWorld() as world, LoopbackServer(late_app) as web:
        env = world.env() | {
            "DATABASE_URL": f"sqlite:///{database}",
            "PUBLIC_BASE_URL": web.url,
            # The demo database is new every run, so a fresh key is all it needs.
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
        container = Container(load_settings(env, dotenv=Path("/nonexistent")))
        container.migrate()
        late_app.app = create_web_app(container)

        out("== Amazon Xero Bot demo: sandbox Amazon, Xero and Slack on loopback ==")
        spec = IntegrationSpec(
            name="Acme EU",
            region=Region.EU,
            # amazon.pl sells in PLN, which the sandbox organisation has not enabled yet.
            marketplaces=("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3"),
            start_date=date.fromisoformat(period + "-01"),
        )
        integration = container.integrations.create(spec, actor=DEMO_ACTOR)
        out(f"1. Set up integration {integration.name!r}: {integration.status}")

        browser = requests.Session()
        amazon_url = container.connect.amazon_consent_url(integration, actor=DEMO_ACTOR)
        out(f"2. Amazon consent page: {amazon_url.split('?')[0]}")
        out(f"   -> {_page_message(submit_consent(browser, amazon_url))}")
        xero_url = container.connect.xero_consent_url(integration, actor=DEMO_ACTOR)
        out(f"3. Xero consent page: {xero_url.split('?')[0]}")
        out(f"   -> {_page_message(submit_consent(browser, xero_url))}")

        connected = container.integrations.get(integration.name)
        expires = container.integrations.authorization_expires_at(connected)
        token = connected.amazon_refresh_token_encrypted or b""
        out("4. Stored integration:")
        out(f"   status              {connected.status}")
        out(f"   Amazon seller       {connected.amazon_selling_partner_id}")
        out(
            f"   Amazon token        encrypted at rest ({token[:12].decode()}…, {len(token)} bytes)"
        )
        out(f"   Amazon consent ends {expires:%Y-%m-%d}" if expires else "")
        out(f"   Xero organisation   {connected.xero_tenant_name} ({connected.xero_tenant_id})")
        tenant = container.xero(connected).organisation()
        out(f"   Xero says           {tenant.get('Name')} ({tenant.get('BaseCurrency')})")
        out("Audit log:")
        for entry in container.integrations.audit_log(connected.id):
            out(f"   {entry.at:%H:%M:%S} {entry.actor:<18} {entry.action}")

        out(f"5. Sync {period_label(period)} (Amazon's VAT transactions report -> Xero):")
        result = container.sync.sync_period(connected, period)
        for line in describe_result(result):
            out("   " + line)
        for item in container.sync.failed_items(result.run_id)[:3]:
            out(f"   failed: {item.document_number or item.source_key}: {item.error_message}")

        out("6. Finance enables PLN in Xero (Settings > Currencies) and retries the failed items:")
        org = world.xero.org()
        org.currencies = (*org.currencies, "PLN")
        for line in describe_result(container.sync.retry_run(result.run_id)):
            out("   " + line)

        invoices = world.xero.documents("Invoices")
        credit_notes = world.xero.documents("CreditNotes")
        out(f"7. In Xero: {len(invoices)} invoices, {len(credit_notes)} credit notes, e.g.:")
        for document in [*invoices[:3], *credit_notes[:2]]:
            number = document.get("InvoiceNumber") or document.get("CreditNoteNumber")
            out(
                f"   {document['Type']:<12} {number:<22} {document['Contact']['Name'][:28]:<28} "
                f"{money(document['Total'], document['CurrencyCode']):>12}  {document['Status']}"
            )
        container.engine.dispose()
    return 0
