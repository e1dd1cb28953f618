"""The context a pipeline runs in: workspace, metadata store, runner, feature registry, and the
declared sources and validation settings (each loaded once per run, when first needed).

:meth:`Context.open_reader` opens the read-only :class:`ReadContext` light commands use
(``spindle models list|show``): the workspace and a :class:`~spindle.registry.RegistryReader`,
with no SQLAlchemy, runner or feature registry to import.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core import Workspace
from spindle.orchestrate._leftovers import Presence
from spindle.registry import RegistryReader, open_reader

if TYPE_CHECKING:
    from spindle.core import SourceDeclaration, ValidationConfig
    from spindle.features import FeatureRegistry, OnlineStore
    from spindle.orchestrate._runner import Runner
    from spindle.orchestrate._tasks import TaskPool
    from spindle.registry import MetadataStore


@dataclass
class ReadContext:
    """The workspace and a read-only view of its registry; nothing can write through it."""

    workspace: Workspace
    store: RegistryReader

    def __post_init__(self) -> None:
        # A reader opened without a root (open_reader(url)) reads this workspace's files:
        # recorded paths are relative to the workspace, wherever it was copied or moved.
        if self.store.root is None:
            self.store.root = self.workspace.root

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ReadContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Context:
    """Everything a step runner needs; open with :meth:`open`, release with :meth:`close`."""

    workspace: Workspace
    store: MetadataStore
    runner: Runner
    features: FeatureRegistry
    # held while the context is open: crash leftovers are removed only when no other is
    presence: Presence | None = None
    _tasks: TaskPool | None = field(default=None, repr=False)

    @property
    def tasks(self) -> TaskPool:
        """Where the steps' heavy tasks run: ``executor:`` of ``spindle.yaml`` (in this
        process by default), unless :meth:`use_executor` chose another."""
        if self._tasks is None:
            self.use_executor(None)
        assert self._tasks is not None
        return self._tasks

    def use_executor(self, kind: str | None, address: str | None = None) -> None:
        """Run the steps' tasks with executor ``kind`` (``in-process`` or ``ray``) at
        ``address``; None keeps what ``spindle.yaml`` says.

        Raises:
            OrchestrationError: an unknown kind.
        """
        from spindle.orchestrate._tasks import make_pool

        cfg = self.workspace.config.executor
        where = address or (cfg.address if kind in (None, cfg.kind) else None)
        ship = cfg.ship_workspace if cfg.ship_workspace is not None else where is not None
        self._tasks = make_pool(
            self.workspace.root,
            kind or cfg.kind,
            address=where,
            num_cpus=cfg.num_cpus,
            ship=self._shipped_without() if ship else None,
        )

    def _shipped_without(self) -> tuple[str, ...]:
        """What of the workspace's folder is not sent to a cluster: its state and raw data
        (when inside it), version control and bytecode."""
        ws = self.workspace
        left_out = [".git/", "__pycache__/", "*.pyc"]
        raw = [ws.raw_dir] if ws.raw_location.is_local else []  # an s3 raw_dir: not here
        for folder in (ws.state_dir, *raw):
            if folder.resolve().is_relative_to(ws.root.resolve()):
                left_out.append(folder.resolve().relative_to(ws.root.resolve()).as_posix() + "/")
        return tuple(left_out)

    @classmethod
    def open(cls, path: str | Path = ".") -> Context:
        # Imported here: the store (SQLAlchemy), runner and feature registry are what
        # open_reader spares the light commands.
        from spindle.features import FeatureRegistry
        from spindle.orchestrate._runner import Runner
        from spindle.registry import MetadataStore

        workspace = Workspace.load(path)
        storage = workspace.storage()
        # before SQLite maps its WAL index: writing that map on a file system that refuses
        # writes kills the process with SIGBUS instead of raising (core/_storage.py)
        storage.writable()
        workspace.state_dir.mkdir(parents=True, exist_ok=True)
        _importable(workspace.root)
        store = MetadataStore(workspace.metadata_url, root=workspace.root)
        try:
            features = FeatureRegistry.load(workspace.features_dir)
        except BaseException:
            store.close()
            raise
        runner = Runner(store, storage=storage)
        return cls(workspace, store, runner, features, Presence(workspace.state_dir))

    @cached_property
    def sources(self) -> dict[str, SourceDeclaration]:
        """The workspace's declared sources (``sources/*.yaml``), loaded once per run.

        Raises:
            ConfigError: a declaration is invalid (every problem, with file, line and key).
        """
        from spindle.core import load_sources

        return load_sources(self.workspace.root)

    @cached_property
    def validation(self) -> ValidationConfig:
        """The workspace's ``validation.yaml`` (the defaults without one), checked against
        the declared sources, loaded once per run.

        Raises:
            ConfigError: the file is invalid (every problem, with line and key).
        """
        from spindle.core import load_validation

        return load_validation(self.workspace.root, self.sources)

    @classmethod
    def open_reader(cls, path: str | Path = ".") -> ReadContext:
        """The workspace at ``path`` with a read-only reader of its registry (see ReadContext).

        A SQLite store is read through the stdlib ``sqlite3`` module (no SQLAlchemy import);
        a store that does not exist yet, or another database, through MetadataStore.
        """
        workspace = Workspace.load(path)
        return ReadContext(workspace, open_reader(workspace.metadata_url, root=workspace.root))

    def online_store(self) -> OnlineStore:
        """The online store of the workspace's ``online_store_url`` (SQLite by default)."""
        # Imported here: the online store pulls pyarrow.dataset and DuckDB, which light
        # commands (`spindle status`, `models list`) never need.
        from spindle.features import OnlineStore

        return OnlineStore(self.workspace.online_store_url)

    def close(self) -> None:
        self.store.close()
        if self.presence is not None:
            self.presence.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def production_version(ctx: Context | ReadContext, model: str) -> int | None:
    """The version the registry says is in production (None for a model never trained)."""
    if model not in ctx.store.models():
        return None
    return ctx.store.get_alias(model, "production")


def production_date(ctx: Context | ReadContext, model: str) -> tuple[int | None, str | None]:
    """The production version and the day it was trained for (None, None if nothing serves)."""
    version = production_version(ctx, model)
    return version, None if version is None else ctx.store.get_version(model, version).date


def production_before(ctx: Context, model: str, date: str) -> int | None:
    """The version to warm-start a run for ``date`` from: what production is now, unless it was
    trained for ``date`` or later, in which case what production was before it.

    Walks the ``production`` alias history newest first and returns the first version trained
    for a day before ``date``, so after ``spindle rollback`` the next day starts from the
    version rolled back to (not from the bad one), and re-running a day after its own push
    still picks the base it had.
    """
    if model not in ctx.store.models():
        return None
    dates = {r.version: r.date for r in ctx.store.versions(model) if r.status == "ready"}
    for event in reversed(ctx.store.alias_history(model, "production")):
        day = dates.get(event.version) if event.version is not None else None
        if day and day < date:
            return event.version
    return None


def _importable(root: Path) -> None:
    """Put the workspace directory on the import path, as Feast and Dagster do with a repo:
    a custom model (``training.custom.module``) or feature function named by import path is
    imported from it, here and in every worker process spawned (they inherit ``sys.path``)."""
    entry = str(root.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)
