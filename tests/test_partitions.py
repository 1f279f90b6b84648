"""As-of partitions mean what they say: each partitioned asset computes its own month's window,
keeps its own month's rows, and gives the same rows alone as in a full run of that month."""

import datetime as dt
import json
import math
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.engagement import engagement_assets
from assets.identity import identity_assets
from assets.publish import published_marts, version_inputs
from assets.staging import staged_assets
from assets.value import value_assets, work_key
from engagement_box import cli, generator
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    ModelSettings,
    Warehouse,
)

pytestmark = pytest.mark.integration

DATA_END = dt.date(2025, 12, 31)
MONTHS = {"2025-09-01": dt.date(2025, 9, 30), "2025-12-01": dt.date(2025, 12, 31)}
# Every table a partitioned step writes, and the asset that writes it.
WORK_TABLES = (
    "customer_summary",
    "calibration_holdout",
    "customer_rfm",
    "model_fit",
    "customer_value",
    "model_validation",
    "engagement_value",
    "customer_persona",
    "persona_profile",
    "customer",
    "cohort_retention",
)
# Columns that say when or how fast a row was computed, not what it holds.
RUN_COLUMNS = {"fitted_at", "fit_seconds"}
# Fits and scores agree to this relative tolerance between runs (DuckDB returns summary rows in
# no set order, so sums of floats may differ in the last bits).
REL = 1e-9


def flat(row: tuple) -> list:
    """A row with its JSON columns (fit parameters, correlations) spread into values."""
    out = []
    for value in row:
        if isinstance(value, str) and value.startswith("{"):
            parsed = json.loads(value)
            out.extend(f"{k}={v}" if isinstance(v, str) else v for k, v in sorted(parsed.items()))
        else:
            out.append(value)
    return out


def assert_same_rows(actual: list[tuple], expected: list[tuple], table: str) -> None:
    assert len(actual) == len(expected), table
    for got, want in zip(actual, expected, strict=True):
        got, want = flat(got), flat(want)
        assert len(got) == len(want), table
        for a, b in zip(got, want, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-12), (table, got, want)
            else:
                assert a == b, (table, got, want)


def all_assets() -> list:
    return [
        *staged_assets,
        *identity_assets,
        *value_assets,
        *engagement_assets,
        version_inputs,
        published_marts,
    ]


def resources(exports: Path, database: Path, settings: ModelSettings | None = None) -> dict:
    return {
        # `database` is the working database here: these tests read the work tables.
        "warehouse": Warehouse(
            database=str(database.with_name("published.duckdb")), working_database=str(database)
        ),
        "exports": ExportsResource(data_dir=str(exports)),
        "model_settings": settings or ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(database.parent / "audiences")),
    }


_INSTANCE: list[dg.DagsterInstance] = []


def instance() -> dg.DagsterInstance:
    """One in-memory Dagster instance for this module's two dozen materializations (creating
    one stamps its storage schema: 0.4 CPU-s each)."""
    if not _INSTANCE:
        _INSTANCE.append(dg.DagsterInstance.ephemeral())
    return _INSTANCE[0]


