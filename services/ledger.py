"""The ledger: every statement about runs, documents and contacts, each a named state change.

A document is pending, in flight (committed before it is sent), then posted or failed
(committed after Xero answers). Everything the engine knows between invocations, after a
crash at any instant, is here; the steps (ingest, posting, allocations) only call these.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import ColumnElement, any_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from services.documents import ContactSpec
from services.errors import ErrorKind
from services.ledger_rows import insert_ignore, update_by_id
from services.models import (
    AllocationStatus,
    AmazonTransaction,
    DocumentKind,
    Integration,
    LedgerItem,
    LedgerStatus,
    RunStatus,
    SyncRun,
    XeroContact,
)
from services.money import from_cents
from services.results import CurrencyTotals
from services.row_codec import transaction_from_json
from services.run_summary import RunSummary
from services.transactions import Transaction

PAGE = 50  # Xero takes at most 50 documents a request: the ledger hands them out so
BULK_PAGE = 1000  # rows worked on together where no request to Xero follows
_M = TypeVar("_M", LedgerItem, XeroContact)


class Keyed(Protocol):
    """A ledger item as far as finding its document's rows needs: its key."""

    @property
    def source_key(self) -> str: ...


_K = TypeVar("_K", bound=Keyed)


class PendingDocument(NamedTuple):
    """A document to post, as the posting loop reads it: plain values, read by the thousand
    (mapped objects cost more to load than the rest of the look-up)."""

    id: int
    source_key: str
    amazon_order_id: str | None
    document_number: str | None
    contact_key: str | None
    attempts: int


_PENDING_COLUMNS = [getattr(LedgerItem, name) for name in PendingDocument._fields]


class PendingGroup(NamedTuple):
    """A group of pending documents and what posting reads of them from the ledger."""

    items: list[PendingDocument]
    rows: dict[PendingDocument, list[Transaction]]
    unreadable: dict[str, str]  # order id -> why one of its rows could not be read
    contacts: dict[str, XeroContact]  # contact key -> the contact


