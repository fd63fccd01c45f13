"""Contacts: every buyer a document needs is in Xero, once, before the document is sent.

A name Xero refuses (taken by another contact) is tried again with the buyer's next name; a
batch whose answer was lost is looked up by name before anything is sent again.
"""

from __future__ import annotations

from typing import Any

from services.documents import ContactSpec, contact_for, contact_name, contact_payload
from services.errors import ServiceError
from services.ledger import PAGE
from services.ledger_rows import chunks
from services.models import LedgerStatus, XeroContact
from services.run_context import RunContext
from services.xero import idempotency_key

CONTACT_NAME_ATTEMPTS = 5
_NAME_TAKEN = "is already assigned to another contact"


def reconcile_contacts(ctx: RunContext) -> None:
    """Contacts a crash left in flight: found in Xero by name, or to be sent again."""
    in_flight = ctx.ledger.contacts_in_flight(ctx.integration_id)
    for chunk in chunks(in_flight, PAGE):
        found = {
            contact.name.casefold(): contact.contact_id
            for contact in ctx.xero.find_contacts_by_name([c.name or "" for c in chunk])
        }
        changes: list[dict[str, Any]] = []
        for contact in chunk:
            contact_id = found.get((contact.name or "").casefold())
            if contact_id:
                changes.append(
                    {"id": contact.id, "status": LedgerStatus.POSTED, "xero_contact_id": contact_id}
                )
            else:
                changes.append({"id": contact.id, "status": LedgerStatus.PENDING})
        ctx.ledger.update_contacts(changes)


def resolve_refund_contacts(ctx: RunContext) -> None:
    """Each credit note goes to its order's contact: Xero allocates a credit note only to
    invoices of its own contact, and one buyer is one customer ledger. The order's invoice
    contact comes from the ledger (this month or an earlier one), else from the order's
    invoice in Xero (made before this bot, or by hand), else from the refund's own rows."""
    ledger = ctx.ledger
    ledger.give_refunds_their_orders_contact(ctx.integration_id, ctx.run_id)
    for page in ledger.refunds_without_contact(ctx.run_id):
        in_xero = ctx.xero.find_sales_invoice_contacts({i.amazon_order_id or "" for i in page})
        own: dict[str, ContactSpec] = {}
        known: dict[str, str] = {}
        keys: dict[int, str] = {}
        for item, rows in ledger.rows_of(ctx.integration_id, page).items():
            contact_id = in_xero.get(item.amazon_order_id or "")
            if contact_id is not None:
                keys[item.id] = f"xero:{contact_id}"
                known[keys[item.id]] = contact_id
            elif rows:
                spec = contact_for(rows[0], ctx.posting.contact_policy)
                own[spec.key] = spec
                keys[item.id] = spec.key
        ledger.set_refund_contacts(ctx.integration_id, keys, known, own)


def post_contacts(ctx: RunContext) -> None:
    """Pending contacts, 50 at a time: every one was recorded because a document needs it.
    A name Xero refused (taken) stays pending with its next name for the next round."""
    for _round in range(CONTACT_NAME_ATTEMPTS):
        posted_any = False
        for batch in ctx.ledger.pending_contacts(ctx.integration_id):
            _post_batch(ctx, batch)
            posted_any = True
        if not posted_any:
            return


def _post_batch(ctx: RunContext, contacts: list[XeroContact]) -> None:
    payloads = []
    in_flight: list[dict[str, Any]] = []
    for contact in contacts:
        spec = ContactSpec(**contact.spec)
        contact.name = contact_name(spec, contact.name_attempt)
        payload = contact_payload(spec, contact.name)
        if contact.xero_contact_id:
            payload["ContactID"] = contact.xero_contact_id
        payloads.append(payload)
        in_flight.append({"id": contact.id, "status": LedgerStatus.IN_FLIGHT, "name": contact.name})
    ctx.confirm_claim()
    ctx.ledger.update_contacts(in_flight)
    material = ",".join(f"{c.contact_key}#{c.name}#{c.fingerprint}" for c in contacts)
    try:
        results = ctx.xero.create_documents(
            "Contacts",
            payloads,
            method="POST",
            idempotency_key=idempotency_key(ctx.integration_id, "Contacts", material),
        )
    except ServiceError as error:
        if error.stops_the_run:
            raise
        return  # left in flight: looked up by name before the next attempt
    outcomes: list[dict[str, Any]] = []
    for contact, result in zip(contacts, results, strict=True):
        if result.ok:
            if contact.xero_contact_id:
                ctx.counters.contacts_updated += 1
            else:
                ctx.counters.contacts_created += 1
            outcomes.append(
                {
                    "id": contact.id,
                    "status": LedgerStatus.POSTED,
                    "xero_contact_id": result.xero_id,
                    "error_message": None,
                }
            )
        elif any(_NAME_TAKEN in message for message in result.errors):
            # Another buyer (or someone in Xero) has this name: try the next name.
            outcomes.append(
                {
                    "id": contact.id,
                    "status": LedgerStatus.PENDING,
                    "name_attempt": contact.name_attempt + 1,
                }
            )
        else:
            outcomes.append(
                {
                    "id": contact.id,
                    "status": LedgerStatus.FAILED,
                    "error_message": "Xero: " + " ".join(result.errors),
                }
            )
    ctx.ledger.update_contacts(outcomes)
