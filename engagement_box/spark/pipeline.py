"""The graph's steps on Spark, each from the same sql/ files or domain code as the DuckDB engine.

staging (`spark/staging.py`) -> identity (`intermediate/*` of `identity/links.BUILD_STATEMENTS`)
-> the orders per customer and day (`work/buyer_days.sql` over `intermediate.orders_resolution`,
dated rates from `work/insert_reporting_rates.sql`) -> the customer summary
(`work/customer_summary.sql` over them) -> RFM (`spark/value.py`). No Dagster import.
"""

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl

from engagement_box.identity.links import (
    BUILD_STATEMENTS,
    build_statements,
    max_profiles_per_key,
)
from engagement_box.spark.sql import (
    CURRENCY_MACROS,
    IDENTITY_MACROS,
    load_spark_sql,
    run,
    transpile,
)
from engagement_box.spark.staging import (
    INGESTED_FILES_SCHEMA,
    SparkIngestReport,
    ingested_files_rows,
    stage_source,
    validated_table,
)
from engagement_box.spark.tables import SparkTables, current_folder, describe
from engagement_box.sql import sql_template
from engagement_box.staging import contracts, reading
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import PROFILE_SOURCE
from engagement_box.value import summary


class ReconciliationError(Exception):
    """Rows read differ from rows staged + quarantined: nothing is published."""


def stage_all(
    tables: SparkTables,
    data_dir: Path,
    run_id: str,
    at: datetime,
    erased: tuple[frozenset[str], str] = (frozenset(), ""),
    digests: dict[str, str] | None = None,
    code: str = "",
    reuse: bool = True,
    profile_keys: list[tuple[str, str, str]] | None = None,
    max_profiles: int | None = None,
) -> dict[str, SparkIngestReport]:
    """Every source staged as `staging.<source>`, bad rows in `staging.quarantine`, the rows of
    people erased before left out (`erased`: `erasure.read_register`); fails before writing the
    quarantine if a source's rows do not reconcile. `digests`: the export files' sha256 by
    path, when the run hashed them already. `code` (`inputs.staging_code`) and `reuse`: a file
    validated before from the same content, erasures and code is not read again unless
    `reuse` is False (`staging.ValidatedFiles`).

    The customers are staged first: the email and handles of a profile erased by its customer
    id are erased with it (`erasure.profile_keys_erased`; `profile_keys`: the keys of erased
    profiles the register lists, `erasure.register_profile_keys`; `max_profiles`: the
    placeholder limit), so every source's rows carrying them are left out, counted as erased
    (`_stage_customers`)."""
    refuse_broken_exports(data_dir)
    reports, quarantines = {}, {}
    more: frozenset[str] = frozenset()
    for name in (PROFILE_SOURCE, *(n for n in SOURCES if n != PROFILE_SOURCE)):
        describe(tables.spark, f"staging {name}")
        if name == PROFILE_SOURCE:
            staged, quarantine, report, more = _stage_customers(
                tables, data_dir, run_id, at, erased, digests, code, reuse, profile_keys or [],
                max_profiles_per_key(max_profiles),
            )  # fmt: skip
        else:
            with_keys = (erased[0] | more, erased[1]) if more else erased
            staged, quarantine, report = stage_source(
                tables, data_dir, name, run_id, at, with_keys, digests, code, reuse
            )
            _check_reconciled(name, report)
            tables.save(f"staging.{name}", staged)
        quarantines[name] = quarantine
        reports[name] = report
    reports = {name: reports[name] for name in SOURCES}
    quarantines = [quarantines[name] for name in SOURCES]
    quarantine = quarantines[0]
    for other in quarantines[1:]:
        quarantine = quarantine.unionByName(other)
    describe(tables.spark, "staging quarantine")
    tables.save("staging.quarantine", quarantine)  # its rows per reason: in each report
    # when each file's content was staged: a later customers file's consent wins by it
    # (`apply_later_consents`)
    tables.save(
        "staging.ingested_files",
        tables.spark.createDataFrame(ingested_files_rows(tables.lake), INGESTED_FILES_SCHEMA),
    )
    # The keys of the erased profiles this staging read and left out: identity counts them on
    # their keys (`build_identity`), as the DuckDB engine's ingest records them, so a warehouse
    # whose register lists none (erased before registers listed keys) still counts them.
    carriers = reports["customers"].erased_profile_keys if "customers" in reports else []
    if carriers:
        tables.save(READ_CARRIERS_TABLE, tables.spark.createDataFrame(carriers, CARRIER_SCHEMA))
    else:
        tables.remove(READ_CARRIERS_TABLE)
    for name in SOURCES:  # what releases before 2026-12-06 left: validated rows in one table
        tables.remove(validated_table(name))
    return reports


