"""Scripted failures for the sandbox servers: the next N calls to a path answer with an error.

Tests use this to make Amazon or Xero answer 429, 500 or 401 exactly when they want to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask, Response, request


@dataclass
class Fault:
    path_prefix: str
    status: int
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Mapping[str, object] | None = None
    times: int = 1


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        path_prefix: str,
        status: int,
        *,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        body: Mapping[str, object] | None = None,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._faults.append(
                Fault(path_prefix, status, method, dict(headers or {}), body, times)
            )

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix) and fault.method in (None, method):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def install(self, app: Flask) -> None:
        """Answer a scripted fault before the real handler sees the request."""

        @app.before_request
        def _inject() -> Response | None:
            fault = self.take(request.method, request.path)
            if fault is None:
                return None
            body = json.dumps(fault.body if fault.body is not None else {})
            return Response(
                body, status=fault.status, headers=fault.headers, mimetype="application/json"
            )
