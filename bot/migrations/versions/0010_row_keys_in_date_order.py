"""Report rows' content keys start with the row's date: YYYYMMDD and the first 32 hex digits of
the content digest (services/row_codec.py row_key), so that a month's rows reach the unique
index in about its order instead of at random

Every key recorded before is rewritten the same way from the row's stored date, so that a month
read again after the upgrade finds its rows. Downgrading keeps the new keys (the digest's second
half is gone): an earlier version would record a month read again twice.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        day = "payload ->> 'date'"
    else:
        day = "json_extract(payload, '$.date')"
    op.execute(
        "UPDATE amazon_transactions"
        f" SET row_key = replace({day}, '-', '') || substr(row_key, 1, 32)"
        " WHERE length(row_key) = 64"
    )


def downgrade() -> None:
    pass  # see the module's docstring: the digests' second halves cannot come back
