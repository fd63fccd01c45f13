from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot import db
from services.models import Base
from services.row_codec import RowEncoder, transaction_from_json
from tests.test_row_codec import KEY_RECORDED, STORED_BEFORE_AMAZON_VAT

TABLES = {
    "integrations",
    "oauth_states",
    "sync_runs",
    "ledger_items",
    "audit_log",
    "settlements",
    "settlement_items",
}


def test_migrations_build_the_models_schema_and_tear_it_down(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            # The migrations and the ORM models describe the same schema.
            assert compare_metadata(context, Base.metadata) == []
        db.upgrade(engine)  # idempotent at head
        db.downgrade(engine, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        db.upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_upgrading_keeps_existing_rows(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO integrations (workspace_id, name, region, marketplaces, start_date,"
                " status, invoice_status, sales_account_code, shipping_account_code,"
                " tax_overrides, created_by, created_at, updated_at) VALUES ('local', 'Old',"
                " 'eu', '[]', '2026-01-01', 'active', 'AUTHORISED', '200', '200', '{}', 'cli',"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        db.upgrade(engine)
        with engine.connect() as connection:
            row = connection.exec_driver_sql("SELECT name, xero_tax_types FROM integrations").one()
        assert row[0] == "Old"
        assert row[1] in ({}, "{}")
    finally:
        engine.dispose()


def test_row_keys_recorded_before_0010_are_the_keys_rows_get_now(database_url: str) -> None:
    """A month read again after the upgrade must find its rows: each old key becomes what
    RowEncoder makes of the same row today."""
    row = transaction_from_json(STORED_BEFORE_AMAZON_VAT)
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine, "0009")
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO integrations (workspace_id, name, region, marketplaces, start_date,"
                " status, invoice_status, sales_account_code, shipping_account_code,"
                " tax_overrides, vat_rates, xero_tax_types, created_by, created_at, updated_at)"
                " VALUES ('local', 'Old', 'eu', '[]', '2026-01-01', 'active', 'AUTHORISED',"
                " '200', '200', '{}', '{}', '{}', 'cli', '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO sync_runs (integration_id, period, status, started_at, attempts,"
                " summary) VALUES (1, '2024-05', 'succeeded', '2026-01-01 00:00:00', 1, '{}')"
            )
            connection.exec_driver_sql(
                "INSERT INTO amazon_transactions (integration_id, run_id, row_key,"
                " document_key, transaction_type, payload) VALUES (1, 1, %(key)s, NULL, 'SALE',"
                " %(payload)s)"
                if engine.dialect.name == "postgresql"
                else "INSERT INTO amazon_transactions (integration_id, run_id, row_key,"
                " document_key, transaction_type, payload) VALUES (1, 1, :key, NULL, 'SALE',"
                " :payload)",
                {"key": KEY_RECORDED, "payload": json.dumps(STORED_BEFORE_AMAZON_VAT)},
            )
        db.upgrade(engine)
        with engine.connect() as connection:
            migrated = connection.exec_driver_sql("SELECT row_key FROM amazon_transactions").one()
        assert migrated[0] == RowEncoder()(row).key
    finally:
        engine.dispose()
