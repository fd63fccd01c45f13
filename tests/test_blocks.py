"""Block Kit builders: valid for slack_sdk's models, within Slack's limits however large the
month, accepted by the Slack sandbox, and saying the key facts in their fallback text."""

from __future__ import annotations

import copy
import itertools
import json
import string
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from babel import Locale
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from handlers.blocks import (
    IntegrationOverview,
    authorization_warning_message,
    connect_links_modal,
    connected_message,
    error_parent_message,
    error_thread_replies,
    errors_response,
    failed_item_message,
    failure_group_message,
    failure_key,
    group_failures,
    help_message,
    home_view,
    ids,
    integration_list_message,
    logs_message,
    nearest_command,
    notice_message,
    parse_retry_items_value,
    parse_settings_submission,
    parse_setup_submission,
    progress_message,
    refresh_link_message,
    run_failed_message,
    settings_modal,
    setup_modal,
    status_message,
    stop_confirm_modal,
    summary_message,
    unknown_integration_message,
)
from handlers.blocks.common import escape, truncate
from handlers.blocks.runs import MAX_GROUP_REPLIES, MAX_ITEM_REPLIES
from sandbox.server import LoopbackServer
from sandbox.slack import SlackSandbox
from services.errors import ErrorKind
from services.integrations import InvalidInput
from services.marketplaces import Region
from services.models import (
    AuditEntry,
    ContactPolicy,
    Integration,
    IntegrationStatus,
    InvoiceStatus,
    LedgerItem,
    LedgerStatus,
    RunStatus,
    SyncRun,
)
from services.results import CurrencyTotals, RunResult
from tests.conftest import SHARED
from tests.factories import failed_item

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DE, FR = "A1PA6795UKMFR9", "A13V1IB3VIYZZH"
LONG_NAME = ("Ünïcødé 🚀 Störe & <Co> " * 5)[:50]
SAMPLES = SHARED / "samples" / "slack" / "bolt-python"
Json = dict[str, Any]


# --- what valid means ----------------------------------------------------------------------


def _text_problems(obj: Any, limit: int, at: str) -> list[str]:
    text = obj.get("text") if isinstance(obj, dict) else None
    if not isinstance(text, str) or not text:
        return [f"{at}: empty text"]
    return [f"{at}: {len(text)} > {limit}"] if len(text) > limit else []


def _element_problems(element: Json, at: str) -> list[str]:
    problems = []
    if len(element.get("action_id", "")) > 255:
        problems.append(f"{at}: action_id too long")
    if element["type"] == "button":
        problems += _text_problems(element["text"], 75, f"{at}/text")
        if len(element.get("value", "")) > 2000:
            problems.append(f"{at}: value too long")
        if len(element.get("url", "")) > 3000:
            problems.append(f"{at}: url too long")
    options = list(element.get("options", []))
    groups = element.get("option_groups", [])
    if len(options) > 100 or len(groups) > 100:
        problems.append(f"{at}: too many options")
    for group in groups:
        problems += _text_problems(group["label"], 75, f"{at}/group")
        if len(group["options"]) > 100:
            problems.append(f"{at}: too many options in a group")
        options += group["options"]
    for option in options:
        problems += _text_problems(option["text"], 75, f"{at}/option")
        if len(option["value"]) > 150:
            problems.append(f"{at}: option value too long")
    return problems


def limit_problems(blocks: list[Json], max_blocks: int) -> list[str]:
    """Slack's limits as the issue lists them, checked independently of the builders."""
    problems = [f"{len(blocks)} blocks > {max_blocks}"] if len(blocks) > max_blocks else []
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"blocks/{i}"
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids or len(block_id) > 255:
                problems.append(f"{at}: bad block_id {block_id!r}")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" in block:
                problems += _text_problems(block["text"], 3000, at)
            fields = block.get("fields", [])
            if len(fields) > 10:
                problems.append(f"{at}: {len(fields)} fields")
            for field in fields:
                problems += _text_problems(field, 2000, f"{at}/field")
            if "accessory" in block:
                problems += _element_problems(block["accessory"], f"{at}/accessory")
        elif kind == "header":
            problems += _text_problems(block["text"], 150, at)
        elif kind == "context":
            if not 0 < len(block["elements"]) <= 10:
                problems.append(f"{at}: {len(block['elements'])} context elements")
            for element in block["elements"]:
                problems += _text_problems(element, 3000, f"{at}/element")
        elif kind == "actions":
            if not 0 < len(block["elements"]) <= 25:
                problems.append(f"{at}: {len(block['elements'])} actions")
            for element in block["elements"]:
                problems += _element_problems(element, f"{at}/element")
        elif kind == "input":
            problems += _text_problems(block["label"], 2000, f"{at}/label")
            problems += _element_problems(block["element"], f"{at}/element")
    return problems


def check_message(built: Json) -> Json:
    assert set(built) == {"text", "blocks"}
    assert built["text"].strip()
    assert limit_problems(built["blocks"], 50) == []
    for block in built["blocks"]:
        Block.parse(block).to_dict()  # type: ignore[union-attr]  # validates, nested too
    return built


def check_view(view: Json, kind: str) -> Json:
    assert view["type"] == kind
    View(**view).to_dict()
    assert limit_problems(view["blocks"], 100) == []
    for key in ("title", "submit", "close"):
        if key in view:
            assert 0 < len(view[key]["text"]) <= 24, view[key]
    assert len(view.get("private_metadata", "")) <= 3000
    return view


def actions_of(blocks: list[Json]) -> list[Json]:
    found = []
    for block in blocks:
        if block["type"] == "actions":
            found += block["elements"]
        elif block.get("accessory", {}).get("type") == "button":
            found.append(block["accessory"])
    return found


def shown(built: Json) -> str:
    return json.dumps(built["blocks"], ensure_ascii=False)


# --- the Slack sandbox, through slack_sdk's WebClient ----------------------------------------


