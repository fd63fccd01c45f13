"""Every CLI path, in process (fast) and once through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bot.cli import main
from bot.config import Settings
from sandbox.amazon_reports import generate_vat_report
from sandbox.world import SandboxWorld
from services.amazon import LwaClient
from tests.conftest import SHARED, make_settings

ADD = [
    "integration", "add", "--name", "Acme EU", "--region", "eu",
    "--marketplace", "A1PA6795UKMFR9", "--marketplace", "A13V1IB3VIYZZH",
    "--start-date", "2026-01-01", "--selling-partner-id", "A2SELLER",
    "--xero-tenant-id", "tenant-1",
]  # fmt: skip


def add_with(flag: str, value: str) -> list[str]:
    """ADD with the first value of `flag` replaced."""
    argv = list(ADD)
    argv[argv.index(flag) + 1] = value
    return argv


@pytest.fixture
def settings(world: SandboxWorld, database_url: str) -> Settings:
    return make_settings(world, database_url)


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMAZON_REFRESH_TOKEN", "Atzr|operator-token")
    monkeypatch.setenv("XERO_REFRESH_TOKEN", "xero-operator-token")


def run(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv), settings=settings)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_add_list_show_stop_activate(
    settings: Settings, capsys: pytest.CaptureFixture[str], tokens: None
) -> None:
    assert run(settings, capsys, *ADD)[:2] == (0, "Integration Acme EU is active.\n")
    code, out, _ = run(settings, capsys, "integration", "list", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert listed["name"] == "Acme EU"
    assert listed["status"] == "active"
    assert listed["region"] == "eu"
    assert listed["marketplaces"] == ["A1PA6795UKMFR9", "A13V1IB3VIYZZH"]
    assert listed["start_date"] == "2026-01-01"
    assert "operator-token" not in out

    code, out, _ = run(settings, capsys, "integration", "show", "Acme EU")
    assert code == 0
    assert "integration.created" in out and "xero.connected" in out
    assert "operator-token" not in out

    code, out, _ = run(settings, capsys, "integration", "stop", "Acme EU")
    assert (code, "is stopped" in out) == (0, True)
    code, out, _ = run(settings, capsys, "integration", "list", "--json")
    assert json.loads(out)[0]["status"] == "stopped"
    assert run(settings, capsys, "integration", "activate", "Acme EU")[0] == 0


def test_own_vat_rates_are_set_shown_and_removed(
    settings: Settings, capsys: pytest.CaptureFixture[str], tokens: None
) -> None:
    run(settings, capsys, *ADD)
    code, out, _ = run(settings, capsys, "integration", "show", "Acme EU")
    assert "none set (`integration vat-rate Acme EU DE domestic 19` sets one)" in out
    vat_rate = ["integration", "vat-rate", "Acme EU"]
    assert run(settings, capsys, *vat_rate, "de", "domestic", "19%")[:2] == (
        0,
        "Acme EU: DE domestic sales at 19%.\n",
    )
    assert run(settings, capsys, *vat_rate, "FR", "OSS", "5.50")[:2] == (
        0,
        "Acme EU: FR oss sales at 5.5%.\n",
    )
    code, out, _ = run(settings, capsys, "integration", "show", "Acme EU")
    assert code == 0
    assert "Own VAT rates (for sales Amazon calculated no VAT for):\n" in out
    assert "  DE domestic 19%\n  FR oss 5.5%\n" in out
    code, out, _ = run(settings, capsys, "integration", "show", "Acme EU", "--json")
    assert json.loads(out)["vat_rates"] == {"DE:domestic": "19", "FR:oss": "5.5"}

    assert run(settings, capsys, *vat_rate, "FR", "oss", "--remove")[:2] == (
        0,
        "Acme EU: no own VAT rate for FR oss sales any more.\n",
    )
    code, out, _ = run(settings, capsys, "integration", "show", "Acme EU", "--json")
    assert json.loads(out)["vat_rates"] == {"DE:domestic": "19"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["AT", "domestic", "23"], "AT:domestic 23: Austria has no 23% VAT rate today"),
        (["XX", "domestic", "5"], "XX:domestic 5: XX is not an ISO country code"),
        (["DE", "export", "0"], "DE:export 0: the scheme is one of domestic, oss, ioss"),
        (["DE", "domestic"], "give either PERCENT or --remove"),
        (["DE", "domestic", "19", "--remove"], "give either PERCENT or --remove"),
        (["PL", "oss", "--remove"], "Acme EU has no VAT rate set for PL:oss."),
    ],
)
def test_a_bad_vat_rate_is_one_line_and_status_2(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tokens: None,
    argv: list[str],
    message: str,
) -> None:
    run(settings, capsys, *ADD)
    code, _, err = run(settings, capsys, "integration", "vat-rate", "Acme EU", *argv)
    assert code == 2
    assert message in one_line(err)


def test_refresh_prints_a_fresh_consent_link(
    settings: Settings, capsys: pytest.CaptureFixture[str], tokens: None
) -> None:
    run(settings, capsys, *ADD)
    code, out, _ = run(settings, capsys, "integration", "refresh", "Acme EU")
    assert code == 0
    link = out.strip().splitlines()[-1]
    query = parse_qs(urlparse(link).query)
    assert query["application_id"] == [settings.amazon_spapi_application_id]
    assert query["state"][0]
    assert "operator-token" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: command"),
        (["launch"], "invalid choice: 'launch'"),
        (["integration"], "the following arguments are required: action"),
        (["integration", "add", "--name", "X"], "the following arguments are required"),
        ([*ADD[:-2]], "the following arguments are required: --xero-tenant-id"),
        (add_with("--region", "mars"), "argument --region: invalid choice: 'mars'"),
        (
            add_with("--start-date", "2026-13-01"),
            "argument --start-date: '2026-13-01' is not a date like 2026-01-31",
        ),
        (add_with("--start-date", "2999-01-01"), "The start date cannot be in the future."),
        (add_with("--marketplace", "NOPE"), "NOPE is not an Amazon marketplace id."),
        (
            add_with("--marketplace", "ATVPDKIKX0DER"),
            "amazon.com belongs to the NA region, not EU.",
        ),
        (["integration", "show", "Nope"], "There is no integration named 'Nope'"),
        (["integration", "stop", "Nope"], "There is no integration named 'Nope'"),
        (["integration", "activate", "Nope"], "There is no integration named 'Nope'"),
        (["integration", "refresh", "Nope"], "There is no integration named 'Nope'"),
        (
            ["integration", "vat-rate", "Nope", "DE", "domestic", "19"],
            "There is no integration named 'Nope'",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tokens: None,
    argv: list[str],
    message: str,
) -> None:
    code, _, err = run(settings, capsys, *argv)
    assert code == 2
    assert message in one_line(err)


def test_state_errors_are_status_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], tokens: None
) -> None:
    run(settings, capsys, *ADD)
    code, _, err = run(settings, capsys, *ADD)
    assert (code, "An integration named 'Acme EU' already exists." in one_line(err)) == (2, True)
    code, _, err = run(settings, capsys, "integration", "activate", "Acme EU")
    assert (code, one_line(err)) == (2, "amazon-xero-bot: Acme EU is already active.")
    run(settings, capsys, "integration", "stop", "Acme EU")
    code, _, err = run(settings, capsys, "integration", "stop", "Acme EU")
    assert (code, one_line(err)) == (2, "amazon-xero-bot: Acme EU is already stopped.")


def test_add_needs_the_tokens(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMAZON_REFRESH_TOKEN", raising=False)
    monkeypatch.setenv("XERO_REFRESH_TOKEN", "x")
    code, _, err = run(settings, capsys, *ADD)
    assert code == 2
    assert "AMAZON_REFRESH_TOKEN: is required by `integration add`" in one_line(err)
    # The flag works too (documented as visible in process lists).
    assert run(settings, capsys, *ADD, "--amazon-refresh-token", "Atzr|flag")[0] == 0


def test_refresh_without_amazon_app_settings_is_a_configuration_error(
    world: SandboxWorld, database_url: str, capsys: pytest.CaptureFixture[str], tokens: None
) -> None:
    settings = make_settings(world, database_url, AMAZON_SPAPI_APPLICATION_ID="")
    run(settings, capsys, *ADD)
    code, _, err = run(settings, capsys, "integration", "refresh", "Acme EU")
    assert code == 2
    assert "AMAZON_SPAPI_APPLICATION_ID: is required for this command" in one_line(err)


def test_the_installed_entry_point(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    script = Path(sys.executable).with_name("amazon-xero-bot")
    upgrade = subprocess.run(
        [str(script), "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "latest schema" in upgrade.stdout
    # Without TOKEN_ENCRYPTION_KEY a key is generated into the data directory, with a warning.
    listing = subprocess.run(
        [sys.executable, "-m", "bot", "integration", "list", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert (listing.returncode, json.loads(listing.stdout)) == (0, [])


def test_an_unreachable_database_is_one_line_without_the_password(
    world: SandboxWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        world, "postgresql+psycopg://bot:s3cret@127.0.0.1:9/nowhere?connect_timeout=2"
    )
    code, _, err = run(settings, capsys, "integration", "list")
    assert code == 2
    line = one_line(err)
    assert line.startswith(
        "amazon-xero-bot: cannot use the database at postgresql+psycopg://bot:***@"
    )
    assert "s3cret" not in err


def test_run_checks_its_settings_before_serving(
    world: SandboxWorld, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(world, database_url, XERO_CLIENT_SECRET="")
    code, _, err = run(settings, capsys, "run")
    assert (code, one_line(err)) == (
        2,
        "amazon-xero-bot: configuration error: XERO_CLIENT_SECRET: is required for this "
        "command; see .env.example",
    )


def test_a_port_in_use_is_one_line(
    world: SandboxWorld, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = world.amazon_server.port
    settings = make_settings(world, database_url, PORT=str(taken))
    code, _, err = run(settings, capsys, "run")
    assert code == 2
    assert "address already in use" in one_line(err).lower()


@pytest.fixture
def connected(world: SandboxWorld, settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    """An integration added from tokens the sandboxes issued (as an operator would)."""
    from sandbox.xero import DEFAULT_SCOPE

    world.amazon.orders_per_report = 20
    world.amazon.report_processing_polls = 0
    amazon_token = LwaClient(
        token_url=settings.amazon_lwa_url,
        client_id=world.amazon.client_id,
        client_secret=world.amazon.client_secret,
    ).exchange_code(world.amazon.authorization_code(REDIRECT), REDIRECT)
    xero_token = world.xero.authorize_offline(scope=DEFAULT_SCOPE)
    argv = add_with("--xero-tenant-id", world.xero.tenant_id)
    argv[argv.index("--selling-partner-id") + 1] = world.amazon.selling_partner_id
    argv += ["--marketplace", "A1C3SOZRARQ6R3"]  # amazon.pl: PLN, not enabled in the sandbox
    argv += ["--amazon-refresh-token", amazon_token, "--xero-refresh-token", xero_token]
    assert run(settings, capsys, *argv)[0] == 0
    return "Acme EU"


REDIRECT = "https://bot.example/oauth/amazon/callback"


def test_sync_prints_one_json_object_and_exits_by_outcome(
    settings: Settings, capsys: pytest.CaptureFixture[str], connected: str
) -> None:
    code, out, _ = run(settings, capsys, "sync", connected, "--period", "2026-10", "--json")
    result = json.loads(out)
    assert set(result) >= {
        "integration", "period", "invoices_created", "credit_notes_created", "contacts_created",
        "contacts_updated", "skipped", "failed", "already_posted", "xero_api_calls",
        "amazon_api_calls", "totals",
    }  # fmt: skip
    # PLN is not enabled in the sandbox organisation: those documents fail, the rest post.
    assert (code, result["failed"] > 0, result["invoices_created"] > 0) == (1, True, True)
    assert set(result["totals"]["EUR"]) == {"sales_gross", "refunds_gross", "tax"}
    assert all(isinstance(v, str) for v in result["totals"]["EUR"].values())

    code, out, _ = run(settings, capsys, "retry", "--run", str(result["run_id"]))
    assert code == 1 and "failed" in out
    code, out, _ = run(settings, capsys, "sync", connected, "--period", "2026-10")
    assert code == 1
    assert "already in Xero" in out and "retry --run" in out


def test_sync_errors_are_status_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], connected: str
) -> None:
    code, _, err = run(settings, capsys, "sync", connected, "--period", "2026-13")
    assert (code, "'2026-13' is not a period like 2026-10" in one_line(err)) == (2, True)
    code, _, err = run(settings, capsys, "sync", connected, "--period", "2099-01")
    assert (code, "is not over yet" in one_line(err)) == (2, True)
    code, _, err = run(settings, capsys, "sync", connected, "--period", "2025-12")
    assert (code, "is before that" in one_line(err)) == (2, True)
    run(settings, capsys, "integration", "stop", connected)
    code, _, err = run(settings, capsys, "sync", connected, "--period", "2026-10")
    assert (code, "is stopped, so no data is pulled" in one_line(err)) == (2, True)
    code, _, err = run(settings, capsys, "retry", "999")
    assert (code, one_line(err)) == (2, "amazon-xero-bot: There is no ledger item 999.")
    code, _, err = run(settings, capsys, "retry")
    assert code == 2 and "one of the arguments" in one_line(err)


def test_import_report_dry_run_prints_payloads_and_calls_nothing(
    world: SandboxWorld, settings: Settings, capsys: pytest.CaptureFixture[str], connected: str
) -> None:
    sample = SHARED / "samples" / "amazon" / "vat-transactions-row"
    before = len(world.xero.api_calls())
    dry_run = (
        "import-report", str(sample / "sheet_with_strict_ooxml.xlsx"),
        "--integration", connected, "--dry-run", "--json",
    )  # fmt: skip
    # A Spanish sale Amazon calculated no VAT for: it waits for the seller's own rate.
    code, _, err = run(settings, capsys, *dry_run)
    assert (code, "needs a VAT rate for ES domestic sales" in err) == (1, True)
    assert (
        run(settings, capsys, "integration", "vat-rate", connected, "ES", "domestic", "21")[0] == 0
    )
    code, out, _ = run(settings, capsys, *dry_run)
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["_endpoint"] for d in documents] == ["Contacts", "Invoices"]
    invoice = documents[1]
    assert (invoice["Type"], invoice["Reference"]) == ("ACCREC", "408-9590879-6335512")
    # Sent tax-inclusive, so Xero's total is Amazon's gross; the VAT in it at Spain's 21%.
    assert invoice["LineAmountTypes"] == "Inclusive"
    lines = invoice["LineItems"]
    assert sum(Decimal(str(line["LineAmount"])) for line in lines) == Decimal("19.99")
    assert sum(Decimal(str(line["TaxAmount"])) for line in lines) == Decimal("3.47")
    assert len(world.xero.api_calls()) == before

    code, _, err = run(
        settings, capsys, "import-report", "/nonexistent.csv", "--integration", connected
    )
    assert (code, one_line(err)) == (2, "amazon-xero-bot: /nonexistent.csv: no such file.")
    code, out, _ = run(
        settings, capsys, "import-report", str(sample / "sheet_with_strict_ooxml.derived.csv"),
        "--integration", connected, "--json",
    )  # fmt: skip
    assert (code, json.loads(out)["invoices_created"]) == (0, 1)


def test_a_dry_run_says_what_would_fail(
    settings: Settings, capsys: pytest.CaptureFixture[str], connected: str, tmp_path: Path
) -> None:
    sample = SHARED / "samples" / "amazon" / "vat-transactions-row"
    broken = tmp_path / "broken.csv"
    broken.write_text(
        (sample / "sheet_with_strict_ooxml.derived.csv")
        .read_text()
        .replace("2020-03-31", "2020-02-31")
    )
    code, out, err = run(
        settings, capsys, "import-report", str(broken), "--integration", connected, "--dry-run"
    )
    assert code == 1
    assert "would fail: broken.csv, line 2, column TRANSACTION_" in err
    assert "would send nothing; 1 would fail. Nothing was sent." in out


def test_a_dry_run_shows_the_same_documents_when_the_rows_of_one_lie_apart_in_the_file(
    settings: Settings, capsys: pytest.CaptureFixture[str], connected: str, tmp_path: Path
) -> None:
    header, *rows = generate_vat_report(
        period="2026-10", marketplace_ids=["A1PA6795UKMFR9", "A13V1IB3VIYZZH"], seed=4, orders=40
    )
    order = header.split("\t").index("TRANSACTION_EVENT_ID")
    # A row of the same order as the row before it goes to the end of the file: the rows of a
    # document come apart, each keeping its place among its document's rows.
    fields = [row.split("\t") for row in rows]
    follows = [False] + [this[order] == before[order] for before, this in pairwise(fields)]
    stay = [row for row, same in zip(rows, follows, strict=True) if not same]
    moved = [row for row, same in zip(rows, follows, strict=True) if same]
    assert moved
    together, apart = tmp_path / "together.txt", tmp_path / "apart.txt"
    together.write_text("\n".join([header, *rows]) + "\n")
    apart.write_text("\n".join([header, *stay, *moved]) + "\n")

    shown: dict[Path, list[str]] = {}
    for path in (together, apart):
        code, out, _ = run(
            settings, capsys, "import-report", str(path), "--integration", connected,
            "--dry-run", "--json",
        )  # fmt: skip
        assert code == 0
        shown[path] = out.splitlines()

    assert sorted(shown[apart]) == sorted(shown[together])
    sent = [json.loads(line) for line in shown[apart]]
    endpoints = [document["_endpoint"] for document in sent]
    assert endpoints == sorted(endpoints, key=["Contacts", "Invoices", "CreditNotes"].index)
    # Invoices in the order of their first rows in the file (where their numbers are).
    text = apart.read_text()
    firsts = [
        text.index(f"\t{document['InvoiceNumber'].removeprefix('AMZ-')}\t")
        for document in sent
        if document["_endpoint"] == "Invoices"
    ]
    assert firsts == sorted(firsts)


def test_a_name_is_found_in_whichever_workspace_has_it_and_a_shared_one_asks_which(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import date

    from bot.container import Container
    from services.integrations import IntegrationSpec
    from services.marketplaces import Region

    container = Container(settings)
    container.migrate()
    spec = IntegrationSpec("Acme EU", Region.EU, ("A1PA6795UKMFR9",), date(2026, 1, 1))
    tokens = {
        "selling_partner_id": "A2SELLER",
        "amazon_refresh_token": "Atzr|x",
        "xero_tenant_id": "tenant-1",
        "xero_refresh_token": "x",
    }
    connect = container.integrations.create_connected
    connect(spec, actor="U0ADMIN", workspace_id="T0SANDBOX", **tokens)  # set up in Slack
    code, out, _ = run(settings, capsys, "integration", "show", "Acme EU")
    assert code == 0 and "T0SANDBOX" in out

    connect(spec, actor="cli", **tokens)  # the same name, outside Slack
    code, _, err = run(settings, capsys, "integration", "stop", "Acme EU")
    assert code == 2 and "several workspaces (T0SANDBOX, local)" in one_line(err)
    code, _, _ = run(settings, capsys, "integration", "stop", "Acme EU", "--workspace", "T0SANDBOX")
    assert code == 0
    assert container.integrations.get("Acme EU", "T0SANDBOX").status == "stopped"
    assert container.integrations.get("Acme EU").status != "stopped"
    code, out, _ = run(settings, capsys, "integration", "list")
    assert code == 0 and out.count("Acme EU") == 2
    container.engine.dispose()


def test_a_report_this_app_does_not_read_is_named_and_refused_with_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], connected: str, tmp_path: Path
) -> None:
    # Amazon's settlement flat file V1: 36 columns, the first ones shared with V2.
    v1 = [
        "settlement-id",
        "settlement-start-date",
        "settlement-end-date",
        "deposit-date",
        "total-amount",
        "currency",
        "transaction-type",
        "order-id",
        "merchant-order-id",
        "adjustment-id",
        "shipment-id",
        "marketplace-name",
        "shipment-fee-type",
        "shipment-fee-amount",
        "order-fee-type",
        "order-fee-amount",
        "fulfillment-id",
        "posted-date",
        "order-item-code",
        "merchant-order-item-id",
        "merchant-adjustment-item-id",
        "sku",
        "quantity-purchased",
        "price-type",
        "price-amount",
        "item-related-fee-type",
        "item-related-fee-amount",
        "misc-fee-amount",
        "other-fee-amount",
        "other-fee-reason-description",
        "promotion-id",
        "promotion-type",
        "promotion-amount",
        "direct-payment-type",
        "direct-payment-amount",
        "other-amount",
    ]
    assert len(v1) == 36
    report = tmp_path / "settlement-v1.txt"
    report.write_text("\t".join(v1) + "\n" + "\t".join(["12345"] + [""] * 35) + "\n")

    for dry_run in ([], ["--dry-run", "--json"]):
        code, out, err = run(
            settings, capsys, "import-report", str(report), "--integration", connected, *dry_run
        )
        line = one_line(err)
        assert (code, out) == (2, "")
        assert "settlement report flat file V1 (36 columns)" in line and "Flat File V2" in line


def test_the_bookwork_dry_run_shows_german_vat_or_the_rate_it_needs(
    settings: Settings, capsys: pytest.CaptureFixture[str], connected: str
) -> None:
    report = SHARED / "samples" / "amazon" / "vat-bookwork-2018-01"
    path = report / "2018_01_Amazon_Transaktionsbericht_dummy.txt"

    def dry_run() -> tuple[int, str, str]:
        return run(
            settings, capsys, "import-report", str(path), "--integration", connected,
            "--dry-run", "--json",
        )  # fmt: skip

    code, out, err = dry_run()

    assert code == 1  # some documents would fail
    assert "needs a VAT rate for DE domestic sales" in err
    sent = [json.loads(line) for line in out.splitlines()]
    assert not [doc for doc in sent if doc["_endpoint"] in ("Invoices", "CreditNotes")]

    rate = ("integration", "vat-rate", connected, "DE", "domestic", "19")
    assert run(settings, capsys, *rate)[0] == 0
    _, out, _ = dry_run()
    [credit_note] = [json.loads(line) for line in out.splitlines() if "CreditNoteNumber" in line]
    assert credit_note["LineAmountTypes"] == "Inclusive"
    assert credit_note["LineItems"][0]["TaxType"] == "<new tax rate for DE:19:domestic>"
