"""The seller's own VAT rates, end to end on a real Amazon file: a report without Amazon's VAT
fails its German sales until the integration has a DE domestic rate, and never posts them at
0% or any other invented rate; once the rate is set from the CLI, a retry of the run posts
them VAT-inclusive, each document's total Amazon's gross to the cent."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.container import Container
from sandbox.browser import consent_to_both
from sandbox.world import SandboxWorld
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from tests.conftest import SHARED

BOOKWORK = (
    SHARED / "samples" / "amazon" / "vat-bookwork-2018-01"
    / "2018_01_Amazon_Transaktionsbericht_dummy.txt"
)  # fmt: skip
SPEC = IntegrationSpec("Bookwork DE", Region.EU, ("A1PA6795UKMFR9",), date(2018, 1, 1))
NEEDS_DE = "needs a VAT rate for DE domestic sales"


def cli(container: Container, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv), settings=container.settings)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out + err


def posted(world: SandboxWorld, endpoint: str) -> dict[str, dict[str, Any]]:
    """What Xero holds, by document number."""
    number = "InvoiceNumber" if endpoint == "Invoices" else "CreditNoteNumber"
    return {document[number]: document for document in world.xero.documents(endpoint)}


def totals(world: SandboxWorld, endpoint: str) -> list[Decimal]:
    return sorted(Decimal(str(d["Total"])) for d in posted(world, endpoint).values())


def assert_no_invented_rate(world: SandboxWorld) -> None:
    """Whatever reached Xero is VAT-inclusive under a Xero rate of Germany's 19%: never a 0%
    line, never a rate made up for a sale Amazon stated no VAT for."""
    rates = {t["TaxType"]: t for t in world.xero.org().tax_rates}
    for endpoint in ("Invoices", "CreditNotes"):
        for document in posted(world, endpoint).values():
            assert document["LineAmountTypes"] == "Inclusive", document
            for line in document["LineItems"]:
                assert Decimal(str(rates[line["TaxType"]]["EffectiveRate"])) == 19, line
                gross = Decimal(str(line["LineAmount"]))
                assert Decimal(str(line["TaxAmount"])) == (gross * 19 / 119).quantize(
                    Decimal("0.01")
                ), line


def connected(container: Container, world: SandboxWorld) -> str:
    world.xero.minute_limit = 100_000
    shop = container.integrations.create(SPEC, actor="U0ADMIN")
    consent_to_both(container.connect, shop, actor="U0ADMIN")
    return shop.name


def import_report(
    container: Container, capsys: pytest.CaptureFixture[str], name: str, path: Path
) -> tuple[int, dict[str, Any]]:
    code, out = cli(container, capsys, "import-report", str(path), "--integration", name, "--json")
    return code, json.loads(out)


def test_the_real_report_fails_its_german_sales_for_want_of_a_rate_never_at_zero(
    container: Container, world: SandboxWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    name = connected(container, world)
    code, result = import_report(container, capsys, name, BOOKWORK)
    assert code == 1
    failed = container.sync.failed_items(result["run_id"], workspace_id=None)
    messages = [item.error_message or "" for item in failed]
    # The refund's credit note has a number of its own: it waits for the rate. The three
    # invoices share the masked id "xxx", so they may fail as one number for three orders.
    assert any(NEEDS_DE in message for message in messages), messages
    assert all(NEEDS_DE in m or "is also the number of order" in m for m in messages), messages
    assert posted(world, "Invoices") == {} and posted(world, "CreditNotes") == {}

    assert cli(container, capsys, "integration", "vat-rate", name, "DE", "domestic", "19")[0] == 0
    cli(container, capsys, "retry", "--run", str(result["run_id"]))  # duplicates may still fail
    assert_no_invented_rate(world)
    assert totals(world, "CreditNotes") == [Decimal("124.99")]
    assert set(totals(world, "Invoices")) <= {Decimal("215.00"), Decimal("139.99")}
    left = [
        item.error_message or ""
        for item in container.sync.failed_items(result["run_id"], workspace_id=None)
    ]
    assert not any(NEEDS_DE in message for message in left), left


def with_distinct_ids(tmp_path: Path) -> Path:
    """The real file, each row's masked ACTIVITY_TRANSACTION_ID ("xxx") made its own."""
    lines = BOOKWORK.read_bytes().split(b"\r\n")
    header = lines[0].split(b"\t")
    column = header.index(b"ACTIVITY_TRANSACTION_ID")
    rows = [lines[0]]
    for number, line in enumerate(lines[1:], start=1):
        cells = line.split(b"\t")
        if len(cells) > column:
            assert cells[column] == b"xxx"
            cells[column] = b"SHIP-%d" % number
        rows.append(b"\t".join(cells))
    derived = tmp_path / BOOKWORK.name
    derived.write_bytes(b"\r\n".join(rows))
    return derived


def test_once_the_rate_is_set_a_retry_posts_amazons_gross_to_the_cent(
    container: Container, world: SandboxWorld, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = connected(container, world)
    code, result = import_report(container, capsys, name, with_distinct_ids(tmp_path))
    assert (code, result["failed"]) == (1, 4)
    for item in container.sync.failed_items(result["run_id"], workspace_id=None):
        assert NEEDS_DE in (item.error_message or "")
        assert "for example DE:domestic 19" in (item.error_message or "")
    assert posted(world, "Invoices") == {} and posted(world, "CreditNotes") == {}

    assert cli(container, capsys, "integration", "vat-rate", name, "DE", "domestic", "19")[0] == 0
    code, out = cli(container, capsys, "retry", "--run", str(result["run_id"]))
    assert code == 0, out
    assert container.sync.failed_items(result["run_id"], workspace_id=None) == []
    assert_no_invented_rate(world)
    assert totals(world, "Invoices") == [Decimal("139.99"), Decimal("215.00"), Decimal("215.00")]
    assert totals(world, "CreditNotes") == [Decimal("124.99")]
