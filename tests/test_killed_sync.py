"""A sync killed with SIGKILL mid-posting: the next sync of that month proceeds at once and
posts each document exactly once, on both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from bot.container import Container
from sandbox.world import SandboxWorld
from services.models import Integration, RunStatus
from tests.conftest import REPO
from tests.test_sync import PERIOD, assert_exactly_once, expected_totals, result_totals


def test_a_sync_killed_mid_posting_lets_the_next_one_proceed_at_once(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    # The second batch of invoices reaches Xero, which makes them; the sync's process is
    # killed before it hears back: the worst moment, documents in Xero but not in the ledger.
    entered, gate = threading.Event(), threading.Event()
    batches = 0
    answer = world.xero._batch_answer

    def held_answer(endpoint: str, results: list[Any], summarize: bool) -> Any:
        nonlocal batches
        if endpoint == "Invoices":
            batches += 1
            if batches == 2:
                entered.set()
                gate.wait(60)
        return answer(endpoint, results, summarize)

    world.xero._batch_answer = held_answer  # type: ignore[method-assign]
    env = (
        os.environ
        | world.env()
        | {
            "DATABASE_URL": container.settings.database_url,
            "TOKEN_ENCRYPTION_KEY": container.settings.token_encryption_key or "",
        }
    )
    log = tmp_path / "sync.log"
    with log.open("w") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "bot", "sync", shop.name, "--period", PERIOD],
            env=env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        assert entered.wait(60), log.read_text()
        assert container.claims.is_held(shop.id, PERIOD)
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        gate.set()
        if child.poll() is None:
            child.kill()
    world.xero._batch_answer = answer  # type: ignore[method-assign]
    # The killed process's run is still marked running; its claim died with it.
    [run] = container.sync.runs(shop.id, workspace_id=None)
    assert run.status == RunStatus.RUNNING
    assert not container.sync.is_held(run.id, workspace_id=None)

    result = container.sync.sync_period(shop, PERIOD)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert result.already_posted >= 1  # the lost batch, found in Xero and adopted
    assert result_totals(result) == expected_totals(world)
    assert_exactly_once(world)
