"""The calibration/holdout check: predicted against actual repeat purchases."""

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engagement_box.value.fitting import FitResult
from engagement_box.value.scoring import expected_purchases

FREQUENCY_BUCKETS = ("0", "1", "2", "3", "4", "5", "6", "7+")


@dataclass(frozen=True)
class HoldoutValidation:
    """Calibration-fitted model against the holdout period.

    `by_frequency` has one row per calibration frequency bucket "0".."6", "7+":
    frequency_bucket, customers, actual_mean, predicted_mean.
    """

    n_customers: int
    holdout_length: float
    total_actual: float
    total_predicted: float
    mae: float
    by_frequency: pl.DataFrame

    def as_metadata(self) -> dict[str, Any]:
        return {
            "n_customers": self.n_customers,
            "holdout_length": self.holdout_length,
            "total_actual": self.total_actual,
            "total_predicted": round(self.total_predicted, 4),
            "total_error_pct": round(
                100 * (self.total_predicted - self.total_actual) / self.total_actual, 3
            )
            if self.total_actual
            else None,
            "mae": round(self.mae, 6),
            "by_frequency": self.by_frequency.to_dicts(),
        }


def holdout_validation(
    bgnbd: Mapping[str, float] | FitResult,
    x_cal: Any,
    t_x_cal: Any,
    T_cal: Any,
    holdout_purchases: Any,
    holdout_length: float,
) -> HoldoutValidation:
    """Compare predicted and actual repeat purchases in the holdout period.

    Times in the model's unit; `holdout_length` is the holdout duration (same for everyone, as in
    `sql/work/calibration_holdout.sql`), `holdout_purchases` the distinct order days in it.
    """
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x_cal, t_x_cal, T_cal))
    predicted = expected_purchases(bgnbd, holdout_length, x, t_x, T)
    return validation_of_predictions(predicted, x, holdout_purchases, holdout_length)


def validation_of_predictions(
    predicted: Any, x_cal: Any, holdout_purchases: Any, holdout_length: float
) -> HoldoutValidation:
    """The holdout comparison of any model's predicted holdout purchases per customer."""
    predicted, x, actual = (
        np.asarray(v, dtype=float).ravel() for v in (predicted, x_cal, holdout_purchases)
    )
    bucket = np.minimum(x, 7).astype(np.int64)
    counts = np.bincount(bucket, minlength=8)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual_mean = np.bincount(bucket, weights=actual, minlength=8) / counts
        predicted_mean = np.bincount(bucket, weights=predicted, minlength=8) / counts
    table = pl.DataFrame(
        {
            "frequency_bucket": list(FREQUENCY_BUCKETS),
            "customers": counts.astype(np.int64),
            "actual_mean": np.where(counts > 0, actual_mean, np.nan),
            "predicted_mean": np.where(counts > 0, predicted_mean, np.nan),
        }
    ).with_columns(pl.col("actual_mean", "predicted_mean").fill_nan(None))
    return HoldoutValidation(
        n_customers=int(x.shape[0]),
        holdout_length=float(holdout_length),
        total_actual=float(actual.sum()),
        total_predicted=float(predicted.sum()),
        mae=float(np.mean(np.abs(predicted - actual))) if x.shape[0] else float("nan"),
        by_frequency=table,
    )


def calibration_plot_png(validation: HoldoutValidation, *, title: str | None = None) -> bytes:
    """Actual vs predicted mean holdout purchases by calibration frequency, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    table = validation.by_frequency
    labels = table["frequency_bucket"].to_list()
    pos = np.arange(len(labels))
    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(pos, table["actual_mean"].to_numpy(), "o-", label="actual", color="#1f77b4")
    ax.plot(
        pos, table["predicted_mean"].to_numpy(), "s--", label="BG/NBD predicted", color="#d62728"
    )
    ax.set_xticks(pos, labels)
    ax.set_xlabel("repeat purchases in calibration period")
    ax.set_ylabel("mean repeat purchases in holdout")
    ax.set_title(
        title
        or (
            f"Holdout check: actual {validation.total_actual:,.0f} vs predicted "
            f"{validation.total_predicted:,.0f}"
        )
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
