"""The bank account Amazon pays each currency into, as the seller chose it (payout_accounts)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations") as batch_op:
        # None chosen: the organisation's one other bank account in the currency, as before.
        batch_op.add_column(
            sa.Column("payout_accounts", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch_op:
        batch_op.drop_column("payout_accounts")
