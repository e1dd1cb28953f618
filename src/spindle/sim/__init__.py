"""The YarnIt log simulator: realistic raw logs with ground truth and injectable faults.

``simulate`` writes the raw tables of docs/contracts.md (products, users, fx_rates, searches,
impressions, purchases, fraud_flags), one Parquet file per table and day. Every impression
carries the true purchase probability, so a model can be compared with the best possible
ranking, and ``Fault`` injects the failures a real log pipeline suffers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.sim._faults import FAULT_KINDS, Fault
    from spindle.sim._schema import TABLES
    from spindle.sim._simulate import SimulationResult, simulate
    from spindle.sim._world import COUNTRIES, PRODUCT_TYPES

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "COUNTRIES": "spindle.sim._world",
    "FAULT_KINDS": "spindle.sim._faults",
    "Fault": "spindle.sim._faults",
    "PRODUCT_TYPES": "spindle.sim._world",
    "SimulationResult": "spindle.sim._simulate",
    "TABLES": "spindle.sim._schema",
    "simulate": "spindle.sim._simulate",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "COUNTRIES",
    "FAULT_KINDS",
    "PRODUCT_TYPES",
    "TABLES",
    "Fault",
    "SimulationResult",
    "simulate",
]
