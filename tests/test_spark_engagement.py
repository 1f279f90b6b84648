"""The Spark engine's engagement marts against the DuckDB engine's on the bundled sample:
engagement_value, customer_persona, persona_profile and customer, every column (integers and
text exactly, numbers to 1e-9 relative), read back from the lake as an analyst does.

The run is the session's (`tests/conftest.py::spark_run`); the DuckDB side calls the DuckDB
engine's functions on the same inputs as `assets/engagement.py` does."""

import datetime as dt
import json

import duckdb
import polars as pl
import pytest

from engagement_box import settings
from engagement_box.activation import audiences
from engagement_box.engagement import personas, referral
from engagement_box.engagement.metrics import engagement_values
from engagement_box.identity import links as identity
from engagement_box.spark import lake
from engagement_box.sql import load_sql
from engagement_box.value import rfm
from engagement_box.value.summary import customer_summary
from pipelines.resources import EngagementConfig, ModelSettings
from tests.spark_runs import AS_OF
from tests.test_spark_parity import assert_same_rows, duckdb_marts

pytestmark = pytest.mark.spark


def duckdb_engagement(con, as_of=AS_OF) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """The DuckDB engine's engagement marts and audiences for `as_of` (the inputs
    `assets/engagement.py` reads), and the referral outcomes' counts (its metadata)."""
    value = duckdb_marts(con, as_of)
    clv = value["customer_value"].select("customer_id", "clv")
    profiles = con.execute(
        "SELECT customer_id, signup_date AS since FROM intermediate.resolved_customers "
        "WHERE signup_date <= $as_of",
        {"as_of": as_of},
    ).pl()
    customers = pl.concat([profiles.select("customer_id"), clv.select("customer_id")]).unique()
    summary = customer_summary(con, as_of, currency="USD", fx_rates={})
    first_orders = summary.select("customer_id", pl.col("first_order_date").alias("since"))
    until = dt.datetime.combine(as_of, dt.time.max)
    referrals = (
        identity.resolved(con, "referrals")
        .filter(pl.col("referred_at") <= until)
        .with_columns(
            pl.when(pl.col("converted_at") <= until)
            .then(pl.col("converted_at"))
            .alias("converted_at")
        )
    )
    values = engagement_values(
        clv,
        identity.resolved(con, "reviews").filter(pl.col("created_at") <= until),
        identity.resolved(con, "social").filter(pl.col("occurred_at") <= until),
        referrals,
        EngagementConfig().to_settings(ModelSettings()),
        as_of=as_of,
        customers=customers,
        customer_since=pl.concat([profiles, first_orders], how="vertical_relaxed"),
    )
    features = personas.feature_frame(values, value["customer_rfm"], rfm.PROSPECT)
    fitted = personas.build_personas(features)
    stamp = pl.lit(as_of).alias("as_of")
    money = pl.lit("USD").alias("currency")
    marts = {
        "engagement_value": values.with_columns(money, stamp),
        "customer_persona": fitted.assignments.with_columns(stamp),
        "persona_profile": fitted.profiles.with_columns(
            pl.lit(as_of).alias("model_fitted_as_of"), money, stamp
        ),
    }
    # the customer mart: sql/work/customer.sql over these work rows, as the DuckDB engine runs it
    con.execute("CREATE SCHEMA IF NOT EXISTS work")
    for name, frame in (
        ("engagement_value", marts["engagement_value"]),
        ("customer_rfm", value["customer_rfm"]),
        ("customer_persona", marts["customer_persona"]),
        ("customer_value", value["customer_value"]),
    ):
        con.register("rows", frame)
        con.execute(f"CREATE OR REPLACE TABLE work.{name} AS SELECT * FROM rows")
        con.unregister("rows")
    customer = con.execute(load_sql("work/customer"), {"as_of": as_of, "currency": "USD"}).pl()
    marts["customer"] = customer.with_columns(stamp)
    # the audiences, as `assets/engagement.py::audience_exports` builds them from the version
    marts["audiences"] = audiences.build_audiences(
        con.execute(
            "SELECT customer_id, email, marketing_consent FROM intermediate.resolved_customers"
        ).pl(),
        segments=value["customer_rfm"].select("customer_id", "segment"),
        quadrants=values.select("customer_id", "quadrant"),
    ).with_columns(stamp)
    sent_later = identity.resolved(con, "referrals").filter(pl.col("referred_at") > until)
    return marts, referral.outcome_counts(
        referral.referral_outcomes(referrals, as_of), sent_after_as_of=sent_later.height
    )


