"""Run a WSGI app on a loopback port in a background thread (tests, demo, sandbox command)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from waitress.server import create_server

WsgiApp = Callable[..., Any]


def _close_trigger_once(trigger: Any) -> None:
    """waitress's trigger closes its pipe's read end twice (in _close, then again through
    file_dispatcher.close). With many servers and threads in one process, as in the tests,
    the number may be reused in between, and the second close hits another server's pipe."""

    def close_once() -> None:
        for fd in trigger._fds:
            os.close(fd)
        trigger._fds = []
        trigger.fd = -1  # file_dispatcher.close skips a closed descriptor

    trigger._close = close_once


class LoopbackServer:
    """A waitress server bound to 127.0.0.1; port 0 picks a free one."""

    def __init__(self, app: WsgiApp, port: int = 0, threads: int = 8) -> None:
        self._server = create_server(app, host="127.0.0.1", port=port, threads=threads)
        _close_trigger_once(self._server.trigger)  # type: ignore[union-attr]
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

        # Sockets are closed by the loop's own thread (closing them from here races its poll);
        # with nothing left to watch the loop ends.
        server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
        self._thread.join(timeout=10)
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
