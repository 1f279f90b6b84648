"""Incremental runs equal cold runs: a run after a day of new orders carries the earlier as-of's
rows forward and recomputes only the customers whose orders changed, and every work table, mart
and history row it publishes equals those of a cold run on the same exports. A changed export
file and an erasure between runs fall back to the full computation and say why."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from engagement_box import dictionary, incremental
from engagement_box.governance import erasure, readers, versions
from engagement_box.sql import load_sql
from engagement_box.staging.contracts import SOURCES
from engagement_box.value import choice
from tests.pipeline_runs import DATA_END, MONTH, copy_run, run_graph
from tests.test_partitions import (
    REL,
    RUN_COLUMNS,
    WORK_TABLES,
    all_assets,
    assert_same_rows,
    instance,
    materialize,
    query,
    resources,
    rows_as_of,
)

pytestmark = pytest.mark.integration

DAY_A = DATA_END  # the last order day of the shared December run's exports (files A)
DAY_B = dt.date(2026, 1, 1)  # the new day file B brings
PARTITION_B = "2026-01-01"  # January: as of its last order day, DAY_B
INCREMENTAL_STEPS = ("customer_summary", "calibration_holdout")
MARTS = dictionary.PUBLISHED  # every mart a version publishes
assert REL <= 1e-9
# Staging, identity, the orders per buyer and day and the incremental steps: enough to see
# which path a step takes.
SUMMARIES = dg.AssetSelection.groups("staging", "identity") | dg.AssetSelection.assets(
    *(dg.AssetKey(["work", t]) for t in ("buyer_days", *INCREMENTAL_STEPS))
)
BUYER_DAYS = "SELECT * FROM work.buyer_days ORDER BY ALL"


def orders_b(exports_a: Path) -> pl.DataFrame:
    """File B: about 1 % new orders of existing customers, most on the new day, a few dated
    earlier (late exports: on a day the earlier run had already summarised, in the holdout, on
    the day the calibration end moves onto, and before it)."""
    last = sorted((exports_a / "orders").glob("orders_2025-12.*"))[0]
    rows = pl.read_csv(last) if last.suffix == ".csv" else pl.read_parquet(last)
    rows = rows.filter(pl.col("status") == "completed").head(20)
    days = [f"{DAY_B} 10:{i:02d}:00" for i in range(16)] + [
        "2025-06-15 09:00:00",
        "2025-07-03 12:00:00",
        "2025-11-20 12:00:00",
        f"{DAY_A} 23:00:00",
    ]
    return rows.with_columns(
        pl.Series("order_id", [f"B{i:05d}" for i in range(rows.height)]),
        pl.Series("ordered_at", days[: rows.height]),
    )


def add_file_b(exports: Path) -> None:
    orders_b(exports).write_csv(exports / "orders" / "orders_2026-01-01.csv")


def working(database: Path) -> Path:
    return readers.default_working(database)


def step_metadata(result, table: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == table and e.asset_key.path[0] != "marts"
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def published_rows(database: Path, mart: str) -> list[tuple]:
    """The mart's rows of the current version (no snapshot id: the two warehouses number their
    versions differently), in a fixed order."""
    columns = [
        r[0]
        for r in query(
            database,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = $t ORDER BY ordinal_position",
            {"t": mart},
        )
        if r[0] not in RUN_COLUMNS | {"snapshot_id"}
    ]
    select = ", ".join(f'"{c}"' for c in columns)
    return query(database, f'SELECT {select} FROM marts."{mart}" ORDER BY ALL')


def history_rows(database: Path, mart: str) -> list[tuple]:
    """The history rows of the newest version, without its snapshot id."""
    rows = query(
        database,
        f'SELECT * EXCLUDE (snapshot_id) FROM history."{mart}" WHERE snapshot_id = '
        "(SELECT max(snapshot_id) FROM marts.snapshot_log) ORDER BY ALL",
    )
    names = [
        r[0]
        for r in query(
            database,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'history' "
            "AND table_name = $t AND column_name <> 'snapshot_id' ORDER BY ordinal_position",
            {"t": mart},
        )
    ]
    keep = [i for i, n in enumerate(names) if n not in RUN_COLUMNS]
    return sorted(tuple(row[i] for i in keep) for row in rows)


def test_a_day_of_new_orders_is_incremental_and_equals_a_cold_run(
    december_run, tmp_path, monkeypatch
):
    first = copy_run(december_run, tmp_path / "incremental")  # a cold run of files A
    for table in INCREMENTAL_STEPS:
        metadata = step_metadata(december_run.result, table)
        assert metadata["computation"] == "cold", table
        assert metadata["as_of"] == str(DAY_A)
    # chosen in that run: both steps that say so name its as-of (model_fit said '', a review)
    for table in ("model_fit", "model_validation"):
        chose = step_metadata(december_run.result, table)
        assert (chose["model_choice"], chose["model_chosen_as_of"]) == ("chosen", str(DAY_A))

    add_file_b(first.exports)
    second = run_graph(first.exports, first.database, partition=PARTITION_B)
    assert second.success, [e.message for e in second.all_events if e.is_failure]
    incremental_db = working(first.database)
    metadata = step_metadata(second, "customer_summary")
    assert metadata["computation"] == "incremental", metadata["computation_reason"]
    assert "orders/orders_2026-01-01.csv" in metadata["computation_reason"]
    assert metadata["carried_from_as_of"] == str(DAY_A)
    assert metadata["as_of"] == str(DAY_B)
    # only the customers of file B (and of the days that moved) were recomputed
    assert 0 < metadata["customers_recomputed"] <= 20
    assert metadata["customers_recomputed"] < metadata["dagster/row_count"] / 5
    # The purchase model chosen on A's holdout is in force a day later: no holdout split, the
    # chosen model and Gamma-Gamma fitted on the full window, A's comparison carried.
    holdout = step_metadata(second, "calibration_holdout")
    assert holdout["computation"] == "skipped", holdout["computation_reason"]
    assert holdout["dagster/row_count"] == 0
    fits = step_metadata(second, "model_fit")
    assert fits["model_choice"] == "carried", fits["model_choice_reason"]
    assert fits["computation"] == "carried"  # the CLI's path column
    assert fits["model_chosen_as_of"] == str(DAY_A)
    assert f"carried from the run as of {DAY_A}" in fits["model_choice_reason"]
    chosen = fits["chosen_model"]
    assert step_metadata(december_run.result, "model_fit")["chosen_model"] == chosen
    fitted = query(
        incremental_db,
        'SELECT "window", model, choice_as_of FROM work.model_fit WHERE as_of = $d ORDER BY ALL',
        {"d": DAY_B},
    )
    calibration_a = query(
        working(december_run.database),
        "SELECT model FROM work.model_fit WHERE as_of = $d AND \"window\" = 'calibration' "
        "ORDER BY ALL",
        {"d": DAY_A},
    )
    assert [r for r in fitted if r[0] == "full"] == sorted(
        [("full", chosen, DAY_A), ("full", "gamma_gamma", DAY_A)]
    )
    assert [(r[1],) for r in fitted if r[0] == "calibration"] == calibration_a
    validation = step_metadata(second, "model_validation")
    assert validation["model_choice"] == "carried"
    validation_rows = (
        "SELECT * EXCLUDE (as_of) FROM work.model_validation WHERE as_of = $d ORDER BY ALL"
    )
    assert query(incremental_db, validation_rows, {"d": DAY_B}) == query(
        working(december_run.database), validation_rows, {"d": DAY_A}
    )
    # Engagement: CKV, social points and the influence network carried, CRV, CIV and the rest
    # computed again with the new CLVs.
    engagement = step_metadata(second, "engagement_value")
    assert engagement["computation"] == "incremental", engagement["computation_reason"]
    assert engagement["carried_from_as_of"] == str(DAY_A)
    assert engagement["influence_edges"] > 0
    identity = step_metadata(second, "identity_links")
    assert identity["computation"] == "incremental", identity["computation_reason"]
    # Cohorts: the months before file B's earliest order (2025-06-15) carried, the rest recounted.
    cohorts = step_metadata(second, "cohort_retention")
    assert cohorts["computation"] == "incremental", cohorts["computation_reason"]
    assert cohorts["carried_from_as_of"] == str(DAY_A)
    assert cohorts["months_recounted_from"] == "2025-06-01"
    days = step_metadata(second, "buyer_days")  # file B's orders added to the stored days
    assert days["computation"] == "incremental", days["computation_reason"]
    assert "orders/orders_2026-01-01.csv" in days["computation_reason"]
    # Personas: December's run fitted the model; a day later it is assigned with, not refitted.
    assert step_metadata(december_run.result, "customer_persona")["computation"] == "refit"
    # The fits polish from the fits as of A; the cold run below fits from a sample of the rows.
    fits = step_metadata(second, "model_fit")
    assert fits["fits_started_from"] == f"the fits as of {DAY_A} (BG/NBD, Gamma-Gamma)"
    personas = step_metadata(second, "customer_persona")
    assert personas["computation"] == "assigned", personas["computation_reason"]
    assert personas["persona_model_fitted_as_of"] == str(DAY_A)
    # analysts see it too: both days' profiles name A's model, so their persona ids correspond
    fitted = "SELECT DISTINCT as_of, model_fitted_as_of FROM work.persona_profile ORDER BY 1"
    assert query(incremental_db, fitted) == [(DAY_A, DAY_A), (DAY_B, DAY_A)]

    # The cold run on A + B, with the same persona model and purchase model choice in force
    # (those of A): what "equal to a cold run" means for personas between two refits and for
    # the purchase model between two choices (README "Incremental runs").
    cold_database = tmp_path / "cold" / "w.duckdb"
    cold_database.parent.mkdir()
    cold_db = working(cold_database)
    in_force = ("persona_model", "model_choice", "model_fit", "model_validation")
    con = duckdb.connect(str(incremental_db), read_only=True)
    try:
        kept = {
            # model_fit: A's calibration fits only (the choice), so that the cold run's
            # full-window fits start from a sample of the rows, not from A's.
            table: con.execute(
                f"SELECT * FROM work.{table} WHERE as_of = $as_of"
                + (" AND \"window\" = 'calibration'" if table == "model_fit" else ""),
                {"as_of": DAY_A},
            ).pl()
            for table in in_force
        }
    finally:
        con.close()
    assert kept["persona_model"].height == kept["model_choice"].height == 1
    con = duckdb.connect(str(cold_db))
    try:
        con.execute("CREATE SCHEMA work")
        for table, rows in kept.items():
            con.register("kept_rows", rows)
            con.execute(f"CREATE TABLE work.{table} AS SELECT * FROM kept_rows")
            con.unregister("kept_rows")
    finally:
        con.close()
    cold = run_graph(first.exports, cold_database, partition=PARTITION_B)
    assert cold.success, [e.message for e in cold.all_events if e.is_failure]
    assert step_metadata(cold, "customer_summary")["computation"] == "cold"
    assert step_metadata(cold, "customer_persona")["computation"] == "assigned"
    assert step_metadata(cold, "engagement_value")["computation"] == "cold"
    assert step_metadata(cold, "cohort_retention")["computation"] == "cold"
    assert step_metadata(cold, "model_fit")["fits_started_from"] == "fits on a sample of the rows"
    assert step_metadata(cold, "model_fit")["model_choice"] == "carried"

    for table in ("identity_links", "customer_merge", "resolved_customers"):
        statement = f'SELECT * FROM intermediate."{table}" ORDER BY ALL'
        assert query(incremental_db, statement) == query(cold_db, statement), table
    assert step_metadata(cold, "buyer_days")["computation"] == "cold"
    assert query(incremental_db, BUYER_DAYS) == query(cold_db, BUYER_DAYS)  # exact: DECIMAL sums
    edges = "SELECT * FROM work.influence_edges WHERE as_of = $d ORDER BY ALL"
    assert query(incremental_db, edges, {"d": DAY_B}) == query(cold_db, edges, {"d": DAY_B})
    for table in WORK_TABLES:
        if table == "calibration_holdout":  # not split while the choice is carried
            assert rows_as_of(incremental_db, table, DAY_B) == []
            continue
        expected = rows_as_of(cold_db, table, DAY_B)
        assert expected, table
        assert_same_rows(rows_as_of(incremental_db, table, DAY_B), expected, table)
    for mart in MARTS:
        assert_same_rows(published_rows(incremental_db, mart), published_rows(cold_db, mart), mart)
        assert_same_rows(history_rows(incremental_db, mart), history_rows(cold_db, mart), mart)
    # the earlier as-of's rows are still there, as the first run wrote them
    assert rows_as_of(incremental_db, "customer_summary", DAY_A) == rows_as_of(
        working(december_run.database), "customer_summary", DAY_A
    )

    # Why the model is in force, in the published file: the reason given on A's holdout, kept.
    reasons = "SELECT DISTINCT choice_reason FROM marts.model_fit"
    assert query(incremental_db, reasons) == query(working(december_run.database), reasons)
    assert query(incremental_db, reasons)[0][0]  # e.g. "no rival predicts ... is kept"

    # A choice forced on B (ENGAGEMENT_MODEL_CHOICE_DAYS=0) stays in force when B runs again
    # with the default: the second run chooses on B's holdout again instead of carrying A's.
    choosing = dg.AssetSelection.assets(
        *(
            dg.AssetKey(["work", t])
            for t in ("calibration_holdout", "model_fit", "model_validation")
        )
    )
    monkeypatch.setenv("ENGAGEMENT_MODEL_CHOICE_DAYS", "0")
    forced = materialize(first.exports, incremental_db, PARTITION_B, choosing)
    assert step_metadata(forced, "model_fit")["computation"] == "chosen"
    monkeypatch.delenv("ENGAGEMENT_MODEL_CHOICE_DAYS")
    kept = materialize(first.exports, incremental_db, PARTITION_B, choosing)
    fits = step_metadata(kept, "model_fit")
    assert fits["computation"] == "chosen", fits["computation_reason"]
    # the same inputs as the forced choice: said so (not "nothing changed", a review)
    assert (
        f"the purchase model's inputs are those from which an earlier run of {DAY_B} chose"
        in fits["computation_reason"]
    ), fits["computation_reason"]
    assert step_metadata(kept, "model_validation")["computation"] == "chosen"
    assert rows_as_of(incremental_db, "calibration_holdout", DAY_B)  # split again
    choice_of_b = "SELECT DISTINCT choice_as_of FROM work.model_fit WHERE as_of = $d"
    assert query(incremental_db, choice_of_b, {"d": DAY_B}) == [(DAY_B,)]
    fitted_b = "SELECT count(*) FROM work.model_fit WHERE as_of = $d"
    assert query(incremental_db, fitted_b, {"d": DAY_B}) == [(8,)]

    # Retention keeping one version expires December's and trims its as-of from every work
    # table. A backfill of December then has no state to carry from (its own is gone, January's
    # is later): cold, and the same rows as the cold warehouse's December.
    con = duckdb.connect(str(incremental_db))
    try:
        retention = versions.apply_retention(con, keep_versions=1, keep_days=100_000)
    finally:
        con.close()
    assert retention.as_ofs_trimmed == [DAY_A] and retention.work_rows_deleted > 0
    assert rows_as_of(incremental_db, "customer_summary", DAY_A) == []
    assert query(incremental_db, edges, {"d": DAY_A}) == []
    # (The cold warehouse still holds the choice copied in as A's: both split the holdout.)
    monkeypatch.setenv("ENGAGEMENT_MODEL_CHOICE_DAYS", "0")
    back = materialize(first.exports, incremental_db, MONTH, SUMMARIES)
    materialize(first.exports, cold_db, MONTH, SUMMARIES)
    for table in INCREMENTAL_STEPS:
        metadata = step_metadata(back, table)
        assert metadata["as_of"] == str(DAY_A)
        assert metadata["computation"] == "cold"
        assert f"no earlier state of {table} up to {DAY_A}" in metadata["computation_reason"]
        expected = rows_as_of(cold_db, table, DAY_A)
        assert expected, table
        assert_same_rows(rows_as_of(incremental_db, table, DAY_A), expected, table)
    # Dagster still shows December's marts materialized: publishing December alone now stops
    # with a plain message (its work rows are gone) instead of publishing an empty version.
    alone = dg.materialize(
        all_assets(),
        selection=dg.AssetSelection.groups("marts"),
        partition_key=MONTH,
        resources=resources(first.exports, incremental_db),
        raise_on_error=False,
        instance=instance(),
    )
    assert not alone.success
    errors = [str(e.event_specific_data.error) for e in alone.all_events if e.is_step_failure]
    assert any(f"holds no rows as of {DAY_A}" in error for error in errors), errors
    # the way on is the whole month (materializing the one step met the next refusal)
    assert any("materialize the whole month (engagement-box run --month" in e for e in errors)


def test_two_days_in_a_row_carry_from_the_day_before_only(december_run, tmp_path):
    """A month's daily runs leave several as-ofs in `work.*`; every incremental test went from
    one earlier as-of to one new day, so a carried table read with `as_of <= previous` instead
    of `= previous` (rows of every earlier day, each customer's more than once) passed them (a
    mutation review). Day C carries from day B, A's rows beside: its summaries equal a cold
    computation of A + B + C, and its engagement parts are B's (no review or social event is
    new), one row per customer."""
    day_c = DAY_B + dt.timedelta(days=1)
    run = copy_run(december_run, tmp_path / "days")  # A
    add_file_b(run.exports)
    assert run_graph(run.exports, run.database, partition=PARTITION_B).success  # B
    c_orders = (
        orders_b(run.exports)
        .head(8)
        .with_columns(
            pl.Series("order_id", [f"C{i:05d}" for i in range(8)]),
            pl.Series("ordered_at", [f"{day_c} 09:{i:02d}:00" for i in range(8)]),
        )
    )
    c_orders.write_csv(run.exports / "orders" / "orders_2026-01-02.csv")
    third = run_graph(run.exports, run.database, partition=PARTITION_B)  # C
    assert third.success, [e.message for e in third.all_events if e.is_failure]
    days = working(run.database)
    for table in ("customer_summary", "engagement_value", "cohort_retention"):
        metadata = step_metadata(third, table)
        assert metadata["as_of"] == str(day_c)
        assert metadata["computation"] == "incremental", metadata["computation_reason"]
        assert metadata["carried_from_as_of"] == str(DAY_B)
        as_ofs = f"SELECT DISTINCT as_of FROM work.{table} ORDER BY 1"
        assert query(days, as_ofs) == [(DAY_A,), (DAY_B,), (day_c,)], table
        if table != "cohort_retention":
            once = f"SELECT count(*) = count(DISTINCT customer_id) FROM work.{table} "
            assert query(days, once + "WHERE as_of = $d", {"d": day_c}) == [(True,)], table

    cold = tmp_path / "cold" / "w.duckdb"
    cold.parent.mkdir()
    computed = ("buyer_days", "customer_summary", "cohort_retention")
    summaries = dg.AssetSelection.groups("staging", "identity") | dg.AssetSelection.assets(
        *(dg.AssetKey(["work", t]) for t in computed)
    )
    cold_run = materialize(run.exports, working(cold), PARTITION_B, summaries)
    for table in ("customer_summary", "cohort_retention"):
        assert step_metadata(cold_run, table)["computation"] == "cold"
        expected = rows_as_of(working(cold), table, day_c)
        assert expected, table
        assert_same_rows(rows_as_of(days, table, day_c), expected, table)
    parts = "SELECT customer_id, ckv, social_points FROM work.engagement_value WHERE as_of = $d"
    on = {d: dict((r[0], r[1:]) for r in query(days, parts, {"d": d})) for d in (DAY_B, day_c)}
    assert on[day_c] == {c: on[DAY_B][c] for c in on[day_c]} and len(on[day_c]) >= len(on[DAY_B])


def test_cohorts_carry_only_beside_a_customer_summary_of_the_same_inputs(december_run, tmp_path):
    """The incremental cohorts take each customer's cohort from this as-of's customer summary: a
    rerun of the cohorts alone after new orders, before the summary caught up, counts in full."""
    run = copy_run(december_run, tmp_path / "run")
    add_file_b(run.exports)
    database = working(run.database)
    alone = dg.AssetSelection.groups("staging", "identity") | dg.AssetSelection.assets(
        dg.AssetKey(["work", "buyer_days"]), dg.AssetKey(["work", "cohort_retention"])
    )
    metadata = step_metadata(
        materialize(run.exports, database, PARTITION_B, alone), "cohort_retention"
    )
    assert metadata["computation"] == "cold"
    assert (
        "customer summary of this as-of is not computed from the same inputs"
        in (metadata["computation_reason"])
    )

    cold_db = tmp_path / "cold.duckdb"
    materialize(run.exports, cold_db, PARTITION_B, alone)
    expected = rows_as_of(cold_db, "cohort_retention", DAY_B)
    assert expected
    assert_same_rows(rows_as_of(database, "cohort_retention", DAY_B), expected, "cohorts")


def test_the_model_is_chosen_again_once_the_choice_is_old(december_run, tmp_path, monkeypatch):
    """With ENGAGEMENT_MODEL_CHOICE_DAYS=1, A's choice is a day old on B: B's holdout is split
    again, incrementally from A's, and equals the split of a cold run."""
    monkeypatch.setenv("ENGAGEMENT_MODEL_CHOICE_DAYS", "1")
    run = copy_run(december_run, tmp_path / "run")
    add_file_b(run.exports)
    database = working(run.database)
    result = materialize(run.exports, database, PARTITION_B, SUMMARIES)
    metadata = step_metadata(result, "calibration_holdout")
    assert metadata["computation"] == "incremental", metadata["computation_reason"]
    assert metadata["carried_from_as_of"] == str(DAY_A)
    assert 0 < metadata["customers_recomputed"] <= 20
    assert metadata["customers_recomputed"] < metadata["dagster/row_count"] / 5
    cold_db = tmp_path / "cold.duckdb"
    materialize(run.exports, cold_db, PARTITION_B, SUMMARIES)
    expected = rows_as_of(cold_db, "calibration_holdout", DAY_B)
    assert expected
    assert_same_rows(rows_as_of(database, "calibration_holdout", DAY_B), expected, "holdout")

    con = duckdb.connect(str(database), read_only=True)
    try:
        window = {
            "as_of": DAY_B,
            "calibration_end": DAY_B - dt.timedelta(days=182),
            "time_unit": "D",
            "penalizer": 0.0,
            "purchase_model": None,
            "currency": "USD",
            "fx_rates": "{}",
        }
        old = choice.choice_in_force(con, {**window, "model_choice_days": 1})
        fresh = choice.choice_in_force(con, {**window, "model_choice_days": 2})
        never = choice.choice_in_force(con, {**window, "model_choice_days": 0})
    finally:
        con.close()
    assert not old.carried and "is 1 days old" in old.reason, old.reason
    assert fresh.carried and fresh.choice_as_of == DAY_A, fresh.reason
    assert not never.carried and "is 0" in never.reason


