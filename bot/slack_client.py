"""The process's one Slack Web API client: retries, and Slack's pace of one message a second
per channel kept for every caller at once (the notifier's posts and the listeners' updates)."""

from __future__ import annotations

import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.web import SlackResponse

from bot.config import Settings
from services.http import Clock, Sleep, SlidingWindow

# Slack: "1 message per second per channel"; chat.update is paced with them, to be safe.
PACED_METHODS = frozenset({"chat.postMessage", "chat.update"})
PACE_MESSAGES = 1
PACE_SECONDS = 1.0


class PacedWebClient(WebClient):
    """A WebClient that waits its turn per channel before posting or updating a message. A 429
    that gets through anyway is retried by RateLimitErrorRetryHandler, honouring Retry-After."""

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep, **options: Any):
        super().__init__(**options)
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[str, SlidingWindow] = {}
        self._windows_lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> PacedWebClient:
        # Bolt deep-copies a request's context for its lazy listeners: the pace is shared.
        return self

    def api_call(self, api_method: str, **options: Any) -> SlackResponse:
        arguments = options.get("json") or options.get("params") or options.get("data") or {}
        channel = arguments.get("channel") if api_method in PACED_METHODS else None
        if channel:
            self._window(str(channel)).acquire()
        response: SlackResponse = super().api_call(api_method, **options)
        answered = response.get("channel") if channel else None
        if answered and answered != channel:
            # A channel named ("#errors") is paced as one with its id from now on.
            with self._windows_lock:
                window = self._windows.setdefault(str(answered), self._windows[str(channel)])
                self._windows[str(channel)] = window
        return response

    def _window(self, channel: str) -> SlidingWindow:
        with self._windows_lock:
            window = self._windows.get(channel)
            if window is None:
                window = SlidingWindow(
                    PACE_MESSAGES, PACE_SECONDS, clock=self._clock, sleep=self._sleep
                )
                self._windows[channel] = window
            return window


def paced_web_client(settings: Settings) -> PacedWebClient:
    return PacedWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )
