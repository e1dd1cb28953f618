"""MetadataStore: the one front door to runs, artifacts, lineage, model versions and aliases.

Each public method is one database transaction. Writes on SQLite take the write lock up front
(``BEGIN IMMEDIATE``, see ``_engine``); a write that loses a race on a unique key is retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from spindle.core import RegistryError
from spindle.registry import _artifacts, _deployments, _lineage, _locations, _runs, _versions
from spindle.registry._engine import (
    WRITE_OPTION,
    WriteConflict,
    close_engine,
    create_store_engine,
    ensure_writable,
    mask_url,
    translate_errors,
)
from spindle.registry._records import (
    AliasEvent,
    ArtifactRecord,
    DeploymentRecord,
    IntentRecord,
    LineageGraph,
    ModelVersionRecord,
    RunRecord,
)
from spindle.registry._schema import Base

T = TypeVar("T")

_WRITE_ATTEMPTS = 5
_RESERVE_ATTEMPTS = 50


class MetadataStore:
    """Runs, artifacts, lineage, model versions and aliases in one SQL database.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///path/metadata.db`` (the default of a workspace;
            WAL mode, 30 s busy timeout, parent directory created) or
            ``postgresql+psycopg://user:pass@host/db``. Tables are created if missing.
        root: the workspace this store serves: artifact paths inside it are recorded relative
            to it and read back resolved against it, so a copied or moved workspace reads its
            own files (see ``_locations``). None records and returns URIs as given.

    Raises:
        RegistryError: the URL is invalid, its driver is missing or the database is unreachable.

    Example::

        with MetadataStore("sqlite:///.spindle/metadata.db") as store:
            version = store.reserve_version("search_ranker", date="2026-01-07")
    """

    def __init__(self, url: str, *, root: Path | None = None) -> None:
        self.url = mask_url(url)
        self.root = root
        self._engine = create_store_engine(url)
        self._closed = False
        try:
            self._create_tables()
        except BaseException:
            close_engine(self._engine)
            raise

    def __repr__(self) -> str:
        return f"MetadataStore({self.url!r})"

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        self._closed = True
        close_engine(self._engine)  # not on a disk that refuses writes: see close_engine

    def _create_tables(self) -> None:
        # Two processes opening a new PostgreSQL store at once may both try to create a
        # table; the loser's second attempt finds the tables there.
        for attempt in range(2):
            try:
                with translate_errors(self.url), self._engine.connect() as conn:
                    conn.execution_options(**{WRITE_OPTION: True})
                    with conn.begin():
                        Base.metadata.create_all(conn)
                return
            except RegistryError:
                if attempt:
                    raise

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        if self._closed:
            raise RegistryError(f"metadata store {self.url} is closed; open a new MetadataStore")
        ensure_writable(self._engine)  # before SQLite touches its WAL index: SIGBUS otherwise
        with translate_errors(self.url), self._engine.connect() as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    def _read(self, work: Callable[[Session], T]) -> T:
        with self._session() as session:
            return work(session)

    def _write(self, work: Callable[[Session], T], attempts: int = _WRITE_ATTEMPTS) -> T:
        """Run ``work`` in a write transaction, retrying it if it lost a unique-key race."""
        for attempt in range(1, attempts + 1):
            try:
                with self._session(write=True) as session:
                    return work(session)
            except WriteConflict:
                if attempt == attempts:
                    raise
                time.sleep(random.uniform(0, 0.005 * attempt))
        raise AssertionError("unreachable")

    # --- artifacts -------------------------------------------------------------------------

    def redact(self, values: Sequence[str], replacement: str = "[forgotten]") -> dict[str, int]:
        """Replace ``values`` (a deletion request's ids) wherever the store quotes them: artifact
        properties (validation reports), run params and errors, model-version errors; on
        SQLite the freed pages are zeroed, the WAL truncated and the file vacuumed.

        Returns:
            How many records changed, by table (``artifacts``, ``runs``, ``model_versions``).
        """
        from spindle.registry import _redact

        def work(session: Session) -> dict[str, int]:
            _redact.secure_delete_on(session.connection())
            return _redact.redact_rows(session, values, replacement)

        counts = self._write(work)
        if self._engine.dialect.name == "sqlite":
            raw = self._engine.raw_connection()
            try:
                with translate_errors(self.url):
                    _redact.compact(raw.driver_connection)
            finally:
                raw.close()
        return counts

    def record_artifact(self, artifact: Any, run_id: str | None = None) -> ArtifactRecord:
        """Record ``artifact`` (any core artifact, or an ArtifactRecord); idempotent by id.

        Args:
            artifact: has ``kind``, ``id``, ``uri``, ``content_hash`` and ``properties()``.
            run_id: the run that produced it, if any.

        Returns:
            The stored record (the first one, if the id was already recorded).

        Raises:
            RegistryError: the id is recorded with a different content hash (immutable).
            NotFound: ``run_id`` is not a recorded run.
        """

        def work(session: Session) -> ArtifactRecord:
            if run_id is not None:
                _runs.run_row(session, run_id)
            row = _artifacts.record_artifact(session, stored, run_id)
            return _locations.resolved(row.to_record(), self.root)

        stored = _locations.stored(artifact, self.root)
        return self._write(work)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """Return the artifact ``artifact_id``; NotFound lists similar ids that exist."""
        return self._read(
            lambda s: _locations.resolved(
                _artifacts.artifact_row(s, artifact_id).to_record(), self.root
            )
        )

    def find_artifacts(self, kind: str | None = None, **properties: Any) -> list[ArtifactRecord]:
        """Artifacts of ``kind`` whose properties equal every given value, oldest first.

        Example: ``store.find_artifacts("evaluation", model="search_ranker", version=3)``.
        """
        return self._read(
            lambda s: [
                _locations.resolved(row.to_record(), self.root)
                for row in _artifacts.matching(s, kind, properties)
            ]
        )

    def latest_artifact(self, kind: str, **properties: Any) -> ArtifactRecord | None:
        """The most recently recorded artifact of ``kind`` matching ``properties``, or None.

        Example: ``store.latest_artifact("deployment", model="search_ranker")``.
        """

        def work(session: Session) -> ArtifactRecord | None:
            for row in _artifacts.matching(session, kind, properties, newest_first=True):
                return _locations.resolved(row.to_record(), self.root)
            return None

        return self._read(work)

    def relocate(self, old_root: str) -> int:
        """Record every absolute artifact path inside ``old_root`` relative to it; the count.

        For a store written before paths were recorded relative to the workspace, whose
        workspace has since been copied or moved away from ``old_root`` (``spindle doctor
        --fix``). Idempotent: a second call finds nothing to change.
        """
        return self._write(lambda s: _artifacts.relocate(s, old_root))

    # --- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        step: str,
        key: str,
        *,
        model: str | None = None,
        date: str | None = None,
        config_hash: str | None = None,
        params: dict[str, Any] | None = None,
        inputs: Sequence[str] = (),
    ) -> RunRecord:
        """Record the start of a run of ``step`` by this process (its pid and host).

        Args:
            step: the step name, e.g. ``train``.
            key: the idempotency key: equal keys mean equal work (see find_succeeded_run).
            inputs: ids of recorded artifacts the run reads.

        Raises:
            NotFound: an input is not recorded.
        """
        return self._write(
            lambda s: _runs.start(
                s,
                step,
                key,
                model=model,
                date=date,
                config_hash=config_hash,
                params=params or {},
                inputs=inputs,
            ).to_record()
        )

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        outputs: Sequence[Any] = (),
        resources: dict[str, Any] | None = None,
        error: str | None = None,
        ran_on: list[dict[str, Any]] | None = None,
    ) -> RunRecord:
        """Finish a running run; record its outputs and input -> output lineage atomically.

        Args:
            status: ``succeeded``, ``failed`` or ``skipped``.
            outputs: artifacts (or ids of recorded artifacts) the run produced; each gets an
                edge from every input with relation ``produced_by:<step>``.
            resources: measured resource use (examples/s, CPU seconds, peak memory, ...).
            ran_on: where the run's tasks ran, when elsewhere (a cluster's nodes): kept in
                its ``params`` as ``ran_on`` (task, node, host, wall_s, cpu_s, peak_rss_mb).

        Raises:
            RegistryError: the status is not final, the run already finished, or an output
                conflicts with a recorded artifact (then nothing of this call is written).
        """
        kept = [_locations.stored(output, self.root) for output in outputs]
        return self._write(
            lambda s: _runs.finish(
                s,
                run_id,
                status,
                outputs=kept,
                resources=resources or {},
                error=error,
                ran_on=ran_on or [],
            ).to_record()
        )

    def find_succeeded_run(self, key: str) -> RunRecord | None:
        """The latest succeeded run with idempotency ``key``, or None."""
        return self._read(lambda s: _runs.latest_succeeded(s, key))

    def get_run(self, run_id: str) -> RunRecord:
        """Return run ``run_id``; NotFound names the newest runs."""
        return self._read(lambda s: _runs.run_row(s, run_id).to_record())

    def runs(
        self,
        *,
        model: str | None = None,
        step: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first, at most ``limit`` (None: all)."""
        return self._read(
            lambda s: _runs.query(s, model=model, step=step, status=status, limit=limit)
        )

    def stale_runs(self) -> list[RunRecord]:
        """The runs :meth:`mark_stale_runs` would mark failed, without marking them."""
        return self._read(_runs.find_stale)

    def mark_stale_runs(self) -> list[RunRecord]:
        """Mark ``failed`` (error ``process died``) every run of this host whose process is gone.

        Runs started on other hosts are left alone: their processes cannot be checked here.
        """
        return self._write(_runs.mark_stale)

    # --- lineage ---------------------------------------------------------------------------

    def add_edge(self, parent_id: str, child_id: str, relation: str) -> None:
        """Record that ``parent_id`` was used to make ``child_id``; idempotent.

        Raises:
            NotFound: either artifact is not recorded.
        """
        self._write(lambda s: _lineage.add_edge(s, parent_id, child_id, relation))

    def add_edges(self, edges: Sequence[tuple[str, str, str]]) -> None:
        """Record several ``(parent_id, child_id, relation)`` edges in one transaction; idempotent.

        Raises:
            NotFound: an artifact is not recorded (then none of the edges is written).
        """

        def work(session: Session) -> None:
            for parent_id, child_id, relation in edges:
                _lineage.add_edge(session, parent_id, child_id, relation)

        self._write(work)

    def lineage(
        self, artifact_id: str, *, direction: str = "both", max_depth: int = 20
    ) -> LineageGraph:
        """Walk lineage from ``artifact_id``: ``upstream`` (inputs), ``downstream`` or ``both``.

        Example: every model version that saw a raw partition is in
        ``[n for n in store.lineage(raw_id, direction="downstream").downstream
        if n.kind == "model_version"]``.
        """
        graph = self._read(
            lambda s: _lineage.walk(
                s, _artifacts.artifact_row(s, artifact_id), direction, max_depth
            )
        )
        return _locations.resolved_graph(graph, self.root)

    # --- model versions --------------------------------------------------------------------

    def reserve_version(
        self, model: str, *, date: str | None = None, base_version: int | None = None
    ) -> int:
        """Take the next version number of ``model`` (1 for a new model) and return it.

        Safe across processes: concurrent callers get distinct numbers with no gaps.

        Raises:
            NotFound: ``base_version`` does not exist.
        """
        if not model or len(model) > 128:
            raise RegistryError(f"a model name must have 1 to 128 characters; got {model!r}")
        return self._write(
            lambda s: _versions.next_version(s, model, date, base_version), _RESERVE_ATTEMPTS
        )

    def complete_version(self, model: str, version: int, artifact: Any) -> ModelVersionRecord:
        """Mark a reserved version ready with its exported ``artifact`` (recorded here).

        Completing again with the same artifact returns the record; with another artifact it
        raises RegistryError (versions are immutable), as does completing a failed version.
        """

        kept = _locations.stored(artifact, self.root)
        return self._write(lambda s: _versions.complete(s, model, version, kept))

    def fail_version(self, model: str, version: int, reason: str) -> None:
        """Mark a reserved version failed; its number is never reused. Failing twice is a no-op.

        Raises:
            RegistryError: the version is already ready (immutable; move its aliases instead).
        """

        self._write(lambda s: _versions.fail(s, model, version, reason))

    def get_version(self, model: str, version: int) -> ModelVersionRecord:
        """Return ``model`` ``version``; NotFound says which versions exist."""
        return self._read(lambda s: _versions.version_row(s, model, version).to_record())

    def versions(self, model: str) -> list[ModelVersionRecord]:
        """Every version of ``model``, oldest first; NotFound for an unknown model."""

        return self._read(lambda s: _versions.all_versions(s, model))

    def models(self) -> list[str]:
        """Names of every model with at least one version, sorted."""
        return self._read(_versions.model_names)

    # --- aliases ---------------------------------------------------------------------------

    def set_alias(
        self, model: str, alias: str, version: int | None, *, actor: str, reason: str
    ) -> AliasEvent:
        """Point ``alias`` of ``model`` at a ready ``version`` (None clears it), with history.

        Moving ``production`` also moves ``previous`` to the old production version (two
        events). Setting an alias to its current version records nothing and returns the
        event that set it.

        Raises:
            NotFound: unknown model or version.
            RegistryError: the version is not ready, or actor/reason is empty.
        """
        return self._write(lambda s: _versions.move_alias(s, model, alias, version, actor, reason))

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None if it was never set or was cleared."""
        return self._read(lambda s: self._aliases(s, model).get(alias))

    def aliases(self, model: str) -> dict[str, int]:
        """Every set alias of ``model`` and its version."""
        return self._read(lambda s: self._aliases(s, model))

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes of ``model`` (of one ``alias`` if given), oldest first."""

        def work(session: Session) -> list[AliasEvent]:
            _versions.require_model(session, model)
            return _versions.history(session, model, alias)

        return self._read(work)

    # --- deployments -----------------------------------------------------------------------

    def begin_deployment(
        self,
        model: str,
        weights: dict[int, float],
        previous: int | None,
        *,
        actor: str,
        reason: str,
    ) -> DeploymentRecord:
        """Record that routing of ``model`` is about to become ``weights`` (status ``pending``).

        Write routing.json next, then call :meth:`finish_deployment` (or
        :meth:`abandon_deployment` when the write failed).

        Raises:
            NotFound: unknown model or version.
            RegistryError: a routed version is not ready, a weight is invalid, or actor or
                reason is empty.
        """
        return self._write(lambda s: _deployments.begin(s, model, weights, previous, actor, reason))

    def begin_intent(
        self,
        op: str,
        model: str,
        args: dict[str, Any],
        *,
        base: tuple[dict[int, float], int | None],
        target: tuple[dict[int, float], int | None],
        actor: str,
        reason: str,
    ) -> IntentRecord:
        """Record that command ``op`` with ``args`` is about to route ``model`` to ``target``.

        One transaction records the pending deployment of ``target`` (weights, previous) and the
        intent: the op, its arguments, their key and ``base``, the routing the target was
        planned from. Act next (write routing.json), then :meth:`finish_deployment` the
        intent's deployment. A rerun of the same command finds the pending intent with
        :meth:`intents` (``key`` equal) and completes it instead of planning again.

        Raises:
            NotFound: unknown model or version.
            RegistryError: as :meth:`begin_deployment`, an unknown op, or arguments that are
                not JSON.
        """
        return self._write(
            lambda s: _deployments.begin_intent(s, op, model, args, base, target, actor, reason)
        )

    def intents(self, model: str | None = None, *, status: str | None = None) -> list[IntentRecord]:
        """Recorded intents (of ``model``, whose deployment has ``status``), oldest first."""
        return self._read(lambda s: _deployments.intents(s, model, status))

    @staticmethod
    def intent_key(op: str, model: str, args: dict[str, Any]) -> str:
        """The key :meth:`begin_intent` records for ``op`` of ``model`` with ``args``."""
        return _deployments.intent_key(op, model, args)

    def finish_deployment(self, seq: int) -> DeploymentRecord:
        """Mark deployment ``seq`` done and point ``production`` at its main version, atomically."""
        return self._write(lambda s: _deployments.finish(s, seq))

    def abandon_deployment(self, seq: int, detail: str) -> DeploymentRecord:
        """Mark a pending deployment abandoned: its routing was never written (``detail``: why)."""
        return self._write(lambda s: _deployments.abandon(s, seq, detail))

    def refuse_deployment(
        self, model: str, weights: dict[int, float], *, actor: str, reason: str, detail: str
    ) -> DeploymentRecord:
        """Record a deployment that was asked for and refused (``detail``: why)."""
        return self._write(lambda s: _deployments.refuse(s, model, weights, actor, reason, detail))

    def deployments(
        self, model: str | None = None, *, status: str | None = None
    ) -> list[DeploymentRecord]:
        """Recorded deployments (of ``model``, with ``status``), oldest first."""
        return self._read(lambda s: _deployments.listing(s, model, status))

    @staticmethod
    def _aliases(session: Session, model: str) -> dict[str, int]:
        _versions.require_model(session, model)
        return _versions.alias_map(session, model)
