"""Visit dashboard pages in headless Chromium (Debian's, driven by playwright) and report what
a person would see: the HTTP status, the charts drawn and their points, console errors, every
request that tried to leave the machine, and the links on the page.

Run as a module it serves a workspace itself and prints the report as JSON, so a test can run
it in a network namespace with no network at all::

    unshare --net python -m tests.ui.browsing --loopback-up WORKSPACE / /runs
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from playwright.sync_api import Page, Route, sync_playwright

# How many points each chart of the page holds, once plotly.js has drawn it.
_CHARTS = """() => Array.from(document.querySelectorAll('.chart')).map(el => ({
  id: el.id,
  drawn: el.getAttribute('data-drawn') !== null && el.querySelector('.main-svg') !== null,
  traces: (el.data || []).length,
  points: (el.data || []).reduce((n, t) => n + ((t.x || t.z || t.values || []).length), 0),
}))"""
_LINKS = (
    """() => Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"""
)


def chromium() -> str:
    """The Chromium to drive: $SPINDLE_CHROMIUM, else Debian's ``chromium`` on the PATH."""
    found = os.environ.get("SPINDLE_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise RuntimeError("no chromium: `make install` installs Debian's package")
    return found


def _visit(page: Page, url: str, path: str, outside: list[str]) -> dict[str, Any]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(url + path, wait_until="load")
    count = page.locator(".chart").count()
    if count:
        page.wait_for_function(
            "n => document.querySelectorAll('.chart[data-drawn]').length === n", arg=count
        )
    return {
        "path": path,
        "status": None if response is None else response.status,
        "title": page.title(),
        "charts": page.evaluate(_CHARTS),
        "errors": errors,
        "links": sorted(set(page.evaluate(_LINKS))),
        "outside": list(outside),
    }


def browse(
    url: str, paths: Sequence[str], *, screenshots: str | None = None
) -> list[dict[str, Any]]:
    """Visit ``paths`` of the dashboard at ``url`` in one browser; any request for a host other
    than the dashboard's is refused and recorded under ``outside``."""
    host = urlparse(url).hostname
    outside: list[str] = []

    def guard(route: Route) -> None:
        if urlparse(route.request.url).hostname == host:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    reports = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.route("**/*", guard)
            for i, path in enumerate(paths):
                page = context.new_page()
                reports.append(_visit(page, url, path, outside))
                if screenshots:
                    page.screenshot(path=os.path.join(screenshots, f"{i}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    return reports


def loopback_up() -> None:
    """Bring up ``lo`` (down in a fresh network namespace), as ``ip link set lo up`` does."""
    import fcntl
    import socket
    import struct

    get_flags, set_flags, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, get_flags, request))[1]
        fcntl.ioctl(sock, set_flags, struct.pack("16sh", b"lo", flags | up))


def main(argv: list[str]) -> None:
    from spindle.serve import ServerThread
    from spindle.ui import create_ui_app

    if argv[0] == "--loopback-up":
        loopback_up()
        argv = argv[1:]
    workspace, *paths = argv
    with ServerThread(create_ui_app(workspace)) as server:
        report = browse(server.url, paths)
    print(json.dumps(report), flush=True)
    # The data page loads delta-rs (its tokio runtime's threads), whose teardown at interpreter
    # exit once aborted the process ("FATAL: exception not rethrown") after the report was out;
    # the report is complete here, so leave without the teardown.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
