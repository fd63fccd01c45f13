"""`make demo`: the whole story offline, in seconds, through the same code paths as production.

The sandbox plays Amazon, Xero and Slack on loopback. A scripted finance admin runs
`/amazon setup` (signed requests, as Slack sends them), connects both sides through the consent
pages, syncs last month with the payouts Amazon deposited in it (the PLN documents and the
złoty payout fail: PLN is not enabled in Xero), enables PLN and clicks Retry on one failed item,
adds the złoty bank account and clicks Retry on the payout: each payout's invoices are paid, its
fees booked and its deposit transferred. Then the Slack conversation is printed as text, with
the documents Xero now holds.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from bot.config import DATA_DIR, load_settings
from bot.container import Container
from bot.slack_app import create_slack_app
from bot.web import LateBoundApp, create_web_app
from handlers import blocks
from handlers.blocks import ids
from handlers.blocks.common import money
from sandbox.browser import submit_consent
from sandbox.server import LoopbackServer
from sandbox.slack_driver import SlackDriver
from sandbox.world import SandboxWorld
from sandbox.xero_books import bank_account
from services.marketplaces import Region
from services.models import InvoiceStatus, RunStatus
from services.periods import period_bounds, period_label, previous_period

DEMO_DATABASE = DATA_DIR / "demo.sqlite3"
ADMIN = "U0ADMIN"  # "ada" in the sandbox workspace
NAME = "Acme EU"
AMAZON_DE, AMAZON_UK = "A1PA6795UKMFR9", "A1F83G8C2ARO7P"
WAIT = 60.0


def _wait(read: Callable[[], Any], what: str) -> Any:
    """Slack listeners answer after their ack, on their own threads."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if found := read():
            return found
        time.sleep(0.05)
    raise RuntimeError(f"the demo waited {WAIT:.0f} s for {what}")


def _page_message(response: requests.Response) -> str:
    found = re.search(r'id="message">(.*?)</p>', response.text, re.S)
    return found.group(1) if found else response.text


def _button_value(message: dict[str, Any], action_id: str) -> str | None:
    for block in message.get("blocks", []):
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return str(element["value"])
    return None


