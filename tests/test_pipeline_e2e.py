"""End to end: the whole asset graph through Dagster on small data sets, as a scheduled run."""

import json
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from engagement_box import dictionary, generator
from engagement_box.engagement.metrics import QUADRANT_PLAYS
from engagement_box.governance.readers import default_working
from engagement_box.value import rfm
from engagement_box.value.cdnow import write_cdnow_orders_csv
from pipelines.resources import ModelSettings
from tests.pipeline_runs import DATA_END, copy_run, run_graph

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_retailer(december_run) -> Path:
    """The tiny retailer's exports (read only: a test that adds files works on a copy)."""
    return december_run.exports


def readme_queries(marker: str) -> list[str]:
    """The statements of the README's SQL block after `marker`."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sql\n(.*?)```", readme.split(marker, 1)[1], flags=re.S)
    assert block, f"README has no sql block after {marker!r}"
    sql = re.sub(r"--[^\n]*", "", block.group(1))  # the comments beside the statements
    return [q.strip() for q in sql.split(";") if q.strip()]


def counts(database: Path, sql: str):
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def value_meta_of(result) -> dict:
    """The metadata of work/engagement_value's materialization in `result`."""
    return next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["work", "engagement_value"]
    )


def test_each_check_is_recorded_once_for_the_runs_month(december_run):
    """The UI's check history of a monthly run: each check of a month-partitioned asset has one
    evaluation, filed under the month, none left PLANNED. Before those checks named their
    partitions, Dagster filed each twice: a PLANNED row for the month that never completed and
    the result under no month. (The staged sources are not partitioned: Dagster still files
    their planned row under the run's month; the latest row, which the UI shows, is the result.)"""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    partitioned = {node.key for node in graph.asset_nodes if node.partitions_def}
    seen = set()
    with dg.DagsterInstance.local_temp(str(december_run.dagster_home)) as instance:
        (run,) = instance.get_runs()
        for key in graph.asset_check_keys:
            history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
            history = [r for r in history if r.run_id == run.run_id]  # newest first
            if not history:
                continue  # a check of an asset this run did not plan (the Spark engine's)
            seen.add(key.asset_key in partitioned)
            described = (key, [(r.status.value, r.partition) for r in history])
            assert history[0].status.value != "PLANNED", described
            if key.asset_key in partitioned:
                assert len(history) == 1, described
                assert history[0].partition == "2025-12-01", described
            else:
                assert history[0].partition is None, described
    assert seen == {True, False}


