"""Benchmark: the whole pipeline from raw exports, as `engagement-box run` does it (issue 12).

    .venv/bin/python benchmarks/bench_pipeline.py                        # all five, 1M customers
    .venv/bin/python benchmarks/bench_pipeline.py --reuse cold nothing   # exports already there
    .venv/bin/python benchmarks/bench_pipeline.py --reuse incremental    # right after `cold`
    .venv/bin/python benchmarks/bench_pipeline.py --reuse resent         # after a run
    .venv/bin/python benchmarks/bench_pipeline.py --reuse plain          # after `cold`
    .venv/bin/python benchmarks/bench_pipeline.py --customers 20000 --data-dir /tmp/x  # quick

The retailer's raw exports are generated once with the project's generator (1M customers give
~10M orders, ~1.1M reviews, ~3M social events, 100k referrals) into --data-dir and reused with
--reuse. Each run works in --work-dir: a copy of the exports (hard links), a fresh DAGSTER_HOME
with the project's dagster.yaml, the working database and the published file. Measurements, in
the order given (default: all five). A run that fails is said so (FAILED), no figure is
computed from it and the script exits 1; runs see only the ENGAGEMENT_* settings set here:

- cold: `engagement-box run --month M` on a fresh warehouse (the work dir is emptied first, so
  --data-dir may not be inside it).
- nothing: the same command again with nothing new: it must start no run and publish nothing.
- incremental: one new orders export file (1 % of the orders, new rows for existing customers
  on the day after the last order, drawn with --seed, in the generator's Parquet format) is
  added to the work dir's exports, then the same command: its CPU against the cold run's.
- resent: the newest reviews export is dropped again under another name (every row a repeated
  key, as when an export is sent twice), then the same command: the new-files sensor would start
  this run. It stages the file and must compute nothing after it (`work/version_inputs`).
- plain: the path an analyst writes from the same raw files (pandas + lifetimes: read every
  orders file, completed orders, the dated FX rates as the project applies them,
  `summary_data_from_transaction_data`, RFM quintiles, BG/NBD, Gamma-Gamma, P(alive), CLV),
  against the seconds of the project's ingest-to-value steps in the cold run.

Each run is a child process: wall time, CPU (user + sys of it and its children, from wait4),
peak RSS, the host's load average before and after, and the seconds per step the CLI prints.
M defaults to the month after the data's last order, so the incremental day falls in it.
Targets (issue 12): cold <= 90 s and <= 4 GiB; nothing <= 10 s; incremental CPU <= 25 % of the
cold run's; ingest-to-value >= 3x faster than the plain path.
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code, for the settings the runs are given

from engagement_box.settings import isolated_environment  # noqa: E402

CLI = [sys.executable, "-m", "engagement_box.cli"]
STEP_LINE = re.compile(r"^  (\S+)\s+(ok|FAILED)\s+([0-9.]+)(?:\s+([0-9.]+))?")
STEPS = ("cold", "nothing", "incremental", "resent", "plain")
NEW_ORDERS_FILE = "orders_bench_new.parquet"
# The steps of the project's path that the plain path also does, from the raw files to CLV:
# ingest with validation (orders, the FX rates), the orders per buyer and day with the customer
# summary read from them, RFM, fits, scores.
INGEST_TO_VALUE = (
    "staging__orders",
    "staging__fx_rates",
    "work__buyer_days",
    "work__customer_summary",
    "work__customer_rfm",
    "work__model_fit",
    "work__customer_value",
)
# What they need beside, which the plain path skips: the customers export and one customer per
# person (the buyer of an order is resolved by id, else by email), the calibration holdout of
# the model choice.
NEEDED_BESIDE = ("staging__customers", "intermediate__identity_links", "work__calibration_holdout")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fresh_memory_seconds(gib: int = 1) -> float:
    """Kernel seconds this host takes to hand a process `gib` GiB of fresh pages (numpy
    filling them, in a child process). On the project's machine kind this swings between 0.1
    and 2.4 s per GiB within minutes: the virtual machine reports the memory it frees to the
    hypervisor (`/sys/module/page_reporting`), which takes it back, so touching it again costs
    the host's fault too, and what that costs depends on the host's own load. The pipeline
    frees and touches again gigabytes (millions of page faults per run): the same cold run
    took 160 and 119 CPU-s seven minutes apart (docs/BENCHMARKS.md). Printed before each
    measurement, so figures from different hours can be told apart."""
    code = (
        f"import os, numpy as np; t = os.times(); a = np.ones({gib} * 2**27); "
        "print(os.times().system - t.system)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def ensure_exports(data_dir: Path, customers: int, seed: int, reuse: bool) -> dict:
    manifest = data_dir / "_manifest.json"
    if reuse and manifest.exists():
        print(f"reusing the exports in {data_dir}", flush=True)
    else:
        print(f"generating {customers:,} customers into {data_dir} ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [*CLI, "generate", "--out", str(data_dir), "--customers", str(customers),
             "--seed", str(seed)],
            check=True, cwd=REPO,
        )  # fmt: skip
        print(f"generated in {time.perf_counter() - started:.1f} s", flush=True)
    info = json.loads(manifest.read_text())
    return info


def month_after_data(data_dir: Path) -> str:
    """The month of the day after the last order, read from the newest orders file."""
    return (last_order_day(data_dir) + dt.timedelta(days=1)).strftime("%Y-%m")


def last_order_day(data_dir: Path) -> dt.date:
    import polars as pl

    files = sorted((data_dir / "orders").glob("orders_*.*"))
    newest = [f for f in files if f.name != NEW_ORDERS_FILE][-1]
    frame = (
        pl.read_parquet(newest, columns=["ordered_at"])
        if newest.suffix == ".parquet"
        else pl.read_csv(newest, columns=["ordered_at"], infer_schema=False)
    )
    days = frame["ordered_at"].str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    return days.max()


def link_exports(data_dir: Path, target: Path) -> None:
    """The run's own exports folder: hard links to the generated files (copies across file
    systems), so the incremental file never lands in the reused data dir."""
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file() or path.name.startswith("_"):
            continue
        dest = target / path.relative_to(data_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def environment(work: Path) -> dict[str, str]:
    home = work / "dagster_home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    # the shell's and `.env`'s settings left out: ENGAGEMENT_WORKING_DB wrote the bench's
    # retailer into the user's working database, ENGAGEMENT_ENGINE or ENGAGEMENT_AS_OF changed
    # what is measured (two reviews)
    return {
        **isolated_environment(
            {
                "ENGAGEMENT_DATA_DIR": str(work / "exports"),
                "ENGAGEMENT_WAREHOUSE": str(work / "warehouse" / "engagement.duckdb"),
                "ENGAGEMENT_AUDIENCE_DIR": str(work / "audiences"),
            }
        ),
        "DAGSTER_HOME": str(home),
    }


def run_cli(work: Path, month: str, label: str) -> dict:
    """One `engagement-box run --month M` in a child process: its wall, CPU and peak RSS."""
    log = work / f"{label}.log"
    load_before = load_average()
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(
            [*CLI, "run", "--month", month],
            cwd=REPO, env=environment(work), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    steps, step_cpu = {}, {}
    has_cpu = "cpu s" in text  # the CLI's step lines give CPU seconds after the seconds
    for line in text.splitlines():
        match = STEP_LINE.match(line)
        if match:
            steps[match.group(1)] = float(match.group(3))
            if has_cpu and match.group(4):
                step_cpu[match.group(1)] = float(match.group(4))
    return {
        "label": label,
        "exit": child.returncode,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "peak_rss_gib": usage.ru_maxrss / 1024**2,
        "steps": steps,
        "step_cpu": step_cpu,
        "load_before": load_before,
        "load_after": load_average(),
        "log": str(log),
        "output": text,
    }


def versions_published(work: Path) -> list[int]:
    import duckdb

    path = work / "warehouse" / "engagement.working.duckdb"
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as con:
        return [
            row[0]
            for row in con.execute(
                "SELECT snapshot_id FROM marts.snapshot_log ORDER BY snapshot_id"
            ).fetchall()
        ]


def failed(result: dict) -> bool:
    """Whether the run failed; if so, says so: no figure is computed from it, it is not kept
    for the measurements after it, and the script exits 1 at the end (a failed incremental run
    printed its CPU against the cold run's as a result, and exited 0; a review)."""
    if result["exit"] == 0:
        return False
    print(f"FAILED: {result['label']} exited {result['exit']}: no figure is computed from it")
    return True


def report_run(result: dict, step_lines: bool = True) -> None:
    print(
        f"{result['label']}: exit {result['exit']}, wall {result['wall']:.1f} s, CPU "
        f"{result['cpu']:.1f} s (user {result['user']:.1f}, sys {result['sys']:.1f}), peak RSS "
        f"{result['peak_rss_gib']:.2f} GiB; load average {result['load_before']} before, "
        f"{result['load_after']} after",
        flush=True,
    )
    if step_lines and result["steps"]:
        total = sum(result["steps"].values())
        for step, seconds in sorted(result["steps"].items(), key=lambda kv: -kv[1]):
            cpu = result["step_cpu"].get(step)
            cpu = f"  CPU {cpu:6.1f} s" if cpu is not None else ""
            print(f"    {step:34} {seconds:7.1f} s  {100 * seconds / total:4.1f} %{cpu}")
        cpu = sum(result["step_cpu"].values())
        print(f"    {'sum of steps':34} {total:7.1f} s{f'  CPU {cpu:.1f} s' if cpu else ''}")
    if result["exit"] != 0:
        print(result["output"][-3000:])
        print(f"(full output: {result['log']})")


def new_orders(data_dir: Path, share: float, seed: int, days_after: int = 1):
    """`share` of the orders as new rows on the day `days_after` the last order, for customers
    drawn (by their orders, so repeat buyers come back more often) from the staged files' good
    rows, in the generator's format: every column text, `O` + 9-digit ids above any generated
    one (each day's ids after the earlier days')."""
    import numpy as np
    import polars as pl

    from engagement_box.staging.contracts import ORDER_CHANNELS

    files = sorted(
        f for f in (data_dir / "orders").glob("orders_*.parquet") if f.name != NEW_ORDERS_FILE
    )
    pool = pl.concat([pl.read_parquet(f) for f in files[-3:]], how="vertical_relaxed")
    statuses = pool["status"].str.to_lowercase()
    pool = pool.filter(
        statuses.is_in(["completed", "returned", "cancelled"])
        & pool["net_amount"].str.contains(r"^[0-9]+\.[0-9]{2}$")
        & pool["currency"].is_in(["USD", "GBP", "EUR"])
        & pool["channel"].str.to_lowercase().is_in(list(ORDER_CHANNELS))
        & (pool["customer_id"].str.strip_chars().str.len_chars() > 0)
        & (
            pool["email"].is_null()
            | pool["email"].str.contains(r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")
        )
    )  # the generator's good rows only: every new order is staged
    manifest = json.loads((data_dir / "_manifest.json").read_text())
    count = int(round(manifest["sources"]["orders"]["rows"] * share))
    rng = np.random.default_rng(seed)
    picked = pool[rng.integers(0, pool.height, count)]
    day = last_order_day(data_dir) + dt.timedelta(days=days_after)
    first_id = 900_000_000 + (days_after - 1) * count
    seconds = np.sort(rng.integers(0, 86_400, count))
    stamps = [
        (dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=int(s))).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        for s in seconds
    ]
    amounts = pool["net_amount"].to_numpy()[rng.integers(0, pool.height, count)]
    return pl.DataFrame(
        {
            "order_id": [f"O{first_id + i:09d}" for i in range(1, count + 1)],
            "customer_id": picked["customer_id"],
            "email": picked["email"],
            "ordered_at": stamps,
            "net_amount": amounts,
            "currency": picked["currency"],
            "status": picked["status"],
            "channel": picked["channel"],
        }
    ).select(pool.columns)


def plain_child(data_dir: Path, as_of: str, out: Path) -> None:
    """The analyst's path from the raw files, timed per stage; runs in its own process."""
    import resource
    import warnings

    import numpy as np
    import pandas as pd

    warnings.simplefilter("ignore")
    from bench_value_models import plain_rfm  # benchmarks/ is on the path when run as a script
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    stages: dict[str, float] = {}
    # CPU from here: the imports above are not the path's work, as the project's step CPU counts
    # none of its process's imports either (they were 1.0 CPU-s, the whole path at 20k)
    imported = resource.getrusage(resource.RUSAGE_SELF)
    started = t = time.perf_counter()
    columns = ["order_id", "customer_id", "ordered_at", "net_amount", "currency", "status"]
    frames = []
    for path in sorted((data_dir / "orders").glob("orders_*.*")):
        if path.suffix == ".parquet":
            frames.append(pd.read_parquet(path, columns=columns))
        else:
            frames.append(pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False))
    orders = pd.concat(frames, ignore_index=True)
    del frames
    rates = pd.read_csv(data_dir / "fx_rates" / "fx_rates.csv", dtype=str)
    stages["read every orders file (CSV, Parquet) and the FX rates"] = time.perf_counter() - t

    t = time.perf_counter()
    rows = len(orders)
    orders = orders.drop_duplicates("order_id", keep="first")
    orders = orders[orders["status"].str.strip().str.lower() == "completed"]
    orders = orders.assign(
        customer_id=orders["customer_id"].str.strip(),
        ordered_at=pd.to_datetime(
            orders["ordered_at"], format="%Y-%m-%d %H:%M:%S", errors="coerce"
        ),
        net_amount=pd.to_numeric(orders["net_amount"], errors="coerce"),
        currency=orders["currency"].str.strip().str.upper(),
    ).dropna(subset=["customer_id", "ordered_at", "net_amount"])
    # The contract's ranges; orders after the as-of day are outside the window.
    orders = orders[
        (orders["net_amount"] >= 0)
        & (orders["ordered_at"] >= pd.Timestamp("1990-01-01"))
        & (orders["ordered_at"] < pd.Timestamp(as_of) + pd.Timedelta(days=1))
    ]
    # The project's rule: the latest rate on or before the order's day; the reporting currency
    # (USD) at 1.
    rates = rates.assign(
        day=pd.to_datetime(rates["date"]), rate=pd.to_numeric(rates["rate"])
    ).sort_values("day")
    orders = orders.assign(day=orders["ordered_at"].dt.normalize()).sort_values("day")
    orders = pd.merge_asof(
        orders, rates[["day", "currency", "rate"]], on="day", by="currency", direction="backward"
    )
    orders.loc[orders["currency"] == "USD", "rate"] = 1.0
    orders = orders.dropna(subset=["rate"])
    orders["amount"] = orders["net_amount"] * orders["rate"]
    tx = orders[["customer_id", "ordered_at", "amount"]]
    del orders
    stages["clean: duplicates, completed, parse, FX"] = time.perf_counter() - t

    t = time.perf_counter()
    rfm = plain_rfm(tx, as_of, "amount")
    stages["RFM (pandas groupby, ranks, segment map)"] = time.perf_counter() - t

    t = time.perf_counter()
    s = summary_data_from_transaction_data(
        tx,
        "customer_id",
        "ordered_at",
        monetary_value_col="amount",
        observation_period_end=pd.Timestamp(as_of),
        freq="D",
    )
    del tx
    stages["summary_data_from_transaction_data"] = time.perf_counter() - t

    t = time.perf_counter()
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    stages["BG/NBD fit"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    stages["Gamma-Gamma fit"] = time.perf_counter() - t

    t = time.perf_counter()
    f, r, T, m = s["frequency"], s["recency"], s["T"], s["monetary_value"]
    p_alive = np.asarray(bgf.conditional_probability_alive(f, r, T))
    expected = np.asarray(bgf.conditional_expected_number_of_purchases_up_to_time(90, f, r, T))
    clv = np.asarray(
        ggf.customer_lifetime_value(bgf, f, r, T, m, time=12, discount_rate=0.01, freq="D")
    )
    stages["scoring: P(alive), E[Y(90 d)], 12-month CLV"] = time.perf_counter() - t
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "stages": stages,
        "total": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime - imported.ru_utime - imported.ru_stime,
        "peak_rss_gib": usage.ru_maxrss / 1024**2,
        "rows_read": rows,
        "customers": len(s),
        "bgnbd": {k: float(v) for k, v in bgf.params_.items()},
        "gamma_gamma": {k: float(v) for k, v in ggf.params_.items()},
        "p_alive_mean": float(p_alive.mean()),
        "expected_90_sum": float(expected.sum()),
        "clv_sum": float(clv.sum()),
        "segments": int(rfm["segment"].nunique()),
    }
    out.write_text(json.dumps(result))


