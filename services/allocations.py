"""Allocations: each posted credit note applied to an invoice of its order, exactly once.

An allocation in flight when a run stopped is looked for in Xero before it is made again.
"""

from __future__ import annotations

from decimal import Decimal

from services.errors import ErrorKind, ServiceError
from services.models import AllocationStatus, LedgerItem
from services.money import from_cents
from services.run_context import RunContext
from services.xero import XeroDocument, idempotency_key

# Outcomes Xero may have acted on although we never saw its answer.
_UNCERTAIN = {ErrorKind.UPSTREAM_UNAVAILABLE, ErrorKind.RATE_LIMIT}


def allocate(ctx: RunContext) -> None:
    """Allocate each posted credit note to an invoice of its order when Xero allows it: an
    order shipped in several parts has several invoices, any of which may take it."""
    for chunk in ctx.ledger.credit_notes_to_allocate(ctx.run_id):
        invoices = ctx.ledger.posted_invoices(
            ctx.integration_id, {credit_note.amazon_order_id for credit_note in chunk}
        )
        numbers = sorted({i.document_number or "" for group in invoices.values() for i in group})
        found = ctx.xero.find_invoices_by_number(numbers) if numbers else []
        # What is left to pay on each, lowered as this chunk allocates.
        due = {document.xero_id: document for document in found}
        left = {document.xero_id: document.amount_due or Decimal(0) for document in found}
        for credit_note in chunk:
            _allocate_one(
                ctx, credit_note, invoices.get(credit_note.amazon_order_id, []), due, left
            )


def _allocate_one(
    ctx: RunContext,
    credit_note: LedgerItem,
    invoices: list[LedgerItem],
    in_xero: dict[str, XeroDocument],
    left: dict[str, Decimal],
) -> None:
    """The first invoice of the order, on the credit note's contact, that is authorised and
    has enough left to pay takes it. None in Xero yet, or only drafts: later. All too
    little: not possible (the refund exceeds what is due), said in the ledger."""
    ledger = ctx.ledger
    amount = from_cents(credit_note.gross_cents)
    candidates = [
        invoice
        for invoice in invoices
        if invoice.xero_id in in_xero and invoice.contact_key == credit_note.contact_key
    ]
    if credit_note.allocation_status == AllocationStatus.IN_FLIGHT and candidates:
        allocated_to = ctx.xero.credit_note_allocations(credit_note.xero_id or "")
        if allocated_to & {invoice.xero_id or "" for invoice in candidates}:
            ledger.set_allocation(credit_note.id, AllocationStatus.DONE)
            return
    authorised = [i for i in candidates if in_xero[i.xero_id or ""].status == "AUTHORISED"]
    target = next((i for i in authorised if left[i.xero_id or ""] >= amount), None)
    if target is None:
        waiting = len(authorised) < len(candidates) or not candidates  # a draft, or none yet
        ledger.set_allocation(
            credit_note.id,
            AllocationStatus.WAITING if waiting else AllocationStatus.NOT_POSSIBLE,
        )
        return
    ledger.set_allocation(credit_note.id, AllocationStatus.IN_FLIGHT)
    try:
        ctx.xero.allocate_credit_note(
            credit_note.xero_id or "",
            invoice_id=target.xero_id or "",
            amount=amount,
            date=ctx.clock().date(),
            idempotency_key=idempotency_key(
                ctx.integration_id, "Allocations", f"{credit_note.source_key}>{target.xero_id}"
            ),
        )
    except ServiceError as error:
        if error.kind == ErrorKind.AUTH or error.kind in _UNCERTAIN:
            raise  # the run resumes later; an allocation in flight is looked for first
        refused = ServiceError(
            error.kind,
            f"Credit note {credit_note.document_number} is in Xero, but Xero refused its "
            f"allocation to invoice {target.document_number}: {error.message}",
            retryable=True,
        )
        # A failed item with Retry like any other; the credit note stays in Xero.
        ledger.fail(credit_note.id, refused, allocation_status=AllocationStatus.PENDING)
        return
    left[target.xero_id or ""] -= amount
    ledger.set_allocation(credit_note.id, AllocationStatus.DONE)
    ctx.counters.allocations += 1
