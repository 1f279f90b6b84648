"""Benchmark: the incremental steps, cold vs incremental, on one day of new orders.

Takes a working database with exports A staged (e.g. after `engagement-box run`) and a new
orders export file B (new orders of existing customers). Computes the three steps cold on A
with this checkout's code (recording their state, as a run does), copies the database twice and
stages B into both; then, per step, computes the cold path on one copy and the incremental path
on the other and prints CPU seconds (process time: every DuckDB thread counted) and wall
seconds of each, and checks that both give the same rows:

* identity links: `build_identity_links` vs `refresh_identity_links`;
* orders per buyer and day: `refresh_buyer_days` without a state (cold) vs with A's (B added);
* customer summary: `customer_summary` vs `customer_summary_since`;
* calibration/holdout: `calibration_holdout` vs `calibration_holdout_since`;
* personas: a k-means fit (`build_personas`, a refit day) vs assigning with the stored model
  (`assign_personas`, every other day), on the features of the as-of the database holds (its
  engagement values and RFM rows); assigning with the model on the data it was fitted on must
  give the fit's rows.

The window is the one a run of the current month computes (`assets.value.resolve_window`), with
the default settings. Nothing is written to the given database.

    .venv/bin/python benchmarks/bench_incremental.py --working-db W.working.duckdb \\
        --new-orders orders_2026-11-01.csv
    .venv/bin/python benchmarks/bench_incremental.py --working-db W.working.duckdb \\
        --draw-from data/sample     # B drawn from the exports W was staged from
"""

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code, not another worktree's editable install

from assets.value import _MOVING_KEYS, resolve_window  # noqa: E402
from engagement_box import incremental, partitioned  # noqa: E402
from engagement_box.engagement import personas  # noqa: E402
from engagement_box.identity import links  # noqa: E402
from engagement_box.staging.ingestion import ingest_source  # noqa: E402
from engagement_box.value import rfm  # noqa: E402
from engagement_box.value import summary as summaries  # noqa: E402
from pipelines.resources import ModelSettings  # noqa: E402