@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[SlackSandbox, WebClient]]:
    sandbox = SlackSandbox(post_rate=None)
    with LoopbackServer(sandbox.app) as server:
        yield sandbox, WebClient(token=sandbox.bot_token, base_url=f"{server.url}/api/")


_triggers = itertools.count(1)


def post(slack: tuple[SlackSandbox, WebClient], built: Json, thread_ts: str | None = None) -> str:
    answer = slack[1].chat_postMessage(channel="#errors", thread_ts=thread_ts, **built)
    assert answer["ok"]
    return str(answer["ts"])


def open_modal(slack: tuple[SlackSandbox, WebClient], view: Json) -> None:
    assert slack[1].views_open(trigger_id=f"{next(_triggers)}.1.test", view=view)["ok"]


# --- domain values ------------------------------------------------------------------------


def integration(
    id: int = 7, name: str = "Acme EU", status: str = IntegrationStatus.ACTIVE, **changes: Any
) -> Integration:
    values: Json = {
        "id": id,
        "workspace_id": "T0SANDBOX",
        "name": name,
        "region": "eu",
        "marketplaces": [DE, FR],
        "start_date": date(2026, 1, 1),
        "status": status,
        "invoice_status": InvoiceStatus.AUTHORISED,
        "contact_policy": ContactPolicy.BUYERS,
        "sales_account_code": "200",
        "shipping_account_code": "210",
        "tax_overrides": {},
        "xero_tax_types": {},
        "errors_channel": "C0ERRORS",
        "summary_channel": "C0FINANCE",
        "amazon_selling_partner_id": "A2SELLER",
        "amazon_refresh_token_encrypted": b"x",
        "amazon_authorized_at": NOW - timedelta(days=100),
        "xero_tenant_id": "tenant-1",
        "xero_tenant_name": "Acme Ltd",
        "xero_refresh_token_encrypted": b"x",
        "created_by": "U0ADMIN",
    }
    return Integration(**(values | changes))


def last_run(status: str = RunStatus.PARTIAL, **changes: Any) -> SyncRun:
    values: Json = {
        "id": 3,
        "integration_id": 7,
        "period": "2026-10",
        "status": status,
        "started_at": NOW - timedelta(days=19, hours=1),
        "finished_at": NOW - timedelta(days=19),
        "summary": {"result": {"documents": 5019, "failed": 12}},
        "error_message": None,
        "next_attempt_at": None,
    }
    return SyncRun(**(values | changes))


def overview(**changes: Any) -> IntegrationOverview:
    return IntegrationOverview(
        integration(**changes),
        last_run(),
        next_run=datetime(2026, 12, 3, 6, 0, tzinfo=UTC),
        next_period="2026-11",
    )


def result(**changes: Any) -> RunResult:
    values: Json = {
        "run_id": 3,
        "integration": "Acme EU",
        "period": "2026-10",
        "status": RunStatus.PARTIAL,
        "invoices_created": 4800,
        "credit_notes_created": 219,
        "contacts_created": 310,
        "contacts_updated": 12,
        "documents": 5019,
        "failed": 12,
        "skipped": {"FBA_TRANSFER": 40, "FC_TRANSFER": 3},
        "totals": {
            "EUR": CurrencyTotals(Decimal("98765.43"), Decimal("1234.50"), Decimal("15000"))
        },
        "duration_seconds": 754.2,
        "xero_api_calls": 130,
        "amazon_api_calls": 6,
    }
    return RunResult(**(values | changes))


# Babel types its data keys loosely (str | int | None): the codes are the str ones.
CURRENCIES = sorted(c for c in Locale("en").currencies if isinstance(c, str) and len(c) == 3)[:40]
COUNTRIES = sorted(
    c for c in Locale("en").territories if isinstance(c, str) and len(c) == 2 and c.isalpha()
)[:200]


def huge_result() -> RunResult:
    return result(
        totals={
            code: CurrencyTotals(Decimal("123456789.12"), Decimal("98765.43"), Decimal("2345.67"))
            for code in CURRENCIES
        },
        countries={
            code: {
                "documents": 1000 - n,
                "sales_gross": {c: "123456.78" for c in CURRENCIES[:5]},
                "refunds_gross": {c: "1234.56" for c in CURRENCIES[:5]},
                "tax": {c: "2345.67" for c in CURRENCIES[:5]},
                "rates": ["0", "5.5", "7", "19", "20"],
            }
            for n, code in enumerate(COUNTRIES)
        },
        skipped={f"TYPE_{n}": n for n in range(300)},
    )


