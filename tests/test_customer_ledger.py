"""One buyer, one customer ledger, one document per number: refunds on their order's contact,
numbers that would overwrite each other, and allocations Xero refuses (issue 8, points 4 and 6),
end to end through the ledger and the Xero sandbox, on both databases."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bot.container import Container
from sandbox.world import SandboxWorld
from services.dry_run import WouldFail, WouldSend, dry_run
from services.models import ContactPolicy, Integration, LedgerItem, RunStatus
from services.results import CurrencyTotals, RunResult
from tests.conftest import SHARED
from tests.test_reports import SALE, vat_line

ORDER = SALE["TRANSACTION_EVENT_ID"]
# Amazon's refund rows carry less than the sale's: no buyer name, no address, no arrival.
REFUND = {
    **SALE,
    "TRANSACTION_TYPE": "REFUND",
    "ACTIVITY_TRANSACTION_ID": "amzn1:crow:R1",
    "TRANSACTION_COMPLETE_DATE": "05-04-2026",
    "TAX_CALCULATION_DATE": "05-04-2026",
    "PRICE_OF_ITEMS_AMT_VAT_EXCL": "-16.80",
    "PRICE_OF_ITEMS_VAT_AMT": "-3.19",
    "PRICE_OF_ITEMS_AMT_VAT_INCL": "-19.99",
    "TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL": "-19.99",
    "VAT_INV_NUMBER": "DE-CN-2026-1",
    "BUYER_NAME": "",
    "ARRIVAL_ADDRESS": "",
    "ARRIVAL_CITY": "",
    "ARRIVAL_POST_CODE": "",
    "ARRIVAL_COUNTRY": "",
}


def import_rows(
    container: Container, integration: Integration, path: Path, *rows: dict[str, str]
) -> RunResult:
    columns = tuple(dict.fromkeys([*SALE, *REFUND, *(column for row in rows for column in row)]))
    header = vat_line({column: column for column in columns}, columns)
    path.write_text("\n".join([header, *(vat_line(row, columns) for row in rows)]) + "\n")
    return container.sync.import_report(integration, path)


def contact_of(document: dict[str, Any]) -> str:
    return str(document["Contact"]["ContactID"])


def test_a_refund_without_the_buyers_address_lands_on_the_sales_contact(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    result = import_rows(container, shop, tmp_path / "vat.txt", SALE, REFUND)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    [invoice] = world.xero.documents("Invoices")
    [credit_note] = world.xero.documents("CreditNotes")
    assert contact_of(credit_note) == contact_of(invoice)
    assert result.contacts_created == 1 and result.allocations_made == 1


def test_a_refund_next_month_lands_on_the_contact_of_last_months_sale(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    import_rows(container, shop, tmp_path / "march.txt", SALE)
    result = import_rows(container, shop, tmp_path / "april.txt", REFUND)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    [invoice] = world.xero.documents("Invoices")
    [credit_note] = world.xero.documents("CreditNotes")
    assert contact_of(credit_note) == contact_of(invoice)
    assert result.contacts_created == 0 and result.allocations_made == 1


def test_consumers_folded_per_marketplace_keep_a_refund_on_its_invoices_contact(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    import_rows(container, shop, tmp_path / "march.txt", SALE)  # Anna: her own contact
    container.integrations.update_settings(
        shop.id, actor="U0ADMIN", workspace_id=None, contact_policy=ContactPolicy.MARKETPLACE
    )
    consumers = [
        {**SALE, "TRANSACTION_EVENT_ID": f"302-000000{n}-0000000", "ACTIVITY_TRANSACTION_ID":
         f"Fold{n}", "VAT_INV_NUMBER": f"DE-AEU-2026-F{n}", "BUYER_NAME": name,
         "TAX_CALCULATION_DATE": "02-04-2026", "TRANSACTION_COMPLETE_DATE": "02-04-2026"}
        for n, name in enumerate(("Jonas Weber", "Lena Fischer"))
    ]  # fmt: skip
    business = {
        **consumers[0], "TRANSACTION_EVENT_ID": "302-0000009-0000000",
        "ACTIVITY_TRANSACTION_ID": "Biz9", "VAT_INV_NUMBER": "DE-AEU-2026-B9",
        "BUYER_NAME": "Wiegetechnik GmbH", "BUYER_VAT_NUMBER": "DE136695976",
        "BUYER_VAT_NUMBER_COUNTRY": "DE",
    }  # fmt: skip

    result = import_rows(container, shop, tmp_path / "april.txt", *consumers, business, REFUND)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    contacts = {c["ContactID"]: c for c in world.xero.org().contacts.values()}
    invoices = {i["InvoiceNumber"]: i for i in world.xero.documents("Invoices")}

    def contact_name(number: str) -> str:
        return str(contacts[contact_of(invoices[number])]["Name"])

    assert (
        contact_name("DE-AEU-2026-F0") == contact_name("DE-AEU-2026-F1") == ("Amazon DE customers")
    )
    assert contact_name("DE-AEU-2026-B9") == "Wiegetechnik GmbH"  # a business keeps its own
    # Anna's refund stays with her March invoice, on her own contact, and is allocated to it.
    [credit_note] = world.xero.documents("CreditNotes")
    assert contact_of(credit_note) == contact_of(invoices[SALE["VAT_INV_NUMBER"]])
    assert contact_name(SALE["VAT_INV_NUMBER"]) == "Anna Schmidt"
    assert result.allocations_made == 1 and result.contacts_created == 2


def test_a_refund_of_an_order_invoiced_outside_the_bot_lands_on_that_invoices_contact(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    xero = container.xero(shop)
    [made] = xero.create_documents(
        "Contacts", [{"Name": "Anna Schmidt (by hand)"}], idempotency_key="hand-contact"
    )
    assert made.ok and made.xero_id
    xero.create_documents(
        "Invoices",
        [
            {
                "Type": "ACCREC",
                "Contact": {"ContactID": made.xero_id},
                "InvoiceNumber": "HAND-1",
                "Reference": ORDER,
                "CurrencyCode": "EUR",
                "Status": "AUTHORISED",
                "LineItems": [
                    {"Description": "By hand", "Quantity": 1, "UnitAmount": Decimal("19.99"),
                     "AccountCode": "200", "TaxType": "NONE"}
                ],
            }
        ],
        idempotency_key="hand-invoice",
    )  # fmt: skip

    result = import_rows(container, shop, tmp_path / "april.txt", REFUND)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    [credit_note] = world.xero.documents("CreditNotes")
    assert contact_of(credit_note) == made.xero_id
    assert result.contacts_created == 0


def test_two_orders_with_one_invoice_number_both_fail_naming_each_other(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    other = {**SALE, "TRANSACTION_EVENT_ID": "302-7654321-1234567", "BUYER_NAME": "Ben Meyer"}

    result = import_rows(container, shop, tmp_path / "vat.txt", SALE, other)

    assert result.status == RunStatus.PARTIAL
    assert world.xero.documents("Invoices") == []
    failed = {item.amazon_order_id: item.error_message or "" for item in
              container.sync.failed_items(result.run_id, workspace_id=None)}  # fmt: skip
    assert set(failed) == {ORDER, other["TRANSACTION_EVENT_ID"]}
    assert other["TRANSACTION_EVENT_ID"] in failed[ORDER]
    assert ORDER in failed[other["TRANSACTION_EVENT_ID"]]
    assert result.left_out == {
        "EUR": CurrencyTotals(Decimal("39.98"), Decimal("0.00"), Decimal("6.38"))
    }


def test_a_number_xero_has_for_another_document_is_never_overwritten(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    xero = container.xero(shop)
    [made] = xero.create_documents(
        "Contacts", [{"Name": "Another app's customer"}], idempotency_key="other-contact"
    )
    theirs = {
        "Type": "ACCREC",
        "Contact": {"ContactID": made.xero_id},
        "InvoiceNumber": SALE["VAT_INV_NUMBER"],
        "Reference": "made by another app",
        "CurrencyCode": "EUR",
        "Status": "DRAFT",
        "LineItems": [{"Description": "Theirs", "Quantity": 1, "UnitAmount": Decimal("5.00"),
                       "AccountCode": "200", "TaxType": "NONE"}],
    }  # fmt: skip
    xero.create_documents("Invoices", [theirs], idempotency_key="their-invoice")

    result = import_rows(container, shop, tmp_path / "vat.txt", SALE)

    assert result.status == RunStatus.PARTIAL
    [failed] = container.sync.failed_items(result.run_id, workspace_id=None)
    assert "Xero already has invoice DE-AEU-2026-1 for made by another app" in (
        failed.error_message or ""
    )
    [invoice] = world.xero.documents("Invoices")
    assert (invoice["Reference"], Decimal(str(invoice["Total"]))) == (
        "made by another app",
        Decimal("5.00"),
    )


def test_a_refused_allocation_is_a_failed_item_and_retry_allocates_it(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    refused = [{"ValidationErrors": [{"Message": "The allocation is refused."}]}]
    body = {"ErrorNumber": 10, "Type": "ValidationException", "Message": "Refused"}
    body["Elements"] = refused
    world.xero.faults.add("/api.xro/2.0/CreditNotes/", 400, method="PUT", body=body)

    result = import_rows(container, shop, tmp_path / "vat.txt", SALE, REFUND)

    # Documents were posted: the run is partial, not "could not proceed".
    assert result.status == RunStatus.PARTIAL, result.to_json()
    assert (result.invoices_created, result.credit_notes_created) == (1, 1)
    [failed] = container.sync.failed_items(result.run_id, workspace_id=None)
    assert "is in Xero, but Xero refused its allocation to invoice DE-AEU-2026-1" in (
        failed.error_message or ""
    )
    assert result.totals["EUR"].refunds_gross == Decimal("19.99")  # the credit note is in Xero

    after = container.sync.retry_item(failed.id, workspace_id=None)

    assert after.status == "posted" and after.allocation_status == "done"
    [credit_note] = world.xero.documents("CreditNotes")
    assert len(credit_note.get("Allocations") or []) == 1


def test_an_allocation_xero_did_not_answer_is_looked_for_before_it_is_made_again(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    world.xero.faults.add("/api.xro/2.0/CreditNotes/", 503, method="PUT", times=10)

    result = import_rows(container, shop, tmp_path / "vat.txt", SALE, REFUND)

    # Xero is unavailable: the run stops and resumes later, the documents stay posted.
    assert result.status == RunStatus.FAILED, result.to_json()
    assert len(world.xero.documents("CreditNotes")) == 1

    world.xero.faults.clear()
    again = container.sync.retry_run(result.run_id, workspace_id=None)

    assert again.status == RunStatus.SUCCEEDED, again.to_json()
    [credit_note] = world.xero.documents("CreditNotes")
    assert len(credit_note.get("Allocations") or []) == 1


def test_a_corrected_report_posts_what_the_broken_one_could_not(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    second_item = {**SALE, "ACTIVITY_TRANSACTION_ID": "Ab12Cd34F", "SELLER_SKU": "NX-CUP"}
    broken_item = {**second_item, "PRICE_OF_ITEMS_AMT_VAT_INCL": "abc"}
    other = {**SALE, "TRANSACTION_EVENT_ID": "302-7654321-1234567", "BUYER_NAME": "Ben Meyer"}

    broken = import_rows(container, shop, tmp_path / "broken.txt", SALE, broken_item, other)

    assert broken.status == RunStatus.PARTIAL and world.xero.documents("Invoices") == []
    assert broken.left_out["EUR"].sales_gross == Decimal("39.98")
    renumbered = {**other, "VAT_INV_NUMBER": "DE-AEU-2026-2"}
    fixed = import_rows(container, shop, tmp_path / "fixed.txt", SALE, second_item, renumbered)

    assert fixed.status == RunStatus.SUCCEEDED, fixed.to_json()
    totals = {
        invoice["Reference"]: invoice["Total"] for invoice in world.xero.documents("Invoices")
    }
    assert totals == {ORDER: Decimal("39.98"), other["TRANSACTION_EVENT_ID"]: Decimal("19.99")}


BOOKWORK = SHARED / "samples" / "amazon" / "vat-bookwork-2018-01"


def test_the_bookwork_dry_run_never_shows_the_organisations_zero_rate(
    container: Container, shop: Integration
) -> None:
    # A real 2018 amazon.de report of a seller without Amazon's VAT calculation, its activity
    # ids masked to "xxx", so that three orders share one invoice number.
    report = BOOKWORK / "2018_01_Amazon_Transaktionsbericht_dummy.txt"

    outcomes = list(dry_run(shop, report))

    errors = [outcome.message for outcome in outcomes if isinstance(outcome, WouldFail)]
    assert sum("is also the number of order" in error for error in errors) == 3
    assert any("needs a VAT rate for DE domestic sales" in error for error in errors)
    sent = [outcome for outcome in outcomes if isinstance(outcome, WouldSend)]
    assert not [outcome for outcome in sent if outcome.endpoint in ("Invoices", "CreditNotes")]

    with container.sessions.begin() as session:
        session.execute(update(Integration).values(vat_rates={"DE:domestic": "19"}))
    shop = container.integrations.get(shop.name)
    [credit_note] = [
        outcome.payload
        for outcome in dry_run(shop, report)
        if isinstance(outcome, WouldSend) and outcome.endpoint == "CreditNotes"
    ]
    assert credit_note["LineAmountTypes"] == "Inclusive"
    assert credit_note["LineItems"][0]["LineAmount"] == Decimal("124.99")
    assert credit_note["LineItems"][0]["TaxAmount"] == Decimal("19.96")  # German 19%
    assert credit_note["LineItems"][0]["TaxType"] == "<new tax rate for DE:19:domestic>"


def test_a_document_xero_already_has_for_this_order_is_taken_as_posted_not_sent_again(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    # As if an earlier attempt's answer was lost with its ledger write: Xero has the invoice.
    first = import_rows(container, shop, tmp_path / "march.txt", SALE)
    with container.sessions.begin() as session:
        session.execute(update(LedgerItem).values(status="pending", xero_id=None, attempts=0))

    again = container.sync.retry_run(first.run_id, workspace_id=None)

    assert len(world.xero.documents("Invoices")) == 1
    assert again.already_posted == 1 and again.invoices_created == 0
    assert again.totals["EUR"].sales_gross == Decimal("19.99")


def test_every_shipment_of_an_order_lands_on_the_contact_of_its_first(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    # The second shipment of one order, its buyer written another way, and in a later file.
    second = {
        **SALE,
        "ACTIVITY_TRANSACTION_ID": "Zz98Yy76X",
        "VAT_INV_NUMBER": "DE-AEU-2026-9",
        "BUYER_NAME": "ANNA  SCHMIDT GmbH i.G.",
        "ARRIVAL_POST_CODE": "10117",
    }
    import_rows(container, shop, tmp_path / "first.txt", SALE)
    result = import_rows(container, shop, tmp_path / "second.txt", second, REFUND)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    contacts = {contact_of(document) for endpoint in ("Invoices", "CreditNotes")
                for document in world.xero.documents(endpoint)}  # fmt: skip
    assert len(contacts) == 1 and len(world.xero.org().contacts) == 1