def materialize(exports, database, partition, selection, settings=None):
    result = dg.materialize(
        all_assets(),
        selection=selection,
        partition_key=partition,
        resources=resources(exports, database, settings),
        raise_on_error=False,
        instance=instance(),
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def full_run(exports, database, partition, settings=None):
    selection = dg.AssetSelection.all() - dg.AssetSelection.groups("activation")
    return materialize(exports, database, partition, selection, settings)


def rows_as_of(database: Path, table: str, as_of: dt.date) -> list[tuple]:
    return tables_as_of(database, [(table, as_of)])[(table, as_of)]


def tables_as_of(database: Path, wanted) -> dict[tuple[str, dt.date], list[tuple]]:
    """(table, as_of) -> that as-of's rows of work.<table>, sorted, without the run columns;
    read on one connection (each open loads the whole catalog)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        out = {}
        for table, as_of in wanted:
            columns = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'work' AND table_name = $t ORDER BY ordinal_position",
                    {"t": table},
                ).fetchall()
                if r[0] not in RUN_COLUMNS
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            out[(table, as_of)] = con.execute(
                f'SELECT {select} FROM work."{table}" WHERE as_of = $as_of ORDER BY ALL',
                {"as_of": as_of},
            ).fetchall()
        return out
    finally:
        con.close()


def query(database: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def retailer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("retailer")
    generator.generate(out, generator.GeneratorConfig(customers=300, seed=7, end=DATA_END))
    return out


STEPS = (  # every partitioned step of the graph, and the work tables it writes
    ("customer_summary",),
    ("calibration_holdout",),
    ("customer_rfm",),
    ("model_fit",),
    ("customer_value",),
    ("model_validation",),
    ("engagement_value",),
    ("customer_persona", "persona_profile"),  # one step writes both
    ("customer",),
    ("cohort_retention",),
)
PARTITIONED = dg.AssetSelection.all() - dg.AssetSelection.groups(
    "staging", "identity", "activation"
)


def test_partitions_hold_their_own_month(retailer, tmp_path):
    """One warehouse through the whole story (one test: the steps build on each other)."""
    database = tmp_path / "w.duckdb"

    # 1. A full run of each month: each month keeps its own rows in every work table.
    september_run, december_run = MONTHS
    full_run(retailer, database, september_run)
    materialize(retailer, database, december_run, PARTITIONED)  # staging is not partitioned
    expected = tables_as_of(
        database, [(table, as_of) for table in WORK_TABLES for as_of in MONTHS.values()]
    )
    for table in WORK_TABLES:
        september, december = (expected[(table, as_of)] for as_of in MONTHS.values())
        assert september and december, table
        assert september != december, table
    last = query(
        database,
        "SELECT max(last_order_date) FROM work.customer_summary WHERE as_of = DATE '2025-09-30'",
    )
    assert last[0][0] <= dt.date(2025, 9, 30)  # September knows nothing after September

    # 2. Each step alone, for each month, equals the full run of that month and leaves the other
    # month's rows as they were. September goes first: the last full run was December's.
    for partition, as_of in MONTHS.items():
        other = next(d for d in MONTHS.values() if d != as_of)
        for tables in STEPS:
            keys = [dg.AssetKey(["work", t]) for t in tables]
            result = materialize(retailer, database, partition, keys)
            for event in result.get_asset_materialization_events():
                metadata = event.materialization.metadata
                table = event.asset_key.path[-1]
                assert metadata["as_of"].value == str(as_of)
                assert metadata["dagster/row_count"].value == len(expected[(table, as_of)])
            found = tables_as_of(database, [(t, d) for t in tables for d in (as_of, other)])
            for key, rows in found.items():
                assert_same_rows(rows, expected[key], key[0])

    # 3. A backfill publish of September (December is current) publishes September's rows, and
    # its metadata counts that version's rows, not the current mart's.
    september = MONTHS["2025-09-01"]
    result = materialize(retailer, database, "2025-09-01", dg.AssetSelection.groups("marts"))
    # September's inputs have not changed since its full run in step 1, so this publish adds no
    # version: it names September's version, and its metadata counts that version's rows.
    snapshot_id, partition_key, as_of, settings = query(
        database,
        "SELECT snapshot_id, partition_key, as_of, settings FROM marts.snapshots "
        "WHERE as_of = $as_of ORDER BY snapshot_id DESC LIMIT 1",
        {"as_of": september},
    )[0]
    assert (partition_key, as_of) == ("2025-09-01", september)
    assert json.loads(settings)["as_of_pinned"] is False
    for event in result.get_asset_materialization_events():
        name = event.asset_key.path[-1]
        published = query(
            database,
            f'SELECT count(*) FROM history."{name}" WHERE snapshot_id = $s',
            {"s": snapshot_id},
        )[0][0]
        assert published == len(expected[(name, september)]), name
        assert event.materialization.metadata["dagster/row_count"].value == published, name
        assert event.materialization.metadata["snapshot_id"].value == snapshot_id, name
        # and its preview shows that version's rows (it showed the current December mart's)
        preview = event.materialization.metadata["preview"].value
        if name == "customer":
            assert str(september) in preview and "2025-12-31" not in preview, preview
    current = query(database, "SELECT DISTINCT as_of FROM marts.customer_value")
    assert current == [(MONTHS["2025-12-01"],)]

    # 4. ENGAGEMENT_AS_OF pins the date: a step launched for December computes September's rows
    # (the same as September's own run). Those are September's version's inputs, so the publish
    # adds no version: September's stands (a pinned run recorded as pinned:
    # tests/test_versions_pipeline.py).
    versions_before = query(database, "SELECT count(*) FROM marts.snapshots")
    pinned = ModelSettings(as_of=str(september))
    recomputed = [dg.AssetKey(["work", "version_inputs"]), dg.AssetKey(["work", "customer_value"])]
    materialize(retailer, database, december_run, recomputed, pinned)
    materialize(retailer, database, december_run, dg.AssetSelection.groups("marts"), pinned)
    assert query(database, "SELECT count(*) FROM marts.snapshots") == versions_before
    assert_same_rows(
        rows_as_of(database, "customer_value", september),
        expected[("customer_value", september)],
        "customer_value",
    )


def test_a_work_step_on_a_new_warehouse_says_to_stage_first(tmp_path):
    """One work asset materialized on a warehouse nothing was staged in (the README's one-asset
    command, first thing): a plain failure naming what to run, not DuckDB's catalog error."""
    result = dg.materialize(
        all_assets(),
        selection=[work_key("customer_rfm")],
        partition_key="2025-12-01",
        resources=resources(tmp_path / "exports", tmp_path / "new.duckdb"),
        raise_on_error=False,
        instance=instance(),
    )
    assert not result.success
    messages = " ".join(
        e.step_failure_data.error.message for e in result.all_events if e.is_step_failure
    )
    assert "no orders are staged in this warehouse yet" in messages, messages
    assert "engagement-box run --month 2025-12" in messages
    assert "CatalogException" not in messages


def test_a_month_outside_the_partitions_gets_a_plain_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert cli.main(["run", "--month", "1998-06"]) == 2
    message = capsys.readouterr().err
    assert "1998-06 is outside the as-of months" in message
    assert "ENGAGEMENT_HISTORY_START" in message
    assert "Traceback" not in message
    assert cli.main(["run", "--month", "June"]) == 2
    assert "write it as YYYY-MM" in capsys.readouterr().err


def test_a_history_start_that_is_no_date_is_named_when_dagster_loads_the_definitions(tmp_path):
    """`dagster definitions validate` (and the UI, the daemon) with ENGAGEMENT_HISTORY_START set
    to 2023-13-01 failed with strptime's words, naming no variable; the CLI already named it."""
    import subprocess
    import sys

    env = {**os.environ, "ENGAGEMENT_HISTORY_START": "2023-13-01"}
    done = subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "ValueError: ENGAGEMENT_HISTORY_START='2023-13-01' is not valid: expected a date YYYY-MM-DD"
    )