def _check_reconciled(name: str, report: SparkIngestReport) -> None:
    if not report.holds:
        raise ReconciliationError(
            f"{name}: read {report.rows_read} rows but staged {report.rows_staged}, "
            f"quarantined {report.rows_quarantined} and erased {report.rows_erased}; "
            "nothing was published"
        )


# `<lake>/erased_profile_keys.json`: the hashes of every key a staging erased with the profiles
# erased by their id, and the fingerprint of the salt that made them. Outside `tables/` (an
# erasure deletes those). The keys stay erased for good, as the DuckDB engine keeps them
# (`staging.erased_profile_keys`): a profile the retailer deleted after it was read is not in
# the next export, and its keys are not found again. A staging that finds no new keys stages
# the customers once, and the files validated with them are used again.
PROFILE_KEYS_FILE = "erased_profile_keys.json"


def _kept_profile_keys(record: Path, salt: str) -> frozenset[str]:
    """The key hashes `record` (`PROFILE_KEYS_FILE`) keeps; none when there is no record. One
    that cannot be read, or was made with another salt, fails the staging: going on without it
    would stage again the rows of the people whose profiles are no longer exported."""
    from engagement_box.governance import erasure

    if not record.exists():
        return frozenset()
    try:
        kept = json.loads(record.read_text(encoding="utf-8"))
        keys = frozenset(str(key) for key in kept["key_hashes"])
        made_with = kept.get("salt")  # none in a record from before it was kept
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise erasure.ErasureError(
            f"{record}: the keys erased with the profiles erased by their customer id cannot be "
            f"read ({error}); without them those people's social events, guest orders and "
            "reviews would be staged again. Put the file back from a backup, or delete it when "
            "every such profile is still in the customers export (their keys are found again); "
            "nothing was staged"
        ) from None
    if keys and made_with is not None and made_with != erasure.salt_fingerprint(salt):
        raise erasure.SaltMismatch(
            f"{record}: the keys erased with the profiles erased by their customer id were "
            f"hashed with another salt than the register's; set {erasure.SALT_ENV} to the salt "
            "used for them. Nothing was staged"
        )
    return keys


def _stage_customers(
    tables: SparkTables,
    data_dir: Path,
    run_id: str,
    at: datetime,
    erased: tuple[frozenset[str], str],
    digests: dict[str, str] | None,
    code: str,
    reuse: bool,
    profile_keys: list[tuple[str, str, str]],
    limit: int,
):
    """(staged, quarantine, report, key hashes) of the customers, `staging.customers` saved:
    the email and handles of the profiles erased by their customer id that the staging reads
    (`erasure.profile_keys_erased`, placeholders left) are erased with them, and with those
    every staging before found (`PROFILE_KEYS_FILE`: kept for good, the profile may be gone
    from the export). They are known once the profiles are read: the customers are staged
    again with them when they are not those already kept, so a duplicate profile of the person
    carrying them is left out too; the other sources are staged with them (`stage_all`).
    A Spark user's review: an erasure by customer id after the lake's tables went could not
    read the person's email and handles, and the next run staged their social events by handle
    and their guest orders by email."""
    from engagement_box.governance import erasure
    from engagement_box.spark.tables import write_json

    hashes, salt = erased
    record = tables.lake / PROFILE_KEYS_FILE
    # the keys found before stay erased: the profiles that carried them may not be read again
    kept = _kept_profile_keys(record, salt) if hashes else frozenset()
    more = kept
    for _ in range(3):  # the keys found depend on the profiles read, not on those left out
        with_keys = (hashes | more, salt) if more else erased
        staged, quarantine, report = stage_source(
            tables, data_dir, PROFILE_SOURCE, run_id, at, with_keys, digests, code, reuse
        )
        _check_reconciled(PROFILE_SOURCE, report)
        tables.save(f"staging.{PROFILE_SOURCE}", staged)
        if not hashes:
            break

        def staged_carriers(least: int) -> dict[tuple[str, str], int]:
            rows = tables.run(
                ["erasure/profile_key_carriers"],
                IDENTITY_MACROS,
                values={"least": least, "salt": salt},
            ).collect()
            return {(r["key_type"], r["key_hash"]): int(r["profiles"]) for r in rows}

        carriers = [*profile_keys, *report.erased_profile_keys]
        found = frozenset(erasure.profile_keys_erased(carriers, hashes, limit, staged_carriers))
        found |= kept
        if found == more:
            break
        more = found
    if hashes:
        write_json(record, {"salt": erasure.salt_fingerprint(salt), "key_hashes": sorted(more)})
    return staged, quarantine, report, more


