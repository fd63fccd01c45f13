"""Whose contact a consumer's documents go to: their own, or the marketplace's customers
(contact_policy)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations") as batch_op:
        # Each named consumer their own contact, as before.
        batch_op.add_column(
            sa.Column("contact_policy", sa.String(16), nullable=False, server_default="buyers")
        )


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch_op:
        batch_op.drop_column("contact_policy")
