"""Slack's ack: how long `/amazon list` and a Retry click wait for the HTTP answer under load.

The HTTP answer to Slack's request is the ack Slack waits for (3 s at most): Bolt sends it once
the listener has called ack(), and the listener goes on on Bolt's threads. Two apps answer the
same signed requests (SlackDriver's, as Slack sends them), served the same way (waitress, Bolt's
Flask adapter, a LoopbackServer) in this process, beside the sandbox:

- bot: create_web_app(container, create_slack_app(container)), its middleware, services and
  SQLite with INTEGRATIONS integrations, one of them synced month by month with every month
  partly failed (PLN is not enabled in the sandbox Xero). `/amazon list` renders them all and
  answers through the response_url. A Retry click names a real failed item and its message:
  after the ack the listener updates the message, posts the document to Xero again (refused
  again, PLN staying off, so the item can be clicked again) and updates it with the outcome.
- bare: a Bolt App with the same signing secret whose /amazon and retry_item only ack().

The clients run in a child process, so that they do not share the servers' interpreter lock:
CLIENTS at once, each with its own keep-alive requests.Session, timing from sending the request
to its response. Per case: a warm-up, then ROUNDS rounds sending a batch to each app in turn
(the order alternating, so that drift hits both alike), REQUESTS in all per app. After each
batch the bot's listeners are given DRAIN_TIMEOUT seconds to finish their work, so that it
weighs on the bot's own acks and not on the bare app's.

    .venv/bin/python bench/bench_slack_ack.py [requests per app and case] [--rounds R]
                                            (default 400 requests, 4 rounds)
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import zip_longest
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from flask import Flask, Response, request
from slack_bolt import Ack, App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk import WebClient

from bot.config import load_settings
from bot.container import Container
from bot.slack_app import create_slack_app
from bot.web import SLACK_EVENTS_PATH, LateBoundApp, create_web_app
from handlers import blocks
from handlers.blocks import ids
from handlers.commands import COMMAND
from sandbox.browser import submit_consent
from sandbox.server import LoopbackServer
from sandbox.slack import SlackSandbox
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from services.integrations import IntegrationSpec
from services.marketplaces import Region

CLIENTS = 20
REQUESTS = 400
ROUNDS = 4
WARM_UP = 40  # untimed requests per app and case first: connections, caches, auth.test
DRAIN_TIMEOUT = 10.0
INTEGRATIONS = 4
# Twelve months, a run each: a retry holds its run, so clicks spread over twelve.
PERIODS = ("2025-11", "2025-12", *(f"2026-{month:02d}" for month in range(1, 11)))
ORDERS = 12  # a month's orders: one to three of them from Poland, in PLN
EU = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3")  # DE, UK, PL
ERRORS_CHANNEL = "C0ERRORS"
LIST, RETRY = "/amazon list", "Retry click"
TARGET_P99_MS = 300.0
TARGET_RATIO = 1.5


@dataclass(frozen=True)
class Answer:
    seconds: float
    status: int  # not 200: no ack (Bolt answers 404 when ack() was not called within 3 s)


@dataclass(frozen=True)
class Target:
    """A failed item and its message in #errors, as the notifier posts it."""

    item_id: int
    message: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """What the client process is asked to send: `count` requests of one case to one app."""

    case: str
    app_url: str
    secret: str
    slack_url: str
    count: int
    targets: tuple[Target, ...] = ()


@dataclass
class Measured:
    answers: dict[str, list[Answer]] = field(default_factory=lambda: {"bot": [], "bare": []})
    # This process's CPU seconds over each app's timed batches and drains: what the app did
    # per request after its acks too (and, for the bot, the sandbox's side of its calls).
    cpu: dict[str, float] = field(default_factory=lambda: {"bot": 0.0, "bare": 0.0})
    busy: int = 0  # batches after which the bot's listeners were still at work


class TimedDriver(SlackDriver):
    """SlackDriver on one keep-alive session, timing the HTTP round trip alone (building and
    signing the body are the client's work)."""

    def __init__(self, app_url: str, secret: str, slack_url: str) -> None:
        # SlackDriver asks its SlackSandbox only to name response_urls: this process runs none.
        self.session = requests.Session()
        super().__init__(app_url, secret, _naming_sandbox(), slack_url, session=self.session)
        self.answers: list[Answer] = []

    def _post(self, data: bytes, headers: dict[str, str]) -> requests.Response:
        started = time.perf_counter()
        response = super()._post(data, headers)
        self.answers.append(Answer(time.perf_counter() - started, response.status_code))
        return response