def refuse_broken_exports(data_dir: Path) -> None:
    """Fail before anything is staged when files of any source cannot be taken in, naming every
    such file of every source (`reading.check_headers`, then every file's rows when one is
    refused, as the DuckDB engine's steps check them, each source its own step; a source whose
    files are refused for their rows alone is found by its staging, as before). The sources
    were staged one after another, and the first refusal stopped the run: a review fixed a
    broken orders file, ran again, and only then learnt of a broken reviews file (a Spark run
    each)."""
    refused, passed = [], {}
    for source in SOURCES.values():
        try:
            exports = reading.discover_files(Path(data_dir), source)
            reading.check_headers(exports, source, rows=True)
        except contracts.IngestError as error:
            refused.append(str(error))
        else:
            passed[source.name] = exports
    if refused:  # the run fails: the other sources' rows are read too, to name their files
        for name, exports in passed.items():
            said = sorted(str(error) for error in reading.rows_refused(exports, SOURCES[name]))
            if said:
                refused.append(str(reading.refused_error(said, SOURCES[name])))
    if len(refused) == 1:
        raise contracts.IngestError(refused[0])
    if refused:
        raise contracts.IngestError(
            f"files of {len(refused)} sources cannot be taken in; nothing was staged:\n"
            + "\n".join(refused)
        )


CARRIERS_TABLE = "staging.erased_profile_keys"
READ_CARRIERS_TABLE = "staging.erased_profiles_read"  # written by `stage_all`
CARRIER_SCHEMA = "profile_hash string, kind string, key_hash string"


def build_identity(
    tables: SparkTables,
    max_profiles: int | None = None,
    erased: tuple[list[tuple[str, str, str]], str] = ([], ""),
) -> None:
    """customer_merge, resolved_customers, identity_links and the four resolution views
    (max_profiles: the placeholder limit, `links.max_profiles_per_key`). `erased`: the keys
    erased profiles carried (profile hash, kind, key hash) and the salt that hashed them
    (`erasure.register_profile_keys`), counted on their keys as the DuckDB engine counts them,
    with those of the erased profiles the staging read (`stage_all`, the same salt)."""
    spark = tables.spark
    listed, salt = erased
    rows = {tuple(row) for row in listed}
    if spark.catalog.tableExists(READ_CARRIERS_TABLE):
        rows |= {tuple(row) for row in tables.table(READ_CARRIERS_TABLE).collect()}
    if rows:
        tables.save(CARRIERS_TABLE, spark.createDataFrame(sorted(rows), CARRIER_SCHEMA))
    tables.run(
        build_statements(salt if rows else None),
        IDENTITY_MACROS,
        values={"max_profiles_per_key": max_profiles_per_key(max_profiles), "salt": salt},
        before={
            "intermediate.customer_merge": lambda: component_labels(
                spark.table("customer_merge_edges")
            ).createOrReplaceTempView("customer_merge_labels")
        },
    )
    apply_later_consents(tables)


def later_consents(tables: SparkTables):
    """The staged profiles whose marketing consent a later customers file changed (a
    withdrawal, or a re-consent after it: the latest file's word wins), as the DuckDB engine
    finds them (`sql/staging/later_profile_consents.sql` over the lake's staged customers, their
    quarantined repeats and `staging.ingested_files`). None before a staging of this lake
    recorded its files (the session's catalog may name another lake's table)."""
    if current_folder(tables.lake, "staging.ingested_files") is None:
        return None
    text = sql_template("staging/later_profile_consents").format(content="f.content_taken_in")
    (query,) = transpile(text, ())
    return tables.spark.sql(query.sql)