def many_failures() -> list[LedgerItem]:
    """5,031 failed documents: two big kinds, and 31 unique errors."""
    items = [
        failed_item(n, "Xero: Account code '200' is not a valid code for this document.")
        for n in range(1, 3001)
    ]
    items += [
        failed_item(
            n,
            f"settlement.csv, line {n}: the amounts do not add up",
            error_kind=ErrorKind.BAD_DATA,
            transaction_type="UNREADABLE",
            document_type=None,
            document_number=None,
            source_key=f"ROW:settlement.csv:{n}",
            currency=None,
            gross_cents=0,
        )
        for n in range(3001, 5001)
    ]
    names = ("".join(p) for p in itertools.product(string.ascii_lowercase, repeat=3))
    items += [
        failed_item(n, f"Xero: Contact '{next(names)}' is archived.") for n in range(5001, 5032)
    ]
    return items


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("abcdefghij", 5, "abcd…"),
        ("😀😀😀😀😀", 5, "😀😀…"),  # astral characters count twice, never split
        ("e\u0301e\u0301e\u0301", 4, "e\u0301…"),  # no accent torn from its letter
        ("👨\u200d👩\u200d👧 family", 6, "…"),  # no emoji torn out of a ZWJ sequence
        ("&lt;&lt;&lt;", 7, "&lt;…"),  # no half escape
        ("see <https://example.com/a|the report> now", 20, "see…"),  # no half link
    ],
)
def test_truncate_cuts_safely(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


# --- commands --------------------------------------------------------------------------------


def test_nearest_command_answers_typos() -> None:
    assert nearest_command("stpo") == "stop"
    assert nearest_command("Setings") == "settings"
    assert nearest_command("lsit") == "list"
    assert nearest_command("banana") is None


def test_help_names_every_command_and_the_one_a_typo_meant(
    slack: tuple[SlackSandbox, WebClient],
) -> None:
    built = check_message(help_message(can_manage=False, typed="stpo"))
    assert built["text"] == "/amazon stpo is not a command. Did you mean /amazon stop?"
    for command in ("list", "setup", "settings NAME", "sync NAME [YYYY-MM]", "logs NAME"):
        assert f"/amazon {command}" in shown(built)
    assert "_(admins)_" in shown(built)
    odd = check_message(help_message(can_manage=True, typed="<b>&"))
    assert odd["text"] == "/amazon &lt;b&gt;&amp; is not a command."
    admin = check_message(help_message(can_manage=True))
    assert "_(admins)_" not in shown(admin) and "not a command" not in admin["text"]
    post(slack, built)


def test_an_unknown_name_lists_the_names_that_exist(
    slack: tuple[SlackSandbox, WebClient],
) -> None:
    built = check_message(unknown_integration_message("Acme EY", ["Acme EU", "Acme US"]))
    assert built["text"] == "There is no integration named Acme EY. Did you mean Acme EU?"
    assert "`Acme US`" in shown(built)
    names = [f"Store {n}" for n in range(500)]
    crowded = check_message(unknown_integration_message("x" * 5000, names))
    assert "and 470 more" in shown(crowded)
    assert "no integrations yet" in shown(check_message(unknown_integration_message("x", [])))
    post(slack, crowded)


def test_the_list_pages_through_500_integrations(slack: tuple[SlackSandbox, WebClient]) -> None:
    overviews = [overview(id=n, name=f"Store {n:03d}") for n in range(500)]
    first = check_message(integration_list_message(overviews, can_manage=True, now=NOW))
    assert first["text"].startswith("500 integrations: Store 000")
    assert "Showing 1–20 of 500" in shown(first)
    pages = [b for b in actions_of(first["blocks"]) if b["action_id"] == ids.LIST_PAGE]
    assert [(b["text"]["text"], b["value"]) for b in pages] == [("Next", "1")]
    last = check_message(integration_list_message(overviews, can_manage=True, now=NOW, page=99))
    assert "Showing 481–500 of 500" in shown(last) and "Store 499" in shown(last)
    pages = [b for b in actions_of(last["blocks"]) if b["action_id"] == ids.LIST_PAGE]
    assert [(b["text"]["text"], b["value"]) for b in pages] == [("Previous", "23")]
    post(slack, first)
    post(slack, last)


def test_only_admins_get_buttons_in_the_list() -> None:
    overviews = [overview(id=n) for n in range(3)]
    viewer = check_message(integration_list_message(overviews, can_manage=False, now=NOW))
    assert actions_of(viewer["blocks"]) == []
    admin = check_message(integration_list_message(overviews, can_manage=True, now=NOW))
    assert {b["action_id"] for b in actions_of(admin["blocks"])} == {
        ids.SYNC_NOW,
        ids.OPEN_SETTINGS,
        ids.STOP_INTEGRATION,
    }
    empty = check_message(integration_list_message([], can_manage=True, now=NOW))
    assert [b["action_id"] for b in actions_of(empty["blocks"])] == [ids.OPEN_SETUP]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (IntegrationStatus.ACTIVE, {ids.SYNC_NOW, ids.OPEN_SETTINGS, ids.STOP_INTEGRATION}),
        (IntegrationStatus.STOPPED, {ids.OPEN_SETTINGS, ids.ACTIVATE_INTEGRATION}),
        (IntegrationStatus.PENDING_AUTHORIZATION, {ids.OPEN_SETTINGS, ids.SEND_CONNECT_LINKS}),
        (
            IntegrationStatus.AUTHORIZATION_EXPIRED,
            {ids.OPEN_SETTINGS, ids.REFRESH_INTEGRATION},
        ),
    ],
)
def test_status_offers_what_the_state_allows(
    status: str, expected: set[str], slack: tuple[SlackSandbox, WebClient]
) -> None:
    authorized = NOW - timedelta(days=370 if status == "authorization_expired" else 100)
    built = check_message(
        status_message(
            overview(status=status, name=LONG_NAME, amazon_authorized_at=authorized),
            can_manage=True,
            now=NOW,
        )
    )
    assert {b["action_id"] for b in actions_of(built["blocks"])} == expected
    assert {b["value"] for b in actions_of(built["blocks"])} == {"7"}
    assert built["text"].startswith(escape(LONG_NAME))
    for fact in ("amazon.de, amazon.fr", "<#C0ERRORS>", "Acme Ltd", "12 of 5,031 documents"):
        assert fact in shown(built)
    assert actions_of(status_message(overview(), can_manage=False, now=NOW)["blocks"]) == []
    post(slack, built)


def test_status_warns_in_the_last_week_of_amazons_authorization() -> None:
    near = overview(amazon_authorized_at=NOW - timedelta(days=360))
    built = check_message(status_message(near, can_manage=True, now=NOW))
    assert ":warning: until" in shown(built) and "(in 5 days)" in shown(built)
    assert ids.REFRESH_INTEGRATION in {b["action_id"] for b in actions_of(built["blocks"])}


def test_status_lists_the_own_vat_rates() -> None:
    rates = {"FR:oss": "20", "DE:domestic": "19", "IT:ioss": "5.5"}
    built = check_message(status_message(overview(vat_rates=rates), can_manage=True, now=NOW))
    assert "Own VAT rates*\\nDE domestic 19%, FR oss 20%, IT ioss 5.5%" in shown(built)
    assert "Own VAT rates" not in shown(status_message(overview(), can_manage=True, now=NOW))


