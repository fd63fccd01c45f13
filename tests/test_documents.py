"""Amazon rows -> Xero invoices and credit notes: the payloads are checked against Xero's spec and
posted to the Xero sandbox, whose computed totals must be Amazon's to the cent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from sandbox.server import LoopbackServer
from sandbox.xero import XeroSandbox
from services.documents import (
    CONTACT_NAME_MAX,
    FACILITATOR_LINE,
    ContactSpec,
    Document,
    TaxKey,
    build_document,
    contact_for,
    contact_name,
    contact_payload,
    document_key,
    document_number,
    document_payload,
    tax_keys,
    transaction_tax_keys,
)
from services.errors import ErrorKind, ServiceError
from services.integrations import PostingSettings
from services.models import DocumentKind, InvoiceStatus
from services.taxes import TaxMap
from services.transactions import (
    CENT,
    Buyer,
    Charge,
    ChargeKind,
    SourceRef,
    TaxScheme,
    Transaction,
)
from services.xero import Endpoint, XeroClient, to_json
from tests.test_sandbox_xero import assert_matches, spec
from tests.test_xero_client import make_client

JSON = dict[str, Any]
Xero = tuple[XeroSandbox, XeroClient]
POSTING = PostingSettings(sales_account_code="200", shipping_account_code="260")
ANNA_BERLIN = Buyer("Anna Schmidt", None, None, "Invalidenstraße 12", "Berlin", "10115", "DE")
ANNA_HAMBURG = Buyer("Anna Schmidt", None, None, "Mönckebergstraße 7", "Hamburg", "20095", "DE")
FRENCH_COMPANY = Buyer(
    "Brûlerie Lumière SARL", "FR40303265045", "FR", "3 quai de la Fosse", "Nantes", "44000", "FR"
)


# --- a small factory ----------------------------------------------------------------------------


def charge(kind: ChargeKind, gross: str, rate: str = "0.20") -> Charge:
    """A charge split as Amazon splits a VAT-inclusive price: VAT rounded half up to the cent."""
    total, fraction = Decimal(gross), Decimal(rate)
    tax = (total * fraction / (1 + fraction)).quantize(CENT, ROUND_HALF_UP)
    return Charge(kind, total - tax, tax, total, fraction)


def item(gross: str, rate: str = "0.20") -> Charge:
    return charge(ChargeKind.ITEM, gross, rate)


def tx(*charges: Charge, **fields: Any) -> Transaction:
    row: dict[str, Any] = {
        "source": SourceRef("vat-2026-03.txt", 2),
        "type": "SALE",
        "marketplace": "amazon.co.uk",
        "order_id": "202-1000000-0000001",
        "activity_id": "SHIP1",
        "invoice_number": "GB-AEU-2026-1",
        "date": date(2026, 3, 2),
        "currency": "GBP",
        "sku": "NX-THERMO",
        "description": "Thermo flask 500 ml",
        "quantity": 1,
        "charges": charges,
        "tax_country": "GB",
        "scheme": TaxScheme.DOMESTIC,
        "buyer": Buyer(),
    }
    return Transaction(**(row | fields))


def refund(*charges: Charge, **fields: Any) -> Transaction:
    """Amazon's refund rows are the sale's amounts, negated."""
    negated = tuple(replace(c, net=-c.net, tax=-c.tax, gross=-c.gross) for c in charges)
    return tx(*negated, **({"type": "REFUND", "activity_id": "amzn1:crow:R1"} | fields))


# --- posting to the sandbox ---------------------------------------------------------------------


@pytest.fixture
def xero() -> Iterator[Xero]:
    sandbox = XeroSandbox()
    server = LoopbackServer(sandbox.app).start()
    yield sandbox, make_client(sandbox, server)
    server.stop()


def _schema_name(node: JSON) -> str | None:
    ref = node.get("$ref") or node.get("items", {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def assert_writable(payload: JSON, schema: str) -> None:
    """What goes over the wire matches Xero's schema and sets no read-only field."""
    wire = json.loads(to_json(payload), parse_float=Decimal)
    assert_matches(wire, schema)

    def no_read_only(value: Any, name: str) -> None:
        properties = spec("xero_accounting.yaml")["components"]["schemas"][name]["properties"]
        for field, item in value.items():
            assert not properties[field].get("readOnly"), f"{name}.{field} is read-only"
            nested = _schema_name(properties[field])
            for element in item if isinstance(item, list) else [item]:
                if nested and isinstance(element, dict):
                    no_read_only(element, nested)

    no_read_only(wire, schema)


