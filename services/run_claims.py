"""Run claims that end with their holder's process.

A sync of one integration's period is claimed for as long as its run lasts. The claim is a lock
the database server or the operating system drops when the holding process dies, however it
dies (`kill -9`, an OOM kill, a redeploy), so the next run of that period may start at once; a
holder that is alive but not running (stopped, swapped out, paused in a debugger) keeps it.

- PostgreSQL: a session-level advisory lock, `pg_try_advisory_lock(integration id, period
  key)`, on a connection checked out of the engine's pool for the claim's life (one pool
  connection per live claim). PostgreSQL releases it when that session ends. Run claims own
  the two-key (int4, int4) advisory space of the database; any other advisory lock must use
  the one-key (bigint) form, whose keys PostgreSQL keeps apart from two-key ones, so the two
  can never collide. The period key is a CRC-32 of the period: two periods of one integration
  whose CRCs agree would exclude each other, never share a claim.
- SQLite file: `flock` on `<database>.claims/<integration>-<period>.lock`. The kernel drops it
  when the process's descriptor closes, at exit or death. flock locks belong to an open file
  description, so two claimants in one process (threads) exclude each other too, and closing
  some other descriptor of the same file (as POSIX `fcntl` locks would) does not release it.
  The lock files stay: removing one while another claimant has it open would let two in.
- SQLite in memory: the database lives and dies with this process, so a process-local set of
  held keys per engine is enough.

A PostgreSQL claim can also end while its holder lives: the server restarts, or the claim's
session is cut. The holder then confirms its claim (`Claim.confirm`) before each step that
sends to Xero, and stops with `ClaimLost` rather than work beside a new holder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import quote

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from services.errors import ErrorKind, ServiceError

log = logging.getLogger(__name__)


class ClaimLost(ServiceError):
    """The run's claim ended while the run went on: another process may hold it now, so the
    run stops and leaves the run's record to that one."""

    def __init__(self) -> None:
        super().__init__(
            ErrorKind.UPSTREAM_UNAVAILABLE,
            "This run lost its hold on the month (its database session ended) and stopped "
            "before sending more to Xero; the next sync of the month takes it up.",
            retryable=True,
        )


class Claim:
    """One run's hold on an integration's period, released once, from any thread."""

    def __init__(
        self, release: Callable[[], None], alive: Callable[[], bool] | None = None
    ) -> None:
        self._release = release
        self._alive = alive
        self._released = False
        self._guard = threading.Lock()

    def confirm(self) -> None:
        """Raise ClaimLost unless this claim still holds (a file lock or an in-memory claim
        holds until released; an advisory lock is asked of the server)."""
        with self._guard:
            if self._released or (self._alive is not None and not self._alive()):
                raise ClaimLost()

    def release(self) -> None:
        # Releasing twice must not touch the claim a later holder took (nor a reused descriptor).
        with self._guard:
            if self._released:
                return
            self._released = True
            self._release()

    def __enter__(self) -> Claim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class _Locks(Protocol):
    def hold(self, integration_id: int, period: str) -> Claim | None: ...

    def is_held(self, integration_id: int, period: str) -> bool: ...


class RunClaims:
    """Claims on (integration, period) runs that die with their holder's process."""

    def __init__(self, engine: Engine) -> None:
        self._locks = _locks_for(engine)

    def hold(self, integration_id: int, period: str) -> Claim | None:
        """This run's claim for this process, or None while another live holder has it."""
        return self._locks.hold(integration_id, period)

    def is_held(self, integration_id: int, period: str) -> bool:
        """Whether a live holder has it now (does not take it)."""
        return self._locks.is_held(integration_id, period)


def _locks_for(engine: Engine) -> _Locks:
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return _AdvisoryLocks(engine)
    if backend == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            return _ProcessLocks(engine)
        # Resolved now, so that a later change of working directory keeps the same lock files.
        return _FileLocks(Path(database).resolve())
    raise ValueError(f"run claims need SQLite or PostgreSQL, not {backend}")