@pytest.fixture(scope="module")
def engagement(spark_run):
    con, _, _, lake_dir, result = spark_run
    expected, outcomes = duckdb_engagement(con)
    reader = duckdb.connect()
    published = lake.attach(reader, lake_dir)
    yield reader, published, expected, outcomes, result
    reader.close()


# The engagement marts and the audiences, each with the columns that make a row unique
ENGAGEMENT_MARTS = [
    ("engagement_value", ["customer_id"]),
    ("customer_persona", ["customer_id"]),
    ("persona_profile", ["persona_id"]),
    ("customer", ["customer_id"]),
    ("audiences", ["audience_kind", "audience", "customer_id"]),
]


@pytest.mark.parametrize(("mart", "key"), ENGAGEMENT_MARTS)
def test_engagement_marts_equal_the_duckdb_engine(engagement, mart, key):
    reader, published, expected, _, _ = engagement
    assert mart in published
    got = reader.execute(f"SELECT * FROM marts.{mart}").pl()
    assert got.height > 0
    assert_same_rows(expected[mart], got, key)


def test_the_sample_exercises_every_part(engagement):
    """Parity means something only if the sample has credited referrals, influence, reviews,
    several personas and every kind of customer row."""
    _, _, expected, _, _ = engagement
    values = expected["engagement_value"]
    assert (values["crv_referrals"] > 0).sum() > 0
    assert (values["civ"] != 0).sum() > 0 and (values["ckv"] > 0).sum() > 0
    assert values["quadrant"].n_unique() >= 3
    assert expected["persona_profile"].height >= 3


def test_the_audience_files_equal_the_duckdb_engine(engagement, spark_run, tmp_path):
    """The Spark run's audience files (from its published version) are the files the DuckDB
    engine's audience step writes from the same rows: every file, byte for byte in CSV."""
    _, published, expected, _, result = engagement
    spark_files = spark_run[3].parent / "audiences"
    duck_files = tmp_path / "audiences"
    audiences.export_audiences(expected["audiences"].drop("as_of"), duck_files)
    names = sorted(p.relative_to(duck_files) for p in duck_files.rglob("*.*"))
    record = json.loads((spark_files / audiences.WRITTEN_FROM).read_text())
    assert len(names) > 4 and names == sorted(
        p.relative_to(spark_files)
        for p in spark_files.rglob("*.*")
        if p.name != audiences.WRITTEN_FROM  # which version they are: a review found none
    )
    assert record["engine"] == "spark" and len(record["files"]) == len(names)
    assert audiences.recorded_version(spark_files, engine="spark") == record["snapshot_id"]
    # the lake remembers where its audiences are: an erase with the DuckDB engine's settings
    # finds them (`erasure.erase`)
    remembered, _ = audiences.remembered_folders(audiences.folder_records(None, spark_run[3]))
    assert remembered == [spark_files.resolve()]
    for name in names:
        if name.suffix == ".csv":
            assert (spark_files / name).read_bytes() == (duck_files / name).read_bytes(), name
        else:
            assert pl.read_parquet(spark_files / name).equals(pl.read_parquet(duck_files / name))
    (event,) = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["spark", "published_marts"]
    ]
    assert sum(f["rows"] for f in event["audience_files"].value.values()) == (
        expected["audiences"].height
    )