def test_logs_show_the_latest_runs_and_changes(slack: tuple[SlackSandbox, WebClient]) -> None:
    runs = [
        last_run(
            id=n,
            period=f"{2000 + n // 12}-{n % 12 + 1:02d}",
            status=RunStatus.FAILED,
            started_at=NOW - timedelta(days=400 - n),
            error_message="Amazon's report failed: " + "é" * 3000,
        )
        for n in range(200)
    ]
    audit = [
        AuditEntry(
            at=NOW - timedelta(hours=n),
            actor="U0ADMIN" if n % 2 else "system",
            action="integration.settings_updated",
            details={"sales_account_code": {"from": "200", "to": "4" * 500}},
        )
        for n in range(300)
    ]
    built = check_message(logs_message("Acme EU", runs=runs, audit=audit))
    assert built["text"] == "Logs of Acme EU: 200 runs, 300 changes"
    assert "and 188 earlier runs" in shown(built) and "and 275 earlier changes" in shown(built)
    assert "<@U0ADMIN> changed settings: sales_account_code: 200 →" in shown(built)
    assert "2016-08" not in shown(built) and "August 2016" in shown(built)  # newest first
    post(slack, built)
    quiet = check_message(logs_message("Acme EU", runs=[], audit=[]))
    assert "No runs yet." in shown(quiet)


def test_notice_escapes_what_it_is_given(slack: tuple[SlackSandbox, WebClient]) -> None:
    built = check_message(notice_message("Stopped <Acme & Co>."))
    post(slack, built)
    assert built["text"] == "Stopped &lt;Acme &amp; Co&gt;."
    assert "Stopped &lt;Acme &amp; Co&gt;." in shown(built)


# --- App Home --------------------------------------------------------------------------------


def test_home_shows_a_card_per_integration_a_page_at_a_time(
    slack: tuple[SlackSandbox, WebClient],
) -> None:
    overviews = [overview(id=n, name=f"{LONG_NAME[:40]} {n}") for n in range(500)]
    view = check_view(home_view(overviews, can_manage=True, now=NOW), "home")
    assert "Showing 1–25 of 500" in json.dumps(view, ensure_ascii=False)
    found = {b["action_id"] for b in actions_of(view["blocks"])}
    assert {ids.OPEN_SETUP, ids.SYNC_NOW, ids.HOME_PAGE} <= found
    viewer = check_view(home_view(overviews, can_manage=False, now=NOW, page=3), "home")
    assert {b["action_id"] for b in actions_of(viewer["blocks"])} == {ids.HOME_PAGE}
    assert "Only workspace admins" in json.dumps(viewer)
    empty = check_view(home_view([], can_manage=False, now=NOW), "home")
    assert "No integrations yet" in json.dumps(empty)
    for published in (view, viewer, empty):
        assert slack[1].views_publish(user_id="U0ADMIN", view=published)["ok"]


def test_a_card_mentions_amazons_authorization_only_when_it_needs_someone() -> None:
    calm = home_view([overview()], can_manage=True, now=NOW)
    assert "Amazon authorization" not in json.dumps(calm)
    lapsing = overview(amazon_authorized_at=NOW - timedelta(days=360))
    view = check_view(home_view([lapsing], can_manage=True, now=NOW), "home")
    assert ":warning: until" in json.dumps(view)
    assert ids.REFRESH_INTEGRATION in {b["action_id"] for b in actions_of(view["blocks"])}


# --- modals ----------------------------------------------------------------------------------


def input_ids(view: Json) -> list[tuple[str, str]]:
    return [
        (b["block_id"], b["element"]["action_id"]) for b in view["blocks"] if b["type"] == "input"
    ]


def test_setup_modal_has_every_field(slack: tuple[SlackSandbox, WebClient]) -> None:
    view = check_view(setup_modal(today=date(2026, 11, 22)), "modal")
    assert view["callback_id"] == ids.SETUP_CALLBACK
    assert input_ids(view) == [tuple(field) for field in ids.SETUP_FIELDS]
    [start] = [b for b in view["blocks"] if b.get("block_id") == ids.START_DATE.block]
    assert start["element"]["initial_date"] == "2026-11-01"
    [name] = [b for b in view["blocks"] if b.get("block_id") == ids.NAME.block]
    assert name["element"]["max_length"] == 50
    open_modal(slack, view)


def tax_types(count: int) -> list[tuple[str, str]]:
    return [("OUTPUT2", "20% (VAT on Income)")] + [
        (f"TAX{n:03d}", f"Amazon {n} {'very long name ' * 10}") for n in range(1, count)
    ]


