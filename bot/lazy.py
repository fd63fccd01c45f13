"""Bolt's lazy listeners, run so that a failure reaches the user: on a thread pool (tests, the
demo, Socket Mode alike) or handed as a job to the worker process (`bot/worker.py`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from slack_bolt import BoltRequest
from slack_bolt.kwargs_injection import build_required_kwargs
from slack_bolt.lazy_listener import LazyListenerRunner
from slack_bolt.util.utils import get_arg_names_of_callable

from handlers.errors import report_after_ack


class ReportingLazyRunner(LazyListenerRunner):
    """Runs a lazy function as Bolt does, except that a failure reaches the user (Bolt's own
    runner only logs it): the work after the ack is where most errors happen."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def run(self, function: Callable[..., None], request: BoltRequest) -> None:
        try:
            function(
                **build_required_kwargs(
                    logger=self.logger,
                    required_arg_names=get_arg_names_of_callable(function),
                    request=request,
                    response=None,
                    this_func=function,
                )
            )
        except Exception as error:
            context = request.context
            report_after_ack(error, request.body, context.respond, context.client)


class ThreadLazyRunner(ReportingLazyRunner):
    """The work after an ack, dispatched through the app again on a thread, as the worker
    dispatches it in its process: listener middleware (`handlers.authz.admin_only`) runs
    where the work runs, after the ack, in both. Its signature is checked again, well within
    the five minutes it is good for: the work starts as soon as a thread is free."""

    def __init__(
        self, logger: logging.Logger, executor: Executor, dispatch: Callable[[BoltRequest], Any]
    ) -> None:
        super().__init__(logger)
        self.executor = executor
        self._dispatch = dispatch

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        # A lazy-only request: Bolt runs `function` alone, through `run`.
        self.executor.submit(self._dispatch, request)


@dataclass(frozen=True)
class LazyJob:
    """A Slack request as it came, and which of its listener's lazy functions to run."""

    function: str
    body: str | dict[str, Any]  # HTTP: the raw body; Socket Mode: the payload
    headers: dict[str, str | Sequence[str]]
    query: dict[str, Sequence[str]]
    mode: str


class JobQueue(Protocol):
    """Where a lazy function's job goes to be run elsewhere (bot.worker.SlackWorker)."""

    def submit(self, job: LazyJob) -> None: ...


class ProcessLazyRunner(ReportingLazyRunner):
    """Hands each lazy function, with the request as Slack sent it, to `jobs`."""

    def __init__(self, logger: logging.Logger, jobs: JobQueue) -> None:
        super().__init__(logger)
        self.jobs = jobs

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        body = request.raw_body if request.mode == "http" else request.body
        self.jobs.submit(
            LazyJob(
                function=request.lazy_function_name or "",
                body=body,
                headers=dict(request.headers),
                query=dict(request.query),
                mode=request.mode,
            )
        )
