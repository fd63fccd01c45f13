"""Run claims: one holder at a time per integration and period, and a claim that dies with its
holder's process (killed) but never leaves a live one (stopped), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import select
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from bot.db import make_engine
from services.run_claims import Claim, ClaimLost, RunClaims
from tests.conftest import REPO, _postgres_url

PERIOD = "2026-11"
# Its CRC-32 has the top bit set: a negative int4 key, an oid above 2**31 in pg_locks.
HIGH_PERIOD = "2026-12"
IMPORT_PERIOD = f"import:{hashlib.sha256(b'report').hexdigest()}"


@pytest.fixture(
    params=["sqlite", "sqlite-in-memory", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    urls = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        "sqlite-in-memory": lambda: "sqlite://",
        "postgresql": _postgres_url,
    }
    built = make_engine(urls[request.param]())
    yield built
    built.dispose()


def held(claim: Claim | None) -> Claim:
    assert claim is not None, "the claim was refused"
    return claim


def test_two_claimants_exclude_each_other_until_the_holder_releases(engine: Engine) -> None:
    claims, other = RunClaims(engine), RunClaims(engine)
    first = held(claims.hold(1, PERIOD))
    assert claims.hold(1, PERIOD) is None
    assert other.hold(1, PERIOD) is None

    first.release()
    with held(other.hold(1, PERIOD)):
        assert claims.hold(1, PERIOD) is None
    held(claims.hold(1, PERIOD)).release()


def test_is_held_tells_without_taking(engine: Engine) -> None:
    claims = RunClaims(engine)
    assert not claims.is_held(1, HIGH_PERIOD)
    claim = held(claims.hold(1, HIGH_PERIOD))
    assert claims.is_held(1, HIGH_PERIOD)
    assert RunClaims(engine).is_held(1, HIGH_PERIOD)
    assert not claims.is_held(1, PERIOD)

    claim.release()
    assert not claims.is_held(1, HIGH_PERIOD)
    held(claims.hold(1, HIGH_PERIOD)).release()


def test_a_claim_confirms_while_held_and_not_after_release(engine: Engine) -> None:
    claim = held(RunClaims(engine).hold(1, PERIOD))
    claim.confirm()
    claim.release()
    with pytest.raises(ClaimLost):
        claim.confirm()


def test_a_second_release_leaves_the_next_holders_claim_alone(engine: Engine) -> None:
    claims = RunClaims(engine)
    first = held(claims.hold(1, PERIOD))
    first.release()
    second = held(claims.hold(1, PERIOD))
    first.release()
    with first:  # leaving the context releases it once more
        pass
    assert claims.is_held(1, PERIOD)
    assert claims.hold(1, PERIOD) is None
    second.release()


def test_other_periods_and_integrations_are_claimed_apart(engine: Engine) -> None:
    claims = RunClaims(engine)
    keys = [(1, PERIOD), (1, HIGH_PERIOD), (1, IMPORT_PERIOD), (2, PERIOD), (2, HIGH_PERIOD)]
    held_claims = [held(claims.hold(*key)) for key in keys]
    assert all(claims.is_held(*key) for key in keys)
    assert not claims.is_held(3, PERIOD)

    held_claims[0].release()
    assert not claims.is_held(1, PERIOD)
    assert all(claims.is_held(*key) for key in keys[1:])
    for claim in held_claims[1:]:
        claim.release()


def test_threads_exclude_each_other_and_release_from_any_thread(engine: Engine) -> None:
    claims = RunClaims(engine)
    contenders = 8
    start = threading.Barrier(contenders)

    def contend(_: int) -> Claim | None:
        start.wait()
        return claims.hold(1, PERIOD)

    with ThreadPoolExecutor(max_workers=contenders) as pool:
        results = list(pool.map(contend, range(contenders)))
        winners = [claim for claim in results if claim is not None]
        assert len(winners) == 1
        # A worker thread releases what another thread took.
        pool.submit(winners[0].release).result()
    held(claims.hold(1, PERIOD)).release()


def test_a_claim_is_released_when_its_context_ends_even_by_an_error(engine: Engine) -> None:
    claims = RunClaims(engine)
    with pytest.raises(RuntimeError), held(claims.hold(1, PERIOD)):
        assert claims.is_held(1, PERIOD)
        raise RuntimeError("the run failed")
    assert not claims.is_held(1, PERIOD)


def test_periods_become_lock_files_inside_the_claims_directory(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    claims = RunClaims(engine)
    tricky = ["../../escaped", "import:ab/cd", "import_ab%2Fcd"]
    held_claims = [held(claims.hold(1, period)) for period in [IMPORT_PERIOD, *tricky]]

    directory = tmp_path / "bot.sqlite3.claims"
    assert sorted(path.name for path in tmp_path.rglob("*.lock")) == sorted(
        path.name for path in directory.iterdir()
    )
    assert len(list(directory.iterdir())) == 4  # distinct periods, distinct files
    assert directory.stat().st_mode & 0o777 == 0o700
    for claim in held_claims:
        claim.release()
    engine.dispose()


def test_two_in_memory_databases_do_not_share_claims() -> None:
    first, second = make_engine("sqlite://"), make_engine("sqlite://")
    with held(RunClaims(first).hold(1, PERIOD)):
        held(RunClaims(second).hold(1, PERIOD)).release()


def claim_session_pid(connection: Connection, integration_id: int, period: str) -> int:
    pid: int = connection.scalar(
        text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = :integration AND objid = CAST(:period AS oid)"
        ),
        {"integration": integration_id, "period": zlib.crc32(period.encode())},
    )
    return pid


@pytest.mark.postgres
def test_a_claim_session_waits_outside_any_transaction() -> None:
    # An open transaction held for a whole run would keep vacuum from cleaning up behind it.
    engine = make_engine(_postgres_url())
    with held(RunClaims(engine).hold(1, PERIOD)), engine.connect() as admin:
        pid = claim_session_pid(admin, 1, PERIOD)
        state = admin.scalar(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
        assert state == "idle"
    engine.dispose()


@pytest.mark.postgres
def test_a_session_lost_under_a_claim_is_told_and_releases_without_error() -> None:
    engine = make_engine(_postgres_url())
    claims = RunClaims(engine)
    claim = held(claims.hold(1, PERIOD))
    claim.confirm()
    with engine.connect() as admin:
        pid = claim_session_pid(admin, 1, PERIOD)
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_for(lambda: not claims.is_held(1, PERIOD), within=5)
    # Its holder, still running, learns it before its next step.
    with pytest.raises(ClaimLost):
        claim.confirm()

    claim.release()
    held(claims.hold(1, PERIOD)).release()
    engine.dispose()


# A claimant in a process of its own: it says whether it holds the claim, then runs on.
HOLDER = """
import sys, time
from sqlalchemy import create_engine
from services.run_claims import RunClaims
claim = RunClaims(create_engine(sys.argv[1])).hold(int(sys.argv[2]), sys.argv[3])
print("held" if claim else "refused", flush=True)
time.sleep(600)
"""


@contextmanager
def holder_process(
    database_url: str, integration_id: int, period: str
) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url, str(integration_id), period],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the holder did not start"
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait(10)


def wait_for(condition: Callable[[], bool], *, within: float) -> float:
    """Seconds until `condition` holds, failing after `within`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within, f"not within {within} s"
        time.sleep(0.02)
    return time.monotonic() - start


