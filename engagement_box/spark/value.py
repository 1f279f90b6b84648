"""RFM, the purchase and spend models, and per-customer scores on Spark.

- RFM (`score_rfm`): the rule of `engagement_box/value/rfm.py` (score = 1 + floor(5 * strictly
  worse / n)) from exact counts: Spark counts the customers per distinct value, a running sum
  over the distinct values gives "strictly worse", and every customer gets its value's score.
  No quantile is estimated, so the cuts equal the DuckDB engine's.
- Fits (`fit_window`): BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma are fitted on the driver by
  the DuckDB engine's own functions (`value/marts.py::purchase_fits`, `value/fitting.py`) from
  the distinct (x, t_x, T) and (x, m) rows Spark groups, with their counts as weights (never
  expanded to one row per customer). At 0.7 distinct rows per buyer that is tens of millions of
  rows at 100M customers (docs/SPARK.md).
- Scores (`score`): `value/marts.py::score_table` (the DuckDB engine's customer_value columns)
  per Arrow batch on the executors (`mapInArrow`), with the fitted parameters and their
  covariances (computed once on the driver from the grouped rows, `covariances`) shipped to
  each task.
- The holdout comparison (`holdout_frame`) and the frequency-spend correlation
  (`spend_correlation`) work from the same grouped rows with their counts.
No Dagster import here.
"""

from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from engagement_box.value import rfm, uncertainty
from engagement_box.value.fitting import FitResult, fit_gamma_gamma
from engagement_box.value.marts import purchase_fits, score_table
from engagement_box.value.scoring import frequency_spend_correlation


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


def score_rfm(spark, summary, customers, as_of: date, left_out=None):
    """The rows of `rfm.score_rfm(summary, as_of, customers, left_out)`, as a Spark DataFrame
    (`left_out`: a DataFrame with customer_id, the customers with orders left out for want of an
    FX rate, never added as prospects)."""
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
            # row-major: cell (r - 1) * 5 + (f - 1)
            (cell // 5 + 1, cell % 5 + 1, name, rfm._SEGMENT_GRID[cell], rfm._PLAY_GRID[cell])
            for cell, name in enumerate(rfm._CELL_NAMES)
        ],
        "r_score tinyint, f_score tinyint, rfm_cell string, segment string, segment_play string",
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
        "segment_play",
    )
    known = base.select("customer_id")
    extra = customers.select("customer_id").distinct().join(known, "customer_id", "left_anti")
    if left_out is not None:
        extra = extra.join(left_out.select("customer_id"), "customer_id", "left_anti")
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
        F.lit(rfm.SEGMENT_PLAYS[rfm.PROSPECT]).alias("segment_play"),
    )
    return scored.unionByName(prospects)


def grouped(frame, *columns: str) -> pa.Table:
    """The distinct rows of `columns` with how many customers each stands for (`n`)."""
    from pyspark.sql import functions as F

    return frame.groupBy(*columns).agg(F.count("*").alias("n")).toArrow()


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(float)


def fit_window(
    purchases: pa.Table, spend: pa.Table, penalizer: float = 0.0
) -> dict[str, FitResult]:
    """Every purchase model and Gamma-Gamma on one window's grouped rows (in days), with their
    counts as weights: `marts.purchase_fits` and `fit_gamma_gamma`, as the DuckDB engine fits
    them with ENGAGEMENT_TIME_UNIT=D. The rows are never expanded to one per customer."""
    x, t_x, T = (_column(purchases, c) for c in ("frequency", "recency_days", "T_days"))
    fits = purchase_fits(x, t_x, T, "D", penalizer, counts=_column(purchases, "n"))
    fits["gamma_gamma"] = fit_gamma_gamma(
        _column(spend, "frequency"),
        _column(spend, "monetary_value"),
        penalizer=penalizer,
        raise_on_failure=False,
        counts=_column(spend, "n"),
    )
    return fits


def spend_correlation(spend: pa.Table) -> dict[str, float | None]:
    """Pearson and Spearman correlation of x and m over the repeat buyers with m > 0, from the
    grouped (x, m) rows with their counts (never one row per buyer)."""
    x, m, n = (_column(spend, c) for c in ("frequency", "monetary_value", "n"))
    corr = frequency_spend_correlation(x, m, counts=n)
    return {"pearson": corr.pearson, "spearman": corr.spearman}


