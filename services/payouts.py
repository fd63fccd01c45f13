"""The settlements Amazon deposited in a month, fetched for the month's sync.

Settlement reports cannot be requested: Amazon makes one when a settlement closes, and getReports
lists them. A month's payouts are the settlements whose deposit-date falls in it; one that closed
in the last days of the month before may be deposited in this one, so the search starts a little
earlier, and reports that closed after the month are not downloaded (their deposit is later).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from services.amazon import SpApiClient
from services.reports import ReportKind
from services.settlements import Settlement, read_settlement

# Amazon deposits within days of a settlement closing; a week covers a slow bank holiday.
DEPOSIT_DELAY = timedelta(days=7)
# Amazon keeps reports for 90 days: getReports lists no settlement created before.
REPORT_RETENTION = timedelta(days=90)


def unlisted_note(start: datetime, now: datetime) -> str | None:
    """What to tell finance when some of the settlements of a month starting at `start` may be
    too old for getReports to list: how to book them all the same."""
    if start - DEPOSIT_DELAY >= now - REPORT_RETENTION:
        return None
    return (
        "Amazon lists settlement reports for 90 days only, so this month's older payouts were "
        "not found. Download them from Seller Central (Payments, All statements) and book each "
        "with `python -m bot import-report FILE --integration NAME`."
    )


def deposited_in(
    amazon: SpApiClient,
    marketplace_ids: Sequence[str],
    start: datetime,
    end: datetime,
    now: datetime,
) -> Iterator[Settlement]:
    """Each settlement of these marketplaces deposited in [start, end), oldest first."""
    reports = amazon.get_reports(
        [ReportKind.SETTLEMENT_V2.value],
        created_since=start - DEPOSIT_DELAY,
        created_until=min(end + DEPOSIT_DELAY, now),
        marketplace_ids=marketplace_ids,
    )
    seen: set[str] = set()
    for report in sorted(reports, key=lambda report: report.created_time):
        if report.data_end_time is not None and report.data_end_time >= end:
            continue
        document = amazon.get_report_document(report.report_document_id or "")
        settlement = read_settlement(amazon.iter_report_lines(document), file_name=report.name)
        if settlement.settlement_id in seen or not start <= settlement.deposit_date < end:
            continue
        seen.add(settlement.settlement_id)
        yield settlement
