"""indexes for the posting loop

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("amazon_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amazon_transactions_document_key"))
        batch_op.create_index(
            "ix_amazon_transactions_integration_document",
            ["integration_id", "document_key"],
            unique=False,
        )

    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_items_status"))
        batch_op.create_index("ix_ledger_items_run_id_status", ["run_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_items_run_id_status")
        batch_op.create_index(batch_op.f("ix_ledger_items_status"), ["status"], unique=False)

    with op.batch_alter_table("amazon_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_amazon_transactions_integration_document")
        batch_op.create_index(
            batch_op.f("ix_amazon_transactions_document_key"), ["document_key"], unique=False
        )