def test_referral_outcomes_and_check_of_the_run(engagement):
    """The Spark step's outcome counts equal the DuckDB engine's, and its blocking check passed."""
    _, _, _, outcomes, result = engagement
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["spark", "engagement_marts"]
    ]
    assert event.materialization.metadata["referral_outcomes"].value == outcomes
    # what CRV was computed with, said as the DuckDB engine says it (Spark said only "BG/NBD"
    # or "NBD", not which referrals valued one, nor kappa or mu: a review)
    model = event.materialization.metadata["referral_model"].value
    values = engagement[2]["engagement_value"]
    never = values.filter(pl.col("crv_referrals") == 0)["crv_value_per_referral"]
    assert model["mean_value_per_referral"] == pytest.approx(never[0], abs=0.005)
    assert model["value_per_referral_from"].endswith("before the as-of"), model
    assert model["expected_referrals_from"].startswith(("BG/NBD", "NBD, ")), model
    assert {"value_credibility_kappa", "referral_rate_per_month", "currency"} <= set(model)
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "cev_is_the_sum"]
    assert check.passed


def test_one_version_holds_every_mart(engagement, spark_run):
    """Published once, after everything: one snapshot with the value and engagement marts."""
    _, published, _, _, _ = engagement
    record = lake.current(spark_run[3])
    assert record["snapshot_id"] == 1
    assert {
        "customer_rfm",
        "customer_value",
        "model_fit",
        "engagement_value",
        "customer",
        "audiences",
    } <= set(record["marts"])
    assert sorted(record["marts"]) == sorted(published)


def test_exact_quantile_beyond_the_driver_limit(spark, monkeypatch):
    """Above ALL_TO_DRIVER values the cut comes from a narrow band around its ranks; it is still
    the exact linear quantile, ties and all."""
    from engagement_box.spark import engagement as spark_engagement

    monkeypatch.setattr(spark_engagement, "ALL_TO_DRIVER", 50)
    values = [float(v % 97) * 1.5 + (v % 7) / 3 for v in range(2_001)]
    frame = spark.createDataFrame([(v,) for v in values], "clv double")
    for q in (0.5, 0.9):
        expected = pl.Series(values).quantile(q, "linear")
        assert spark_engagement.exact_quantile(frame, "clv", q) == expected, q
    assert spark_engagement.exact_quantile(frame.filter("clv < 0"), "clv", 0.5) is None


def test_influence_by_joins_equals_the_sparse_ledger(spark):
    """CIV by two-hop joins equals `influence.customer_influence_value` on a network with loops,
    a customer reacting to two others, a negative CLV and a reaction type that does not count."""
    from engagement_box.engagement.config import EngagementSettings
    from engagement_box.engagement.influence import customer_influence_value
    from engagement_box.spark.engagement import influence

    social = pl.DataFrame(
        {
            "actor_customer_id": ["E", "B", "D", "D", "A", "C", "C", "F", "A"],
            "target_customer_id": ["A", "A", "A", "B", "B", "A", "F", "C", "A"],
            "event_type": [
                "like",
                "like",
                "comment",
                "comment",
                "share",
                "like",
                "like",
                "like",
                "like",
            ],
        }
    )
    clv = pl.DataFrame({"customer_id": list("ABCDEF"), "clv": [200.0, 120, -80, 50, 100, 30]})
    settings = EngagementSettings(civ_beta=0.4, civ_attribution_share=0.3)
    expected = customer_influence_value(social, clv, settings)
    got = influence(
        spark.createDataFrame(social.to_arrow()),
        spark.createDataFrame(clv.to_arrow()),
        settings,
    )
    got = pl.from_arrow(got.toArrow()).select(expected.columns)
    assert_same_rows(expected, got, ["customer_id"])


def test_a_step_registers_the_lake_again_only_when_the_session_lacks_it(engagement, spark_run):
    """Steps in the run's process reuse the session's tables; a missing or moved table makes the
    step register the lake's tables again (as a step in a new process does)."""
    from assets.spark import _session_holds, lake_tables

    _, tables, _, lake_dir, _ = spark_run
    assert _session_holds(tables)
    tables.drop("work.customer")
    assert not _session_holds(tables)
    again = lake_tables(tables.spark, lake_dir)
    assert _session_holds(again)
    assert again.spark.table("work.customer").count() == engagement[2]["customer"].height


