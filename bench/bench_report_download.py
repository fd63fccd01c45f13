"""Streaming a VAT transactions report: rows per second and the client's memory as it grows.

The sandbox runs in a child process so that only the client's memory is measured. The client
downloads through the real path: createReport, getReport polling, RDT, getReportDocument,
the gzip document streamed and decoded line by line.

    .venv/bin/python bench/bench_report_download.py [orders ...]
"""

from __future__ import annotations

import multiprocessing
import platform
import resource
import sys
import time
from datetime import UTC, datetime

from services.amazon import LwaClient, SpApiClient

VAT_REPORT = "GET_VAT_TRANSACTION_DATA"
DE = "A1PA6795UKMFR9"


def _serve(orders: int, ready: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from sandbox.amazon import AmazonSandbox
    from sandbox.server import LoopbackServer

    sandbox = AmazonSandbox(orders_per_report=orders, enforce_rate_limits=False)
    server = LoopbackServer(sandbox.app).start()
    code = sandbox.authorization_code("https://bench.invalid/callback")
    ready.put((server.url, sandbox.client_id, sandbox.client_secret, code))
    time.sleep(3600)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(orders: int) -> tuple[int, float, float]:
    ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    child = multiprocessing.Process(target=_serve, args=(orders, ready), daemon=True)
    child.start()
    try:
        url, client_id, client_secret, code = ready.get(timeout=60)
        lwa = LwaClient(token_url=f"{url}/auth/o2/token", client_id=client_id,
                        client_secret=client_secret)  # fmt: skip
        refresh_token = lwa.exchange_code(code, "https://bench.invalid/callback")
        client = SpApiClient(endpoint=url, lwa=lwa, refresh_token=refresh_token,
                             sleep=lambda _seconds: None)  # fmt: skip
        start = time.perf_counter()
        report_id = client.create_report(
            VAT_REPORT, [DE], datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
        )
        report = client.wait_for_report(report_id)
        document = client.get_report_document(report.report_document_id or "", restricted=True)
        rows = sum(1 for _line in client.iter_report_lines(document)) - 1  # minus the header
        return rows, time.perf_counter() - start, _peak_rss_mb()
    finally:
        child.terminate()


def main(sizes: list[int]) -> None:
    print(f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"{'orders':>8} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'client peak RSS MB':>19}")
    for orders in sizes:
        rows, seconds, peak = measure(orders)
        print(f"{orders:>8} {rows:>9} {seconds:>8.2f} {rows / seconds:>9.0f} {peak:>19.1f}")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1_000, 10_000, 100_000])
