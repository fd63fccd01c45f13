"""Slack's ack: how long `/amazon list` and a Retry click wait for the HTTP answer under load.

The HTTP answer to Slack's request is the ack Slack waits for (3 s at most). Two apps answer the
same signed requests (SlackDriver's, as Slack sends them), each in a process of its own:

- bot: `python -m bot run` as deployed (waitress, Bolt's Flask adapter, its worker process),
  on SQLite with INTEGRATIONS integrations, one of them synced month by month with every month
  partly failed (PLN is not enabled in the sandbox Xero). `/amazon list` renders them all and
  answers through the response_url. A Retry click names a real failed item and its message:
  after the ack the worker updates the message, posts the document to Xero again (refused
  again, PLN staying off, so the item can be clicked again) and updates it with the outcome.
- bare: a Bolt App with the same signing secret, client, adapter and server whose /amazon and
  retry_item only ack().

This process runs the sandbox (Slack's and Xero's side of the bot's calls after its acks); the
clients run in a child process: CLIENTS at once, each with its own keep-alive requests.Session,
timing from sending the request to its response. Per case: a warm-up, then ROUNDS rounds
sending a batch to each app in turn (the order alternating, so that drift hits both alike),
REQUESTS in all per app. After each batch the bot's worker gets DRAIN_TIMEOUT seconds to finish
what it was handed (its /healthz counts it), so that its work weighs on the bot's own acks and
not on the bare app's. The retries themselves then go on in the worker's background pool, at
the pace of Xero's 60 calls a minute that the bot keeps to: mostly waiting, little CPU. CPU is
read from /proc: each server process's over its batches, the bot's worker's apart.

    .venv/bin/python bench/bench_slack_ack.py [requests per app and case] [--rounds R]
                                            (default 400 requests, 4 rounds)
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import zip_longest
from pathlib import Path
from typing import Any

import requests
import waitress
from cryptography.fernet import Fernet
from flask import Flask, Response, request
from slack_bolt import Ack, App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk import WebClient

from bot.config import load_settings
from bot.container import Container
from bot.web import SLACK_EVENTS_PATH
from handlers import blocks
from handlers.blocks import ids
from handlers.commands import COMMAND
from sandbox.browser import consent_to_both
from sandbox.slack import SlackSandbox
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from services.integrations import IntegrationSpec
from services.marketplaces import Region

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 20
REQUESTS = 400
ROUNDS = 4
WARM_UP = 40  # untimed requests per app and case first: connections, caches, auth.test
DRAIN_TIMEOUT = 10.0
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0  # the bot's worker finishes what it holds first
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
    # Each server process's CPU seconds over its app's timed batches and drains: what the app
    # did per request after its acks too. The bot's worker is counted apart.
    cpu: dict[str, float] = field(
        default_factory=lambda: {"bot": 0.0, "bot worker": 0.0, "bare": 0.0}
    )
    busy: int = 0  # batches after which the bot's worker was still at work


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu(self) -> float:
        """User and system CPU seconds of the process (and, for the bot, apart: its worker)."""
        return _cpu_seconds(self.pid)

    def children_cpu(self) -> float:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return sum(_cpu_seconds(int(child)) for child in children)


def _cpu_seconds(pid: int) -> float:
    # /proc/PID/stat: utime and stime are the 14th and 15th fields; the name (2nd) may hold
    # spaces, so count from after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def serve_bare(signing_secret: str, token: str, api_url: str, port: int) -> None:
    """In a child process: the bare app, served as `python -m bot run` serves the bot."""
    logging.disable(logging.WARNING)
    client = WebClient(token=token, base_url=api_url)
    waitress.serve(bare_app(signing_secret, client), host="127.0.0.1", port=port, threads=8)


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
    consent_to_both(container.connect, shops[0], actor="U0ADMIN")
    runs = []
    for period in PERIODS:
        shop = container.integrations.get_by_id(shops[0].id, workspace_id=None)
        runs.append(
            container.sync.failed_items(
                container.sync.sync_period(shop, period).run_id, workspace_id=None
            )
        )
    # Run by run in turn, so that consecutive clicks retry different runs.
    failed = [item for turn in zip_longest(*runs) for item in turn if item is not None]
    client = WebClient(token=world.slack.bot_token, base_url=world.env()["SLACK_API_URL"])
    targets = []
    for item in failed:
        message = blocks.failed_item_message(item, retrying_by=None, retried_by=None)
        posted = client.chat_postMessage(channel=ERRORS_CHANNEL, **message)
        targets.append(Target(item.id, posted["message"]))
    return targets


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(url: str, process: Any) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if not process_alive(process):
            raise SystemExit(f"the server behind {url} exited at start")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer in {STARTUP_TIMEOUT:.0f} s")


def process_alive(process: Any) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is None
    return bool(process.is_alive())


HEALTH_TOKEN = "bench-health-token-0000"


def drain(bot: Server, timeout: float) -> bool:
    """Wait until the bot's worker has finished what it was handed (its /healthz counts it);
    False if it is still busy after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        details = requests.get(
            f"{bot.url}/healthz", headers={"Authorization": f"Bearer {HEALTH_TOKEN}"}, timeout=5
        ).json()
        if details.get("worker_pending") == 0:
            return True
        time.sleep(0.2)
    return False


