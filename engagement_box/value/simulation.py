"""Customers drawn from known BG/NBD parameters: ground truth for coverage checks, benchmarks."""

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SimulatedCustomers:
    """Calibration summaries (x, t_x, T) and holdout repeat purchases, all in the model's unit.

    Times run from each customer's first purchase: x counts purchases after the first, t_x is
    the time of the last one, T the end of the calibration window. `holdout_purchases` counts
    purchases in (T, T + holdout_length]; `t_x_full` is the last purchase up to its end.
    """

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    holdout_purchases: np.ndarray
    holdout_length: float
    t_x_full: np.ndarray

    def full_window(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, t_x, T) observed over calibration and holdout together."""
        return self.x + self.holdout_purchases, self.t_x_full, self.T + self.holdout_length


def simulate_bgnbd(
    params: dict[str, float],
    n_customers: int,
    *,
    T_max: float,
    holdout_length: float = 0.0,
    seed: int | np.random.Generator = 0,
    whole_units: bool = False,
) -> SimulatedCustomers:
    """Draw customers from BG/NBD: rate lambda ~ Gamma(r, 1/alpha), dropout p ~ Beta(a, b) right
    after each repeat purchase; first purchases uniform over (0, T_max], so T ~ U[0, T_max).

    `whole_units` floors every purchase time to whole units (days), as a real summary does; then
    purchases on the same unit are one purchase occasion, like distinct order days.
    """
    rng = np.random.default_rng(seed)
    r, alpha, a, b = (float(params[k]) for k in ("r", "alpha", "a", "b"))
    lam = rng.gamma(r, 1.0 / alpha, n_customers)
    p = rng.beta(a, b, n_customers)
    T = rng.uniform(0.0, T_max, n_customers)
    if whole_units:
        T = np.floor(T)
    end = T + holdout_length
    last_cal = np.zeros(n_customers)
    x = np.zeros(n_customers, dtype=np.int64)
    hold = np.zeros(n_customers, dtype=np.int64)
    now = np.zeros(n_customers)
    idx = np.arange(n_customers)
    floor: Any = np.floor if whole_units else (lambda v: v)
    last_unit = np.zeros(n_customers)
    last_any = np.zeros(n_customers)
    while idx.size:
        now[idx] += rng.exponential(1.0 / lam[idx])
        idx = idx[floor(now[idx]) <= end[idx]]
        when = floor(now[idx])
        new = (when > last_unit[idx]) if whole_units else np.ones(idx.size, dtype=bool)
        in_cal = when <= T[idx]
        cal = idx[in_cal & new]
        x[cal] += 1
        last_cal[cal] = when[in_cal & new]
        hol = idx[~in_cal & new]
        hold[hol] += 1
        last_unit[idx[new]] = when[new]
        last_any[idx[new]] = when[new]
        alive = rng.random(idx.size) >= p[idx]
        idx = idx[alive]
    return SimulatedCustomers(
        x.astype(float), last_cal, T, hold.astype(float), holdout_length, last_any
    )
