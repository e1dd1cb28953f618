"""What every typed config block shares: the strict pydantic base, the name, feature-ref and
duration formats, and the switch that skips the parse of declared SQL.

The blocks live beside it: ``_config_workspace`` (``spindle.yaml``), ``_config_model``
(``models/*.yaml``), ``_config_training`` and ``_config_evaluation`` (a model's ``training:``
and ``evaluation:``/``baselines:``)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, ValidationInfo

SKIP_SQL_CHECKS = "skip_sql_checks"
"""Validation context key: True skips the parse of declared SQL (a report that runs none of
it, such as ``spindle status``, need not import DuckDB; every run checks it, at load and again
before it runs)."""


def _checks_sql(info: ValidationInfo) -> bool:
    return not (isinstance(info.context, dict) and info.context.get(SKIP_SQL_CHECKS))


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FEATURE_REF = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*@[1-9][0-9]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(value: str) -> int:
    """Seconds of a duration written ``<n>s|m|h|d`` (``30d``, ``12h``).

    Raises:
        ValueError: ``value`` is not such a duration.

    Example:
        >>> duration_s("2d")
        172800
    """
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write <n>s, <n>m, <n>h or <n>d, e.g. 30d")
    return int(match.group(1)) * _DURATION_S[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
