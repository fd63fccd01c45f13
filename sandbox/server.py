"""Run a WSGI app on a loopback port in a background thread (tests, demo, sandbox command)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from waitress.server import create_server

log = logging.getLogger(__name__)

WsgiApp = Callable[..., Any]


class LoopbackServer:
    """A waitress server bound to 127.0.0.1; port 0 picks a free one."""

    def __init__(self, app: WsgiApp, port: int = 0, threads: int = 8) -> None:
        self._server = create_server(app, host="127.0.0.1", port=port, threads=threads)
        self.port: int = self._server.effective_port  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        socket_map = server._map  # type: ignore[union-attr]

        def close_all() -> None:
            for dispatcher in list(socket_map.values()):
                dispatcher.close()

        # Requests in progress finish first: a worker wakes the loop when it is done, and that
        # must not find the loop's wake-up pipe closed.
        server.task_dispatcher.shutdown()
        # Sockets are closed by the loop's own thread (closing them from here races its poll);
        # with nothing left to watch the loop ends.
        try:
            server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
        except OSError:
            # The wake-up pipe is already gone (seen rarely at test teardown): the loop cannot
            # be woken, so close what is left from here.
            log.warning("loopback server on port %s: closing without its loop", self.port)
            close_all()
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
