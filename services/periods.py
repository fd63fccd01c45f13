"""Calendar months as the sync counts them ("2026-10"), and when the monthly job runs."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from services.errors import ErrorKind, ServiceError

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in UTC."""
    match = _PERIOD.match(period)
    if match is None:
        raise ServiceError(
            ErrorKind.VALIDATION, f"{period!r} is not a period like 2026-10.", retryable=False
        )
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def previous_period(now: datetime) -> str:
    first = now.date().replace(day=1)
    return period_of(first - timedelta(days=1))


def periods_between(first: str, last: str) -> list[str]:
    periods, current = [], first
    while current <= last:
        periods.append(current)
        current = period_of(period_bounds(current)[1].date())
    return periods


def period_label(period: str) -> str:
    start, _ = period_bounds(period)
    return f"{start:%B %Y}"


def is_month(period: str) -> bool:
    """A month's run ("2026-10"), not an import's own."""
    return _PERIOD.match(period) is not None


def describe_period(period: str) -> str:
    """ "October 2026", or what an import's own period is."""
    return period_label(period) if is_month(period) else "imported report"


def next_sync(day_of_month: int, hour_utc: int, now: datetime) -> tuple[datetime, str]:
    """When the monthly job runs next, and the period it pulls then (the month before)."""
    scheduled = datetime(now.year, now.month, day_of_month, hour_utc, tzinfo=UTC)
    if scheduled <= now:
        _, following = period_bounds(period_of(now.date()))
        scheduled = scheduled.replace(year=following.year, month=following.month)
    return scheduled, period_of(scheduled.date().replace(day=1) - timedelta(days=1))
