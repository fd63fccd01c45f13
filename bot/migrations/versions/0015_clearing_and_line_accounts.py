"""The clearing account of each currency and the account and tax rate of each fee kind, as the
seller chose them in the settings (clearing_accounts, line_accounts)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations") as batch_op:
        # None chosen: the accounts the bot finds by name or makes, as before.
        for column in ("clearing_accounts", "line_accounts"):
            batch_op.add_column(
                sa.Column(column, sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
            )


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch_op:
        batch_op.drop_column("line_accounts")
        batch_op.drop_column("clearing_accounts")
