"""Benchmark: the cost of versioning, time travel latency, and disk growth over daily runs.

    .venv/bin/python benchmarks/bench_versions.py --customers 1000000     # publish + time travel
    .venv/bin/python benchmarks/bench_versions.py --daily-runs 30         # 30 daily runs
    .venv/bin/python benchmarks/bench_versions.py --daily-runs 10 --keep-versions 3

Targets (issue 5): publishing all marts as a version for 1M customers costs <= 10 s over the
unversioned write; a point query on any retained version answers in under a second; disk growth
is bounded by the retention policy. Issue 12: the publish includes rebuilding the file analysts
open (`readers.publish`: the new version's Parquet files, then a new file renamed over the old);
it is timed on its own too, and the time travel query runs on that published file.
"""

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from engagement_box.frames import write_frame
from engagement_box.governance import readers, versions

MARTS = ("customer_rfm", "customer_value", "engagement_value", "customer_persona")


def synthetic_marts(n: int, seed: int) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = pl.Series("customer_id", [f"C{i:07d}" for i in range(n)])
    segments = np.array(["Champions", "At Risk", "Hibernating", "Loyal Customers", "Promising"])
    quadrants = np.array(["Champions", "Affluents", "Advocates", "Misers"])
    floats = lambda k: {f"v{i}": rng.gamma(2.0, 50.0, n) for i in range(k)}  # noqa: E731
    return {
        "customer_rfm": pl.DataFrame(
            {
                "customer_id": ids,
                "segment": segments[rng.integers(0, 5, n)],
                "r_score": rng.integers(1, 6, n),
                "f_score": rng.integers(1, 6, n),
                "m_score": rng.integers(1, 6, n),
                **floats(3),
            }
        ),  # fmt: skip
        "customer_value": pl.DataFrame({"customer_id": ids, **floats(10)}),
        "engagement_value": pl.DataFrame(
            {
                "customer_id": ids,
                "quadrant": quadrants[rng.integers(0, 4, n)],
                "cev": rng.gamma(2.0, 80.0, n),
                **floats(14),
            }
        ),  # fmt: skip
        "customer_persona": pl.DataFrame({"customer_id": ids, "persona_id": rng.integers(0, 5, n)}),
    }