def create_contact(client: XeroClient, contact: ContactSpec) -> tuple[str, str]:
    """What the engine does: try contact_name(spec, 0), 1, ... until Xero takes the name."""
    for attempt in range(4):
        name = contact_name(contact, attempt)
        payload = contact_payload(contact, name)
        assert_writable(payload, "Contact")
        [result] = client.create_documents(
            "Contacts", [payload], idempotency_key=f"contact:{contact.key}:{attempt}"
        )
        if result.ok:
            assert result.xero_id is not None
            return result.xero_id, name
        assert "already assigned" in result.errors[0]
    raise AssertionError(f"no free name for {contact}")


def post(
    xero: Xero,
    docs: Sequence[Document],
    status: str = InvoiceStatus.AUTHORISED,
) -> list[JSON]:
    """Post the documents as the engine will, and check Xero's totals against Amazon's."""
    _, client = xero
    tax_types = TaxMap.from_xero(client.tax_rates()).ensure(
        set().union(*map(tax_keys, docs)), client
    )
    contacts = {d.contact.key: create_contact(client, d.contact)[0] for d in docs}
    saved = []
    for doc in docs:
        payload = document_payload(
            doc, contact_id=contacts[doc.contact.key], tax_types=tax_types, status=status
        )
        invoice = doc.kind == DocumentKind.INVOICE
        endpoint: Endpoint = "Invoices" if invoice else "CreditNotes"
        assert_writable(payload, "Invoice" if invoice else "CreditNote")
        [result] = client.create_documents(
            endpoint, [payload], idempotency_key=hashlib.sha256(doc.key.encode()).hexdigest()
        )
        assert result.ok, result.errors
        assert result.element["Total"] == doc.gross, doc.number
        assert result.element["TotalTax"] == doc.tax, doc.number
        saved.append(result.element)
    return saved


def lines_of(element: JSON) -> list[tuple[Any, ...]]:
    return [
        (
            line["Description"],
            line["Quantity"],
            line["UnitAmount"],
            line["LineAmount"],
            line["TaxAmount"],
            line["AccountCode"],
            line["TaxType"],
        )
        for line in element["LineItems"]
    ]


# --- which rows make which document -------------------------------------------------------------


def test_document_keys_and_numbers() -> None:
    sale = tx(item("12.00"))
    assert document_key(sale) == "INV:202-1000000-0000001:GB-AEU-2026-1"
    assert document_number(sale) == "GB-AEU-2026-1"
    uninvoiced = replace(sale, invoice_number=None)
    assert document_key(uninvoiced) == "INV:202-1000000-0000001:SHIP1"
    assert document_number(uninvoiced) == "AMZ-SHIP1"
    credit = refund(item("12.00"), invoice_number="GB-AEU-2026-7")
    assert document_key(credit) == "CN:amzn1:crow:R1"
    assert document_number(credit) == "GB-AEU-2026-7"
    assert document_number(replace(credit, invoice_number=None)) == "AMZ-CN-amzn1:crow:R1"
    for kind in ("FC_TRANSFER", "INBOUND", "RETURN", "LIQUIDATION"):
        assert document_key(replace(sale, type=kind)) is None
        with pytest.raises(ValueError, match="not posted"):
            document_number(replace(sale, type=kind))
        with pytest.raises(ValueError, match="not posted"):
            build_document([replace(sale, type=kind)], POSTING)


def test_rows_of_different_documents_are_refused() -> None:
    sale = tx(item("12.00"))
    with pytest.raises(ValueError, match="mixed"):
        build_document([sale, replace(sale, invoice_number="GB-AEU-2026-2")], POSTING)
    with pytest.raises(ValueError, match="at least one"):
        build_document([], POSTING)


