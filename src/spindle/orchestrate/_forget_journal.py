"""The journal of a forget in progress and the report of a finished one.

The journal (``<state>/forget/<retraction_id>/journal.json``, written atomically) holds the
request (ids included: the work needs them until the end) and each place's state: ``started``
with the rows it held when counted, then ``done``. A place counted before a crash keeps that
count, so a resumed forget counts each row once. The journal is deleted when the forget is
recorded; the record (a ``forget`` run) holds counts and file lists, never the ids.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spindle.core import WorkspaceError, atomic_write_json

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ForgetReport:
    """What a forget removed, where, and what it leaves to the user.

    Attributes:
        status: ``done``, or ``waiting`` (rows are deleted; the files they were in stay until
            ``vacuum_after``, when ``spindle forget resume`` purges them).
        rows_removed: rows removed per place (``raw:<source>``, ``features:<view>``,
            ``quarantine``, ``online:<view>``, ``trainset:<file>``, ``raw_file:<file>``).
        files_rewritten: files rewritten without the rows (relative to the workspace).
        tables_purged: Delta tables whose older versions and log entries were removed.
        model_versions: model versions whose training sets were rewritten: retrain them.
        evaluations: evaluations whose holdouts were rewritten.
        recompute: feature views computed from the removed rows: run
            ``spindle features backfill`` for them.
        records_redacted: metadata-store records (validation reports, run errors) that quoted
            an id, by table, with the id replaced by ``[forgotten]``.
        not_scrubbed: places that hold rows of these sources spindle cannot rewrite.
    """

    retraction_id: str
    source: str
    column: str
    ids: int
    status: str
    rows_removed: dict[str, int] = field(default_factory=dict)
    files_rewritten: list[str] = field(default_factory=list)
    tables_purged: list[str] = field(default_factory=list)
    leftovers_removed: list[str] = field(default_factory=list)
    records_redacted: dict[str, int] = field(default_factory=dict)
    model_versions: list[str] = field(default_factory=list)
    evaluations: list[str] = field(default_factory=list)
    recompute: list[str] = field(default_factory=list)
    not_scrubbed: list[str] = field(default_factory=list)
    vacuum_after: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    by: str | None = None
    run_id: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows_removed.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total_rows": self.total_rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any], run_id: str | None = None) -> ForgetReport:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**(known | ({"run_id": run_id} if run_id else {})))


def check_retraction_id(retraction_id: str) -> str:
    """``retraction_id`` when it can name a folder, else a one-line WorkspaceError."""
    if not _SAFE_ID.match(retraction_id or ""):
        raise WorkspaceError(
            f"retraction id {retraction_id!r} is not usable: use letters, digits, '.', '_' "
            "or '-' (at most 128), as `spindle retract` prints it"
        )
    return retraction_id


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Journal:
    """A forget in progress, as written under ``<state>/forget/<retraction_id>/``."""

    folder: Path
    data: dict[str, Any]

    @staticmethod
    def folder_of(state_dir: Path, retraction_id: str) -> Path:
        return state_dir / "forget" / retraction_id

    @classmethod
    def load(cls, state_dir: Path, retraction_id: str) -> Journal | None:
        import json

        folder = cls.folder_of(state_dir, retraction_id)
        path = folder / "journal.json"
        if not path.is_file():
            return None
        return cls(folder, json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def create(cls, state_dir: Path, request: dict[str, Any]) -> Journal:
        folder = cls.folder_of(state_dir, request["retraction_id"])
        journal = cls(folder, request | {"places": {}, "started_at": now_iso()})
        journal.save()
        return journal

    def save(self) -> None:
        atomic_write_json(self.folder / "journal.json", self.data)

    def place(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.data["places"].get(name)
        return found

    def start(self, name: str, rows: int) -> None:
        self.data["places"][name] = {"state": "started", "rows": rows}
        self.save()

    def finish(self, name: str, rows: int, **extra: Any) -> None:
        self.data["places"][name] = {"state": "done", "rows": rows} | extra
        self.save()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        parent = self.folder.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def journals(state_dir: Path) -> list[Journal]:
    """Every forget in progress in the workspace, oldest first."""
    folder = state_dir / "forget"
    found = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        journal = Journal.load(state_dir, entry.name)
        if journal is not None:
            found.append(journal)
    return sorted(found, key=lambda j: str(j.data.get("started_at")))
