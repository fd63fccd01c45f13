"""`python -m bot run`'s split: the web process acks, a worker process does the work after."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests
from slack_bolt import App, BoltRequest

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
HEALTH_TOKEN = "worker-test-health-token"


@dataclass
class Served:
    """The bot as `python -m bot run` wires it: a web app whose Bolt app hands its work to a
    worker process."""

    slack: SlackDriver
    worker: SlackWorker
    url: str
    app: App


@pytest.fixture
def served(container: Container, world: SandboxWorld) -> Iterator[Served]:
    worker = SlackWorker(container.settings, scheduler=False)
    app = create_slack_app(container, worker=worker)
    # The health check's details are for whoever has its token.
    web = replace(container, settings=replace(container.settings, health_token=HEALTH_TOKEN))
    with LoopbackServer(create_web_app(web, app, worker=worker)) as server:
        worker.start()
        try:
            secret = container.settings.slack_signing_secret or ""
            driver = SlackDriver(server.url, secret, world.slack, world.slack_server.url)
            yield Served(driver, worker, server.url, app)
        finally:
            worker.stop()
            web.engine.dispose()


def health(url: str) -> requests.Response:
    return requests.get(
        f"{url}/healthz", headers={"Authorization": f"Bearer {HEALTH_TOKEN}"}, timeout=5
    )


def test_the_worker_answers_after_the_ack_and_comes_back_when_it_dies(
    served: Served, container: Container
) -> None:
    slack, worker, url = served.slack, served.worker, served.url
    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    assert slack.command("list", key="list").status_code == 200
    [listing] = wait_for(lambda: slack.slack.responses("list"), timeout=FIRST_ANSWER_TIMEOUT)
    assert "Acme EU" in texts(listing)

    # An error in the work after the ack reaches the user, from the worker too.
    slack.command("stop Acme EU", user="U0VIEWER", key="viewer")
    [refusal] = wait_for(lambda: slack.slack.responses("viewer"))
    assert "Only admins can stop integrations" in texts(refusal)
    assert worker.wait_idle(10)
    assert health(url).status_code == 200
    assert health(url).json() == {
        "status": "ok",
        "database": "ok",
        "worker": "ok",
        "worker_pending": 0,
    }

    assert worker.pid is not None and worker.pid != os.getpid()
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: [] if worker.alive else [True])
    assert health(url).status_code == 503 and health(url).json()["worker"] == "stopped"
    # Anyone else learns only that the bot is down.
    public = requests.get(f"{url}/healthz", timeout=5)
    assert (public.status_code, public.text) == (503, "down\n")

    # The next request starts a new worker, which answers it.
    assert slack.command("list", key="again").status_code == 200
    [again] = wait_for(lambda: slack.slack.responses("again"), timeout=FIRST_ANSWER_TIMEOUT)
    assert "Acme EU" in texts(again)
    assert health(url).status_code == 200


def test_socket_mode_requests_are_acked_and_answered_by_the_worker_too(
    served: Served, container: Container
) -> None:
    """What SocketModeHandler does with each envelope: dispatch its payload (no HTTP body,
    no signature) and send the answer back over the websocket as the ack."""
    container.integrations.create(SPEC, actor="U0ADMIN", workspace_id=TEAM)
    payload = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "channel_id": "C0FINANCE",
        "user_id": "U0ADMIN",
        "command": "/amazon",
        "text": "list",
        "api_app_id": "A0SANDBOX",
        "response_url": served.slack.response_url("socket"),
        "trigger_id": "1.2.trigger",
    }
    acked = served.app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
    assert acked.status == 200

    def answered() -> list[dict[str, Any]]:
        return served.slack.slack.responses("socket")

    [listing] = wait_for(answered, timeout=FIRST_ANSWER_TIMEOUT)
    assert "Acme EU" in texts(listing)
