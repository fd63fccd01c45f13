"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("marketplaces", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("invoice_status", sa.String(length=16), nullable=False),
        sa.Column("sales_account_code", sa.String(length=10), nullable=False),
        sa.Column("shipping_account_code", sa.String(length=10), nullable=False),
        sa.Column("tax_overrides", sa.JSON(), nullable=False),
        sa.Column("errors_channel", sa.String(length=80), nullable=True),
        sa.Column("summary_channel", sa.String(length=80), nullable=True),
        sa.Column("amazon_selling_partner_id", sa.String(length=32), nullable=True),
        sa.Column("amazon_refresh_token_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("amazon_authorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("xero_tenant_id", sa.String(length=64), nullable=True),
        sa.Column("xero_tenant_name", sa.String(length=255), nullable=True),
        sa.Column("xero_refresh_token_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("xero_connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_integrations_workspace_id")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_audit_log_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_log_integration_id"), ["integration_id"], unique=False
        )

    op.create_table(
        "oauth_states",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_oauth_states_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_oauth_states")),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_runs_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
        sa.UniqueConstraint("integration_id", "period", name=op.f("uq_sync_runs_integration_id")),
    )
    op.create_table(
        "ledger_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("transaction_type", sa.String(length=32), nullable=False),
        sa.Column("amazon_order_id", sa.String(length=64), nullable=True),
        sa.Column("document_type", sa.String(length=16), nullable=True),
        sa.Column("document_number", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_ledger_items_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_ledger_items_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_items")),
        sa.UniqueConstraint(
            "integration_id", "source_key", name=op.f("uq_ledger_items_integration_id")
        ),
    )
    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_items_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_items_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_items_status"))
        batch_op.drop_index(batch_op.f("ix_ledger_items_run_id"))

    op.drop_table("ledger_items")
    op.drop_table("sync_runs")
    op.drop_table("oauth_states")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_integration_id"))

    op.drop_table("audit_log")
    op.drop_table("integrations")
