"""Database work alongside Python's, where the database is a server of its own.

On PostgreSQL a statement is a wait on a socket, during which psycopg lets other threads run:
the server's process works on the other core while this one prepares the next rows. SQLite
runs inside this process and lets go of the interpreter at every row it steps through, so a
thread of its own would hand the interpreter back and forth thousands of times a chunk, each
handover a wait: there the work is done at once, in the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Alongside:
    """Calls run one at a time, in order, on a thread of their own when `threaded`, else
    at once (their errors raised at once). Leaving the `with` block waits for them all."""

    def __init__(self, threaded: bool, name: str) -> None:
        self._thread = ThreadPoolExecutor(1, name) if threaded else None

    def submit(self, call: Callable[..., T], *args: Any) -> Future[T]:
        if self._thread is not None:
            return self._thread.submit(call, *args)
        done: Future[T] = Future()
        done.set_result(call(*args))
        return done

    def __enter__(self) -> Alongside:
        return self

    def __exit__(self, *_: object) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)


class WriteBehind:
    """Writes that the caller need not wait for, in order, at most one outstanding: a write
    waits for the one before it, whose failure it raises. Leaving the `with` block waits for
    the last write; when the block raised, the write still ends (committed or not) before
    the block's error goes on, and its own error does not replace the block's."""

    def __init__(self, threaded: bool) -> None:
        self._alongside = Alongside(threaded, "ledger-writes")
        self._last: Future[None] | None = None

    def write(self, call: Callable[..., None], *args: Any) -> None:
        self.wait()
        self._last = self._alongside.submit(call, *args)

    def wait(self) -> None:
        last, self._last = self._last, None
        if last is not None:
            last.result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        try:
            if error is None:
                self.wait()
            elif self._last is not None:
                self._last.exception()
        finally:
            self._alongside.__exit__()