@functools.cache
def _naming_sandbox() -> SlackSandbox:
    return SlackSandbox()


def send_batch(batch: Batch) -> list[Answer]:
    """In the client process: CLIENTS clients at once, each waiting for its answer."""

    def client(worker: int) -> list[Answer]:
        driver = TimedDriver(batch.app_url, batch.secret, batch.slack_url)
        with driver.session:
            for index in range(worker, batch.count, CLIENTS):
                if batch.case == LIST:
                    driver.command("list", key="list")
                else:
                    target = batch.targets[index % len(batch.targets)]
                    driver.click(
                        ids.RETRY_ITEM,
                        str(target.item_id),
                        channel=ERRORS_CHANNEL,
                        message=target.message,
                        key="retry",
                    )
        return driver.answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [answer for answers in pool.map(client, range(CLIENTS)) for answer in answers]


def bare_app(signing_secret: str, client: WebClient) -> Flask:
    """The floor: Bolt with the same secret, client and adapter, and listeners that only ack."""
    app = App(signing_secret=signing_secret, client=client, token_verification_enabled=False)

    @app.command(COMMAND)
    def amazon(ack: Ack) -> None:
        ack()

    @app.action(ids.RETRY_ITEM)
    def retry_item(ack: Ack) -> None:
        ack()

    handler = SlackRequestHandler(app)
    web = Flask("bare")

    @web.post(SLACK_EVENTS_PATH)
    def slack_events() -> Response:
        return handler.handle(request)

    return web


def failed_targets(container: Container, world: SandboxWorld) -> list[Target]:
    """The workspace's integrations: one synced month by month, each month partly failed, the
    others waiting to be connected. Each failed item gets its message in #errors."""
    world.amazon.orders_per_report = ORDERS
    world.amazon.report_processing_polls = 0
    world.amazon.enforce_rate_limits = False
    world.xero.minute_limit = world.xero.day_limit = 1_000_000
    # Not what is measured: the listeners' Slack calls get no 429s from the sandbox.
    world.slack.post_rate = None
    start = date.fromisoformat(f"{PERIODS[0]}-01")
    shops = [
        container.integrations.create(
            IntegrationSpec(f"Shop {number}", Region.EU, EU, start),
            actor="U0ADMIN",
            workspace_id=TEAM,
        )
        for number in range(1, INTEGRATIONS + 1)
    ]
    # The sandbox has one seller and one Xero organisation: one integration posts to them.
    browser = requests.Session()
    submit_consent(browser, container.connect.amazon_consent_url(shops[0], actor="U0ADMIN"))
    submit_consent(browser, container.connect.xero_consent_url(shops[0], actor="U0ADMIN"))
    runs = []
    for period in PERIODS:
        shop = container.integrations.get_by_id(shops[0].id)
        runs.append(container.sync.failed_items(container.sync.sync_period(shop, period).run_id))
    # Run by run in turn, so that consecutive clicks retry different runs.
    failed = [item for turn in zip_longest(*runs) for item in turn if item is not None]
    client = WebClient(token=world.slack.bot_token, base_url=world.env()["SLACK_API_URL"])
    targets = []
    for item in failed:
        message = blocks.failed_item_message(item, retrying_by=None, retried_by=None)
        posted = client.chat_postMessage(channel=ERRORS_CHANNEL, **message)
        targets.append(Target(item.id, posted["message"]))
    return targets


def listener_pool(app: App) -> ThreadPoolExecutor:
    """Where Bolt runs every listener, its ack() included (App's default: 5 threads)."""
    executor = app.listener_runner.listener_executor
    assert isinstance(executor, ThreadPoolExecutor)
    return executor


def drain(app: App, timeout: float) -> bool:
    """Wait until Bolt's listener threads are idle (all of them at one barrier: whatever was
    queued before has finished); False if they are still busy after `timeout` seconds."""
    pool = listener_pool(app)
    workers = pool._max_workers  # the executor's size has no public name
    barrier = threading.Barrier(workers + 1, timeout=timeout)
    for _ in range(workers):
        pool.submit(barrier.wait)
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        return False
    return True