def test_whole_graph_on_a_generated_retailer(december_run):
    tiny_retailer, database, result = (
        december_run.exports,
        december_run.database,
        december_run.result,
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks if c.check_name != "holdout_total_within_25pct")
    # The generated fx_rates export covers every GBP and EUR order: none is left out.
    left_out = next(c for c in checks if c.check_name == "orders_left_out_within_limit")
    assert left_out.metadata["orders_left_out"].value == 0
    assert left_out.metadata["completed_orders"].value > 0

    manifest = generator.load_manifest(tiny_retailer)
    for source, info in manifest["sources"].items():
        read, staged, quarantined = counts(
            default_working(database),
            f"SELECT (SELECT sum(rows_read) FROM staging.ingested_files WHERE source = '{source}'),"
            f" (SELECT count(*) FROM staging.{source}),"
            f" (SELECT count(*) FROM staging.quarantine WHERE source = '{source}')",
        )[0]
        assert read == info["rows"] == staged + quarantined
        assert staged == info["clean_rows"]

    # Every published mart is there, with a snapshot recorded in its materialization metadata.
    published = {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[0] == "marts"
    }
    assert set(published) >= {"customer_rfm", "customer_value", "model_fit", "model_validation"}
    assert {m["snapshot_id"].value for m in published.values()} == {1}
    assert counts(database, "SELECT count(*) FROM marts.customer_value WHERE NOT isfinite(clv)")[
        0
    ] == (0,)
    # Every customer has a 10-90 % range around expected purchases and CLV, from the model the
    # run chose (recorded with its reason on work/model_fit).
    fit_meta = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["work", "model_fit"]
    )
    chosen = fit_meta["chosen_model"].value
    assert chosen in {"bgnbd", "mbgnbd", "pareto_nbd"} and fit_meta["choice_reason"].value
    # The preview shows every fit (four models, two windows) with its parameters, no NaN.
    preview = fit_meta["preview"].value.splitlines()
    assert len(preview) == 2 + 8 and "nan" not in fit_meta["preview"].value
    assert preview[0].startswith("| model | window | chosen | converged | r | alpha |")
    # The referral model CRV used, with the kappa (estimated here: no setting).
    referral = value_meta_of(result)["referral_model"].value
    assert referral["kappa"] == "estimated (Buhlmann-Straub)" and referral["currency"] == "USD"
    assert_ranges_hold(database, chosen)
    assert_the_warehouse_is_the_data_dictionary(database)
    assert_the_customer_mart_agrees_with_the_other_marts(database)
    # The README's query for what to do with the top customers: each with both plays.
    top = counts(database, readme_queries("<!-- plays-query -->")[0])
    assert len(top) == 20
    for _, _, segment, segment_play, quadrant, quadrant_play in top:
        assert segment_play == rfm.SEGMENT_PLAYS[segment]
        assert quadrant_play == QUADRANT_PLAYS[quadrant]
    # Money totals in the metadata are rounded to cents and name their currency.
    value_meta = value_meta_of(result)
    total = value_meta["total_cev (USD)"].value
    assert total == round(total, 2) and total > 0
    cohort_meta = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["work", "cohort_retention"]
    )
    assert cohort_meta["month_1_retention_share"].value > 0
    assert "data:image/png;base64," in published["cohort_retention"]["retention_heatmap"].value
    assert published["customer"]["dagster/column_schema"].value.columns[0].description
    fresh = next(c for c in checks if c.check_name == "current_version_is_fresh")
    assert fresh.passed and fresh.metadata["days_behind"].value == 0


