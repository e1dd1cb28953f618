"""Running the app: uvicorn in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from spindle.core import ServingError

_START_TIMEOUT_S = 30.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0 picks a free one).

    Raises:
        ServingError: the port is in use (naming ``--port``) or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle's algorithm)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServingError(
                f"cannot serve on {host}:{port}: the port is in use (another server?); "
                "pick a free one with --port N (or serving.port in spindle.yaml)"
            ) from None
        raise ServingError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "pick another address with --host/--port"
        ) from None
    return sock


class ServerThread:
    """Serve ``app`` with uvicorn in a daemon thread on a loopback port.

    ``port=0`` picks a free port; :attr:`url` gives the address once started. The app's
    lifespan runs (so the hot-reload poller starts and stops with the server).

    Example:
        >>> with ServerThread(app) as server:  # doctest: +SKIP
        ...     httpx.get(server.url + "/v2/health/ready")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise ServingError("the server is not started: call start() or use `with`")
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        """Bind the port, start uvicorn and wait until it accepts connections.

        Raises:
            ServingError: the port cannot be bound or the app fails to start.
        """
        if self._server is not None:
            return self
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="spindle-uvicorn", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServingError(f"the server on {self.host}:{self.port} failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to finish in-flight requests and exit; wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    on_listening: Callable[[str], None] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` in the foreground until interrupted (Ctrl-C or SIGTERM).

    ``on_listening`` is called with the server's URL once the port is bound (so a message
    saying where it serves is never printed for a port that turned out to be taken).
    ``access_log``: one log line per request (``serving.access_log``). uvicorn runs on uvloop
    with httptools' parser, both installed with spindle.

    Raises:
        ServingError: the port is in use or cannot be bound (one line, before uvicorn starts).
    """
    sock = bind(host, port)
    if on_listening is not None:
        on_listening(f"http://{host}:{sock.getsockname()[1]}")
    try:
        # "auto" takes uvloop and httptools (spindle's dependencies) where they install, and
        # asyncio + h11 on a platform they do not support
        config = uvicorn.Config(app, log_level="info", access_log=access_log)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
