"""Choose the purchase model on evidence: BG/NBD, MBG/NBD and Pareto/NBD against the holdout.

Each model is fitted on the calibration window and compared with what customers really bought in
the holdout: total repeat purchases, the mean by calibration frequency (0..6, 7+), the mean
absolute error per customer (MAE) and the calibration log-likelihood. The rule (docs/METRICS.md,
"Choosing the purchase model"), deterministic for the same numbers:

1. a pinned model is used as long as it fits (a failed pinned fit raises `ModelFitError`);
2. otherwise the candidates are the fitted models whose MAE is at most `tolerance` (relative)
   above the lowest MAE;
3. BG/NBD is kept when it is a candidate (the reference model: a rival must beat it clearly);
4. else the candidate with the highest calibration log-likelihood, then the order of
   `MODEL_NAMES`.
"""

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engagement_box.value.fitting import FitResult, ModelFitError
from engagement_box.value.grouping import unique_rows
from engagement_box.value.holdout import HoldoutValidation, validation_of_predictions
from engagement_box.value.purchase_models import (
    MODEL_NAMES,
    fit_model,
    get_model,
    grouped_parts,
)
from engagement_box.value.summary import TimeUnit, to_time_unit

DEFAULT_TOLERANCE = 0.02


@dataclass(frozen=True)
class ModelComparison:
    """Every model against the holdout, and the chosen one.

    `models`: one row per model (model, converged, reason, total_actual, total_predicted,
    total_error_pct, mae, log_likelihood, chosen). `by_frequency`: one row per model and
    calibration frequency bucket (model, frequency_bucket, customers, actual_mean,
    predicted_mean). `fits` holds the calibration fits by model name.
    """

    chosen: str
    reason: str
    pinned: bool
    models: pl.DataFrame
    by_frequency: pl.DataFrame
    fits: dict[str, FitResult] = field(repr=False)
    validations: dict[str, HoldoutValidation] = field(repr=False)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "pinned": self.pinned,
            "models": self.models.to_dicts(),
            "params": {k: dict(f.params) for k, f in self.fits.items() if f.converged},
        }


def compare_models(
    cal_stats: pl.DataFrame,
    *,
    time_unit: TimeUnit = "D",
    models: Sequence[str] = MODEL_NAMES,
    pinned: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    fits: Mapping[str, FitResult] | None = None,
) -> ModelComparison:
    """Compare the models on the output of `summary.calibration_holdout` (columns frequency,
    recency_days, T_days, holdout_purchases, holdout_days; times in days) in `time_unit`. With a
    column `n` each row stands for n customers (grouped rows: the same comparison as the rows
    expanded, without building one row per customer)."""
    missing = {"frequency", "recency_days", "T_days", "holdout_purchases", "holdout_days"} - set(
        cal_stats.columns
    )
    if missing:
        raise ValueError(f"the calibration table lacks the columns {sorted(missing)}")
    counts = cal_stats["n"].to_numpy() if "n" in cal_stats.columns else None
    if cal_stats.height == 0 or (counts is not None and counts.sum() == 0):
        raise ModelFitError("model_choice", "degenerate", "no customer in the calibration window")
    days = cal_stats["holdout_days"].unique()
    if days.len() != 1:
        raise ValueError("every customer must have the same holdout length (holdout_days)")
    return compare_arrays(
        cal_stats["frequency"].to_numpy(),
        to_time_unit(cal_stats["recency_days"].to_numpy(), time_unit),
        to_time_unit(cal_stats["T_days"].to_numpy(), time_unit),
        cal_stats["holdout_purchases"].to_numpy(),
        float(to_time_unit(days[0], time_unit)),
        time_unit=time_unit,
        models=models,
        pinned=pinned,
        tolerance=tolerance,
        fits=fits,
        counts=counts,
    )


def compare_arrays(
    x: Any,
    t_x: Any,
    T: Any,
    holdout_purchases: Any,
    holdout_length: float,
    *,
    time_unit: TimeUnit = "D",
    models: Sequence[str] = MODEL_NAMES,
    pinned: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    fits: Mapping[str, FitResult] | None = None,
    counts: Any = None,
) -> ModelComparison:
    """`compare_models` on arrays in the model's time unit. `fits` reuses calibration fits
    already made (by model name); the others are fitted here. `counts`: the customers each row
    stands for (default one each)."""
    names = list(dict.fromkeys(models))
    for name in names:
        get_model(name)
    if pinned is not None:
        get_model(pinned)
        if pinned not in names:
            names.append(pinned)
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    x, t_x, T, actual = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T, holdout_purchases))
    done = dict(fits or {})
    for name in names:
        if name not in done:
            done[name] = fit_model(
                name, x, t_x, T, time_unit=time_unit, raise_on_failure=False, counts=counts
            )
    validations, not_finite = {}, {}
    (ux, ut, uT), inverse, _ = unique_rows(x, t_x, T)  # grouped once for every model
    (px, pT), pair_of_row, _ = unique_rows(ux, uT)
    for name in names:
        if done[name].converged:
            parts = grouped_parts(
                name, done[name], [holdout_length], ux, ut, uT, (px, pT, pair_of_row)
            )
            predicted = parts.expected()[0][inverse]
            bad = ~np.isfinite(predicted)
            if bad.any():  # e.g. BG/NBD's 2F1 at a + b < 1 for x = 0 (lifetimes gives NaN too)
                not_finite[name] = int(
                    bad.sum() if counts is None else np.asarray(counts)[bad].sum()
                )
                continue
            validations[name] = validation_of_predictions(
                predicted, x, actual, holdout_length, counts
            )
    chosen, reason = choose(
        done, validations, names, pinned=pinned, tolerance=tolerance, not_finite=not_finite
    )
    return ModelComparison(
        chosen=chosen,
        reason=reason,
        pinned=pinned is not None,
        models=_models_table(names, done, validations, chosen, not_finite),
        by_frequency=_by_frequency(validations),
        fits={k: done[k] for k in names},
        validations=validations,
    )