def test_a_changed_file_falls_back_to_the_full_computation(december_run, tmp_path):
    run = copy_run(december_run, tmp_path / "run")
    # An earlier file is exported again with one order fewer: staged again, a row gone.
    changed = sorted((run.exports / "orders").glob("orders_2025-0*.csv"))[0]
    lines = changed.read_text(encoding="utf-8").splitlines(keepends=True)
    changed.write_text("".join(lines[:-1]), encoding="utf-8")
    add_file_b(run.exports)
    database = working(run.database)
    result = materialize(run.exports, database, PARTITION_B, SUMMARIES)
    for table in (*INCREMENTAL_STEPS, "identity_links", "buyer_days"):
        metadata = step_metadata(result, table)
        assert metadata["computation"] == "cold", table
        assert f"{changed.parent.name}/{changed.name} changed" in metadata["computation_reason"]
    # The order the file no longer holds is named, with the file (the CLI warns with it).
    withdrawn = step_metadata(result, "orders")["keys_withdrawn"]
    assert list(withdrawn) == [f"orders/{changed.name}"]
    assert withdrawn[f"orders/{changed.name}"]["keys"] == 1
    assert withdrawn[f"orders/{changed.name}"]["first"] == [lines[-1].split(",")[0]]

    cold_db = tmp_path / "cold.duckdb"
    materialize(run.exports, cold_db, PARTITION_B, SUMMARIES)
    for table in INCREMENTAL_STEPS:
        assert_same_rows(
            rows_as_of(database, table, DAY_B), rows_as_of(cold_db, table, DAY_B), table
        )
    assert query(database, BUYER_DAYS) == query(cold_db, BUYER_DAYS)