def measure(
    clients: ProcessPoolExecutor, batches: dict[str, Batch], bot: App, rounds: int
) -> Measured:
    measured = Measured()

    def run(batch: Batch) -> tuple[list[Answer], float]:
        started = time.process_time()
        answers = clients.submit(send_batch, batch).result()
        if not drain(bot, DRAIN_TIMEOUT):
            measured.busy += 1
        return answers, time.process_time() - started

    for batch in batches.values():
        run(replace(batch, count=WARM_UP))
    for number in range(rounds):
        for name in list(batches)[:: 1 if number % 2 == 0 else -1]:
            answers, cpu = run(batches[name])
            measured.answers[name] += answers
            measured.cpu[name] += cpu
    return measured


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: dict[str, Measured]) -> None:
    print(
        f"{'case':<13} {'app':<5} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'no ack':>7} {'CPU ms/request':>15}"
    )
    for case, measured in results.items():
        for name, answers in measured.answers.items():
            ms = [answer.seconds * 1000 for answer in answers]
            missed = sum(answer.status != 200 for answer in answers)
            # With the bot's listeners never idle, its CPU runs on into the bare app's batches.
            cpu = "-" if measured.busy else f"{measured.cpu[name] * 1000 / len(ms):.1f}"
            print(
                f"{case:<13} {name:<5} {len(ms):>4} {percentile(ms, 0.5):>8.1f} "
                f"{percentile(ms, 0.99):>8.1f} {max(ms):>8.1f} {missed:>7} {cpu:>15}"
            )
    print(f"{'case':<13} {'bot/bare p50':>12} {'bot/bare p99':>12}  p99 < 300 ms and <= 1.5x")
    for case, measured in results.items():
        bot, bare = ([a.seconds for a in measured.answers[name]] for name in ("bot", "bare"))
        p50 = percentile(bot, 0.5) / percentile(bare, 0.5)
        p99 = percentile(bot, 0.99) / percentile(bare, 0.99)
        held = percentile(bot, 0.99) * 1000 < TARGET_P99_MS and p99 <= TARGET_RATIO
        busy = f" (bot still busy after {measured.busy} batches)" if measured.busy else ""
        print(f"{case:<13} {p50:>12.2f} {p99:>12.2f}  {'held' if held else 'missed'}{busy}")


def main(arguments: list[str]) -> None:
    count = int(next((a for a in arguments if a.isdigit()), REQUESTS))
    rounds = int(arguments[arguments.index("--rounds") + 1]) if "--rounds" in arguments else ROUNDS
    # "No channel configured" and the like are expected here; errors still show.
    logging.disable(logging.WARNING)
    print(
        f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite; {CLIENTS} concurrent clients, "
        f"{count // rounds * rounds} requests per app and case in {rounds} rounds"
    )
    spawn = multiprocessing.get_context("spawn")
    late = LateBoundApp()
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as clients,
        tempfile.TemporaryDirectory() as directory,
        SandboxWorld() as world,
        LoopbackServer(late) as bot_server,
    ):
        env = world.env() | {
            "DATABASE_URL": f"sqlite:///{directory}/bench.sqlite3",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_BASE_URL": bot_server.url,
        }
        container = Container(load_settings(env, dotenv=Path("/nonexistent")))
        container.migrate()
        bot = create_slack_app(container)
        late.app = create_web_app(container, bot)
        started = time.perf_counter()
        targets = tuple(failed_targets(container, world))
        print(
            f"setup: {INTEGRATIONS} integrations, {len(PERIODS)} partly failed months, "
            f"{len(targets)} failed items ({time.perf_counter() - started:.0f} s)"
        )
        secret = container.settings.slack_signing_secret or ""
        # Bolt calls auth.test on the first request: the sandbox answers both apps.
        client = WebClient(token=world.slack.bot_token, base_url=world.env()["SLACK_API_URL"])
        with LoopbackServer(bare_app(secret, client)) as bare_server:
            results = {}
            for case in (LIST, RETRY):
                batches = {
                    name: Batch(case, url, secret, world.slack_server.url, count // rounds, targets)
                    for name, url in (("bot", bot_server.url), ("bare", bare_server.url))
                }
                results[case] = measure(clients, batches, bot, rounds)
        # Listeners still queued are dropped; those running finish before the servers stop.
        listener_pool(bot).shutdown(wait=True, cancel_futures=True)
        container.background.shutdown(wait=True, cancel_futures=True)  # retries after the acks
        container.engine.dispose()
        lists = len(world.slack.responses("list"))
        warnings = [str(r.get("text")) for r in world.slack.responses("retry")]
        updates = sum(1 for method, _ in world.slack.calls if method == "chat.update")
    report(results)
    collided = sum("already running" in text for text in warnings)
    print(
        f"bot, after its acks: {lists} lists answered; {updates} chat.update of retried items, "
        f"{collided} retries found their month already being retried, "
        f"{len(warnings) - collided} other warnings"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