# --- invoices -------------------------------------------------------------------------------------


def test_an_order_with_shipping_gift_wrap_and_promotions(xero: Xero) -> None:
    first = tx(
        item("39.98"),
        charge(ChargeKind.ITEM_PROMOTION, "-4.00"),
        charge(ChargeKind.SHIPPING, "3.99"),
        charge(ChargeKind.SHIPPING_PROMOTION, "-3.99"),
        quantity=2,
    )
    second = tx(
        item("12.99"),
        charge(ChargeKind.GIFT_WRAP, "2.99"),
        charge(ChargeKind.GIFT_WRAP_PROMOTION, "-1.00"),
        sku="NX-GRINDER",
        description="Coffee grinder",
        source=SourceRef("vat-2026-03.txt", 3),
    )
    doc = build_document([first, second], POSTING)
    assert (doc.kind, doc.number, doc.order_id, doc.currency, doc.country) == (
        "invoice",
        "GB-AEU-2026-1",
        "202-1000000-0000001",
        "GBP",
        "GB",
    )
    assert doc.gross == first.gross + second.gross == Decimal("50.96")
    assert doc.tax == first.tax + second.tax
    assert tax_keys(doc) == {TaxKey("GB", Decimal(20), TaxScheme.DOMESTIC)}

    [saved] = post(xero, [doc])
    assert saved["Type"] == "ACCREC"
    assert (saved["InvoiceNumber"], saved["Reference"], saved["Status"]) == (
        "GB-AEU-2026-1",
        "202-1000000-0000001",
        "AUTHORISED",
    )
    assert saved["CurrencyCode"] == "GBP" and saved["LineAmountTypes"] == "Exclusive"
    assert saved["Date"] == "/Date(1772409600000+0000)/"  # 2026-03-02
    d = Decimal
    assert lines_of(saved) == [
        ("Thermo flask 500 ml (SKU NX-THERMO)", d("2.0000"), d("16.66"), d("33.32"), d("6.66"),
         "200", "OUTPUT2"),
        ("Promotion on Thermo flask 500 ml (SKU NX-THERMO)", d("1.0000"), d("-3.33"), d("-3.33"),
         d("-0.67"), "200", "OUTPUT2"),
        ("Shipping", d("1.0000"), d("3.32"), d("3.32"), d("0.67"), "260", "OUTPUT2"),
        ("Shipping promotion", d("1.0000"), d("-3.32"), d("-3.32"), d("-0.67"), "260", "OUTPUT2"),
        ("Coffee grinder (SKU NX-GRINDER)", d("1.0000"), d("10.82"), d("10.82"), d("2.17"), "200",
         "OUTPUT2"),
        ("Gift wrap", d("1.0000"), d("2.49"), d("2.49"), d("0.50"), "260", "OUTPUT2"),
        ("Gift wrap promotion", d("1.0000"), d("-0.83"), d("-0.83"), d("-0.17"), "260",
         "OUTPUT2"),
    ]  # fmt: skip


def test_draft_when_the_integration_says_so(xero: Xero) -> None:
    posting = replace(POSTING, invoice_status=InvoiceStatus.DRAFT)
    doc = build_document([tx(item("12.00"))], posting)
    [saved] = post(xero, [doc], status=posting.invoice_status)
    assert saved["Status"] == "DRAFT"
    with pytest.raises(ValueError, match="not PAID"):
        document_payload(doc, contact_id="c", tax_types={}, status="PAID")
    with pytest.raises(ValueError, match="no Xero tax type for GB:20:domestic"):
        document_payload(doc, contact_id="c", tax_types={}, status="DRAFT")