def test_files_that_stage_no_row_keep_the_daily_path(december_run, tmp_path):
    """A reviews export sent again under another name (every row a repeated key) and a
    customers file with only its header change no staged row: the day stays incremental (it
    used to compute every step in full) and equals a cold run."""
    run = copy_run(december_run, tmp_path / "run")
    reviews = sorted((run.exports / "reviews").iterdir())[-1]
    resent = reviews.with_name(f"{reviews.stem}_resent{reviews.suffix}")
    resent.write_bytes(reviews.read_bytes())
    customers = sorted((run.exports / "customers").glob("*.csv"))[0]
    header = customers.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    (run.exports / "customers" / "customers_none_today.csv").write_text(header, encoding="utf-8")
    add_file_b(run.exports)
    database = working(run.database)
    result = materialize(run.exports, database, PARTITION_B, SUMMARIES)
    staged = dict(
        query(
            database,
            "SELECT source_file, rows_staged FROM staging.ingested_files "
            "WHERE source_file IN ($r, $c)",
            {"r": f"reviews/{resent.name}", "c": "customers/customers_none_today.csv"},
        )
    )
    assert staged == {f"reviews/{resent.name}": 0, "customers/customers_none_today.csv": 0}
    for table in (*INCREMENTAL_STEPS, "identity_links", "buyer_days"):
        metadata = step_metadata(result, table)
        assert metadata["computation"] in incremental.DAILY_PATHS, (table, metadata)

    # The same summaries as a cold run (the holdout is skipped: the model choice is carried).
    cold_db = tmp_path / "cold.duckdb"
    materialize(run.exports, cold_db, PARTITION_B, SUMMARIES)
    assert_same_rows(
        rows_as_of(database, "customer_summary", DAY_B),
        rows_as_of(cold_db, "customer_summary", DAY_B),
        "customer_summary",
    )
    assert query(database, BUYER_DAYS) == query(cold_db, BUYER_DAYS)


