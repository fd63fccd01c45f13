"""The month's three-way check (issue 11): Amazon's report, the settlements deposited in the
month and what the ledger says is in Xero, per currency, every difference explained or flagged;
`reconcile NAME --period` exits 0 or 1 by it. Through the sandbox Xero, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.container import Container
from sandbox.world import SandboxWorld
from services.models import Integration
from tests.test_customer_ledger import import_rows
from tests.test_reports import SALE
from tests.test_settlement_posting import (
    LATER_SHIPMENT,
    SECOND,
    SETTLEMENT_ROWS,
    seller_bank,
    settlement_file,
    shipment_row,
)
from tests.test_settlements import HEADER, line, summary

# The settlement file's deposit date is 17 June 2026.
JUNE, MAY = "2026-06", "2026-05"


def dated(row: dict[str, str], day: str) -> dict[str, str]:
    """The VAT report row as of `day` (DD-MM-YYYY)."""
    columns = ("TAX_CALCULATION_DATE", "TRANSACTION_DEPART_DATE", "TRANSACTION_COMPLETE_DATE")
    return {**row, **dict.fromkeys(columns, day)}


def reconcile_cli(
    container: Container, capsys: pytest.CaptureFixture[str], period: str, *flags: str
) -> tuple[int, str]:
    code = main(["reconcile", "Acme EU", "--period", period, *flags], settings=container.settings)
    out, _ = capsys.readouterr()
    return code, out


def checked(
    container: Container, capsys: pytest.CaptureFixture[str], period: str
) -> tuple[int, dict[str, Any]]:
    code, out = reconcile_cli(container, capsys, period, "--json")
    return code, json.loads(out)


def differences(result: dict[str, Any]) -> set[tuple[str, str, str, bool]]:
    return {
        (d["kind"], d.get("amazon_order_id") or d["settlement_id"], d["amount"], d["explained"])
        for d in result["differences"]
    }


ORDER_1, ORDER_2 = SALE["TRANSACTION_EVENT_ID"], SECOND["TRANSACTION_EVENT_ID"]
ORDER_3 = "302-3333333-3333333"


def test_a_month_paid_and_transferred_reconciles_with_the_clearing_account_at_zero(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seller_bank(world)
    import_rows(
        container,
        shop,
        tmp_path / "vat.txt",
        dated(SALE, "10-06-2026"),
        dated(SECOND, "12-06-2026"),
    )
    container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))

    code, result = checked(container, capsys, JUNE)

    assert code == 0
    assert result == {
        "integration": "Acme EU",
        "period": JUNE,
        "reconciled": True,
        "currencies": {
            "EUR": {
                "report_sales": "39.98", "report_refunds": "0.00",
                "settled_sales": "39.98", "settled_refunds": "0.00",
                "fees": "-12.20", "reserve": "-5.00", "payouts": "22.78",
                "xero_invoiced": "39.98", "xero_paid": "39.98", "clearing_balance": "0.00",
            }
        },
        "differences": [],
    }  # fmt: skip
    code, out = reconcile_cli(container, capsys, JUNE)
    assert code == 0
    assert out.splitlines() == [
        "Acme EU, June 2026",
        "EUR",
        "  Amazon's report  sales 39.98, refunds 0.00",
        "  Settlements      sales 39.98, refunds 0.00, fees -12.20, reserve -5.00, payouts 22.78",
        "  Xero             invoiced 39.98, paid 39.98, clearing balance 0.00",
        "0 differences, 0 unexplained: everything reconciles.",
    ]
    # The month before holds nothing of it.
    assert checked(container, capsys, MAY) == (
        0,
        {"integration": "Acme EU", "period": MAY, "reconciled": True, "currencies": {},
         "differences": []},
    )  # fmt: skip


def test_orders_settled_before_their_invoices_and_invoices_not_settled_are_explained(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seller_bank(world)
    container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))

    code, june = checked(container, capsys, JUNE)

    # The fees and the payout are in Xero, the payments wait for the invoices.
    assert code == 0 and june["reconciled"] is True
    assert june["currencies"]["EUR"]["clearing_balance"] == "-39.98"
    assert june["currencies"]["EUR"]["xero_paid"] == "0.00"
    assert differences(june) == {
        ("not_invoiced", ORDER_1, "19.99", True),
        ("not_invoiced", ORDER_2, "19.99", True),
    }
    assert all(d["settlement_id"] == "1234567890" for d in june["differences"])

    # May's report brings their invoices (paid now), and a June order Amazon has not settled.
    third = dated({**SECOND, "TRANSACTION_EVENT_ID": "302-1111111-2222222",
                   "ACTIVITY_TRANSACTION_ID": "Th1rd", "VAT_INV_NUMBER": "DE-AEU-2026-3"},
                  "30-06-2026")  # fmt: skip
    import_rows(
        container, shop, tmp_path / "vat.txt",
        dated(SALE, "28-05-2026"), dated(SECOND, "29-05-2026"), third,
    )  # fmt: skip

    code, june = checked(container, capsys, JUNE)
    assert code == 0 and june["reconciled"] is True
    assert june["currencies"]["EUR"]["clearing_balance"] == "0.00"
    assert june["currencies"]["EUR"]["report_sales"] == "19.99"
    assert differences(june) == {
        ("invoiced_in_other_month", ORDER_1, "19.99", True),
        ("invoiced_in_other_month", ORDER_2, "19.99", True),
        ("not_settled", "302-1111111-2222222", "19.99", True),
    }
    code, may = checked(container, capsys, MAY)
    assert code == 0
    assert may["currencies"]["EUR"]["report_sales"] == "39.98"
    assert may["currencies"]["EUR"]["xero_invoiced"] == "39.98"
    assert may["currencies"]["EUR"]["payouts"] == "0.00"
    assert differences(may) == {
        ("settled_in_other_month", ORDER_1, "19.99", True),
        ("settled_in_other_month", ORDER_2, "19.99", True),
    }


def test_a_failed_payment_is_an_unexplained_difference_and_exits_1(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seller_bank(world)
    # A third order at a rate Germany never had: its invoice fails, Amazon's figure stays.
    wrong_rate = {
        **SALE,
        "TRANSACTION_EVENT_ID": ORDER_3,
        "ACTIVITY_TRANSACTION_ID": "Wr0ng",
        "VAT_INV_NUMBER": "DE-AEU-2026-4",
        "PRICE_OF_ITEMS_VAT_RATE_PERCENT": "0.21",
        "PRICE_OF_ITEMS_AMT_VAT_EXCL": "16.52",
        "PRICE_OF_ITEMS_VAT_AMT": "3.47",
    }
    import_rows(
        container, shop, tmp_path / "vat.txt",
        dated(SALE, "10-06-2026"), dated(SECOND, "12-06-2026"), dated(wrong_rate, "14-06-2026"),
    )  # fmt: skip
    # Amazon settled 25.00 for the second order, whose invoice is 19.99: Xero refuses to
    # overpay it.
    rows = [row.replace("19,99", "25,00") if ORDER_2 in row else row for row in SETTLEMENT_ROWS]
    path = tmp_path / "settlement.txt"
    path.write_text("\n".join([HEADER, summary("27,79"), *rows]) + "\n")
    container.sync.import_report(shop, path)

    code, result = checked(container, capsys, JUNE)

    assert code == 1 and result["reconciled"] is False
    eur = result["currencies"]["EUR"]
    assert (eur["report_sales"], eur["xero_invoiced"]) == ("59.97", "39.98")
    assert (eur["settled_sales"], eur["xero_paid"]) == ("44.99", "19.99")
    # The failed payment is what the clearing account still holds.
    assert eur["clearing_balance"] == "-25.00"
    assert differences(result) == {
        ("payment_failed", ORDER_2, "25.00", False),
        ("amount_mismatch", ORDER_2, "5.01", False),
        ("document_failed", ORDER_3, "19.99", False),
        ("not_settled", ORDER_3, "19.99", True),
    }
    explanations = {d["kind"]: d["explanation"] for d in result["differences"]}
    assert "exceeds the amount outstanding" in explanations["payment_failed"]
    assert "21%" in explanations["document_failed"]
    code, out = reconcile_cli(container, capsys, JUNE)
    assert code == 1
    assert "4 differences, 3 unexplained: the month does not reconcile." in out
    assert f"  ! payment_failed  order {ORDER_2} settlement 1234567890  25.00 EUR: " in out


def test_a_name_or_period_it_cannot_use_is_status_2(
    container: Container, shop: Integration, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reconcile", "Nobody", "--period", JUNE]
    assert main(argv, settings=container.settings) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["reconcile", "Acme EU", "--period", "2026-13"], settings=container.settings)
    assert exit_.value.code == 2


def test_tax_amazon_withheld_is_explained_not_suspense(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seller_bank(world)
    import_rows(container, shop, tmp_path / "vat.txt", dated(SALE, "10-06-2026"))
    withheld = line(
        transaction_type="Order",
        order_id=ORDER_1,
        amount_type="ItemWithheldTax",
        amount_description="MarketplaceFacilitatorVAT-Principal",
        amount="-3,19",
    )
    sold = line(
        transaction_type="Order",
        order_id=ORDER_1,
        amount_type="ItemPrice",
        amount_description="Principal",
        amount="19,99",
    )
    path = tmp_path / "settlement.txt"
    path.write_text("\n".join([HEADER, summary("16,80"), sold, withheld]) + "\n")
    container.sync.import_report(shop, path)

    code, result = checked(container, capsys, JUNE)

    assert code == 0, result
    assert differences(result) == {("withheld_tax", "1234567890", "-3.19", True)}
    assert result["currencies"]["EUR"]["clearing_balance"] == "0.00"


def test_an_order_shipped_across_two_months_and_settled_whole_is_explained(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seller_bank(world)
    # One shipment in May's report, the other in June's; Amazon settles the order at once.
    may, june = dated(SALE, "30-05-2026"), dated(LATER_SHIPMENT, "02-06-2026")
    import_rows(container, shop, tmp_path / "vat.txt", may, june)
    rows = [shipment_row(shipment) for shipment in ("S1", "S2")]
    path = tmp_path / "settlement.txt"
    path.write_text("\n".join([HEADER, summary("39,98"), *rows]) + "\n")
    container.sync.import_report(shop, path)

    code, june = checked(container, capsys, JUNE)

    assert code == 0 and june["reconciled"] is True, june["differences"]
    assert june["currencies"]["EUR"]["clearing_balance"] == "0.00"
    assert differences(june) == {("invoiced_in_other_month", ORDER_1, "19.99", True)}