def test_oss_distance_sale_to_poland_in_euros(xero: Xero) -> None:
    sandbox, _ = xero
    doc = build_document(
        [
            tx(
                item("24.60", "0.23"),
                charge(ChargeKind.SHIPPING, "4.99", "0.23"),
                marketplace="amazon.de",
                order_id="302-2000000-0000002",
                invoice_number="PL-AEU-2026-11",
                currency="EUR",
                tax_country="PL",
                scheme=TaxScheme.OSS,
                buyer=Buyer(country="PL", postcode="31-042", city="Kraków"),
            )
        ],
        POSTING,
    )
    assert tax_keys(doc) == {TaxKey("PL", Decimal(23), TaxScheme.OSS)}
    assert doc.contact.name == "Amazon DE customers"
    [saved] = post(xero, [doc])
    [oss] = [r for r in sandbox.org().tax_rates if r["Name"] == "Amazon PL 23% OSS"]
    assert {line["TaxType"] for line in saved["LineItems"]} == {oss["TaxType"]}
    assert (saved["CurrencyCode"], saved["Total"], saved["TotalTax"]) == (
        "EUR",
        Decimal("29.59"),
        Decimal("5.53"),
    )


def test_b2b_reverse_charge_with_a_vat_number(xero: Xero) -> None:
    sandbox, _ = xero
    sale = tx(
        item("120.00", "0"),
        item("40.00", "0"),
        marketplace="amazon.de",
        invoice_number="DE-AEU-2026-5",
        currency="EUR",
        tax_country="DE",
        scheme=TaxScheme.REVERSE_CHARGE,
        buyer=FRENCH_COMPANY,
    )
    doc = build_document([sale], POSTING)
    assert doc.contact.key == "vat:FR40303265045"
    assert doc.contact.tax_number == "FR40303265045"
    assert doc.tax == 0
    [saved] = post(xero, [doc])
    [contact] = sandbox.documents("Contacts")
    assert (contact["Name"], contact["TaxNumber"], contact["ContactNumber"]) == (
        "Brûlerie Lumière SARL",
        "FR40303265045",
        "vat:FR40303265045",
    )
    assert contact["Addresses"] == [
        {
            "AddressType": "STREET",
            "AddressLine1": "3 quai de la Fosse",
            "City": "Nantes",
            "PostalCode": "44000",
            "Country": "FR",
        }
    ]
    [rate] = [r for r in sandbox.org().tax_rates if r["Name"] == "Amazon DE 0% reverse charge"]
    assert {line["TaxType"] for line in saved["LineItems"]} == {rate["TaxType"]}


def test_exports_are_zero_rated(xero: Xero) -> None:
    swiss = Buyer("Noah Keller", None, None, "Bahnhofstrasse 21", "Zürich", "8001", "CH")
    from_germany = tx(
        item("59.00", "0"),
        marketplace="amazon.de",
        order_id="302-3000000-0000003",
        invoice_number="DE-AEU-2026-6",
        currency="EUR",
        tax_country="DE",
        scheme=TaxScheme.EXPORT,
        buyer=swiss,
    )
    from_britain = tx(
        item("19.99", "0"),
        order_id="202-3000000-0000004",
        invoice_number=None,
        activity_id="SHIP9",
        scheme=TaxScheme.EXPORT,
        buyer=swiss,
    )
    docs = [build_document([from_germany], POSTING), build_document([from_britain], POSTING)]
    assert docs[1].number == "AMZ-SHIP9"
    german, british = post(xero, docs)
    assert {line["TaxType"] for line in british["LineItems"]} == {"ZERORATEDOUTPUT"}
    sandbox, _ = xero
    [rate] = [r for r in sandbox.org().tax_rates if r["Name"] == "Amazon DE 0% export"]
    assert {line["TaxType"] for line in german["LineItems"]} == {rate["TaxType"]}
    assert german["Contact"]["ContactID"] == british["Contact"]["ContactID"]  # one buyer


def test_a_refund_is_a_credit_note_with_positive_amounts(xero: Xero) -> None:
    sold = (item("39.98"), charge(ChargeKind.ITEM_PROMOTION, "-4.00"))
    rows = [
        refund(*sold, quantity=-2, invoice_number=None),
        refund(charge(ChargeKind.SHIPPING, "3.99"), invoice_number=None, quantity=0),
    ]
    doc = build_document(rows, POSTING)
    assert (doc.kind, doc.number, doc.key) == (
        "credit_note",
        "AMZ-CN-amzn1:crow:R1",
        "CN:amzn1:crow:R1",
    )
    assert doc.gross == -(rows[0].gross + rows[1].gross) == Decimal("39.97")
    assert doc.tax == -(rows[0].tax + rows[1].tax) == Decimal("6.66")
    [saved] = post(xero, [doc])
    assert saved["Type"] == "ACCRECCREDIT"
    assert (saved["CreditNoteNumber"], saved["Reference"]) == (
        "AMZ-CN-amzn1:crow:R1",
        "202-1000000-0000001",
    )
    assert [line[1:5] for line in lines_of(saved)] == [
        (Decimal("2.0000"), Decimal("16.66"), Decimal("33.32"), Decimal("6.66")),
        (Decimal("1.0000"), Decimal("-3.33"), Decimal("-3.33"), Decimal("-0.67")),
        (Decimal("1.0000"), Decimal("3.32"), Decimal("3.32"), Decimal("0.67")),
    ]
    # A sale that adds up negative, or a refund that adds up positive, is Amazon's error.
    with pytest.raises(ServiceError, match="a refund must be negative") as positive:
        build_document([replace(rows[0], charges=sold)], POSTING)
    assert positive.value.kind == ErrorKind.BAD_DATA


def test_a_refunded_zero_stays_zero_on_the_wire() -> None:
    doc = build_document(
        [refund(item("50.00", "0"), tax_country="DE", scheme=TaxScheme.REVERSE_CHARGE)], POSTING
    )
    tax_types = dict.fromkeys(tax_keys(doc), "TAX001")
    wire = to_json(document_payload(doc, contact_id="c", tax_types=tax_types, status="DRAFT"))
    assert '"LineAmount":50.00' in wire and '"TaxAmount":0.00' in wire


def test_awkward_amounts_stay_exact_to_the_cent(xero: Xero) -> None:
    rows = [
        # 3 x 33.33: net 83.32 does not split into three whole-cent prices.
        tx(item("99.99"), quantity=3),
        # 36.00 for three: 10.00 each, posted as such.
        tx(item("36.00"), quantity=3, sku="NX-CUP", description="Cup"),
        # Xero's own 20% of 0.01 rounds to 0.00 too, but at 5%, 0.30 x 5% = 0.015 -> 0.02
        # where Amazon says 0.01: Amazon's VAT is posted, not Xero's.
        tx(charge(ChargeKind.GIFT_WRAP, "0.01"), charge(ChargeKind.SHIPPING, "0.31", "0.05")),
    ]
    doc = build_document(rows, POSTING)
    assert doc.gross == Decimal("136.31") and doc.tax == Decimal("22.68")
    [saved] = post(xero, [doc])
    lines = lines_of(saved)
    assert lines[0][:4] == (
        "3 × Thermo flask 500 ml (SKU NX-THERMO)",
        Decimal("1.0000"),
        Decimal("83.32"),
        Decimal("83.32"),
    )
    assert lines[1][1:4] == (Decimal("3.0000"), Decimal("10.00"), Decimal("30.00"))
    assert lines[2][3:5] == (Decimal("0.01"), Decimal("0.00"))
    assert lines[3][3:5] == (Decimal("0.30"), Decimal("0.01"))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [tx(item("12.00")), tx(item("12.00"), currency="EUR")],
            "Order 202-1000000-0000001: the rows of GB-AEU-2026-1 mix currencies EUR and GBP",
        ),
        (
            [tx(Charge(ChargeKind.ITEM, Decimal("10.00"), Decimal("2.00"), Decimal("12.01"),
                       Decimal("0.20")))],
            "net 10.00 plus VAT 2.00 does not make the total 12.01",
        ),
        (
            [tx(Charge(ChargeKind.ITEM, Decimal("10.005"), Decimal("2.00"), Decimal("12.005"),
                       Decimal("0.20")))],
            "vat-2026-03.txt, line 2\\), item: 10.005 is not a whole number of cents",
        ),
        (
            [tx(Charge(ChargeKind.ITEM, Decimal("10.00"), Decimal("2.00"), Decimal("12.00"),
                       Decimal("0")))],
            "VAT of 2.00 at a 0% rate",
        ),
        (
            [refund(item("5.00"), order_id="202-1"), refund(item("5.00"), order_id="202-2")],
            "several orders \\(202-1, 202-2\\)",
        ),
    ],
)  # fmt: skip
def test_inconsistent_rows_are_bad_data(rows: list[Transaction], message: str) -> None:
    with pytest.raises(ServiceError, match=message) as error:
        build_document(rows, POSTING)
    assert error.value.kind == ErrorKind.BAD_DATA
    assert not error.value.retryable