def publish_cost(customers: int, versions_to_publish: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = readers.Layout(Path(tmp) / "bench.duckdb", Path(tmp) / "bench.working.duckdb")
        con = duckdb.connect(str(layout.working))
        plain_total = versioned_total = readers_total = 0.0
        for k in range(versions_to_publish):
            frames = synthetic_marts(customers, seed=k)
            for name, frame in frames.items():
                write_frame(con, "work", name, frame)
            started = time.perf_counter()
            con.execute("CREATE SCHEMA IF NOT EXISTS plain")
            for name in MARTS:  # the unversioned write: replace the table
                con.execute(f"CREATE OR REPLACE TABLE plain.{name} AS SELECT * FROM work.{name}")
            plain = time.perf_counter() - started
            started = time.perf_counter()
            snapshot = versions.publish(
                con, list(MARTS), run_id="bench", partition_key=None,
                as_of=str(dt.date(2026, 1, 1) + dt.timedelta(days=k)), settings={},
            )  # fmt: skip
            versions_only = time.perf_counter() - started
            done = readers.publish(con, layout)
            versioned = time.perf_counter() - started
            plain_total += plain
            versioned_total += versioned
            readers_total += done.seconds
            print(
                f"version {snapshot.snapshot_id}: unversioned write {plain:6.2f} s, "
                f"versioned publish {versioned:6.2f} s (versions {versions_only:5.2f} s + "
                f"published file {done.seconds:5.2f} s, of which Parquet "
                f"{done.parquet_seconds:5.2f} s), overhead {versioned - plain:6.2f} s"
            )
        latencies = []
        reader = duckdb.connect(str(layout.published), read_only=True)
        for k in range(1, versions_to_publish + 1):
            for customer in ("C0000042", f"C{customers - 1:07d}"):
                started = time.perf_counter()
                rows = reader.execute(
                    "SELECT * FROM marts.customer_value_at($v) WHERE customer_id = $c",
                    {"v": k, "c": customer},
                ).fetchall()
                latencies.append(time.perf_counter() - started)
                assert len(rows) == 1
        reader.close()
        size = os.path.getsize(layout.working)
        published_size = os.path.getsize(layout.published)
        history_size = sum(f.stat().st_size for f in layout.history_dir.rglob("*.parquet"))
        con.close()
    print(f"{customers:,} customers, {len(MARTS)} marts, {versions_to_publish} versions")
    print(f"mean overhead of versioning per publish: "
          f"{(versioned_total - plain_total) / versions_to_publish:.2f} s")  # fmt: skip
    print(f"of which the published file and its Parquet: "
          f"{readers_total / versions_to_publish:.2f} s per publish")  # fmt: skip
    print(f"time travel point query (published file): max {max(latencies) * 1000:.0f} ms, "
          f"median {np.median(latencies) * 1000:.0f} ms over {len(latencies)} queries")  # fmt: skip
    print(
        f"working database: {size / 1024**2:.0f} MiB; published file: "
        f"{published_size / 1024**2:.0f} MiB; history Parquet: {history_size / 1024**2:.0f} MiB"
    )


def daily_runs(runs: int, keep_versions: int, share: float = 0.01) -> None:
    """Real runs of the whole graph on a copy of ENGAGEMENT_DATA_DIR (default: the bundled
    sample, or the generator's exports), each after one day of new orders (`share` of the
    orders, for existing customers, on the next day: benchmarks/bench_pipeline.py's), then
    retention: the versions retained, the files' size. (Without new orders every run after the
    first published nothing, as it should, and the growth was not measured; a review.)"""
    import sys

    from engagement_box import settings
    from pipelines.definitions import defs
    from pipelines.partitions import current_partition_key
    from pipelines.resources import (
        EngagementConfig,
        ExportsResource,
        ModelSettings,
        RetentionPolicy,
        warehouse_resource,
    )

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_pipeline

    source = settings.data_dir()
    if not (source / "_manifest.json").exists() or not any(
        (source / "orders").glob("orders_*.parquet")
    ):  # it failed with a traceback after the first run (a review)
        raise SystemExit(
            f"--daily-runs adds each day's orders drawn from the generator's exports: {source} "
            "has no _manifest.json or no orders_*.parquet file (use the bundled sample, or "
            "exports made by `engagement-box generate`)"
        )
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "w.duckdb"
        exports = Path(tmp) / "exports"
        bench_pipeline.link_exports(source, exports)
        resources = {
            "warehouse": warehouse_resource(database),
            "exports": ExportsResource(data_dir=str(exports)),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(Path(tmp) / "audiences")),
            "retention": RetentionPolicy(keep_versions=keep_versions, keep_days=10_000),
        }
        pipeline = defs.resolve_job_def("engagement_pipeline")
        retention = defs.resolve_job_def("version_retention")
        for run in range(1, runs + 1):
            day = ""
            if run > 1:  # the first run is the cold one; each later one a day of new orders
                frame = bench_pipeline.new_orders(source, share, 1000 + run, days_after=run - 1)
                frame.write_parquet(exports / "orders" / f"orders_day_{run - 1:03d}.parquet")
                day = f", +{frame.height:,} orders on {frame['ordered_at'][0][:10]}"
            started = time.perf_counter()
            result = pipeline.execute_in_process(
                resources=resources, partition_key=current_partition_key(), run_config=quiet
            )
            assert result.success, f"run {run} failed"
            assert retention.execute_in_process(resources=resources, run_config=quiet).success
            with duckdb.connect(str(database), read_only=True) as con:
                kept, newest = con.execute(
                    "SELECT count(*), max(snapshot_id) FROM marts.snapshots "
                    "WHERE expired_at IS NULL"
                ).fetchone()
            size = readers.default_working(database).stat().st_size
            published = database.stat().st_size + sum(
                f.stat().st_size
                for f in readers.Layout(database, database).history_dir.rglob("*.parquet")
            )
            print(f"run {run:3}: {time.perf_counter() - started:5.1f} s{day}; version {newest}, "
                  f"{kept} retained (keep {keep_versions}); working {size / 1024**2:6.1f} MiB, "
                  f"published + Parquet {published / 1024**2:6.1f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--daily-runs", type=int, default=0)
    parser.add_argument("--keep-versions", type=int, default=30)
    args = parser.parse_args()
    if not (args.customers or args.daily_runs):
        parser.error("give --customers N (publish and time travel) or --daily-runs N, or both")
    if args.customers:
        publish_cost(args.customers, args.versions)
    if args.daily_runs:
        daily_runs(args.daily_runs, args.keep_versions)


if __name__ == "__main__":
    main()
