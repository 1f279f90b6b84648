"""The Spark engine's staging on a day with one new orders file: validating only the new file
(each other file's validated rows taken from the lake, `spark/staging.py::ValidatedFiles`)
against validating every file again (what every staging did before 2026-12-06, and what a
forced run does), from the same exports to the same staged tables.

    nice -n 10 .venv/bin/python benchmarks/bench_spark_day.py --customers 100000

Generates the exports (seeded) unless --exports is given, stages them once (cold), adds one
orders file of 1 % new orders on the day after the last (`bench_pipeline.new_orders`), then
stages twice: with the validated files taken again, then with every file validated again
(`reuse=False`). Prints wall and CPU seconds (this process, the JVM and Spark's Python
workers) per staging, the files each validated, and whether the two stagings' tables are equal.
"""

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code, not another worktree's editable install
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_pipeline import new_orders  # noqa: E402
from bench_spark import _jvm_pid, cpu, jvm_cpu  # noqa: E402

from engagement_box.generator import GeneratorConfig, generate  # noqa: E402
from engagement_box.spark import pipeline  # noqa: E402
from engagement_box.spark.session import local_session  # noqa: E402
from engagement_box.spark.tables import SparkTables  # noqa: E402
from engagement_box.staging.contracts import SOURCES  # noqa: E402

NOW = datetime(2026, 12, 1)  # after the generated data, whatever the clock says
CODE = "bench"  # the code every staging here runs: the same, so only the files differ


def table_digest(spark, name: str) -> tuple[int, str]:
    """(rows, a digest of the rows in any order) of a staged table, without the run's columns."""
    import polars as pl

    frame = pl.from_arrow(spark.table(name).drop("run_id", "quarantined_at").toArrow())
    hashes = frame.hash_rows(seed=0).sort().to_numpy().tobytes()
    return frame.height, hashlib.sha256(hashes).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--exports", type=Path, help="use these exports instead of generating")
    parser.add_argument("--work", type=Path, help="default: a new temporary folder")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-spark-day-"))
    work.mkdir(parents=True, exist_ok=True)
    exports = args.exports or work / "exports"
    if args.exports is None:
        generate(exports, GeneratorConfig(customers=args.customers))
    spark = local_session(args.master, 4)
    spark.sparkContext.setLogLevel("ERROR")
    jvm = _jvm_pid()
    tables = SparkTables(spark, work / "lake")

    def staged(label: str, **options) -> dict:
        started, used, jvm_used = time.perf_counter(), cpu(), jvm_cpu(jvm)
        reports = pipeline.stage_all(tables, exports, label, NOW, code=CODE, **options)
        seconds = time.perf_counter() - started
        spent = cpu() - used + jvm_cpu(jvm) - jvm_used
        validated = sum(r.files_validated for r in reports.values())
        files = sum(r.files for r in reports.values())
        rows = sum(r.rows_read for r in reports.values())
        print(
            f"{label:34} {seconds:7.1f} s wall {spent:7.1f} s CPU; "
            f"{validated} of {files} files validated, {rows:,} rows read",
            flush=True,
        )
        return {name: table_digest(spark, f"staging.{name}") for name in [*SOURCES, "quarantine"]}

    staged("cold (every file)")
    day = new_orders(exports, 0.01, args.seed, days_after=1)
    day.write_parquet(exports / "orders" / "orders_bench_day.parquet")
    print(f"added orders/orders_bench_day.parquet: {day.height:,} new orders", flush=True)
    only_new = staged("day: the new file validated")
    every = staged("day: every file validated again", reuse=False)
    same = only_new == every
    print(f"staged tables and quarantine equal: {same}")
    for name, (rows, digest) in every.items():
        differs = "" if only_new[name] == every[name] else " DIFFERS"
        print(f"  {name:12} {rows:>10,} rows {digest}{differs}")
    spark.stop()
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