def test_personas_keep_the_model_in_force_between_runs(engagement, spark_run, tmp_path):
    """The first run stored its fitted model in the lake. A run within
    ENGAGEMENT_PERSONA_REFIT_DAYS assigns with it (not fitted again: its centres and
    standardisation stay those stored, though the features moved); a run when it is that old
    fits again and stores the new model as fitted then."""
    import shutil

    from pyspark.sql import functions as F

    from engagement_box.spark import personas as spark_personas

    _, tables, _, lake_dir, result = spark_run
    (event,) = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["spark", "engagement_marts"]
    ]
    assert event["persona_computation"].value == "refit"
    assert "no persona model stored yet" in event["persona_computation_reason"].value
    lake_copy = tmp_path / "lake"
    shutil.copytree(lake_dir / "models", lake_copy / "models")
    (stored,) = pl.read_parquet(lake_copy / spark_personas.MODEL_FILE).to_dicts()
    assert stored["as_of"] == stored["fitted_as_of"] == AS_OF
    inputs, model_json = json.loads(stored["inputs"]), stored["model"]
    first = personas.PersonaModel.from_json(model_json)
    spark = tables.spark
    values = spark.table("work.engagement_value").withColumn("clv", F.col("clv") * 3 + 7)
    rfm_rows = spark.table("work.customer_rfm").filter(F.col("as_of") == F.lit(AS_OF))

    later = AS_OF + dt.timedelta(days=20)
    assignments, profiles, info = spark_personas.personas_in_force(
        spark, lake_copy, values, rfm_rows, later, inputs, refit_days=30
    )
    in_force = info["persona_model_in_force"]
    assert not in_force.refit and in_force.fitted_as_of == AS_OF, in_force.reason
    assert info["persona_model"].to_json() == model_json
    assert info["persona_fit_rows"] == 0
    assert assignments.count() == engagement[2]["customer_persona"].height
    assert profiles.count() == first.k

    much_later = AS_OF + dt.timedelta(days=30)
    _, _, info = spark_personas.personas_in_force(
        spark, lake_copy, values, rfm_rows, much_later, inputs, refit_days=30
    )
    in_force = info["persona_model_in_force"]
    assert in_force.refit and "30 days old" in in_force.reason
    refitted = info["persona_model"]
    assert refitted.to_json() != model_json and info["persona_fit_rows"] > 0
    rows = pl.read_parquet(lake_copy / spark_personas.MODEL_FILE).sort("as_of")
    assert rows["as_of"].to_list() == [AS_OF, later, much_later]
    assert rows["fitted_as_of"].to_list() == [AS_OF, AS_OF, much_later]


