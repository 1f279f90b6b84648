"""Benchmark: daily operation, a cold run then one run per day of new orders, with retention.

    .venv/bin/python benchmarks/daily_operation.py                       # 20k customers, 5 days
    .venv/bin/python benchmarks/daily_operation.py --customers 1000000 --days 3 --reuse

What a data engineer's schedule does (issue 12): the retailer's exports are generated once
(benchmarks/bench_pipeline.py's generator and work-dir layout), then `engagement-box run --month
M` runs cold; each following day one new orders export (--share of the orders, for existing
customers, on the next day) is added and the same command runs again, then the retention job
(`dagster job execute -j version_retention`, ENGAGEMENT_KEEP_VERSIONS=--keep-versions) as its
daily schedule would. Each day prints:

- the run's wall and CPU (user + sys of it and its children) and its CPU against the cold run's;
- the steps that did not take their incremental path (from each step's `computation` metadata
  in the Dagster instance: "incremental", "unchanged", "assigned" are the daily paths);
- after retention: the rows of the working database's `work.*` tables, the as-ofs they hold,
  and the current version. The as-of moves each day; retention must keep the work tables
  bounded (the retained versions' as-ofs and each table's newest), and the next day must still
  carry from a kept as-of instead of going cold.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bench  # noqa: E402

from engagement_box.incremental import DAILY_PATHS  # noqa: E402
from engagement_box.sql import load_sql  # noqa: E402


def step_paths(work: Path) -> dict[str, str]:
    """Each asset's `computation` metadata of its latest materialization (the day's run)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    with dg.DagsterInstance.get() as instance:
        paths = {}
        for key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(key)
            materialization = event.asset_materialization if event else None
            if materialization and "computation" in materialization.metadata:
                paths[key.to_user_string()] = str(materialization.metadata["computation"].value)
        return paths


def retention(work: Path, keep_versions: int) -> float:
    """The retention job as its schedule runs it; returns its wall seconds."""
    env = {**bench.environment(work), "ENGAGEMENT_KEEP_VERSIONS": str(keep_versions)}
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute",
         "-m", "pipelines.definitions", "-j", "version_retention"],
        cwd=bench.REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"retention failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def work_state(work: Path) -> tuple[int, list[str], str]:
    """Rows of the work tables kept per as-of, the as-ofs they hold, the current version."""
    database = work / "warehouse" / "engagement.working.duckdb"
    con = duckdb.connect(str(database), read_only=True)
    try:
        tables = [row[0] for row in con.execute(load_sql("marts/work_tables_by_as_of")).fetchall()]
        rows, as_ofs = 0, set()
        for table in tables:
            name = f'work."{table}"'
            rows += con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            as_ofs |= {
                str(r[0])
                for r in con.execute(
                    f"SELECT DISTINCT as_of FROM {name} WHERE as_of IS NOT NULL"
                ).fetchall()
            }
        current = con.execute(
            "SELECT snapshot_id, as_of FROM marts.snapshots WHERE is_current"
        ).fetchone()
        return rows, sorted(as_ofs), f"{current[0]} (as of {current[1]})" if current else "none"
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--share", type=float, default=0.01, help="new orders per day")
    parser.add_argument("--keep-versions", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20260630)
    parser.add_argument("--data-dir", type=Path, help="default /tmp/daily_operation/exports-<n>")
    parser.add_argument("--work-dir", type=Path, help="default /tmp/daily_operation/work-<n>")
    parser.add_argument("--reuse", action="store_true", help="reuse the generated exports")
    args = parser.parse_args()
    base = Path("/tmp/daily_operation")
    data = args.data_dir or base / f"exports-{args.customers}"
    work = args.work_dir or base / f"work-{args.customers}"

    bench.ensure_exports(data, args.customers, args.seed, args.reuse)
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    bench.link_exports(data, work / "exports")
    month = bench.month_after_data(data)
    print(f"as-of month {month}; retention keeps {args.keep_versions} versions; work dir {work}")

    cold = bench.run_cli(work, month, "cold")
    if cold["exit"]:
        sys.exit(f"the cold run failed: see {cold['log']}")
    rows, as_ofs, current = work_state(work)
    print(
        f"cold : wall {cold['wall']:6.1f} s, CPU {cold['cpu']:6.1f} s; work rows {rows:,} "
        f"as of {', '.join(as_ofs)}; current version {current}",
        flush=True,
    )
    for day in range(1, args.days + 1):
        frame = bench.new_orders(data, args.share, args.seed + day, days_after=day)
        frame.write_parquet(work / "exports" / "orders" / f"orders_bench_day{day}.parquet")
        run = bench.run_cli(work, month, f"day{day}")
        if run["exit"]:
            sys.exit(f"day {day}'s run failed: see {run['log']}")
        paths = step_paths(work)
        not_daily = {k: v for k, v in paths.items() if v not in DAILY_PATHS}
        kept_seconds = retention(work, args.keep_versions)
        rows, as_ofs, current = work_state(work)
        print(
            f"day {day}: wall {run['wall']:6.1f} s, CPU {run['cpu']:6.1f} s = "
            f"{run['cpu'] / cold['cpu']:.0%} of cold; {frame.height:,} new orders; "
            f"{len(paths) - len(not_daily)} steps on their daily path, "
            f"the others: {not_daily or 'none'}; retention {kept_seconds:.1f} s;"
            f" work rows {rows:,} as of {', '.join(as_ofs)}; current version {current}",
            flush=True,
        )


if __name__ == "__main__":
    main()
