"""The workspace: a folder with ``spindle.yaml`` from which every other path is found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spindle.core._config import SKIP_SQL_CHECKS
from spindle.core._config_model import ModelConfig
from spindle.core._config_workspace import WorkspaceConfig
from spindle.core._errors import ConfigError, DataError, WorkspaceError
from spindle.core._location import Location, is_object_store_url
from spindle.core._storage import StorageCheck
from spindle.core._yaml import load_yaml_model

WORKSPACE_FILE = "spindle.yaml"

IDENTITY_FIELDS = ("name", "owner", "team")
"""The keys of a model config that say whose model it is: access policies judge the ``team``,
so none of them may come from a ``--set`` override."""


@dataclass(frozen=True)
class Workspace:
    """Paths and config of one workspace. Create it with :func:`Workspace.load`."""

    root: Path
    config: WorkspaceConfig

    @classmethod
    def load(cls, start: str | Path = ".") -> Workspace:
        """Find ``spindle.yaml`` in ``start`` or a parent directory and load it.

        Raises:
            WorkspaceError: no ``spindle.yaml`` was found; run ``spindle init DIR`` first.
            ConfigError: the file is invalid.
        """
        here = Path(start).resolve()
        for folder in (here, *here.parents):
            candidate = folder / WORKSPACE_FILE
            if candidate.is_file():
                config, _ = load_yaml_model(candidate, WorkspaceConfig)
                return cls(root=folder, config=config)
        raise WorkspaceError(
            f"no {WORKSPACE_FILE} in {here} or any parent; create one with "
            "`spindle init DIR --example yarnit` or pass --workspace DIR"
        )

    def _under(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    @property
    def raw_dir(self) -> Path:
        """The local folder of raw files (see :attr:`raw_location` for one on an object store).

        Raises:
            DataError: ``raw_dir`` is an object-store URL.
        """
        raw = self.raw_location
        if not raw.is_local:
            raise DataError(
                f"raw_dir is {raw.url}, on an object store: this writes local raw files; "
                "write them to a local folder and upload them (docs/operations.md, "
                '"Raw files and training sets on the store too")'
            )
        return raw.path

    @property
    def raw_location(self) -> Location:
        """Where the raw files live: ``raw_dir``, a local folder or ``s3://bucket/prefix``
        (with ``storage_options``; a source's ``s3://`` location is read through it)."""
        return self._location(self.config.raw_dir, self.config.raw_dir)

    @property
    def artifacts_location(self) -> Location:
        """Where training sets live (``<this>/trainsets/...``): ``artifacts_url`` (a local
        path or ``s3://bucket/prefix``), else :attr:`artifacts_dir`."""
        return self._location(self.config.artifacts_url, self.artifacts_dir)

    def _location(self, url: str | None, default: str | Path) -> Location:
        scratch = self.state_dir / "tmp"
        if url is not None and is_object_store_url(url):
            return Location.of(url, self.config.storage_options, scratch=scratch)
        return Location.of(self._under(str(url if url is not None else default)), scratch=scratch)

    @property
    def state_dir(self) -> Path:
        return self._under(self.config.state_dir)

    @property
    def tables_dir(self) -> Location:
        """Where the Delta tables live: ``tables_url`` (``s3://bucket/prefix`` or a local
        path) with ``storage_options``, else ``<state_dir>/tables``. Temporary files of work
        on them (DuckDB spill, locks) go to ``<state_dir>/tmp`` either way."""
        return self._location(self.config.tables_url, self.state_dir / "tables")

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def model_repo(self) -> Path:
        """The local model repository (see :attr:`model_repo_location` for one on a store).

        Raises:
            DataError: ``model_repo`` is an object-store URL.
        """
        repo = self.model_repo_location
        if not repo.is_local:
            raise DataError(
                f"model_repo is {repo.url}, on an object store: this command needs a local "
                "model repository (push, route, rollback, serve and doctor work on the store)"
            )
        return repo.path

    @property
    def model_repo_location(self) -> Location:
        """The model repository: ``model_repo``, a local folder or ``s3://bucket/prefix``
        (with ``storage_options``), else ``<state_dir>/model_repo``."""
        repo, scratch = self.config.model_repo, self.state_dir / "tmp"
        if repo is not None and is_object_store_url(repo):
            return Location.of(repo, self.config.storage_options, scratch=scratch)
        local = self._under(repo) if repo else self.state_dir / "model_repo"
        return Location.of(local, scratch=scratch)

    @property
    def online_store_path(self) -> Path:
        """The SQLite file of the online store (``online_store_url`` when it names one)."""
        url = self.config.online_store_url or ""
        if url.startswith("sqlite:///"):
            return self._under(url.removeprefix("sqlite:///"))
        return self.state_dir / "online.db"

    @property
    def online_store_url(self) -> str:
        """The online store's backend URL (``sqlite:///<state_dir>/online.db`` by default)."""
        url = self.config.online_store_url
        if url and not url.startswith("sqlite:///"):
            return url
        return f"sqlite:///{self.online_store_path}"

    @property
    def metadata_url(self) -> str:
        url = self.config.metadata_url
        return url if url else f"sqlite:///{self.state_dir / 'metadata.db'}"

    def storage(self) -> StorageCheck:
        """The directories this workspace writes (state_dir, the model repository, a local
        ``tables_url``, SQLite stores elsewhere) and its free-space floor (``min_free_mb``),
        to check before writing."""
        repo = self.model_repo_location
        paths = [self.state_dir] + ([repo.path] if repo.is_local else [])
        tables = self.tables_dir
        if tables.is_local and not tables.path.is_relative_to(self.state_dir):
            paths.append(tables.path)  # a local tables_url, maybe on another disk
        files: list[Path] = []
        for url in (self.metadata_url, self.online_store_url):
            if url.startswith("sqlite:///") and "mode=memory" not in url:
                database = Path(url.removeprefix("sqlite:///").split("?")[0]).expanduser()
                if database.name not in ("", ":memory:"):
                    paths.append(database.parent)
                    files += [
                        database.with_name(database.name + end) for end in ("", "-wal", "-shm")
                    ]
        unique = list(dict.fromkeys(p.absolute() for p in paths))
        return StorageCheck(unique, self.config.min_free_mb, tuple(files))

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_names(self) -> list[str]:
        """Names of every model config in ``models/``."""
        return sorted(p.stem for p in self.models_dir.glob("*.yaml"))

    @staticmethod
    def refused_overrides(name: str, overrides: Sequence[str] | None) -> list[str]:
        """One line per ``--set`` override of an identity field (``IDENTITY_FIELDS``).

        A model's name, owner and team come from its file: the team decides which restricted
        features it may pin, so a ``--set team=...`` would bypass every access policy.

        Example:
            >>> Workspace.refused_overrides("ranker", ["training.epochs=2"])
            []
            >>> Workspace.refused_overrides("ranker", ["team=growth"])[0].split(":")[0]
            '--set team=growth'
        """
        refused = []
        for item in overrides or []:
            key = item.partition("=")[0].strip().split(".")[0]
            if key in IDENTITY_FIELDS:
                refused.append(
                    f"--set {item}: {key!r} is an identity field ({', '.join(IDENTITY_FIELDS)}); "
                    "identity fields come from the model file, not the command line: edit "
                    f"models/{name}.yaml"
                )
        return refused

    def model_config(
        self, name: str, overrides: list[str] | None = None, *, check_sql: bool = True
    ) -> tuple[ModelConfig, dict[str, object]]:
        """Load ``models/NAME.yaml`` with optional ``KEY=VALUE`` overrides.

        ``check_sql=False`` skips parsing the declared SQL (examples, baselines, candidates)
        for a report that runs none of it (``spindle status``: DuckDB stays unimported);
        every run checks it, here and again before it runs.

        Returns:
            The validated config and the effective raw dict (what is hashed and recorded).

        Raises:
            WorkspaceError: no such model config.
            ConfigError: the config is invalid, or an override sets an identity field
                (``name``, ``owner``, ``team``: see :meth:`refused_overrides`).
        """
        refused = self.refused_overrides(name, overrides)
        if refused:
            raise ConfigError("--set", refused)
        path = self.models_dir / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(self.model_names()) or "none"
            raise WorkspaceError(f"no model config {path}; models in this workspace: {known}")
        context = None if check_sql else {SKIP_SQL_CHECKS: True}
        return load_yaml_model(path, ModelConfig, overrides, context)
