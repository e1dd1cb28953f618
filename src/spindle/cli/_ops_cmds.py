"""``spindle run-all``, ``catch-up``, ``doctor``, ``schedule``, ``monitor`` (issue 6)."""

from __future__ import annotations
