"""Slack through the real `python -m bot run` (its web process and its worker): retries queued
behind a held month hold none of the worker's background threads, and say what happens."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from bot.container import Container
from handlers.blocks import ids
from sandbox.slack_driver import SlackDriver
from sandbox.world import SandboxWorld
from services.models import RunStatus, SyncRun
from tests.test_slack_app import failed_item_in_errors, texts, wait_for


@pytest.fixture
def container(served_container: Container) -> Container:
    return served_container


def test_retries_queued_behind_a_held_month_leave_the_worker_free(
    slack: SlackDriver, container: Container, world: SandboxWorld
) -> None:
    item, posted = failed_item_in_errors(container, world)
    # Ada's "Retry all failed" holds October: the claim her retry's process would hold.
    adas = container.claims.hold(item.integration_id, "2026-10")
    assert adas is not None
    with adas:
        with container.sessions.begin() as session:
            run = session.get(SyncRun, item.run_id)
            assert run is not None
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == item.run_id)
                .values(status=RunStatus.RUNNING, summary=run.summary | {"held_by": "U0ADA"})
            )

        for _ in range(4):  # as many clicks as the worker has background threads
            slack.click(ids.RETRY_ITEM, str(item.id), channel="C0ERRORS", message=posted)
        told = wait_for(
            lambda: [c for _, c in world.slack.calls if "queued behind" in str(c.get("blocks"))],
            4,
            timeout=20,
        )
        assert all("the retry started by <@U0ADA>" in str(call["blocks"]) for call in told)

        # Syncing the held month says so; another month starts at once: no thread is waiting.
        slack.command("sync Acme EU 2026-10", key="held")
        [held] = wait_for(lambda: slack.slack.responses("held"), timeout=20)
        assert "already running" in texts(held)
        slack.command("sync Acme EU 2026-09", key="other")
        [other] = wait_for(lambda: slack.slack.responses("other"), timeout=20)
        assert "Syncing" in texts(other)

        def september() -> list[SyncRun]:
            with container.sessions() as session:
                query = select(SyncRun).where(SyncRun.period == "2026-09")
                return list(session.scalars(query))

        wait_for(september, timeout=20)