def test_failed_fits_on_orders_without_dropout_say_so_not_outliers():
    """Every customer buying at one rate to the window's end (an export filtered to active
    customers, or generated data) fails every fit: the advice said to look for outliers and a
    currency without its rate, which the summary showed was not the cause."""
    import polars as pl

    from assets import value as value_module

    window = {"as_of": dt.date(2025, 12, 31), "calibration_end": dt.date(2025, 9, 30)}
    failed = ["bgnbd (full window): the fit ran to a boundary"]
    steady = pl.DataFrame(
        {"frequency": [12] * 200, "recency_days": [360] * 200, "T_days": [364] * 200}
    )
    said = value_module._failed_fits_words(failed, steady, window)
    assert "no customer who stopped buying" in said and "outliers" not in said
    churned = steady.with_columns(
        pl.Series("frequency", [0] * 50 + [12] * 150), pl.Series("recency_days", [0] * 200)
    )
    said = value_module._failed_fits_words(failed, churned, window)
    assert "Look for outliers" in said and "stopped buying" not in said


def test_a_fit_failing_at_p_infinity_gives_its_own_advice_once():
    """Gamma-Gamma failing as p -> infinity says which customers and what to do; the generic
    advice about outliers and FX rates after it said the same again in other words. Another
    failure beside it keeps the generic advice."""
    import polars as pl

    from assets import value as value_module
    from engagement_box.value import fitting

    window = {"as_of": dt.date(2025, 12, 31), "calibration_end": dt.date(2025, 9, 30)}
    churned = pl.DataFrame(
        {
            "frequency": [0] * 50 + [12] * 150,
            "recency_days": [0] * 200,
            "T_days": [364] * 200,
        }
    )
    limit = (
        f"gamma_gamma (full window): {fitting.P_AT_INFINITY} (...): check those customers' "
        "orders ... or set ENGAGEMENT_PENALIZER, then run again"
    )
    said = value_module._failed_fits_words([limit], churned, window)
    assert said.endswith("then run again") and "Look for outliers" not in said
    other = "bgnbd (full window): the fit ran to a boundary"
    said = value_module._failed_fits_words([limit, other], churned, window)
    assert "Look for outliers" in said