def project_outputs(work: Path, snapshot_id: int) -> dict:
    """The same outputs from the cold run's working database, to set beside the plain path's:
    the work rows of the as-of of the version the cold run published (an incremental run since
    wrote another as-of's rows beside them)."""
    import duckdb

    path = work / "warehouse" / "engagement.working.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        as_of = con.execute(
            "SELECT as_of FROM marts.snapshot_log WHERE snapshot_id = $id", {"id": snapshot_id}
        ).fetchone()[0]
        fit = con.execute(
            'SELECT model, "window", chosen, r, alpha, a, b, p, q, gamma, n_customers '
            "FROM work.model_fit WHERE as_of = $as_of ORDER BY ALL",
            {"as_of": as_of},
        ).df()
        values = con.execute(
            "SELECT count(*), sum(clv) FROM work.customer_value WHERE as_of = $as_of",
            {"as_of": as_of},
        ).fetchone()
    return {"as_of": str(as_of), "fit": fit, "customers": values[0], "clv_sum": values[1]}


def figure(seconds: dict, step: str) -> str:
    return f"{seconds[step]:.1f} s" if step in seconds else "-"


def state_path(work: Path) -> Path:
    return work / "bench_state.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("measure", nargs="*", help=f"any of {', '.join(STEPS)} (default: all)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20260630, help="generator and new orders")
    parser.add_argument("--data-dir", type=Path, help="default /tmp/bench_pipeline/exports-<n>")
    parser.add_argument("--work-dir", type=Path, help="default /tmp/bench_pipeline/work-<n>")
    parser.add_argument("--reuse", action="store_true", help="reuse the generated exports")
    parser.add_argument("--month", help="as-of month YYYY-MM (default: after the data's end)")
    parser.add_argument("--new-share", type=float, default=0.01, help="incremental: new orders")
    parser.add_argument(
        "--child-plain", nargs=3, metavar=("DATA", "AS_OF", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child_plain:
        data, as_of, out = args.child_plain
        plain_child(Path(data), as_of, Path(out))
        return

    unknown = [m for m in args.measure if m not in STEPS]
    if unknown:
        parser.error(f"unknown measurement {', '.join(unknown)}: choose from {', '.join(STEPS)}")
    measures = args.measure or list(STEPS)
    base = Path("/tmp/bench_pipeline")
    data_dir = args.data_dir or base / f"exports-{args.customers}"
    work = args.work_dir or base / f"work-{args.customers}"
    if "cold" in measures and data_dir.resolve().is_relative_to(work.resolve()):
        # `cold` empties the work dir first: it deleted the exports generated into it (a review)
        sys.exit(f"--data-dir {data_dir} is inside --work-dir {work}, which `cold` empties")
    manifest = ensure_exports(data_dir, args.customers, args.seed, args.reuse)
    sizes = {name: info["rows"] for name, info in manifest["sources"].items()}
    print("raw rows: " + ", ".join(f"{name} {rows:,}" for name, rows in sizes.items()))
    month = args.month or month_after_data(data_dir)
    print(f"as-of month of every run: {month}; work dir {work}", flush=True)

    state = json.loads(state_path(work).read_text()) if state_path(work).exists() else {}
    failures = 0
    for measure in measures:
        print(f"\n== {measure} ({dt.datetime.now(dt.UTC):%H:%M:%S} UTC) ==", flush=True)
        print(
            f"host: 1 GiB of fresh memory in {fresh_memory_seconds():.2f} kernel seconds",
            flush=True,
        )
        if measure == "cold":
            if work.exists():
                shutil.rmtree(work)
            (work / "warehouse").mkdir(parents=True)
            link_exports(data_dir, work / "exports")
            result = run_cli(work, month, "cold")
            report_run(result)
            state = {}
            if failed(result):
                failures += 1
            else:
                state = {"cold": {k: v for k, v in result.items() if k != "output"}}
                state["versions_after_cold"] = versions_published(work)
                print(f"versions published: {state['versions_after_cold']}")
        elif measure == "nothing":
            before = versions_published(work)
            result = run_cli(work, month, "nothing")
            report_run(result, step_lines=False)
            if failed(result):
                failures += 1
                continue
            after = versions_published(work)
            said = [line for line in result["output"].splitlines() if "nothing to do" in line]
            verdict = "no version published" if after == before else "A VERSION WAS PUBLISHED"
            print(f"versions before {before}, after {after}: {verdict}")
            print(f"the CLI said: {said[0] if said else '(no nothing-to-do line)'}")
            state["nothing"] = {k: v for k, v in result.items() if k != "output"}
        elif measure == "incremental":
            target = work / "exports" / "orders" / NEW_ORDERS_FILE
            if target.exists():
                sys.exit(f"{target} is already staged: run `cold` first")
            frame = new_orders(data_dir, args.new_share, args.seed)
            frame.write_parquet(target)
            print(
                f"added {target.name}: {frame.height:,} new orders of "
                f"{frame['customer_id'].n_unique():,} existing customers on "
                f"{frame['ordered_at'][0][:10]}"
            )
            before = versions_published(work)
            result = run_cli(work, month, "incremental")
            report_run(result)
            if failed(result):
                failures += 1
                continue
            print(f"versions before {before}, after {versions_published(work)}")
            cold = state.get("cold")
            if cold:
                print(
                    f"incremental CPU / cold CPU: {result['cpu']:.1f} / {cold['cpu']:.1f} s = "
                    f"{100 * result['cpu'] / cold['cpu']:.0f} % (target <= 25 %); wall "
                    f"{result['wall']:.1f} / {cold['wall']:.1f} s"
                )
                for step, seconds in sorted(result["steps"].items(), key=lambda kv: -kv[1])[:8]:
                    print(
                        f"    {step:34} {seconds:7.1f} s, CPU {figure(result['step_cpu'], step)} "
                        f"(cold: {figure(cold['steps'], step)}, CPU "
                        f"{figure(cold.get('step_cpu', {}), step)})"
                    )
            state["incremental"] = {k: v for k, v in result.items() if k != "output"}
        elif measure == "resent":
            reviews = sorted((work / "exports" / "reviews").glob("reviews_*"))[-1]
            copy = reviews.with_name(f"resent_{reviews.name}")
            if copy.exists():
                sys.exit(f"{copy} is already staged: run `cold` first")
            shutil.copy(reviews, copy)  # a copy, not a link: the exports' folder is linked
            print(
                f"dropped {copy.name}: a copy of {reviews.name} ({reviews.stat().st_size:,} bytes)"
            )
            before = versions_published(work)
            result = run_cli(work, month, "resent")
            report_run(result)
            if failed(result):
                failures += 1
                continue
            skipped = result["output"].count(" skipped ")
            said = [line for line in result["output"].splitlines() if "computed nothing" in line]
            after = versions_published(work)
            print(f"versions before {before}, after {after}; {skipped} steps skipped")
            print(f"the CLI said: {said[0] if said else '(no computed-nothing line)'}")
            state["resent"] = {k: v for k, v in result.items() if k != "output"}
        elif measure == "plain":
            cold = state.get("cold")
            if not cold or not state.get("versions_after_cold"):
                sys.exit("run `cold` first: the plain path is compared with its steps")
            missing = [s for s in INGEST_TO_VALUE if s not in cold["steps"]]
            if missing:  # a step of the path not run would count as 0 s and inflate the ratio
                sys.exit(f"the cold run has no time for {', '.join(missing)}: run `cold` again")
            outputs = project_outputs(work, state["versions_after_cold"][-1])
            out = work / "plain.json"
            load_before = load_average()
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--child-plain", str(data_dir), outputs["as_of"],
                 str(out)],
                check=True, cwd=REPO,
            )  # fmt: skip
            wall = time.perf_counter() - started
            plain = json.loads(out.read_text())
            print(
                f"plain pandas + lifetimes path, as of {outputs['as_of']}: {plain['total']:.1f} s "
                f"(process wall incl. imports {wall:.1f} s), CPU {plain['cpu']:.1f} s (imports "
                "not counted), peak RSS "
                f"{plain['peak_rss_gib']:.2f} GiB; load average {load_before} before, "
                f"{load_average()} after"
            )
            for name, seconds in plain["stages"].items():
                print(f"    {name:55} {seconds:7.1f} s")
            steps = cold["steps"]
            ours = sum(steps.get(s, 0.0) for s in INGEST_TO_VALUE)
            beside = sum(steps.get(s, 0.0) for s in NEEDED_BESIDE)
            print("project, the same stages in the cold run (seconds the CLI printed):")
            for s in (*INGEST_TO_VALUE, *NEEDED_BESIDE):
                print(f"    {s:55} {steps.get(s, float('nan')):7.1f} s")
            print(
                f"ingest-to-value: project {ours:.1f} s vs plain {plain['total']:.1f} s: "
                f"{plain['total'] / ours:.1f}x (target >= 3x); with what the project needs "
                f"beside ({', '.join(NEEDED_BESIDE)}): {ours + beside:.1f} s, "
                f"{plain['total'] / (ours + beside):.1f}x"
            )
            step_cpu = cold.get("step_cpu", {})
            if step_cpu:  # the same in CPU seconds: less moved by the host's load
                ours_cpu = sum(step_cpu.get(s, 0.0) for s in INGEST_TO_VALUE)
                print(
                    f"in CPU seconds: project {ours_cpu:.1f} s vs plain {plain['cpu']:.1f} s: "
                    f"{plain['cpu'] / ours_cpu:.2f}x"
                )
            fit = outputs["fit"]
            print(
                f"customers scored: plain {plain['customers']:,}, project {outputs['customers']:,}"
            )
            print(f"plain BG/NBD {plain['bgnbd']}, Gamma-Gamma {plain['gamma_gamma']}")
            print(f"project work.model_fit:\n{fit.to_string()}")
            clv = f"plain {plain['clv_sum']:,.0f}, project {outputs['clv_sum']:,.0f}"
            print(f"12-month CLV, sum over customers: {clv}")
            state["plain"] = plain
        state_path(work).parent.mkdir(parents=True, exist_ok=True)
        state_path(work).write_text(json.dumps(state, default=str))
    if failures:
        sys.exit(f"{failures} run(s) failed: see FAILED above")


if __name__ == "__main__":
    main()
