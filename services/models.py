"""The persistent state: integrations, OAuth states, sync runs, the ledger and the audit log.

The ledger has one row per Amazon transaction and records what became of it in Xero; it is
what makes posting exactly-once and what answers "was this already posted?" without a Xero call.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores no offset, so it is added back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Named constraints make Alembic migrations portable between SQLite and PostgreSQL.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class IntegrationStatus(StrEnum):
    PENDING_AUTHORIZATION = "pending_authorization"
    ACTIVE = "active"
    STOPPED = "stopped"
    AUTHORIZATION_EXPIRED = "authorization_expired"


class InvoiceStatus(StrEnum):
    AUTHORISED = "AUTHORISED"
    DRAFT = "DRAFT"


class ContactPolicy(StrEnum):
    """Whose contact a consumer's documents go to. A buyer with a VAT number is always their
    own contact: their invoices must name them."""

    BUYERS = "buyers"  # each named consumer their own contact
    MARKETPLACE = "marketplace"  # consumers in "Amazon DE customers" (Xero advises < 10,000)


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(50))
    region: Mapped[str] = mapped_column(String(2))
    marketplaces: Mapped[list[str]]
    start_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(32))
    invoice_status: Mapped[str] = mapped_column(String(16), default=InvoiceStatus.AUTHORISED)
    contact_policy: Mapped[str] = mapped_column(String(16), default=ContactPolicy.BUYERS)
    sales_account_code: Mapped[str] = mapped_column(String(10))
    shipping_account_code: Mapped[str] = mapped_column(String(10))
    tax_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The seller's own VAT rates for sales Amazon calculated no VAT for: "DE:domestic" -> "19".
    vat_rates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The bank account Amazon pays each currency into, as chosen: "EUR" -> Xero account code.
    payout_accounts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The Amazon clearing account of each currency, as chosen: "EUR" -> Xero bank account code.
    # A currency not named gets "Amazon EUR clearing", found or made.
    clearing_accounts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The account and tax rate of each settlement line kind, as chosen (LineAccountChoice):
    # "referral" -> {"code": "6100", "tax_type": "INPUT2"}. A kind not named gets the default.
    line_accounts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The last tax map built from the organisation's tax rates: TaxKey string -> TaxType.
    xero_tax_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors_channel: Mapped[str | None] = mapped_column(String(80))
    summary_channel: Mapped[str | None] = mapped_column(String(80))
    amazon_selling_partner_id: Mapped[str | None] = mapped_column(String(32))
    amazon_refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    amazon_authorized_at: Mapped[datetime | None]
    xero_tenant_id: Mapped[str | None] = mapped_column(String(64))
    xero_tenant_name: Mapped[str | None] = mapped_column(String(255))
    xero_refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    xero_connected_at: Mapped[datetime | None]
    # What the Amazon token itself proved at the last consent (Sellers API): marketplace id ->
    # store name. A refresh must prove the same seller; the redirect's selling_partner_id can
    # be edited by whoever holds the link.
    amazon_stores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A Xero consent that would move the books to another organisation waits here until an
    # admin confirms it in Slack.
    xero_pending_tenant_id: Mapped[str | None] = mapped_column(String(64))
    xero_pending_tenant_name: Mapped[str | None] = mapped_column(String(255))
    xero_pending_refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    xero_pending_by: Mapped[str | None] = mapped_column(String(64))
    xero_pending_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OAuthState(Base):
    """A single-use `state` for a consent redirect; it binds the callback to one integration."""

    __tablename__ = "oauth_states"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    # The workspace whose admin asked for the link: the callback acts only on an integration
    # of that workspace.
    workspace_id: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every document posted (or nothing to post)
    PARTIAL = "partial"  # finished, some items failed
    FAILED = "failed"  # could not proceed (authorization, Amazon report failed...)
    WAITING = "waiting"  # Amazon's report is not ready yet; retried later


class SyncRun(Base):
    """One integration's sync of one period (YYYY-MM), or of one imported report file."""

    __tablename__ = "sync_runs"
    __table_args__ = (UniqueConstraint("integration_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(40))  # YYYY-MM, or import:<file digest>
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LedgerStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    POSTED = "posted"
    FAILED = "failed"


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class AllocationStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    WAITING = "waiting"  # the invoice is not in Xero yet, or still a draft
    NOT_POSSIBLE = "not_possible"  # the invoice has too little left to pay


# Percent of each ledger_items page filled by inserts on PostgreSQL: the rest keeps an item's
# updated versions in its own page (in flight, then posted: two new versions per item).
LEDGER_FILLFACTOR = 60


class LedgerItem(Base):
    """One Xero document to make from Amazon's transactions, and what became of it.

    `source_key` is the document key (e.g. INV:<order>:<invoice number>); rows that cannot be
    read are items too (ROW:<file>:<line>) so that they are reported and counted as failed.
    """

    __tablename__ = "ledger_items"
    __table_args__ = (
        UniqueConstraint("integration_id", "source_key"),
        # The posting loop asks for the next pending documents of a run in id order, over
        # and over: with the id in the index each ask reads its page, not every pending row.
        # The status is not indexed: an item changes status twice per posting, and on
        # PostgreSQL an update that changes no indexed column (and finds room in its page,
        # hence the fill factor) rewrites no index entry (a "HOT" update).
        Index("ix_ledger_items_run_id_id", "run_id", "id"),
        # An order's other documents: its contact for the next shipment and for refunds.
        Index("ix_ledger_items_integration_order", "integration_id", "amazon_order_id"),
        # Each batch asks which documents of the integration already have its numbers.
        Index(
            "ix_ledger_items_integration_number",
            "integration_id",
            "document_type",
            "document_number",
        ),
        {"postgresql_with": {"fillfactor": LEDGER_FILLFACTOR}},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    # Looked up by run through ix_ledger_items_run_id_id.
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(200))
    transaction_type: Mapped[str] = mapped_column(String(32))
    amazon_order_id: Mapped[str | None] = mapped_column(String(64))
    document_type: Mapped[str | None] = mapped_column(String(16))
    document_number: Mapped[str | None] = mapped_column(String(255))
    contact_key: Mapped[str | None] = mapped_column(String(200))
    currency: Mapped[str | None] = mapped_column(String(3))
    country: Mapped[str | None] = mapped_column(String(2))
    # Integer cents: exact on every backend (SQLite has no decimal type).
    gross_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    xero_id: Mapped[str | None] = mapped_column(String(64))
    allocation_status: Mapped[str | None] = mapped_column(String(16))
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AmazonTransaction(Base):
    """One row of an Amazon report, normalized; repeated rows collapse onto one key."""

    __tablename__ = "amazon_transactions"
    __table_args__ = (
        UniqueConstraint("integration_id", "row_key"),
        # A document is built from its rows: looked up by integration and document key.
        Index("ix_amazon_transactions_integration_document", "integration_id", "document_key"),
        # A run's rows that make no document, counted for its summary: only those are
        # indexed, so that recording the rows that do costs one index less.
        Index(
            "ix_amazon_transactions_run_skipped",
            "run_id",
            "transaction_type",
            sqlite_where=text("document_key IS NULL"),
            postgresql_where=text("document_key IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    row_key: Mapped[str] = mapped_column(String(64))
    document_key: Mapped[str | None] = mapped_column(String(200))
    transaction_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]


class XeroContact(Base):
    """A buyer's contact in Xero: found again by its key, so a re-run never duplicates it."""

    __tablename__ = "xero_contacts"
    __table_args__ = (UniqueConstraint("integration_id", "contact_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    contact_key: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]]
    fingerprint: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    name_attempt: Mapped[int] = mapped_column(Integer, default=0)
    xero_contact_id: Mapped[str | None] = mapped_column(String(64))
    # pending (to create or update), in_flight, posted, failed
    status: Mapped[str] = mapped_column(String(16), index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), index=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SettlementItemKind(StrEnum):
    PAYMENT = "payment"  # into clearing, on an order's invoice
    REFUND = "refund"  # out of clearing, on a refund's credit note
    BANK_TRANSACTION = "bank_transaction"  # the settlement's fees, charges and reserve moves
    TRANSFER = "transfer"  # the payout, clearing to the seller's bank (or back)


class SettlementItemStatus(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"  # its invoice or credit note is not in Xero yet
    IN_FLIGHT = "in_flight"  # committed before it is sent
    POSTED = "posted"
    FAILED = "failed"


class AmazonSettlement(Base):
    """One Amazon settlement (a payout) as read, once per integration whatever re-reads it."""

    __tablename__ = "settlements"
    __table_args__ = (UniqueConstraint("integration_id", "settlement_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    settlement_id: Mapped[str] = mapped_column(String(32))  # Amazon's
    currency: Mapped[str] = mapped_column(String(3))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    deposit_at: Mapped[datetime]
    total_cents: Mapped[int] = mapped_column(BigInteger)  # the payout, negative when owed
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The Xero clearing account its items went through, from its first one sent: the rest go
    # the same way whatever the settings say since, or the account would not net to zero.
    clearing_account_id: Mapped[str | None] = mapped_column(String(36))


class SettlementItem(Base):
    """One thing a settlement makes in Xero, with the same life as a ledger item: pending (or
    waiting for its document), in flight (committed before it is sent), posted or failed."""

    __tablename__ = "settlement_items"
    __table_args__ = (
        UniqueConstraint("settlement_id", "item_key"),
        # Payments waiting for their invoice are looked for by order after each posting.
        Index("ix_settlement_items_integration_order", "integration_id", "amazon_order_id"),
        # Each run looks for its integration's settlements with items still to send.
        Index("ix_settlement_items_integration_status", "integration_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[int] = mapped_column(ForeignKey("settlements.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(120))  # PAY:<type>:<order>, BTX, XFER
    kind: Mapped[str] = mapped_column(String(24))
    amazon_order_id: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # as it moves the clearing account
    # When Amazon posted the order a payment is for (its first row in the settlement).
    posted_at: Mapped[datetime | None]
    # What it moved in Xero when not its whole amount: a payment Xero had less left due for
    # (a credit note allocated to the invoice settled the rest), 0 for a refund so settled.
    moved_cents: Mapped[int | None] = mapped_column(BigInteger)
    # The bank transaction's lines: [[kind, cents, [descriptions...]], ...]
    lines: Mapped[list[Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    xero_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
