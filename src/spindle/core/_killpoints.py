"""Named crash points for recovery tests: ``SPINDLE_KILL_AT=<point>`` SIGKILLs the process there.

Recovery is only believable when it is tested by crashing for real. Code marks the places where
a crash would hurt (before, inside and after each step) with :func:`kill_point`; a test sets
``SPINDLE_KILL_AT`` in a child process's environment and checks that re-running completes the
work with nothing duplicated or lost. Without the variable the call is a dictionary lookup.
With ``SPINDLE_KILL_ONCE=<file>`` too, only the first process to reach the point dies (it
creates the file first): the test of a restart that must get past the point.
``SPINDLE_PAUSE_AT=<point>`` stops the process there instead (SIGSTOP): the test changes the
world under it (fills the disk, makes it read-only) and lets it go on with SIGCONT.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "SPINDLE_KILL_AT"
KILL_ONCE_ENV = "SPINDLE_KILL_ONCE"
PAUSE_ENV = "SPINDLE_PAUSE_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``SPINDLE_KILL_AT`` names ``name`` (no cleanup, like a power cut);
    SIGSTOP it if ``SPINDLE_PAUSE_AT`` does."""
    if os.environ.get(PAUSE_ENV) == name:
        os.kill(os.getpid(), signal.SIGSTOP)
    wanted = os.environ.get(KILL_ENV)
    if wanted and wanted == name:
        marker = os.environ.get(KILL_ONCE_ENV)
        if marker:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)