def holdout_frame(rows: pa.Table) -> pl.DataFrame:
    """The grouped calibration rows (frequency, recency_days, T_days, holdout_purchases,
    holdout_days) with the customers of each in `n`, for `selection.compare_models` (which
    weighs each row by `n`: never one row per customer)."""
    names = ("frequency", "recency_days", "T_days", "holdout_purchases", "holdout_days", "n")
    return pl.DataFrame({c: rows.column(c).to_numpy() for c in names})


def covariances(
    model: str, params: dict, gamma_gamma: dict, purchases: pa.Table, spend: pa.Table
) -> tuple[np.ndarray, np.ndarray]:
    """The covariances of the fitted log parameters over all customers, from the grouped rows:
    what `uncertainty.intervals` computes when it sees every customer at once. Each batch of
    the scoring gets them, so a batch's intervals equal the DuckDB engine's."""
    x, t_x, T, n = (_column(purchases, c) for c in ("frequency", "recency_days", "T_days", "n"))
    purchase = uncertainty.log_param_covariance(model, params, x, t_x, T, counts=n)
    spend_cov = uncertainty.gamma_gamma_log_covariance(
        gamma_gamma,
        _column(spend, "frequency"),
        _column(spend, "monetary_value"),
        counts=_column(spend, "n"),
    )
    return purchase, spend_cov


# DuckDB's types of the scores' columns as Spark's (the data dictionary names DuckDB's).
_SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "DOUBLE": "double"}


def _score_columns() -> list[tuple[str, str]]:
    """customer_value's columns from customer_id to clv_p90, with their Spark types: what
    `marts.score_table` computes, as the data dictionary declares them (the columns after them
    are the run's: model, time unit, currency, as-of)."""
    from engagement_box import dictionary

    names = [(c.name, c.type) for c in dictionary.table("customer_value").columns]
    last = [name for name, _ in names].index("clv_p90")
    return [(name, _SPARK_TYPES[kind]) for name, kind in names[: last + 1]]


SCORE_COLUMNS = _score_columns()
SCORE_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in SCORE_COLUMNS)


def _in_schema_order(table: pl.DataFrame) -> pl.DataFrame:
    """The scores in `SCORE_SCHEMA`'s order, by name: mapInArrow takes a batch's columns by
    position, so a column `score_table` added, dropped or moved would otherwise shift every
    later one (a review: a new column before clv_p10 published under clv_p10's name)."""
    names = [name for name, _ in SCORE_COLUMNS]
    if set(table.columns) != set(names):
        raise ValueError(
            "the scores' columns are not customer_value's in the data dictionary: "
            f"{sorted(set(table.columns) - set(names))} computed and not declared, "
            f"{sorted(set(names) - set(table.columns))} declared and not computed"
        )
    return table.select(names)


def _score_batches(options: dict[str, Any]):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if not batch.num_rows:
                continue
            x = batch.column("frequency").to_numpy(zero_copy_only=False)
            t_x, T, m = (
                batch.column(c).to_numpy(zero_copy_only=False).astype(float)
                for c in ("recency_days", "T_days", "monetary_value")
            )
            table = score_table(batch.column("customer_id"), x, t_x, T, m, **options)
            yield from (
                _in_schema_order(table).to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()
            )

    return run


def score(
    summary,
    model: str,
    params: dict,
    gamma_gamma: dict,
    covariance: np.ndarray,
    gamma_gamma_covariance: np.ndarray,
    **options: Any,
):
    """customer_value's columns from customer_id to clv_p90 per customer, by
    `marts.score_table` per Arrow batch on the executors (mapInArrow), in days."""
    from pyspark.sql import functions as F

    rows = summary.select(
        "customer_id",
        F.col("frequency").cast("bigint").alias("frequency"),
        *[F.col(c).cast("double").alias(c) for c in ("recency_days", "T_days", "monetary_value")],
    )
    shipped = {
        "model": model,
        "params": dict(params),
        "gamma_gamma": dict(gamma_gamma),
        "unit": "D",
        "covariance": covariance,
        "gamma_gamma_covariance": gamma_gamma_covariance,
        **options,
    }
    return rows.mapInArrow(_score_batches(shipped), SCORE_SCHEMA)
