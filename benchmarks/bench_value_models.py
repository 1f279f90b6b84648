"""Benchmark: the fast value-model path against the plain lifetimes analyst path.

    .venv/bin/python benchmarks/bench_value_models.py                   # 1M customers, ~10M orders
    .venv/bin/python benchmarks/bench_value_models.py --customers 20000 # quick run
    .venv/bin/python benchmarks/bench_value_models.py --db path.duckdb  # generate into a file
    .venv/bin/python benchmarks/bench_value_models.py --db path.duckdb --reuse  # then reuse it

1. Generates BG/NBD-like transactions (vectorised numpy, Gamma-Gamma spends, a few same-day extra
   orders and non-completed statuses) into `staging.orders` of a DuckDB file.
2. Runs each path in its own child process (so peak RSS is per path):
   (a) fast: `sql/work/customer_summary.sql` + RFM + grouped BG/NBD / Gamma-Gamma fits +
       vectorised scoring (P(alive), E[purchases] 30/90/365 days, E[M], 12-month CLV);
   (b) plain: completed orders into pandas, `summary_data_from_transaction_data`, ungrouped fits,
       lifetimes' scoring methods and `customer_lifetime_value`.
3. Prints wall seconds per stage, the speedup, peak RSS and the largest parameter / score
   differences between the paths (parameters must agree to 1e-6).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

START = np.datetime64("2022-01-01")
AS_OF = "2024-12-31"
HORIZONS_DAYS = (30, 90, 365)
CLV_MONTHS = 12
DISCOUNT = 0.01


def generate(db: Path, n_customers: int, seed: int = 42) -> dict:
    """BG/NBD customers (days): lambda ~ Gamma(r, alpha), dropout p ~ Beta(a, b) after each buy."""
    import duckdb

    from engagement_box.staging.contracts import SOURCES
    from engagement_box.staging.ingestion import create_staged_table

    rng = np.random.default_rng(seed)
    r, alpha, a, b = 1.2, 30.0, 1.0, 6.0
    p_spend, q_spend, gamma_spend = 6.0, 4.0, 15.0
    horizon = int((np.datetime64(AS_OF) - START).astype(int))  # days from START to AS_OF
    lam = rng.gamma(r, 1.0 / alpha, n_customers)
    drop = rng.beta(a, b, n_customers)
    nu = rng.gamma(q_spend, 1.0 / gamma_spend, n_customers)
    first = rng.uniform(0, horizon * 0.75, n_customers)

    cust_parts, time_parts = [np.arange(n_customers)], [first]
    current = first.copy()
    idx = np.arange(n_customers)
    alive = rng.random(n_customers) >= drop  # dropout happens right after a purchase
    idx, current = idx[alive], current[alive]
    while idx.size:
        current = current + rng.exponential(1.0 / lam[idx])
        ok = current <= horizon + 0.999
        idx, current = idx[ok], current[ok]
        cust_parts.append(idx)
        time_parts.append(current)
        survive = rng.random(idx.size) >= drop[idx]
        idx, current = idx[survive], current[survive]
    cust = np.concatenate(cust_parts)
    when = np.concatenate(time_parts)
    # A few extra lines on the same day (split baskets) and some non-completed orders.
    extra = rng.random(cust.size) < 0.05
    cust = np.concatenate([cust, cust[extra]])
    when = np.concatenate([when, np.floor(when[extra]) + rng.uniform(0, 0.999, extra.sum())])
    n = cust.size
    amount = np.round(rng.gamma(p_spend, 1.0 / nu[cust]), 2)
    status = rng.choice(np.array([0, 1, 2], dtype=np.int8), n, p=[0.93, 0.04, 0.03])
    day = np.floor(when).astype(np.int32)
    second = ((when - day) * 86_400).astype(np.int32)
    order = np.argsort(when, kind="stable")
    arrays = {
        "cust": cust[order].astype(np.int32),
        "day": day[order],
        "sec": second[order],
        "amount": amount[order],
        "status": status[order],
    }
    import pyarrow as pa

    raw_orders = pa.table(arrays)  # noqa: F841 - read by DuckDB's replacement scan
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.execute("create schema staging")
    # The pipeline's own staged table: DECIMAL money, FSST-compressed ids (what the summary scans).
    create_staged_table(con, SOURCES["orders"])
    con.execute(
        """
        insert into staging.orders
        select
            'o' || lpad(cast(row_number() over () as varchar), 9, '0') as order_id,
            'c' || lpad(cast(cust as varchar), 7, '0') as customer_id,
            null::varchar as email,
            timestamp '2022-01-01' + to_days(day) + to_seconds(sec) as ordered_at,
            amount as net_amount,
            'EUR' as currency,
            ['completed', 'returned', 'cancelled'][status + 1] as status,
            'web' as channel,
            'bench.csv' as source_file,
            cast(row_number() over () as bigint) as source_row
        from raw_orders
        """
    )
    n_orders = con.execute("select count(*) from staging.orders").fetchone()[0]
    con.close()
    return {"customers": n_customers, "orders": int(n_orders)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_fast(db: Path, out: Path) -> dict:
    import datetime as dt

    import duckdb
    import lifetimes  # noqa: F401 - import cost (autograd) outside the timings, as in (b)
    import pyarrow  # noqa: F401

    from engagement_box.value.fitting import fit_bgnbd, fit_gamma_gamma
    from engagement_box.value.rfm import score_rfm
    from engagement_box.value.scoring import score_customers
    from engagement_box.value.summary import customer_summary

    as_of = dt.date.fromisoformat(AS_OF)
    stages = {}
    t0 = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    s = customer_summary(con, as_of, currency="EUR")  # as the pipeline: a reporting currency
    con.close()
    stages["summary (DuckDB SQL)"] = time.perf_counter() - t0

    t = time.perf_counter()
    rfm = score_rfm(s, as_of)
    stages["RFM scores + segments"] = time.perf_counter() - t

    x = s["frequency"].to_numpy().astype(float)
    t_x = s["recency_days"].to_numpy().astype(float)
    T = s["T_days"].to_numpy().astype(float)
    m = s["monetary_value"].to_numpy()

    t = time.perf_counter()
    bg = fit_bgnbd(x, t_x, T, time_unit="D")
    stages["BG/NBD fit (grouped)"] = time.perf_counter() - t
    t = time.perf_counter()
    gg = fit_gamma_gamma(x, m)
    stages["Gamma-Gamma fit (grouped)"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = score_customers(
        bg,
        gg,
        x,
        t_x,
        T,
        m,
        horizons=HORIZONS_DAYS,
        months=CLV_MONTHS,
        monthly_discount_rate=DISCOUNT,
    )
    pa_, em, value = scores["p_alive"], scores["expected_order_value"], scores["clv"]
    ey = dict(zip(HORIZONS_DAYS, scores["expected_purchases"], strict=True))
    stages["scoring (P(alive), E[Y] x3, E[M], CLV)"] = time.perf_counter() - t
    total = time.perf_counter() - t0

    # The SQL returns customers in no set order; the plain path's are sorted by id (not timed).
    order = s["customer_id"].arg_sort().to_numpy()
    rfm_scores = rfm.sort("customer_id").select("r_score", "f_score", "m_score").to_numpy()
    np.savez(
        out / "fast.npz",
        rfm=rfm_scores.astype(np.int64),
        p_alive=pa_[order],
        clv=value[order],
        em=em[order],
        **{f"ey{h}": v[order] for h, v in ey.items()},
    )
    keep = (x > 0) & (m > 0)
    grads = lifetimes_gradients(bg.params, x, t_x, T, gg.params, x[keep], m[keep])
    return {
        "stages": stages,
        "total": total,
        "peak_rss_mb": peak_rss_mb(),
        "bgnbd": bg.params,
        "gamma_gamma": gg.params,
        "bgnbd_rows": bg.n_rows,
        "gamma_gamma_rows": gg.n_rows,
        "customers": s.height,
        "repeat_buyers": int((x > 0).sum()),
        "rfm_rows": rfm.height,
        "ll": bg.log_likelihood,
        "gradients": grads,
    }


def plain_rfm(tx, as_of, amount: str):
    """RFM as an analyst writes it in pandas (groupby, ranks, the segment map), with the
    pipeline's tie rule (rank "min"): `tx` has customer_id, ordered_at and the `amount` column.
    The plain path of this benchmark and of bench_pipeline.py."""
    import pandas as pd

    from engagement_box.value.rfm import SEGMENT_MAP

    per = (
        tx.assign(day=tx["ordered_at"].dt.normalize())
        .groupby("customer_id")
        .agg(last=("day", "max"), orders=("day", "size"), spend=(amount, "sum"))
    )
    recency = (pd.Timestamp(as_of) - per["last"]).dt.days
    n = len(per)
    rfm = pd.DataFrame(
        {
            "r": 1 + (recency.rank(method="min", ascending=False).astype(int) - 1) * 5 // n,
            "f": 1 + (per["orders"].rank(method="min").astype(int) - 1) * 5 // n,
            "m": 1 + (per["spend"].rank(method="min").astype(int) - 1) * 5 // n,
        }
    )
    rfm["segment"] = [SEGMENT_MAP[cell] for cell in zip(rfm["r"], rfm["f"], strict=True)]
    return rfm


def run_plain(db: Path, out: Path) -> dict:
    import duckdb
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    stages = {}
    t0 = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    tx = con.execute(
        "select customer_id, ordered_at, net_amount from staging.orders where status = $s",
        {"s": "completed"},
    ).df()
    con.close()
    stages["load completed orders into pandas"] = time.perf_counter() - t0

    # RFM as an analyst writes it in pandas, with the pipeline's tie rule (rank "min"), so the
    # two paths' scores can be compared customer by customer.
    t = time.perf_counter()
    rfm = plain_rfm(tx, AS_OF, "net_amount").sort_index()
    stages["RFM (pandas groupby, ranks, segment map)"] = time.perf_counter() - t

    t = time.perf_counter()
    s = summary_data_from_transaction_data(
        tx,
        "customer_id",
        "ordered_at",
        monetary_value_col="net_amount",
        observation_period_end=pd.Timestamp(AS_OF),
        freq="D",
    ).sort_index()
    del tx
    stages["summary_data_from_transaction_data"] = time.perf_counter() - t

    t = time.perf_counter()
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    stages["BG/NBD fit (ungrouped)"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    stages["Gamma-Gamma fit (ungrouped)"] = time.perf_counter() - t

    t = time.perf_counter()
    f, r, T, m = s["frequency"], s["recency"], s["T"], s["monetary_value"]
    pa_ = bgf.conditional_probability_alive(f, r, T)
    ey = {
        h: np.asarray(bgf.conditional_expected_number_of_purchases_up_to_time(h, f, r, T))
        for h in HORIZONS_DAYS
    }
    em = np.asarray(ggf.conditional_expected_average_profit(f, m))
    value = ggf.customer_lifetime_value(
        bgf, f, r, T, m, time=CLV_MONTHS, discount_rate=DISCOUNT, freq="D"
    )
    stages["scoring (lifetimes methods + customer_lifetime_value)"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    fit_inputs = (
        dict(bgf.params_),
        f.to_numpy(),
        r.to_numpy(),
        T.to_numpy(),
        dict(ggf.params_),
        rep["frequency"].to_numpy(),
        rep["monetary_value"].to_numpy(),
    )
    grads = lifetimes_gradients(*fit_inputs)
    polished = lifetimes_polished(*fit_inputs)
    np.savez(
        out / "plain.npz",
        rfm=rfm[["r", "f", "m"]].to_numpy(dtype=np.int64),
        p_alive=np.asarray(pa_),
        clv=np.asarray(value),
        em=em,
        **{f"ey{h}": v for h, v in ey.items()},
    )
    return {
        "stages": stages,
        "total": total,
        "peak_rss_mb": peak_rss_mb(),
        "bgnbd": {k: float(v) for k, v in bgf.params_.items()},
        "gamma_gamma": {k: float(v) for k, v in ggf.params_.items()},
        "customers": len(s),
        "gradients": grads,
        "polished": {m: {k: float(v) for k, v in p.items()} for m, p in polished.items()},
    }


def lifetimes_polished(bg: dict, x, t_x, T, gg: dict, gx, gm) -> dict:
    """The plain path's fit continued by two Newton steps on lifetimes' own objectives
    (ungrouped, autograd gradient and Hessian; not timed): where lifetimes' fit would have
    stopped with a tighter tolerance."""
    from autograd import grad, hessian
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    def newton(objective, lp, args):
        for _ in range(2):
            lp = lp - np.linalg.solve(hessian(objective)(lp, *args), grad(objective)(lp, *args))
        return np.exp(lp)

    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    scale = 1.0 / T.max()
    r, alpha, a, b = newton(
        BetaGeoFitter._negative_log_likelihood,
        np.log([bg["r"], bg["alpha"] * scale, bg["a"], bg["b"]]),
        (x.astype(int), t_x * scale, T * scale, np.ones_like(x), 0.0),
    )
    gx, gm = np.asarray(gx, dtype=float), np.asarray(gm, dtype=float)
    p, q, v = newton(
        GammaGammaFitter._negative_log_likelihood,
        np.log([gg["p"], gg["q"], gg["v"]]),
        (gx, gm, np.ones_like(gx), 0.0),
    )
    return {
        "bgnbd": {"r": r, "alpha": alpha / scale, "a": a, "b": b},
        "gamma_gamma": {"p": p, "q": q, "v": v},
    }


def lifetimes_gradients(bg: dict, x, t_x, T, gg: dict, gx, gm) -> dict:
    """Largest |gradient| of lifetimes' own objectives (mean NLL, log parameters) at the given
    parameters, one row per customer: how close each path is to the optimum (not timed)."""
    from autograd import grad
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    scale = 1.0 / T.max()
    lp = np.log([bg["r"], bg["alpha"] * scale, bg["a"], bg["b"]])
    g_bg = grad(BetaGeoFitter._negative_log_likelihood)(
        lp, x.astype(int), t_x * scale, T * scale, np.ones_like(x), 0.0
    )
    gx, gm = np.asarray(gx, dtype=float), np.asarray(gm, dtype=float)
    lp = np.log([gg["p"], gg["q"], gg["v"]])
    g_gg = grad(GammaGammaFitter._negative_log_likelihood)(lp, gx, gm, np.ones_like(gx), 0.0)
    return {"bgnbd": float(np.abs(g_bg).max()), "gamma_gamma": float(np.abs(g_gg).max())}


def child(stage: str, db: Path, out: Path) -> None:
    warnings.simplefilter("ignore")
    result = run_fast(db, out) if stage == "fast" else run_plain(db, out)
    (out / f"{stage}.json").write_text(json.dumps(result))


def spawn(stage: str, db: Path, out: Path) -> dict:
    subprocess.run(
        [sys.executable, __file__, "--child", stage, "--db", str(db), "--out", str(out)],
        check=True,
    )
    return json.loads((out / f"{stage}.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, help="DuckDB file; generated unless --reuse")
    ap.add_argument("--reuse", action="store_true", help="use the orders already in --db")
    ap.add_argument("--skip-plain", action="store_true", help="time the fast path only")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--child", choices=["fast", "plain"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.db, args.out)
        return

    work = Path(tempfile.mkdtemp(prefix="bench_value_models_"))
    db = args.db or work / "bench.duckdb"
    print(f"the paths' outputs (JSON) go to {work}; delete it after reading them")
    if args.reuse and db.exists():
        import duckdb

        with duckdb.connect(str(db), read_only=True) as con:
            n_orders = con.execute("select count(*) from staging.orders").fetchone()[0]
        print(f"reusing {db}: {n_orders:,} orders")
    else:
        t = time.perf_counter()
        info = generate(db, args.customers, args.seed)
        print(
            f"generated {info['customers']:,} customers / {info['orders']:,} orders in "
            f"{time.perf_counter() - t:.1f} s -> {db}"
        )

    fast = spawn("fast", db, work)
    print(f"\n(a) fast path: {fast['customers']:,} customers, {fast['repeat_buyers']:,} repeat")
    for name, sec in fast["stages"].items():
        print(f"    {name:<55} {sec:8.2f} s")
    print(f"    {'TOTAL':<55} {fast['total']:8.2f} s   peak RSS {fast['peak_rss_mb']:,.0f} MB")
    print(
        f"    BG/NBD on {fast['bgnbd_rows']:,} distinct (x, t_x, T) rows; "
        f"Gamma-Gamma on {fast['gamma_gamma_rows']:,} distinct (x, m) rows"
    )
    print(f"    BG/NBD {fmt(fast['bgnbd'])}  (days)   Gamma-Gamma {fmt(fast['gamma_gamma'])}")
    if args.skip_plain:
        return

    plain = spawn("plain", db, work)
    print(f"\n(b) plain lifetimes path: {plain['customers']:,} customers")
    for name, sec in plain["stages"].items():
        print(f"    {name:<55} {sec:8.2f} s")
    print(f"    {'TOTAL':<55} {plain['total']:8.2f} s   peak RSS {plain['peak_rss_mb']:,.0f} MB")

    diff = max(
        abs(fast[model][k] - plain[model][k])
        for model in ("bgnbd", "gamma_gamma")
        for k in fast[model]
    )
    a, b = np.load(work / "fast.npz"), np.load(work / "plain.npz")
    rfm_differ = [int(v) for v in (a["rfm"] != b["rfm"]).sum(axis=0)]
    score_diff = {k: float(np.max(np.abs(a[k] - b[k]))) for k in a.files if k != "rfm"}
    print(f"\nspeedup (plain total / fast total): {plain['total'] / fast['total']:.1f}x")
    rel = max(
        abs(fast[model][k] - plain[model][k]) / abs(plain[model][k])
        for model in ("bgnbd", "gamma_gamma")
        for k in fast[model]
    )
    # Plain lifetimes stops where its optimizer's tolerance says (its gradient, printed below,
    # is not 0 there): the fits are compared where both are at the optimum, after two Newton
    # steps on lifetimes' own objectives. A review read FAIL on a clean run of the raw figures.
    print(f"max abs parameter difference to plain lifetimes' fit: {diff:.3e}")
    print(f"max rel parameter difference to plain lifetimes' fit: {rel:.3e}")
    polished = max(
        abs(fast[model][k] - plain["polished"][model][k])
        for model in ("bgnbd", "gamma_gamma")
        for k in fast[model]
    )
    print(
        "max abs parameter difference to the plain path's fit continued by 2 Newton steps on "
        f"lifetimes' objectives (not timed): {polished:.3e}  "
        f"({'OK' if polished <= 1e-6 else 'FAIL'} <= 1e-6)"
    )
    print(
        "lifetimes' max |gradient| at the parameters (0 = optimum): "
        + ", ".join(
            f"{model} fast {fast['gradients'][model]:.1e} plain {plain['gradients'][model]:.1e}"
            for model in ("bgnbd", "gamma_gamma")
        )
    )
    print("max abs score difference: " + ", ".join(f"{k} {v:.2e}" for k, v in score_diff.items()))
    print(
        "customers whose score differs between the paths: "
        + ", ".join(f"{k} {v:,}" for k, v in zip("RFM", rfm_differ, strict=True))
    )


def fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in params.items())


if __name__ == "__main__":
    main()
