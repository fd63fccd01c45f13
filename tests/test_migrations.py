from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot import db
from services.models import Base

TABLES = {"integrations", "oauth_states", "sync_runs", "ledger_items", "audit_log"}


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
