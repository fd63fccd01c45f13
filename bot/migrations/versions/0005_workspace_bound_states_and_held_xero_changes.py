"""OAuth states bound to a workspace; a Xero organisation change held for confirmation; the
Amazon stores a token proved

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_HELD_XERO: dict[str, sa.types.TypeEngine[Any]] = {
    "xero_pending_tenant_id": sa.String(length=64),
    "xero_pending_tenant_name": sa.String(length=255),
    "xero_pending_refresh_token_encrypted": sa.LargeBinary(),
    "xero_pending_by": sa.String(length=64),
    "xero_pending_at": sa.DateTime(timezone=True),
}


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        # Existing integrations have no proof yet: their next consent records it.
        batch_op.add_column(sa.Column("amazon_stores", sa.JSON(), nullable=True))
        for name, type_ in _HELD_XERO.items():
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        # States minted before this revision expire within 10 minutes; they carry no workspace.
        batch_op.add_column(sa.Column("workspace_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.drop_column("workspace_id")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        for name in reversed(_HELD_XERO):
            batch_op.drop_column(name)
        batch_op.drop_column("amazon_stores")
