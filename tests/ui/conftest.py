"""One demo workspace for every dashboard test, and one real server on loopback serving it.

The workspace is what a user gets from ``spindle demo --days 3``, then a fourth day whose logs
hold corrupt rows (quarantined with their reasons) run through the daily pipeline, and a real
failure: the daily run of a day whose logs never arrived (its ingest fails, recorded with the
error), which leaves the day between them a gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from tests.conftest import CORRUPT_DAY as CORRUPT_DAY  # simulated with corrupt rows
from tests.conftest import demo_with_corrupt_day

GAP_DAY = "2026-01-05"  # nothing ran
FAILED_DAY = "2026-01-06"  # no raw data: its ingest fails


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = demo_with_corrupt_day(tmp_path_factory.mktemp("ui") / "demo")
    with spindle.Context.open(root) as ctx:
        report = spindle.run_day(ctx, "search_ranker", FAILED_DAY)
    assert report.error is not None  # the ingest of a day without logs fails, recorded
    # fraud found later: five purchases of the first day, which every version trained on
    ids = _first_purchases(root, 5)
    listed = root.parent / "fraud.txt"
    listed.write_text("\n".join(ids) + "\n")
    with spindle.Context.open(root) as ctx:
        spindle.record_retraction(ctx, listed, "fraud", "purchases")
    return root


def _first_purchases(root: Path, n: int) -> list[str]:
    """The first ``n`` purchases' keys of the first day, as loaded."""
    import duckdb
    from deltalake import DeltaTable

    table = DeltaTable(str(root / ".spindle" / "tables" / "raw" / "purchases"))
    with duckdb.connect() as con:
        con.register("purchases", table.to_pyarrow_dataset())
        sql = "SELECT transaction_id FROM purchases WHERE date = '2026-01-01' ORDER BY 1 LIMIT ?"
        return [str(r[0]) for r in con.execute(sql, [n]).fetchall()]


@pytest.fixture(scope="session")
def ui_url(demo_workspace: Path) -> Iterator[str]:
    from spindle.serve import ServerThread
    from spindle.ui import create_ui_app

    with ServerThread(create_ui_app(demo_workspace)) as server:
        yield server.url