def apply_later_consents(tables: SparkTables) -> int:
    """The merged persons' marketing consent where a later customers file changed a profile's
    (`later_consents`), by `sql/intermediate/later_consent_persons.sql` (the DuckDB engine's
    statement): `intermediate.resolved_customers` written again with it when any person's
    changed. Returns the persons whose consent was computed again."""
    from pyspark.sql import functions as F

    later = later_consents(tables)
    if later is None:
        return 0
    later.select("customer_id", "marketing_consent").createOrReplaceTempView("later_consents")
    (statement,) = load_spark_sql("intermediate/later_consent_persons")
    consent = (
        tables.spark.sql(statement.sql)
        .withColumnRenamed("marketing_consent", "later_consent")
        .cache()
    )  # few rows (the persons a later file changed), read twice
    persons = consent.count()
    if not persons:
        return 0
    resolved = tables.table("intermediate.resolved_customers")
    columns = [
        F.coalesce("later_consent", "marketing_consent").alias(c) if c == "marketing_consent" else c
        for c in resolved.columns
    ]
    tables.save(
        "intermediate.resolved_customers",
        resolved.join(F.broadcast(consent), "customer_id", "left").select(*columns),
    )
    consent.unpersist()
    return persons


def restore(tables: SparkTables) -> None:
    """The lake's tables and the identity views, in a session that did not build them."""
    from engagement_box.spark.sql import load_spark_sql as load

    tables.restore()
    for name in BUILD_STATEMENTS:
        for st in load(name, IDENTITY_MACROS):
            if st.kind == "view" and st.target.startswith("intermediate."):
                tables.execute(st)


def as_of_date(tables: SparkTables, pinned: date | None, run_day: date) -> date:
    """The observation end: ENGAGEMENT_AS_OF when set, else the day of the last completed
    order; never past the run's day."""
    (last_day,) = load_spark_sql("staging/last_completed_order_day")
    row = tables.spark.sql(last_day.sql).collect()[0][0]
    if row is None and pinned is None:
        raise ValueError("no completed orders are staged: nothing to model")
    return min(pinned or row, run_day)


def component_labels(edges):
    """(rank, label): every node of the graph `edges` (from_rank, to_rank; both directions)
    with the smallest rank of its connected component (what the DuckDB engine's
    `identity/components.py` computes with scipy on one machine).

    FastSV (Zhang, Azad and Hu, "FastSV: a distributed-memory connected component algorithm
    with fast convergence", 2020), a Shiloach-Vishkin variant: f is each node's label (a node's
    rank, never above its own) and gf = f[f] its grandparent. Each round every node u offers
    the smallest gf of its neighbours, m(u), to its parent f[u] (hooking a tree's root under
    the smaller tree, stochastic hooking) and to itself (aggressive hooking), and takes its
    grandparent (shortcutting); each node keeps the smallest label offered. It stops when a
    round changes no label: every label is then a root (f = gf) and equals its neighbours', so
    a component has one label, its first node's rank. About log n rounds for a chain of n
    profiles in any rank order (1,000: 12 rounds, 10,000: 15), where moving labels one edge per
    round took a round, a Spark job, per profile of the chain (1,000 in a shuffled order: 228
    rounds with a shortcut each round, 140 s)."""
    from pyspark.sql import functions as F

    # The edges are a query (a view over the profiles): computed once, not once per round.
    edges = edges.localCheckpoint()
    labels = edges.select(F.col("from_rank").alias("rank"), F.col("from_rank").alias("label"))
    labels = labels.distinct().localCheckpoint()
    no_old = F.lit(None).cast(labels.schema["label"].dataType).alias("old")
    while True:
        grand = (
            labels.alias("n")
            .join(labels.alias("p"), F.col("n.label") == F.col("p.rank"))
            .select(F.col("n.rank").alias("rank"), F.col("p.label").alias("offer"))
        )
        smallest = (
            edges.join(grand, edges.to_rank == grand.rank)
            .groupBy(F.col("from_rank").alias("rank"))
            .agg(F.min("offer").alias("offer"))
        )
        hooked = (
            labels.join(smallest, "rank")
            .groupBy(F.col("label").alias("rank"))
            .agg(F.min("offer").alias("offer"))
        )
        # Each node's new label and its old one in one aggregate, so whether a label fell
        # needs no join.
        new = (
            labels.select("rank", F.col("label").alias("offer"), F.col("label").alias("old"))
            .unionByName(hooked.select("rank", "offer", no_old))
            .unionByName(smallest.select("rank", "offer", no_old))
            .unionByName(grand.select("rank", "offer", no_old))
            .groupBy("rank")
            .agg(F.min("offer").alias("label"), F.min("old").alias("old"))
        ).localCheckpoint()
        labels = new.select("rank", "label")
        if new.filter(F.col("label") < F.col("old")).isEmpty():
            return labels