def test_the_freshness_check_runs_alone(december_run, tmp_path):
    """The UI's "Execute" on `current_version_is_fresh` alone selects no mart: the publish step
    refused it ("this run selects  but not marts/customer, ..."). It checks the current version
    and publishes nothing."""
    from assets.publish import FRESHNESS_CHECK, mart_key, published_marts
    from pipelines.resources import EngagementConfig, ModelSettings, warehouse_resource
    from tests.pipeline_runs import copy_run

    run = copy_run(december_run, tmp_path)
    check = dg.AssetCheckKey(mart_key("customer"), FRESHNESS_CHECK)
    result = dg.materialize(  # no partition: the check reads the current version
        [published_marts],
        selection=dg.AssetSelection.checks(check),
        resources={
            "warehouse": warehouse_resource(run.database),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        },
        raise_on_error=False,
    )
    assert result.success
    assert not result.get_asset_materialization_events()
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == FRESHNESS_CHECK and evaluation.passed
    assert evaluation.metadata["current_snapshot_id"].value == 1

    # On a warehouse never run: no version, a warning, and no database file made for it.
    never = tmp_path / "never" / "w.duckdb"
    result = dg.materialize(
        [published_marts],
        selection=dg.AssetSelection.checks(check),
        resources={
            "warehouse": warehouse_resource(never),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        },
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.description == "no version is published yet"
    assert not never.parent.exists() or not any(never.parent.glob("*.duckdb"))


def assert_the_warehouse_is_the_data_dictionary(database: Path) -> None:
    """Every table of `marts` (and each versioned one in `history`) has exactly the dictionary's
    columns and types, each with its description as the column's comment."""
    found = counts(
        database,
        "SELECT schema_name, table_name, column_name, data_type, comment FROM duckdb_columns() "
        "WHERE schema_name IN ('marts', 'history') ORDER BY schema_name, table_name, column_index",
    )
    tables: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for schema, table, column, dtype, comment in found:
        tables.setdefault((schema, table), []).append((column, dtype, comment))
    expected = {("marts", t.name) for t in dictionary.TABLES} | {
        ("history", name) for name in dictionary.PUBLISHED
    }
    assert set(tables) == expected
    for (schema, table), columns in tables.items():
        wanted = [(c.name, c.type, c.text) for c in dictionary.columns_in(schema, table)]
        assert columns == wanted, f"{schema}.{table} differs from engagement_box/dictionary.py"
    described = dict(
        counts(
            database,
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts' "
            "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE schema_name = 'marts'",
        )
    )
    assert described == {t.name: t.description for t in dictionary.TABLES}


def assert_the_customer_mart_agrees_with_the_other_marts(database: Path) -> None:
    """marts.customer holds every customer of engagement_value once, with the same values,
    segment, quadrant and persona as the marts it gathers, whose segment and quadrant carry
    their plays."""
    mismatches = counts(
        database,
        "SELECT count(*) FROM marts.customer AS c "
        "FULL JOIN marts.engagement_value AS v USING (customer_id) "
        "LEFT JOIN marts.customer_rfm AS r USING (customer_id) "
        "LEFT JOIN marts.customer_persona AS p USING (customer_id) "
        "WHERE c.customer_id IS NULL OR v.customer_id IS NULL OR c.cev <> v.cev "
        "OR c.quadrant <> v.quadrant OR c.segment <> r.segment "
        "OR c.persona IS DISTINCT FROM p.persona OR c.order_count <> r.order_count "
        # the play of each, beside them (an analyst's "what do I do with them"; a review
        # found the segment's nowhere)
        "OR r.segment_play IS NULL OR v.quadrant_play IS NULL",
    )
    assert mismatches == [(0,)]
    n, distinct, profiles = counts(
        database,
        "SELECT count(*), count(DISTINCT customer_id), count(*) FILTER (WHERE has_profile) "
        "FROM marts.customer",
    )[0]
    assert n == distinct > 0 and profiles > 0
    # has_profile says who has a profile, and guest buyers are there (a mutation review: every
    # buyer said to have one passed, analysts counting guests found none)
    wrong, guests = counts(
        default_working(database),
        "SELECT count(*) FILTER (WHERE c.has_profile <> (r.customer_id IS NOT NULL)), "
        "count(*) FILTER (WHERE NOT c.has_profile) FROM marts.customer AS c "
        "LEFT JOIN intermediate.resolved_customers AS r USING (customer_id)",
    )[0]
    assert wrong == 0 and guests > 0


def assert_ranges_hold(database: Path, model: str) -> None:
    n, outside, models = counts(
        database,
        "SELECT count(*), "
        " count(*) FILTER (WHERE NOT (expected_purchases_365d_p10 <= expected_purchases_365d"
        "   AND expected_purchases_365d <= expected_purchases_365d_p90"
        "   AND clv_p10 <= clv AND clv <= clv_p90 AND clv_p10 < clv_p90)), "
        " list(DISTINCT model) FROM marts.customer_value WHERE frequency IS NOT NULL",
    )[0]
    assert n > 0 and outside == 0
    assert models == [model]


def test_a_pinned_purchase_model_scores_every_customer(tiny_retailer, tmp_path):
    database = tmp_path / "w.duckdb"

    result = run_graph(tiny_retailer, database, ModelSettings(purchase_model="pareto_nbd"))

    assert result.success
    assert counts(database, "SELECT DISTINCT model FROM marts.model_fit WHERE chosen") == [
        ("pareto_nbd",)
    ]
    assert_ranges_hold(database, "pareto_nbd")
    reason = counts(
        database, "SELECT DISTINCT model, chosen FROM marts.model_validation WHERE chosen"
    )
    assert reason == [("pareto_nbd", True)]


def test_rerun_with_unchanged_inputs_publishes_no_new_version(december_run, tmp_path):
    first = copy_run(december_run, tmp_path)  # the copy of a first run's warehouse
    database, working = first.database, default_working(first.database)
    staged_before = counts(working, "SELECT count(*), sum(net_amount) FROM staging.orders")
    rfm_sql = "SELECT * FROM marts.customer_rfm ORDER BY customer_id"
    rfm_before = counts(database, rfm_sql)

    result = run_graph(first.exports, database)
    assert result.success

    assert counts(working, "SELECT count(*), sum(net_amount) FROM staging.orders") == staged_before
    assert counts(database, rfm_sql) == rfm_before
    # Same files, settings and code: version 1 stands, the run says so, and computes nothing
    # after work/version_inputs (every later step is skipped).
    assert counts(database, "SELECT snapshot_id, is_current FROM marts.snapshots") == [(1, True)]
    (observed,) = [
        e.asset_observation_data.asset_observation.metadata
        for e in result.get_asset_observation_events()
    ]
    assert observed["standing_version"].value == 1
    computed = {
        e.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
        if e.step_key != "work__version_inputs"
    }
    assert not {k for k in computed if k.startswith(("work/", "marts/", "activation/"))} - {
        "work/buyer_days"
    }
    # The month's partitions are reported as standing (so the UI does not show them missing),
    # each saying it was not computed in this run.
    reported = [
        e.materialization for e in result.get_asset_materialization_events()
        if e.step_key == "work__version_inputs"
    ]  # fmt: skip
    assert {m.asset_key.to_user_string() for m in reported} >= {
        "work/version_inputs", "work/customer_rfm", "work/customer", "marts/customer",
    }  # fmt: skip
    assert all(m.partition == "2025-12-01" for m in reported)
    assert all(m.metadata["standing_version"].value == 1 for m in reported)
    assert all(m.metadata["computed_in_this_run"].value is False for m in reported)
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert {"published_marts", "work__customer_summary", "activation__audiences"} <= skipped


def test_a_forced_rerun_computes_every_step_and_publishes_nothing_new(december_run, tmp_path):
    first = copy_run(december_run, tmp_path)
    result = run_graph(first.exports, first.database, tags={"engagement/force": "true"})
    assert result.success
    published = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[0] == "marts"
    ]
    assert published and all(m["snapshot_id"].value == 1 for m in published)
    assert not any(m["published_new_version"].value for m in published)
    assert "published nothing" in published[0]["outcome"].value
    assert counts(first.database, "SELECT snapshot_id, is_current FROM marts.snapshots") == [
        (1, True)
    ]


