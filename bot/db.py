"""Database engine, sessions and Alembic migrations (applied at start and by `db upgrade`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from bot.config import DATA_DIR

MIGRATIONS = Path(__file__).with_name("migrations")
# Seconds a pooled PostgreSQL connection may rest before its next check-out pings it.
PING_AFTER_IDLE = 2.0
# SQLite's own files beside the database: it creates them with the database file's mode.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_directory(directory: Path) -> None:
    """Create `directory` owner-only (0700); one the bot created before is made so too.

    A directory someone else made (a mount, /var/lib/...) keeps the mode they gave it; the
    files the bot writes in it are owner-only in any case.
    """
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
        directory.chmod(0o700)  # mkdir's mode passes through the umask
    elif directory.resolve() == DATA_DIR.resolve():
        directory.chmod(0o700)


def _private_sqlite_file(database: Path) -> None:
    """The database and its WAL and shared memory are owner-only (0600): they hold buyers'
    names and addresses. Created empty here so that SQLite, which gives the WAL and the
    shared-memory file the database's mode, never makes them readable to others."""
    private_directory(database.parent)
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (database, *(Path(f"{database}{suffix}") for suffix in _SQLITE_COMPANIONS)):
        if path.exists():
            path.chmod(0o600)  # also a database an earlier version created with the umask's mode


# Runs side by side in one process (the scheduler's organisations). Each holds up to three
# connections at once (its claim, a payout's claim, a session); the pool's first five serve the
# web server and Slack's listeners. Overflow connections close when returned.
CONCURRENT_RUNS = 24
POOL_SIZE = 5
POOL_OVERFLOW = 3 * CONCURRENT_RUNS


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        in_memory = not url.database or url.database == ":memory:"
        if not in_memory:
            _private_sqlite_file(Path(url.database or ""))
        pool = {} if in_memory else {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the web server read while a sync writes; FKs are off by default in SQLite.
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL survives any process crash; a power cut may lose the last
            # commits, which a re-run repairs (Xero numbers are unique, batches idempotent).
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Copy the log into the database every ~40 MB, not every 4 MB: a month is recorded
            # in chunks of about 1 MB, and each copy waits for the disk (half of ingest's
            # commit time at 100k rows).
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """A pooled connection is pinged at check-out only when it has been idle a while: one the
    bot used a moment ago is alive (pinging every check-out cost 19 s of a 1M-row sync's
    posting). A ping that fails discards the connection and the pool takes another
    (SQLAlchemy's DisconnectionError), as pool_pre_ping does."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object
    ) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"the pooled connection is gone: {error}") from error


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: services hand them to the CLI and Slack renderers.
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)
