"""Retractions: recorded once, left out of every later training set, feature view and ingest;
impact names exactly the versions (and deployments) whose training data held the rows; the
retraining plan starts from the last base that never saw them, most important model first."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import spindle
from spindle.core import SpindleError, open_dataset
from spindle.data import RetractedKeys, check_day, quarantined_rows
from spindle.orchestrate import Context, build_training_set, load_config, model_dir

RANKER, PROPENSITY = "search_ranker", "purchase_propensity"
ONE_EPOCH = ["training.epochs=1", "training.warm_start_epochs=1"]


def _search_ids(root: Path, day: str, n: int) -> list[str]:
    """``n`` search ids of ``day`` (their events on that day) in the ingested searches table."""
    table = open_dataset(root / ".spindle" / "tables" / "raw" / "searches").to_table(
        columns=["search_id", "ts"]
    )
    days = pc.strftime(table.column("ts"), format="%Y-%m-%d")
    ids = table.filter(pc.equal(days, day)).column("search_id").to_pylist()
    return sorted(ids)[:n]


@pytest.fixture(scope="module")
def fleet(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Days 1-4 ingested. search_ranker v1 for day 3 (trained on days 1-2), pushed; v2 for
    day 4 warm-started from v1 on day 3 only; v3 for day 4 from scratch on day 3 only.
    purchase_propensity v1 for day 3 (days 1-2), pushed."""
    root = tmp_path_factory.mktemp("retract") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        spindle.train_version(ctx, RANKER, "2026-01-03", overrides=ONE_EPOCH)
        spindle.push(ctx, RANKER, 1, infra=False, force=True, reason="retract test")
        spindle.train_version(ctx, PROPENSITY, "2026-01-03", overrides=ONE_EPOCH)
        spindle.push(ctx, PROPENSITY, 1, infra=False, force=True, reason="retract test")
        warm = [*ONE_EPOCH, "training.warm_start_window_days=1"]
        v2, _, _ = spindle.train_version(ctx, RANKER, "2026-01-04", overrides=warm)
        assert v2.base_version == 1
        scratch = [*ONE_EPOCH, "training.window_days=1"]
        v3, _, _ = spindle.train_version(
            ctx, RANKER, "2026-01-04", from_scratch=True, overrides=scratch
        )
        assert (v2.version, v3.version) == (2, 3)
    yield root


def _ids_file(tmp: Path, name: str, ids: list[str]) -> Path:
    path = tmp / name
    path.write_text("\n".join(ids) + "\n")
    return path


def _trainset_of(ctx: Context, model: str, version: int) -> dict[str, object]:
    manifest = json.loads((model_dir(ctx, model, version) / "manifest.json").read_text())
    return dict(manifest["training_set"])


def test_retraction_leaves_the_rows_out_of_the_next_training_set(
    fleet: Path, tmp_path: Path
) -> None:
    ids = _search_ids(fleet, "2026-01-01", 5)
    with Context.open(fleet) as ctx:
        before = ctx.store.get_artifact(str(_trainset_of(ctx, RANKER, 1)["id"]))
        old = pq.read_table(before.uri, columns=["search_id"]).column("search_id").to_pylist()
        assert set(ids) <= set(old), "the day-1 searches were in v1's training set"
        outcome = spindle.record_retraction(
            ctx, _ids_file(tmp_path, "fraud.txt", ids), "fraud", "searches"
        )
        info = outcome.retraction
        assert outcome.recorded and info.id == "retraction-1"
        assert (info.source, info.column, info.ids, info.rows_matched) == (
            "searches",
            "search_id",
            5,
            5,
        )
        assert info.who == "spindle retract" and not info.hashed
        loaded = load_config(ctx, RANKER, ONE_EPOCH)
        after = build_training_set(ctx, loaded, ["2026-01-01", "2026-01-02"])
        new = pq.read_table(after.uri, columns=["search_id"]).column("search_id").to_pylist()
        assert not set(ids) & set(new) and len(new) < len(old)
        assert after.retractions == ("retraction-1",) and after.id != before.id
        # the training set built before is unchanged: same file, same rows
        assert pq.read_table(before.uri).num_rows == len(old)
        assert set(ids) <= set(pq.read_table(before.uri).column("search_id").to_pylist())


def test_recording_the_same_retraction_again_changes_nothing(fleet: Path, tmp_path: Path) -> None:
    ids = _search_ids(fleet, "2026-01-01", 5)
    with Context.open(fleet) as ctx:
        again = spindle.record_retraction(
            ctx, _ids_file(tmp_path, "again.txt", list(reversed(ids))), "fraud", "searches"
        )
        assert not again.recorded and again.retraction.id == "retraction-1"
        assert [r.id for r in spindle.retractions(ctx)] == ["retraction-1"]


