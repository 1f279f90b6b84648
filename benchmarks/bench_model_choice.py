"""Benchmark: what choosing the purchase model and its intervals add to a run.

    .venv/bin/python benchmarks/bench_model_choice.py                    # 1M customers, days
    .venv/bin/python benchmarks/bench_model_choice.py --customers 100000 # quick run
    .venv/bin/python benchmarks/bench_model_choice.py --unit W           # weeks
    .venv/bin/python benchmarks/bench_model_choice.py --pin pareto_nbd   # the costliest choice

Customers are drawn from known BG/NBD parameters (`engagement_box.value.simulation`, whole days:
2 years of calibration, a 182-day holdout). Before the model choice a run fitted BG/NBD on the
calibration and the full window; what the choice adds is what the assets do on top
(`assets/value.py`):
  1. work/model_fit: MBG/NBD and Pareto/NBD fits on the calibration window, the holdout
     comparison and the rule (`selection.compare_arrays`, given the BG/NBD calibration fit);
  2. work/model_fit: MBG/NBD and Pareto/NBD fits on the full window (every model is fitted on
     both windows and stored, chosen or not);
  3. work/customer_value: the chosen model's covariance and per-customer 10th/90th percentile
     intervals of expected purchases (90 days) and 12-month CLV on the full window;
  4. work/model_validation: the holdout comparison again, from the stored calibration fits.
Prints wall seconds per stage, the added total against the 15 s target with its CPU seconds and
the load average (the machine is shared: wall time under load overstates the code's cost), the
comparison and the choice.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRUE_BGNBD = {"r": 0.8, "alpha": 40.0, "a": 0.8, "b": 4.0}  # per day
TRUE_SPEND = (6.0, 4.0, 15.0)  # Gamma-Gamma p, q, gamma


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--unit", choices=("D", "W"), default="D")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--pin",
        choices=("bgnbd", "mbgnbd", "pareto_nbd"),
        default=None,
        help="pin a model as ENGAGEMENT_PURCHASE_MODEL does (pareto_nbd: its covariance and "
        "intervals are the costliest, the worst case)",
    )
    args = parser.parse_args(argv)

    from engagement_box.value import fitting, purchase_models, selection, uncertainty
    from engagement_box.value.simulation import simulate_bgnbd

    div = {"D": 1.0, "W": 7.0}[args.unit]
    started = time.perf_counter()
    sim = simulate_bgnbd(
        TRUE_BGNBD,
        args.customers,
        T_max=730.0,
        holdout_length=182.0,
        seed=args.seed,
        whole_units=True,
    )
    rng = np.random.default_rng(args.seed)
    p, q, gamma = TRUE_SPEND
    x_full, t_full, T_full = sim.full_window()
    nu = rng.gamma(q, 1.0 / gamma, args.customers)
    m_full = np.where(
        x_full > 0, rng.gamma(p * np.maximum(x_full, 1), 1.0 / (nu * np.maximum(x_full, 1))), 0.0
    )
    cal = (sim.x, sim.t_x / div, sim.T / div)
    full = (x_full, t_full / div, T_full / div)
    print(
        f"{args.customers:,} customers drawn in {time.perf_counter() - started:.1f} s "
        f"(mean x {sim.x.mean():.2f}, one-time buyers {np.mean(sim.x == 0):.0%})"
    )

    # What a run has today: BG/NBD on both windows, Gamma-Gamma on the full window.
    t0 = time.perf_counter()
    bg_cal = fitting.fit_bgnbd(*cal, time_unit=args.unit)
    bg_full = fitting.fit_bgnbd(*full, time_unit=args.unit)
    gg = fitting.fit_gamma_gamma(x_full, m_full)
    today = time.perf_counter() - t0
    print(
        f"today's fits (BG/NBD x2, Gamma-Gamma): {today:.2f} s; "
        f"grouped rows {bg_cal.n_rows:,} (calibration), {bg_full.n_rows:,} (full)"
    )

    stages: dict[str, float] = {}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    comparison = selection.compare_arrays(
        *cal,
        sim.holdout_purchases,
        182.0 / div,
        time_unit=args.unit,
        fits={"bgnbd": bg_cal},
        pinned=args.pin,
    )
    stages["calibration fits + comparison + choice"] = time.perf_counter() - t0
    for name, fit in comparison.fits.items():
        if name != "bgnbd":
            stages[f"  of which {name} fit "] = fit.fit_seconds

    chosen = comparison.chosen
    t0 = time.perf_counter()
    full_fits = {"bgnbd": bg_full}
    for name in ("mbgnbd", "pareto_nbd"):
        full_fits[name] = purchase_models.fit_model(name, *full, time_unit=args.unit)
    stages["full-window fits (MBG/NBD, Pareto/NBD)"] = time.perf_counter() - t0
    for name in ("mbgnbd", "pareto_nbd"):
        stages[f"  of which {name} fit"] = full_fits[name].fit_seconds
    fit = full_fits[chosen]

    t0 = time.perf_counter()
    iv = uncertainty.intervals(
        chosen, fit, *full, m_full, horizon=90.0 / div, gamma_gamma=gg, time_unit=args.unit
    )
    stages[f"covariance + intervals ({chosen})"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    again = selection.compare_arrays(
        *cal,
        sim.holdout_purchases,
        182.0 / div,
        time_unit=args.unit,
        fits=comparison.fits,
        pinned=args.pin,
    )
    assert again.chosen == chosen
    stages["comparison again (model_validation)"] = time.perf_counter() - t0

    cpu = time.process_time() - cpu0
    added = sum(v for k, v in stages.items() if not k.startswith("  "))
    for k, v in stages.items():
        print(f"{k:<46} {v:7.2f} s")
    print(f"{'added to a run':<46} {added:7.2f} s  (target <= 15 s)")
    load = os.getloadavg()[0]
    print(f"{'  CPU seconds (all threads)':<46} {cpu:7.2f} s  (load average {load:.1f})")
    print(f"\nchosen: {chosen}: {comparison.reason}")
    print(
        comparison.models.select(
            "model",
            "total_actual",
            "total_predicted",
            "total_error_pct",
            "mae",
            "log_likelihood",
            "chosen",
        )
    )
    for name, f in comparison.fits.items():
        print(f"{name:<11} { ({k: round(v, 4) for k, v in f.params.items()}) }")
    width = (iv["clv_p90"] - iv["clv_p10"]) / iv["clv"]
    print(f"median relative CLV interval width (p90 - p10) / CLV: {float(width.median()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
