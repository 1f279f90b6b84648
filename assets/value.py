"""Customer value assets: summary, RFM segments, BG/NBD + Gamma-Gamma fits, scores, validation.

Each asset writes a `work.<table>`; `assets/publish.py` turns the checked work tables into a
versioned `marts.<table>`. The maths lives in `engagement_box.value`.
"""

import base64
import datetime as dt
import importlib.metadata
import json
import time

import dagster as dg
import numpy as np
import polars as pl

from assets.metadata import table_metadata
from assets.staging import staging_key
from engagement_box import reports
from engagement_box.frames import read_table, write_frame
from engagement_box.sql import load_sql
from engagement_box.value import fitting, holdout, rfm, scoring
from engagement_box.value import summary as summaries
from pipelines.partitions import month_end, monthly_as_of
from pipelines.resources import ModelSettings, Warehouse

GROUP = "customer_value"
DAY_HORIZONS = (30, 90, 365)


def work_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["work", name])


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI's metadata panel."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def resolve_window(con, settings: ModelSettings, partition_key: str | None = None) -> dict:
    """The observation window of this run: as-of, calibration end, unit, currency.

    as-of = ENGAGEMENT_AS_OF if set, else the partition month's last day, capped at the day of
    the last completed order (a month still running, or with no newer data, ends there).
    """
    cfg = settings.resolved()
    row = con.execute(load_sql("marts/last_completed_order_day")).fetchone()
    last_order_day = row[0] if row and row[0] else None
    if last_order_day is None:
        raise dg.Failure("no completed orders are staged: nothing to model")
    as_of = _date(cfg.as_of)
    if as_of is None:
        as_of = last_order_day
        if partition_key is not None:
            as_of = min(month_end(partition_key), last_order_day)
    calibration_end = _date(cfg.calibration_end) or as_of - dt.timedelta(days=cfg.holdout_days)
    if calibration_end >= as_of:
        raise dg.Failure(f"calibration end {calibration_end} must be before the as-of date {as_of}")
    return {
        "partition_key": partition_key,
        "as_of": as_of,
        "calibration_end": calibration_end,
        "time_unit": cfg.time_unit,
        "currency": cfg.currency,
        "fx_rates": cfg.fx_rates_json or "{}",
        "clv_horizon_months": cfg.clv_horizon_months,
        "monthly_discount_rate": cfg.monthly_discount_rate,
        "margin": cfg.margin,
        "penalizer": cfg.penalizer,
    }


def money(window: dict) -> dict:
    """The currency arguments of the summaries: reporting currency and FX rates of this run."""
    return {"currency": window["currency"], "fx_rates": json.loads(window["fx_rates"] or "{}")}


def read_window(con) -> dict:
    rows = read_table(con, "work", "model_window").to_dicts()
    if not rows:
        raise dg.Failure("work.model_window is empty: materialize work/customer_summary first")
    return rows[0]