def test_settings_modal_is_prefilled_with_the_tax_mapping(
    slack: tuple[SlackSandbox, WebClient],
) -> None:
    current = integration(
        name=LONG_NAME,
        invoice_status=InvoiceStatus.DRAFT,
        xero_tax_types={
            "DE:19:domestic": "TAX001",
            "FR:20:oss": "TAX002",
            ":20:domestic": "OUTPUT2",
        },
        tax_overrides={"FR:20:oss": "TAX150", "PL:23:oss": "ARCHIVED1"},
        vat_rates={"FR:oss": "20", "DE:domestic": "19"},
    )
    view = check_view(settings_modal(current, tax_types=tax_types(150)), "modal")
    assert (view["callback_id"], view["private_metadata"]) == (ids.SETTINGS_CALLBACK, "7")
    assert view["submit"]["text"] == "Update settings"
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks[ids.NAME.block]["element"]["initial_value"] == LONG_NAME
    assert blocks[ids.INVOICE_STATUS.block]["element"]["initial_option"]["value"] == "DRAFT"
    assert [o["value"] for o in blocks[ids.MARKETPLACES.block]["element"]["initial_options"]] == [
        DE,
        FR,
    ]
    assert blocks[ids.ERRORS_CHANNEL.block]["element"]["initial_conversation"] == "C0ERRORS"
    de = blocks["tax:DE:19:domestic"]
    assert de["label"]["text"] == "Germany 19% (DE:19:domestic)"
    assert de["element"]["initial_option"]["value"] == ids.AUTOMATIC_TAX_TYPE
    assert de["element"]["initial_option"]["text"]["text"].startswith("Automatic: Amazon 1 ")
    # An override keeps its choice even beyond the first hundred Xero lists, or gone from Xero.
    assert blocks["tax:FR:20:oss"]["element"]["initial_option"]["value"] == "TAX150"
    assert blocks["tax:PL:23:oss"]["element"]["initial_option"]["value"] == "ARCHIVED1"
    assert blocks["tax::20:domestic"]["label"]["text"].startswith("Home country 20%")
    rates = blocks[ids.VAT_RATES.block]
    assert rates["label"]["text"].startswith("Your own VAT rates")
    assert rates["optional"] and rates["element"]["multiline"]
    assert rates["element"]["initial_value"] == "DE domestic 19\nFR oss 20"
    assert "DE domestic 19" in rates["hint"]["text"]
    open_modal(slack, view)


def test_settings_modal_with_more_tax_keys_than_a_view_holds() -> None:
    keys = {f"{c}:{rate}:oss": "OUTPUT2" for c in COUNTRIES[:50] for rate in (0, 5, 19)}
    view = check_view(
        settings_modal(integration(xero_tax_types=keys), tax_types=tax_types(5)), "modal"
    )
    assert "72 more mappings not shown here stay as they are." in json.dumps(view)
    without_xero = check_view(settings_modal(integration(), tax_types=[]), "modal")
    assert not [b for b in without_xero["blocks"] if b.get("block_id", "").startswith("tax")]


def submission(view: Json, values: Json) -> Json:
    """The sample view_submission body from Slack's SDK tests, carrying our view and state."""
    body = json.loads((SAMPLES / "view_submission_body.json").read_text())
    body["view"].update(
        blocks=view["blocks"],
        callback_id=view["callback_id"],
        private_metadata=view.get("private_metadata", ""),
        state={"values": values},
    )
    return body


def option(value: str) -> Json:
    return {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}


SETUP_STATE: Json = {
    "name": {"name_input": {"type": "plain_text_input", "value": "  Acme   EU "}},
    "region": {"region_select": {"type": "static_select", "selected_option": option("eu")}},
    "marketplaces": {
        "marketplaces_select": {
            "type": "multi_static_select",
            "selected_options": [option(DE), option(FR)],
        }
    },
    "start_date": {"start_date_picker": {"type": "datepicker", "selected_date": "2026-01-01"}},
    "invoice_status": {
        "invoice_status_choice": {"type": "radio_buttons", "selected_option": option("DRAFT")}
    },
    "sales_account_code": {
        "sales_account_code_input": {"type": "plain_text_input", "value": " 200 "}
    },
    "shipping_account_code": {
        "shipping_account_code_input": {"type": "plain_text_input", "value": "210"}
    },
    "errors_channel": {
        "errors_channel_select": {
            "type": "conversations_select",
            "selected_conversation": "C0ERRORS",
        }
    },
    "summary_channel": {
        "summary_channel_select": {
            "type": "conversations_select",
            "selected_conversation": "C0FINANCE",
        }
    },
}
SETUP_VALUES = {
    "name": "Acme EU",
    "region": Region.EU,
    "marketplaces": [DE, FR],
    "start_date": date(2026, 1, 1),
    "invoice_status": InvoiceStatus.DRAFT,
    "sales_account_code": "200",
    "shipping_account_code": "210",
    "errors_channel": "C0ERRORS",
    "summary_channel": "C0FINANCE",
}


def test_parse_setup_submission_reads_a_real_body() -> None:
    body = submission(setup_modal(today=NOW.date()), SETUP_STATE)
    assert parse_setup_submission(body["view"]["state"]["values"]) == SETUP_VALUES


def test_parse_setup_submission_without_a_date_or_region() -> None:
    state = copy.deepcopy(SETUP_STATE)
    state["start_date"]["start_date_picker"]["selected_date"] = None
    state["region"]["region_select"]["selected_option"] = None
    with pytest.raises(InvalidInput) as caught:
        parse_setup_submission(state)
    assert set(caught.value.errors) == {"start_date", "region"}


def tax_state(key: str, value: str) -> Json:
    return {key: {ids.TAX_TYPE_ACTION: {"type": "static_select", "selected_option": option(value)}}}


def test_parse_settings_submission_reads_the_tax_mapping() -> None:
    view = settings_modal(
        integration(xero_tax_types={"DE:19:domestic": "TAX001", "FR:20:oss": "TAX002"}),
        tax_types=tax_types(3),
    )
    state = (
        SETUP_STATE
        | tax_state("tax:DE:19:domestic", "OUTPUT2")
        | tax_state("tax:FR:20:oss", ids.AUTOMATIC_TAX_TYPE)
        | {
            "new_tax_key": {
                "new_tax_key_input": {"type": "plain_text_input", "value": "it:22:OSS"}
            },
            "new_tax_type": {
                "new_tax_type_select": {
                    "type": "static_select",
                    "selected_option": option("TAX002"),
                }
            },
        }
    )
    values = submission(view, state)["view"]["state"]["values"]
    parsed = parse_settings_submission(
        values,
        # FR's override is dropped (Automatic); PL's row was not shown, so it stays.
        current_overrides={"FR:20:oss": "TAX001", "PL:23:oss": "TAX009"},
    )
    assert parsed == SETUP_VALUES | {
        "tax_overrides": {
            "DE:19:domestic": "OUTPUT2",
            "IT:22:oss": "TAX002",
            "PL:23:oss": "TAX009",
        },
        "vat_rates": {},
        "payout_accounts": {},
        "clearing_accounts": {},
        "line_accounts": {},
        "contact_policy": ContactPolicy.BUYERS,
    }


