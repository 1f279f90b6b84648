"""The graph's steps on Spark, each from the same sql/ files or domain code as the DuckDB engine.

staging (`spark/staging.py`) -> identity (`intermediate/*` of `identity/links.BUILD_STATEMENTS`)
-> the orders per customer and day (`work/buyer_days.sql` over `intermediate.orders_resolution`,
dated rates from `work/insert_reporting_rates.sql`) -> the customer summary
(`work/customer_summary.sql` over them) -> RFM (`spark/rfm.py`). No Dagster import.
"""

from datetime import date, datetime
from pathlib import Path

from engagement_box.identity.links import BUILD_STATEMENTS
from engagement_box.spark.sql import CURRENCY_MACROS, IDENTITY_MACROS, load_spark_sql, run
from engagement_box.spark.staging import SparkIngestReport, stage_source
from engagement_box.spark.tables import SparkTables
from engagement_box.staging.contracts import SOURCES


class ReconciliationError(Exception):
    """Rows read differ from rows staged + quarantined: nothing is published."""


def stage_all(
    tables: SparkTables, data_dir: Path, run_id: str, at: datetime
) -> dict[str, SparkIngestReport]:
    """Every source staged as `staging.<source>`, bad rows in `staging.quarantine`; fails before
    writing the quarantine if a source's rows do not reconcile."""
    reports, quarantines = {}, []
    for name in SOURCES:
        staged, quarantine, report = stage_source(tables.spark, data_dir, name, run_id, at)
        if not report.holds:
            raise ReconciliationError(
                f"{name}: read {report.rows_read} rows but staged {report.rows_staged} and "
                f"quarantined {report.rows_quarantined}; nothing was published"
            )
        tables.save(f"staging.{name}", staged)
        quarantines.append(quarantine)
        reports[name] = report
    quarantine = quarantines[0]
    for more in quarantines[1:]:
        quarantine = quarantine.unionByName(more)
    tables.save("staging.quarantine", quarantine)
    by_reason = tables.spark.sql(
        "SELECT source, reason, count(*) AS n FROM staging.quarantine GROUP BY source, reason"
    ).collect()
    for source, reason, n in by_reason:
        reports[source].quarantine_by_reason[reason] = n
    return reports


def build_identity(tables: SparkTables) -> None:
    """customer_merge, resolved_customers, identity_links and the four resolution views."""
    spark = tables.spark
    tables.run(
        BUILD_STATEMENTS,
        IDENTITY_MACROS,
        before={
            "intermediate.customer_merge": lambda: component_labels(
                spark.table("customer_merge_edges")
            ).createOrReplaceTempView("customer_merge_labels")
        },
    )


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
    row = tables.spark.sql(
        "SELECT max(CAST(ordered_at AS DATE)) FROM staging.orders WHERE status = 'completed'"
    ).collect()[0][0]
    if row is None and pinned is None:
        raise ValueError("no completed orders are staged: nothing to model")
    return min(pinned or row, run_day)


def component_labels(edges):
    """(rank, label): every node of the graph `edges` (from_rank, to_rank; both directions)
    with the smallest rank of its connected component, by propagating the smallest label
    along the edges until none falls (what the DuckDB file's recursive CTE computes)."""
    from pyspark.sql import functions as F

    labels = edges.select(F.col("from_rank").alias("rank"), F.col("from_rank").alias("label"))
    labels = labels.distinct().localCheckpoint()
    while True:
        offered = edges.join(labels, edges.from_rank == labels.rank).select(
            F.col("to_rank").alias("rank"), "label"
        )
        new = (
            labels.unionByName(offered).groupBy("rank").agg(F.min("label").alias("label"))
        ).localCheckpoint()
        fell = new.join(labels.withColumnRenamed("label", "old"), "rank").filter(
            F.col("label") < F.col("old")
        )
        if fell.isEmpty():
            return new
        labels = new


def reporting_rates(tables: SparkTables, currency: str) -> None:
    """The dated rates per currency and day (`work/insert_reporting_rates.sql`)."""
    tables.ensure_schema("work")
    (insert,) = load_spark_sql("work/insert_reporting_rates")
    rows = run(tables.spark, insert.sql, {"currency": currency})
    tables.save("work.reporting_rates", rows)
    tables.spark.table("work.reporting_rates").createOrReplaceTempView("reporting_rates")


FX_TYPES = {"fx_currencies": "array<string>", "fx_rates": "array<decimal(38,10)>"}


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


def value_marts(
    tables: SparkTables,
    as_of: date,
    currency: str,
    fx_rates: dict[str, float],
    *,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    penalizer: float = 0.0,
) -> tuple[dict, dict]:
    """The marts the Spark engine builds, as DataFrames, and what the fits said:
    customer_rfm, customer_value (the summary with P(alive), E[M] and CLV) and model_fit."""
    from pyspark.sql import functions as F

    from engagement_box.spark import value
    from engagement_box.value.summary import fx_parameters

    spark = tables.spark
    reporting_rates(tables, currency)
    fx = fx_parameters(currency, fx_rates)
    summary = customer_summary(tables, as_of, fx["fx_currencies"], fx["fx_rates"])
    tables.save("work.customer_summary", summary)
    summary = spark.table("work.customer_summary")
    customers = run(
        spark,
        "SELECT customer_id FROM intermediate.resolved_customers WHERE signup_date <= :as_of",
        {"as_of": as_of},
    )
    stamp = F.lit(as_of).alias("as_of")
    rfm = value.score_rfm(spark, summary, customers, as_of).select("*", stamp)
    bgnbd, gamma_gamma, sizes = value.fit_models(summary, penalizer)
    scores = value.score(
        summary,
        bgnbd,
        gamma_gamma,
        months=horizon_months,
        monthly_discount_rate=monthly_discount_rate,
        margin=margin,
    )
    customer_value = summary.join(scores, "customer_id").select(
        "customer_id",
        F.col("frequency"),
        F.col("recency_days"),
        F.col("T_days"),
        F.col("monetary_value"),
        "p_alive",
        "expected_order_value",
        "clv",
        stamp,
    )
    fit_rows = [
        (result.model, name, float(v), result.log_likelihood, result.n_customers)
        for result in (bgnbd, gamma_gamma)
        for name, v in result.params.items()
    ]
    model_fit = spark.createDataFrame(
        fit_rows,
        "model string, parameter string, value double, log_likelihood double, n_customers bigint",
    ).select("*", stamp)
    marts = {"customer_rfm": rfm, "customer_value": customer_value, "model_fit": model_fit}
    return marts, {"fit_rows": sizes, "bgnbd": bgnbd, "gamma_gamma": gamma_gamma}