def _period_key(period: str) -> int:
    """A stable signed 32-bit key for `period` (Python's hash() differs between processes)."""
    crc = zlib.crc32(period.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _as_oid(key: int) -> int:
    # pg_locks shows the two int4 keys as oids: their unsigned 32-bit reading.
    return key & 0xFFFFFFFF


class _AdvisoryLocks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def hold(self, integration_id: int, period: str) -> Claim | None:
        period_key = _period_key(period)
        connection = self._engine.connect()
        try:
            taken = connection.scalar(
                text(
                    "SELECT pg_try_advisory_lock(CAST(:integration AS int4), CAST(:period AS int4))"
                ),
                {"integration": integration_id, "period": period_key},
            )
            # The lock belongs to the session, not the transaction: ending the transaction
            # keeps the claim from being an open transaction that blocks vacuum for hours.
            connection.commit()
        except BaseException:
            # The lock may have been taken: this session must never go back to the pool.
            connection.invalidate()
            connection.close()
            raise
        if not taken:
            connection.close()
            return None
        return Claim(
            lambda: _unlock(connection, integration_id, period_key),
            alive=lambda: _still_locked(connection, integration_id, period_key),
        )

    def is_held(self, integration_id: int, period: str) -> bool:
        # Read from pg_locks: trying the lock to find out would hold it for a moment, and a
        # run starting in that moment would be refused.
        with self._engine.connect() as connection:
            held = connection.scalar(
                text(
                    "SELECT EXISTS (SELECT FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
                    " AND database = (SELECT oid FROM pg_database"
                    "                 WHERE datname = current_database())"
                    " AND classid = CAST(:integration AS oid) AND objid = CAST(:period AS oid))"
                ),
                {"integration": _as_oid(integration_id), "period": _as_oid(_period_key(period))},
            )
        return bool(held)


def _still_locked(connection: Connection, integration_id: int, period_key: int) -> bool:
    try:
        held = connection.scalar(
            text(
                "SELECT EXISTS (SELECT FROM pg_locks"
                " WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted"
                " AND objsubid = 2"
                " AND classid = CAST(:integration AS oid) AND objid = CAST(:period AS oid))"
            ),
            {"integration": _as_oid(integration_id), "period": _as_oid(period_key)},
        )
        connection.commit()
    except DBAPIError as error:
        log.warning("run claim of integration %s: session lost (%s)", integration_id, error)
        connection.invalidate()  # its lock went with it: nothing left to unlock
        return False
    return bool(held)


def _unlock(connection: Connection, integration_id: int, period_key: int) -> None:
    if connection.invalidated:
        connection.close()
        return
    try:
        connection.execute(
            text("SELECT pg_advisory_unlock(CAST(:integration AS int4), CAST(:period AS int4))"),
            {"integration": integration_id, "period": period_key},
        )
        connection.commit()
    except DBAPIError as error:
        # Closing the session drops the lock if the server still had it; a pooled session
        # still holding it would answer "taken" to every later claim it served.
        log.warning("run claim of integration %s: unlock failed (%s)", integration_id, error)
        connection.invalidate()
    finally:
        connection.close()


class _FileLocks:
    def __init__(self, database: Path) -> None:
        self._directory = database.with_name(f"{database.name}.claims")

    def _path(self, integration_id: int, period: str) -> Path:
        # quote() keeps letters, digits and "_.-~" and escapes the rest, "/" included: any
        # period ("2026-11", "import:<hex digest>") is one file name of its own, never a path.
        return self._directory / f"{integration_id}-{quote(period, safe='')}.lock"

    def hold(self, integration_id: int, period: str) -> Claim | None:
        self._directory.mkdir(mode=0o700, exist_ok=True)
        descriptor = os.open(self._path(integration_id, period), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        except BaseException:
            os.close(descriptor)
            raise
        return Claim(lambda: _unflock(descriptor))

    def is_held(self, integration_id: int, period: str) -> bool:
        try:
            descriptor = os.open(self._path(integration_id, period), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            # A shared lock is refused only while someone holds the exclusive one. For the
            # moment it is held, a claimant elsewhere is refused as if the run were held:
            # the safe direction.
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
        return False


def _unflock(descriptor: int) -> None:
    # Unlocked explicitly: a child forked meanwhile shares the open file description.
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


# Each in-memory engine is its own database: its claims are kept per engine, for the
# engine's life.
_IN_MEMORY_HELD: weakref.WeakKeyDictionary[Engine, set[tuple[int, str]]] = (
    weakref.WeakKeyDictionary()
)
_IN_MEMORY_GUARD = threading.Lock()


class _ProcessLocks:
    def __init__(self, engine: Engine) -> None:
        with _IN_MEMORY_GUARD:
            self._held = _IN_MEMORY_HELD.setdefault(engine, set())

    def hold(self, integration_id: int, period: str) -> Claim | None:
        key = (integration_id, period)
        with _IN_MEMORY_GUARD:
            if key in self._held:
                return None
            self._held.add(key)
        return Claim(lambda: self._drop(key))

    def _drop(self, key: tuple[int, str]) -> None:
        with _IN_MEMORY_GUARD:
            self._held.discard(key)

    def is_held(self, integration_id: int, period: str) -> bool:
        with _IN_MEMORY_GUARD:
            return (integration_id, period) in self._held
