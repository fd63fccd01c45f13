"""Where Slack listeners' work after the ack runs (Bolt's lazy listeners).

`python -m bot run` acks in the web process and hands the rest to one worker process, started
at a lower CPU priority: acks must come within Slack's 3 s whatever the load, while rendering a
list, answering through a response_url or retrying at Xero can wait a few milliseconds. The
worker also runs the monthly scheduler, so that the server's Xero calls, and with them Xero's
per-organisation limits and rotating refresh tokens, live in one process.

The web process sends the request as Slack sent it (body, headers) and the lazy function's name;
the worker's Bolt app dispatches it again in Bolt's lazy-only mode, which runs that function
alone. The signature was checked in the web process; the worker's app, reached only through
this queue, does not check it again (by then it may be over five minutes old).

Tests and the demo use `bot.lazy.ThreadLazyRunner` instead: the same functions on a thread
pool, nothing to spawn.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.sharedctypes import Synchronized

from slack_bolt import BoltRequest

from bot.config import Settings
from bot.container import Container
from bot.lazy import LazyJob
from bot.logs import configure_logging
from bot.scheduler import SyncScheduler
from bot.slack_app import create_slack_app

log = logging.getLogger(__name__)

# Below the web process, so the kernel runs acks first when both want the CPU (at 10, the
# acks' p99 under load was 1.67x a bare Bolt app's; at 19, 1.3-1.45x: docs/BENCHMARKS.md).
WORKER_NICENESS = 19
WORKER_THREADS = 8  # lazy functions at once: most of their time is waiting on Slack
_POLL_SECONDS = 1.0  # how often an idle worker checks that the web process still lives


class SlackWorker:
    """The worker process, restarted when it has died (its queued work is then lost, as it
    would be in a crash of a single process)."""

    def __init__(self, settings: Settings, *, scheduler: bool = True) -> None:
        self._settings = settings
        self._scheduler = scheduler
        self._mp = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._queue: multiprocessing.Queue[LazyJob | None] | None = None
        self._pending: Synchronized[int] = self._mp.Value("i", 0)
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopping = False

    def start(self) -> SlackWorker:
        with self._lock:
            self._spawn()
        return self

    def _spawn(self) -> None:
        # A new queue each time: one whose reader was killed mid-read may be left locked.
        # Unbounded: put() never blocks an ack, however far behind the worker is.
        self._queue = self._mp.Queue()
        self._pending.value = 0
        self._process = self._mp.Process(
            target=_work,
            args=(self._settings, self._queue, self._pending, self._scheduler, os.getpid()),
            name="slack-worker",
        )
        self._process.start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def pending(self) -> int:
        """Requests handed over and not finished (queued or running)."""
        return int(self._pending.value)

    def submit(self, job: LazyJob) -> None:
        with self._lock:
            if self._stopping:  # a request acked while the server shuts down
                log.warning("stopping: the work after the ack of %s is dropped", job.function)
                return
            if not self.alive:
                exit_code = self._process.exitcode if self._process else None
                log.error("the Slack worker had stopped (exit code %s); starting it", exit_code)
                self._abandon_queue()  # what it held is gone with it
                self._spawn()
            assert self._queue is not None
            with self._pending.get_lock():
                self._pending.value += 1
            self._queue.put(job)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending; False if something still is after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.pending

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what was handed over (up to `timeout` s), then stop the worker."""
        with self._lock:
            self._stopping = True
            process, self._process = self._process, None
            if process is None:
                return
            if process.is_alive() and self._queue is not None:
                self._queue.put(None)
        process.join(timeout)
        if process.is_alive():
            log.warning("the Slack worker did not finish in %.0f s; terminating it", timeout)
            process.terminate()
            process.join(5)
        with self._lock:
            self._abandon_queue()

    def _abandon_queue(self) -> None:
        if self._queue is not None:
            self._queue.cancel_join_thread()  # nobody reads what is left in it
            self._queue.close()
            self._queue = None


def _work(
    settings: Settings,
    jobs: multiprocessing.Queue[LazyJob | None],
    pending: Synchronized[int],
    run_scheduler: bool,
    parent: int,
) -> None:
    """The worker process: Bolt's app with the same listeners, dispatching lazy-only requests."""
    os.nice(WORKER_NICENESS)
    # Ctrl-C reaches the whole process group: the web process stops the worker in its turn.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings.log_level)
    container = Container(settings)
    app = create_slack_app(container, verify_requests=False)
    scheduler = SyncScheduler(container) if run_scheduler else None
    if scheduler is not None:
        scheduler.start()

    def dispatch(job: LazyJob) -> None:
        try:
            headers = job.headers | {
                "x-slack-bolt-lazy-only": ["1"],
                "x-slack-bolt-lazy-function-name": [job.function],
            }
            request = BoltRequest(body=job.body, headers=headers, query=job.query, mode=job.mode)
            app.dispatch(request)
        except Exception:
            log.exception("a Slack request's work failed in the worker")
        finally:
            with pending.get_lock():
                pending.value -= 1

    with ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="slack-lazy") as pool:
        while True:
            try:
                job = jobs.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if os.getppid() != parent:  # the web process is gone without stopping us
                    break
                continue
            if job is None:
                break
            pool.submit(dispatch, job)
    if scheduler is not None:
        scheduler.stop()
    container.background.shutdown(wait=True)
    container.engine.dispose()
