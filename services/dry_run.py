"""`import-report --dry-run`: every payload an import would send, without calling anything.

Payloads come in the order posting sends them: contacts, then invoices, then credit notes; what
would fail comes first. So every document must be built before the first payload is shown, and
a million rows of them do not fit in memory: each document's payload is staged in a private
temporary SQLite database (deleted when closed) and read back in order. Memory stays flat from
ten thousand rows to a million.

A document is built as soon as its rows have been read, while they are in memory: Amazon lists
the rows of one document together. A report may list them apart; then the file is read a second
time for the rows of the documents found in several places only, which are staged, and those
documents are built again from all their rows. Staging every row instead cost a tenth of the
dry run's time for a case that is rare. Staged values are marshalled tuples of plain values,
several times faster to write and read than a pickle.
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
from typing import Any, NamedTuple

from services.documents import (
    ContactSpec,
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
from services.integrations import PostingSettings, posting_settings
from services.models import DocumentKind, Integration
from services.posting_rules import document_label, posting_verdict
from services.report_files import read_report_file
from services.reports import ReportKind, parse_report, report_kind
from services.settlement_ledger import BANK_TRANSACTION_KEYS, TRANSFER_KEY, payment_key
from services.settlement_plan import plan_settlement
from services.settlement_posting import (
    bank_transaction,
    clearing_name,
    line_coding,
    payment,
    reference,
    transfer,
)
from services.settlements import Settlement, read_settlement
from services.transactions import (
    CHARGE_KIND_BY_VALUE,
    SCHEME_BY_VALUE,
    Buyer,
    Charge,
    RowError,
    SourceRef,
    Transaction,
)
from services.xero import BankingEndpoint, Endpoint

STAGING_BATCH = 1000  # rows written to the staging database at a time
STAGING_CACHE_KIB = 8192  # its page cache; the rest of it lives in a temporary file


class WouldSend(NamedTuple):
    """A request body an import would send: one contact or document, as Xero takes it."""

    endpoint: Endpoint | BankingEndpoint
    payload: dict[str, Any]


class WouldFail(NamedTuple):
    """Something an import could not post, and why."""

    message: str


def dry_run(integration: Integration, path: Path) -> Iterator[WouldSend | WouldFail]:
    """Every payload an import would send, in order, without calling anything.

    What would fail comes as WouldFail instead: unreadable rows first, in file order, then
    documents that may not be posted or do not add up, in the order of their first rows.
    Tax types come from the last run's map and the overrides; a rate the organisation does not
    have yet shows as "<new tax rate for DE:19:domestic>".
    """
    builder = _Builder(
        posting_settings(integration),
        dict(integration.xero_tax_types) | dict(integration.tax_overrides),
    )
    with closing(_Staging(path.name)) as staging:
        rows: list[Transaction] = []  # the rows of one document, as long as they come together
        rows_key = ""
        seq = first = 0  # the place of a row among those of documents, and of a run's first
        for item in parse_report(read_report_file(path), file_name=path.name):
            if isinstance(item, RowError):
                yield WouldFail(item.describe())
                if item.order_id:
                    staging.add_unreadable(item.order_id, item.describe())
            elif key := document_key(item):
                seq += 1
                if key != rows_key:
                    if rows:
                        staging.add_document(first, builder.build(rows_key, rows))
                    rows, rows_key, first = [], key, seq
                rows.append(item)
        if rows:
            staging.add_document(first, builder.build(rows_key, rows))
        if staging.find_scattered():
            for item in parse_report(read_report_file(path), file_name=path.name):
                if isinstance(item, Transaction) and (key := document_key(item)):
                    staging.add_row_if_scattered(key, item)
            for first, key, all_rows in staging.scattered_documents():
                staging.replace_document(first, builder.build(key, all_rows))
        for doc in staging.documents():
            label = document_label(
                DocumentKind.INVOICE if doc.key.startswith("INV:") else DocumentKind.CREDIT_NOTE
            )
            others = staging.other_orders(doc.key, doc.number) if doc.shared else []
            verdict = posting_verdict(doc.order_id, label, doc.number, doc.unreadable, others)
            problem = verdict.message if verdict is not None else doc.error
            if problem is not None:
                yield WouldFail(problem)
                staging.withhold(doc.first)
        # A refund's contact is its order's, as when posting.
        staging.give_refunds_their_orders_contacts()
        for spec in staging.contacts():
            yield WouldSend("Contacts", contact_payload(spec, contact_name(spec, 0)))
        endpoints: tuple[tuple[DocumentKind, Endpoint], ...] = (
            (DocumentKind.INVOICE, "Invoices"),
            (DocumentKind.CREDIT_NOTE, "CreditNotes"),
        )
        for kind, endpoint in endpoints:
            for payload, name in staging.sent(kind):
                payload["Contact"] = {"Name": name}
                yield WouldSend(endpoint, payload)
    if report_kind(read_report_file(path), file_name=path.name) == ReportKind.SETTLEMENT_V2:
        try:
            settlement = read_settlement(read_report_file(path), file_name=path.name)
        except ServiceError as error:
            yield WouldFail(error.message)
        else:
            yield from _settlement(settlement, integration)


def _settlement(settlement: Settlement, integration: Integration) -> Iterator[WouldSend]:
    """A settlement's payments, bank transaction and payout, with what only Xero can say
    (the documents' and accounts' ids) shown in angle brackets."""
    plan, day = plan_settlement(settlement), settlement.deposit_date.date()
    sid, currency = settlement.settlement_id, settlement.currency
    chosen = (integration.clearing_accounts or {}).get(currency)
    clearing = f"<{clearing_name(currency) if chosen is None else f'account {chosen}'}>"
    for paid in plan.payments:
        document = f"<{'credit note' if paid.refund else 'invoice'} of order {paid.order_id}>"
        ref = reference(sid, payment_key(paid.transaction_type, paid.order_id))
        sent = payment(paid.refund, document, clearing, paid.amount, day, ref)
        yield WouldSend("Payments", sent.payload())
    for key, booked in zip(BANK_TRANSACTION_KEYS, plan.transactions(), strict=False):
        lines = [(str(line.kind), line.amount, line.descriptions) for line in booked]
        yield WouldSend(
            "BankTransactions",
            bank_transaction(
                lines, clearing, day, reference(sid, key), line_coding(integration)
            ).payload(),
        )
    if plan.payout:
        bank = f"<the bank account Amazon pays {currency} into>"
        ref = reference(sid, TRANSFER_KEY)
        yield WouldSend("BankTransfers", transfer(-plan.payout, clearing, bank, day, ref).payload())


class _Built(NamedTuple):
    """What the rows of one document make: its payload and contact, or why it cannot be."""

    key: str
    order_id: str
    number: str
    contact: ContactSpec | None
    payload: dict[str, Any] | None
    error: str | None


class _Builder:
    def __init__(self, posting: PostingSettings, tax_types: dict[str, str]) -> None:
        self._posting = posting
        self._tax_types = tax_types
        self._known: dict[TaxKey, str] = {}  # the tax type shown for each tax key met so far

    def build(self, key: str, rows: list[Transaction]) -> _Built:
        first = rows[0]
        number = document_number(first)
        try:
            doc = build_document(rows, self._posting)
        except ServiceError as error:
            return _Built(key, first.order_id, number, None, None, error.message)
        for tax_key in tax_keys(doc):
            if tax_key not in self._known:
                text = str(tax_key)
                self._known[tax_key] = self._tax_types.get(text, f"<new tax rate for {text}>")
        payload = document_payload(
            doc,
            contact_id="",
            tax_types=self._known,
            status=self._posting.invoice_status.value,
        )
        return _Built(key, first.order_id, number, doc.contact, payload, None)


class _Staged(NamedTuple):
    """A document as the verdicts need it: its first row, key, order and number, the
    unreadable row of its order if any, whether another document has its number, and why it
    could not be built, if it could not."""

    first: int
    key: str
    order_id: str
    number: str
    unreadable: str | None
    shared: bool
    error: str | None


_SCHEMA = """
-- The rows of the documents in `scattered`, by their document's first row.
CREATE TABLE rows (
    seq INTEGER PRIMARY KEY, first INTEGER NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL
);
CREATE TABLE unreadable (order_id TEXT PRIMARY KEY, message TEXT NOT NULL);
-- One per document, numbered by its first row; at first one per run of rows that came together.
-- `holder` is what two documents may not share: the kind and the number.
CREATE TABLE documents (
    first INTEGER PRIMARY KEY, key TEXT NOT NULL, order_id TEXT NOT NULL, number TEXT NOT NULL,
    holder TEXT NOT NULL, invoice INTEGER NOT NULL, error TEXT,
    contact_key TEXT, contact BLOB, contact_name TEXT
);
-- What each document would send, kept apart: the queries over documents never read through it.
CREATE TABLE payloads (first INTEGER PRIMARY KEY, payload BLOB NOT NULL);
-- The documents whose rows came in more than one run.
CREATE TABLE scattered (key TEXT PRIMARY KEY, first INTEGER NOT NULL) WITHOUT ROWID;
-- The documents a verdict keeps back or that could not be built; all others are sent.
CREATE TABLE withheld (first INTEGER PRIMARY KEY);
"""
_INSERT_DOCUMENT = "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SCATTERED = (
    "INSERT INTO scattered SELECT key, min(first) FROM documents GROUP BY key HAVING count(*) > 1"
)
_DOCUMENTS = """
SELECT d.first, d.key, d.order_id, d.number, u.message,
       d.holder IN (SELECT holder FROM documents GROUP BY holder HAVING count(*) > 1),
       d.error