@pytest.mark.parametrize(
    ("args", "content", "expected"),
    [
        ({"source": "nope"}, "x\n", "source 'nope' is not declared"),
        ({"source": "searches", "column": "nope"}, "x\n", "column 'nope' is not declared"),
        ({"source": "searches"}, "\n\n", "holds no id"),
        ({"source": "impressions", "column": "position"}, "1\nten\n", "bad.txt:2: id 'ten'"),
        ({"source": "searches", "reason": "Fraud!"}, "x\n", "is not one lowercase word"),
        ({"source": "searches", "missing": True}, "", "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_records_nothing(
    fleet: Path, tmp_path: Path, args: dict[str, object], content: str, expected: str
) -> None:
    path = tmp_path / "bad.txt"
    if not args.get("missing"):
        path.write_text(content)
    with Context.open(fleet) as ctx:
        before = [r.id for r in spindle.retractions(ctx)]
        with pytest.raises(SpindleError) as caught:
            spindle.record_retraction(
                ctx,
                path,
                str(args.get("reason", "fraud")),
                str(args["source"]),
                args.get("column"),  # type: ignore[arg-type]
            )
        assert expected in str(caught.value) and "\n" not in str(caught.value)
        assert [r.id for r in spindle.retractions(ctx)] == before
    files = sorted(p.name for p in (fleet / ".spindle" / "retractions").glob("*.parquet"))
    assert files == [f"{i}.parquet" for i in before]


def test_impact_names_exactly_the_versions_that_saw_the_rows(fleet: Path) -> None:
    with Context.open(fleet) as ctx:
        impact = spindle.retraction_impact(ctx, "retraction-1")
    named = {(v.model, v.version): v for v in impact.versions}
    # v3 trained on day 3 only (from scratch): it never read a day-1 search
    assert set(named) == {(RANKER, 1), (RANKER, 2), (PROPENSITY, 1)}
    assert named[(RANKER, 1)].rows > 0 and named[(RANKER, 1)].through is None
    assert named[(RANKER, 2)].rows == 0 and named[(RANKER, 2)].through == 1
    assert named[(PROPENSITY, 1)].rows > 0
    deployed = {(d["model"], tuple(d["versions"])) for d in impact.deployments}
    assert deployed == {(RANKER, (1,)), (PROPENSITY, (1,))}
    assert all(d["serving_now"] for d in impact.deployments)


def test_a_version_trained_after_the_retraction_is_not_named(fleet: Path) -> None:
    with Context.open(fleet) as ctx:
        version, _, _ = spindle.train_version(
            ctx,
            RANKER,
            "2026-01-03",
            from_scratch=True,
            overrides=[*ONE_EPOCH, "training.seed=7"],
        )
        trainset = _trainset_of(ctx, RANKER, version.version)
        assert trainset["retractions"] == ["retraction-1"]
        assert trainset["dates"] == ["2026-01-01", "2026-01-02"]
        named = {
            (v.model, v.version) for v in spindle.retraction_impact(ctx, "retraction-1").versions
        }
    assert (RANKER, version.version) not in named


def test_retrain_plan_orders_by_priority_from_scratch_when_every_base_saw_the_rows(
    fleet: Path,
) -> None:
    with Context.open(fleet) as ctx:
        plan = spindle.retrain_plan(ctx, "retraction-1")
    assert [(t.model, t.production, t.base) for t in plan] == [
        (RANKER, 1, None),
        (PROPENSITY, 1, None),
    ]
    assert [t.priority for t in plan] == [1, 3]
    assert "from scratch" in plan[0].why and plan[0].date == "2026-01-03"


def test_reingesting_a_day_sets_the_retracted_rows_aside(fleet: Path) -> None:
    ids = _search_ids(fleet, "2026-01-01", 5)
    with Context.open(fleet) as ctx:
        day = spindle.ingest(ctx, "2026-01-01")
        assert not day.skipped
        assert day.result.quarantine_reasons.get("searches: retracted:retraction-1") == 5
        page = quarantined_rows(
            ctx.workspace.tables_dir, "2026-01-01", reason="retracted:retraction-1"
        )
        assert page.total == 5 and {r["row"]["search_id"] for r in page.rows} == set(ids)
        raw = open_dataset(ctx.workspace.tables_dir / "raw" / "searches").to_table()
        assert not set(ids) & set(raw.column("search_id").to_pylist())
        assert spindle.ingest(ctx, "2026-01-01").skipped  # nothing new: the same work


def test_deletion_keeps_only_digests_and_plans_from_the_clean_base(
    fleet: Path, tmp_path: Path
) -> None:
    """A deletion of day-3 searches: v2 and v3 read them, v1 did not; with v2 in production
    the plan warm-starts from v1, and running it trains from v1 through the gate."""
    ids = _search_ids(fleet, "2026-01-03", 3)
    with Context.open(fleet) as ctx:
        outcome = spindle.record_retraction(
            ctx, _ids_file(tmp_path, "gdpr.txt", ids), "deletion", "searches"
        )
        info = outcome.retraction
        assert info.hashed and info.id == "retraction-2"
        stored = pq.read_table(info.keys_uri).column("key").to_pylist()
        assert not set(ids) & set(stored) and all(len(k) == 64 for k in stored)
        named = {(v.model, v.version) for v in spindle.retraction_impact(ctx, info.id).versions}
        assert {(RANKER, 2), (RANKER, 3)} <= named and (RANKER, 1) not in named
        assert (PROPENSITY, 1) not in named
        spindle.push(ctx, RANKER, 2, infra=False, force=True, reason="retract test")
        plan = spindle.retrain_plan(ctx, info.id)
        assert [(t.model, t.production, t.base) for t in plan] == [(RANKER, 2, 1)]
        reports = spindle.run_retrain(ctx, plan)
        report = reports[0]
        assert report.error is None and report.base_version == 1, report.error
        assert report.gate in {"pass", "block"}
        new = _trainset_of(ctx, RANKER, int(report.version or 0))
        assert new["retractions"] == ["retraction-1", "retraction-2"]
        evaluated = ctx.store.find_artifacts("evaluation", model=RANKER, version=report.version)
        assert evaluated, "the retrained version went through the gate"
        serving = ctx.store.get_alias(RANKER, "production")
        assert serving == (report.version if report.gate == "pass" else 2)


def test_impact_outlives_the_physical_removal_of_a_deletion(fleet: Path) -> None:
    """forget purges the table versions impact reads by time travel: the impact recorded with
    the retraction answers for them, and names the same versions."""
    ids = _search_ids(fleet, "2026-01-03", 3)
    with Context.open(fleet) as ctx:
        before = spindle.retraction_impact(ctx, "retraction-2")
        spindle.forget_rows(ctx, "retraction-2", "searches", "search_id", ids)
        after = spindle.retraction_impact(ctx, "retraction-2")
    assert [(v.model, v.version, v.rows, v.through) for v in after.versions] == [
        (v.model, v.version, v.rows, v.through) for v in before.versions
    ]
    assert not after.unknown


def test_feature_views_do_not_see_retracted_rows(ingested_workspace: Path) -> None:
    """A view computed after a retraction reads its source without the retracted rows: with
    every purchase retracted (plain ids, or salted digests), the product view's rows are those
    of a world without purchases."""
    from spindle.features import view_rows

    tables = ingested_workspace / ".spindle" / "tables"
    purchases = open_dataset(tables / "raw" / "purchases").to_table(columns=["transaction_id"])
    ids = purchases.column("transaction_id").to_pylist()
    salt = "s4lt"
    digests = [hashlib.sha256((salt + i).encode()).hexdigest() for i in ids]
    with Context.open(ingested_workspace) as ctx:
        view = ctx.features.view("product")
        seen = view_rows(tables, view, "2026-01-04")
        plain = view_rows(
            tables,
            view,
            "2026-01-04",
            exclusions={"purchases": [("retraction-x", "transaction_id", ids, None)]},
        )
        hashed = view_rows(
            tables,
            view,
            "2026-01-04",
            exclusions={"purchases": [("retraction-y", "transaction_id", digests, salt)]},
        )
    assert not plain.equals(seen) and plain.equals(hashed)


def test_ingest_sets_a_deletions_rows_aside_by_digest_and_redacted(
    ingested_workspace: Path,
) -> None:
    """A re-delivered raw file holding a deleted row: ingest matches it by its salted digest
    and keeps only that it was set aside, and why — not the row."""
    ids = _search_ids(ingested_workspace, "2026-01-02", 3)
    salt = "pepper"
    keys = tuple(hashlib.sha256((salt + i).encode()).hexdigest() for i in ids)
    with Context.open(ingested_workspace) as ctx:
        check = check_day(
            ctx.workspace.root,
            ctx.sources,
            "2026-01-02",
            {"searches": [RetractedKeys("retraction-9", "search_id", keys, salt)]},
        )
    searches = next(c for c in check.checked if c.source == "searches")
    assert not set(ids) & set(searches.good.column("search_id").to_pylist())
    aside = searches.bad.filter(pc.equal(searches.bad.column("reason"), "retracted:retraction-9"))
    assert aside.num_rows == 3
    assert all(
        json.loads(t) == {"redacted": "retracted:retraction-9"}
        for t in aside.column("row_json").to_pylist()
    )