def run_demo(database: Path = DEMO_DATABASE, out: Callable[[str], None] = print) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    period = previous_period(datetime.now(UTC))
    database.parent.mkdir(parents=True, exist_ok=True)
    for stale in database.parent.glob(database.name + "*"):
        # The database, its write-ahead log and the run claims' lock files (a folder).
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    late_app = LateBoundApp()
    with SandboxWorld() as world, LoopbackServer(late_app) as web:
        # A small month: each failed item gets its own reply (and Slack one message a second).
        world.amazon.orders_per_report = 24
        world.amazon.report_processing_polls = 0
        env = world.env() | {
            "DATABASE_URL": f"sqlite:///{database}",
            "PUBLIC_BASE_URL": web.url,
            # The demo database is new every run, so a fresh key is all it needs.
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "ADMIN_USER_IDS": ADMIN,
        }
        container = Container(load_settings(env, dotenv=Path("/nonexistent")))
        container.migrate()
        late_app.app = create_web_app(container, create_slack_app(container))
        slack = SlackDriver(
            web.url, env["SLACK_SIGNING_SECRET"], world.slack, world.slack_server.url
        )
        out("== Amazon Xero Bot demo: sandbox Amazon, Xero and Slack on loopback ==")

        out("1. @ada types `/amazon setup`; the setup modal opens and she fills it in.")
        slack.command("setup", user=ADMIN, key="setup")
        view = _wait(
            lambda: [c[1]["view"] for c in world.slack.calls if c[0] == "views.open"],
            "the setup modal",
        )[0]
        values: blocks.SetupValues = {
            "name": NAME,
            "region": Region.EU,
            # amazon.pl sells in PLN, which the sandbox organisation has not enabled yet.
            "marketplaces": ["A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3"],
            "start_date": period_bounds(period)[0].date(),
            "invoice_status": InvoiceStatus.AUTHORISED,
            "sales_account_code": "200",
            "shipping_account_code": "200",
            "errors_channel": "C0ERRORS",
            "summary_channel": "C0FINANCE",
        }
        answer = slack.submit(view, blocks.setup_form_values(values), user=ADMIN).json()
        links = re.findall(r'"url": "(http[^"]+)"', json.dumps(answer["view"]))
        out(f"   The modal now shows {len(links)} links: Connect Amazon and Connect Xero.")

        # Amazon pays the pounds and the euros into the seller's bank accounts in Xero.
        world.xero.org().accounts.append(bank_account("091", "EUR"))
        out("2. She follows them: the consent pages, then our callback pages say")
        browser = requests.Session()
        for link in links:
            out(f"   -> {_page_message(submit_consent(browser, link))}")

        out(f"3. @ada types `/amazon sync {NAME} {period}`.")
        slack.command(f"sync {NAME} {period}", user=ADMIN, key="sync")
        integration = container.integrations.get(NAME, "T0SANDBOX")
        run = _wait(
            lambda: [
                r
                for r in container.sync.runs(integration.id, workspace_id=None)
                if r.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)
            ],
            f"the {period_label(period)} sync",
        )[0]
        failed = container.sync.failed_items(run.id, workspace_id=None)
        # The notifier posts one message a second: the thread, then the summary in place of
        # the progress message.
        _wait(
            lambda: (
                len(world.slack.messages("C0ERRORS")) > len(failed)
                and "Posting" not in json.dumps(world.slack.messages("C0FINANCE"))
            ),
            "the error thread and the summary",
        )
        result = container.sync.result_of(run.id, workspace_id=None)
        out(
            f"   The sync finished: {len(failed)} documents failed (PLN is not enabled). It "
            f"also booked the {len(result.settlements)} payouts Amazon deposited in the month: "
            f"{result.payments_created} payments, {result.bank_transactions_created} fee "
            f"transactions, {result.transfers_created} transfers."
        )

        out("4. Finance enables PLN in Xero; @ada clicks Retry on the first failed item.")
        org = world.xero.org()
        org.currencies = (*org.currencies, "PLN")
        reply, item_id = _wait(
            lambda: [
                (m, value)
                for m in world.slack.messages("C0ERRORS")
                if (value := _button_value(m, ids.RETRY_ITEM))
            ],
            "a failed item in #errors",
        )[0]
        slack.click(ids.RETRY_ITEM, item_id, user=ADMIN, channel="C0ERRORS", message=reply)
        _wait(
            lambda: container.sync.item(int(item_id), workspace_id=None).status == "posted",
            "the retry",
        )
        _wait(
            lambda: "Retrying" not in json.dumps(world.slack.messages("C0ERRORS")),
            "the retried message",
        )

        out("5. The same sync booked the month's payouts; finance adds the złoty account")
        out("   Amazon pays into, and @ada clicks Retry on the złoty payout in #errors.")
        org.accounts.append(bank_account("093", "PLN"))
        failed_payout, row_id = _wait(
            lambda: [
                (m, value)
                for m in world.slack.messages("C0ERRORS")
                if (value := _button_value(m, ids.RETRY_SETTLEMENT))
            ],
            "the złoty payout in #errors",
        )[0]
        slack.click(
            ids.RETRY_SETTLEMENT, row_id, user=ADMIN, channel="C0ERRORS", message=failed_payout
        )
        retried = _wait(
            lambda: [
                m
                for m in world.slack.messages("C0ERRORS")
                if m["ts"] == failed_payout["ts"] and "Retried by" in json.dumps(m)
            ],
            "the retried payout",
        )[0]
        out(f"   {retried['text']}")
        for currency in ("GBP", "EUR", "PLN"):
            out(f"   Amazon {currency} clearing in Xero: {world.xero.balance(f'AMZ{currency}')}")
        transfers = world.xero.documents("BankTransfers")
        out(f"   {len(transfers)} payout transfers, each equal to Amazon's deposit.")

        out("")
        out("== The Slack conversation ==")
        for line in world.slack.transcript():
            out(line)
        for key in ("setup", "sync"):
            for response in world.slack.responses(key):
                out(f"(only @ada sees this) {response.get('text', '')}")

        invoices = world.xero.documents("Invoices")
        credit_notes = world.xero.documents("CreditNotes")
        out("")
        out(f"== In Xero: {len(invoices)} invoices, {len(credit_notes)} credit notes, e.g. ==")
        for document in [*invoices[:4], *credit_notes[:2]]:
            number = document.get("InvoiceNumber") or document.get("CreditNoteNumber")
            out(
                f"   {document['Type']:<12} {number:<22} {document['Contact']['Name'][:28]:<28} "
                f"{money(document['Total'], document['CurrencyCode']):>12}  {document['Status']}"
            )
        container.engine.dispose()
    return 0
