"""A training set built as parts (``examples.partitions``, by ``examples.partition_key``
hash) and merged equals the one built as one task: the same rows, order, row groups, schema
and counts, in this process and as Ray tasks; a bad declaration is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spindle.core import ConfigError, TrainingSet
from spindle.orchestrate import Context, build_training_set, load_config

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
PARTS = ["examples.partitions=4", "examples.partition_key=user_id"]


def _build(
    root: Path, overrides: list[str], purpose: str = "train", ray: bool = False
) -> tuple[TrainingSet, list[str]]:
    with Context.open(root) as ctx:
        if ray:
            ctx.use_executor("ray")
        loaded = load_config(ctx, "search_ranker", overrides)
        days = DAYS if purpose == "train" else ["2026-01-04"]
        trainset = build_training_set(ctx, loaded, days, purpose=purpose)
        placed = [label for label, _ in getattr(ctx.tasks, "placements", [])]
        return trainset, placed


def _same_file(a: str, b: str) -> None:
    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    assert fa.schema_arrow == fb.schema_arrow
    sizes = [[f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] for f in (fa, fb)]
    assert sizes[0] == sizes[1]
    assert fa.read().equals(fb.read())


@pytest.mark.parametrize("purpose", ["train", "holdout"])
def test_parts_merged_equal_one_task(
    ingested_workspace: Path, tmp_path: Path, purpose: str
) -> None:
    whole, parted = (tmp_path / "whole", tmp_path / "parted")
    for target in (whole, parted):
        shutil.copytree(ingested_workspace, target, symlinks=True)
    one, _ = _build(whole, [], purpose)
    four, _ = _build(parted, PARTS, purpose)
    assert four.rows == one.rows > 0
    assert four.immature_examples == one.immature_examples
    assert four.content_hash == one.content_hash  # the partitioning is not part of its identity
    _same_file(four.uri, one.uri)
    assert not Path(four.uri).with_suffix(".parts").exists()  # the parts are removed


@pytest.mark.e2e
def test_parts_run_as_ray_tasks(ingested_workspace: Path, tmp_path: Path, local_ray: None) -> None:
    pytest.importorskip("ray")
    whole, parted = (tmp_path / "whole", tmp_path / "parted")
    for target in (whole, parted):
        shutil.copytree(ingested_workspace, target, symlinks=True)
    one, _ = _build(whole, [])
    four, placed = _build(parted, PARTS, ray=True)
    label = f"training set search_ranker train {DAYS[0]}..{DAYS[-1]}"
    assert placed == [f"{label} part"] * 4 + [f"{label} merge"]
    _same_file(four.uri, one.uri)


def test_a_partitioned_build_needs_a_key_the_examples_produce(workspace_copy: Path) -> None:
    with Context.open(workspace_copy) as ctx:
        with pytest.raises(ConfigError, match=r"examples\.partition_key") as caught:
            load_config(ctx, "search_ranker", ["examples.partitions=4"])
        assert "\n" not in str(caught.value).strip()
        loaded = load_config(ctx, "search_ranker", [PARTS[0], "examples.partition_key=shopper"])
        with pytest.raises(ConfigError, match=r"'shopper' is not produced by examples\.sql"):
            build_training_set(ctx, loaded, DAYS)


def test_a_part_reads_only_its_entities_rows_of_each_view(
    ingested_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each part copies a view's rows for its own examples' keys only (the real copy runs; a
    spy counts what it copied): a part holds about 1/N of the user view, not all of it."""
    from spindle.features import _training_set

    copied: dict[str, list[int]] = {}
    real = _training_set.copy_view

    def counting(con, tables_dir, view, version, window, **kwargs):  # type: ignore[no-untyped-def]
        real(con, tables_dir, view, version, window, **kwargs)
        ((rows,),) = con.execute(f'SELECT count(*) FROM "__spindle_view_{view.name}"').fetchall()
        copied.setdefault(view.name, []).append(int(rows))

    monkeypatch.setattr(_training_set, "copy_view", counting)
    whole, parted = (tmp_path / "whole", tmp_path / "parted")
    for target in (whole, parted):
        shutil.copytree(ingested_workspace, target, symlinks=True)
    _build(whole, [])
    once = {name: counts[0] for name, counts in copied.items()}
    copied.clear()
    _build(parted, PARTS)
    assert set(copied) == set(once) and all(len(c) == 4 for c in copied.values()), copied
    users = next(name for name in once if name.startswith("user"))
    assert sum(copied[users]) <= once[users]  # each user is in one part only
    assert max(copied[users]) < once[users] / 2, (copied[users], once[users])
    assert all(max(counts) <= once[name] for name, counts in copied.items())