def test_bad_file_fails_the_run_and_publishes_nothing(december_run, tmp_path):
    first = copy_run(december_run, tmp_path)
    exports, database = first.exports, first.database
    (exports / "orders" / "broken.csv").write_text("order_id,customer_id\nx,y\n")

    result = run_graph(exports, database)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "orders/broken.csv: missing required column(s)" in failure.message + str(
        failure.event_specific_data
    )
    assert counts(database, "SELECT count(*) FROM marts.snapshots") == [(1,)]


def test_a_buyer_whose_orders_all_lack_a_rate_is_in_no_quadrant_and_no_quadrant_audience(
    december_run, tmp_path
):
    """A consenting profile whose completed orders are all in PLN, with no PLN rate, has no RFM
    segment (the release before this one), but was still published as a CEV Miser (CLV counted
    as 0, a CLV nobody measured) and written to the CEV Misers audience file. They are valued
    on nothing: CLV, CEV and the quadrant are NULL (in engagement_value and the customer mart),
    they are in no audience file, and what was measured of them stays (CRV from the referral
    model, CKV, social points). A profile with no order beside them is still a Prospect and a
    Miser, and the run's checks pass."""
    from tests.conftest import write_csv

    run = copy_run(december_run, tmp_path)
    profile = {
        "social_handles": "", "signup_date": "2024-01-01", "loyalty_member": "false",
        "marketing_consent": "true", "country": "PL",
    }  # fmt: skip
    write_csv(
        run.exports / "customers" / "unvalued.csv",
        [profile | {"customer_id": c, "email": f"{c}@example.pl"} for c in ("UNVALUED", "NEVER")]
        # signed up on the as-of day, no order: a Prospect as NEVER is (not unvalued: a review)
        + [profile | {"customer_id": "ASOFDAY", "email": "asofday@example.pl",
                      "signup_date": DATA_END.isoformat()}],
    )  # fmt: skip
    write_csv(
        run.exports / "orders" / "pln.csv",
        [
            {
                "order_id": f"PLN{i}",
                "customer_id": "UNVALUED",
                "email": "",
                "currency": "PLN",
                "ordered_at": f"2025-{month}-10 12:00:00",
                "net_amount": "120.00",
                "status": "completed",
                "channel": "web",
            }
            for i, month in enumerate(("06", "09"))
        ],
    )

    result = run_graph(run.exports, run.database)

    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["orders_left_out_within_limit"].metadata["customers_left_out"].value == 1
    assert checks["cev_is_the_sum"].passed, checks["cev_is_the_sum"].description
    assert checks["documented_segments_and_quadrants"].passed
    customer = "SELECT customer_id, segment, quadrant, clv, cev IS NULL, crv IS NOT NULL, ckv "
    customer += "FROM marts.customer WHERE customer_id IN ('UNVALUED', 'NEVER', 'ASOFDAY') "
    customer += "ORDER BY 1"
    assert counts(run.database, customer) == [
        ("ASOFDAY", "Prospect", "CEV Misers", 0.0, False, True, 0.0),
        ("NEVER", "Prospect", "CEV Misers", 0.0, False, True, 0.0),
        ("UNVALUED", None, None, None, True, True, 0.0),
    ]
    as_of = "SELECT as_of FROM marts.snapshots WHERE is_current"
    assert counts(run.database, as_of) == [(DATA_END,)]  # the boundary is the as-of
    value = "SELECT buyer, clv, cev, quadrant, quadrant_play, crv IS NOT NULL, civ, ckv "
    value += "FROM marts.engagement_value WHERE customer_id = 'UNVALUED'"
    assert counts(run.database, value) == [(False, None, None, None, None, True, 0.0, 0.0)]
    quadrant_files = sorted((run.database.parent / "audiences" / "quadrant").glob("*.csv"))
    assert quadrant_files
    in_files = [f.name for f in quadrant_files if "UNVALUED" in f.read_text(encoding="utf-8")]
    assert in_files == []
    misers = run.database.parent / "audiences" / "quadrant" / "cev_misers.csv"
    assert "NEVER" in misers.read_text(encoding="utf-8")
    # The README's "who moved" query (version 2 against version 1 here) calls them unvalued as
    # the migration does, not absent: it said `(none)` on both sides and left them out.
    (who,) = [q for q in readme_queries("<!-- versions-queries -->") if "segment_then" in q]
    moved = {r[0]: r[1:] for r in counts(run.database, who)}
    assert moved["UNVALUED"] == ("(unvalued)", "(none)")
    assert moved["NEVER"] == ("Prospect", "(none)")