@dataclass
class DocumentFigures:
    """The ledger's sums of a run's documents that are in Xero."""

    documents: int = 0
    failed: int = 0
    totals: dict[str, CurrencyTotals] = field(default_factory=dict)
    # (country, kind, currency) -> (gross cents, tax cents, count)
    by_country: list[tuple[str | None, str | None, str | None, int, int, int]] = field(
        default_factory=list
    )
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestChunk:
    """One chunk of a report as the ledger records it, in one transaction."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[str, ContactSpec] = field(default_factory=dict)


class Ledger:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._postgres: bool = sessions.kw["bind"].dialect.name == "postgresql"

    @property
    def beside_python(self) -> bool:
        """Whether the database works in a process of its own (see services/overlap.py)."""
        return self._postgres

    def _among(
        self, column: InstrumentedAttribute[Any], values: Iterable[Any]
    ) -> ColumnElement[bool]:
        """`column IN values` for a page of values. On PostgreSQL one array parameter
        (`= ANY`): the statement's text stays the same whatever the page holds, instead of
        hundreds of parameters that the driver and the planner read afresh each time."""
        if self._postgres:
            return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return column.in_(list(values))

    # -- runs ------------------------------------------------------------------------------

    def open_run(self, integration_id: int, period: str, now: datetime) -> SyncRun:
        """The run of this period, created waiting if there is none."""
        with self._sessions.begin() as session:
            insert_ignore(
                session,
                SyncRun,
                [
                    {
                        "integration_id": integration_id,
                        "period": period,
                        "status": RunStatus.WAITING,
                        "started_at": now,
                        "attempts": 0,
                        "summary": {},
                    }
                ],
                ["integration_id", "period"],
            )
            return session.scalars(
                select(SyncRun).where(
                    SyncRun.integration_id == integration_id, SyncRun.period == period
                )
            ).one()

    def start_run(self, run: SyncRun, held_by: str | None) -> RunSummary:
        """The claimed run is running now; `held_by` is told to whoever finds it held."""
        summary = RunSummary.from_json(run.summary)
        summary.state.held_by = held_by
        with self._sessions.begin() as session:
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == run.id)
                .values(
                    status=RunStatus.RUNNING,
                    attempts=SyncRun.attempts + 1,
                    error_kind=None,
                    error_message=None,
                    summary=summary.to_json(),
                )
            )
        run.status = RunStatus.RUNNING
        return summary

    def update_run(self, run_id: int, **values: Any) -> None:
        """Write what a run has come to (one UPDATE, committed)."""
        with self._sessions.begin() as session:
            session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))

    def save_summary(self, run_id: int, summary: RunSummary, **values: Any) -> None:
        self.update_run(run_id, summary=summary.to_json(), **values)

    def run(self, run_id: int) -> SyncRun | None:
        with self._sessions() as session:
            return session.get(SyncRun, run_id)

    def run_of(self, integration_id: int, period: str, *statuses: RunStatus) -> SyncRun | None:
        with self._sessions() as session:
            query = select(SyncRun).where(
                SyncRun.integration_id == integration_id, SyncRun.period == period
            )
            if statuses:
                query = query.where(SyncRun.status.in_(statuses))
            return session.scalar(query)

    def runs(self, integration_id: int, limit: int) -> list[SyncRun]:
        """The latest first."""
        with self._sessions() as session:
            query = (
                select(SyncRun)
                .where(SyncRun.integration_id == integration_id)
                .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
                .limit(limit)
            )
            return list(session.scalars(query))

    def _record_contacts(
        self, session: Session, integration_id: int, contacts: dict[str, ContactSpec]
    ) -> None:
        """New buyers become contacts to make; a known buyer whose details changed (a new
        address, say) becomes a contact to update."""
        if not contacts:
            return
        known = {
            contact.contact_key: contact
            for contact in session.scalars(
                select(XeroContact).where(
                    XeroContact.integration_id == integration_id,
                    self._among(XeroContact.contact_key, contacts),
                )
            )
        }
        new_rows = []
        for key, spec in contacts.items():
            spec_json = asdict(spec)
            fingerprint = spec_fingerprint(spec_json)
            existing = known.get(key)
            if existing is None:
                new_rows.append(
                    contact_row(integration_id, key, spec=spec_json, fingerprint=fingerprint)
                )
            elif existing.fingerprint != fingerprint:
                existing.spec, existing.fingerprint = spec_json, fingerprint
                if existing.status != LedgerStatus.IN_FLIGHT:
                    existing.status = LedgerStatus.PENDING
        insert_ignore(session, XeroContact, new_rows, ["integration_id", "contact_key"])

    # -- ingest ----------------------------------------------------------------------------

    def drop_unreadable(self, run_id: int) -> None:
        """A re-read report reports its unreadable rows again; keep only the new ones."""
        with self._sessions.begin() as session:
            session.execute(
                delete(LedgerItem).where(
                    LedgerItem.run_id == run_id, LedgerItem.error_kind == ErrorKind.BAD_DATA
                )
            )

    def order_contacts(self, integration_id: int, orders: set[str]) -> dict[str, str]:
        """The contact of each of these orders that already has an invoice."""
        first: dict[str, tuple[int, str]] = {}
        with self._sessions() as session:
            # Filtered by order only: while a month is read the tables have no statistics,
            # and SQLite would otherwise walk every invoice of the integration by type.
            for item_id, order, kind, key in session.connection().execute(
                select(
                    LedgerItem.id,
                    LedgerItem.amazon_order_id,
                    LedgerItem.document_type,
                    LedgerItem.contact_key,
                ).where(
                    LedgerItem.integration_id == integration_id,
                    self._among(LedgerItem.amazon_order_id, orders),
                )
            ):
                if kind != DocumentKind.INVOICE or order is None or key is None:
                    continue
                if order not in first or item_id < first[order][0]:
                    first[order] = (item_id, key)
        return {order: key for order, (_, key) in first.items()}

    def record_chunk(self, integration_id: int, run_id: int, chunk: IngestChunk) -> None:
        """Rows, documents and buyers of one chunk, in one transaction: a re-read changes
        nothing. Documents that failed in another run (an import, say) are this run's now,
        and, unless Xero has them, read afresh: a corrected report posts them."""
        keys = list(chunk.documents)
        with self._sessions.begin() as session:
            insert_ignore(session, AmazonTransaction, chunk.rows, ["integration_id", "row_key"])
            items = [*chunk.documents.values(), *chunk.unreadable]
            new = insert_ignore(session, LedgerItem, items, ["integration_id", "source_key"])
            if keys and new < len(items):  # some were recorded before (another run; failed)
                ours = (
                    LedgerItem.integration_id == integration_id,
                    self._among(LedgerItem.source_key, keys),
                )
                session.execute(
                    update(LedgerItem)
                    .where(
                        *ours,
                        LedgerItem.status != LedgerStatus.POSTED,
                        LedgerItem.run_id != run_id,
                    )
                    .values(run_id=run_id)
                )
                session.execute(
                    update(LedgerItem)
                    .where(
                        *ours,
                        LedgerItem.status == LedgerStatus.FAILED,
                        LedgerItem.xero_id.is_(None),
                    )
                    .values(status=LedgerStatus.PENDING)
                )
            self._record_contacts(session, integration_id, chunk.contacts)

    def refresh_statistics(self) -> None:
        """After a month is recorded: the planner's view of the tables that just grew by
        thousands of rows. Without it fresh tables look empty to PostgreSQL, and SQLite
        picks an index by guesswork, and the posting loop's look-ups (an order's invoices,
        a batch's numbers) can run as scans."""
        with self._sessions.begin() as session:
            if not self._postgres:
                # A sample, as PostgreSQL takes: SQLite would otherwise read every index whole.
                session.execute(text("PRAGMA analysis_limit=1000"))
            for table in ("amazon_transactions", "ledger_items", "xero_contacts"):
                session.execute(text(f"ANALYZE {table}"))

    # -- documents -------------------------------------------------------------------------

    def count(self, run_id: int, status: LedgerStatus) -> int:
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(LedgerItem)
                    .where(LedgerItem.run_id == run_id, LedgerItem.status == status)
                )
                or 0
            )

    def documents_in(self, run_id: int) -> int:
        """How many invoices and credit notes the run's report makes."""
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(LedgerItem)
                    .where(LedgerItem.run_id == run_id, LedgerItem.document_type.is_not(None))
                )
                or 0
            )

    def unsent(self, run_id: int) -> dict[DocumentKind, int]:
        """The run's documents not in Xero yet (pending or in flight), per kind."""
        with self._sessions() as session:
            return {
                DocumentKind(kind): count
                for kind, count in session.execute(
                    select(LedgerItem.document_type, func.count())
                    .where(
                        LedgerItem.run_id == run_id,
                        LedgerItem.status.in_([LedgerStatus.PENDING, LedgerStatus.IN_FLIGHT]),
                    )
                    .group_by(LedgerItem.document_type)
                )
                if kind is not None
            }

    def _next_pending(
        self, session: Session, run_id: int, kind: DocumentKind, limit: int, after: int
    ) -> list[PendingDocument]:
        return list(
            map(
                PendingDocument._make,
                session.connection().execute(
                    select(*_PENDING_COLUMNS)
                    .where(
                        LedgerItem.run_id == run_id,
                        LedgerItem.id > after,
                        LedgerItem.status == LedgerStatus.PENDING,
                        LedgerItem.document_type == kind,
                    )
                    .order_by(LedgerItem.id)
                    .limit(limit)
                ),
            )
        )

    def rows_of(self, integration_id: int, items: Sequence[_K]) -> dict[_K, list[Transaction]]:
        """The report rows of each item's document, in file order."""
        with self._sessions() as session:
            return self._rows_of(session, integration_id, items)

    def _rows_of(
        self, session: Session, integration_id: int, items: Sequence[_K]
    ) -> dict[_K, list[Transaction]]:
        by_key = {item.source_key: item for item in items}
        rows: dict[_K, list[Transaction]] = {item: [] for item in items}
        # Through the session's connection: the ORM's loading costs more than the rows.
        for key, payload in session.connection().execute(
            select(AmazonTransaction.document_key, AmazonTransaction.payload)
            .where(
                AmazonTransaction.integration_id == integration_id,
                self._among(AmazonTransaction.document_key, by_key),
            )
            .order_by(AmazonTransaction.id)
        ):
            rows[by_key[key]].append(transaction_from_json(payload))
        return rows

    def pending_group(
        self, integration_id: int, run_id: int, kind: DocumentKind, limit: int, after: int
    ) -> PendingGroup:
        """The first pending documents of this kind with ids above `after`, with what posting
        reads of them, in one session: a loop that passes its last id starts where it
        stopped, past the items its own updates left."""
        with self._sessions() as session:
            items = self._next_pending(session, run_id, kind, limit, after)
            return PendingGroup(
                items,
                self._rows_of(session, integration_id, items),
                self._unreadable_orders(
                    session, integration_id, run_id, {item.amazon_order_id for item in items}
                ),
                self._contacts(session, integration_id, {item.contact_key or "" for item in items}),
            )

    def _unreadable_orders(
        self, session: Session, integration_id: int, run_id: int, orders: set[str | None]
    ) -> dict[str, str]:
        # The run is checked here, not in SQL: given it, SQLite's sampled statistics chose
        # to read the run's every item (14 ms a batch) over the orders' few.
        return {
            order: message or ""
            for order, message, item_run in session.connection().execute(
                select(
                    LedgerItem.amazon_order_id, LedgerItem.error_message, LedgerItem.run_id
                ).where(
                    LedgerItem.integration_id == integration_id,
                    self._among(LedgerItem.amazon_order_id, orders),
                    LedgerItem.transaction_type == "UNREADABLE",
                )
            )
            if order is not None and item_run == run_id
        }

    def number_holders(
        self, integration_id: int, run_id: int, kind: DocumentKind, numbers: set[str]
    ) -> dict[str, list[tuple[int, str | None]]]:
        """Number -> (item id, order) of the documents of this kind that hold it: this run's,
        and any that may be in Xero (a document failed for good in another run holds none)."""
        holders: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        with self._sessions() as session:
            for item_id, number, order in session.connection().execute(
                select(LedgerItem.id, LedgerItem.document_number, LedgerItem.amazon_order_id).where(
                    LedgerItem.integration_id == integration_id,
                    LedgerItem.document_type == kind,
                    self._among(LedgerItem.document_number, numbers),
                    (LedgerItem.run_id == run_id)
                    | LedgerItem.xero_id.is_not(None)
                    | LedgerItem.status.in_([LedgerStatus.POSTED, LedgerStatus.IN_FLIGHT]),
                )
            ):
                if number is not None:
                    holders[number].append((item_id, order))
        return holders

    def mark_in_flight(self, items: Sequence[PendingDocument]) -> dict[int, int]:
        """Committed before the documents are sent (one set-based UPDATE): each item's
        attempt number, which its batch's Idempotency-Key is made from."""
        with self._sessions.begin() as session:
            session.connection().execute(
                update(LedgerItem)
                .where(self._among(LedgerItem.id, [item.id for item in items]))
                .values(status=LedgerStatus.IN_FLIGHT, attempts=LedgerItem.attempts + 1)
            )
        return {item.id: item.attempts + 1 for item in items}

    def record_outcomes(self, outcomes: Sequence[dict[str, Any]]) -> None:
        """What became of each item, by id: one statement per set of columns."""
        if not outcomes:
            return
        with self._sessions.begin() as session:
            update_by_id(session, LedgerItem, outcomes)

    def reopen_in_flight(self, run_id: int) -> None:
        """Documents a crash left in flight go back to pending: the look-up of each batch's
        numbers finds those Xero has before anything is sent again."""
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem)
                .where(LedgerItem.run_id == run_id, LedgerItem.status == LedgerStatus.IN_FLIGHT)
                .values(status=LedgerStatus.PENDING)
            )

    def retryable_ids(self, run_id: int, only: list[int] | None) -> list[int]:
        """Failed items that a retry may post again (not those Amazon's data must fix)."""
        query = select(LedgerItem.id).where(
            LedgerItem.run_id == run_id,
            LedgerItem.status == LedgerStatus.FAILED,
            LedgerItem.error_kind != ErrorKind.BAD_DATA,
        )
        if only is not None:
            query = query.where(self._among(LedgerItem.id, only))
        with self._sessions() as session:
            return list(session.scalars(query))

    def reopen(self, integration_id: int, item_ids: list[int]) -> None:
        """Failed items become pending; a document already in Xero (its allocation failed)
        is posted again, its allocation to be made; failed contacts are tried afresh."""
        failed = (
            self._among(LedgerItem.id, item_ids),
            LedgerItem.integration_id == integration_id,
            LedgerItem.status == LedgerStatus.FAILED,
        )
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem)
                .where(*failed, LedgerItem.xero_id.is_not(None))
                .values(status=LedgerStatus.POSTED, error_kind=None, error_message=None)
            )
            session.execute(update(LedgerItem).where(*failed).values(status=LedgerStatus.PENDING))
            session.execute(
                update(XeroContact)
                .where(
                    XeroContact.integration_id == integration_id,
                    XeroContact.status == LedgerStatus.FAILED,
                )
                .values(status=LedgerStatus.PENDING, name_attempt=0)
            )

    def item(self, item_id: int) -> LedgerItem | None:
        with self._sessions() as session:
            return session.get(LedgerItem, item_id)

    def failed_items(self, run_id: int) -> list[LedgerItem]:
        with self._sessions() as session:
            query = select(LedgerItem).where(
                LedgerItem.run_id == run_id, LedgerItem.status == LedgerStatus.FAILED
            )
            return list(session.scalars(query.order_by(LedgerItem.id)))

    def pages(self, model: type[_M], *conditions: Any, size: int = PAGE) -> Iterator[list[_M]]:
        """Rows matching `conditions`, a page at a time, by id: constant memory, and rows
        changed while a page is worked on do not shift the next page."""
        after = 0
        while True:
            with self._sessions() as session:
                page = list(
                    session.scalars(
                        select(model)
                        .where(*conditions, model.id > after)
                        .order_by(model.id)
                        .limit(size)
                    )
                )
            if not page:
                return
            yield page
            after = page[-1].id

    def unposted_documents(self, run_id: int) -> Iterator[list[LedgerItem]]:
        return self.pages(
            LedgerItem,
            LedgerItem.run_id == run_id,
            LedgerItem.document_type.is_not(None),
            LedgerItem.xero_id.is_(None),
            LedgerItem.status != LedgerStatus.POSTED,
        )

    # -- contacts --------------------------------------------------------------------------

    def _contacts(
        self, session: Session, integration_id: int, keys: Iterable[str]
    ) -> dict[str, XeroContact]:
        return {
            contact.contact_key: contact
            for contact in session.scalars(
                select(XeroContact).where(
                    XeroContact.integration_id == integration_id,
                    self._among(XeroContact.contact_key, keys),
                )
            )
        }

    def contacts_in_flight(self, integration_id: int) -> list[XeroContact]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(XeroContact).where(
                        XeroContact.integration_id == integration_id,
                        XeroContact.status == LedgerStatus.IN_FLIGHT,
                    )
                )
            )

    def pending_contacts(self, integration_id: int) -> Iterator[list[XeroContact]]:
        return self.pages(
            XeroContact,
            XeroContact.integration_id == integration_id,
            XeroContact.status == LedgerStatus.PENDING,
        )

    def update_contacts(self, changes: Sequence[dict[str, Any]]) -> None:
        """One executemany by primary key: {"id": ..., column: value, ...} each."""
        if not changes:
            return
        with self._sessions.begin() as session:
            update_by_id(session, XeroContact, changes)

    def give_refunds_their_orders_contact(self, integration_id: int, run_id: int) -> None:
        """Every credit note not yet sent takes the contact of its order's first invoice in
        the ledger (any month), so that a sale read after its refund still gives the refund
        its contact. A page of credit notes at a time, each page's orders looked up by the
        order index (a correlated UPDATE was planned as a scan per credit note)."""
        unsent = self.pages(
            LedgerItem,
            LedgerItem.run_id == run_id,
            LedgerItem.document_type == DocumentKind.CREDIT_NOTE,
            LedgerItem.status.in_([LedgerStatus.PENDING, LedgerStatus.FAILED]),
            LedgerItem.xero_id.is_(None),
            size=BULK_PAGE,
        )
        for page in unsent:
            firsts = self.order_contacts(
                integration_id, {item.amazon_order_id or "" for item in page}
            )
            changes = [
                {"id": item.id, "contact_key": firsts[item.amazon_order_id or ""]}
                for item in page
                if firsts.get(item.amazon_order_id or "", item.contact_key) != item.contact_key
            ]
            with self._sessions.begin() as session:
                update_by_id(session, LedgerItem, changes)

    def refunds_without_contact(self, run_id: int) -> Iterator[list[LedgerItem]]:
        return self.pages(
            LedgerItem,
            LedgerItem.run_id == run_id,
            LedgerItem.document_type == DocumentKind.CREDIT_NOTE,
            LedgerItem.contact_key.is_(None),
        )

    def set_refund_contacts(
        self,
        integration_id: int,
        keys: dict[int, str],
        in_xero: dict[str, str],
        own: dict[str, ContactSpec],
    ) -> None:
        """Item id -> contact key; contacts Xero already has (key -> ContactID) are recorded
        as posted, the refunds' own buyers as contacts to make."""
        with self._sessions.begin() as session:
            insert_ignore(
                session,
                XeroContact,
                [
                    contact_row(
                        integration_id, key, xero_contact_id=contact_id, status=LedgerStatus.POSTED
                    )
                    for key, contact_id in sorted(in_xero.items())
                ],
                ["integration_id", "contact_key"],
            )
            self._record_contacts(session, integration_id, own)
            update_by_id(
                session,
                LedgerItem,
                [{"id": item_id, "contact_key": key} for item_id, key in keys.items()],
            )

    def save_tax_types(self, integration_id: int, tax_types: dict[str, str]) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Integration)
                .where(Integration.id == integration_id)
                .values(xero_tax_types=tax_types)
            )

    # -- allocations -----------------------------------------------------------------------

    def credit_notes_to_allocate(self, run_id: int) -> Iterator[list[LedgerItem]]:
        return self.pages(
            LedgerItem,
            LedgerItem.run_id == run_id,
            LedgerItem.document_type == DocumentKind.CREDIT_NOTE,
            LedgerItem.status == LedgerStatus.POSTED,
            LedgerItem.allocation_status.in_(
                [AllocationStatus.PENDING, AllocationStatus.WAITING, AllocationStatus.IN_FLIGHT]
            ),
        )

    def posted_documents(
        self, integration_id: int, kind: DocumentKind, orders: set[str | None]
    ) -> dict[str | None, list[LedgerItem]]:
        """Order id -> its documents of this kind in Xero, in the order they were recorded."""
        invoices: dict[str | None, list[LedgerItem]] = defaultdict(list)
        with self._sessions() as session:
            for invoice in session.scalars(
                select(LedgerItem)
                .where(
                    LedgerItem.integration_id == integration_id,
                    LedgerItem.document_type == kind,
                    LedgerItem.status == LedgerStatus.POSTED,
                    self._among(LedgerItem.amazon_order_id, orders),
                )
                .order_by(LedgerItem.id)
            ):
                invoices[invoice.amazon_order_id].append(invoice)
        return invoices

    def set_allocation(self, item_id: int, status: AllocationStatus) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(LedgerItem).where(LedgerItem.id == item_id).values(allocation_status=status)
            )

    # -- the result ------------------------------------------------------------------------

    def figures(self, run_id: int) -> DocumentFigures:
        """The run's documents in Xero summed per currency and per country, the failed ones
        counted, and the rows that make no document counted by type. A credit note whose
        allocation failed is in Xero all the same: its amounts count."""
        in_xero = LedgerItem.xero_id.is_not(None)
        figures = DocumentFigures()
        totals: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        with self._sessions() as session:
            for country, kind, currency, gross, tax, count in session.execute(
                select(
                    LedgerItem.country,
                    LedgerItem.document_type,
                    LedgerItem.currency,
                    func.sum(LedgerItem.gross_cents),
                    func.sum(LedgerItem.tax_cents),
                    func.count(),
                )
                .where(LedgerItem.run_id == run_id, in_xero)
                .group_by(LedgerItem.country, LedgerItem.document_type, LedgerItem.currency)
            ):
                figures.documents += count
                figures.by_country.append((country, kind, currency, gross, tax, count))
                entry = totals[str(currency)]
                if kind == DocumentKind.INVOICE:
                    entry.sales_gross += from_cents(gross)
                    entry.tax += from_cents(tax)
                else:
                    entry.refunds_gross += from_cents(gross)
                    entry.tax -= from_cents(tax)
            figures.totals = dict(totals)
            figures.failed = (
                session.scalar(
                    select(func.count())
                    .select_from(LedgerItem)
                    .where(LedgerItem.run_id == run_id, LedgerItem.status != LedgerStatus.POSTED)
                )
                or 0
            )
            figures.skipped = dict(
                Counter(
                    {
                        kind: count
                        for kind, count in session.execute(
                            select(AmazonTransaction.transaction_type, func.count())
                            .where(
                                AmazonTransaction.run_id == run_id,
                                AmazonTransaction.document_key.is_(None),
                            )
                            .group_by(AmazonTransaction.transaction_type)
                        )
                    }
                )
            )
        return figures


