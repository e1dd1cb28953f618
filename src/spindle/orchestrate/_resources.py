"""Resource accounting for a step: wall time, CPU seconds (self and children), peak memory."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass


@dataclass
class ResourceMeter:
    """Measure a block of work; read :meth:`result` after it."""

    wall0: float = 0.0
    cpu0: float = 0.0

    def start(self) -> ResourceMeter:
        self.wall0 = time.perf_counter()
        self.cpu0 = cpu_seconds()
        return self

    def result(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall0
        cpu = cpu_seconds() - self.cpu0
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 4),
            "cpu_s": round(cpu, 4),
            "utilisation": round(cpu / (wall * cores), 4) if wall > 0 else 0.0,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }


def cpu_seconds() -> float:
    """CPU seconds of this process and of the children it waited for (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )
