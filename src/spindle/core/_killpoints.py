"""Named crash points for recovery tests: ``SPINDLE_KILL_AT=<point>`` SIGKILLs the process there.

Recovery is only believable when it is tested by crashing for real. Code marks the places where
a crash would hurt (before, inside and after each step) with :func:`kill_point`; a test sets
``SPINDLE_KILL_AT`` in a child process's environment and checks that re-running completes the
work with nothing duplicated or lost. Without the variable the call is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "SPINDLE_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``SPINDLE_KILL_AT`` names ``name`` (no cleanup, like a power cut)."""
    wanted = os.environ.get(KILL_ENV)
    if wanted and wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