def contact_row(integration_id: int, key: str, **values: Any) -> dict[str, Any]:
    """A xero_contacts row for a bulk insert: a contact to make unless `values` say more."""
    row: dict[str, Any] = {
        "integration_id": integration_id,
        "contact_key": key,
        "spec": {},
        "fingerprint": "",
        "name_attempt": 0,
        "status": LedgerStatus.PENDING,
        "updated_at": datetime.now(UTC),
    }
    return row | values


def item_row(integration_id: int, run_id: int, **values: Any) -> dict[str, Any]:
    """A ledger_items row for a bulk insert: every row of one insert has the same columns."""
    row: dict[str, Any] = {
        "integration_id": integration_id,
        "run_id": run_id,
        "amazon_order_id": None,
        "document_type": None,
        "document_number": None,
        "contact_key": None,
        "currency": None,
        "country": None,
        "gross_cents": 0,
        "tax_cents": 0,
        "status": LedgerStatus.PENDING,
        "xero_id": None,
        "allocation_status": None,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
        "attempts": 0,
        "updated_at": datetime.now(UTC),
    }
    unknown = set(values) - set(row) - {"source_key", "transaction_type"}
    if unknown:
        raise ValueError(f"not ledger_items columns: {sorted(unknown)}")
    return row | values


def spec_fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
