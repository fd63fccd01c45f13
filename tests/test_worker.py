"""`python -m bot run`'s split: the web process acks, a worker process does the work after."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import requests

from bot.container import Container
from bot.slack_app import create_slack_app
from bot.web import create_web_app
from bot.worker import SlackWorker
from sandbox.server import LoopbackServer
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from tests.test_slack_app import SPEC, texts, wait_for

# Spawning the worker imports the whole bot first: its first answer takes a second or two.
FIRST_ANSWER_TIMEOUT = 60.0


@pytest.fixture
def served(
    container: Container, world: SandboxWorld
) -> Iterator[tuple[SlackDriver, SlackWorker, str]]:
    worker = SlackWorker(container.settings, scheduler=False)
    web = create_web_app(container, create_slack_app(container, worker=worker), worker=worker)
    with LoopbackServer(web) as server:
        worker.start()
        try:
            secret = container.settings.slack_signing_secret or ""
            yield (
                SlackDriver(server.url, secret, world.slack, world.slack_server.url),
                worker,
                server.url,
            )
        finally:
            worker.stop()


def test_the_worker_answers_after_the_ack_and_comes_back_when_it_dies(
    served: tuple[SlackDriver, SlackWorker, str], container: Container
) -> None:
    slack, worker, url = served
    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    assert slack.command("list", key="list").status_code == 200
    [listing] = wait_for(lambda: slack.slack.responses("list"), timeout=FIRST_ANSWER_TIMEOUT)
    assert "Acme EU" in texts(listing)

    # An error in the work after the ack reaches the user, from the worker too.
    slack.command("stop Acme EU", user="U0VIEWER", key="viewer")
    [refusal] = wait_for(lambda: slack.slack.responses("viewer"))
    assert "Only admins can stop integrations" in texts(refusal)
    assert worker.wait_idle(10)
    health = requests.get(f"{url}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json() | {} == {
        "status": "ok",
        "database": "ok",
        "worker": "ok",
        "worker_pending": 0,
    }

    assert worker.pid is not None and worker.pid != os.getpid()
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: [] if worker.alive else [True])
    health = requests.get(f"{url}/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["worker"] == "stopped"

    # The next request starts a new worker, which answers it.
    assert slack.command("list", key="again").status_code == 200
    [again] = wait_for(lambda: slack.slack.responses("again"), timeout=FIRST_ANSWER_TIMEOUT)
    assert "Acme EU" in texts(again)
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
