"""The HTTP edge of `python -m bot run` under hostile traffic, on loopback.

The bot runs as deployed (waitress with bot/server.py's settings, its worker process) against
the sandbox, in HTTP mode. Measured from outside, as an attacker and an operator would see it:

1. `/healthz` at rest: HEALTH_REQUESTS requests one after another on a keep-alive connection.
2. FLOOD concurrent unsigned bodies of 10 MB (over the 1 MiB cap: refused with 413 unread), then
   FLOOD concurrent unsigned bodies of 512 KiB (under the cap: Bolt refuses them with 401, which
   used to log each body whole). The web process's memory (VmRSS, sampled every 10 ms, and its
   peak VmHWM) and the log's size, before and after.
3. HALF_OPEN connections held, each a header line short of a request, while PROBES `/healthz`
   and PROBES signed `/amazon help` are sent one after another: each must be answered within
   1 s. Then one connection sending a header line every 2 s: how long until it is dropped.

Bounded: a few hundred connections, about a minute in all, 127.0.0.1 only.

    .venv/bin/python bench/bench_edge.py
"""

from __future__ import annotations

import contextlib
import multiprocessing
import platform
import re
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from bench_slack_ack import Server, bot_server, free_port, percentile
from cryptography.fernet import Fernet

from bot.server import CHANNEL_TIMEOUT
from sandbox.slack_driver import SlackDriver
from sandbox.world import SandboxWorld

HEALTH_REQUESTS = 500
FLOOD = 200
BIG_BODY = 10 * 1024 * 1024
UNDER_CAP_BODY = 512 * 1024
HALF_OPEN = 200
PROBES = 20
TARGET_RSS_MB = 50.0
TARGET_LOG_MB = 1.0
TARGET_SECONDS = 1.0


def _memory_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


class PeakRss:
    """The process's resident memory, sampled every 10 ms while in the `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _memory_kib(self.pid, "VmRSS"))

    def __enter__(self) -> PeakRss:
        self.peak = _memory_kib(self.pid, "VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def unsigned_post(port: int, size: int) -> str:
    """An unsigned POST of `size` bytes to Slack's endpoint: the status the bot answers, or
    "reset" when it closed the connection before its answer could be read."""
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {size}\r\n"
        f"X-Slack-Request-Timestamp: {int(time.time())}\r\n\r\n"
    ).encode()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head)
        with contextlib.suppress(OSError):  # the bot may answer and close before it is all sent
            connection.sendall(b"x" * size)
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                answer += chunk
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "reset"


def flood(bot: Server, port: int, log: Path, size: int) -> None:
    log_before = log.stat().st_size
    rss_before = _memory_kib(bot.pid, "VmRSS")
    started = time.perf_counter()
    with PeakRss(bot.pid) as rss, ThreadPoolExecutor(FLOOD) as pool:
        answers = list(pool.map(lambda _: unsigned_post(port, size), range(FLOOD)))
    seconds = time.perf_counter() - started
    time.sleep(0.5)  # the last refusals' log lines
    grown = (rss.peak - rss_before) / 1024
    logged = (log.stat().st_size - log_before) / 1024 / 1024
    counts = {answer: answers.count(answer) for answer in sorted(set(answers))}
    held = grown < TARGET_RSS_MB and logged < TARGET_LOG_MB
    print(
        f"{FLOOD} x {size / 1024 / 1024:g} MB unsigned at once: answers {counts} "
        f"in {seconds:.1f} s; "
        f"web process RSS {rss_before / 1024:.0f} MB, peak +{grown:.1f} MB "
        f"(VmHWM {_memory_kib(bot.pid, 'VmHWM') / 1024:.0f} MB); log +{logged * 1024:.1f} KiB "
        f"[{'held' if held else 'missed'}: < {TARGET_RSS_MB:g} MB, < {TARGET_LOG_MB:g} MB]"
    )


def at_rest(bot: Server) -> None:
    with requests.Session() as session:
        for _ in range(20):  # warm-up
            session.get(f"{bot.url}/healthz", timeout=5)
        seconds = []
        for _ in range(HEALTH_REQUESTS):
            started = time.perf_counter()
            assert session.get(f"{bot.url}/healthz", timeout=5).status_code == 200
            seconds.append(time.perf_counter() - started)
    ms = [s * 1000 for s in seconds]
    print(
        f"/healthz at rest, {HEALTH_REQUESTS} on one keep-alive connection: "
        f"p50 {percentile(ms, 0.5):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, max {max(ms):.2f} ms"
    )


def half_open(bot: Server, port: int, slack: SlackDriver) -> None:
    held = []
    try:
        for _ in range(HALF_OPEN):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(connection)
        opened = time.monotonic()
        health, commands = [], []
        for _ in range(PROBES):
            started = time.perf_counter()
            assert requests.get(f"{bot.url}/healthz", timeout=5).status_code == 200
            health.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert slack.command("help", key="bench-help").status_code == 200
            commands.append(time.perf_counter() - started)
        within = time.monotonic() - opened
    finally:
        for connection in held:
            connection.close()
    worst = max(health + commands)
    print(
        f"{HALF_OPEN} half-open connections held: "
        f"{PROBES} /healthz max {max(health) * 1000:.1f} ms, "
        f"{PROBES} signed /amazon help max {max(commands) * 1000:.1f} ms, all within "
        f"{within:.1f} s of opening them [{'held' if worst < TARGET_SECONDS else 'missed'}: < 1 s]"
    )


def trickle(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        dropped = None
        while dropped is None and time.monotonic() - started < CHANNEL_TIMEOUT * 4:
            try:
                connection.sendall(b"X-Slow: 1\r\n")
                if connection.recv(1) == b"":
                    dropped = time.monotonic() - started
            except TimeoutError:
                continue  # still open; recv waited 2 s
            except OSError:
                dropped = time.monotonic() - started
    when = f"dropped after {dropped:.1f} s" if dropped is not None else "never dropped"
    print(f"one header line every 2 s: {when} (a request must arrive within {CHANNEL_TIMEOUT} s)")


def main() -> None:
    print(
        f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite; server and clients on 127.0.0.1"
    )
    port = free_port()
    with tempfile.TemporaryDirectory() as directory, SandboxWorld() as world:
        env = world.env() | {
            "DATABASE_URL": f"sqlite:///{directory}/data/bench.sqlite3",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "INFO",
        }
        log = Path(directory) / "bot.log"
        with bot_server(env, port, log) as bot:
            slack = SlackDriver(
                bot.url, env["SLACK_SIGNING_SECRET"], world.slack, world.slack_server.url
            )
            at_rest(bot)
            flood(bot, port, log, BIG_BODY)
            flood(bot, port, log, UNDER_CAP_BODY)
            half_open(bot, port, slack)
            trickle(port)
            refusals = [line for line in log.read_text().splitlines() if "refused a Slack" in line]
            print(f"log lines about refused Slack requests: {len(refusals)}")


if __name__ == "__main__":
    main()
