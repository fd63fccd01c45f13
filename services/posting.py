"""Posting: the run's pending documents to Xero, 50 a request, each exactly once.

Before a batch is sent its documents are built from their rows, its numbers are looked up (in
the ledger and in Xero: a document Xero already has for the same order is adopted, never sent
twice) and it is marked in flight; Xero's answer marks each posted or failed.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from services.allocations import allocate
from services.contact_posting import post_contacts, reconcile_contacts, resolve_refund_contacts
from services.documents import Document, TaxKey, build_document, document_payload, tax_keys
from services.errors import ErrorKind, ServiceError
from services.ledger import PAGE, PendingDocument, PendingGroup
from services.ledger_rows import chunks
from services.models import AllocationStatus, DocumentKind, LedgerStatus
from services.money import cents
from services.overlap import Alongside, WriteBehind
from services.posting_rules import document_label, posting_verdict
from services.run_context import RunContext
from services.taxes import TaxMap
from services.xero import Endpoint, XeroDocument, idempotency_key

_WIRE_TYPES = {DocumentKind.INVOICE: "ACCREC", DocumentKind.CREDIT_NOTE: "ACCRECCREDIT"}


# Xero batches worked on per round of ledger statements: the ledger reads, marks in flight
# and records a group's documents at once, while Xero still gets 50 a request.
BATCHES_PER_GROUP = 10


def post(ctx: RunContext) -> None:
    """Contacts, then invoices, then credit notes, then the credit notes' allocations."""
    ledger = ctx.ledger
    ctx.counters.already_posted += ledger.count(ctx.run_id, LedgerStatus.POSTED)
    reconcile_contacts(ctx)
    ledger.reopen_in_flight(ctx.run_id)
    resolve_refund_contacts(ctx)
    post_contacts(ctx)
    tax_map: TaxMap | None = None
    total = ledger.count(ctx.run_id, LedgerStatus.PENDING)
    done = 0
    # The next group is read while this one is sent, and Xero's answers are recorded while
    # the next is made ready: the database works while Python does. A crash before answers
    # are recorded leaves their documents in flight, looked up in Xero before any resend.
    threaded = ledger.beside_python
    with WriteBehind(threaded) as writes, Alongside(threaded, "ledger-reads") as reads:
        for kind in (DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE):
            read = partial(
                ledger.pending_group,
                ctx.integration_id,
                ctx.run_id,
                kind,
                PAGE * BATCHES_PER_GROUP,
            )
            ahead = reads.submit(read, 0)
            while (group := ahead.result()).items:
                ahead = reads.submit(read, group.items[-1].id)
                if tax_map is None:  # only when there is something to post
                    tax_map = TaxMap.from_xero(
                        ctx.xero.tax_rates(),
                        ctx.integration.tax_overrides,
                        home_country=ctx.xero.organisation().country_code or "GB",
                    )
                    # Every rate the run needs, made in one call before its first document.
                    tax_map.ensure(
                        [TaxKey.parse(key) for key in ctx.summary.state.tax_keys], ctx.xero
                    )
                _post_group(ctx, tax_map, kind, group, writes)
                done += len(group.items)
                ctx.progress("posting", done, total)
    if tax_map is not None:
        ledger.save_tax_types(ctx.integration_id, tax_map.as_dict())
    allocate(ctx)


def figures(doc: Document) -> dict[str, Any]:
    """What the ledger keeps of a document for the summary and the error posts."""
    return {
        "document_number": doc.number,
        "gross_cents": cents(doc.gross),
        "tax_cents": cents(doc.tax),
        "country": doc.country,
        "currency": doc.currency,
    }


def _build(ctx: RunContext, group: PendingGroup) -> dict[int, Document | ServiceError]:
    built: dict[int, Document | ServiceError] = {}
    for item, rows in group.rows.items():
        try:
            built[item.id] = build_document(rows, ctx.posting)
        except ServiceError as error:
            built[item.id] = error
    return built


def _post_group(
    ctx: RunContext,
    tax_map: TaxMap,
    kind: DocumentKind,
    group: PendingGroup,
    writes: WriteBehind,
) -> None:
    """Phase 1, decided from the ledger and one look-up of the numbers in Xero: each item is
    adopted (Xero has it), failed (it must not or cannot be sent) or sendable. Phase 2: the
    sendable ones are marked in flight, committed. Phase 3: sent 50 a request; Xero's answers
    are recorded together, also when a request stops the run."""
    ledger, counters, items, contacts = ctx.ledger, ctx.counters, group.items, group.contacts
    loaded = _build(ctx, group)
    documents: dict[int, Document | ServiceError | str] = {
        **loaded,
        **_whole_and_unique(ctx, kind, group, loaded),
    }
    buildable = [doc for doc in documents.values() if isinstance(doc, Document)]
    # One look at the tax map per group: missing rates are created together.
    tax_types = tax_map.ensure(set().union(*(tax_keys(doc) for doc in buildable)), ctx.xero)
    sendable: list[tuple[PendingDocument, Document, dict[str, Any]]] = []
    outcomes: list[dict[str, Any]] = []
    for item in items:
        built = documents[item.id]
        if isinstance(built, str):  # Xero has it already: sent by an attempt we lost
            adopted = _posted(item.id, built)
            if isinstance(document := loaded[item.id], Document):
                adopted |= figures(document)
            if kind == DocumentKind.CREDIT_NOTE:
                # It may be allocated too: look before allocating again.
                adopted["allocation_status"] = AllocationStatus.IN_FLIGHT
            outcomes.append(adopted)
            counters.already_posted += 1
            continue
        if isinstance(built, ServiceError):
            outcomes.append(_failed(item.id, built))
            continue
        contact = contacts.get(item.contact_key or "")
        if contact is None or contact.xero_contact_id is None:
            reason = (contact.error_message if contact else None) or "Xero has not confirmed it"
            unmade = ServiceError(
                ErrorKind.VALIDATION,
                f"The Xero contact for this document could not be made: {reason}",
                retryable=True,
            )
            outcomes.append(_failed(item.id, unmade))
            continue
        payload = document_payload(
            built,
            contact_id=contact.xero_contact_id,
            tax_types=tax_types,
            status=ctx.integration.invoice_status,
        )
        sendable.append((item, built, payload))
    attempts: dict[int, int] = {}
    if sendable:
        ctx.confirm_claim()
        attempts = ledger.mark_in_flight([item for item, _, _ in sendable])
    try:
        for batch in chunks(sendable, PAGE):
            outcomes.extend(_send(ctx, kind, batch, attempts))
    finally:
        writes.write(ledger.record_outcomes, outcomes)


