"""``spindle features list|show|backfill`` (issue 3)."""

from __future__ import annotations