FROM documents AS d
LEFT JOIN unreadable AS u ON u.order_id = d.order_id
ORDER BY d.first
"""
# The last invoice sent for an order gives its refunds their contact.
_REFUND_CONTACTS = """
UPDATE documents SET
    contact_key = invoice.contact_key,
    contact = invoice.contact,
    contact_name = invoice.contact_name
FROM (
    SELECT order_id, contact_key, contact, contact_name, max(first)
    FROM documents
    WHERE invoice AND first NOT IN (SELECT first FROM withheld)
    GROUP BY order_id
) AS invoice
WHERE NOT documents.invoice AND documents.order_id = invoice.order_id
"""
# Each contact once, where it first appears, as its last document has it.
_CONTACTS = """
SELECT d.contact
FROM (
    SELECT min(first) AS first, max(first) AS last
    FROM documents
    WHERE first NOT IN (SELECT first FROM withheld)
    GROUP BY contact_key
) AS c
JOIN documents AS d ON d.first = c.last
ORDER BY c.first
"""
_SENT = """
SELECT p.payload, d.contact_name
FROM documents AS d JOIN payloads AS p USING (first)
WHERE d.invoice = ? AND d.first NOT IN (SELECT first FROM withheld)
ORDER BY d.first
"""


class _Staging:
    """A report's rows, and the documents built from them, on disk."""

    def __init__(self, file_name: str) -> None:
        self._file = file_name
        # "": a private database in a temporary file, removed when the connection closes.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            f"PRAGMA cache_size = -{STAGING_CACHE_KIB};" + _SCHEMA
        )
        self._db.execute("BEGIN")  # one transaction: nothing here needs to survive a crash
        # Written in batches: executemany() is several times faster than one execute() each.
        self._rows: list[tuple[int, str, bytes]] = []
        self._documents: list[tuple[Any, ...]] = []
        self._payloads: list[tuple[int, bytes]] = []

    def close(self) -> None:
        self._db.close()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO rows (first, key, data) VALUES (?, ?, ?)", self._rows)
        self._rows.clear()
        self._db.executemany(_INSERT_DOCUMENT, self._documents)
        self._documents.clear()
        self._db.executemany("INSERT INTO payloads VALUES (?, ?)", self._payloads)
        self._payloads.clear()

    def add_unreadable(self, order_id: str, message: str) -> None:
        # The first unreadable row of an order is the one its documents' errors name.
        self._db.execute("INSERT OR IGNORE INTO unreadable VALUES (?, ?)", (order_id, message))

    def add_document(self, first: int, built: _Built) -> None:
        """A document built from rows that came together, the first of them being `first`."""
        contact = built.contact
        self._documents.append(
            (
                first,
                built.key,
                built.order_id,
                built.number,
                built.key[:3] + built.number,
                built.key.startswith("INV:"),
                built.error,
                None if contact is None else contact.key,
                None if contact is None else _pack_contact(contact),
                None if contact is None else contact_name(contact, 0),
            )
        )
        if built.payload is not None:
            self._payloads.append((first, marshal.dumps(_freeze(built.payload))))
        if len(self._documents) >= STAGING_BATCH:
            self._flush()

    def find_scattered(self) -> bool:
        """Whether the rows of some document did not all come together."""
        self._flush()
        # Made once all are in: one sort, where keeping it up at each insert cost more.
        self._db.execute("CREATE INDEX documents_by_key ON documents (key)")
        self._db.execute(_SCATTERED)
        return bool(self._db.execute("SELECT EXISTS (SELECT 1 FROM scattered)").fetchone()[0])

    def add_row_if_scattered(self, key: str, t: Transaction) -> None:
        found = self._db.execute("SELECT first FROM scattered WHERE key = ?", (key,)).fetchone()
        if found is not None:
            self._rows.append((found[0], key, _pack_transaction(t)))
            if len(self._rows) >= STAGING_BATCH:
                self._flush()

    def scattered_documents(self) -> Iterator[tuple[int, str, list[Transaction]]]:
        """The documents whose rows did not all come together: each one's first row, its key
        and all its rows, in file order."""
        self._flush()
        self._db.execute("CREATE INDEX rows_by_first ON rows (first, seq)")
        rows = self._db.execute("SELECT first, key, data FROM rows ORDER BY first, seq")
        for (first, key), group in groupby(rows, key=itemgetter(0, 1)):
            yield first, key, [_unpack_transaction(data, self._file) for _, _, data in group]

    def replace_document(self, first: int, built: _Built) -> None:
        """The document built from all its rows, in place of those built from its runs."""
        self._flush()
        self._db.execute(
            "DELETE FROM payloads WHERE first IN (SELECT first FROM documents WHERE key = ?)",
            (built.key,),
        )
        self._db.execute("DELETE FROM documents WHERE key = ?", (built.key,))
        self.add_document(first, built)

    def documents(self) -> Iterator[_Staged]:
        """Every document in the order of their first rows."""
        self._flush()
        self._db.execute("CREATE INDEX documents_by_holder ON documents (holder)")
        for first, key, order_id, number, unreadable, shared, error in self._db.execute(_DOCUMENTS):
            yield _Staged(first, key, order_id, number, unreadable, bool(shared), error)

    def other_orders(self, key: str, number: str) -> list[str]:
        """The orders of the other documents numbered like this one."""
        found = self._db.execute(
            "SELECT DISTINCT order_id FROM documents WHERE holder = ? AND key != ?",
            (key[:3] + number, key),
        )
        return sorted(order for (order,) in found)

    def withhold(self, first: int) -> None:
        """The document will not be sent: a verdict stops it, or it could not be built."""
        self._db.execute("INSERT INTO withheld VALUES (?)", (first,))

    def give_refunds_their_orders_contacts(self) -> None:
        self._db.execute(_REFUND_CONTACTS)

    def contacts(self) -> Iterator[ContactSpec]:
        for (contact,) in self._db.execute(_CONTACTS):
            yield _unpack_contact(contact)

    def sent(self, kind: DocumentKind) -> Iterator[tuple[dict[str, Any], str]]:
        """The payloads sent of that kind, in the order of their documents' first rows, and
        the names of the contacts they go to."""
        for payload, name in self._db.execute(_SENT, (kind == DocumentKind.INVOICE,)):
            yield _thaw(marshal.loads(payload)), name


