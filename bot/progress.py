"""A one-line progress bar on stderr for the CLI's long runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
EVERY = 0.2  # seconds between redraws


class ProgressBar:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._drawn_at = 0.0
        self._dirty = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._drawn_at < EVERY and done != total:
            return
        self._drawn_at = now
        if total:
            filled = WIDTH * done // total
            line = f"{phase:<8} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total}"
        else:
            line = f"{phase:<8} {done} rows"
        self._stream.write(f"\r{line:<60}")
        self._stream.flush()
        self._dirty = True

    def close(self) -> None:
        if self._dirty:
            self._stream.write("\n")
            self._stream.flush()