def test_a_bad_charge_is_named_in_each_row_that_has_it() -> None:
    """Rows share their charges and each is checked once: the message is still the row's."""
    bad = Charge(ChargeKind.ITEM, Decimal("10.00"), Decimal("2.00"), Decimal("12.01"), CENT)
    for order, line in (("202-1", 2), ("202-2", 9), ("202-1", 2)):
        row = tx(bad, order_id=order, source=SourceRef("vat-2026-03.txt", line))
        with pytest.raises(
            ServiceError, match=f"^Order {order} \\(vat-2026-03.txt, line {line}\\)"
        ):
            build_document([row], POSTING)


def test_zero_charges_are_left_out_unless_nothing_else_is_left() -> None:
    zero_shipping = charge(ChargeKind.SHIPPING, "0.00")
    doc = build_document([tx(item("12.00"), zero_shipping)], POSTING)
    assert [line.description for line in doc.lines] == ["Thermo flask 500 ml (SKU NX-THERMO)"]
    replacement = build_document([tx(item("0.00"), zero_shipping)], POSTING)
    assert [(line.description, line.net) for line in replacement.lines] == [
        ("Thermo flask 500 ml (SKU NX-THERMO)", Decimal("0.00"))
    ]


def test_facilitator_tax_is_a_line_of_its_own_without_tax(xero: Xero) -> None:
    sale = tx(
        item("10.83", "0.0825"),
        charge(ChargeKind.SHIPPING, "5.41", "0.0825"),
        marketplace="amazon.com",
        order_id="111-4000000-0000005",
        invoice_number=None,
        activity_id="US1",
        currency="USD",
        tax_country="US",
        scheme=TaxScheme.FACILITATOR,
    )
    doc = build_document([sale], POSTING)
    assert tax_keys(doc) == {TaxKey("US", Decimal(0), TaxScheme.FACILITATOR)}
    assert (doc.gross, doc.tax, doc.collected_by_amazon) == (
        Decimal("16.24"),
        Decimal("0.00"),
        Decimal("1.24"),
    )
    [saved] = post(xero, [doc])
    assert [(line[0], line[3]) for line in lines_of(saved)] == [
        ("Thermo flask 500 ml (SKU NX-THERMO)", Decimal("10.00")),
        ("Shipping", Decimal("5.00")),
        (FACILITATOR_LINE, Decimal("1.24")),
    ]
    assert {line["TaxType"] for line in saved["LineItems"]} == {"NONE"}
    assert saved["Contact"]["Name"] == "Amazon US customers"


# --- contacts -------------------------------------------------------------------------------------


def test_two_buyers_of_one_name_are_two_contacts(xero: Xero) -> None:
    sandbox, client = xero
    berlin = contact_for(tx(item("1.00"), buyer=ANNA_BERLIN))
    hamburg = contact_for(tx(item("1.00"), buyer=ANNA_HAMBURG))
    assert berlin.key != hamburg.key
    assert berlin.key.startswith("buyer:") and berlin.tax_number is None
    assert contact_name(berlin, 0) == contact_name(hamburg, 0) == "Anna Schmidt"
    assert contact_name(berlin, 1) == "Anna Schmidt (Berlin 10115)"
    assert contact_name(hamburg, 1) == "Anna Schmidt (Hamburg 20095)"

    berlin_id, berlin_name = create_contact(client, berlin)
    hamburg_id, hamburg_name = create_contact(client, hamburg)
    assert (berlin_name, hamburg_name) == ("Anna Schmidt", "Anna Schmidt (Hamburg 20095)")
    assert berlin_id != hamburg_id
    assert len(sandbox.documents("Contacts")) == 2


