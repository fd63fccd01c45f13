"""`import-report --dry-run`: every payload an import would send, without calling anything.

Payloads come in the order posting sends them: contacts, then invoices, then credit notes. A
document needs all of its rows and a report may list them anywhere, so the rows are staged by
document in a private temporary SQLite database (deleted when closed) and read back one
document at a time: memory stays flat from ten thousand rows to a million. What is staged is a
marshalled tuple of plain values, several times faster to write and read than a pickle.
"""

from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from services.documents import (
    ContactSpec,
    Document,
    TaxKey,
    build_document,
    contact_name,
    contact_payload,
    document_key,
    document_number,
    document_payload,
    tax_keys,
)
from services.errors import ServiceError
from services.models import DocumentKind, Integration
from services.posting_rules import document_label, posting_settings, posting_verdict
from services.report_files import read_report_file
from services.reports import parse_report
from services.transactions import (
    Buyer,
    Charge,
    ChargeKind,
    RowError,
    SourceRef,
    TaxScheme,
    Transaction,
)

STAGING_BATCH = 1000  # rows written to the staging database at a time
STAGING_CACHE_KIB = 8192  # its page cache; the rest of it lives in a temporary file


def dry_run(integration: Integration, path: Path) -> Iterator[dict[str, Any]]:
    """Every payload an import would send, in order, without calling anything.

    What would fail comes as {"_error": message} instead: unreadable rows first, in file order,
    then documents that may not be posted or do not add up, in the order of their first rows.
    Tax types come from the last run's map and the overrides; a rate the organisation does not
    have yet shows as "<new tax rate for DE:19:domestic>".
    """
    posting = posting_settings(integration)
    tax_types = dict(integration.xero_tax_types) | dict(integration.tax_overrides)
    known: dict[TaxKey, str] = {}  # the tax type shown for each tax key met so far
    with closing(_Staging(path.name)) as staging:
        for item in parse_report(read_report_file(path), file_name=path.name):
            if isinstance(item, RowError):
                yield {"_error": item.describe()}
                if item.order_id:
                    staging.add_unreadable(item.order_id, item.describe())
            elif key := document_key(item):
                staging.add_row(key, item)
        staging.group()
        for key, rows, unreadable, shared in staging.documents():
            order, number = rows[0].order_id, document_number(rows[0])
            label = document_label(
                DocumentKind.INVOICE if key.startswith("INV:") else DocumentKind.CREDIT_NOTE
            )
            others = staging.other_orders(key, number) if shared else []
            verdict = posting_verdict(order, label, number, unreadable, others)
            if verdict is not None:
                yield {"_error": verdict.message}
                continue
            try:
                doc = build_document(rows, posting)
            except ServiceError as error:
                yield {"_error": error.message}
                continue
            for tax_key in tax_keys(doc):
                if tax_key not in known:
                    text = str(tax_key)
                    known[tax_key] = tax_types.get(text, f"<new tax rate for {text}>")
            payload = document_payload(
                doc, contact_id="", tax_types=known, status=posting.invoice_status.value
            )
            staging.add_document(doc, payload)
        # A refund's contact is its order's, as when posting.
        staging.give_refunds_their_orders_contacts()
        for spec in staging.contacts():
            yield {"_endpoint": "Contacts", **contact_payload(spec, contact_name(spec, 0))}
        for kind, endpoint in (
            (DocumentKind.INVOICE, "Invoices"),
            (DocumentKind.CREDIT_NOTE, "CreditNotes"),
        ):
            for payload, contact in staging.built(kind):
                payload["Contact"] = {"Name": contact_name(contact, 0)}
                yield {"_endpoint": endpoint, **payload}