def vat_state(text: str | None) -> Json:
    return {
        ids.VAT_RATES.block: {ids.VAT_RATES.action: {"type": "plain_text_input", "value": text}}
    }


def test_parse_settings_submission_reads_own_vat_rates_as_people_write_them() -> None:
    text = "DE domestic 19\n\n  FR:oss 20%\nat domestic: 10 %\nIT ioss 5,5"
    parsed = parse_settings_submission(SETUP_STATE | vat_state(text))
    assert parsed["vat_rates"] == {
        "DE:domestic": "19",
        "FR:oss": "20",
        "AT:domestic": "10",
        "IT:ioss": "5,5",  # the service reads the decimal comma
    }
    # An emptied field removes them all; a modal opened before the field existed keeps them.
    current = {"DE:domestic": "19"}
    emptied = parse_settings_submission(SETUP_STATE | vat_state(None), current_vat_rates=current)
    assert emptied["vat_rates"] == {}
    assert parse_settings_submission(SETUP_STATE, current_vat_rates=current)["vat_rates"] == current


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DE domestic 19\nGermany", "Line 2 (Germany): write country, scheme and percent"),
        ("DE 19", "Line 1 (DE 19): write country, scheme and percent"),
        ("DE domestic 19\nde DOMESTIC 7", "Line 2: de DOMESTIC is set twice."),
    ],
)
def test_an_unreadable_vat_rate_line_is_refused_on_its_field(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_settings_submission(SETUP_STATE | vat_state(text))
    assert list(caught.value.errors) == [ids.VAT_RATES.block]
    assert message in caught.value.errors[ids.VAT_RATES.block]
    assert list(errors_response(caught.value.errors)["errors"]) == [ids.VAT_RATES.block]


@pytest.mark.parametrize(
    ("key", "tax_type", "field"),
    [
        ("DE:19:nonsense", "TAX002", "new_tax_key"),
        ("DE:19:oss", None, "new_tax_type"),
        ("", "TAX002", "new_tax_key"),
    ],
)
def test_a_half_filled_new_tax_row_is_refused_on_its_field(
    key: str, tax_type: str | None, field: str
) -> None:
    state = SETUP_STATE | {
        "new_tax_key": {"new_tax_key_input": {"type": "plain_text_input", "value": key or None}},
        "new_tax_type": {
            "new_tax_type_select": {
                "type": "static_select",
                "selected_option": option(tax_type) if tax_type else None,
            }
        },
    }
    with pytest.raises(InvalidInput) as caught:
        parse_settings_submission(state)
    assert list(caught.value.errors) == [field]


def test_errors_response_puts_each_message_on_its_field() -> None:
    assert errors_response(
        {"name": "Taken.", "start_date": "In the future.", "selling partner id": "Required."}
    ) == {
        "response_action": "errors",
        "errors": {"name": "Taken. Required.", "start_date": "In the future."},
    }


def test_stop_asks_and_says_what_it_means(slack: tuple[SlackSandbox, WebClient]) -> None:
    view = check_view(stop_confirm_modal(overview(name=LONG_NAME)), "modal")
    assert (view["callback_id"], view["private_metadata"]) == (ids.STOP_CALLBACK, "7")
    text = json.dumps(view, ensure_ascii=False)
    assert "The next period (November 2026) is not pulled from Amazon" in text
    open_modal(slack, view)


def test_connect_links_are_link_buttons(slack: tuple[SlackSandbox, WebClient]) -> None:
    amazon = "https://sellercentral.amazon.de/apps/authorize/consent?state=" + "s" * 64
    xero = "https://login.xero.com/identity/connect/authorize?state=" + "t" * 64
    view = check_view(
        connect_links_modal(
            LONG_NAME, amazon_url=amazon, xero_url=xero, expires_at=NOW + timedelta(minutes=10)
        ),
        "modal",
    )
    buttons = actions_of(view["blocks"])
    assert [(b["text"]["text"], b["url"], b["action_id"]) for b in buttons] == [
        ("Connect Amazon Seller Central", amazon, ids.CONNECT_AMAZON),
        ("Connect Xero", xero, ids.CONNECT_XERO),
    ]
    assert "works once" in json.dumps(view)
    open_modal(slack, view)
    only_xero = connect_links_modal("x", amazon_url=None, xero_url=xero, expires_at=NOW)
    assert [b["action_id"] for b in actions_of(only_xero["blocks"])] == [ids.CONNECT_XERO]


# --- runs ------------------------------------------------------------------------------------


def test_error_parent_and_thread_for_5031_failures(slack: tuple[SlackSandbox, WebClient]) -> None:
    failures = many_failures()
    failed = result(failed=len(failures), documents=0)
    parent = check_message(error_parent_message(failed, failures=failures))
    assert parent["text"] == "October 2026 sync for Acme EU: 5,031 of 5,031 documents failed"
    assert [(b["action_id"], b["value"]) for b in actions_of(parent["blocks"])] == [
        (ids.RETRY_ALL_FAILED, "3")
    ]
    assert "Bad data in Amazon's report: 2,000" in shown(parent)

    replies = [check_message(reply) for reply in error_thread_replies(3, failures)]
    assert len(replies) == MAX_GROUP_REPLIES + 1
    assert replies[0]["text"].startswith("3,000 documents failed: Refused by Xero: Xero: Account")
    [retry] = actions_of(replies[0]["blocks"])
    assert retry["text"]["text"] == "Retry these 3,000"
    run_id, key = parse_retry_items_value(retry["value"])
    assert run_id == 3 and sum(failure_key(i) == key for i in failures) == 3000
    # Rows of a bad report differ by line number only: one group, and no Retry for them.
    assert replies[1]["text"].startswith("2,000 documents failed: Bad data")
    assert actions_of(replies[1]["blocks"]) == []
    assert "`302-0000000-0003001`, " in shown(replies[1]) and "and 1,995 more" in shown(replies[1])
    assert replies[-1]["text"] == "13 more documents failed with other errors"

    ts = post(slack, parent)
    for reply in replies:
        post(slack, reply, thread_ts=ts)
    assert slack[0].messages("#errors")[-1]["thread_ts"] == ts


def test_thousands_of_distinct_errors_stay_within_one_message() -> None:
    names = ("".join(p) for p in itertools.product(string.ascii_lowercase, repeat=3))
    failures = [
        failed_item(n, f"Xero: Contact '{next(names)}' is archived. " + "ü" * 3000)
        for n in range(5031)
    ]
    replies = error_thread_replies(3, failures)
    assert len(replies) == MAX_GROUP_REPLIES + 1
    other = check_message(replies[-1])
    assert other["text"] == "5,011 more documents failed with other errors"
    assert "more errors" in shown(other)


def test_a_few_failures_get_a_reply_each_with_the_log(
    slack: tuple[SlackSandbox, WebClient],
) -> None:
    failures = [
        failed_item(n, f"Xero: The TaxType code 'TAX00{n}' does not exist.") for n in range(1, 13)
    ]
    parent = check_message(error_parent_message(result(), failures=failures))
    assert parent["text"] == "October 2026 sync for Acme EU: 12 of 5,031 documents failed"
    replies = [check_message(r) for r in error_thread_replies(3, failures)]
    assert len(replies) == 12 <= MAX_ITEM_REPLIES
    first = replies[0]
    assert first["text"] == (
        "Invoice INV-DE-1 (order 302-0000000-0000001) failed: "
        "Xero: The TaxType code 'TAX001' does not exist."
    )
    for fact in ("`302-0000000-0000001`", "€119.00", "Tax mapping", "Refused by Xero"):
        assert fact in shown(first)
    assert [(b["action_id"], b["value"]) for b in actions_of(first["blocks"])] == [
        (ids.RETRY_ITEM, "1")
    ]
    ts = post(slack, parent)
    post(slack, first, thread_ts=ts)


def test_a_retry_marks_the_message_then_shows_the_outcome(
    slack: tuple[SlackSandbox, WebClient],
) -> None:
    item = failed_item(1, "Xero: Account code '999' is not valid. " + "😀" * 2000)
    ts = post(slack, check_message(failed_item_message(item)))
    retrying = check_message(failed_item_message(item, retrying_by="U0ADMIN"))
    assert "Retrying (by <@U0ADMIN>)" in shown(retrying)
    assert actions_of(retrying["blocks"]) == []
    assert slack[1].chat_update(channel="C0ERRORS", ts=ts, **retrying)["ok"]

    item.status, item.error_message = LedgerStatus.POSTED, None
    posted = check_message(failed_item_message(item, retried_by="U0ADMIN"))
    assert posted["text"] == "Invoice INV-DE-1 posted to Xero as INV-DE-1"
    assert "Retried by <@U0ADMIN>" in shown(posted) and actions_of(posted["blocks"]) == []
    assert slack[1].chat_update(channel="C0ERRORS", ts=ts, **posted)["ok"]

    again = failed_item(2, "Xero: Contact is archived.")
    failed = check_message(failed_item_message(again, retried_by="U0ADMIN"))
    assert "it failed again" in shown(failed)
    assert [b["action_id"] for b in actions_of(failed["blocks"])] == [ids.RETRY_ITEM]


def test_a_group_retry_counts_what_was_posted(slack: tuple[SlackSandbox, WebClient]) -> None:
    items = [failed_item(n, f"Xero: Account code '{n}' is not valid.") for n in range(10)]
    assert len(group_failures(items)) == 1  # digits do not split a group
    for item in items[:6]:
        item.status = LedgerStatus.POSTED
    for item in items[6:8]:
        item.error_message = "Xero: Contact is archived."
    built = check_message(failure_group_message(3, items, retried_by="U0ADMIN"))
    assert "Retried by <@U0ADMIN>: 6 posted, 4 still failing." in shown(built)
    assert [b["text"]["text"] for b in actions_of(built["blocks"])] == [
        "Retry these 2",
        "Retry these 2",
    ]
    post(slack, built)
    marked = check_message(failure_group_message(3, items, retrying_by="U0ADMIN"))
    assert actions_of(marked["blocks"]) == [] and "Retrying (by <@U0ADMIN>)" in shown(marked)
    for item in items:
        item.status = LedgerStatus.POSTED
    done = check_message(failure_group_message(3, items, retried_by="U0ADMIN"))
    assert done["text"] == "All 10 documents posted to Xero"


def test_retry_all_failed_updates_the_parent() -> None:
    retrying = check_message(error_parent_message(result(), retrying_by="U0ADMIN"))
    assert actions_of(retrying["blocks"]) == [] and "Retrying (by <@U0ADMIN>)" in shown(retrying)
    done = check_message(
        error_parent_message(result(failed=0, documents=5031), retried_by="U0ADMIN")
    )
    assert done["text"] == "October 2026 sync for Acme EU: all 5,031 documents are in Xero"
    bad_only = [failed_item(1, "line 1: bad", error_kind=ErrorKind.BAD_DATA)]
    assert actions_of(error_parent_message(result(), failures=bad_only)["blocks"]) == []


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ErrorKind.AUTH, [(ids.RETRY_RUN, "3"), (ids.REFRESH_INTEGRATION, "7")]),
        (ErrorKind.UPSTREAM_UNAVAILABLE, [(ids.RETRY_RUN, "3")]),
    ],
)
def test_a_run_that_cannot_proceed(
    kind: ErrorKind, expected: list[tuple[str, str]], slack: tuple[SlackSandbox, WebClient]
) -> None:
    failed = result(
        status=RunStatus.FAILED,
        error_kind=kind,
        error_message="Amazon's authorization for this seller has expired.",
    )
    built = check_message(run_failed_message(failed, integration_id=7))
    assert built["text"] == (
        "October 2026 sync for Acme EU could not proceed: "
        "Amazon's authorization for this seller has expired."
    )
    assert [(b["action_id"], b["value"]) for b in actions_of(built["blocks"])] == expected
    post(slack, built)
    marked = check_message(run_failed_message(failed, integration_id=7, retrying_by="U0ADMIN"))
    assert actions_of(marked["blocks"]) == []
    through = check_message(run_failed_message(result(), integration_id=7, retried_by="U0ADMIN"))
    assert (
        through["text"]
        == "October 2026 sync for Acme EU went through: 5,019 documents in Xero, 12 failed"
    )


