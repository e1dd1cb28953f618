"""An event-time view (``view: {from: <source>}``): each row of the source is a feature row at its
own event time, joined to examples as of their event time, never later, within the TTL.

Checked on the flights example's hourly weather: the view's table holds each UTC day's
observations; a training set's weather columns equal a hand-written DuckDB ASOF join on the
raw observations; the online store holds the latest observation per airport; a bad ``from``
is one clear error.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from tests.flights_helpers import delay_rows, ingested_flights, one_view

from spindle.core import ConfigError, Workspace, load_sources, open_dataset
from spindle.features import FeatureRegistry, OnlineStore

DAYS = ["2013-01-01", "2013-01-02", "2013-01-03"]
WEATHER = ("temp", "wind_speed", "precip", "visib")


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingested_flights(tmp_path_factory.mktemp("flights-weather"), DAYS)


def test_the_view_holds_each_days_own_observations(flights: Path) -> None:
    tables = flights / ".spindle" / "tables"
    raw = open_dataset(tables / "raw" / "weather").to_table()
    view = open_dataset(tables / "features" / "weather").to_table()
    con = duckdb.connect()
    con.register("raw", raw)
    con.register("view", view)
    for day in DAYS:
        expected = con.execute(
            f"SELECT origin, time_hour, temp FROM raw WHERE time_hour >= TIMESTAMP '{day}' "
            f"AND time_hour < TIMESTAMP '{day}' + INTERVAL 1 DAY ORDER BY ALL"
        ).fetchall()
        got = con.execute(
            f"SELECT origin, feature_ts, weather__temp__v1 FROM view WHERE date = '{day}' "
            "ORDER BY ALL"
        ).fetchall()
        assert got == expected and len(got) > 50, day  # the first UTC day starts at 05:00


def test_training_set_weather_equals_a_hand_written_asof_join(flights: Path) -> None:
    ws = Workspace.load(flights)
    rows = delay_rows(flights, DAYS[1])
    assert (
        rows.num_rows > 200
    )  # departures before 12:00 UTC: later ones have not landed by the cutoff
    con = duckdb.connect()
    con.register("rows", rows)
    con.register("weather", open_dataset(ws.tables_dir / "raw" / "weather").to_table())
    # the latest observation at or before the scheduled hour, if at most 3 hours old
    cols = ", ".join(
        f"CASE WHEN w.time_hour >= r.time_hour - INTERVAL 3 HOUR THEN w.{c} END" for c in WEATHER
    )
    expected = con.execute(
        f"SELECT r.carrier, r.flight, r.origin, r.time_hour, {cols} FROM rows r "
        "ASOF LEFT JOIN weather w ON r.origin = w.origin AND r.time_hour >= w.time_hour ORDER BY ALL"
    ).fetchall()
    got = con.execute(
        "SELECT carrier, flight, origin, time_hour, "
        + ", ".join(f"weather__{c}__v1" for c in WEATHER)
        + " FROM rows ORDER BY ALL"
    ).fetchall()
    assert got == expected
    ages = rows.column("weather_feature_age_s").to_pylist()
    assert all(a is None or 0 <= a <= 3 * 3600 for a in ages)  # never a later observation


def test_the_online_store_serves_the_latest_observation(flights: Path) -> None:
    tables = flights / ".spindle" / "tables"
    view = open_dataset(tables / "features" / "weather").to_table().to_pandas()
    last = view[view["date"] == DAYS[-1]].sort_values("feature_ts").groupby("origin").last()
    store = OnlineStore(flights / ".spindle" / "online.db")
    try:
        for origin in ("EWR", "JFK", "LGA"):
            row = store.get("weather", origin)
            assert row is not None
            assert row["weather__temp__v1"] == last.loc[origin, "weather__temp__v1"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("source", "expected"),
    [("nowhere", "'nowhere' is not a declared source"), ("airports", "declares no event_time")],
)
def test_a_bad_from_is_one_clear_error(
    flights: Path, tmp_path: Path, source: str, expected: str
) -> None:
    features = one_view(
        tmp_path / "features",
        f"  from: {source}\n",
        "  - {name: x, version: 1, dtype: float64, sql: lat, encoding: {kind: numeric}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        FeatureRegistry.load(features, load_sources(flights))
    assert expected in str(caught.value) and "view.from" in str(caught.value)
    assert "line 4" in str(caught.value)


def test_a_departure_joins_as_of_when_it_was_known(flights: Path) -> None:
    """``view.at`` (the flights example's ``plane_leg``): each departure is a feature row from
    one minute after the plane left (never before its scheduled minute); an example takes the
    plane's latest departure known at its time within 12 hours, exactly as a hand-written
    ASOF join on the raw departures does, and never its own departure."""
    ws = Workspace.load(flights)
    rows = delay_rows(flights, DAYS[1])
    con = duckdb.connect()
    con.register("rows", rows)
    con.register("raw", open_dataset(ws.tables_dir / "raw" / "flights").to_table())
    legs = (
        "SELECT tailnum, dep_delay, carrier, flight, time_hour, time_hour + to_minutes(CAST(minute + 1 + "
        "CASE WHEN dep_delay > 0 THEN dep_delay ELSE 0 END AS BIGINT)) AS known FROM raw "
        "WHERE dep_delay IS NOT NULL AND tailnum IS NOT NULL"
    )
    expected = con.execute(
        f"WITH legs AS ({legs}) SELECT r.carrier, r.flight, r.time_hour, CASE WHEN l.known >= "
        "r.time_hour - INTERVAL 12 HOUR THEN l.dep_delay END FROM rows r ASOF LEFT JOIN legs l "
        "ON r.tailnum = l.tailnum AND r.time_hour >= l.known ORDER BY ALL"
    ).fetchall()
    got = con.execute(
        "SELECT carrier, flight, time_hour, plane_leg__dep_delay__v1 FROM rows ORDER BY ALL"
    ).fetchall()
    assert got == expected
    assert sum(row[-1] is not None for row in got) > 30  # planes flying again the same day
    own = con.execute(
        f"WITH legs AS ({legs}) SELECT count(*) FROM rows r JOIN legs l USING (carrier, flight) "
        "WHERE l.time_hour = r.time_hour AND l.known <= r.time_hour"
    ).fetchone()
    assert own == (0,)  # no departure is known by its own example's time
    hours = rows.column("schedule__hours_since_plane_left__v1").to_pylist()
    left = rows.column("plane_leg__left_hour__v1").to_pylist()
    assert [h is None for h in hours] == [v is None for v in left]
    assert all(h is None or 0 < h < 24 for h in hours)


def test_at_keeps_one_row_per_entity_and_instant(flights: Path, tmp_path: Path) -> None:
    """Rows of one entity known at the same instant (a plane booked on two flights at 09:00)
    collapse to the last by the source's primary key, the same on every run; rows with a null
    key or a null ``at`` are never joined, so the view does not keep them."""
    features = tmp_path / "features"
    features.mkdir()
    (features / "leg.yaml").write_text(
        "group: leg\nowner: me\nentity: {name: plane, keys: [tailnum]}\nview:\n"
        "  from: flights\n  at: time_hour + to_minutes(CAST(dep_delay AS BIGINT))\nfeatures:\n"
        "  - {name: d, version: 1, dtype: float64, sql: dep_delay, encoding: {kind: numeric}}\n"
    )
    view = FeatureRegistry.load(features, load_sources(flights)).view("leg")
    assert view.timestamp == "known_at"
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE flights AS SELECT * FROM (VALUES "
        "('N1', 'DL', 120, TIMESTAMP '2013-01-02 09:00', 5.0), "
        "('N1', 'DL', 1765, TIMESTAMP '2013-01-02 09:00', 5.0), "  # the same plane, same instant
        "('N1', 'AA', 1, TIMESTAMP '2013-01-02 12:00', -3.0), "  # early: known at its schedule
        "('N2', 'B6', 7, TIMESTAMP '2013-01-02 10:00', NULL), "  # cancelled: never known
        "(NULL, 'UA', 9, TIMESTAMP '2013-01-02 11:00', 0.0)"  # no plane: never joined
        ") AS t(tailnum, carrier, flight, time_hour, dep_delay)"
    )
    con.execute("ALTER TABLE flights ADD COLUMN origin VARCHAR DEFAULT 'JFK'")
    sql = view.sql.replace("cutoff", "TIMESTAMP '2013-01-03'")
    got = con.execute(f"SELECT tailnum, flight, known_at FROM ({sql}) ORDER BY ALL").fetchall()
    assert [(t, f) for t, f, _ in got] == [("N1", 1), ("N1", 1765)]
    assert str(got[0][2]) == "2013-01-02 12:00:00"  # early departures count from the schedule
    (features / "leg.yaml").write_text(
        "group: leg\nowner: me\nentity: {name: plane, keys: [tailnum]}\nview:\n"
        "  sql: SELECT 1\n  at: time_hour\nfeatures:\n"
        "  - {name: d, version: 1, dtype: float64, sql: dep_delay, encoding: {kind: numeric}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        FeatureRegistry.load(features, load_sources(flights))
    assert "`at`" in str(caught.value) and "from: <source>" in str(caught.value)
