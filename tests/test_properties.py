"""A month's invariants, as properties (issue 8): over VAT reports that tests/strategies.py draws
independently of the sandbox's generator, imported through the real engine into the Xero
sandbox, on both databases.

For every generated month:
1. each Xero invoice and credit note totals Amazon's VAT-inclusive gross of its rows, and its
   tax is the seller's VAT in them (none of the VAT Amazon collects as marketplace);
2. one buyer, one contact: a VAT number, or a consumer's folded name + postcode + country, is
   one ContactID, across documents and months; distinct buyers never share one;
3. a credit note is on its order's invoice contact when the sale was imported (this month or
   the month before);
4. no partial document: an order with an unreadable row is not in Xero at all, and the ledger
   names the file and line;
5. the run's totals per currency plus what it left out are the report's own figures, and
   `failed` counts exactly what was not posted;
6. importing the same file again posts nothing and leaves Xero as it was;
and a credit note is allocated when an invoice of its order can take it.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from bot.container import Container
from sandbox.world import SandboxWorld
from services.models import Integration
from services.results import CurrencyTotals, RunResult
from tests.strategies import (
    ZERO,
    Buyer,
    Item,
    Month,
    Order,
    Refund,
    Rendered,
    ReportFile,
    Shipment,
    months,
    render,
)

# Each example's order ids and document numbers carry a tag of their own: the examples of one
# test are months imported one after another into one organisation.
TAGS = itertools.count(1)
NUMBER_FIELD = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}


@pytest.fixture
def contacts_seen() -> dict[str, str]:
    """Buyer -> ContactID over all the examples of one test run."""
    return {}


@settings(
    max_examples=25,
    deadline=None,
    database=None,  # failures worth keeping become @example; nothing is written to the tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(month=months())
def test_a_generated_month_posts_amazons_figures_once_on_one_contact_per_buyer(
    container: Container,
    world: SandboxWorld,
    shop: Integration,
    tmp_path: Path,
    contacts_seen: dict[str, str],
    month: Month,
) -> None:
    world.xero.day_limit = 1_000_000  # the examples share one organisation's daily allowance
    report = render(month, next(TAGS))
    for file, result in import_files(container, shop, tmp_path, report):
        assert_totals_are_the_reports(report, file, result)
        assert_unreadable_rows_are_failed_items(container, report, file, result)

    in_xero = xero_documents(world, report)
    assert_documents_are_amazons(report, in_xero)
    assert_one_contact_per_buyer(report, in_xero, contacts_seen)

    before = xero_state(world)
    again = container.sync.import_report(shop, tmp_path / report.month.name)  # once more
    assert (again.invoices_created, again.credit_notes_created, again.contacts_created) == (0, 0, 0)
    assert again.allocations_made == 0
    assert xero_state(world) == before


# A refund of the first of two shipments (Amazon's VAT invoice for each): only the first
# invoice has enough left to pay for its credit note.
TWO_SHIPMENTS_ONE_REFUND = Month(
    first=date(2026, 3, 1),
    orders=(
        Order(
            "amazon.co.uk", "domestic", "GB", "GB", "GB", "GB", Buyer("Anna Schmidt", "GB"),
            sale="here",
            shipments=(
                Shipment(1, False, (Item(1, Decimal(20), Decimal("10.00"), ZERO, ZERO),), 0),
                Shipment(2, False, (Item(1, Decimal(20), Decimal("1.00"), ZERO, ZERO),), 0),
            ),
            refunds=(Refund(5, ((0, 0, Decimal("10.00"), False),), negative_qty=False),),
        ),
    ),
    transfers=0,
    returns=(),
    unreadable=None,
    short_amounts=False,
    amazon_invoices=True,
)  # fmt: skip


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(month=TWO_SHIPMENTS_ONE_REFUND)
@given(month=months())
def test_a_credit_note_is_allocated_to_an_invoice_of_its_order_that_can_take_it(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path, month: Month
) -> None:
    """Xero allocates a credit note only to an invoice of its contact with as much left to pay;
    an order shipped in parts has an invoice per shipment, and one of them may be able to."""
    world.xero.day_limit = 1_000_000
    report = render(month, next(TAGS))
    import_files(container, shop, tmp_path, report)
    in_xero = xero_documents(world, report)
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (_endpoint, _number), document in in_xero.items():
        by_order[document["Reference"]].append(document)
    for order_id, documents in by_order.items():
        credit_notes = [d for d in documents if d["Type"] == "ACCRECCREDIT"]
        if len(credit_notes) != 1:
            continue  # several refunds compete for what the invoices have left
        [credit_note] = credit_notes
        contact = credit_note["Contact"]["ContactID"]
        room = max(
            (Decimal(str(d["Total"])) for d in documents
             if d["Type"] == "ACCREC" and d["Contact"]["ContactID"] == contact),
            default=Decimal(-1),
        )  # fmt: skip
        if room >= Decimal(str(credit_note["Total"])):
            assert Decimal(str(credit_note["RemainingCredit"])) == 0, (order_id, documents)


def import_files(
    container: Container, shop: Integration, tmp_path: Path, report: Rendered
) -> list[tuple[ReportFile, RunResult]]:
    """Last month's file (when some of this month's refunds are of its sales), then the month's."""
    results = []
    for file in report.files():
        path = tmp_path / file.name
        path.write_text(file.text(), encoding="utf-8")
        results.append((file, container.sync.import_report(shop, path)))
    return results