_SCHEMA = """
CREATE TABLE rows (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL, order_id TEXT NOT NULL, number TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE unreadable (order_id TEXT PRIMARY KEY, message TEXT NOT NULL);
CREATE TABLE documents (
    first INTEGER PRIMARY KEY, key TEXT NOT NULL, order_id TEXT NOT NULL, holder TEXT NOT NULL
);
CREATE TABLE built (
    seq INTEGER PRIMARY KEY, invoice INTEGER NOT NULL, order_id TEXT NOT NULL,
    contact_key TEXT NOT NULL, contact BLOB NOT NULL, payload BLOB NOT NULL
);
"""
# One row per document, numbered by its first row, whose order and number are the document's;
# `holder` is what two documents may not share: the kind and the number.
_GROUP = (
    "CREATE INDEX rows_by_key ON rows (key, seq)",
    "INSERT INTO documents"
    " SELECT min(seq), key, order_id, substr(key, 1, 3) || number FROM rows GROUP BY key",
    "CREATE INDEX documents_by_holder ON documents (holder)",
)
_DOCUMENT_ROWS = """
SELECT d.first, d.key, u.message,
       (SELECT count(*) FROM documents AS o WHERE o.holder = d.holder) > 1,
       r.data
FROM documents AS d
JOIN rows AS r ON r.key = d.key
LEFT JOIN unreadable AS u ON u.order_id = d.order_id
ORDER BY d.first, r.seq
"""
# The last invoice of an order gives its refunds their contact.
_REFUND_CONTACTS = """
UPDATE built SET contact_key = invoice.contact_key, contact = invoice.contact
FROM (
    SELECT order_id, contact_key, contact, max(seq) FROM built WHERE invoice GROUP BY order_id
) AS invoice
WHERE NOT built.invoice AND built.order_id = invoice.order_id
"""
# Each contact once, where it first appears, as its last document has it.
_CONTACTS = """
SELECT b.contact
FROM (SELECT min(seq) AS first, max(seq) AS last FROM built GROUP BY contact_key) AS c
JOIN built AS b ON b.seq = c.last
ORDER BY c.first
"""


class _Staging:
    """The rows of a report by document, then the documents built from them, on disk."""

    def __init__(self, file_name: str) -> None:
        self._file = file_name
        # "": a private database in a temporary file, removed when the connection closes.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            f"PRAGMA cache_size = -{STAGING_CACHE_KIB};" + _SCHEMA
        )
        self._db.execute("BEGIN")  # one transaction: nothing here needs to survive a crash
        self._rows: list[tuple[int, str, str, str, bytes]] = []
        self._seq = 0
        self._document: int | None = None  # the first row of the document being built

    def close(self) -> None:
        self._db.close()

    def add_row(self, key: str, t: Transaction) -> None:
        self._seq += 1
        self._rows.append((self._seq, key, t.order_id, document_number(t), _pack_transaction(t)))
        if len(self._rows) >= STAGING_BATCH:
            self._flush()

    def add_unreadable(self, order_id: str, message: str) -> None:
        # The first unreadable row of an order is the one its documents' errors name.
        self._db.execute("INSERT OR IGNORE INTO unreadable VALUES (?, ?)", (order_id, message))

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?)", self._rows)
        self._rows.clear()

    def group(self) -> None:
        self._flush()
        for statement in _GROUP:  # not executescript(), which would end the transaction
            self._db.execute(statement)

    def documents(self) -> Iterator[tuple[str, list[Transaction], str | None, bool]]:
        """Each document's key, its rows, the unreadable row of its order if any, and whether
        another document has its number; in the order of their first rows."""
        cursor = self._db.execute(_DOCUMENT_ROWS)
        for first, group in groupby(cursor, key=itemgetter(0)):
            rows = list(group)
            _, key, unreadable, shared, _ = rows[0]
            self._document = first
            transactions = [_unpack_transaction(row[4], self._file) for row in rows]
            yield key, transactions, unreadable, bool(shared)

    def other_orders(self, key: str, number: str) -> list[str]:
        """The orders of the other documents numbered like this one."""
        found = self._db.execute(
            "SELECT DISTINCT order_id FROM documents WHERE holder = ? AND key != ?",
            (key[:3] + number, key),
        )
        return sorted(order for (order,) in found)

    def add_document(self, doc: Document, payload: dict[str, Any]) -> None:
        """The document built from the rows `documents()` gave last, and its payload."""
        self._db.execute(
            "INSERT INTO built VALUES (?, ?, ?, ?, ?, ?)",
            (
                self._document,
                doc.kind == DocumentKind.INVOICE,
                doc.order_id,
                doc.contact.key,
                _pack_contact(doc.contact),
                marshal.dumps(_freeze(payload)),
            ),
        )

    def give_refunds_their_orders_contacts(self) -> None:
        self._db.execute(_REFUND_CONTACTS)

    def contacts(self) -> Iterator[ContactSpec]:
        for (contact,) in self._db.execute(_CONTACTS):
            yield _unpack_contact(contact)

    def built(self, kind: DocumentKind) -> Iterator[tuple[dict[str, Any], ContactSpec]]:
        """The payloads of that kind, in the order of their documents' first rows, and the
        contacts they go to."""
        found = self._db.execute(
            "SELECT payload, contact FROM built WHERE invoice = ? ORDER BY seq",
            (kind == DocumentKind.INVOICE,),
        )
        for payload, contact in found:
            yield _thaw(marshal.loads(payload)), _unpack_contact(contact)


