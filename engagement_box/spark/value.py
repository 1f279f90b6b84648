"""RFM, the purchase and spend models, and per-customer scores on Spark.

- RFM (`score_rfm`): the rule of `engagement_box/value/rfm.py` (score = 1 + floor(5 * strictly
  worse / n)) from exact counts: Spark counts the customers per distinct value, a running sum
  over the distinct values gives "strictly worse", and every customer gets its value's score.
  No quantile is estimated, so the cuts equal the DuckDB engine's.
- Fits (`fit_models`): BG/NBD and Gamma-Gamma are fitted on the driver by the DuckDB engine's own
  functions (`value/fitting.py`), from the distinct (x, t_x, T) and (x, m) rows Spark groups,
  with their counts as weights. At 0.7 distinct rows per buyer that is tens of millions of rows
  at 100M customers (docs/SPARK.md).
- Scores (`score`): `value/scoring.py::score_customers` per Arrow batch on the executors
  (`mapInArrow`), with the fitted parameters shipped to each task.
No Dagster import here.
"""

from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from engagement_box.value import rfm
from engagement_box.value.fitting import FitResult, fit_bgnbd, fit_gamma_gamma
from engagement_box.value.scoring import score_customers


def _scores(frame, column: str, n: int, higher_is_better: bool):
    """(value, score) per distinct value of `column` among `frame`'s rows (n of them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    counts = frame.groupBy(column).agg(F.count("*").alias("k"))
    below = F.coalesce(
        F.sum("k").over(Window.orderBy(column).rowsBetween(Window.unboundedPreceding, -1)),
        F.lit(0),
    )
    worse = below if higher_is_better else F.lit(n) - below - F.col("k")
    return counts.select(
        column, (F.lit(1) + F.floor(F.lit(rfm.N_SCORES) * worse / F.lit(n))).cast("tinyint")
    )


def score_rfm(spark, summary, customers, as_of: date):
    """The rows of `rfm.score_rfm(summary, as_of, customers)`, as a Spark DataFrame."""
    from pyspark.sql import functions as F

    base = summary.select(
        "customer_id",
        F.datediff(F.lit(as_of), F.col("last_order_date"))
        .cast("bigint")
        .alias("days_since_last_order"),
        F.col("order_count").cast("bigint").alias("order_count"),
        F.col("total_spend").cast("double").alias("total_spend"),
    )
    active_rule = (F.coalesce(F.col("order_count"), F.lit(0)) > 0) & F.col(
        "days_since_last_order"
    ).isNotNull()
    active = base.filter(active_rule)
    n = active.count()
    cells = spark.createDataFrame(
        [
            (r, f, rfm._CELL_NAMES[(r - 1) * 5 + (f - 1)], rfm._SEGMENT_GRID[(r - 1) * 5 + (f - 1)])
            for r in range(1, 6)
            for f in range(1, 6)
        ],
        "r_score tinyint, f_score tinyint, rfm_cell string, segment string",
    )
    scored = active
    for column, name, better in (
        ("days_since_last_order", "r_score", False),
        ("order_count", "f_score", True),
        ("total_spend", "m_score", True),
    ):
        table = _scores(active, column, max(n, 1), better)
        table = table.toDF(column, name)
        scored = scored.join(F.broadcast(table) if column != "total_spend" else table, column)
    scored = scored.join(F.broadcast(cells), ["r_score", "f_score"]).select(
        "customer_id",
        "days_since_last_order",
        "order_count",
        "total_spend",
        "r_score",
        "f_score",
        "m_score",
        "rfm_cell",
        "segment",
    )
    known = base.select("customer_id")
    extra = customers.select("customer_id").distinct().join(known, "customer_id", "left_anti")
    prospects = base.filter(~active_rule).unionByName(
        extra.select(
            "customer_id",
            F.lit(None).cast("bigint").alias("days_since_last_order"),
            F.lit(None).cast("bigint").alias("order_count"),
            F.lit(None).cast("double").alias("total_spend"),
        )
    )
    prospects = prospects.select(
        "customer_id",
        "days_since_last_order",
        F.coalesce("order_count", F.lit(0).cast("bigint")).alias("order_count"),
        F.coalesce("total_spend", F.lit(0.0)).alias("total_spend"),
        *[F.lit(None).cast("tinyint").alias(c) for c in ("r_score", "f_score", "m_score")],
        F.lit(None).cast("string").alias("rfm_cell"),
        F.lit(rfm.PROSPECT).alias("segment"),
    )
    return scored.unionByName(prospects)


def grouped_inputs(summary) -> tuple[np.ndarray, ...]:
    """(x, t_x, T, count) distinct rows and (x, m, count) of the repeat buyers, from Spark."""
    from pyspark.sql import functions as F

    purchases = (
        summary.groupBy("frequency", "recency_days", "T_days")
        .agg(F.count("*").alias("n"))
        .toArrow()
    )
    spend = summary.groupBy("frequency", "monetary_value").agg(F.count("*").alias("n")).toArrow()
    return purchases, spend


def fit_models(summary, penalizer: float = 0.0) -> tuple[FitResult, FitResult, dict[str, int]]:
    """BG/NBD and Gamma-Gamma, fitted on the driver from the grouped rows Spark returns (in days,
    as the DuckDB engine fits them with ENGAGEMENT_TIME_UNIT=D)."""
    purchases, spend = grouped_inputs(summary)
    n = purchases.column("n").to_numpy()
    # The fitting functions take per-customer arrays and group them again (value/grouping.py,
    # in lexicographic order, so the rows reach the optimiser as in the DuckDB engine).
    x, t_x, T = (
        np.repeat(purchases.column(c).to_numpy().astype(float), n)
        for c in ("frequency", "recency_days", "T_days")
    )
    bgnbd = fit_bgnbd(x, t_x, T, time_unit="D", penalizer=penalizer)
    k = spend.column("n").to_numpy()
    sx, sm = (
        np.repeat(spend.column(c).to_numpy().astype(float), k)
        for c in ("frequency", "monetary_value")
    )
    gamma_gamma = fit_gamma_gamma(sx, sm, penalizer=penalizer)
    sizes = {
        "customers": int(n.sum()),
        "purchase_rows": purchases.num_rows,
        "spend_rows": spend.num_rows,
    }
    return bgnbd, gamma_gamma, sizes


def _score_batches(bgnbd: dict, gamma_gamma: dict, options: dict[str, Any]):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            x, t_x, T, m = (
                batch.column(c).to_numpy(zero_copy_only=False).astype(float)
                for c in ("frequency", "recency_days", "T_days", "monetary_value")
            )
            scores = score_customers(bgnbd, gamma_gamma, x, t_x, T, m, **options)
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("customer_id"),
                    pa.array(scores["p_alive"]),
                    pa.array(scores["expected_order_value"]),
                    pa.array(scores["clv"]),
                ],
                names=["customer_id", "p_alive", "expected_order_value", "clv"],
            )

    return run


def score(summary, bgnbd: FitResult, gamma_gamma: FitResult, **options: Any):
    """customer_id, p_alive, expected_order_value, clv per customer (mapInArrow)."""
    from pyspark.sql import functions as F

    rows = summary.select(
        "customer_id",
        *[F.col(c).cast("double").alias(c) for c in ("frequency", "recency_days", "T_days")],
        F.col("monetary_value").cast("double").alias("monetary_value"),
    )
    return rows.mapInArrow(
        _score_batches(dict(bgnbd.params), dict(gamma_gamma.params), dict(options)),
        "customer_id string, p_alive double, expected_order_value double, clv double",
    )