def measure(
    clients: ProcessPoolExecutor, batches: dict[str, Batch], servers: dict[str, Server], rounds: int
) -> Measured:
    measured = Measured()
    bot = servers["bot"]

    def run(name: str, batch: Batch) -> tuple[list[Answer], dict[str, float]]:
        # The server's CPU over the batch; its worker's over the batch and the drain (the
        # drain polls the bot's /healthz, which is not what is measured).
        server = servers[name]
        before = server.cpu(), bot.children_cpu()
        answers = clients.submit(send_batch, batch).result()
        cpu = {name: server.cpu() - before[0]}
        if not drain(bot, DRAIN_TIMEOUT):
            measured.busy += 1
        if name == "bot":
            cpu["bot worker"] = bot.children_cpu() - before[1]
        return answers, cpu

    for name, batch in batches.items():
        run(name, replace(batch, count=WARM_UP))
    for number in range(rounds):
        for name in list(batches)[:: 1 if number % 2 == 0 else -1]:
            answers, cpu = run(name, batches[name])
            measured.answers[name] += answers
            for key, seconds in cpu.items():
                measured.cpu[key] += seconds
    return measured


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: dict[str, Measured]) -> None:
    print(
        f"{'case':<13} {'app':<5} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'no ack':>7} {'CPU ms/request':>15} {'worker CPU ms/request':>22}"
    )
    for case, measured in results.items():
        for name, answers in measured.answers.items():
            ms = [answer.seconds * 1000 for answer in answers]
            missed = sum(answer.status != 200 for answer in answers)
            cpu = f"{measured.cpu[name] * 1000 / len(ms):.1f}"
            worker = f"{measured.cpu['bot worker'] * 1000 / len(ms):.1f}" if name == "bot" else ""
            print(
                f"{case:<13} {name:<5} {len(ms):>4} {percentile(ms, 0.5):>8.1f} "
                f"{percentile(ms, 0.99):>8.1f} {max(ms):>8.1f} {missed:>7} {cpu:>15} {worker:>22}"
            )
    print(f"{'case':<13} {'bot/bare p50':>12} {'bot/bare p99':>12}  p99 < 300 ms and <= 1.5x")
    for case, measured in results.items():
        bot, bare = ([a.seconds for a in measured.answers[name]] for name in ("bot", "bare"))
        p50 = percentile(bot, 0.5) / percentile(bare, 0.5)
        p99 = percentile(bot, 0.99) / percentile(bare, 0.99)
        held = percentile(bot, 0.99) * 1000 < TARGET_P99_MS and p99 <= TARGET_RATIO
        busy = f" (worker still busy after {measured.busy} batches)" if measured.busy else ""
        print(f"{case:<13} {p50:>12.2f} {p99:>12.2f}  {'held' if held else 'missed'}{busy}")


@contextmanager
def bot_server(env: dict[str, str], port: int, log: Path) -> Iterator[Server]:
    """`python -m bot run`, as deployed, until SIGTERM (which lets it stop its worker)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env=os.environ | env | {"PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{url}/healthz", process)
            yield Server(url, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def bare_server(secret: str, token: str, api_url: str) -> Iterator[Server]:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_bare, args=(secret, token, api_url, port)
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        assert process.pid is not None
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.join()


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
    port = free_port()
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as clients,
        tempfile.TemporaryDirectory() as directory,
        SandboxWorld() as world,
    ):
        env = world.env() | {
            "DATABASE_URL": f"sqlite:///{directory}/bench.sqlite3",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "HEALTH_TOKEN": HEALTH_TOKEN,  # the worker's pending count is a detail
        }
        container = Container(load_settings(env, dotenv=Path("/nonexistent")))
        container.migrate()
        secret = env["SLACK_SIGNING_SECRET"]
        with (
            # Up first: the setup's consents come back to its OAuth callbacks.
            bot_server(env, port, Path(directory) / "bot.log") as bot,
            bare_server(secret, env["SLACK_BOT_TOKEN"], env["SLACK_API_URL"]) as bare,
        ):
            started = time.perf_counter()
            targets = tuple(failed_targets(container, world))
            container.engine.dispose()
            print(
                f"setup: {INTEGRATIONS} integrations, {len(PERIODS)} partly failed months, "
                f"{len(targets)} failed items ({time.perf_counter() - started:.0f} s)"
            )
            servers = {"bot": bot, "bare": bare}
            results = {}
            for case in (LIST, RETRY):
                batches = {
                    name: Batch(case, server.url, secret, world.slack_server.url, count // rounds)
                    for name, server in servers.items()
                }
                if case == RETRY:
                    batches = {name: replace(b, targets=targets) for name, b in batches.items()}
                results[case] = measure(clients, batches, servers, rounds)
        logged = (Path(directory) / "bot.log").read_text().splitlines()
        errors = [line for line in logged if " ERROR " in line]
        lists = len(world.slack.responses("list"))
        warnings = [str(r.get("text")) for r in world.slack.responses("retry")]
        updates = sum(1 for method, _ in world.slack.calls if method == "chat.update")
    report(results)
    collided = sum("already running" in text for text in warnings)
    print(
        f"bot, after its acks: {lists} lists answered; {updates} chat.update of retried items, "
        f"{collided} retries found their month already being retried, "
        f"{len(warnings) - collided} other warnings; {len(errors)} errors in the bot's log"
    )
    for line in errors[:5]:
        print(f"  {line}")


if __name__ == "__main__":
    main(sys.argv[1:])
