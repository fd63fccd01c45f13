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
from typing import Any, NamedTuple

from services.ledger_rows import EncodedJSON
from services.transactions import (
    CHARGE_KIND_BY_VALUE,
    SCHEME_BY_VALUE,
    Buyer,
    Charge,
    SourceRef,
    Transaction,
)


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


def _content_json(transaction: Transaction) -> str:
    """`json.dumps(payload, sort_keys=True)` of the row's content, the payload without its
    "source", as the first versions wrote the payload (tests/test_row_codec.py keeps that code
    as the reference), written out at a fraction of json.dumps's cost: the content key hashes
    exactly these bytes. Strings go through json's own escaping (ensure_ascii), None is null;
    dates, schemes, charge kinds and str(Decimal) are ASCII letters, digits and signs that
    need none. `amazon_vat` is written only when False, so that rows recorded before the
    field existed keep their keys."""
    text = encode_basestring_ascii
    charges = ", ".join(
        [
            f'["{c.kind}", "{c.net}", "{c.tax}", "{c.gross}", "{c.rate}"]'
            for c in transaction.charges
        ]
    )
    b = transaction.buyer
    buyer = ", ".join(
        [
            "null" if value is None else text(value)
            for value in (
                b.name,
                b.vat_number,
                b.vat_country,
                b.address,
                b.city,
                b.postcode,
                b.country,
            )
        ]
    )
    t = transaction
    amazon_vat = "" if t.amazon_vat else '"amazon_vat": false, '
    return (
        f'{{"activity_id": {text(t.activity_id)}, {amazon_vat}"buyer": [{buyer}], '
        f'"charges": [{charges}], "currency": {text(t.currency)}, '
        f'"date": "{t.date.isoformat()}", '
        f'"description": {"null" if t.description is None else text(t.description)}, '
        f'"invoice_number": {"null" if t.invoice_number is None else text(t.invoice_number)}, '
        f'"marketplace": {"null" if t.marketplace is None else text(t.marketplace)}, '
        f'"order_id": {text(t.order_id)}, "quantity": {t.quantity}, '
        f'"scheme": "{t.scheme}", "sku": {"null" if t.sku is None else text(t.sku)}, '
        f'"tax_country": {"null" if t.tax_country is None else text(t.tax_country)}, '
        f'"type": {text(t.type)}}}'
    )


def row_key(day: str, digest: str) -> str:
    """The row's date (YYYYMMDD, from its ISO form) and the first half of its content digest:
    a report's keys then reach the unique index in about the order it keeps them, where a
    random key dirtied a page of it per row (a third of ingest's time at 300k rows on SQLite).
    128 bits of digest keep rows of one day apart. Migration 0010 turned the keys recorded
    before into these, from each row's stored date."""
    return day.replace("-", "") + digest[:32]


class StoredRow(NamedTuple):
    key: str  # the content key, unique per integration
    payload: EncodedJSON  # what transaction_from_json reads back


class RowEncoder:
    """Report rows as the ledger stores them: the same row gives the same key in any report,
    and its JSON is the content the key hashes with the row's place in its file in front.

    Two identical rows inside one report are two real transactions (two units of one SKU
    refunded together), so each repeat gets its occurrence number. Amazon lists the rows of
    one order together, so counting consecutive repeats is enough and keeps memory constant.
    """

    def __init__(self) -> None:
        self._last = ""
        self._repeat = 0

    def __call__(self, transaction: Transaction) -> StoredRow:
        content = _content_json(transaction)
        digest = hashlib.sha256(content.encode()).hexdigest()
        self._repeat = self._repeat + 1 if digest == self._last else 0
        self._last = digest
        if self._repeat:
            digest = hashlib.sha256(f"{digest}#{self._repeat}".encode()).hexdigest()
        source = transaction.source
        return StoredRow(
            row_key(transaction.date.isoformat(), digest),
            EncodedJSON(
                f'{{"source": [{encode_basestring_ascii(source.file)}, {source.line}], '
                + content[1:]
            ),
        )
