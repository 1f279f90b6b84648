"""The calibration/holdout check: predicted against actual repeat purchases."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

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
    # The mean squared error per customer: a proper score of a mean forecast, which the choice
    # compares (the MAE rewards predicting the median, 0 for most customers: a review).
    mse: float = float("nan")

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
            "mse": round(self.mse, 6),
            "by_frequency": self.by_frequency.to_dicts(),
        }


def validation_of_predictions(
    predicted: Any,
    x_cal: Any,
    holdout_purchases: Any,
    holdout_length: float,
    counts: Any = None,
) -> HoldoutValidation:
    """The holdout comparison of any model's predicted holdout purchases per customer, or per
    grouped row standing for `counts` customers each (the same numbers as the rows expanded)."""
    predicted, x, actual = (
        np.asarray(v, dtype=float).ravel() for v in (predicted, x_cal, holdout_purchases)
    )
    weight = np.ones_like(x) if counts is None else np.asarray(counts, dtype=float).ravel()
    bucket = np.minimum(x, 7).astype(np.int64)
    customers = np.bincount(bucket, weights=weight, minlength=8)
    total = float(weight.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        actual_mean = np.bincount(bucket, weights=actual * weight, minlength=8) / customers
        predicted_mean = np.bincount(bucket, weights=predicted * weight, minlength=8) / customers
    table = pl.DataFrame(
        {
            "frequency_bucket": list(FREQUENCY_BUCKETS),
            "customers": np.rint(customers).astype(np.int64),
            "actual_mean": np.where(customers > 0, actual_mean, np.nan),
            "predicted_mean": np.where(customers > 0, predicted_mean, np.nan),
        }
    ).with_columns(pl.col("actual_mean", "predicted_mean").fill_nan(None))
    return HoldoutValidation(
        n_customers=round(total),
        holdout_length=float(holdout_length),
        total_actual=float((actual * weight).sum()),
        total_predicted=float((predicted * weight).sum()),
        mae=float((np.abs(predicted - actual) * weight).sum() / total) if total else float("nan"),
        by_frequency=table,
        mse=float(((predicted - actual) ** 2 * weight).sum() / total) if total else float("nan"),
    )