@pytest.mark.parametrize(
    ("span", "failed", "penalizer", "advice", "not_said"),
    [
        # 59 days of orders, no buyer before the 90-day holdout: a shorter holdout publishes
        # (the short-history words came first and said to export more, a re-review)
        (
            59,
            "no purchase model chosen: model_choice: no customer in the calibration window",
            0.0,
            "shorten ENGAGEMENT_HOLDOUT_DAYS below the 59 days the orders span",
            "export a longer history",
        ),
        # every order on one day: no holdout leaves a buyer before it (the advice was repeated
        # with ENGAGEMENT_HOLDOUT_DAYS=1, a review)
        (
            0,
            "no purchase model chosen: model_choice: no customer in the calibration window",
            0.0,
            "The orders of the window span only 0 days",
            "HOLDOUT",
        ),
        # one month of orders, a fit with a flat likelihood: no advice about outliers
        (
            30,
            "bgnbd (full window): the likelihood is flat in some direction",
            0.0,
            "span only 30 days (2025-12-01 to the as-of 2025-12-31)",
            "outliers",
        ),
        # ENGAGEMENT_PENALIZER=0.1 pushed Gamma-Gamma's q under 1 on a small shop (a review)
        (
            400,
            "gamma_gamma (full window): q = 0.27 <= 1 (reason=boundary)",
            0.1,
            "ENGAGEMENT_PENALIZER=0.1 shrinks every parameter towards 0",
            "outliers",
        ),
    ],
)
def test_failed_fits_say_what_would_help(monkeypatch, span, failed, penalizer, advice, not_said):
    import polars as pl

    from assets import value as value_module

    monkeypatch.delenv("ENGAGEMENT_CALIBRATION_END", raising=False)
    window = {
        "as_of": dt.date(2025, 12, 31),
        "calibration_end": dt.date(2025, 10, 2),
        "penalizer": penalizer,
    }
    full = pl.DataFrame(
        {
            "frequency": [0] * 100 + [2] * 150,
            "recency_days": [0] * 100 + [min(span, 20)] * 150,
            "T_days": [span] * 250,
        }
    )
    said = value_module._failed_fits_words([failed], full, window, later_orders=False)
    assert advice in said and not_said not in said, said
