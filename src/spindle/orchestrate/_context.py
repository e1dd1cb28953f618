"""The context a pipeline runs in: workspace, metadata store, runner and feature registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core import Workspace
from spindle.features import FeatureRegistry
from spindle.orchestrate._runner import Runner
from spindle.registry import MetadataStore

if TYPE_CHECKING:
    from spindle.features import OnlineStore


@dataclass
class Context:
    """Everything a step runner needs; open with :meth:`open`, release with :meth:`close`."""

    workspace: Workspace
    store: MetadataStore
    runner: Runner
    features: FeatureRegistry

    @classmethod
    def open(cls, path: str | Path = ".") -> Context:
        workspace = Workspace.load(path)
        workspace.state_dir.mkdir(parents=True, exist_ok=True)
        store = MetadataStore(workspace.metadata_url)
        return cls(workspace, store, Runner(store), FeatureRegistry.load(workspace.features_dir))

    def online_store(self) -> OnlineStore:
        """The online store of the workspace's ``online_store_url`` (SQLite by default)."""
        # Imported here: the online store pulls pyarrow.dataset and DuckDB, which light
        # commands (`spindle status`, `models list`) never need.
        from spindle.features import OnlineStore

        return OnlineStore(self.workspace.online_store_url)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def production_version(ctx: Context, model: str) -> int | None:
    """The version the registry says is in production (None for a model never trained)."""
    if model not in ctx.store.models():
        return None
    return ctx.store.get_alias(model, "production")


def production_date(ctx: Context, model: str) -> tuple[int | None, str | None]:
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
