"""Pooled PostgreSQL connections: one used a moment ago is not pinged again at check-out, and one
the server dropped while it rested is replaced without the caller noticing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine

from bot import db
from tests.conftest import _postgres_url


def test_a_resting_connection_the_server_dropped_is_replaced_a_busy_one_is_not_pinged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _postgres_url()
    engine, killer = db.make_engine(url), create_engine(url)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def counted_ping(connection: Any) -> bool:
        pings.append(connection)
        return real_ping(connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    try:
        with engine.connect() as connection:  # a new connection: pinged once
            pid = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        for _ in range(5):  # back at once: not pinged
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
        assert len(pings) == 1

        with killer.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # it has rested long enough

        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
        assert len(pings) == 3  # the dropped one, then its replacement
    finally:
        engine.dispose()
        killer.dispose()