def reporting_rates(tables: SparkTables, currency: str) -> None:
    """The dated rates per currency and day (`work/insert_reporting_rates.sql`)."""
    tables.ensure_schema("work")
    (check,) = load_spark_sql("work/reporting_currency_rates")
    problem = summary.export_rates_problem(
        currency, run(tables.spark, check.sql, {"currency": currency}).first()
    )
    if problem:
        raise ValueError(problem)
    (jumps,) = load_spark_sql("work/fx_rate_jumps")
    found = run(
        tables.spark, jumps.sql, {"currency": currency, "max_jump": summary.MAX_RATE_JUMP}
    ).collect()
    problem = summary.rate_jumps_problem(currency, [tuple(r) for r in found])
    if problem:
        raise ValueError(problem)
    (insert,) = load_spark_sql("work/insert_reporting_rates")
    rows = run(tables.spark, insert.sql, {"currency": currency})
    tables.save("work.reporting_rates", rows)
    tables.spark.table("work.reporting_rates").createOrReplaceTempView("reporting_rates")


FX_TYPES = {"fx_currencies": "array<string>", "fx_rates": "array<decimal(38,10)>"}


def orders_left_out(
    tables: SparkTables, as_of: date, fx_currencies: list[str] | None
) -> tuple[dict[str, int], int]:
    """`value/summary.py::orders_left_out` on Spark (`work/orders_without_rate.sql`, after
    `reporting_rates`): completed orders up to `as_of` left out for want of an FX rate, per
    currency, and all completed orders up to `as_of`."""
    rows = tables.run(
        ["work/orders_without_rate"],
        CURRENCY_MACROS,
        values={"as_of": as_of, "fx_currencies": fx_currencies},
        types={"fx_currencies": "array<string>"},
    ).collect()
    left_out = {str(r["currency"]): int(r["left_out"]) for r in rows if r["left_out"]}
    return left_out, sum(int(r["completed"]) for r in rows)


def customers_left_out(tables: SparkTables, as_of: date, fx_currencies: list[str] | None):
    """`value/summary.py::customers_left_out` on Spark (`work/customers_without_rate.sql` over
    the resolved orders, after `reporting_rates`): the customers with completed orders up to
    `as_of` left out for want of an FX rate, as a DataFrame (customer_id, orders_left_out)."""
    return tables.run(
        ["work/customers_without_rate"],
        CURRENCY_MACROS,
        values={"as_of": as_of, "fx_currencies": fx_currencies},
        types={"fx_currencies": "array<string>"},
        customer_column="buyer_id",
        orders_schema="intermediate",
        orders_table="orders_resolution",
    )


def buyer_days(tables: SparkTables, fx_currencies: list[str] | None, fx_rates: list[float] | None):
    """`work/buyer_days.sql` over the resolved orders (completed orders per customer and day in
    the reporting currency), as a DataFrame: the one pass the summaries read."""
    return tables.run(
        ["work/buyer_days"],
        CURRENCY_MACROS,
        values={"fx_currencies": fx_currencies, "fx_rates": fx_rates},
        types=FX_TYPES,
        customer_column="buyer_id",
        orders_schema="intermediate",
        orders_table="orders_resolution",
    )


