"""Xero's minute limit per organisation holds across processes: counted in PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from bot.db import make_engine
from services.shared_limits import OrganisationLimits
from tests.conftest import _postgres_url


@pytest.mark.postgres
def test_two_processes_share_an_organisations_limit_and_not_anothers() -> None:
    # Each process has its limits object and its connections; the database is the same.
    url = _postgres_url()
    engines = [make_engine(url), make_engine(url)]
    first, second = (OrganisationLimits(engine, 4, period=2.0) for engine in engines)
    granted: list[float] = []

    def four_calls(limits: OrganisationLimits) -> None:
        for _ in range(4):
            limits.acquire("org-a")
            granted.append(time.monotonic())

    threads = [threading.Thread(target=four_calls, args=(limits,)) for limits in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    granted.sort()

    assert len(granted) == 8
    # Four a window between them: the second four waited for the first window to pass.
    assert granted[3] - granted[0] < 1.5
    assert granted[4] - granted[0] >= 1.9
    # Another organisation's calls are not held by org-a's full window.
    started = time.monotonic()
    first.acquire("org-b")
    assert time.monotonic() - started < 1.0
    for engine in engines:
        engine.dispose()
