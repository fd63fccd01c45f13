"""Report rows as the ledger stores them: a transaction as JSON and back, and its content key.

The content key must never change for a row already recorded: a month read again after an
upgrade would otherwise record its rows twice.

Every row passes through here twice (recorded, then read back to post), so each step is kept
to what it must do: no enum calls, no repeated Decimal parsing of the same figures.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import date
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from services.transactions import (
    CHARGE_KIND_BY_VALUE,
    SCHEME_BY_VALUE,
    Buyer,
    Charge,
    SourceRef,
    Transaction,
)


def transaction_to_json(transaction: Transaction) -> dict[str, Any]:
    buyer = transaction.buyer
    # str() of a StrEnum member is its value, without Enum.value's descriptor.
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
            [str(c.kind), str(c.net), str(c.tax), str(c.gross), str(c.rate)]
            for c in transaction.charges
        ],
        "tax_country": transaction.tax_country,
        "scheme": str(transaction.scheme),
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
    # Written only when False, so rows recorded before the field existed keep their content keys.
    if not transaction.amazon_vat:
        payload["amazon_vat"] = False
    return payload


def transaction_from_json(data: dict[str, Any]) -> Transaction:
    file, line = data["source"]
    return Transaction(
        source=SourceRef(file, line),
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
        charges=tuple([_charge(*charge) for charge in data["charges"]]),
        tax_country=data["tax_country"],
        scheme=SCHEME_BY_VALUE[data["scheme"]],
        buyer=_buyer(*data["buyer"]),
        amazon_vat=data.get("amazon_vat", True),  # rows recorded before the field existed
    )


# A product's price, its shipping and zeros come back row after row, and an order's rows name
# one buyer: each is made once from its stored texts (exact: keyed by the texts themselves), in
# caches of bounded size. Both are immutable, so rows may share them.
@functools.lru_cache(maxsize=4096)
def _charge(kind: str, net: str, tax: str, gross: str, rate: str) -> Charge:
    return Charge(
        CHARGE_KIND_BY_VALUE[kind], Decimal(net), Decimal(tax), Decimal(gross), Decimal(rate)
    )


_buyer = functools.lru_cache(maxsize=4096)(Buyer)


def _content_json(payload: dict[str, Any]) -> str:
    """`json.dumps(payload without "source", sort_keys=True)` written out for the payload
    transaction_to_json makes (the two change together), at about a third of json.dumps's
    cost: the content key hashes exactly these bytes. Strings go through json's own escaping
    (ensure_ascii), None is null; dates, schemes, charge kinds and str(Decimal) are ASCII
    letters, digits and signs that need none."""
    text = encode_basestring_ascii
    charges = ", ".join(
        [
            f'["{kind}", "{net}", "{tax}", "{gross}", "{rate}"]'
            for kind, net, tax, gross, rate in payload["charges"]
        ]
    )
    buyer = ", ".join(["null" if value is None else text(value) for value in payload["buyer"]])
    amazon_vat = '"amazon_vat": false, ' if "amazon_vat" in payload else ""
    description, invoice, marketplace, sku, country = (
        payload["description"],
        payload["invoice_number"],
        payload["marketplace"],
        payload["sku"],
        payload["tax_country"],
    )
    return (
        f'{{"activity_id": {text(payload["activity_id"])}, {amazon_vat}"buyer": [{buyer}], '
        f'"charges": [{charges}], "currency": {text(payload["currency"])}, '
        f'"date": "{payload["date"]}", '
        f'"description": {"null" if description is None else text(description)}, '
        f'"invoice_number": {"null" if invoice is None else text(invoice)}, '
        f'"marketplace": {"null" if marketplace is None else text(marketplace)}, '
        f'"order_id": {text(payload["order_id"])}, "quantity": {payload["quantity"]}, '
        f'"scheme": "{payload["scheme"]}", "sku": {"null" if sku is None else text(sku)}, '
        f'"tax_country": {"null" if country is None else text(country)}, '
        f'"type": {text(payload["type"])}}}'
    )


class RowKeys:
    """Content keys for report rows: the same row gives the same key in any report.

    Two identical rows inside one report are two real transactions (two units of one SKU
    refunded together), so each repeat gets its occurrence number. Amazon lists the rows of
    one order together, so counting consecutive repeats is enough and keeps memory constant.
    """

    def __init__(self) -> None:
        self._last = ""
        self._repeat = 0

    def __call__(self, payload: dict[str, Any]) -> str:
        digest = hashlib.sha256(_content_json(payload).encode()).hexdigest()
        self._repeat = self._repeat + 1 if digest == self._last else 0
        self._last = digest
        if self._repeat == 0:
            return digest
        return hashlib.sha256(f"{digest}#{self._repeat}".encode()).hexdigest()