def choose(
    fits: Mapping[str, FitResult],
    validations: Mapping[str, HoldoutValidation],
    names: Sequence[str],
    *,
    pinned: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    not_finite: Mapping[str, int] | None = None,
) -> tuple[str, str]:
    """(chosen model, reason in plain words) by the rule in the module docstring. `not_finite`:
    the fitted models left out because their holdout predictions are not finite (customers
    without one, by model): the choice was a crash on their NaN error (a review)."""
    not_finite = dict(not_finite or {})

    def why_left_out(name: str) -> str:
        return (
            f"{get_model(name).label}'s predictions are not finite for {not_finite[name]} "
            "customers at its calibration parameters"
        )

    if pinned is not None:
        fit = fits[pinned]
        if not fit.converged:
            raise ModelFitError(
                pinned,
                fit.reason or "not_converged",
                f"the pinned model {get_model(pinned).label} could not be fitted: {fit.message}",
            )
        if pinned in not_finite:
            raise ModelFitError(pinned, "degenerate", f"the pinned model: {why_left_out(pinned)}")
        return pinned, f"pinned by the setting to {get_model(pinned).label}"
    fitted = [n for n in names if n in validations]
    if not fitted:
        raise ModelFitError(
            "model_choice",
            "not_converged",
            "no purchase model could be fitted on the calibration window: "
            + "; ".join(
                why_left_out(n) if n in not_finite else f"{get_model(n).label}: {fits[n].message}"
                for n in names
            ),
        )
    chosen, said = _chosen(fits, validations, names, fitted, tolerance)
    left_out = [f"left out: {why_left_out(n)}" for n in names if n in not_finite]
    return chosen, "; ".join([said, *left_out])


def _chosen(fits, validations, names, fitted, tolerance) -> tuple[str, str]:
    """Rules 2-4 among the `fitted` models (those with finite holdout predictions)."""
    best = min(validations[n].mae for n in fitted)
    near = [n for n in fitted if validations[n].mae <= best * (1 + tolerance)]
    label = {n: get_model(n).label for n in fitted}
    if "bgnbd" in near:
        if len(near) == 1:
            return "bgnbd", f"BG/NBD has the lowest holdout MAE per customer ({best:.4g})"
        return "bgnbd", (
            f"BG/NBD's holdout MAE ({validations['bgnbd'].mae:.4g}) is within "
            f"{tolerance:.0%} of the lowest ({best:.4g}): the reference model is kept"
        )
    ll = {n: fits[n].log_likelihood for n in near}
    winner = max(near, key=lambda n: (ll[n], -list(names).index(n)))
    if len(near) == 1:
        return winner, f"{label[winner]} has the lowest holdout MAE per customer ({best:.4g})"
    return winner, (
        f"{' and '.join(label[n] for n in near)} are within {tolerance:.0%} of the lowest "
        f"holdout MAE ({best:.4g}); {label[winner]} has the higher calibration log-likelihood "
        f"({ll[winner]:.2f})"
    )


def _models_table(names, fits, validations, chosen, not_finite=()) -> pl.DataFrame:
    rows = []
    for name in names:
        v = validations.get(name)
        fit = fits[name]
        total_error = None
        if v is not None and v.total_actual:
            total_error = 100 * (v.total_predicted - v.total_actual) / v.total_actual
        rows.append(
            {
                "model": name,
                "converged": fit.converged,
                "reason": "predictions_not_finite" if name in not_finite else fit.reason,
                "total_actual": v.total_actual if v else None,
                "total_predicted": v.total_predicted if v else None,
                "total_error_pct": total_error,
                "mae": v.mae if v else None,
                "log_likelihood": fit.log_likelihood,
                "chosen": name == chosen,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "model": pl.String,
            "converged": pl.Boolean,
            "reason": pl.String,
            "total_actual": pl.Float64,
            "total_predicted": pl.Float64,
            "total_error_pct": pl.Float64,
            "mae": pl.Float64,
            "log_likelihood": pl.Float64,
            "chosen": pl.Boolean,
        },
    )


def _by_frequency(validations: Mapping[str, HoldoutValidation]) -> pl.DataFrame:
    frames = [
        v.by_frequency.select(pl.lit(name).alias("model"), pl.all())
        for name, v in validations.items()
    ]
    return pl.concat(frames) if frames else pl.DataFrame()


def comparison_plot_png(comparison: ModelComparison, *, title: str | None = None) -> bytes:
    """Actual holdout purchases by calibration frequency against every fitted model, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot()
    first = next(iter(comparison.validations.values()), None)
    if first is not None:
        labels = first.by_frequency["frequency_bucket"].to_list()
        pos = np.arange(len(labels))
        ax.plot(pos, first.by_frequency["actual_mean"].to_numpy(), "ko-", label="actual")
        for (name, v), style in zip(
            comparison.validations.items(), ("s--", "^--", "v--"), strict=False
        ):
            mark = " (chosen)" if name == comparison.chosen else ""
            ax.plot(
                pos,
                v.by_frequency["predicted_mean"].to_numpy(),
                style,
                label=f"{get_model(name).label}{mark}",
            )
        ax.set_xticks(pos, labels)
    ax.set_xlabel("repeat purchases in calibration period")
    ax.set_ylabel("mean repeat purchases in holdout")
    ax.set_title(title or f"Holdout check, chosen: {get_model(comparison.chosen).label}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