def _send(
    ctx: RunContext,
    kind: DocumentKind,
    batch: list[tuple[PendingDocument, Document, dict[str, Any]]],
    attempts: dict[int, int],
) -> list[dict[str, Any]]:
    """One request of up to 50 documents; what became of each."""
    ctx.confirm_claim()  # a group's requests take a while: the claim may go meanwhile
    counters = ctx.counters
    endpoint: Endpoint = "Invoices" if kind == DocumentKind.INVOICE else "CreditNotes"
    key_material = ",".join(f"{item.source_key}#{attempts[item.id]}" for item, _, _ in batch)
    try:
        results = ctx.xero.create_documents(
            endpoint,
            [payload for _, _, payload in batch],
            idempotency_key=idempotency_key(ctx.integration_id, endpoint, key_material),
        )
    except ServiceError as error:
        if error.stops_the_run:
            raise
        # Xero may or may not have acted: the items stay uncertain (looked up before resend).
        return [_failed(item.id, error) | figures(doc) for item, doc, _ in batch]
    outcomes: list[dict[str, Any]] = []
    for (item, doc, _), result in zip(batch, results, strict=True):
        if result.ok:
            outcomes.append(_posted(item.id, result.xero_id) | figures(doc))
            if kind == DocumentKind.INVOICE:
                counters.invoices += 1
            else:
                counters.credit_notes += 1
            rates = counters.country_rates.setdefault(doc.country or "??", set())
            rates.update(line.tax_key.rate for line in doc.lines)
        else:
            refused = ServiceError(
                ErrorKind.VALIDATION,
                "Xero: " + " ".join(result.errors),
                # Fixable in Xero (enable the currency, add the account...).
                retryable=True,
            )
            outcomes.append(_failed(item.id, refused) | figures(doc))
    return outcomes


def _whole_and_unique(
    ctx: RunContext,
    kind: DocumentKind,
    group: PendingGroup,
    documents: dict[int, Document | ServiceError],
) -> dict[int, ServiceError | str]:
    """What becomes of a batch's items before anything is sent, by item id.

    One look-up of the batch's numbers in Xero (Xero updates the document whose number it
    already has). A number Xero has for this very order is the document itself, sent by an
    attempt whose answer was lost: its Xero id is returned. Otherwise a document with an
    unreadable row is not posted without it, and a number that another document has, in
    the ledger or in Xero, is never sent."""
    label, items, unreadable = document_label(kind), group.items, group.unreadable
    numbers: dict[int, str] = {}
    for item in items:
        built = documents[item.id]
        number = item.document_number or (built.number if isinstance(built, Document) else None)
        if number:
            numbers[item.id] = number
    in_xero = _find_numbers(ctx, kind, set(numbers.values()))
    holders = ctx.ledger.number_holders(ctx.integration_id, ctx.run_id, kind, set(numbers.values()))
    verdicts: dict[int, ServiceError | str] = {}
    for item in items:
        order, number = item.amazon_order_id or "?", numbers.get(item.id, "")
        found = in_xero.get(number)
        if found is not None and found.reference == order:
            verdicts[item.id] = found.xero_id
            continue
        others = sorted({o or "?" for i, o in holders.get(number, []) if i != item.id})
        verdict = posting_verdict(order, label, number, unreadable.get(order), others)
        if verdict is None and found is not None:
            verdict = ServiceError(
                ErrorKind.VALIDATION,
                f"Order {order}: Xero already has {label} {number} for "
                f"{found.reference or 'another document'}, made outside this bot, "
                "and this bot never changes it. Void or renumber that one in Xero, then "
                "retry.",
                retryable=True,
            )
        if verdict is not None:
            verdicts[item.id] = verdict
    return verdicts


def _find_numbers(
    ctx: RunContext, kind: DocumentKind, numbers: set[str]
) -> dict[str, XeroDocument]:
    """The live sales documents of this kind Xero has under these numbers, by number."""
    if not numbers:
        return {}
    if kind == DocumentKind.INVOICE:
        found = ctx.xero.find_invoices_by_number(sorted(numbers))
    else:
        found = ctx.xero.find_credit_notes_by_number(sorted(numbers))
    wire_type = _WIRE_TYPES[kind]
    return {
        document.number: document
        for document in found
        if document.type in (wire_type, "") and document.live
    }


def _failed(item_id: int, error: ServiceError) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": LedgerStatus.FAILED,
        "error_kind": error.kind.value,
        "error_message": error.message,
        "retryable": error.retryable,
    }


def _posted(item_id: int, xero_id: str | None) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": LedgerStatus.POSTED,
        "xero_id": xero_id,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
    }
