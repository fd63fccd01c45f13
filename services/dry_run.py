"""`import-report --dry-run`: every payload an import would send, without calling anything."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from services.documents import (
    ContactSpec,
    Document,
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
from services.transactions import RowError, Transaction


def dry_run(integration: Integration, path: Path) -> Iterator[dict[str, Any]]:
    """Every payload an import would send, in order, without calling anything.

    What would fail comes as {"_error": message} instead: unreadable rows, documents that
    do not add up. Tax types come from the last run's map and the overrides; a rate the
    organisation does not have yet shows as "<new tax rate for DE:19:domestic>".
    """
    posting = posting_settings(integration)
    tax_types = dict(integration.xero_tax_types) | dict(integration.tax_overrides)
    groups: dict[str, list[Transaction]] = defaultdict(list)
    unreadable: dict[str, str] = {}
    for item in parse_report(read_report_file(path), file_name=path.name):
        if isinstance(item, RowError):
            yield {"_error": item.describe()}
            if item.order_id:
                unreadable.setdefault(item.order_id, item.describe())
        elif key := document_key(item):
            groups[key].append(item)
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, rows in groups.items():
        holders[key[:3], document_number(rows[0])].append(key)
    documents: list[Document] = []
    for key, rows in groups.items():
        order, number = rows[0].order_id, document_number(rows[0])
        label = document_label(
            DocumentKind.INVOICE if key.startswith("INV:") else DocumentKind.CREDIT_NOTE
        )
        others = sorted({groups[k][0].order_id for k in holders[key[:3], number] if k != key})
        verdict = posting_verdict(order, label, number, unreadable.get(order), others)
        if verdict is not None:
            yield {"_error": verdict.message}
        else:
            try:
                documents.append(build_document(rows, posting))
            except ServiceError as error:
                yield {"_error": error.message}
    # A refund's contact is its order's, as when posting.
    by_order = {doc.order_id: doc.contact for doc in documents if doc.kind == DocumentKind.INVOICE}
    documents = [
        replace(doc, contact=by_order.get(doc.order_id, doc.contact))
        if doc.kind == DocumentKind.CREDIT_NOTE
        else doc
        for doc in documents
    ]
    contacts: dict[str, ContactSpec] = {doc.contact.key: doc.contact for doc in documents}
    for spec in contacts.values():
        yield {"_endpoint": "Contacts", **contact_payload(spec, contact_name(spec, 0))}
    for kind, endpoint in (
        (DocumentKind.INVOICE, "Invoices"),
        (DocumentKind.CREDIT_NOTE, "CreditNotes"),
    ):
        for doc in documents:
            if doc.kind != kind:
                continue
            known = {k: tax_types.get(str(k), f"<new tax rate for {k}>") for k in tax_keys(doc)}
            payload = document_payload(
                doc, contact_id="", tax_types=known, status=posting.invoice_status.value
            )
            payload["Contact"] = {"Name": contact_name(doc.contact, 0)}
            yield {"_endpoint": endpoint, **payload}