def test_one_buyer_written_differently_is_one_contact() -> None:
    again = Buyer("  anna  SCHMIDT ", None, None, "Invalidenstr. 12", "Berlin", "101 15", "de")
    assert contact_for(tx(item("1.00"), buyer=ANNA_BERLIN)).key == (
        contact_for(refund(item("1.00"), buyer=again)).key
    )
    company = contact_for(tx(item("1.00"), buyer=FRENCH_COMPANY))
    renamed = replace(FRENCH_COMPANY, name="Brulerie Lumiere", vat_number="40 303 265 045")
    assert contact_for(tx(item("1.00"), buyer=renamed)).key == company.key == "vat:FR40303265045"


def test_anonymous_buyers_share_one_contact_per_marketplace() -> None:
    def anonymous(marketplace: str | None) -> ContactSpec:
        return contact_for(tx(item("1.00"), marketplace=marketplace, buyer=Buyer(country="AT")))

    assert anonymous("amazon.de") == ContactSpec("anon:DE", "Amazon DE customers")
    assert anonymous("Amazon.de") == anonymous("www.amazon.de") == anonymous("amazon.de")
    assert anonymous("amazon.fr") == ContactSpec("anon:FR", "Amazon FR customers")
    assert anonymous("amazon.co.uk").name == "Amazon GB customers"
    assert anonymous(None) == ContactSpec("anon", "Amazon customers")
    assert contact_payload(anonymous("amazon.de"), "Amazon DE customers") == {
        "Name": "Amazon DE customers",
        "ContactNumber": "anon:DE",
    }


def test_an_invalid_vat_number_makes_a_consumer() -> None:
    named = contact_for(tx(item("1.00"), buyer=replace(ANNA_BERLIN, vat_number="DE136695977")))
    assert named.tax_number is None
    assert named == contact_for(tx(item("1.00"), buyer=ANNA_BERLIN))
    assert "TaxNumber" not in contact_payload(named, named.name)
    nameless = Buyer(vat_number="DE000", country="DE")
    assert contact_for(tx(item("1.00"), marketplace="amazon.de", buyer=nameless)).key == "anon:DE"
    british = Buyer("Northern Roast Ltd", "GB980780684", "GB", None, "York", None, "GB")
    assert contact_for(tx(item("1.00"), buyer=british)).key == "vat:GB980780684"


def test_names_for_later_attempts_are_distinct_and_fit() -> None:
    berlin = contact_for(tx(item("1.00"), buyer=ANNA_BERLIN))
    names = [contact_name(berlin, attempt) for attempt in range(5)]
    assert len(set(names)) == 5
    assert names == [contact_name(berlin, attempt) for attempt in range(5)]
    tag = names[2].rsplit("[", 1)[1]
    assert names[2] == f"Anna Schmidt (Berlin 10115) [{tag}"
    assert names[3] == f"Anna Schmidt (Berlin 10115) [{tag[:-1]}-2]"
    vat_only = contact_for(tx(item("1.00"), buyer=Buyer(vat_number="FR40303265045")))
    assert contact_name(vat_only, 0) == "FR40303265045"
    assert contact_name(vat_only, 1).startswith("FR40303265045 [")
    anonymous = ContactSpec("anon:DE", "Amazon DE customers")
    assert contact_name(anonymous, 1).startswith("Amazon DE customers [")
    long = ContactSpec("buyer:1", "X" * 300, city="Berlin")
    assert all(len(contact_name(long, a)) == CONTACT_NAME_MAX for a in range(4))
    assert contact_name(long, 1).endswith(" (Berlin)")
    with pytest.raises(ValueError):
        contact_name(berlin, -1)


# --- what real files need (issue 8) -------------------------------------------------------------


def no_vat_sale(gross: str, **fields: Any) -> Transaction:
    """A German sale of a seller without Amazon's VAT calculation: the VAT-inclusive amount only."""
    amount = Decimal(gross)
    row = {
        "marketplace": "amazon.de",
        "currency": "EUR",
        "invoice_number": None,
        "tax_country": "DE",
        "amazon_vat": False,
    }
    return tx(
        Charge(ChargeKind.ITEM, amount, Decimal("0.00"), amount, Decimal(0)), **(row | fields)
    )


