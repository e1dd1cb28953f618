"""The one error tree of spindle.

Every error a user can see is a ``SpindleError``; third-party exceptions are translated at the
boundary. A message says what was expected, what was found, where, and what to do::

    SpindleError
    ├── ConfigError            a YAML/config file is invalid (lists every problem with file and key)
    ├── WorkspaceError         no workspace here, or it is not initialised
    ├── DataError              raw data is unusable (missing partition, unreadable file, bad schema)
    │   └── SchemaError        a required column is missing or has the wrong type
    ├── ValidationFailed       data validation returned FAIL and training is blocked
    ├── FeatureError           a feature definition, table or join is wrong
    ├── TrainingError          training cannot start or diverged (NaN/inf, empty window)
    ├── GateBlocked            the evaluation gate refused a model; push needs --force --reason
    ├── RegistryError          metadata store problem (unknown model/version, conflict)
    │   └── NotFound           an artifact, run, model or version does not exist
    ├── ServingError           a model repository or server problem (checksum, missing file)
    ├── OrchestrationError     a pipeline step failed; names the step and the cause
    ├── StorageError           a disk is full, read-only or not writable (names the path, the
    │                          free space on its mount and what to free; see core/_storage.py)
    └── TransientError         worth retrying (a lock, a busy file, a dropped connection)
        └── CommitConflict     another writer committed to the same Delta table first (also a
                               DataError: the write failed, and retrying it is safe)
"""

from __future__ import annotations


class SpindleError(Exception):
    """Base of every error spindle raises on purpose."""


class ConfigError(SpindleError):
    """A configuration file or override is invalid.

    Args:
        path: the file (or ``"--set"`` for command-line overrides).
        problems: one line per problem, each naming the key, what was expected and what was found.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:  # one problem reads as one line (its path said once)
            only = self.problems[0]
            super().__init__(only if only.startswith(path) else f"{path}: {only}")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s):\n{lines}")


class WorkspaceError(SpindleError):
    """No usable workspace was found."""


class DataError(SpindleError):
    """Raw or ingested data cannot be used."""


class SchemaError(DataError):
    """A column is missing or has an unexpected type."""


class ValidationFailed(SpindleError):
    """Data validation returned FAIL for data a step needs."""


class FeatureError(SpindleError):
    """A feature definition, feature table or point-in-time join is wrong."""


class TrainingError(SpindleError):
    """Training cannot start, or stopped because it diverged."""


class GateBlocked(SpindleError):
    """The evaluation gate refused a model version."""


class RegistryError(SpindleError):
    """A metadata store problem."""


class NotFound(RegistryError):
    """The named artifact, run, model or version does not exist."""


class ServingError(SpindleError):
    """A model repository or serving problem."""


class OrchestrationError(SpindleError):
    """A pipeline step failed."""


class StorageError(SpindleError):
    """A disk spindle writes is full, read-only or not writable by this user.

    Args:
        message: one line naming the path, the free space on its mount and what to do.
        read_only: the file system refuses writes (read-only mount, immutable flag,
            permissions): the metadata store must not be written, or even closed cleanly.
    """

    def __init__(self, message: str, *, read_only: bool = False) -> None:
        super().__init__(message)
        self.read_only = read_only


class TransientError(SpindleError):
    """A failure that may pass if retried (the runner retries these with backoff)."""


class CommitConflict(DataError, TransientError):
    """Another writer committed to the same Delta table first (two runs writing one table).

    The write changed nothing (Delta commits atomically) and writing a partition again is
    idempotent, so the runner retries it: a ``TransientError`` recognised by its type, where
    delta-rs' own ``CommitFailedError`` says "Commit failed" in words that vary by version.
    """