@dg.asset(
    key=work_key("customer_summary"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb"},
    deps=[staging_key("orders")],
)
def customer_summary(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """Per-customer purchase summary (x, t_x, T, spend) from completed orders up to the as-of."""
    with warehouse.get_connection() as con:
        window = resolve_window(
            con, model_settings, context.partition_key if context.has_partition_key else None
        )
        summary = summaries.customer_summary(con, window["as_of"], **money(window))
        left_out = dict(
            con.execute(
                load_sql("marts/orders_without_rate"),
                {
                    "as_of": window["as_of"],
                    "fx_currencies": summaries.fx_parameters(**money(window))["fx_currencies"],
                },
            ).fetchall()
        )
        write_frame(con, "work", "model_window", pl.DataFrame([window]))
        write_frame(con, "work", "customer_summary", summary)
        metadata = table_metadata(con, "work", "customer_summary")
    repeat = int((summary["frequency"] > 0).sum()) if summary.height else 0
    metadata.update(
        {
            "as_of": str(window["as_of"]),
            "calibration_end": str(window["calibration_end"]),
            "buyers": summary.height,
            "repeat_buyers": repeat,
            "currency": window["currency"],
            "orders_left_out_no_fx_rate": dg.MetadataValue.json(left_out),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=work_key("customer_rfm"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "polars"},
    deps=[work_key("customer_summary"), staging_key("customers")],
)
def customer_rfm(warehouse: Warehouse) -> dg.MaterializeResult:
    """RFM scores (1-5 by quintile, equal values share a score) and named segments per customer."""
    with warehouse.get_connection() as con:
        window = read_window(con)
        summary = read_table(con, "work", "customer_summary")
        customers = con.execute(
            "SELECT customer_id FROM staging.customers WHERE signup_date <= $as_of",
            {"as_of": window["as_of"]},
        ).pl()["customer_id"]
        scored = rfm.score_rfm(summary, window["as_of"], customers=customers)
        scored = scored.with_columns(
            pl.col("segment").cast(pl.String), pl.lit(window["as_of"]).alias("as_of")
        )
        write_frame(con, "work", "customer_rfm", scored)
        metadata = table_metadata(con, "work", "customer_rfm")
    counts = {str(k): int(v) for k, v in rfm.segment_counts(scored).items()}
    metadata["segments"] = dg.MetadataValue.json(counts)
    metadata["segment_sizes"] = png_markdown(reports.segment_sizes_png(counts), "segment sizes")
    return dg.MaterializeResult(metadata=metadata)


def model_inputs(frame: pl.DataFrame, unit: str) -> tuple[np.ndarray, ...]:
    """(x, t_x, T, m) of a summary in the model's time unit."""
    return (
        frame["frequency"].to_numpy(),
        summaries.to_time_unit(frame["recency_days"].to_numpy(), unit),
        summaries.to_time_unit(frame["T_days"].to_numpy(), unit),
        frame["monetary_value"].cast(pl.Float64).to_numpy(),
    )


def _versions() -> str:
    names = ("lifetimes", "numpy", "scipy", "pandas", "duckdb")
    return json.dumps({n: importlib.metadata.version(n) for n in names})


def _fit_row(fit: fitting.FitResult, window_name: str, start, end, unit: str) -> dict:
    params = fit.params
    return {
        "model": fit.model,
        "window": window_name,
        "window_end": end,
        "time_unit": unit,
        "converged": fit.converged,
        "message": fit.message or None,
        "r": params.get("r"),
        "alpha": params.get("alpha"),
        "a": params.get("a"),
        "b": params.get("b"),
        "p": params.get("p"),
        "q": params.get("q"),
        "gamma": params.get("v"),
        "params": json.dumps(params),
        "log_likelihood": fit.log_likelihood,
        "n_customers": fit.n_customers,
        "n_rows": fit.n_rows,
        "penalizer": fit.penalizer,
        "fit_seconds": fit.fit_seconds,
        "library_versions": _versions(),
        "fitted_at": dt.datetime.now(),
    }


@dg.asset(
    key=work_key("model_fit"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "python"},
    deps=[work_key("customer_summary")],
    check_specs=[
        dg.AssetCheckSpec(
            "fits_converged",
            asset=work_key("model_fit"),
            blocking=True,
            description="Every BG/NBD and Gamma-Gamma fit converged to finite parameters.",
        )
    ],
)
def model_fit(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """BG/NBD and Gamma-Gamma fits on the full window and on the calibration window."""
    with warehouse.get_connection() as con:
        window = read_window(con)
        unit = window["time_unit"]
        full = read_table(con, "work", "customer_summary")
        cal = summaries.calibration_holdout(
            con, window["calibration_end"], window["as_of"], **money(window)
        )
        # Kept for work/model_validation, which compares this fit with the holdout.
        write_frame(con, "work", "calibration_holdout", cal)
        rows, fits, correlations = [], {}, {}
        for name, frame, end in (
            ("full", full, window["as_of"]),
            ("calibration", cal, window["calibration_end"]),
        ):
            x, t_x, T, m = model_inputs(frame, unit)
            bg = fitting.fit_bgnbd(
                x, t_x, T, time_unit=unit, penalizer=window["penalizer"], raise_on_failure=False
            )
            gg = fitting.fit_gamma_gamma(
                x, m, penalizer=window["penalizer"], raise_on_failure=False
            )
            fits[name] = (bg, gg)
            corr = scoring.frequency_spend_correlation(x, m)
            correlations[name] = {"pearson": corr.pearson, "spearman": corr.spearman}
            for fit in (bg, gg):
                rows.append(_fit_row(fit, name, None, end, unit))
        frame = pl.DataFrame(rows).with_columns(
            pl.lit(json.dumps(correlations["full"])).alias("frequency_spend_correlation")
        )
        write_frame(con, "work", "model_fit", frame)
        metadata = table_metadata(con, "work", "model_fit")

    failed = [
        f"{fit.model} ({name} window): {fit.message or fit.reason}"
        for name, pair in fits.items()
        for fit in pair
        if not fit.converged
    ]
    for name, (bg, gg) in fits.items():
        metadata[f"bgnbd_{name}"] = dg.MetadataValue.json(bg.as_metadata())
        metadata[f"gamma_gamma_{name}"] = dg.MetadataValue.json(gg.as_metadata())
    metadata["frequency_spend_correlation"] = dg.MetadataValue.json(correlations)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="fits_converged",
                passed=not failed,
                metadata={"failures": dg.MetadataValue.json(failed)},
                description="; ".join(failed) or "all fits converged",
            )
        ],
    )


def _fit_params(con, window_name: str) -> tuple[dict, dict]:
    fits = con.execute(
        'SELECT model, params, converged FROM work.model_fit WHERE "window" = $w',
        {"w": window_name},
    ).fetchall()
    params = {model: json.loads(p) for model, p, ok in fits if ok}
    if set(params) != {"bgnbd", "gamma_gamma"}:
        raise dg.Failure(f"no converged fits for the {window_name} window in work.model_fit")
    return params["bgnbd"], params["gamma_gamma"]


@dg.asset(
    key=work_key("customer_value"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "python"},
    deps=[work_key("model_fit"), work_key("customer_summary")],
    check_specs=[
        dg.AssetCheckSpec(
            "values_finite",
            asset=work_key("customer_value"),
            blocking=True,
            description="No NaN or infinite value in any numeric column.",
        )
    ],
)
def customer_value(warehouse: Warehouse) -> dg.MaterializeResult:
    """P(alive), expected purchases (30/90/365 days), expected order value and discounted CLV."""
    with warehouse.get_connection() as con:
        window = read_window(con)
        unit = window["time_unit"]
        bg, gg = _fit_params(con, "full")
        summary = read_table(con, "work", "customer_summary")
        x, t_x, T, m = model_inputs(summary, unit)
        started = time.perf_counter()
        scores = scoring.score_customers(
            bg,
            gg,
            x,
            t_x,
            T,
            m,
            horizons=[float(summaries.to_time_unit(days, unit)) for days in DAY_HORIZONS],
            months=window["clv_horizon_months"],
            monthly_discount_rate=window["monthly_discount_rate"],
            margin=window["margin"],
            time_unit=unit,
        )
        columns = {
            "customer_id": summary["customer_id"],
            "frequency": x,
            "recency": t_x,
            "T": T,
            "monetary_value": m,
            "p_alive": scores["p_alive"],
            "p_churn": 1.0 - scores["p_alive"],
        }
        for days, expected in zip(DAY_HORIZONS, scores["expected_purchases"], strict=True):
            columns[f"expected_purchases_{days}d"] = expected
        columns["expected_order_value"] = scores["expected_order_value"]
        columns["clv"] = scores["clv"]
        scoring_seconds = time.perf_counter() - started
        frame = pl.DataFrame(columns).with_columns(
            pl.lit(unit).alias("time_unit"),
            pl.lit(window["currency"]).alias("currency"),
            pl.lit(window["as_of"]).alias("as_of"),
        )
        numeric = [c for c, t in frame.schema.items() if t.is_float()]
        bad = {
            c: int((~frame[c].is_finite()).sum()) for c in numeric if (~frame[c].is_finite()).any()
        }
        write_frame(con, "work", "customer_value", frame)
        metadata = table_metadata(con, "work", "customer_value")
    metadata.update(
        {
            "scoring_seconds": round(scoring_seconds, 3),
            "total_clv": float(np.nansum(frame["clv"].to_numpy())),
            "mean_p_alive": float(np.nanmean(scores["p_alive"])) if len(x) else 0.0,
            "clv_horizon_months": window["clv_horizon_months"],
        }
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="values_finite",
                passed=not bad,
                metadata={"non_finite_by_column": dg.MetadataValue.json(bad)},
            )
        ],
    )


