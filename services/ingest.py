"""Ingest: Amazon's report rows into the ledger, with the documents and buyers they make.

Chunks of 1,000 rows, each recorded in one transaction: constant memory, few round trips, and a
re-read (a crash, a retry) changes nothing, since every row has a content key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.amazon import SpApiClient
from services.documents import (
    TaxKey,
    contact_for,
    document_key,
    document_number,
    transaction_tax_keys,
)
from services.errors import ErrorKind, ServiceError
from services.ledger import IngestChunk, item_row
from services.ledger_rows import chunks
from services.marketplaces import Region
from services.models import AllocationStatus, DocumentKind, LedgerStatus
from services.overlap import WriteBehind
from services.reports import ReportKind, parse_report
from services.row_codec import RowEncoder
from services.run_context import RunContext
from services.transactions import RowError, Transaction

INGEST_CHUNK = 1000
SETTLEMENTS_LOOKAHEAD = timedelta(days=30)  # a month's refunds settle in the next weeks


def ingest_from_amazon(
    ctx: RunContext, amazon: SpApiClient, start: datetime, end: datetime
) -> None:
    """Request the period's report, wait for it, read it into the ledger (EU: the VAT
    transactions report; elsewhere the orders report and the settlements for refunds)."""
    integration = ctx.integration
    ctx.ledger.drop_unreadable(ctx.run_id)
    tax_keys: set[TaxKey] = set()
    kind = ReportKind.VAT_TRANSACTIONS if integration.region == Region.EU else ReportKind.ALL_ORDERS
    report_id = amazon.create_report(
        kind.value, integration.marketplaces, start, end - timedelta(seconds=1)
    )
    try:
        report = amazon.wait_for_report(report_id)
    except ServiceError as error:
        if error.kind != ErrorKind.NOT_FOUND:
            raise
        report = None  # Amazon cancels a report that has no data: nothing to post
    if report is not None:
        document = amazon.get_report_document(
            report.report_document_id or "", restricted=kind == ReportKind.VAT_TRANSACTIONS
        )
        items = parse_report(amazon.iter_report_lines(document), file_name=report.name)
        tax_keys |= ingest(ctx, items, since=integration.start_date)
    if integration.region != Region.EU:
        # Refunds come from settlement reports, which Amazon makes on its own schedule.
        settlements = amazon.get_reports(
            [ReportKind.SETTLEMENT_V2.value],
            created_since=start,
            created_until=min(end + SETTLEMENTS_LOOKAHEAD, ctx.clock()),
            marketplace_ids=integration.marketplaces,
        )
        for settlement in settlements:
            document = amazon.get_report_document(settlement.report_document_id or "")
            rows = parse_report(amazon.iter_report_lines(document), file_name=settlement.name)
            in_period = (
                row
                for row in rows
                if isinstance(row, RowError) or start.date() <= row.date < end.date()
            )
            tax_keys |= ingest(ctx, in_period, since=integration.start_date)
    mark_ingested(ctx, tax_keys)


def mark_ingested(ctx: RunContext, tax_keys: set[TaxKey]) -> None:
    ctx.summary.state.ingested = True
    ctx.summary.state.tax_keys = sorted(str(key) for key in tax_keys)
    ctx.ledger.save_summary(ctx.run_id, ctx.summary)
    ctx.ledger.refresh_statistics()


def ingest(
    ctx: RunContext, items: Iterable[Transaction | RowError], *, since: date | None = None
) -> set[TaxKey]:
    """Record rows, documents and buyers; rows dated before `since` (the integration's start
    date) are left out. Returns the tax keys the documents will need."""
    read = recorded = 0
    encode = RowEncoder()
    needed_tax_keys: set[TaxKey] = set()
    integration_id, run_id = ctx.integration_id, ctx.run_id
    # The chunk being written meanwhile: the contacts its orders' invoices took.
    writing: dict[str, str] = {}
    with WriteBehind(ctx.ledger.beside_python) as writes:
        for batch in chunks(items, INGEST_CHUNK):
            chunk, now = IngestChunk(), datetime.now(UTC)
            orders = {item.order_id for item in batch if isinstance(item, Transaction)}
            # The ledger holds every chunk before the one being written (an order recorded
            # before has its first invoice there, so the ledger's answer goes first).
            order_contacts = ctx.ledger.order_contacts(integration_id, orders)
            for order in orders & writing.keys():
                order_contacts.setdefault(order, writing[order])
            for item in batch:
                if isinstance(item, RowError):
                    chunk.unreadable.append(_unreadable_item(ctx, item))
                    continue
                if since is not None and item.date < since:
                    continue
                stored = encode(item)
                key = document_key(item)
                chunk.rows.append(
                    {
                        "integration_id": integration_id,
                        "run_id": run_id,
                        "row_key": stored.key,
                        "document_key": key,
                        "transaction_type": item.type,
                        "payload": stored.payload,
                    }
                )
                if key is None:
                    continue
                needed_tax_keys |= transaction_tax_keys(item, ctx.posting)
                if key not in chunk.documents:
                    # One order, one buyer: each shipment's invoice takes the contact of the
                    # order's first. A refund's contact is its order's, found before posting
                    # (refund rows carry less of the buyer than the sale's rows).
                    contact_key = None
                    if key.startswith("INV:"):
                        contact = contact_for(item, ctx.posting.contact_policy)
                        contact_key = order_contacts.setdefault(item.order_id, contact.key)
                        if contact_key == contact.key:
                            chunk.contacts[contact.key] = contact
                    chunk.documents[key] = _new_item(ctx, key, item, contact_key, now)
            writes.write(ctx.ledger.record_chunk, integration_id, run_id, chunk)
            writing = {
                order: key for order in orders if (key := order_contacts.get(order)) is not None
            }
            recorded += 1
            if recorded & (recorded - 1) == 0:
                # Each time the month has doubled: the look-up of orders' contacts is planned
                # from what the tables hold now (without statistics PostgreSQL scans the
                # growing table for each chunk: 23 ms a chunk at 300k rows, and rising).
                writes.wait()
                ctx.ledger.refresh_statistics()
            read += len(batch)
            ctx.progress("reading", read, 0)
    return needed_tax_keys


def _new_item(
    ctx: RunContext, key: str, transaction: Transaction, contact_key: str | None, now: datetime
) -> dict[str, Any]:
    is_invoice = key.startswith("INV:")
    return item_row(
        ctx.integration_id,
        ctx.run_id,
        updated_at=now,
        source_key=key,
        transaction_type=transaction.type,
        amazon_order_id=transaction.order_id,
        document_type=DocumentKind.INVOICE if is_invoice else DocumentKind.CREDIT_NOTE,
        document_number=document_number(transaction),
        contact_key=contact_key,
        currency=transaction.currency,
        country=transaction.tax_country,
        allocation_status=None if is_invoice else AllocationStatus.PENDING,
    )


def _unreadable_item(ctx: RunContext, error: RowError) -> dict[str, Any]:
    return item_row(
        ctx.integration_id,
        ctx.run_id,
        # Per run: the same file and line in a corrected file is another row.
        source_key=f"ROW:{ctx.run_id}:{error.source.file}:{error.source.line}"[:200],
        transaction_type="UNREADABLE",
        amazon_order_id=error.order_id,
        status=LedgerStatus.FAILED,
        error_kind=ErrorKind.BAD_DATA,
        error_message=error.describe(),
    )
