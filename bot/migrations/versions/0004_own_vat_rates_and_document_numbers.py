"""the seller's own VAT rates (for sales Amazon calculated no VAT for); documents by number
and by order

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        # Existing integrations start with no rates: their no-VAT sales ask for one.
        batch_op.add_column(
            sa.Column("vat_rates", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        # An order's other documents give its next shipment and its refunds their contact.
        batch_op.create_index(
            "ix_ledger_items_integration_order",
            ["integration_id", "amazon_order_id"],
            unique=False,
        )
        # Before each batch the engine asks which documents already have its numbers.
        batch_op.create_index(
            "ix_ledger_items_integration_number",
            ["integration_id", "document_type", "document_number"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_items_integration_number")
        batch_op.drop_index("ix_ledger_items_integration_order")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("vat_rates")
