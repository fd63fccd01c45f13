"""HTTP plumbing shared by the Amazon and Xero clients: client-side rate limits and retries.

Both APIs answer 429 when a limit is hit and occasionally 5xx; both want the caller to wait
and try again. The waiting policy differs (Retry-After vs. the usage plan), so it is a parameter.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import requests
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

from services.errors import ErrorKind, ServiceError

Sleep = Callable[[float], None]
Clock = Callable[[], float]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TokenBucket:
    """Rate (tokens per second) with a burst, as SP-API's usage plans are written."""

    def __init__(
        self, rate: float, burst: int, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = clock()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


class SlidingWindow:
    """At most `limit` calls in any `period` seconds (Xero: 60 a minute per tenant)."""

    def __init__(
        self, limit: int, period: float, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.limit = limit
        self.period = period
        self._calls: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and now - self._calls[0] >= self.period:
                    self._calls.popleft()
                if len(self._calls) < self.limit:
                    self._calls.append(now)
                    return
                wait = self.period - (now - self._calls[0])
            self._sleep(wait)


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After as seconds or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, (parsed - datetime.now(UTC)).total_seconds())


def send_with_retries(
    send: Callable[[], requests.Response],
    *,
    service: str,
    attempts: int = 5,
    wait_for: Callable[[requests.Response | None, int], float],
    sleep: Sleep = time.sleep,
) -> requests.Response:
    """Call `send` until it returns something other than 429/5xx or attempts run out.

    `wait_for(response, attempt)` says how long to sleep before the next attempt; the response
    is None when the connection itself failed. The final 429/5xx becomes a ServiceError.
    """

    def call() -> requests.Response | None:
        try:
            return send()
        except requests.ConnectionError:
            return None
        except requests.Timeout:
            return None

    def needs_retry(response: requests.Response | None) -> bool:
        return response is None or response.status_code in RETRY_STATUSES

    def wait(state: RetryCallState) -> float:
        assert state.outcome is not None
        return wait_for(state.outcome.result(), state.attempt_number)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_result(needs_retry),
        wait=wait,
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    response = retrying(call)
    if response is None:
        raise ServiceError(
            ErrorKind.UPSTREAM_UNAVAILABLE,
            f"{service} could not be reached after {attempts} tries.",
        )
    if response.status_code == 429:
        raise ServiceError(
            ErrorKind.RATE_LIMIT, f"{service} kept refusing calls as over its rate limit."
        )
    if response.status_code >= 500:
        raise ServiceError(
            ErrorKind.UPSTREAM_UNAVAILABLE,
            f"{service} answered HTTP {response.status_code} {attempts} times in a row.",
        )
    return response


def exponential_backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    return min(cap, base * 2.0 ** (attempt - 1))