def test_cdnow_through_the_assets_reproduces_fader_hardie_lee_2005(tmp_path):
    """The CDNOW 1/10 sample, ingested as an orders export, fitted in weeks to 1997-09-30."""
    exports = tmp_path / "exports"
    write_cdnow_orders_csv(exports / "orders" / "cdnow.csv")
    database = tmp_path / "w.duckdb"
    settings = ModelSettings(as_of="1998-06-30", calibration_end="1997-09-30", time_unit="W")

    result = run_graph(exports, database, settings)

    assert result.success
    rows = counts(
        database,
        "SELECT model, r, alpha, a, b, p, q, gamma, n_customers, params, log_likelihood, chosen "
        "FROM marts.model_fit WHERE \"window\" = 'calibration' ORDER BY model",
    )
    names = ["model", "r", "alpha", "a", "b", "p", "q", "gamma", "n", "params", "ll", "chosen"]
    fits = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
    assert set(fits) == {"bgnbd", "mbgnbd", "pareto_nbd", "gamma_gamma"}
    bg, gg, pnbd = fits["bgnbd"], fits["gamma_gamma"], fits["pareto_nbd"]
    assert bg["n"] == 2357
    assert bg["r"] == pytest.approx(0.243, abs=5e-4)
    assert bg["alpha"] == pytest.approx(4.414, abs=5e-3)
    assert bg["a"] == pytest.approx(0.793, abs=5e-4)
    assert bg["b"] == pytest.approx(2.426, abs=5e-3)
    assert gg["p"] == pytest.approx(6.25, abs=5e-3)
    assert gg["q"] == pytest.approx(3.74, abs=5e-3)
    assert gg["gamma"] == pytest.approx(15.44, abs=5e-3)
    # Pareto/NBD, the published figures (Fader & Hardie's note on the Pareto/NBD, CDNOW weeks).
    pareto = json.loads(pnbd["params"])
    assert pnbd["n"] == 2357
    assert pareto["r"] == pytest.approx(0.553, abs=5e-4)
    assert pareto["alpha"] == pytest.approx(10.578, abs=5e-3)
    assert pareto["s"] == pytest.approx(0.606, abs=5e-4)
    assert pareto["beta"] == pytest.approx(11.668, abs=5e-3)
    assert pnbd["ll"] == pytest.approx(-9594.98, abs=5e-3)
    # On CDNOW no rival predicts the holdout clearly better than BG/NBD (docs/METRICS.md): the
    # reference model is kept and scores.
    chosen = counts(database, "SELECT DISTINCT model FROM marts.model_fit WHERE chosen")
    assert chosen == [("bgnbd",)]
    assert counts(database, "SELECT DISTINCT model FROM marts.customer_value") == [("bgnbd",)]
    compared = counts(
        database,
        "SELECT model, bool_or(chosen), count(*) FROM marts.model_validation GROUP BY model "
        "ORDER BY model",
    )
    assert compared == [("bgnbd", True, 8), ("mbgnbd", False, 8), ("pareto_nbd", False, 8)]
    validation = counts(database, "SELECT DISTINCT total_actual FROM marts.model_validation")
    assert validation == [(1882.0,)]
    snapshot = counts(database, "SELECT as_of, settings FROM marts.snapshots")[0]
    assert str(snapshot[0]) == "1998-06-30"
    assert json.loads(snapshot[1])["time_unit"] == "W"


