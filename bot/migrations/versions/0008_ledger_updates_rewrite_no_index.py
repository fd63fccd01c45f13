"""Ledger items' updates rewrite no index: the run's index leaves the status out, and on
PostgreSQL pages keep room for an item's new versions

Each item is updated twice per posting (in flight, then its outcome). With the status in an
index every update wrote a new entry in each of the table's five indexes; with no indexed
column changed and room in the page, PostgreSQL updates the row in place of its indexes
("heap-only tuples"). The posting loop's pages are still read in id order by run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_items") as batch_op:
        batch_op.drop_index("ix_ledger_items_run_status_id")
        batch_op.create_index("ix_ledger_items_run_id_id", ["run_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # Pages written from now on; existing ones gain room as they are rewritten.
        op.execute("ALTER TABLE ledger_items SET (fillfactor = 60)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_items RESET (fillfactor)")
    with op.batch_alter_table("ledger_items") as batch_op:
        batch_op.drop_index("ix_ledger_items_run_id_id")
        batch_op.create_index("ix_ledger_items_run_status_id", ["run_id", "status", "id"])
