"""Report rows as the ledger stores them: a transaction as JSON and back, and its content key.

The content key must never change for a row already recorded: a month read again after an
upgrade would otherwise record its rows twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

from services.transactions import Buyer, Charge, ChargeKind, SourceRef, TaxScheme, Transaction


def transaction_to_json(transaction: Transaction) -> dict[str, Any]:
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
    # Written only when False, so rows recorded before the field existed keep their content keys.
    if not transaction.amazon_vat:
        payload["amazon_vat"] = False
    return payload


def transaction_from_json(data: dict[str, Any]) -> Transaction:
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
        amazon_vat=data.get("amazon_vat", True),  # rows recorded before the field existed
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
        content = {key: value for key, value in payload.items() if key != "source"}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        self._repeat = self._repeat + 1 if digest == self._last else 0
        self._last = digest
        if self._repeat == 0:
            return digest
        return hashlib.sha256(f"{digest}#{self._repeat}".encode()).hexdigest()