@dg.asset(
    key=work_key("model_validation"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "python"},
    deps=[work_key("model_fit")],
    check_specs=[
        dg.AssetCheckSpec(
            "holdout_total_within_25pct",
            asset=work_key("model_validation"),
            description="Predicted holdout repeat purchases within 25% of the actual total.",
        )
    ],
)
def model_validation(warehouse: Warehouse) -> dg.MaterializeResult:
    """The calibration-window BG/NBD against the holdout: totals, by frequency, MAE, a plot."""
    with warehouse.get_connection() as con:
        window = read_window(con)
        unit = window["time_unit"]
        bg, _ = _fit_params(con, "calibration")
        cal = read_table(con, "work", "calibration_holdout")
        holdout_days = (window["as_of"] - window["calibration_end"]).days
        x, t_x, T, _ = model_inputs(cal, unit)
        result = holdout.holdout_validation(
            bg,
            x,
            t_x,
            T,
            cal["holdout_purchases"].to_numpy(),
            float(summaries.to_time_unit(holdout_days, unit)),
        )
        table = result.by_frequency.with_columns(
            pl.lit(window["calibration_end"]).alias("calibration_end"),
            pl.lit(window["as_of"]).alias("as_of"),
            pl.lit(result.total_actual).alias("total_actual"),
            pl.lit(result.total_predicted).alias("total_predicted"),
            pl.lit(result.mae).alias("mae_per_customer"),
        )
        write_frame(con, "work", "model_validation", table)
        metadata = table_metadata(con, "work", "model_validation")
    png = holdout.calibration_plot_png(
        result, title=f"Holdout {window['calibration_end']} .. {window['as_of']}"
    )
    metadata.update(
        {
            "total_actual": float(result.total_actual),
            "total_predicted": float(result.total_predicted),
            "mae_per_customer": float(result.mae),
            "calibration_plot": png_markdown(png, "actual vs predicted by calibration frequency"),
        }
    )
    relative = (
        abs(result.total_predicted - result.total_actual) / result.total_actual
        if result.total_actual
        else float("inf")
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="holdout_total_within_25pct",
                passed=relative <= 0.25,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"relative_error": float(relative)},
            )
        ],
    )


value_assets = [customer_summary, customer_rfm, model_fit, customer_value, model_validation]
