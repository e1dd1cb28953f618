"""The YarnIt log simulator: realistic raw logs with ground truth and injectable faults.

``simulate`` writes the raw tables of docs/contracts.md (products, users, fx_rates, searches,
impressions, purchases, fraud_flags), one Parquet file per table and day. Every impression
carries the true purchase probability, so a model can be compared with the best possible
ranking, and ``Fault`` injects the failures a real log pipeline suffers.
"""

from __future__ import annotations

from spindle.sim._faults import FAULT_KINDS, Fault
from spindle.sim._schema import TABLES
from spindle.sim._simulate import SimulationResult, simulate
from spindle.sim._world import COUNTRIES, PRODUCT_TYPES

__all__ = [
    "COUNTRIES",
    "FAULT_KINDS",
    "PRODUCT_TYPES",
    "TABLES",
    "Fault",
    "SimulationResult",
    "simulate",
]
