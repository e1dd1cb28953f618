"""What the model steps share: config loading, training windows, training sets, history."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spindle.core import (
    ConfigError,
    DataError,
    Location,
    ModelConfig,
    TableVersion,
    TrainingSet,
    ValidationFailed,
    sha256_json,
)
from spindle.features import (
    FeatureDefinition,
    WrittenRows,
    merge_training_parts,
    pin_versions,
    training_tables,
    write_training_rows,
)
from spindle.orchestrate._context import Context, ReadContext
from spindle.orchestrate._retract_step import retracted_keys
from spindle.orchestrate._tasks import TaskPool, call
from spindle.orchestrate._verdicts import day_verdict

# The train stage's readers of a training set's rows, here for the steps that score holdouts
# and train replicas (they resolve lazily: importing them loads no framework).
from spindle.train import copy_trained_files, example_weights, labels_and_groups, model_spec

__all__ = [
    "LoadedConfig",
    "build_training_set",
    "copy_trained_files",
    "example_weights",
    "first_validated_day",
    "fresh_scratch",
    "labels_and_groups",
    "load_config",
    "model_dir",
    "model_spec",
    "record_window",
    "resolve_config",
    "training_window",
]


@dataclass(frozen=True)
class LoadedConfig:
    """A model's effective config, loaded once per run and passed to every step of it.

    Attributes:
        config: the validated model config (``--set`` overrides applied).
        config_hash: the hash of ``effective`` (part of every step's identity).
        effective: the config as a plain dict (what a version's manifest records).
        definitions: its features, resolved.
        overrides: the ``--set`` overrides it was loaded with.
    """

    config: ModelConfig
    config_hash: str
    effective: dict[str, Any]
    definitions: list[FeatureDefinition]
    overrides: tuple[str, ...] = ()


def load_config(ctx: Context, model: str, overrides: list[str] | None = None) -> LoadedConfig:
    """Load and validate a model config (with ``--set`` overrides) and resolve its features.

    Raises:
        ConfigError: the config is invalid.
    """
    config, effective = ctx.workspace.model_config(model, overrides)
    return LoadedConfig(
        config,
        sha256_json(effective),
        effective,
        ctx.features.resolve(config),
        tuple(overrides or ()),
    )


def resolve_config(
    ctx: Context, model: str, overrides: list[str] | None, loaded: LoadedConfig | None
) -> LoadedConfig:
    """The run's config: ``loaded`` when the run loaded it already, else loaded now.

    A step called on its own (``spindle evaluate --set ...``) loads the config with its
    overrides; a daily run loads it once and passes it to each step, so every step sees the
    same config even if the file changes meanwhile.

    Raises:
        ConfigError: the config is invalid, or ``loaded`` is another model's or was loaded
            with other overrides than ``overrides``.
    """
    if loaded is None:
        return load_config(ctx, model, overrides)
    if loaded.config.name != model or (overrides and tuple(overrides) != loaded.overrides):
        raise ConfigError(
            f"models/{model}.yaml",
            [
                f"the step was given the config of {loaded.config.name} (--set "
                f"{list(loaded.overrides)}) for {model} (--set {overrides or []}): pass the "
                "run's own config, or only overrides"
            ],
        )
    return loaded


def _day(date: str, offset: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=offset)).isoformat()


def training_window(
    ctx: Context, cfg: ModelConfig, date: str, days: int | None = None
) -> tuple[list[str], list[str]]:
    """Days before ``date`` to train on, and the gaps left out (each with why).

    A gap is a day of the window, on or after the first validated day of the workspace, that
    was never ingested and validated or whose validation FAILed (days before the first one are
    simply before history began). A window with a gap is refused unless the model config sets
    ``training.allow_gaps: true``, in which case the gaps are skipped and listed.

    Raises:
        ValidationFailed: the window has a FAIL-level gap and the config does not allow gaps
            (lists every gap and the two ways out).
    """
    span = days if days is not None else cfg.training.window_days
    first = first_validated_day(ctx)
    chosen, gaps = [], []
    for i in range(span, 0, -1):
        day = _day(date, -i)
        verdict = day_verdict(ctx, day)
        if verdict is None and (first is None or day < first):
            continue  # before the workspace's history starts: not a gap
        if verdict is None or verdict == "fail":
            gaps.append(
                f"{day} ({'not ingested/validated' if verdict is None else 'failed validation'})"
            )
        else:
            chosen.append(day)
    if gaps and not cfg.training.allow_gaps:
        raise ValidationFailed(
            f"{cfg.name} for {date}: the training window {_day(date, -span)}..{_day(date, -1)} has "
            f"FAIL-level gaps: {', '.join(gaps)}. Fix and re-ingest those days (see `spindle "
            "validate --date D`), or set `training.allow_gaps: true` in the model config "
            "(or `--set training.allow_gaps=true`) to train without them."
        )
    return chosen, gaps


def first_validated_day(ctx: Context) -> str | None:
    """The earliest day with a recorded validation report (None before any)."""
    days = [
        str(r.properties["date"])
        for r in ctx.store.find_artifacts("validation_report")
        if r.properties.get("date")
    ]
    return min(days) if days else None


def model_dir(ctx: Context | ReadContext, model: str, version: int) -> Path:
    return ctx.workspace.artifacts_dir / "models" / model / str(version)


def fresh_scratch(path: Path) -> Path:
    """An empty scratch directory for a trainer's output (a crashed attempt's is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def build_training_set(
    ctx: Context,
    loaded: LoadedConfig,
    dates: list[str],
    purpose: str = "train",
    versions: dict[str, int] | None = None,
    retractions: tuple[str, ...] | None = None,
) -> TrainingSet:
    """Materialise the point-in-time-correct rows of ``dates`` as Parquet (a recorded step).

    The model's examples are built as of the end of the last day of ``dates`` (the cutoff, see
    :func:`spindle.features.stream_rows`): for a training window (the days before the run's
    date) nothing from the run's date on is seen, for a holdout day nothing after that day. A
    holdout (``purpose="holdout"``) holds the examples whose labels matured on the day.
    ``versions`` pins the tables' Delta versions (time travel: ``spindle reproduce`` rebuilds
    a recorded training set, as its manifest lists them); by default each table's latest
    version is pinned. The rows of the recorded retractions on the sources the examples read
    are left out (only those of ``retractions``, ids, when given: a rebuild as recorded), and
    they are part of the identity: a rebuild after a retraction is a new training set.
    """
    cfg = loaded.config
    retracted = {
        s: [k for k in keys if retractions is None or k.retraction_id in retractions]
        for s, keys in retracted_keys(ctx).items()
        if s in cfg.examples.sources
    }
    applied = tuple(sorted(k.retraction_id for keys in retracted.values() for k in keys))
    if versions is None:
        versions = pin_versions(ctx.workspace.tables_dir, training_tables(cfg, loaded.definitions))
    else:
        versions = dict(versions)
    identity = {
        "dates": sorted(dates),
        "tables": versions,
        "features": cfg.features,
        "task": cfg.task,
        # how many tasks build it is not part of it: the rows are the same (write_rows)
        "examples": cfg.examples.model_dump(exclude={"partitions", "partition_key"}),
        "purpose": purpose,
    }
    holdout = purpose == "holdout"
    if holdout:  # the examples whose labels matured on the day (features.stream_rows)
        identity["days_by"] = "label maturity"
    if applied:  # absent without retractions: earlier training sets keep their identity
        identity["retractions"] = list(applied)
    fingerprint = sha256_json(identity)
    where = ctx.workspace.artifacts_location / "trainsets" / cfg.name
    path = where / f"{fingerprint[:16]}.parquet"

    def run() -> TrainingSet:
        label = f"training set {cfg.name} {purpose} {min(dates)}..{max(dates)}"
        args: tuple[Any, ...] = (ctx.workspace.tables_dir, cfg, loaded.definitions)
        args += (tuple(sorted(dates)), versions, ctx.sources, holdout, retracted)
        written = write_rows(ctx.tasks, path, args, cfg, label)
        return TrainingSet(
            cfg.name,
            tuple(sorted(dates)),
            path.url,
            fingerprint,
            written.rows,
            versions,
            immature_examples=written.immature_examples,
            retractions=applied,
        )

    inputs = [f"table:{name}@{v}" for name, v in versions.items()]
    for name, v in versions.items():
        ctx.store.record_artifact(
            TableVersion.at(name, v, str(ctx.workspace.tables_dir / name))
        )  # no-op if ingest recorded it
    outcome = ctx.runner.run(
        f"training_set:{purpose}", run, identity=identity, model=cfg.name, inputs=inputs
    )
    trainset: TrainingSet = outcome.value
    if not trainset_location(ctx, trainset.uri).is_file():  # recorded but removed: rebuild
        trainset = run()
    record_window(ctx, trainset, purpose)
    return trainset


def checkpoint_mirror(ctx: Context, model: str, key: str) -> Location | None:
    """Where a fit's checkpoints are also kept so that a fit retried on another machine
    resumes: ``<artifacts_url>/checkpoints/<model>/<key>`` when the workspace's artifacts are
    on an object store (None: they stay in the fit's local checkpoint folder only)."""
    where = ctx.workspace.artifacts_location
    return None if where.is_local else where / "checkpoints" / model / key


def trainset_location(ctx: Context | ReadContext, uri: str) -> Location:
    """The location of a training set's file (a local path, or an object with the
    workspace's storage options)."""
    ws = ctx.workspace
    return Location.of(uri, ws.config.storage_options, scratch=ws.state_dir / "tmp")


def trainset_file(ctx: Context | ReadContext, uri: str) -> Path:
    """A local file of a training set: the file itself, or a copy of its object, kept in
    ``<state>/tmp/objects`` by the object's name, size and time (a training set's name holds
    its fingerprint, so the copy is fetched once and never stale; its size is checked).

    Raises:
        FileNotFoundError: the file or object is gone.
        DataError: the object store cannot be read.
    """
    return trainset_location(ctx, uri).local_copy()


def write_rows(
    pool: TaskPool, path: Location, args: tuple[Any, ...], cfg: ModelConfig, label: str
) -> WrittenRows:
    """Write a training set to ``path`` as one task, or as ``examples.partitions`` tasks (each
    its part of the examples, by ``examples.partition_key``) and one that merges them in order.

    ``args`` are :func:`~spindle.features.write_training_rows`'s after the path, without the
    part. The parts are written beside ``path`` (``<name>.parts/``) and removed after.

    Raises:
        DataError: the merge wrote another number of rows than the parts hold.
    """
    count = cfg.examples.partitions
    if count == 1:
        return call(pool, write_training_rows, _here(path), *args, label=label)
    parts_dir = path.parent / path.name.replace(".parquet", ".parts")
    parts_dir.delete()  # an earlier, interrupted build's
    paths = [_here(parts_dir / f"part-{i:04d}.parquet") for i in range(count)]
    calls = [(paths[i], *args, (i, count)) for i in range(count)]
    parts = pool.map(write_training_rows, calls, label=f"{label} part")
    columns = parts[0].example_columns
    merge = (paths, _here(path), cfg, columns, args[0])
    rows = call(pool, merge_training_parts, *merge, label=f"{label} merge")
    parts_dir.delete()
    if rows != sum(p.rows for p in parts):
        raise DataError(
            f"{label}: merging its {count} parts wrote {rows} rows, the parts hold "
            f"{sum(p.rows for p in parts)}; build it again"
        )
    return WrittenRows(rows, sum(p.immature_examples for p in parts), columns)


def record_window(ctx: Context, trainset: TrainingSet, purpose: str) -> list[str]:
    """Record lineage edges raw partition -> training set for every day of its window.

    The pinned table versions may have been written by a later day's ingest (their own parents
    are that day's raw partitions), so the window's partitions are recorded explicitly: the
    newest recorded partition of each source and day. Idempotent; returns the partition ids.
    """
    chosen: dict[tuple[str, str], str] = {}
    for day in trainset.dates:
        for record in ctx.store.find_artifacts("raw_partition", date=day):  # oldest first
            chosen[(str(record.properties.get("source")), day)] = record.id
    ids = [chosen[key] for key in sorted(chosen)]
    ctx.store.add_edges([(raw_id, trainset.id, f"window:{purpose}") for raw_id in ids])
    return ids


def _here(where: Location) -> Path | Location:
    """What a writer task takes: a local path as a ``Path`` (as before), else the location."""
    return where.path if where.is_local else where
