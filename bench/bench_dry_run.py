"""`import-report --dry-run --json` against a bare csv.reader pass over the same file.

For each size a VAT transactions report is generated first (not timed). Then a fresh process
(so that its peak RSS is this size's alone) times a bare `csv.reader` pass over the file and
the real command, `python -m bot import-report FILE --integration Bench --dry-run --json`,
called in-process through `bot.cli.main` with its output counted and dropped. Both times are
wall-clock seconds; the ratio is the figure the issue bounds (10x at 100k). The ratio of the
two processor times is printed beside it: on a shared machine it moves less. Last, the same
process times `parse_report` alone over the file: the part of the dry run that is reading.

    .venv/bin/python bench/bench_dry_run.py [rows ...]   (default rows: 10000 100000 1000000)
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from cryptography.fernet import Fernet

from bot.cli import main as cli
from bot.config import Settings, load_settings
from bot.container import Container
from sandbox.amazon_reports import write_vat_report
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from services.report_files import read_report_file
from services.reports import parse_report

EU = ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")


class _Counter:
    """A text stream that keeps only how often `marker` went through it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.count = 0

    def write(self, text: str) -> int:
        self.count += text.count(self.marker)
        return len(text)

    def flush(self) -> None:
        return None


def _settings(database: Path, key: str) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{database}", "TOKEN_ENCRYPTION_KEY": key}
    return load_settings(env, dotenv=Path("/nonexistent"))


def _add_integration(database: Path, key: str) -> None:
    container = Container(_settings(database, key))
    container.migrate()
    container.integrations.create_connected(
        IntegrationSpec("Bench", Region.EU, EU, date(2026, 1, 1)),
        actor="bench",
        selling_partner_id="A1BENCH",
        amazon_refresh_token="Atzr|bench",
        xero_tenant_id="tenant",
        xero_refresh_token="bench",
    )
    container.engine.dispose()


def _measure(path: Path, database: Path, key: str, queue: multiprocessing.Queue[tuple]) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    with path.open(newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle, delimiter="\t")) - 1
    bare, bare_cpu = time.perf_counter() - started, time.process_time() - cpu

    # JSON lines on stdout; "would fail" lines on stderr (beside alembic's log lines).
    out, err = _Counter("\n"), _Counter("would fail:")
    arguments = ["import-report", str(path), "--integration", "Bench", "--dry-run", "--json"]
    settings = _settings(database, key)
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(arguments, settings=settings)
    dry_run, dry_run_cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    for _ in parse_report(read_report_file(path), file_name=path.name):
        pass
    parse = time.perf_counter() - started
    queue.put(
        (rows, bare, dry_run, dry_run_cpu / bare_cpu, peak, out.count, err.count, code, parse)
    )


def bench(sizes: list[int]) -> None:
    print(
        f"{'rows':>9} {'csv.reader s':>13} {'dry run s':>10} {'ratio':>6} {'cpu ratio':>10} "
        f"{'peak RSS MB':>12} {'JSON lines':>11} {'parse alone s':>14}"
    )
    key = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "bench.sqlite3"
        _add_integration(database, key)
        for size in sizes:
            report = write_vat_report(
                Path(directory) / f"vat-{size}.txt", rows=size, marketplace_ids=list(EU)
            )
            spawn = multiprocessing.get_context("spawn")
            queue = spawn.Queue()
            child = spawn.Process(target=_measure, args=(report, database, key, queue))
            child.start()
            rows, bare, dry_run, cpu_ratio, peak, lines, failures, code, parse = queue.get()
            child.join()
            assert (code, failures) == (0, 0), f"exit {code}, {failures} would fail"
            print(
                f"{rows:>9} {bare:>13.2f} {dry_run:>10.2f} {dry_run / bare:>6.1f} "
                f"{cpu_ratio:>10.1f} {peak:>12.1f} {lines:>11} {parse:>14.2f}"
            )
            report.unlink()


def main(arguments: list[str]) -> None:
    print(
        f"machine: {platform.platform()}, {platform.machine()}, "
        f"{multiprocessing.cpu_count()} cores, Python {platform.python_version()}"
    )
    sizes = [int(argument) for argument in arguments if argument.isdigit()]
    bench(sizes or [10_000, 100_000, 1_000_000])


if __name__ == "__main__":
    main(sys.argv[1:])
