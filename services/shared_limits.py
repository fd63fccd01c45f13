"""Xero's per-organisation minute limit, counted where every process sees it: PostgreSQL.

In one process XeroClient's own window keeps an organisation's calls at 60 a minute. With
several processes (the CLI beside `python -m bot run`, two workers) each would allow itself 60,
and Xero answers the rest with 429s. `OrganisationLimits` counts the calls of every process in
the bot's database with pyrate-limiter's PostgresBucket (a table per organisation; the count
and the insert under a table lock), over the bot's own connections rather than a pool of its
own. On SQLite, one process by design, the in-process window is all there is.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyrate_limiter import BucketFactory, Limiter, Rate, RateItem
from pyrate_limiter.buckets.postgres import PostgresBucket
from pyrate_limiter.clocks import PostgresClock
from sqlalchemy import Engine


class _EngineConnections:
    """What PostgresBucket asks of psycopg_pool's ConnectionPool (`connection()`: a psycopg
    connection, committed at the end), served from the bot's SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def connection(self) -> Iterator[Any]:
        pooled = self._engine.raw_connection()
        try:
            connection = pooled.driver_connection
            assert connection is not None
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()  # ends the transaction, and with it the table lock
        finally:
            pooled.close()


class _PerOrganisation(BucketFactory):
    """A bucket per organisation, made at its first call; old calls are deleted as new ones
    come (no leak thread)."""

    def __init__(self, connections: _EngineConnections, rates: list[Rate]) -> None:
        self._connections = connections
        self._rates = rates
        self._clock = PostgresClock(connections)
        self._buckets: dict[str, PostgresBucket] = {}
        self._lock = threading.Lock()

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self._clock.now(), weight=weight)

    def get(self, item: RateItem) -> PostgresBucket:
        with self._lock:
            bucket = self._buckets.get(item.name)
            if bucket is None:
                table = "xero_" + re.sub(r"\W", "_", item.name)
                bucket = PostgresBucket(self._connections, table, self._rates)
                self._buckets[item.name] = bucket
            return bucket


class OrganisationLimits:
    """At most `limit` calls in any `period` seconds per organisation, across processes."""

    def __init__(self, engine: Engine, limit: int, *, period: float) -> None:
        self._factory = _PerOrganisation(
            _EngineConnections(engine), [Rate(limit, int(period * 1000))]
        )
        self._limiter = Limiter(self._factory)

    def acquire(self, organisation: str) -> None:
        """Wait until the organisation may take one more call, and count it."""
        if not self._limiter.try_acquire(organisation, blocking=True):
            raise RuntimeError(f"no call could be counted for {organisation}")
        bucket = self._factory.get(RateItem(organisation, 0))
        bucket.leak(self._factory.wrap_item(organisation).timestamp)