def claim_taken(claims: RunClaims, integration_id: int, period: str) -> Callable[[], bool]:
    def take() -> bool:
        claim = claims.hold(integration_id, period)
        if claim is None:
            return False
        claim.release()
        return True

    return take


def test_a_killed_holder_leaves_the_claim_free_at_once(database_url: str) -> None:
    engine = create_engine(database_url)
    claims = RunClaims(engine)
    with holder_process(database_url, 7, PERIOD) as holder:
        assert claims.is_held(7, PERIOD)
        assert claims.hold(7, PERIOD) is None
        held(claims.hold(7, HIGH_PERIOD)).release()

        holder.send_signal(signal.SIGKILL)
        wait_for(claim_taken(claims, 7, PERIOD), within=1.0)
        assert holder.wait(5) == -signal.SIGKILL
    engine.dispose()


def process_state(pid: int) -> str:
    # /proc/<pid>/stat: "pid (command) state ..."
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_stopped_holder_keeps_the_claim_until_it_ends(database_url: str) -> None:
    engine = create_engine(database_url)
    claims = RunClaims(engine)
    with holder_process(database_url, 7, PERIOD) as holder:
        holder.send_signal(signal.SIGSTOP)
        wait_for(lambda: process_state(holder.pid) == "T", within=5)

        watched_until = time.monotonic() + 3
        while time.monotonic() < watched_until:
            assert claims.hold(7, PERIOD) is None
            assert claims.is_held(7, PERIOD)
            time.sleep(0.1)
        assert process_state(holder.pid) == "T"  # alive and stopped all along

        holder.send_signal(signal.SIGCONT)
        holder.terminate()
        wait_for(claim_taken(claims, 7, PERIOD), within=1.0)
        assert holder.wait(5) == -signal.SIGTERM
    engine.dispose()
