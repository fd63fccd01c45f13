"""The row codec against the code it replaced, kept here as the reference: a row's content key
must be byte for byte what earlier versions recorded (else a month read again after an upgrade
records its rows twice), and the JSON stored per row must read both ways (rows already in a
database still load; rows written now load with the earlier reader)."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.reports import parse_report
from services.row_codec import RowEncoder, transaction_from_json
from services.transactions import (
    Buyer,
    Charge,
    ChargeKind,
    SourceRef,
    TaxScheme,
    Transaction,
    TransactionType,
)
from tests.strategies import months, render

# --- the reference: services/row_codec.py as it was when content keys were first recorded ----


def reference_to_json(transaction: Transaction) -> dict[str, Any]:
    buyer = transaction.buyer
    payload = {
        "source": [transaction.source.file, transaction.source.line],
        "type": transaction.type,
        "marketplace": transaction.marketplace,
        "order_id": transaction.order_id,
        "activity_id": transaction.activity_id,
        "invoice_number": transaction.invoice_number,
        "date": transaction.date.isoformat(),
        "currency": transaction.currency,
        "sku": transaction.sku,
        "description": transaction.description,
        "quantity": transaction.quantity,
        "charges": [
            [c.kind.value, str(c.net), str(c.tax), str(c.gross), str(c.rate)]
            for c in transaction.charges
        ],
        "tax_country": transaction.tax_country,
        "scheme": transaction.scheme.value,
        "buyer": [
            buyer.name,
            buyer.vat_number,
            buyer.vat_country,
            buyer.address,
            buyer.city,
            buyer.postcode,
            buyer.country,
        ],
    }
    if not transaction.amazon_vat:
        payload["amazon_vat"] = False
    return payload


def reference_from_json(data: dict[str, Any]) -> Transaction:
    return Transaction(
        source=SourceRef(data["source"][0], data["source"][1]),
        type=data["type"],
        marketplace=data["marketplace"],
        order_id=data["order_id"],
        activity_id=data["activity_id"],
        invoice_number=data["invoice_number"],
        date=date.fromisoformat(data["date"]),
        currency=data["currency"],
        sku=data["sku"],
        description=data["description"],
        quantity=data["quantity"],
        charges=tuple(
            Charge(ChargeKind(kind), Decimal(net), Decimal(tax), Decimal(gross), Decimal(rate))
            for kind, net, tax, gross, rate in data["charges"]
        ),
        tax_country=data["tax_country"],
        scheme=TaxScheme(data["scheme"]),
        buyer=Buyer(*data["buyer"]),
        amazon_vat=data.get("amazon_vat", True),
    )


class ReferenceRowKeys:
    def __init__(self) -> None:
        self._last = ""
        self._repeat = 0

    def __call__(self, payload: dict[str, Any]) -> str:
        content = {key: value for key, value in payload.items() if key != "source"}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        self._repeat = self._repeat + 1 if digest == self._last else 0
        self._last = digest
        if self._repeat == 0:
            return digest
        return hashlib.sha256(f"{digest}#{self._repeat}".encode()).hexdigest()


# --- transactions of any shape the types allow ------------------------------------------------

# Any code point, lone surrogates and control characters included: json escapes them all.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
OPTIONAL_TEXT = st.none() | TEXT
# Any Decimal, in any representation: 1.0 and 1.00 are different rows, as are NaN and sNaN.
AMOUNTS = st.decimals() | st.sampled_from(
    [Decimal("0.00"), Decimal("-0.00"), Decimal("1E+2"), Decimal("0.190"), Decimal("sNaN")]
)


charges = st.builds(Charge, st.sampled_from(ChargeKind), AMOUNTS, AMOUNTS, AMOUNTS, AMOUNTS)
transactions = st.builds(
    Transaction,
    source=st.builds(SourceRef, TEXT, st.integers(0, 10**7)),
    type=st.sampled_from([t.value for t in TransactionType]) | TEXT,
    marketplace=OPTIONAL_TEXT,
    order_id=TEXT,
    activity_id=TEXT,
    invoice_number=OPTIONAL_TEXT,
    date=st.dates(),
    currency=TEXT,
    sku=OPTIONAL_TEXT,
    description=OPTIONAL_TEXT,
    quantity=st.integers(-(10**12), 10**12),
    charges=st.lists(charges, max_size=6).map(tuple),
    tax_country=OPTIONAL_TEXT,
    scheme=st.sampled_from(TaxScheme),
    buyer=st.builds(Buyer, *[OPTIONAL_TEXT] * 7),
    amazon_vat=st.booleans(),
)
# Runs of one row repeated (two units refunded together are two identical rows).
report_rows = st.lists(st.tuples(transactions, st.integers(1, 3)), max_size=6).map(
    lambda runs: [row for row, times in runs for _ in range(times)]
)


def assert_like_the_reference(rows: list[Transaction]) -> None:
    encode, reference_keys = RowEncoder(), ReferenceRowKeys()
    for row in rows:
        stored, reference = encode(row), reference_to_json(row)
        # The date, then the first half of the digest the first versions recorded whole
        # (migration 0010 turned those into these).
        assert stored.key == as_migrated(reference["date"], reference_keys(reference))
        # The JSON stored is the reference's payload, as the database gives it back ...
        payload = json.loads(stored.payload)
        assert payload == json.loads(json.dumps(reference))
        # ... and read by the earlier reader and by this one, it is the same row.
        for read in (transaction_from_json(payload), reference_from_json(payload)):
            # Exact: each figure in its own representation (1.0 is not 1.00), enums as enums.
            assert reference_to_json(read) == reference


@settings(max_examples=200, deadline=None)
@given(rows=report_rows)
def test_any_row_keeps_its_content_key_and_its_stored_form(rows: list[Transaction]) -> None:
    assert_like_the_reference(rows)


@settings(max_examples=15, deadline=None)
@given(month=months())
def test_a_generated_months_rows_keep_their_content_keys(month: Any) -> None:
    report = render(month, 1)
    for file in report.files():
        rows = parse_report(file.text().splitlines(), file_name=file.name)
        assert_like_the_reference([row for row in rows if isinstance(row, Transaction)])


# A row as the first versions stored it (before amazon_vat was written), with its key then.
STORED_BEFORE_AMAZON_VAT = {
    "source": ["vat-2024-05.txt", 7],
    "type": "SALE",
    "marketplace": "amazon.de",
    "order_id": "302-1234567-7654321",
    "activity_id": "Dz7qPk1Xz",
    "invoice_number": "DE-AEU-2024-0000042",
    "date": "2024-05-03",
    "currency": "EUR",
    "sku": "MUG-BLUE",
    "description": "Kaffeebecher „Blau“ 0,3 l",
    "quantity": 2,
    "charges": [
        ["item", "33.61", "6.39", "40.00", "0.19"],
        ["shipping", "0.00", "0.00", "0.00", "0"],
    ],
    "tax_country": "DE",
    "scheme": "domestic",
    "buyer": ["Zoë Müller", None, None, "Invalidenstraße 12", "Berlin", "10115", "DE"],
}
KEY_RECORDED = (
    "f57f6f325d33ce353bc01b54595c513460703a18c2164a3d70aea362c389f00a"  # by the reference
)


def as_migrated(day: str, recorded_key: str) -> str:
    """What migration 0010 makes of a key recorded before it, as its SQL does."""
    return day.replace("-", "") + recorded_key[:32]


def test_a_row_stored_by_an_earlier_version_loads_and_keeps_its_key() -> None:
    row = transaction_from_json(STORED_BEFORE_AMAZON_VAT)
    assert row == reference_from_json(STORED_BEFORE_AMAZON_VAT)
    assert row.amazon_vat and row.charges[0].gross == Decimal("40.00")
    encode = RowEncoder()
    stored = encode(row)
    assert (
        stored.key
        == as_migrated("2024-05-03", KEY_RECORDED)
        == ("20240503f57f6f325d33ce353bc01b54595c5134")
    )
    assert json.loads(stored.payload) == STORED_BEFORE_AMAZON_VAT
    repeat = hashlib.sha256(f"{KEY_RECORDED}#1".encode()).hexdigest()
    assert encode(row).key == as_migrated("2024-05-03", repeat)
