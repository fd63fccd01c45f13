"""Allocations: each posted credit note applied to an invoice of its order, exactly once.

Per page of credit notes: where each one goes is decided from one look-up of its order's
invoices in Xero; those to allocate are marked in flight together (committed) before any is
made; what became of each is recorded together. An allocation in flight when a run stopped is
looked for on its credit note in Xero before it is made again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.errors import UNCERTAIN, ServiceError
from services.models import AllocationStatus, DocumentKind, LedgerItem, LedgerStatus
from services.money import from_cents
from services.run_context import RunContext
from services.xero import XeroDocument, idempotency_key


def allocate(ctx: RunContext) -> None:
    """Allocate each posted credit note to an invoice of its order when Xero allows it: an
    order shipped in several parts has several invoices, any of which may take it."""
    ledger = ctx.ledger
    for page in ledger.credit_notes_to_allocate(ctx.run_id):
        invoices = ledger.posted_documents(
            ctx.integration_id,
            DocumentKind.INVOICE,
            {credit_note.amazon_order_id for credit_note in page},
        )
        numbers = sorted({i.document_number or "" for group in invoices.values() for i in group})
        found = ctx.xero.find_invoices_by_number(numbers) if numbers else []
        in_xero = {document.xero_id: document for document in found}
        # What is left to pay on each, lowered as this page allocates.
        left = {document.xero_id: document.amount_due or Decimal(0) for document in found}
        outcomes: list[dict[str, Any]] = []
        planned: list[tuple[LedgerItem, LedgerItem]] = []
        for credit_note in page:
            target = _target(
                ctx, credit_note, invoices.get(credit_note.amazon_order_id, []), in_xero, left
            )
            if isinstance(target, AllocationStatus):
                outcomes.append({"id": credit_note.id, "allocation_status": target})
            else:
                left[target.xero_id or ""] -= from_cents(credit_note.gross_cents)
                planned.append((credit_note, target))
        if planned:
            ctx.confirm_claim()
        ledger.record_outcomes(
            outcomes
            + [
                {"id": credit_note.id, "allocation_status": AllocationStatus.IN_FLIGHT}
                for credit_note, _ in planned
            ]
        )
        made: list[dict[str, Any]] = []
        try:
            for credit_note, invoice in planned:
                made.append(_make(ctx, credit_note, invoice))
        finally:
            ledger.record_outcomes(made)


def _target(
    ctx: RunContext,
    credit_note: LedgerItem,
    invoices: list[LedgerItem],
    in_xero: dict[str, XeroDocument],
    left: dict[str, Decimal],
) -> LedgerItem | AllocationStatus:
    """The first invoice of the order, on the credit note's contact, that is authorised and
    has enough left to pay takes it. Allocated already (found on the credit note): done.
    None in Xero yet, or only drafts: later. All too little: not possible (the refund exceeds
    what is due)."""
    amount = from_cents(credit_note.gross_cents)
    candidates = [
        invoice
        for invoice in invoices
        if invoice.xero_id in in_xero and invoice.contact_key == credit_note.contact_key
    ]
    if credit_note.allocation_status == AllocationStatus.IN_FLIGHT and candidates:
        allocated_to = ctx.xero.credit_note_allocations(credit_note.xero_id or "")
        if allocated_to & {invoice.xero_id or "" for invoice in candidates}:
            return AllocationStatus.DONE
    authorised = [i for i in candidates if in_xero[i.xero_id or ""].status == "AUTHORISED"]
    target = next((i for i in authorised if left[i.xero_id or ""] >= amount), None)
    if target is not None:
        return target
    # A draft, none yet, or room that only this page's other allocations take: later.
    fits_alone = any((in_xero[i.xero_id or ""].amount_due or 0) >= amount for i in authorised)
    waiting = len(authorised) < len(candidates) or not candidates or fits_alone
    return AllocationStatus.WAITING if waiting else AllocationStatus.NOT_POSSIBLE


def _make(ctx: RunContext, credit_note: LedgerItem, invoice: LedgerItem) -> dict[str, Any]:
    """One allocation in Xero; what became of the credit note."""
    try:
        ctx.xero.allocate_credit_note(
            credit_note.xero_id or "",
            invoice_id=invoice.xero_id or "",
            amount=from_cents(credit_note.gross_cents),
            date=ctx.clock().date(),
            idempotency_key=idempotency_key(
                ctx.integration_id, "Allocations", f"{credit_note.source_key}>{invoice.xero_id}"
            ),
        )
    except ServiceError as error:
        if error.stops_the_run or error.kind in UNCERTAIN:
            raise  # the run resumes later; an allocation in flight is looked for first
        # A failed item with Retry like any other; the credit note stays in Xero.
        return {
            "id": credit_note.id,
            "status": LedgerStatus.FAILED,
            "error_kind": error.kind.value,
            "error_message": (
                f"Credit note {credit_note.document_number} is in Xero, but Xero refused its "
                f"allocation to invoice {invoice.document_number}: {error.message}"
            ),
            "retryable": True,
            "allocation_status": AllocationStatus.PENDING,
        }
    ctx.counters.allocations += 1
    return {"id": credit_note.id, "allocation_status": AllocationStatus.DONE}
