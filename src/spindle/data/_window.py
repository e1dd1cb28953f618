"""The default size of the validation reference window (a light module: `spindle status` reads
it without loading the checks, DuckDB or SciPy). A workspace sets its own in validation.yaml
(``history_days``, ``min_baseline_days``; see ``core.ValidationConfig``)."""

from __future__ import annotations

# Days a new day is judged against: the last ones that did not FAIL, or were accepted.
HISTORY_DAYS = 7
# Fewer reference days than this and the checks that compare with history cannot run: the day
# gets a ``no_baseline`` WARN (never a silent PASS).
MIN_BASELINE_DAYS = 2
