"""Ledger indexes for how items are written and read: each item is updated twice per
posting (in flight, then its outcome) and each update writes every index anew, and the
posting loop reads the next pending items of a run in id order

ix_ledger_items_run_id is the first column of the run's index; ix_ledger_items_amazon_order_id
is the second of ix_ledger_items_integration_order, and every look-up by order names the
integration. The run's index gains the id, so that a page of pending items is read in order
instead of every pending item sorted (PostgreSQL does not order equal keys by id). A run's
report rows are indexed by run only where they make no document (the summary counts them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_items") as batch_op:
        batch_op.drop_index("ix_ledger_items_run_id")
        batch_op.drop_index("ix_ledger_items_amazon_order_id")
        batch_op.drop_index("ix_ledger_items_run_id_status")
        batch_op.create_index("ix_ledger_items_run_status_id", ["run_id", "status", "id"])
    with op.batch_alter_table("amazon_transactions") as batch_op:
        batch_op.drop_index("ix_amazon_transactions_run_id")
        batch_op.create_index(
            "ix_amazon_transactions_run_skipped",
            ["run_id", "transaction_type"],
            sqlite_where=sa.text("document_key IS NULL"),
            postgresql_where=sa.text("document_key IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("amazon_transactions") as batch_op:
        batch_op.drop_index("ix_amazon_transactions_run_skipped")
        batch_op.create_index("ix_amazon_transactions_run_id", ["run_id"])
    with op.batch_alter_table("ledger_items") as batch_op:
        batch_op.drop_index("ix_ledger_items_run_status_id")
        batch_op.create_index("ix_ledger_items_run_id_status", ["run_id", "status"])
        batch_op.create_index("ix_ledger_items_amazon_order_id", ["amazon_order_id"])
        batch_op.create_index("ix_ledger_items_run_id", ["run_id"])