def test_progress_is_one_message_updated_in_place(slack: tuple[SlackSandbox, WebClient]) -> None:
    reading = check_message(progress_message("Acme EU", "2026-10", "reading", 12345, 0))
    assert reading["text"] == "Reading Amazon's report for October 2026 (Acme EU): 12,345 rows read"
    ts = post(slack, reading)
    posting = check_message(
        progress_message("Acme EU", "2026-10", "posting", 1200, 5031, started_at=NOW)
    )
    assert posting["text"] == (
        "Posting October 2026 for Acme EU to Xero: 1,200 of 5,031 documents (23%)"
    )
    assert "`████░░░░░░░░░░░░░░░░`" in shown(posting)
    assert slack[1].chat_update(channel="C0ERRORS", ts=ts, **posting)["ok"]
    other = check_message(progress_message("Acme EU", "import:ab12", "allocating", 3, 9))
    assert other["text"] == "Allocating Imported report for Acme EU: 3 of 9"


def test_summary_of_a_huge_month(slack: tuple[SlackSandbox, WebClient]) -> None:
    link = "https://sandbox.slack.com/archives/C0ERRORS/p1700000000000100"
    built = check_message(summary_message(huge_result(), errors_link=link))
    assert built["text"].startswith(
        "October 2026 summary for Acme EU: 4,800 invoices, 219 credit notes, 12 failed; sales "
    )
    assert built["text"].endswith("and 37 more currencies")
    text = shown(built)
    assert "*Totals per currency*" in text
    assert all(f"*{code}*  sales" in text for code in CURRENCIES)
    assert "and 190 more countries" in text
    assert f"<{link}|12: see the errors>" in text
    buttons = actions_of(built["blocks"])
    assert [(b["action_id"], b.get("url")) for b in buttons] == [
        (ids.OPEN_XERO, "https://go.xero.com/"),
        (ids.OPEN_ERRORS, link),
    ]
    post(slack, built)


