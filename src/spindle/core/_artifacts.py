"""Artifacts: the immutable things every step produces, each with an id, a URI and a content hash.

Every artifact is a frozen dataclass with ``kind``, ``id``, ``uri``, ``content_hash`` and a
``properties()`` dict of JSON-able facts. The registry stores exactly these fields, so any
artifact type can be recorded and its lineage followed without the registry knowing the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from spindle.core._hashing import sha256_json

Verdict = Literal["pass", "warn", "fail"]
GateDecision = Literal["pass", "block"]


@dataclass(frozen=True)
class Artifact:
    """A generic artifact, as stored in the registry."""

    kind: str
    id: str
    uri: str
    content_hash: str
    props: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def properties(self) -> dict[str, Any]:
        return dict(self.props)


@dataclass(frozen=True)
class RawPartition:
    """One day of one raw source as written by the simulator (or a shop's log export)."""

    kind: ClassVar[str] = "raw_partition"
    source: str
    date: str
    uri: str
    content_hash: str
    rows: int

    @property
    def id(self) -> str:
        return f"raw:{self.source}/{self.date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {"source": self.source, "date": self.date, "rows": self.rows}


@dataclass(frozen=True)
class TableVersion:
    """A Delta table at one version (time travel makes it readable forever)."""

    kind: ClassVar[str] = "table_version"
    table: str
    version: int
    uri: str
    content_hash: str

    @classmethod
    def at(cls, table: str, version: int, uri: str) -> TableVersion:
        """A table version; Delta versions are immutable, so (table, version) is the content."""
        return cls(table, version, uri, sha256_json([table, version]))

    @property
    def id(self) -> str:
        return f"table:{self.table}@{self.version}"

    def properties(self) -> dict[str, Any]:
        return {"table": self.table, "version": self.version}


@dataclass(frozen=True)
class IngestResult:
    """What ingesting one day produced: table versions and row counts."""

    kind: ClassVar[str] = "ingest"
    date: str
    uri: str
    content_hash: str
    rows_ingested: int
    rows_quarantined: int
    tables: tuple[TableVersion, ...]
    quarantine_reasons: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    missing_sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"ingest:{self.date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "rows_ingested": self.rows_ingested,
            "rows_quarantined": self.rows_quarantined,
            "tables": {t.table: t.version for t in self.tables},
            "quarantine_reasons": dict(self.quarantine_reasons),
            "missing_sources": list(self.missing_sources),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time-correct training set materialised as Parquet, with pinned table versions."""

    kind: ClassVar[str] = "training_set"
    model: str
    dates: tuple[str, ...]
    uri: str
    content_hash: str
    rows: int
    table_versions: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    #: Examples of the window left out because their label was not mature at the cutoff.
    immature_examples: int = field(default=0, compare=False, hash=False)
    #: The recorded retractions whose rows were left out (``retraction-N`` ids, sorted).
    retractions: tuple[str, ...] = field(default=(), compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"trainset:{self.model}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dates": list(self.dates),
            "rows": self.rows,
            "table_versions": dict(self.table_versions),
            "immature_examples": self.immature_examples,
            "retractions": list(self.retractions),
        }


@dataclass(frozen=True)
class ModelVersion:
    """An immutable exported model: ONNX + transform + manifest, in one directory."""

    kind: ClassVar[str] = "model_version"
    model: str
    version: int
    uri: str
    content_hash: str
    date: str
    base_version: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The idempotency key of the run that made it: a re-run after a crash finds it instead of
    # training a duplicate version.
    run_key: str | None = None

    @property
    def id(self) -> str:
        return f"model:{self.model}@{self.version}"

    def properties(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "date": self.date,
            "base_version": self.base_version,
            "metrics": dict(self.metrics),
            "run_key": self.run_key,
        }


@dataclass(frozen=True)
class Evaluation:
    """Metrics of a candidate vs baselines on one holdout, and the gate's decision with reasons."""

    kind: ClassVar[str] = "evaluation"
    model: str
    version: int
    holdout_date: str
    uri: str
    content_hash: str
    decision: GateDecision
    metrics: dict[str, dict[str, float]] = field(default_factory=dict, compare=False, hash=False)
    reasons: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        # the content hash is part of the id: one version may be evaluated again on the same
        # day with other thresholds or another baseline, and each verdict is kept
        return f"eval:{self.model}@{self.version}:{self.holdout_date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "holdout_date": self.holdout_date,
            "decision": self.decision,
            "metrics": self.metrics,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Deployment:
    """A model version pushed to a model repository with a traffic weight."""

    kind: ClassVar[str] = "deployment"
    model: str
    version: int
    uri: str
    content_hash: str
    weight: float
    forced_reason: str | None = None

    @property
    def id(self) -> str:
        return f"deploy:{self.model}@{self.version}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "weight": self.weight,
            "forced_reason": self.forced_reason,
        }


def artifact_fields(artifact: Any) -> dict[str, Any]:
    """Return the registry fields of any artifact: kind, id, uri, content_hash, properties."""
    return {
        "kind": artifact.kind,
        "id": artifact.id,
        "uri": artifact.uri,
        "content_hash": artifact.content_hash,
        "properties": artifact.properties(),
    }


def artifact_from_fields(kind: str, uri: str, content_hash: str, props: dict[str, Any]) -> Any:
    """Rebuild a typed artifact from what the registry stored (the inverse of artifact_fields).

    Unknown kinds come back as a generic :class:`Artifact`.
    """
    p = dict(props)
    if kind == RawPartition.kind:
        return RawPartition(p["source"], p["date"], uri, content_hash, int(p["rows"]))
    if kind == TableVersion.kind:
        return TableVersion(p["table"], int(p["version"]), uri, content_hash)
    if kind == IngestResult.kind:
        tables = tuple(TableVersion(t, int(v), f"{uri}/{t}", "") for t, v in p["tables"].items())
        return IngestResult(
            p["date"],
            uri,
            content_hash,
            int(p["rows_ingested"]),
            int(p["rows_quarantined"]),
            tables,
            dict(p.get("quarantine_reasons", {})),
            tuple(p.get("missing_sources", ())),
            tuple(p.get("notes", ())),
        )
    if kind == TrainingSet.kind:
        return TrainingSet(
            p["model"],
            tuple(p["dates"]),
            uri,
            content_hash,
            int(p["rows"]),
            dict(p["table_versions"]),
            int(p.get("immature_examples", 0)),
            tuple(p.get("retractions", ())),
        )
    if kind == ModelVersion.kind:
        return ModelVersion(
            p["model"],
            int(p["version"]),
            uri,
            content_hash,
            p["date"],
            p.get("base_version"),
            dict(p.get("metrics", {})),
            p.get("run_key"),
        )
    if kind == Evaluation.kind:
        return Evaluation(
            p["model"],
            int(p["version"]),
            p["holdout_date"],
            uri,
            content_hash,
            p["decision"],
            dict(p.get("metrics", {})),
            tuple(p.get("reasons", ())),
        )
    if kind == Deployment.kind:
        return Deployment(
            p["model"],
            int(p["version"]),
            uri,
            content_hash,
            float(p["weight"]),
            p.get("forced_reason"),
        )
    return Artifact(kind, str(p.get("id", "")), uri, content_hash, p)