def customer_summary(
    tables: SparkTables,
    as_of: date,
    fx_currencies: list[str] | None,
    fx_rates: list[float] | None,
    start: date | None = None,
):
    """`work/customer_summary.sql` over `work.buyer_days` (built here), as a DataFrame."""
    tables.save("work.buyer_days", buyer_days(tables, fx_currencies, fx_rates))
    return tables.run(
        ["work/customer_summary"],
        values={"as_of": as_of, "start": start},
        types={"start": "date"},
        days_schema="work",
        days_table="buyer_days",
    )


def calibration_holdout(tables: SparkTables, calibration_end: date, as_of: date):
    """`work/calibration_holdout.sql` over `work.buyer_days`, as a DataFrame."""
    return tables.run(
        ["work/calibration_holdout"],
        values={"calibration_end": calibration_end, "as_of": as_of, "start": None},
        types={"start": "date"},
        days_schema="work",
        days_table="buyer_days",
    )


def cohort_retention(tables: SparkTables, as_of: date):
    """`work/cohort_retention.sql` over `work.buyer_days`, as a DataFrame."""
    return tables.run(
        ["work/cohort_retention"],
        values={"as_of": as_of},
        days_schema="work",
        days_table="buyer_days",
    )


def _spark_frame(spark, frame: pl.DataFrame):
    """A small driver-side table as a Spark DataFrame; a column with no value at all is text,
    as the DuckDB engine stores it (`partitioned.write_partition`)."""
    return spark.createDataFrame(frame.with_columns(pl.col(pl.Null).cast(pl.String)).to_arrow())


class NoModelChosen(Exception):
    """No purchase model or no Gamma-Gamma fit converged: nothing can be scored."""