def test_summary_facts_and_money_per_currency() -> None:
    built = check_message(
        summary_message(
            result(
                failed=0,
                countries={
                    "DE": {
                        "documents": 4000,
                        "sales_gross": {"EUR": "80000.00"},
                        "refunds_gross": {},
                        "tax": {"EUR": "12000.00"},
                        "rates": ["7", "19"],
                    }
                },
            ),
        )
    )
    text = shown(built)
    for fact in (
        "*Invoices*\\n4,800",
        "*Credit notes*\\n219",
        "*Contacts*\\n310 created, 12 updated",
        "*Skipped*\\n43 (FBA_TRANSFER 40, FC_TRANSFER 3)",
        "*Failed*\\n0",
        "*Duration*\\n12 min 34 s",
        "sales €98,765.43 · refunds €1,234.50 · VAT €15,000.00",
        "*DE* Germany · 7%, 19% · 4,000 documents · sales €80,000.00 · VAT €12,000.00",
    ):
        assert fact in text
    [xero] = actions_of(built["blocks"])
    assert xero["url"] == "https://go.xero.com/"
    assert "Not in Xero" not in text

    partial = shown(
        check_message(
            summary_message(
                result(
                    failed=2,
                    left_out={"EUR": CurrencyTotals(Decimal("39.98"), Decimal("19.99"))},
                )
            )
        )
    )
    assert "Not in Xero (failed documents): EUR sales €39.98 · refunds €19.99" in partial


# --- connecting -----------------------------------------------------------------------------


def test_connected_refresh_and_expiry_warning(slack: tuple[SlackSandbox, WebClient]) -> None:
    connected = check_message(
        connected_message("Acme EU", first_sync=date(2026, 12, 3), period="2026-11")
    )
    assert connected["text"] == (
        "Integration Acme EU is connected; first sync on 3 Dec 2026 for November 2026"
    )
    post(slack, connected)
    url = "https://sellercentral.amazon.de/apps/authorize/consent?state=abc"
    refresh = check_message(
        refresh_link_message("Acme EU", amazon_url=url, expires_at=NOW + timedelta(minutes=10))
    )
    assert [(b["action_id"], b["url"]) for b in actions_of(refresh["blocks"])] == [
        (ids.CONNECT_AMAZON, url)
    ]
    post(slack, refresh)
    lapsing = integration(amazon_authorized_at=NOW - timedelta(days=358))
    warning = check_message(authorization_warning_message(lapsing, now=NOW))
    assert warning["text"] == (
        "Amazon authorization for Acme EU lapses on 29 Nov 2026 (in 7 days): "
        "refresh it or syncs stop"
    )
    assert [(b["action_id"], b["value"]) for b in actions_of(warning["blocks"])] == [
        (ids.REFRESH_INTEGRATION, "7")
    ]
    post(slack, warning)
    with pytest.raises(ValueError, match="no Amazon authorization"):
        authorization_warning_message(integration(amazon_authorized_at=None), now=NOW)