def test_referrals_between_two_new_customers_are_judged_as_the_duckdb_engine_does(spark):
    """Two customers referring each other (at two times, and at one time, as an export of
    dates gives it), a referral with no referrer and one sent by a referee before being
    referred: the Spark engine's outcomes, whose rule needs each referee's own first referral
    from the whole table, equal the library's."""
    from engagement_box.engagement.config import EngagementSettings
    from engagement_box.spark.engagement import referral_value

    day = dt.datetime(2025, 3, 10)
    rows = [
        ("m1", "X1", "X2", day.replace(hour=10), day.replace(hour=11)),
        ("m2", "X2", "X1", day.replace(hour=12), day.replace(hour=13)),
        ("t1", "Y1", "Y2", day, day),
        ("t2", "Y2", "Y1", day, day),
        ("n1", None, "Z1", day, day),
        ("e1", "Z2", "Q1", day.replace(hour=8), None),
        ("e2", "X1", "Z2", day.replace(hour=9), day.replace(hour=9)),
        ("9", "W1", "W2", day, day),  # numbered ids: 9 was sent before 10
        ("10", "W2", "W1", day, day),
    ]
    referrals = pl.DataFrame(
        rows,
        schema={"referral_id": pl.String, "referrer_customer_id": pl.String,
                "referee_customer_id": pl.String, "referred_at": pl.Datetime("us"),
                "converted_at": pl.Datetime("us")},
        orient="row",
    ).with_columns(
        pl.lit(5.0).alias("referrer_reward"), pl.lit(5.0).alias("referee_reward"),
        pl.lit(None, dtype=pl.Boolean).alias("would_have_joined_anyway"),
    )  # fmt: skip
    as_of = dt.date(2025, 6, 30)
    expected = referral.outcome_counts(referral.referral_outcomes(referrals, as_of))
    outcomes = referral.referral_outcomes(referrals, as_of)
    assert dict(zip(outcomes["referral_id"], outcomes["outcome"], strict=True))["9"] == "credited"
    assert expected["referee_already_customer"] == 4 and expected["credited"] == 3
    people = sorted({c for r in rows for c in r[1:3] if c})
    clv = pl.DataFrame({"customer_id": people, "clv": [100.0] * len(people)})
    since = pl.DataFrame({"customer_id": people, "since": [dt.datetime(2025, 3, 10)] * len(people)})
    frames = [spark.createDataFrame(f.to_arrow()) for f in (referrals, clv, since)]
    customers = spark.createDataFrame(clv.select("customer_id").to_arrow())
    _, info = referral_value(
        spark, frames[0], frames[1], customers, frames[2], EngagementSettings(), as_of
    )
    assert info["referral_outcomes"] == expected