def value_marts(
    tables: SparkTables,
    as_of: date,
    currency: str,
    fx_rates: dict[str, float],
    *,
    calibration_end: date | None = None,
    holdout_days: int | None = None,
    purchase_model: str | None = None,
    horizon_months: int | None = None,
    monthly_discount_rate: float | None = None,
    margin: float | None = None,
    penalizer: float | None = None,
) -> tuple[dict, dict]:
    """The value marts the Spark engine builds, as DataFrames (customer_rfm, customer_value,
    model_fit, model_validation, cohort_retention: the DuckDB engine's columns, in days), and
    what the fits said. `calibration_end` defaults to as_of - holdout_days (default: the setting
    ENGAGEMENT_HOLDOUT_DAYS's), as in the DuckDB engine; `purchase_model` pins the model
    (ENGAGEMENT_PURCHASE_MODEL). The CLV's horizon, discount rate and margin and the fits'
    penalizer default to their settings' values, as the DuckDB engine's steps read them (a
    review: copies of the defaults here would have a benchmark compare a run at the old rate
    with a run at a new default's)."""
    from datetime import timedelta

    from pyspark.sql import functions as F

    from engagement_box import settings
    from engagement_box.spark import value
    from engagement_box.value import marts as value_tables
    from engagement_box.value.summary import fx_parameters

    spark = tables.spark
    if holdout_days is None:
        holdout_days = settings.value("ENGAGEMENT_HOLDOUT_DAYS")
    if horizon_months is None:
        horizon_months = settings.value("ENGAGEMENT_CLV_HORIZON_MONTHS")
    if monthly_discount_rate is None:
        monthly_discount_rate = settings.value("ENGAGEMENT_MONTHLY_DISCOUNT_RATE")
    if margin is None:
        margin = settings.value("ENGAGEMENT_MARGIN")
    if penalizer is None:
        penalizer = settings.value("ENGAGEMENT_PENALIZER")
    calibration_end = calibration_end or as_of - timedelta(days=holdout_days)
    if calibration_end >= as_of:
        raise ValueError(f"calibration end {calibration_end} must be before the as-of {as_of}")
    reporting_rates(tables, currency)
    fx = fx_parameters(currency, fx_rates)
    left_out, completed = orders_left_out(tables, as_of, fx["fx_currencies"])
    summary = customer_summary(tables, as_of, fx["fx_currencies"], fx["fx_rates"])
    tables.save("work.customer_summary", summary)
    summary = spark.table("work.customer_summary")
    tables.save("work.calibration_holdout", calibration_holdout(tables, calibration_end, as_of))
    cal = spark.table("work.calibration_holdout")
    stamp = F.lit(as_of).alias("as_of")

    (signed_up,) = load_spark_sql("intermediate/customers_signed_up_by")
    customers = run(spark, signed_up.sql, {"as_of": as_of})
    # Buyers whose orders the summary left out for want of an FX rate are no prospects
    # (checkpointed: the counts and the RFM read the orders once).
    describe(spark, "value customers left out")
    buyers_left_out = customers_left_out(tables, as_of, fx["fx_currencies"]).localCheckpoint()
    n_left_out = buyers_left_out.count()
    valued = buyers_left_out.join(summary.select("customer_id"), "customer_id").count()
    people = {"customers_left_out": n_left_out - valued, "customers_partly_left_out": valued}
    describe(spark, "value rfm counts")
    rfm = value.score_rfm(spark, summary, customers, as_of, buyers_left_out).select("*", stamp)

    # The fits, on the driver, from grouped rows (days).
    describe(spark, "value grouped rows for the fits")
    spend_of = summary.select("frequency", F.col("monetary_value").cast("double"))
    purchases = value.grouped(summary, "frequency", "recency_days", "T_days")
    spend = value.grouped(spend_of, "frequency", "monetary_value")
    holdout = value.grouped(
        cal, "frequency", "recency_days", "T_days", "holdout_purchases", "holdout_days"
    )
    cal_spend = value.grouped(
        cal.select("frequency", F.col("monetary_value").cast("double")),
        "frequency",
        "monetary_value",
    )
    fits = {
        "full": value.fit_window(purchases, spend, penalizer),
        "calibration": value.fit_window(holdout, cal_spend, penalizer),
    }
    calibration_fits = {k: v for k, v in fits["calibration"].items() if k != "gamma_gamma"}
    comparison, reason = value_tables.comparison(
        value.holdout_frame(holdout), "D", purchase_model, calibration_fits
    )
    chosen = comparison.chosen if comparison else None
    ends = {"full": as_of, "calibration": calibration_end}
    # The Spark engine chooses on every run (the DuckDB engine's choice schedule,
    # engagement_box/value/choice.py, is not carried to the lake).
    fit_rows = value_tables.fit_table(
        fits,
        ends,
        "D",
        chosen,
        value.spend_correlation(spend),
        choice_as_of=as_of,
        choice_reason=reason if chosen else None,
    )
    model_fit = _spark_frame(spark, fit_rows.with_columns(pl.lit(as_of).alias("as_of")))

    full = fits["full"]
    gamma_gamma = full["gamma_gamma"]
    if chosen is None or not full[chosen].converged or not gamma_gamma.converged:
        raise NoModelChosen(
            f"no purchase model could be chosen and scored as of {as_of} ({reason}); "
            f"Gamma-Gamma: {gamma_gamma.message}"
        )
    cov, gg_cov = value.covariances(
        chosen, full[chosen].params, gamma_gamma.params, purchases, spend
    )
    scores = value.score(
        summary,
        chosen,
        full[chosen].params,
        gamma_gamma.params,
        cov,
        gg_cov,
        months=horizon_months,
        monthly_discount_rate=monthly_discount_rate,
        margin=margin,
    )
    customer_value = scores.select(
        "*",
        F.lit(chosen).alias("model"),
        F.lit("D").alias("time_unit"),
        F.lit(currency).alias("currency"),
        stamp,
    )
    validation, _ = value_tables.validation_table(comparison, calibration_end, as_of)
    model_validation = _spark_frame(spark, validation)
    cohorts = cohort_retention(tables, as_of).select("*", F.lit(currency).alias("currency"), stamp)
    marts = {
        "customer_rfm": rfm,
        "customer_value": customer_value,
        "model_fit": model_fit,
        "model_validation": model_validation,
        "cohort_retention": cohorts,
    }
    sizes = {
        "customers": int(value._column(purchases, "n").sum()),
        "purchase_rows": purchases.num_rows,
        "spend_rows": spend.num_rows,
        "calibration_rows": holdout.num_rows,
    }
    info = {
        "fit_rows": sizes,
        "chosen": chosen,
        "choice_reason": reason,
        "fits": fits,
        "bgnbd": full["bgnbd"],
        "gamma_gamma": gamma_gamma,
        "orders_left_out": left_out,
        "completed_orders": completed,
        "customers_left_out": people,
    }
    return marts, info
