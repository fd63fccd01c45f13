"""Alembic environment: the engine comes from the caller (bot.db), never from an ini file."""

from __future__ import annotations

from alembic import context

from services.models import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        # A batch rebuild drops the old table, and with foreign keys on that drop deletes every
        # row referring to it (ON DELETE CASCADE). SQLite ignores the pragma inside a
        # transaction, so it is set before the migrations begin theirs.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # the pooled connection goes back
        connection.commit()
        if broken:
            raise RuntimeError(f"the migrations left rows with missing references: {broken[:5]}")
