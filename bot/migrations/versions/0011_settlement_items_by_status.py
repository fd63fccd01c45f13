"""Settlement items indexed by integration and status: each run looks for the settlements with
items still to send

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_settlement_items_integration_status", "settlement_items", ["integration_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_settlement_items_integration_status", "settlement_items")
