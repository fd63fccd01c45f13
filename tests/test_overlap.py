"""Writes done behind the caller's back must still be done in order, waited for, and fail
loudly: a lost outcome would leave a document in flight, a swallowed error would hide it."""

from __future__ import annotations

import threading
import time

import pytest

from services.overlap import Alongside, WriteBehind


@pytest.mark.parametrize("threaded", [True, False])
def test_writes_run_in_order_one_at_a_time_and_all_end_with_the_block(threaded: bool) -> None:
    done: list[int] = []
    running = threading.Semaphore(1)

    def write(n: int) -> None:
        assert running.acquire(blocking=False), "two writes at once"
        time.sleep(0.01)
        done.append(n)
        running.release()

    with WriteBehind(threaded) as writes:
        for n in range(5):
            writes.write(write, n)
    assert done == [0, 1, 2, 3, 4]


def test_a_failed_write_is_raised_by_the_next_one_and_nothing_after_it_runs() -> None:
    done: list[str] = []

    def fail() -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"), WriteBehind(threaded=True) as writes:
        writes.write(fail)
        writes.write(done.append, "after")
    assert done == []


def test_when_the_block_fails_its_last_write_still_ends_and_the_blocks_error_goes_on() -> None:
    ended = threading.Event()

    def slow() -> None:
        time.sleep(0.05)
        ended.set()
        raise RuntimeError("the write's own error")

    with pytest.raises(ValueError, match="the block's"), WriteBehind(threaded=True) as writes:
        writes.write(slow)
        raise ValueError("the block's")
    assert ended.is_set()


def test_alongside_runs_on_its_own_thread_only_when_threaded() -> None:
    for threaded, same in ((True, False), (False, True)):
        with Alongside(threaded, "test") as alongside:
            thread = alongside.submit(threading.current_thread).result()
        assert (thread is threading.current_thread()) is same