def test_backfilled_month_builds_history_without_moving_the_current_version(december_run, tmp_path):
    december = copy_run(december_run, tmp_path)
    tiny_retailer, database = december.exports, december.database
    current = counts(database, "SELECT count(*), sum(clv) FROM marts.customer_value")

    backfill = run_graph(tiny_retailer, database, partition="2025-08-01")
    assert backfill.success
    # The audiences still come from the current version (December), not the backfilled one.
    audiences_meta = next(
        e.materialization.metadata
        for e in backfill.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["activation", "audiences"])
    )
    current_id = counts(database, "SELECT snapshot_id FROM marts.snapshots WHERE is_current")
    assert [(audiences_meta["snapshot_id"].value,)] == current_id != [(2,)]
    # Every staged referral is in the August outcomes: judged, or counted as sent after August
    # (the outcomes of a backfill did not add up to the staged referrals, and nothing said why).
    outcomes = value_meta_of(backfill)["referral_outcomes"].value
    staged_referrals = counts(default_working(database), "SELECT count(*) FROM staging.referrals")
    assert outcomes["sent_after_as_of"] > 0
    assert [(sum(outcomes.values()),)] == staged_referrals

    snapshots = counts(
        database,
        "SELECT snapshot_id, as_of::VARCHAR, partition_key, is_current FROM marts.snapshots",
    )
    assert snapshots[1] == (2, "2025-08-31", "2025-08-01", False)
    assert snapshots[0][1] == "2025-12-31" and snapshots[0][3]
    assert counts(database, "SELECT count(*), sum(clv) FROM marts.customer_value") == current
    # The August version only knows what happened by August 31st.
    last = counts(
        default_working(database),
        "SELECT max(last_order_date) FROM work.customer_summary WHERE as_of = DATE '2025-08-31'",
    )[0][0]
    assert str(last) < "2025-09-01"
    # Migration runs along the as-of order: August -> December, then August -> September ->
    # December once September is backfilled (the move into the current version included).
    pairs = "SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration ORDER BY 1"
    assert counts(database, pairs) == [(2, 1)]
    # The README's version queries, as written, after a run and a backfill: each finds rows.
    queries = readme_queries("<!-- versions-queries -->")
    for query in queries:
        assert counts(database, query), query
    # "Who moved" finds the customers segment_migration counts, entering and leaving included.
    (who,) = [q for q in queries if "segment_then" in q]
    moved = "SELECT sum(customers) FROM marts.segment_migration WHERE moved AND dimension = "
    moved += "'rfm_segment' AND from_snapshot = 2 AND to_snapshot = 1"
    assert len(counts(database, who)) == counts(database, moved)[0][0]
    assert run_graph(tiny_retailer, database, partition="2025-09-01").success
    assert counts(database, pairs) == [(2, 3), (3, 1)]


