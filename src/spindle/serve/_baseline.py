"""The last step of the fallback chain: the model's declared baseline, scored on the served rows.

When no version of a model can answer, the baseline it declares (``baselines:``; the one
named by ``serving.baseline``, else the first that is not ground truth) answers instead: a
``feature`` or ``sql`` baseline reads the served rows (the instances' fields and each view's
online row, looked up by the instance's keys), a ``constant`` one is a prior. It is computed
as evaluation computes it on a holdout, so the fallback ranks as the baseline's reported
metrics say it would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from spindle.core import ConfigError, ServingError
from spindle.features import OnlineStore
from spindle.features._baselines import baseline_scores
from spindle.serve._declared import ServedConfig
from spindle.serve._lookup import looked_up_rows
from spindle.serve._schema import ServingDeclarations, ViewLookup, view_keys


def _feature_column(ref: str) -> str:
    """A pinned feature's column: ``group.name@1`` -> ``group__name__v1``."""
    group, _, rest = ref.partition(".")
    name, _, version = rest.partition("@")
    return f"{group}__{name}__v{version}"


def declared_lookups(
    config: ServedConfig,
    declarations: ServingDeclarations | None,
    store: OnlineStore,
    instance: Mapping[str, Any],
) -> list[ViewLookup]:
    """The views a model reads (its features' groups and its candidates' view) whose keys the
    instance holds, for when no loaded version gives the request schema."""
    groups = [ref.split(".", 1)[0] for ref in config.features]
    if config.candidates is not None:
        groups.append(config.candidates.view)
    lookups = []
    for view in dict.fromkeys(groups):
        try:
            keys = view_keys(view, declarations, store)
        except ServingError:
            continue  # a request group, or a view not in the store yet
        if all(k in instance for k in keys):
            lookups.append(ViewLookup(view, keys))
    return lookups


def baseline_answer(
    store: OnlineStore,
    config: ServedConfig,
    lookups: Sequence[ViewLookup],
    instances: Sequence[Mapping[str, Any]],
) -> tuple[str, list[dict[str, float]], dict[str, int]]:
    """Score ``instances`` with the model's fallback baseline.

    Args:
        store: the online store.
        config: the model's serving declarations.
        lookups: the views to look the instances up in.
        instances: the request's instances.

    Returns:
        The baseline's name, one prediction per instance (``value`` for a regression model,
        ``score`` otherwise) and, per view, how many instances it did not know.

    Raises:
        ServingError: the model declares no baseline that can answer, or it does not run on
            the served rows.
    """
    baseline = config.fallback_baseline()
    if baseline is None:
        wanted = f"serving.baseline {config.baseline!r}" if config.baseline else "baseline"
        raise ServingError(f"model {config.model} declares no {wanted} to fall back to")
    columns, missing, _ = looked_up_rows(store, lookups, instances)
    rows = pa.table(columns) if columns else pa.table({"__row": pa.nulls(len(instances))})
    features = {ref: _feature_column(ref) for ref in config.features}
    if baseline.feature is not None:
        features.setdefault(baseline.feature, _feature_column(baseline.feature))
    try:
        scores = baseline_scores(baseline, rows, features, f"model {config.model}: baselines")
    except ConfigError as exc:
        raise ServingError(f"baseline {baseline.name} failed: {exc}") from None
    values = np.asarray(scores, np.float64).tolist()
    name = "value" if config.task == "regression" else "score"
    return baseline.name, [{name: v} for v in values], missing