def assert_totals_are_the_reports(report: Rendered, file: ReportFile, result: RunResult) -> None:
    """Per currency, what is in Xero plus what was left out is the report's own figure: sales
    and refunds VAT-inclusive (refunds positive), and the seller's VAT."""
    reported: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
    left_out: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
    for row in file.rows:
        kind = row["TRANSACTION_TYPE"]
        if kind not in ("SALE", "REFUND") or row["TRANSACTION_COMPLETE_DATE"].startswith("31-02"):
            continue
        currency = row["TRANSACTION_CURRENCY_CODE"]
        amount = Decimal(row["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"])
        seller = row["TAX_COLLECTION_RESPONSIBILITY"] == "SELLER"
        tax = Decimal(row["TOTAL_ACTIVITY_VALUE_VAT_AMT"]) if seller else Decimal(0)
        sides = [reported[currency]]
        if file is report.month and row["TRANSACTION_EVENT_ID"] == report.failing_order:
            sides.append(left_out[currency])
        for side in sides:
            if kind == "SALE":
                side.sales_gross += amount
            else:
                side.refunds_gross -= amount
            side.tax += tax
    summary = result.to_json()
    for currency, figures in reported.items():
        posted = result.totals.get(currency, CurrencyTotals())
        out = result.left_out.get(currency, CurrencyTotals())
        assert out == left_out.get(currency, CurrencyTotals()), (currency, summary)
        assert (
            CurrencyTotals(
                posted.sales_gross + out.sales_gross,
                posted.refunds_gross + out.refunds_gross,
                posted.tax + out.tax,
            )
            == figures
        ), (currency, summary)
    assert set(result.totals) <= set(reported), summary
    assert set(result.left_out) <= set(reported), summary

    not_posted = [e for e in report.documents.values() if e.file == file.name and not e.posted]
    unreadable = 1 if file.unreadable_line else 0
    assert result.failed == len(not_posted) + unreadable, summary
    moved = Counter(
        row["TRANSACTION_TYPE"]
        for row in file.rows
        if row["TRANSACTION_TYPE"] not in ("SALE", "REFUND")
    )
    assert result.skipped == dict(moved), summary


def assert_unreadable_rows_are_failed_items(
    container: Container, report: Rendered, file: ReportFile, result: RunResult
) -> None:
    failed = container.sync.failed_items(result.run_id, workspace_id=None)
    unreadable = [item for item in failed if item.transaction_type == "UNREADABLE"]
    if file.unreadable_line is None:
        assert unreadable == [], [item.error_message for item in unreadable]
        return
    [row] = unreadable
    assert row.amazon_order_id == report.failing_order
    assert f"{file.name}, line {file.unreadable_line}, column TRANSACTION_COMPLETE_DATE" in (
        row.error_message or ""
    )
    documents = {item.document_number for item in failed if item.document_type is not None}
    assert documents == {
        e.number for e in report.documents.values() if e.file == file.name and not e.posted
    }


def xero_documents(world: SandboxWorld, report: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
    """This month's invoices and credit notes in Xero, by (endpoint, number): one each."""
    ours = set(report.order_ids)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for endpoint, number_field in NUMBER_FIELD.items():
        for document in world.xero.documents(endpoint):
            if document.get("Reference") in ours:
                key = (endpoint, str(document[number_field]))
                assert key not in found, f"{key} is in Xero twice"
                found[key] = document
    return found


def assert_documents_are_amazons(
    report: Rendered, in_xero: dict[tuple[str, str], dict[str, Any]]
) -> None:
    expected = {key: e for key, e in report.documents.items() if e.posted}
    assert set(in_xero) == set(expected)
    for key, e in expected.items():
        document = in_xero[key]
        figures = (
            Decimal(str(document["Total"])),
            Decimal(str(document["TotalTax"])),
            document["CurrencyCode"],
        )
        assert figures == (e.gross, e.tax, e.currency), (key, e, document["LineItems"])
    # Last month's invoices of that order were whole, and stay.
    this_month = {key for key, e in report.documents.items() if e.file == report.month.name}
    assert report.failing_order not in {
        in_xero[key]["Reference"] for key in this_month & set(in_xero)
    }


def assert_one_contact_per_buyer(
    report: Rendered,
    in_xero: dict[tuple[str, str], dict[str, Any]],
    contacts_seen: dict[str, str],
) -> None:
    invoice_contacts: dict[str, set[str]] = defaultdict(set)
    for key, document in in_xero.items():
        e = report.documents[key]
        contact = str(document["Contact"]["ContactID"])
        known = contacts_seen.setdefault(e.who, contact)
        assert contact == known, f"{e.who}: {key} is on {contact}, earlier documents on {known}"
        if key[0] == "Invoices":
            invoice_contacts[e.order_id].add(contact)
    buyers_of: dict[str, set[str]] = defaultdict(set)
    for who, contact in contacts_seen.items():
        buyers_of[contact].add(who)
    shared = {contact: whos for contact, whos in buyers_of.items() if len(whos) > 1}
    assert not shared, f"distinct buyers on one contact: {shared}"
    # A credit note goes where its order's invoice went, the month's or last month's.
    for key, document in in_xero.items():
        order_id = report.documents[key].order_id
        if key[0] == "CreditNotes" and order_id in invoice_contacts:
            assert {str(document["Contact"]["ContactID"])} == invoice_contacts[order_id], key


def xero_state(world: SandboxWorld) -> tuple[list[dict[str, Any]], ...]:
    return tuple(world.xero.documents(e) for e in ("Invoices", "CreditNotes", "Contacts"))
