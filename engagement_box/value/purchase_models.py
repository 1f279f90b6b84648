"""The three purchase models behind one interface: fit, log-likelihood and scores by model name.

* "bgnbd": BG/NBD (Fader, Hardie & Lee 2005), a customer can drop out after a repeat purchase;
* "mbgnbd": MBG/NBD (Batislam et al. 2007), also right after the first purchase;
* "pareto_nbd": Pareto/NBD (Schmittlein, Morrison & Colombo 1987), at any time.

`score_with` gives every per-customer value of one model (P(alive), expected purchases over
horizons, E[M] from Gamma-Gamma, discounted CLV) computed on the distinct (x, t_x, T) rows and
spread back to the customers. For BG/NBD it returns exactly `scoring.score_customers`.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engagement_box.value import fitting, mbgnbd, pareto, scoring
from engagement_box.value.fitting import FitResult
from engagement_box.value.grouping import unique_rows
from engagement_box.value.summary import DAYS_PER_UNIT, TimeUnit, _check_unit

MODEL_NAMES = ("bgnbd", "mbgnbd", "pareto_nbd")


@dataclass(frozen=True)
class PurchaseModel:
    """One model's functions; all times in the model's unit."""

    name: str
    label: str
    params: tuple[str, ...]
    fit: Callable[..., FitResult]
    log_likelihood: Callable[..., float]
    p_alive: Callable[..., np.ndarray]
    expected_purchases: Callable[..., np.ndarray]  # (params, t, x, t_x, T)
    # Expected purchases in (T, T + t] of a customer alive at T, (params, t, x, T): for all three
    # models expected_purchases = growth * p_alive, so growth is computed per distinct (x, T).
    growth: Callable[..., np.ndarray]
    # p_alive on fixed rows as a function of the parameters, when that saves work per call.
    p_alive_on: Callable[..., Callable[..., np.ndarray]] | None = None

    def alive_on(self, x: Any, t_x: Any, T: Any) -> Callable[..., np.ndarray]:
        """P(alive) of the rows (x, t_x, T) as a function of the parameters."""
        if self.p_alive_on is not None:
            return self.p_alive_on(x, t_x, T)
        return lambda params: self.p_alive(params, x, t_x, T)


def _bgnbd_growth(params: Any, t: Any, x: Any, T: Any) -> np.ndarray:
    r, alpha, a, b = fitting._params(params, fitting.BGNBD_PARAMS)
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    return scoring._purchase_growth(r, alpha, a, b, np.asarray(t, dtype=float), x, T)


MODELS: dict[str, PurchaseModel] = {
    "bgnbd": PurchaseModel(
        "bgnbd",
        "BG/NBD",
        fitting.BGNBD_PARAMS,
        fitting.fit_bgnbd,
        fitting.bgnbd_log_likelihood,
        scoring.p_alive,
        scoring.expected_purchases,
        _bgnbd_growth,
    ),
    "mbgnbd": PurchaseModel(
        "mbgnbd",
        "MBG/NBD",
        mbgnbd.MBGNBD_PARAMS,
        mbgnbd.fit_mbgnbd,
        mbgnbd.mbgnbd_log_likelihood,
        mbgnbd.mbgnbd_p_alive,
        mbgnbd.mbgnbd_expected_purchases,
        mbgnbd.mbgnbd_growth,
    ),
    "pareto_nbd": PurchaseModel(
        "pareto_nbd",
        "Pareto/NBD",
        pareto.PARETO_NBD_PARAMS,
        pareto.fit_pareto_nbd,
        pareto.pareto_nbd_log_likelihood,
        pareto.pareto_p_alive,
        pareto.pareto_expected_purchases,
        pareto.pareto_growth,
        pareto.pareto_p_alive_on,
    ),
}


def get_model(name: str) -> PurchaseModel:
    """The model called `name`; a clear error for any other name."""
    if name not in MODELS:
        raise ValueError(f"unknown purchase model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def fit_model(
    name: str,
    x: Any,
    t_x: Any,
    T: Any,
    *,
    time_unit: TimeUnit = "D",
    raise_on_failure=True,
    counts: Any = None,
) -> FitResult:
    """Fit the model called `name` on per-customer (x, t_x, T) (grouped inside), or on grouped
    rows with the customers of each in `counts`."""
    return get_model(name).fit(
        x, t_x, T, time_unit=time_unit, raise_on_failure=raise_on_failure, counts=counts
    )


def expected_purchases_grouped(
    name: str, params: Mapping[str, float] | FitResult, times: Sequence[float], x, t_x, T
) -> np.ndarray:
    """E[purchases in (T, T + t]] for every t in `times`: an array (len(times), customers).
    growth(t; x, T) is computed once per distinct (x, T), P(alive) once per distinct row."""
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    (ux, ut, uT), inverse, _ = unique_rows(x, t_x, T)
    return grouped_parts(name, params, times, ux, ut, uT).expected()[:, inverse]


@dataclass(frozen=True)
class GroupedParts:
    """growth per distinct (x, T) (rows: times) and P(alive) per row of (x, t_x, T)."""

    growth: np.ndarray
    pair_of_row: np.ndarray
    p_alive: np.ndarray

    def expected(self) -> np.ndarray:
        return self.growth[:, self.pair_of_row] * self.p_alive


def grouped_parts(
    name: str,
    params: Mapping[str, float] | FitResult,
    times: Sequence[float],
    x,
    t_x,
    T,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    alive: Callable[..., np.ndarray] | None = None,
) -> GroupedParts:
    """The two factors of every expectation on rows (x, t_x, T); `pairs` = (distinct x, distinct
    T, pair index of each row) when already known, `alive` = `PurchaseModel.alive_on` of the
    rows when already made."""
    model = get_model(name)
    if pairs is None:
        (px, pT), pair_of_row, _ = unique_rows(x, T)
    else:
        px, pT, pair_of_row = pairs
    t = np.asarray(times, dtype=float)[:, None]
    growth = model.growth(params, t, px[None, :], pT[None, :])
    p_alive = model.p_alive(params, x, t_x, T) if alive is None else alive(params)
    return GroupedParts(np.atleast_2d(growth), pair_of_row, p_alive)


def score_with(
    name: str,
    params: Mapping[str, float] | FitResult,
    x: Any,
    t_x: Any,
    T: Any,
    m: Any = None,
    *,
    gamma_gamma: Mapping[str, float] | FitResult | None = None,
    horizons: Sequence[float] = (),
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    time_unit: TimeUnit = "D",
    days_per_month: float = 30.0,
) -> dict[str, Any]:
    """Per-customer scores of model `name`: {"p_alive", "expected_purchases" (one array per
    horizon), and with `gamma_gamma` and m: "expected_order_value", "clv"}.

    CLV = sum over months k of (E[Y(k)] - E[Y(k-1)]) * E[M] * margin / (1 + d)^k, months of
    `days_per_month` days, as `scoring.clv`."""
    if name == "bgnbd" and gamma_gamma is not None and m is not None:
        return scoring.score_customers(
            params,
            gamma_gamma,
            x,
            t_x,
            T,
            m,
            horizons=horizons,
            months=months,
            monthly_discount_rate=monthly_discount_rate,
            margin=margin,
            time_unit=time_unit,
            days_per_month=days_per_month,
        )
    model = get_model(name)
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    out: dict[str, Any] = {"p_alive": model.p_alive(params, x, t_x, T)}
    step = days_per_month / DAYS_PER_UNIT[_check_unit(time_unit)]
    month_times = step * np.arange(1, months + 1, dtype=float) if gamma_gamma is not None else []
    times = [*horizons, *month_times]
    expected = expected_purchases_grouped(name, params, times, x, t_x, T)
    out["expected_purchases"] = [expected[k] for k in range(len(horizons))]
    if gamma_gamma is not None and m is not None:
        order_value = scoring.expected_order_value(gamma_gamma, x, np.asarray(m, dtype=float))
        out["expected_order_value"] = order_value
        out["clv"] = (
            discounted_purchases(expected[len(horizons) :], monthly_discount_rate)
            * order_value
            * margin
        )
    return out


def discounted_purchases(cumulative: np.ndarray, monthly_discount_rate: float) -> np.ndarray:
    """sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k from the cumulative expectations per month."""
    months = cumulative.shape[0]
    per_month = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1.0 + monthly_discount_rate) ** -np.arange(1, months + 1, dtype=float)
    return discount @ per_month