def test_an_erasure_falls_back_to_the_full_computation(december_run, tmp_path):
    run = copy_run(december_run, tmp_path / "run")
    database = working(run.database)
    (buyer,) = query(
        database,
        "SELECT customer_id FROM work.customer_summary ORDER BY order_count DESC, customer_id "
        "LIMIT 1",
    )[0]
    con = duckdb.connect(str(database))
    try:
        erasure.erase(con, customer_id=buyer)
    finally:
        con.close()
    add_file_b(run.exports)
    days = "SELECT count(*) FROM work.buyer_days WHERE customer_id = $c"
    assert query(database, days, {"c": buyer}) == [(0,)]  # the erasure reached the stored days
    result = materialize(run.exports, database, PARTITION_B, SUMMARIES)
    for table in (*INCREMENTAL_STEPS, "identity_links", "buyer_days"):
        metadata = step_metadata(result, table)
        assert metadata["computation"] == "cold", table
        assert "an erasure was applied" in metadata["computation_reason"]
    assert query(database, days, {"c": buyer}) == [(0,)]
    for table in INCREMENTAL_STEPS:
        summary = query(
            database,
            f'SELECT count(*) FROM work."{table}" WHERE as_of = $d AND customer_id = $c',
            {"d": DAY_B, "c": buyer},
        )
        assert summary == [(0,)], table