# --- staged values: tuples of str, int, bool and None, Decimals as their exact text -----------


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
            Charge(
                CHARGE_KIND_BY_VALUE[c], Decimal(net), Decimal(tax), Decimal(gross), Decimal(rate)
            )
            for c, net, tax, gross, rate in charges
        ),
        tax_country=tax_country,
        scheme=SCHEME_BY_VALUE[scheme],
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
    """A payload as marshal writes it: its Decimals as bytes, which payloads never hold.
    A dict's texts and amounts are handled in place, without a call each."""
    if type(value) is list:
        return [_freeze(item) for item in value]
    if type(value) is Decimal:
        return str(value).encode()
    if type(value) is not dict:
        return value
    frozen: dict[str, Any] = {}
    for key, item in value.items():
        if type(item) is str:
            frozen[key] = item
        elif type(item) is Decimal:
            frozen[key] = str(item).encode()
        else:
            frozen[key] = _freeze(item)
    return frozen


def _thaw(value: Any) -> Any:
    """A payload as _freeze made it, back; what marshal made is new, so it is changed in place."""
    if type(value) is list:
        for index, item in enumerate(value):
            value[index] = _thaw(item)
        return value
    if type(value) is bytes:
        return Decimal(value.decode())
    if type(value) is not dict:
        return value
    for key, item in value.items():
        if type(item) is bytes:
            value[key] = Decimal(item.decode())
        elif type(item) is not str:
            value[key] = _thaw(item)
    return value