def test_degenerate_data_fails_the_fit_check_and_publishes_nothing(tmp_path):
    exports = tmp_path / "exports"
    rows = [
        {
            "order_id": f"o{i}",
            "customer_id": f"c{i}",
            "ordered_at": f"2025-0{1 + i % 9}-1{i % 10}",
            "net_amount": "20.00",
            "currency": "USD",
            "status": "completed",
            "channel": "web",
        }
        for i in range(60)
    ]  # fmt: skip  -- everybody bought exactly once
    from tests.conftest import write_csv

    write_csv(exports / "orders" / "once.csv", rows)
    database = tmp_path / "w.duckdb"

    result = run_graph(exports, database)

    assert not result.success
    check = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "fits_converged"
    )
    assert not check.passed
    assert "degenerate" in (check.description or "") or "bought once" in (check.description or "")
    # Nothing published: no file for analysts, and no version in the working database.
    assert not database.exists()
    assert counts(
        default_working(database),
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'snapshots'",
    ) == [(0,)] or counts(default_working(database), "SELECT count(*) FROM marts.snapshots") == [
        (0,)
    ]


# The inline queries the documents give analysts, with the file each reads: none may name a
# table only the working database has (docs/METRICS.md gave `staging.referrals`, which the
# published file does not hold).
DOCUMENTS = ("README.md", "docs/METRICS.md", "docs/DATA_DICTIONARY.md", "docs/OPERATIONS.md")


def inline_queries() -> list[tuple[str, str]]:
    """(document, query) for each `SELECT ...` written inline in the documents, but those
    reading the Spark engine's lake (`read_parquet`), which its own tests run."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for name in DOCUMENTS:
        text = (root / name).read_text(encoding="utf-8")
        found += [
            (name, q) for q in re.findall(r"`(SELECT [^`]*)`", text) if "read_parquet" not in q
        ]
    return found


def test_every_inline_query_of_the_documents_runs_on_the_published_file(december_run):
    queries = inline_queries()
    assert len(queries) >= 3, queries  # the README's quarantine summary, the dictionary, METRICS
    for document, query in queries:
        try:
            rows = counts(december_run.database, query)
        except duckdb.Error as error:
            pytest.fail(f"{document}: {query}\n{error}")
        assert rows, f"{document}: {query} returned no row"