# --- staged values: tuples of str, int, bool and None, Decimals as their exact text -----------

_CHARGE_KINDS = {kind.value: kind for kind in ChargeKind}
_SCHEMES = {scheme.value: scheme for scheme in TaxScheme}


def _pack_transaction(t: Transaction) -> bytes:
    b = t.buyer
    return marshal.dumps(
        (
            t.source.line,
            str(t.type),
            t.marketplace,
            t.order_id,
            t.activity_id,
            t.invoice_number,
            t.date.toordinal(),
            t.currency,
            t.sku,
            t.description,
            t.quantity,
            tuple(
                (c.kind.value, str(c.net), str(c.tax), str(c.gross), str(c.rate)) for c in t.charges
            ),
            t.tax_country,
            t.scheme.value,
            (b.name, b.vat_number, b.vat_country, b.address, b.city, b.postcode, b.country),
            t.amazon_vat,
        )
    )


def _unpack_transaction(data: bytes, file: str) -> Transaction:
    (
        line,
        kind,
        marketplace,
        order_id,
        activity_id,
        invoice_number,
        day,
        currency,
        sku,
        description,
        quantity,
        charges,
        tax_country,
        scheme,
        buyer,
        amazon_vat,
    ) = marshal.loads(data)
    return Transaction(
        source=SourceRef(file, line),
        type=kind,
        marketplace=marketplace,
        order_id=order_id,
        activity_id=activity_id,
        invoice_number=invoice_number,
        date=date.fromordinal(day),
        currency=currency,
        sku=sku,
        description=description,
        quantity=quantity,
        charges=tuple(
            Charge(_CHARGE_KINDS[c], Decimal(net), Decimal(tax), Decimal(gross), Decimal(rate))
            for c, net, tax, gross, rate in charges
        ),
        tax_country=tax_country,
        scheme=_SCHEMES[scheme],
        buyer=Buyer(*buyer),
        amazon_vat=amazon_vat,
    )


def _pack_contact(spec: ContactSpec) -> bytes:
    return marshal.dumps(
        (
            spec.key,
            spec.name,
            spec.tax_number,
            spec.address,
            spec.city,
            spec.postcode,
            spec.country,
        )
    )


def _unpack_contact(data: bytes) -> ContactSpec:
    return ContactSpec(*marshal.loads(data))


def _freeze(value: Any) -> Any:
    """A payload as marshal writes it: its Decimals as bytes, which payloads never hold."""
    kind = type(value)
    if kind is Decimal:
        return str(value).encode()
    if kind is dict:  # texts, most of a payload, are taken as they are without a call
        return {key: item if type(item) is str else _freeze(item) for key, item in value.items()}
    if kind is list:
        return [_freeze(item) for item in value]
    return value


def _thaw(value: Any) -> Any:
    kind = type(value)
    if kind is bytes:
        return Decimal(value.decode())
    if kind is dict:
        return {key: item if type(item) is str else _thaw(item) for key, item in value.items()}
    if kind is list:
        return [_thaw(item) for item in value]
    return value