def test_without_amazons_vat_the_sellers_own_rate_is_used_inclusive_of_vat(xero: Xero) -> None:
    posting = replace(POSTING, vat_rates={"DE:domestic": "19"})
    doc = build_document([no_vat_sale("215.00")], posting)

    assert doc.tax_inclusive and doc.gross == Decimal("215.00")
    assert tax_keys(doc) == {TaxKey("DE", Decimal(19), TaxScheme.DOMESTIC)}
    [saved] = post(xero, [doc])  # post() checks Xero's Total against Amazon's gross
    assert saved["LineAmountTypes"] == "Inclusive"
    assert (saved["Total"], saved["TotalTax"]) == (Decimal("215.00"), Decimal("34.33"))


def test_without_amazons_vat_and_no_rate_set_the_document_says_which_rate_it_needs() -> None:
    with pytest.raises(ServiceError) as raised:
        build_document([no_vat_sale("215.00")], POSTING)

    assert "needs a VAT rate for DE domestic sales" in raised.value.message
    assert raised.value.retryable  # setting the rate and retrying posts it
    assert transaction_tax_keys(no_vat_sale("215.00"), POSTING) == set()  # no rate is made


def test_a_rate_the_country_did_not_have_fails_the_document_not_a_new_tax_rate() -> None:
    austrian = tx(item("23.00", "0.23"), tax_country="AT", scheme=TaxScheme.OSS, currency="EUR")

    with pytest.raises(ServiceError) as raised:
        build_document([austrian], POSTING)

    message = raised.value.message
    assert "taxed in Austria at 23%, a rate Austria did not have on 2026-03-02" in message
    assert "AT:23:oss" in message
    assert transaction_tax_keys(austrian, POSTING) == set()
    # A tax override is the user saying the rate is right.
    overridden = replace(POSTING, tax_overrides={"AT:23:oss": "OUTPUT2"})
    assert build_document([austrian], overridden).gross == Decimal("23.00")
    # Germany's temporary 16% of the second half of 2020 existed then, and not after.
    german = tx(item("11.60", "0.16"), tax_country="DE", date=date(2020, 12, 31))
    assert build_document([german], POSTING).tax == Decimal("1.60")
    with pytest.raises(ServiceError):
        build_document([replace(german, date=date(2021, 1, 1))], POSTING)


def test_text_that_a_spreadsheet_would_run_is_neutralised_and_long_text_is_cut() -> None:
    buyer = Buyer('=HYPERLINK("http://x.example","Anna")', None, None, "@SUM(A1)", "-Berlin")
    sale = tx(item("12.00"), description="+" + "x" * 5000, buyer=buyer)

    doc = build_document([sale], POSTING)
    payload = document_payload(
        doc,
        contact_id="c",
        tax_types={TaxKey("GB", Decimal(20), TaxScheme.DOMESTIC): "OUTPUT2"},
        status="DRAFT",
    )
    contact = contact_payload(doc.contact, contact_name(doc.contact, 0))

    description = payload["LineItems"][0]["Description"]
    assert description.startswith("'+x") and description.endswith("…")
    assert len(description) == 4000
    assert contact["Name"].startswith("'=HYPERLINK")
    assert contact["Addresses"][0]["AddressLine1"] == "'@SUM(A1)"
    assert contact["Addresses"][0]["City"] == "'-Berlin"
    # The buyer's identity is Amazon's data, not what Xero shows.
    assert doc.contact.key == contact_for(replace(sale, description="x")).key


def test_a_refund_may_carry_the_rate_of_a_sale_before_a_rate_change() -> None:
    # Germany's 19% was 16% from July to December 2020: a July refund of a June sale is at 19%.
    june_sale_refund = refund(
        item("11.90", "0.19"), tax_country="DE", currency="EUR", date=date(2020, 7, 15)
    )

    assert build_document([june_sale_refund], POSTING).gross == Decimal("11.90")
