"""Giving memory back after large requests: without it a server's RSS stays where its largest
request took it.

Parsing a body of megabytes and scoring thousands of rows allocate in three places that keep
what is freed: CPython's small-object arenas (given back only when empty), glibc's heap (its
free pages stay mapped) and Arrow's memory pool (mimalloc or jemalloc, which cache). After the
last large request in flight is answered, :class:`ReleaseMemory` asks the latter two to give
their free pages back (``malloc_trim(0)``, ``MemoryPool.release_unused()``), on a worker
thread, at most once a second.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LARGE_BODY_BYTES = 1024 * 1024
_MIN_INTERVAL_S = 1.0


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Give the allocators' free pages back to the operating system (Arrow's pool, glibc's
    heap): what a large request freed stops counting in the process's RSS."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class ReleaseMemory:
    """Pure ASGI middleware: after a request whose body passed 1 MiB is answered and no other
    such request is in flight, :func:`release_memory` runs on a worker thread (at most once a
    second: the last of a burst is released a second after the one before)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._large_in_flight = 0
        self._last_release = 0.0
        self._pending: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        size = 0
        large = False

        async def counting() -> Message:
            nonlocal size, large
            message = await receive()
            size += len(message.get("body", b""))
            if not large and size > LARGE_BODY_BYTES:
                large = True
                self._large_in_flight += 1
            return message

        try:
            await self.app(scope, counting, send)
        finally:
            if large:
                self._large_in_flight -= 1
                self._release_when_idle()

    def _release_when_idle(self) -> None:
        if self._large_in_flight or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        wait_s = max(0.0, self._last_release + _MIN_INTERVAL_S - time.monotonic())
        self._pending = loop.call_later(wait_s, self._release, loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pending = None
        if self._large_in_flight:  # the one in flight releases when it is answered
            return
        self._last_release = time.monotonic()
        loop.run_in_executor(None, release_memory).add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("giving memory back failed: %r", future.exception())