def timed(fn, *args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def sorted_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("customer_id")


def same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    a, b = sorted_frame(a), sorted_frame(b.select(a.columns))
    if a.shape != b.shape:
        return False
    for column in a.columns:
        x, y = a[column], b[column]
        if x.dtype.is_float():
            if not ((x - y).abs() <= 1e-9 * y.abs().clip(lower_bound=1.0)).all():
                return False
        elif not x.equals(y):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--working-db", type=Path, required=True)
    new = parser.add_mutually_exclusive_group(required=True)
    new.add_argument("--new-orders", type=Path, help="an orders export file B of new orders")
    new.add_argument(
        "--draw-from",
        type=Path,
        help="the exports folder the working database was staged from: B is then 1 %% of its "
        "orders drawn as new ones on the day after its last (bench_pipeline.py's new orders)",
    )
    args = parser.parse_args()
    if not args.working_db.is_file():
        parser.error(f"no working database at {args.working_db}: run `engagement-box run` first")
    if args.new_orders is not None and not args.new_orders.is_file():
        parser.error(f"no orders file at {args.new_orders} (or use --draw-from EXPORTS)")
    if args.draw_from is not None and not (args.draw_from / "orders").is_dir():
        parser.error(f"no orders folder in {args.draw_from}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exports = tmp / "exports"
        (exports / "orders").mkdir(parents=True)
        if args.draw_from is not None:
            import bench_pipeline

            drawn = bench_pipeline.new_orders(args.draw_from, 0.01, 20260630)
            drawn.write_parquet(exports / "orders" / bench_pipeline.NEW_ORDERS_FILE)
            print(f"B: {drawn.height:,} new orders drawn from {args.draw_from}")
        else:
            shutil.copy(args.new_orders, exports / "orders" / args.new_orders.name)
        base = tmp / "a.duckdb"
        shutil.copy(args.working_db, base)
        run_a(base)
        cons = {}
        for path in ("cold", "incremental"):
            shutil.copy(base, tmp / f"{path}.duckdb")
            con = duckdb.connect(str(tmp / f"{path}.duckdb"))
            ingest_new_orders(con, exports)
            cons[path] = con
        window = resolve_window(cons["cold"], ModelSettings(), None, run_date=dt.date.today())
        money = {"currency": window["currency"], "fx_rates": json.loads(window["fx_rates"])}
        settings = {k: v for k, v in window.items() if k not in _MOVING_KEYS}
        print(f"as of {window['as_of']}, calibration end {window['calibration_end']}")
        print(f"{'step':24} {'path':12} {'cpu s':>8} {'wall s':>8}  note")

        # identity links
        cold_rates, cpu, wall = timed(links.build_identity_links, cons["cold"])
        print(f"{'identity_links':24} {'cold':12} {cpu:8.2f} {wall:8.2f}")
        (rates, plan), cpu, wall = timed(links.refresh_identity_links, cons["incremental"])
        statement = "SELECT * FROM intermediate.identity_links ORDER BY ALL"
        equal = cons["cold"].execute(statement).fetchall() == (
            cons["incremental"].execute(statement).fetchall()
        )
        print(
            f"{'identity_links':24} {plan.metadata()['computation']:12} {cpu:8.2f} {wall:8.2f}"
            f"  equal to cold: {equal}"
        )

        # orders per buyer and day: the cold copy forgets A's state, so it is built in full
        days_settings = summaries.buyer_days_settings(window["currency"], window["fx_rates"])
        cons["cold"].execute("DELETE FROM work.incremental_state WHERE table_name = 'buyer_days'")
        for path in ("cold", "incremental"):
            now = incremental.inputs(cons[path], days_settings)
            plan, cpu, wall = timed(summaries.refresh_buyer_days, cons[path], now, **money)
            note = ""
            if path == "incremental":
                statement = "SELECT * FROM work.buyer_days ORDER BY ALL"
                equal = cons["cold"].execute(statement).fetchall() == (
                    cons["incremental"].execute(statement).fetchall()
                )
                note = f"equal to cold: {equal}"
            computation = plan.metadata()["computation"]
            print(f"{'buyer_days':24} {computation:12} {cpu:8.2f} {wall:8.2f}  {note}")

        # customer summary and calibration/holdout
        con = cons["incremental"]
        now = incremental.inputs(con, settings)
        for table in ("customer_summary", "calibration_holdout"):
            plan = incremental.plan(con, table, window["as_of"], now)
            if table == "customer_summary":
                cold, cpu, wall = timed(
                    summaries.customer_summary, cons["cold"], window["as_of"], stored=True
                )
            else:
                cold, cpu, wall = timed(
                    summaries.calibration_holdout,
                    cons["cold"],
                    window["calibration_end"],
                    window["as_of"],
                    stored=True,
                )
            print(f"{table:24} {'cold':12} {cpu:8.2f} {wall:8.2f}  {cold.height} rows")
            if not plan.incremental:
                print(f"{table:24} {'cold':12} {'':8} {'':8}  {plan.reason}")
                continue
            if table == "customer_summary":
                (rows, changed), cpu, wall = timed(
                    summaries.customer_summary_since,
                    con,
                    plan.previous_as_of,
                    plan.new_files,
                    window["as_of"],
                )
            else:
                previous_end = dt.date.fromisoformat(plan.previous["calibration_end"])
                (rows, changed), cpu, wall = timed(
                    summaries.calibration_holdout_since,
                    con,
                    plan.previous_as_of,
                    previous_end,
                    plan.new_files,
                    window["calibration_end"],
                    window["as_of"],
                )
            print(
                f"{table:24} {'incremental':12} {cpu:8.2f} {wall:8.2f}  {changed} customers "
                f"recomputed, equal to cold: {same(cold, rows)}"
            )
        personas_step(cons["cold"])
        for con in cons.values():
            con.close()


def personas_step(con: duckdb.DuckDBPyConnection) -> None:
    """The persona step's two paths on the latest as-of the database holds engagement values for."""
    as_of = con.execute("SELECT max(as_of) FROM work.engagement_value").fetchone()[0]
    if as_of is None:
        print(f"{'customer_persona':24} {'':12} {'':8} {'':8}  no engagement values to cluster")
        return
    features = con.execute(
        "SELECT e.customer_id, r.days_since_last_order, r.order_count, r.total_spend, e.clv, "
        "e.crv, e.civ, e.ckv, e.social_points, "
        "e.crv_referrals, e.civ_gained, e.civ_ceded, e.review_count FROM work.engagement_value e "
        "JOIN work.customer_rfm r USING (customer_id, as_of) "
        "WHERE e.as_of = $as_of AND r.segment <> $prospect ORDER BY e.customer_id",
        {"as_of": as_of, "prospect": rfm.PROSPECT},
    ).pl()
    fitted, cpu, wall = timed(personas.build_personas, features)
    print(
        f"{'customer_persona':24} {'refit':12} {cpu:8.2f} {wall:8.2f}  "
        f"{features.height} customers as of {as_of}, k = {fitted.k}"
    )
    (assignments, profiles), cpu, wall = timed(personas.assign_personas, features, fitted.model)
    equal = assignments.equals(fitted.assignments) and profiles.equals(fitted.profiles)
    print(
        f"{'customer_persona':24} {'assigned':12} {cpu:8.2f} {wall:8.2f}  "
        f"with the stored model, equal to the fit: {equal}"
    )


def run_a(database: Path) -> None:
    """The identity links, orders per buyer and day, customer summary and calibration/holdout of
    A, cold, with their state recorded (what a run of A leaves behind)."""
    con = duckdb.connect(str(database))
    try:
        links.build_identity_links(con)
        window = resolve_window(con, ModelSettings(), None, run_date=dt.date.today())
        money = {"currency": window["currency"], "fx_rates": json.loads(window["fx_rates"])}
        settings = {k: v for k, v in window.items() if k not in _MOVING_KEYS}
        days_settings = summaries.buyer_days_settings(window["currency"], window["fx_rates"])
        summaries.refresh_buyer_days(con, incremental.inputs(con, days_settings), **money)
        now = incremental.inputs(con, settings)
        frames = {
            "customer_summary": summaries.customer_summary(con, window["as_of"], stored=True),
            "calibration_holdout": summaries.calibration_holdout(
                con, window["calibration_end"], window["as_of"], stored=True
            ),
        }
        for table, frame in frames.items():
            state = incremental.record(
                con,
                table,
                window["as_of"],
                now,
                frame.height,
                calibration_end=window["calibration_end"],
            )
            partitioned.write_partition(con, "work", table, frame, window["as_of"], also=state)
        print(f"A: as of {window['as_of']}, calibration end {window['calibration_end']}")
    finally:
        con.close()


def ingest_new_orders(con: duckdb.DuckDBPyConnection, exports: Path) -> None:
    """Stage the new orders file alone: the folder holds only B, and A's files stay staged
    (ingestion never removes the rows of a file that left the folder)."""
    ingest_source(con, exports, "orders")


if __name__ == "__main__":
    main()