def test_the_publish_step_applies_the_retention_policy_to_the_lake(spark_run, tmp_path):
    """Each Spark publish ends with the DuckDB engine's policy: with one version kept, the
    run's earlier version leaves the sessions attached after it, and the step says so."""
    import shutil

    import dagster as dg

    from assets.spark import spark_published_marts
    from pipelines.resources import LakeResource, ModelSettings, RetentionPolicy

    lake_copy = tmp_path / "lake"
    shutil.copytree(spark_run[3], lake_copy, symlinks=True)
    resources = {
        "lake_dir": LakeResource(lake_dir=str(lake_copy)),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        "retention": RetentionPolicy(keep_versions=0, keep_days=400),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        refused = dg.materialize(
            [spark_published_marts], resources=resources, instance=instance, raise_on_error=False
        )
    assert not refused.success  # a policy given in the run's config is refused before publishing
    assert lake.current(lake_copy)["snapshot_id"] == 1
    resources["retention"] = RetentionPolicy(keep_versions=1, keep_days=400)
    # A table's earlier write (each write is a new folder) and a stopped write's pointer: kept
    # until the lake was cleaned, a full copy of the tables per run (a review).
    table = lake_copy / "tables" / "work.customer"
    current = (table / "_current").read_text(encoding="utf-8").strip()
    shutil.copytree(table / current, table / "0123abcd")
    (table / ".current.0123abcd").write_text("0123abcd", encoding="utf-8")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([spark_published_marts], resources=resources, instance=instance)
    assert result.success
    (said,) = [e.materialization.metadata for e in result.get_asset_materialization_events()]
    assert said["snapshot_id"].value == 2
    assert said["expired_now"].value == [1] and said["versions_retained"].value == 1
    assert said["superseded_table_writes_deleted"].value >= 1
    assert sorted(p.name for p in table.iterdir()) == sorted([current, "_current"])
    for pointer in (lake_copy / "tables").glob("*.*/_current"):  # one write each, the current
        written = {p.name for p in pointer.parent.iterdir()} - {"_current"}
        assert written == {pointer.read_text(encoding="utf-8").strip()}, pointer.parent
    reader = duckdb.connect()
    lake.attach(reader, lake_copy)
    assert reader.execute(
        "SELECT DISTINCT snapshot_id FROM marts.history_customer_value"
    ).fetchall() == [(2,)]
    assert lake.snapshot_ids(lake_copy) == [1, 2]  # version 1's folders stay for a day
    # The inputs the tables were computed from go with a version published by the run that
    # computed them (a later run with nothing new finds them), not by a publish run alone:
    # another run may have written some of the tables since, with other settings.
    assert "inputs_fingerprint" in lake.current(spark_run[3])["settings"]
    assert "inputs_fingerprint" not in lake.current(lake_copy)["settings"]


def test_tables_that_failed_a_blocking_check_are_not_published_by_a_later_run(spark_run, tmp_path):
    """Dagster stops the steps after a failed blocking check in that run only: the steps with
    blocking checks record what their tables failed in the lake, and a later run of only the
    steps after them (here the publish) refuses those tables, as it refuses tables a step
    stopped before checking."""
    import shutil

    import dagster as dg

    from assets.spark import AUDIENCES_KEY, require_checks_passed, spark_published_marts
    from engagement_box.spark.tables import UNFINISHED, record_checks
    from pipelines.resources import LakeResource, ModelSettings, RetentionPolicy

    lake_dir = spark_run[3]
    recorded = json.loads((lake_dir / "tables" / "_checks.json").read_text())
    assert recorded == {"spark/engagement_marts": [], "spark/marts": [], "spark/staging": []}

    lake_copy = tmp_path / "lake"
    shutil.copytree(lake_dir, lake_copy, symlinks=True)
    resources = {
        "lake_dir": LakeResource(lake_dir=str(lake_copy)),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        "retention": RetentionPolicy(keep_versions=5, keep_days=400),
    }

    def publish_alone() -> str | None:
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(
                [spark_published_marts],
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
        failures = [e for e in result.all_events if e.is_step_failure]
        return " | ".join(f.step_failure_data.error.message for f in failures) or None

    record_checks(lake_copy, "spark/marts", ["orders_left_out_within_limit"])
    said = publish_alone()
    assert said is not None
    assert (
        "spark/marts failed its blocking check(s) orders_left_out_within_limit when it last "
        "ran: the tables it wrote are neither read by the steps after it nor published" in said
    ), said
    assert (
        f"run the whole job spark_pipeline ({settings.spark_job_command()}, or the job in the UI)"
        in said
    ), said
    assert lake.current(lake_copy)["snapshot_id"] == 1

    record_checks(lake_copy, "spark/marts", [])
    record_checks(lake_copy, "spark/engagement_marts", [UNFINISHED])
    said = publish_alone()
    assert said is not None and "spark/engagement_marts stopped before it checked" in said
    assert lake.current(lake_copy)["snapshot_id"] == 1
    with pytest.raises(dg.Failure, match="spark/engagement_marts stopped before"):
        require_checks_passed(lake_copy, AUDIENCES_KEY)  # the audiences step too

    # a lake an earlier release wrote (no record of checks): its tables count as unchecked
    (lake_copy / "tables" / "_checks.json").unlink()
    said = publish_alone()
    assert said is not None
    assert "spark/marts has not recorded the checks of its tables in this lake" in said, said
    assert lake.current(lake_copy)["snapshot_id"] == 1

    for step in ("spark/staging", "spark/marts", "spark/engagement_marts"):
        record_checks(lake_copy, step, [])  # the steps ran again and passed
    assert publish_alone() is None
    assert lake.current(lake_copy)["snapshot_id"] == 2

    # An erase deletes the working tables (they held the person): publishing alone said the
    # steps "never ran here, or ran under a release before 2026-12-05" (a re-review)
    shutil.rmtree(lake_copy / "tables")
    said = publish_alone()
    assert said is not None and "holds no working tables" in said, said
    assert "an erase deleted them" in said and "never ran here" not in said, said
    assert lake.current(lake_copy)["snapshot_id"] == 2


def test_personas_assigned_with_a_stored_model_equal_the_duckdb_engine(spark):
    """Between refits both engines assign with the model in force: the same personas, and the
    profile's z-scores over the version's own buyers (0 = their mean), not the fit's scale."""
    from engagement_box.spark import personas as spark_personas
    from tests.test_personas import _three_groups

    fitted = personas.build_personas(_three_groups(seed=4), personas.PersonaSettings(k_min=2))
    later = _three_groups(seed=5).with_columns(
        pl.col("total_spend") * 8, pl.col("clv") * 8, pl.col("days_since_last_order") + 200
    )
    expected_assignments, expected_profiles = personas.assign_personas(later, fitted.model)
    values = later.select("customer_id", "clv", "crv", "civ", "ckv", "social_points")
    rfm_rows = later.select(
        "customer_id", "days_since_last_order", "order_count", "total_spend"
    ).with_columns(pl.lit("Champions").alias("segment"))
    assignments, profiles, info = spark_personas.personas(
        spark,
        spark.createDataFrame(values.to_arrow(compat_level=pl.CompatLevel.oldest())),
        spark.createDataFrame(rfm_rows.to_arrow(compat_level=pl.CompatLevel.oldest())),
        model=fitted.model,
    )
    assert info["persona_fit_rows"] == 0  # assigned, not fitted
    assert_same_rows(expected_assignments, pl.from_arrow(assignments.toArrow()), ["customer_id"])
    got = pl.from_arrow(profiles.toArrow())
    assert_same_rows(expected_profiles, got, ["persona_id"])
    sizes = got.sort("persona_id")["size"].to_numpy()
    for name in personas.DEFAULT_FEATURES:
        z = got.sort("persona_id")[f"z_{name}"].to_numpy()
        assert abs(float((z * sizes).sum())) < 1e-9, name


def test_the_sources_check_and_the_persona_inputs_are_the_duckdb_engines(engagement, spark_run):
    """The partial-retailer check (`engagement_sources_are_current`, a warning) and the persona
    model's sources, on Spark as on DuckDB: the Spark engine had neither (stop 71 left it)."""
    from assets.engagement import SOURCES_CHECK
    from engagement_box.engagement import coverage
    from engagement_box.spark import personas as spark_personas

    con, _, _, lake_dir, result = spark_run
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == SOURCES_CHECK]
    assert check.asset_key.path == ["spark", "engagement_marts"]
    assert check.passed and check.severity.value == "WARN", check.description
    duck = coverage.coverage(con, AS_OF)
    assert check.metadata["sources"].value == {c.source: c.report(AS_OF) for c in duck}
    assert all(c.rows > 0 for c in duck)
    (stored,) = pl.read_parquet(lake_dir / spark_personas.MODEL_FILE).to_dicts()
    assert json.loads(stored["inputs"])["sources"] == ["referrals", "reviews", "social"]


def test_a_missing_or_ended_source_is_said_as_the_duckdb_engine_says_it(session, tmp_path):
    """A lake whose referrals staged nothing and whose social export ended a year before: the
    Spark engine's coverage is the DuckDB engine's, to the as-of's last second."""
    from pyspark.sql.types import StructField, StructType, TimestampNTZType

    from engagement_box.engagement import coverage
    from engagement_box.spark import engagement as spark_engagement
    from engagement_box.spark.tables import SparkTables
    from tests.test_engagement_sources import AS_OF as AS_OF_HERE
    from tests.test_engagement_sources import staged

    days = {
        "referrals": ("referred_at", []),
        "social": ("occurred_at", [dt.datetime(2024, 12, 30, 9), dt.datetime(2024, 6, 1)]),
        "reviews": ("created_at", [dt.datetime(2025, 12, 31, 23, 59, 59), dt.datetime(2026, 1, 1)]),
    }
    tables = SparkTables(session, tmp_path / "lake")
    for name, (column, stamps) in days.items():
        schema = StructType([StructField(column, TimestampNTZType())])
        tables.save(f"staging.{name}", session.createDataFrame([(s,) for s in stamps], schema))

    found = spark_engagement.source_coverage(tables, AS_OF_HERE)

    duck = coverage.coverage(
        staged(tmp_path, **{name: stamps for name, (_, stamps) in days.items()}), AS_OF_HERE
    )
    assert found == duck
    assert [(c.source, c.rows) for c in found] == [("referrals", 0), ("social", 2), ("reviews", 1)]
