"""ledger for the monthly sync

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xero_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("contact_key", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("name_attempt", sa.Integer(), nullable=False),
        sa.Column("xero_contact_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_xero_contacts_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xero_contacts")),
        sa.UniqueConstraint(
            "integration_id", "contact_key", name=op.f("uq_xero_contacts_integration_id")
        ),
    )
    with op.batch_alter_table("xero_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_xero_contacts_status"), ["status"], unique=False)

    op.create_table(
        "amazon_transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("document_key", sa.String(length=200), nullable=True),
        sa.Column("transaction_type", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_amazon_transactions_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_amazon_transactions_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_transactions")),
        sa.UniqueConstraint(
            "integration_id", "row_key", name=op.f("uq_amazon_transactions_integration_id")
        ),
    )
    with op.batch_alter_table("amazon_transactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amazon_transactions_document_key"), ["document_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_amazon_transactions_run_id"), ["run_id"], unique=False)

    with op.batch_alter_table("integrations", schema=None) as batch_op:
        # Existing rows get defaults: the columns are NOT NULL.
        batch_op.add_column(
            sa.Column("xero_tax_types", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch_op.add_column(
            sa.Column("gross_cents", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("tax_cents", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("allocation_status", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_ledger_items_amazon_order_id"), ["amazon_order_id"], unique=False
        )

    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.alter_column(
            "period",
            existing_type=sa.VARCHAR(length=7),
            type_=sa.String(length=40),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "period",
            existing_type=sa.String(length=40),
            type_=sa.VARCHAR(length=7),
            existing_nullable=False,
        )
        batch_op.drop_column("attempts")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("lease_until")

    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_items_amazon_order_id"))
        batch_op.drop_column("allocation_status")
        batch_op.drop_column("tax_cents")
        batch_op.drop_column("gross_cents")
        batch_op.drop_column("country")
        batch_op.drop_column("currency")
        batch_op.drop_column("contact_key")

    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("xero_tax_types")

    with op.batch_alter_table("amazon_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amazon_transactions_run_id"))
        batch_op.drop_index(batch_op.f("ix_amazon_transactions_document_key"))

    op.drop_table("amazon_transactions")
    with op.batch_alter_table("xero_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xero_contacts_status"))

    op.drop_table("xero_contacts")