# The plan alone, on a hand-made warehouse: which changes keep the incremental path.


def _seed(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA staging")
    con.execute(
        "CREATE TABLE staging.ingested_files "
        "(source VARCHAR, source_file VARCHAR, sha256 VARCHAR, rows_staged BIGINT DEFAULT 1)"
    )
    con.execute(
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('customers', 'customers/c.csv', 'c1'), "
        "('fx_rates', 'fx_rates/fx.csv', 'f1'), ('orders', 'orders/o1.csv', 'o1')"
    )
    con.execute("CREATE TABLE staging.orders (order_id VARCHAR, source_file VARCHAR)")
    con.execute("INSERT INTO staging.orders VALUES ('1', 'orders/o1.csv'), ('2', 'orders/o1.csv')")
    con.execute("CREATE SCHEMA work")
    con.execute("CREATE TABLE work.customer_summary (customer_id VARCHAR, as_of DATE)")
    con.execute("INSERT INTO work.customer_summary VALUES ('c', $d)", {"d": DAY_A})


def _record(con: duckdb.DuckDBPyConnection, settings: dict) -> None:
    now = incremental.inputs(con, settings)
    for statement, params in incremental.record(con, "customer_summary", DAY_A, now, rows=1):
        con.execute(statement, params)


CHANGES = {
    "new orders file": (
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('orders', 'orders/o2.csv', 'o2'); "
        "INSERT INTO staging.orders VALUES ('3', 'orders/o2.csv')",
        None,
    ),
    "changed orders file": (
        "UPDATE staging.ingested_files SET sha256 = 'o1b' WHERE source_file = 'orders/o1.csv'",
        "orders/o1.csv changed and was staged again (or another file took its name)",
    ),
    "row of a file gone": (
        "DELETE FROM staging.orders WHERE order_id = '2'",
        "the staged orders of orders/o1.csv changed",
    ),
    "file no longer staged": (
        "DELETE FROM staging.ingested_files WHERE source_file = 'fx_rates/fx.csv'",
        "fx_rates/fx.csv is no longer staged",
    ),
    "new customers file": (
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('customers', 'customers/d.csv', 'd1')",
        "customers/d.csv stages rows now, and staged none when this was last computed",
    ),
    "erasure": (
        "CREATE TABLE staging.erasure_log (request_id VARCHAR, rows_deleted JSON); "
        "INSERT INTO staging.erasure_log VALUES ('r1', '{\"staging.orders\": 1}')",
        "an erasure was applied",
    ),
    "work rows changed": (
        "INSERT INTO work.customer_summary VALUES ('d', DATE '2025-12-31')",
        "the rows of customer_summary changed",
    ),
}
# A new file of every source the summaries read but the orders (`incremental.FIXED`): a late
# FX rates file kept the daily path and the old rates with one line changed, and no test
# noticed (a mutation review). The engagement exports the summaries do not read keep it.
CHANGES |= {
    f"new {source} file": (
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        f"VALUES ('{source}', '{source}/late.csv', 'late')",
        f"{source}/late.csv stages rows now, and staged none when this was last computed",
    )
    for source in incremental.FIXED
}


def test_every_source_the_summaries_read_but_the_orders_sends_them_cold_when_new():
    """The cases above cover every such source (the FX rates among them)."""
    fixed = set(SOURCES) - {"orders", *incremental.SUMMARIES_DO_NOT_READ}
    assert set(incremental.FIXED) == fixed and "fx_rates" in fixed


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_plan_takes_the_incremental_path_only_for_new_orders_files(tmp_path, change):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        _seed(con)
        _record(con, {"currency": "USD"})
        statement, reason = CHANGES[change]
        for part in statement.split("; "):
            con.execute(part)
        plan = incremental.plan(
            con, "customer_summary", DAY_B, incremental.inputs(con, {"currency": "USD"})
        )
        if reason is None:
            assert plan.incremental, plan.reason
            assert plan.new_files == ("orders/o2.csv",)
            assert plan.previous_as_of == DAY_A
        else:
            assert not plan.incremental
            assert reason in plan.reason, plan.reason
            assert plan.metadata()["computation"] == "cold"
    finally:
        con.close()


def test_the_plan_is_cold_for_other_settings_code_an_earlier_as_of_or_no_state(
    tmp_path, monkeypatch
):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        _seed(con)
        assert (
            "no earlier run"
            in incremental.plan(con, "customer_summary", DAY_B, incremental.inputs(con, {})).reason
        )
        _record(con, {"currency": "USD"})
        other = incremental.plan(
            con, "customer_summary", DAY_B, incremental.inputs(con, {"currency": "EUR"})
        )
        assert not other.incremental and "settings changed (currency)" in other.reason
        earlier = incremental.plan(
            con,
            "customer_summary",
            DAY_A - dt.timedelta(days=1),
            incremental.inputs(con, {"currency": "USD"}),
        )
        assert not earlier.incremental and "no earlier state" in earlier.reason
        same = incremental.plan(
            con, "customer_summary", DAY_A, incremental.inputs(con, {"currency": "USD"})
        )
        assert same.incremental and same.new_files == ()
        monkeypatch.setattr(incremental, "model_code_version", lambda: "another version")
        upgraded = incremental.plan(
            con, "customer_summary", DAY_B, incremental.inputs(con, {"currency": "USD"})
        )
        assert not upgraded.incremental and "the model code changed" in upgraded.reason
    finally:
        con.close()


def test_engagement_values_carry_only_when_no_review_social_event_or_person_is_new(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute("CREATE SCHEMA staging")
        con.execute("CREATE TABLE staging.reviews (created_at TIMESTAMP)")
        con.execute("CREATE TABLE staging.social (occurred_at TIMESTAMP)")
        con.execute("INSERT INTO staging.reviews VALUES ($t)", {"t": f"{DAY_A} 23:59:59"})
        con.execute("INSERT INTO staging.social VALUES ($t)", {"t": f"{DAY_A} 08:00:00"})
        con.execute("CREATE SCHEMA work")
        con.execute(load_sql("work/influence_edges_table"))
        con.execute("INSERT INTO work.influence_edges VALUES ($d, 'a', 'b', 1.0)", {"d": DAY_A})
        plan = incremental.Plan(True, "new orders", DAY_A, {"edges": "1"})
        # events up to the earlier as-of were counted then: nothing new
        assert incremental.engagement_carry_problem(con, plan, DAY_B, new_people=0) is None
        assert "2 customer(s) with a profile" in incremental.engagement_carry_problem(
            con, plan, DAY_B, new_people=2
        )
        stored_otherwise = incremental.Plan(True, "new orders", DAY_A, {"edges": "2"})
        assert "influence network" in incremental.engagement_carry_problem(
            con, stored_otherwise, DAY_B, new_people=0
        )
        con.execute("INSERT INTO staging.social VALUES ($t)", {"t": f"{DAY_B} 00:00:00"})
        problem = incremental.engagement_carry_problem(con, plan, DAY_B, new_people=0)
        assert problem == (
            f"0 review(s) and 1 social event(s) dated after {DAY_A} and up to {DAY_B} count now"
        )
        # a later as-of than the event's day is what counts: as of DAY_A again, nothing new
        assert incremental.engagement_carry_problem(con, plan, DAY_A, new_people=0) is None
    finally:
        con.close()


def test_the_last_order_day_is_asked_once_while_the_staged_orders_are_the_same(tmp_path):
    """Every step's window asks the last completed order day: the process keeps it while the
    staged orders are the same, and asks again after new staged orders, a re-staged file or
    an erasure."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        _seed(con)
        con.execute("ALTER TABLE staging.orders ADD COLUMN ordered_at TIMESTAMP")
        con.execute("ALTER TABLE staging.orders ADD COLUMN status VARCHAR")
        con.execute("UPDATE staging.orders SET ordered_at = $t, status = 'completed'", {"t": DAY_A})
        assert incremental.last_completed_order_day(con) == DAY_A
        # an order changed in place (nothing in the pipeline does that): the kept answer shows
        # that it was not asked again
        con.execute("UPDATE staging.orders SET ordered_at = $t", {"t": DAY_B})
        assert incremental.last_completed_order_day(con) == DAY_A
        # a new file staged
        con.execute(
            "INSERT INTO staging.orders VALUES ('3', 'orders/o2.csv', $t, 'completed')",
            {"t": DAY_B},
        )
        con.execute(
            "INSERT INTO staging.ingested_files (source, source_file, sha256) "
            "VALUES ('orders', 'orders/o2.csv', 'o2')"
        )
        assert incremental.last_completed_order_day(con) == DAY_B
        # an erasure of the latest order
        con.execute("DELETE FROM staging.orders WHERE order_id = '3'")
        con.execute("UPDATE staging.orders SET ordered_at = $t", {"t": DAY_A})
        con.execute("CREATE TABLE staging.erasure_log (request_id VARCHAR, rows_deleted JSON)")
        con.execute("INSERT INTO staging.erasure_log VALUES ('r1', '{\"staging.orders\": 1}')")
        assert incremental.last_completed_order_day(con) == DAY_A
        # a file staged again with other rows (its hash changes)
        con.execute("UPDATE staging.orders SET ordered_at = $t WHERE order_id = '1'", {"t": DAY_B})
        con.execute("UPDATE staging.ingested_files SET sha256 = 'o1b' WHERE sha256 = 'o1'")
        assert incremental.last_completed_order_day(con) == DAY_B
    finally:
        con.close()
    # another database is another answer
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    try:
        _seed(other)
        other.execute("ALTER TABLE staging.orders ADD COLUMN ordered_at TIMESTAMP")
        other.execute("ALTER TABLE staging.orders ADD COLUMN status VARCHAR")
        other.execute("UPDATE staging.orders SET ordered_at = '2025-01-01', status = 'completed'")
        assert incremental.last_completed_order_day(other) == dt.date(2025, 1, 1)
    finally:
        other.close()


@pytest.mark.parametrize("model", ["bgnbd", "gamma_gamma"])
def test_a_fit_started_from_earlier_parameters_reaches_the_cold_optimum(model):
    """A fit that starts from the parameters of a day earlier (or from nonsense) ends where the
    fit from a sample of the rows ends, to the bit: what lets work/model_fit start from the
    earlier as-of's fits. To 1e-13 was not enough: the intervals' covariance magnified such a
    difference to 1.9e-9 in clv_p10 on a small retailer (a review)."""
    from engagement_box.value import fitting, simulation

    truth = {"r": 0.3, "alpha": 5.0, "a": 0.5, "b": 3.0}
    data = simulation.simulate_bgnbd(truth, 20_000, T_max=400, seed=7, whole_units=True)
    x, t_x, T = data.x, data.t_x, data.T
    spend = np.random.default_rng(7).gamma(4.0, 10.0, x.shape[0])
    if model == "bgnbd":
        earlier = fitting.fit_bgnbd(x, t_x, np.maximum(T - 1, t_x)).params
        cold = fitting.fit_bgnbd(x, t_x, T)
        warm = fitting.fit_bgnbd(x, t_x, T, start=earlier)
        odd = fitting.fit_bgnbd(x, t_x, T, start={"r": -1.0, "alpha": 5.0, "a": 0.5, "b": 3.0})
    else:
        earlier = fitting.fit_gamma_gamma(x, spend * 1.01).params
        cold = fitting.fit_gamma_gamma(x, spend)
        warm = fitting.fit_gamma_gamma(x, spend, start=earlier)
        odd = fitting.fit_gamma_gamma(x, spend, start={"p": float("nan"), "q": 1.0, "v": 1.0})
    assert cold.converged and warm.converged and odd.converged
    assert earlier != cold.params  # a different start indeed
    for name, value in cold.params.items():
        assert warm.params[name] == value, (name, warm.params, cold.params)
        assert odd.params[name] == value  # an unusable start: the sample fit, the same numbers


def _first_rows(folder: Path, n: int) -> pl.DataFrame:
    first = sorted(folder.glob("*.*"))[0]
    rows = pl.read_csv(first, infer_schema_length=0) if first.suffix == ".csv" else None
    return (rows if rows is not None else pl.read_parquet(first)).head(n)


def test_a_new_placeholder_limit_recomputes_every_step_as_a_cold_run(
    december_run, tmp_path, monkeypatch
):
    """Three new profiles with one email and an order each: one person at the default limit (5).
    The limit lowered to 2 with nothing else changed: identity builds again, and so does every
    step that reads who bought what (they said "unchanged" or "incremental" before the fix, and
    kept the three orders on one person). The rows equal a cold run at the limit 2."""
    run = copy_run(december_run, tmp_path / "run")
    profiles = _first_rows(run.exports / "customers", 3).with_columns(
        pl.Series("customer_id", ["X1", "X2", "X3"]), pl.lit("fam@example.com").alias("email")
    )
    profiles.write_csv(run.exports / "customers" / "customers_family.csv")
    orders = (
        _first_rows(run.exports / "orders", 200)
        .filter(pl.col("status") == "completed")
        .head(3)
        .with_columns(
            pl.Series("order_id", ["XO1", "XO2", "XO3"]),
            pl.Series("customer_id", ["X1", "X2", "X3"]),
            pl.lit("fam@example.com").alias("email"),
            pl.lit("web").alias("channel"),
        )
    )
    orders.write_csv(run.exports / "orders" / "orders_family.csv")
    database = working(run.database)
    before = materialize(run.exports, database, MONTH, SUMMARIES)
    assert before.success
    buyers = (
        "SELECT DISTINCT customer_id FROM work.buyer_days WHERE customer_id LIKE 'X%' ORDER BY 1"
    )
    assert query(database, buyers) == [("X1",)]  # one person, the earliest profile's id

    monkeypatch.setenv("ENGAGEMENT_MAX_PROFILES_PER_KEY", "2")
    after = materialize(run.exports, database, MONTH, SUMMARIES)
    assert after.success
    assert step_metadata(after, "identity_links")["computation"] == "cold"
    for table in ("buyer_days", *INCREMENTAL_STEPS):
        metadata = step_metadata(after, table)
        assert metadata["computation"] == "cold", (table, metadata["computation_reason"])
        assert "identity links were built with other settings" in metadata["computation_reason"]
    assert query(database, buyers) == [("X1",), ("X2",), ("X3",)]

    cold_db = tmp_path / "cold.duckdb"
    materialize(run.exports, cold_db, MONTH, SUMMARIES)
    assert query(database, BUYER_DAYS) == query(cold_db, BUYER_DAYS)
    for table in INCREMENTAL_STEPS:
        assert_same_rows(
            rows_as_of(database, table, DAY_A), rows_as_of(cold_db, table, DAY_A), table
        )
