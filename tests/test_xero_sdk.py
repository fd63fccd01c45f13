"""The Xero sandbox driven by Xero's official Python SDK (xero-python), as a real integrator's
client would drive Xero: every answer must deserialize into the SDK's models.

The SDK is a test-only client here; the bot talks to Xero through services/xero.py. The SDK's
token endpoints are class attributes pointing at identity.xero.com, so they are pointed at the
sandbox for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from xero_python.accounting import (
    AccountingApi,
    Allocation,
    Allocations,
    Contact,
    Contacts,
    CreditNote,
    CreditNotes,
    CurrencyCode,
    Invoice,
    Invoices,
    LineItem,
    TaxComponent,
    TaxRate,
    TaxRates,
)
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.deserializer import deserialize
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import AccountingBadRequestException
from xero_python.identity import IdentityApi

from sandbox.server import LoopbackServer
from sandbox.xero import DEFAULT_SCOPE, ZERO_GUID, XeroSandbox

DAY = date(2026, 3, 1)


@dataclass
class Sdk:
    sandbox: XeroSandbox
    url: str
    client: ApiClient
    accounting: AccountingApi
    identity: IdentityApi
    tokens: dict[str, Any]

    @property
    def tenant_id(self) -> str:
        return self.sandbox.tenant_id


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sdk]:
    sandbox = XeroSandbox()
    server = LoopbackServer(sandbox.app).start()
    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{server.url}/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", f"{server.url}/connect/revocation")
    tokens: dict[str, Any] = {
        "token": {
            "access_token": "",
            "refresh_token": sandbox.authorize_offline(),
            "scope": DEFAULT_SCOPE.split(),
            "expires_in": 0,
            "expires_at": 0,
            "token_type": "Bearer",
        }
    }
    client = ApiClient(
        Configuration(
            oauth2_token=OAuth2Token(
                client_id=sandbox.client_id, client_secret=sandbox.client_secret
            )
        ),
        oauth2_token_getter=lambda: tokens["token"],
        oauth2_token_saver=lambda token: tokens.update(token=token),
    )
    # The SDK's own refresh: it posts the refresh token and reads the sandbox's token answer.
    client.refresh_oauth2_token()
    yield Sdk(
        sandbox,
        server.url,
        client,
        AccountingApi(client, base_url=f"{server.url}/api.xro/2.0"),
        IdentityApi(client, base_url=server.url),
        tokens,
    )
    server.stop()


def line(amount: str = "10.00") -> LineItem:
    return LineItem(
        description="Order 202-1234567-1234567",
        quantity=Decimal("1"),
        unit_amount=Decimal(amount),
        account_code="200",
        tax_type="OUTPUT2",
    )


def sale(number: str, *, contact: str = "Amazon.co.uk customers", **extra: Any) -> Invoice:
    return Invoice(
        type="ACCREC",
        contact=Contact(name=contact),
        date=DAY,
        due_date=DAY,
        status="AUTHORISED",
        line_items=[line(extra.pop("amount", "10.00"))],
        invoice_number=number,
        **extra,
    )


def refund(number: str, *, contact: str = "Amazon.co.uk customers") -> CreditNote:
    return CreditNote(
        type="ACCRECCREDIT",
        contact=Contact(name=contact),
        date=DAY,
        status="AUTHORISED",
        line_items=[line("5.00")],
        credit_note_number=number,
    )


def test_tokens_and_connections(sdk: Sdk) -> None:
    assert sdk.tokens["token"]["access_token"]
    assert sdk.tokens["token"]["refresh_token"] in sdk.sandbox.issued_refresh_tokens
    (connection,) = sdk.identity.get_connections()
    assert (connection.tenant_id, connection.tenant_type, connection.tenant_name) == (
        sdk.tenant_id,
        "ORGANISATION",
        "Demo Company (UK)",
    )
    assert connection.created_date_utc.tzinfo is not None
    sdk.identity.delete_connection(connection.id)
    assert sdk.identity.get_connections() == []


def test_revocation_through_the_sdk(sdk: Sdk) -> None:
    access_token = sdk.tokens["token"]["access_token"]
    sdk.client.revoke_oauth2_token()
    assert sdk.tokens["token"]["refresh_token"] is None
    rows = requests.get(
        f"{sdk.url}/Connections", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    ).json()
    assert rows == []


def test_organisation_and_tax_rates(sdk: Sdk) -> None:
    (organisation,) = sdk.accounting.get_organisations(sdk.tenant_id).organisations
    assert (organisation.base_currency.value, organisation.country_code.value) == ("GBP", "GB")
    rates = sdk.accounting.get_tax_rates(sdk.tenant_id, order="Name DESC").tax_rates
    assert [r.name for r in rates] == sorted((r.name for r in rates), reverse=True)
    assert {r.tax_type: r.effective_rate for r in rates}["OUTPUT2"] == Decimal("20.0000")
    created = sdk.accounting.create_tax_rates(
        sdk.tenant_id,
        TaxRates(
            tax_rates=[
                TaxRate(
                    name="19% DE",
                    report_tax_type="MOSSSALES",
                    tax_components=[TaxComponent(name="MwSt", rate=Decimal("19"))],
                )
            ]
        ),
    ).tax_rates
    assert created[0].tax_type.startswith("TAX")
    assert created[0].effective_rate == Decimal("19.0000")


def test_contacts_create_get_and_a_failed_element(sdk: Sdk) -> None:
    created = sdk.accounting.create_contacts(
        sdk.tenant_id,
        Contacts(contacts=[Contact(name="Amazon.de"), Contact(name="Amazon.de")]),
        summarize_errors=False,
    ).contacts
    assert [c.has_validation_errors for c in created] == [False, True]
    assert created[1].contact_id == ZERO_GUID
    assert created[1].validation_errors[0].message.startswith("The contact name Amazon.de")
    (fetched,) = sdk.accounting.get_contact(sdk.tenant_id, created[0].contact_id).contacts
    assert (fetched.name, fetched.contact_status) == ("Amazon.de", "ACTIVE")
    listed = sdk.accounting.get_contacts(
        sdk.tenant_id,
        where='Name.StartsWith("Amazon")',
        order="Name",
        include_archived=True,
        summary_only=True,
    ).contacts
    assert [c.contact_id for c in listed] == [created[0].contact_id]


def test_invoices_with_a_failing_element_either_way(sdk: Sdk) -> None:
    answered = sdk.accounting.create_invoices(
        sdk.tenant_id,
        Invoices(invoices=[sale("AMZ-1"), sale("AMZ-2", currency_code=CurrencyCode.SEK)]),
        summarize_errors=False,
    ).invoices
    assert [i.has_errors for i in answered] == [False, True]
    assert answered[0].total == Decimal("12.00")
    assert answered[1].invoice_id == ZERO_GUID
    assert [e.message for e in answered[1].validation_errors] == [
        "Organisation is not subscribed to currency SEK"
    ]

    with pytest.raises(AccountingBadRequestException) as raised:
        sdk.accounting.create_invoices(
            sdk.tenant_id,
            Invoices(invoices=[sale("AMZ-3"), sale("AMZ-1")]),
            summarize_errors=True,
        )
    finder = sdk.accounting.get_model_finder()
    error = deserialize("Error", raised.value.error_data, finder)
    assert (error.error_number, error.type) == (10, "ValidationException")
    (failed,) = error.elements
    assert [e.message for e in failed.validation_errors] == ["Invoice # must be unique."]
    (as_invoice,) = deserialize("list[Invoice]", raised.value.error_data["Elements"], finder)
    assert as_invoice.invoice_number == "AMZ-1"
    # The 400 does not say so, but the valid invoice of that batch was saved.
    saved = sdk.accounting.get_invoices(sdk.tenant_id, invoice_numbers=["AMZ-3"]).invoices
    assert [i.invoice_number for i in saved] == ["AMZ-3"]


def test_credit_notes_and_allocations(sdk: Sdk) -> None:
    (invoice,) = sdk.accounting.create_invoices(
        sdk.tenant_id, Invoices(invoices=[sale("AMZ-1")])
    ).invoices
    (note,) = sdk.accounting.create_credit_notes(
        sdk.tenant_id, CreditNotes(credit_notes=[refund("AMZ-R-1")]), summarize_errors=False
    ).credit_notes
    assert (note.total, note.remaining_credit) == (Decimal("6.00"), Decimal("6.00"))

    def allocate(amount: str, **options: bool) -> Allocation:
        (allocated,) = sdk.accounting.create_credit_note_allocation(
            sdk.tenant_id,
            note.credit_note_id,
            Allocations(
                allocations=[
                    Allocation(
                        invoice=Invoice(invoice_id=invoice.invoice_id),
                        amount=Decimal(amount),
                        date=date(2026, 3, 2),
                    )
                ]
            ),
            **options,
        ).allocations
        return allocated

    allocation = allocate("6.00")
    assert (allocation.amount, allocation.date) == (Decimal("6.00"), date(2026, 3, 2))
    refused = allocate("1.00", summarize_errors=False)
    assert refused.allocation_id == ZERO_GUID
    assert refused.validation_errors
    (after,) = sdk.accounting.get_credit_note(sdk.tenant_id, note.credit_note_id).credit_notes
    assert (after.status, after.remaining_credit) == ("PAID", Decimal("0.00"))
    assert [a.amount for a in after.allocations] == [Decimal("6.00")]
    (paid,) = sdk.accounting.get_invoice(sdk.tenant_id, invoice.invoice_id).invoices
    assert (paid.amount_due, paid.amount_credited) == (Decimal("6.00"), Decimal("6.00"))


def test_a_paged_filtered_ordered_get(sdk: Sdk) -> None:
    sdk.accounting.create_invoices(
        sdk.tenant_id,
        Invoices(
            invoices=[
                sale(f"AMZ-{n}", amount=f"{n}.00", contact="Zed Ltd" if n == 3 else "Amazon")
                for n in range(1, 6)
            ]
        ),
    )
    sdk.accounting.create_credit_notes(
        sdk.tenant_id, CreditNotes(credit_notes=[refund("R-2"), refund("R-1")])
    )
    page = sdk.accounting.get_invoices(
        sdk.tenant_id,
        if_modified_since=datetime(2020, 1, 1, tzinfo=UTC),
        where='Type=="ACCREC" AND Contact.Name=="Amazon"',
        order="Total DESC",
        statuses=["AUTHORISED"],
        page=1,
        page_size=2,
    )
    assert [i.invoice_number for i in page.invoices] == ["AMZ-5", "AMZ-4"]
    assert page.invoices[0].line_items[0].unit_amount == Decimal("5.00")
    assert (page.pagination.item_count, page.pagination.page_count) == (4, 2)
    later = sdk.accounting.get_invoices(
        sdk.tenant_id, if_modified_since=datetime.now(UTC).replace(year=2100)
    )
    assert later.invoices == []
    notes = sdk.accounting.get_credit_notes(
        sdk.tenant_id, where='Status=="AUTHORISED"', order="CreditNoteNumber", page=1
    ).credit_notes
    assert [n.credit_note_number for n in notes] == ["R-1", "R-2"]
    light = sdk.accounting.get_invoices(sdk.tenant_id, summary_only=True, page=1).invoices
    assert all(i.line_items is None for i in light)
