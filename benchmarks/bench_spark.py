"""The Spark engine against the DuckDB engine on a generated retailer: seconds (wall and this
process's CPU) per stage, and whether every value mart the Spark engine builds equals the DuckDB
engine's.

    nice -n 10 .venv/bin/python benchmarks/bench_spark.py --customers 20000 [--master local[2]]
    nice -n 10 .venv/bin/python benchmarks/bench_spark.py \\
        --exports /tmp/bench_pipeline/exports-1000000 --driver-memory 6g

Generates the exports into a temporary folder (seeded) unless --exports is given, runs the DuckDB
engine (staging and identity functions, then its value assets) and the Spark engine's steps on
them with the same run time and as-of date, prints one line per stage and the parity of each mart
(integers and text exactly, numbers to 1e-9 relative; `tests/test_spark_parity.py`'s rule).
CPU seconds are this process's (DuckDB and the fits) plus its children's (the JVM and Spark's
Python workers) over the stage.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code, not another worktree's editable install

import duckdb  # noqa: E402

from engagement_box.generator import GeneratorConfig, generate  # noqa: E402
from engagement_box.identity.links import build_identity_links  # noqa: E402
from engagement_box.spark import lake, pipeline  # noqa: E402
from engagement_box.spark.session import local_session  # noqa: E402
from engagement_box.spark.tables import SparkTables  # noqa: E402
from engagement_box.staging.contracts import SOURCES  # noqa: E402
from engagement_box.staging.ingestion import ingest_source  # noqa: E402
from tests.spark_runs import materialize_duckdb_value_marts  # noqa: E402
from tests.test_spark_parity import (  # noqa: E402
    RUN_COLUMNS,
    VALUE_MARTS,
    assert_same_rows,
    duckdb_marts,
)

NOW = datetime(2026, 12, 1)


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def jvm_cpu(pid: int | None) -> float:
    """CPU seconds of a running child (the JVM) and all its descendants (Spark's Python workers),
    from /proc: RUSAGE_CHILDREN counts them only once they have exited."""
    if pid is None:
        return 0.0
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    tree, total = {pid}, 0.0
    changed = True
    while changed:
        more = {p for p, f in stats.items() if int(f[1]) in tree} - tree
        changed = bool(more)
        tree |= more
    for p in tree:
        if p in stats:
            f = stats[p]
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (this process, the JVM, Python workers)."""
    parents, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
            rss[int(entry.name)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, changed = {pid}, True
    while changed:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        changed = bool(more)
        tree |= more
    return sum(rss.get(p, 0) for p in tree)


class Sampler(threading.Thread):
    """Every second: the resident memory of this process's tree and the load average; the peak
    and the mean since the last `take`."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.loads = 0, []
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            rss, load = tree_rss(os.getpid()), os.getloadavg()[0]
            with self.lock:
                self.peak = max(self.peak, rss)
                self.loads.append(load)
            time.sleep(1.0)

    def take(self) -> tuple[float, float, float]:
        """(peak GiB, mean load, max load) since the last call."""
        with self.lock:
            loads = self.loads or [os.getloadavg()[0]]
            out = (self.peak / 2**30, sum(loads) / len(loads), max(loads))
            self.peak, self.loads = tree_rss(os.getpid()), []
        return out


def event_log_profile(folder: Path) -> None:
    """Per job description (the step that ran it, `SparkTables.execute` and `stage_all` set
    them): jobs, tasks, executor run time, executor CPU, JVM GC, shuffle written and spilled,
    from Spark's event log."""
    for log in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if log.stat().st_size == 0:
            continue
        stage_of, rows = {}, defaultdict(lambda: defaultdict(float))
        with log.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:  # the last line of a log still being written
                    continue
                kind = event.get("Event")
                if kind == "SparkListenerJobStart":
                    props = event.get("Properties") or {}
                    what = props.get("spark.job.description") or "(none)"
                    rows[what]["jobs"] += 1
                    for stage in event["Stage IDs"]:
                        stage_of[stage] = what
                elif kind == "SparkListenerTaskEnd" and event.get("Task Metrics"):
                    m, what = event["Task Metrics"], stage_of.get(event["Stage ID"], "(none)")
                    row = rows[what]
                    row["tasks"] += 1
                    row["run_s"] += m.get("Executor Run Time", 0) / 1e3
                    row["cpu_s"] += m.get("Executor CPU Time", 0) / 1e9
                    row["gc_s"] += m.get("JVM GC Time", 0) / 1e3
                    row["shuffle_mb"] += (
                        m.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0) / 2**20
                    )
                    row["spill_mb"] += m.get("Disk Bytes Spilled", 0) / 2**20
                    row["result_mb"] += m.get("Result Size", 0) / 2**20
        print(f"event log {log.name}: per job description")
        print(
            f"{'description':44} {'jobs':>5} {'tasks':>6} {'run s':>8} {'JVM cpu':>8} "
            f"{'GC s':>7} {'shuf MB':>8} {'spill MB':>8} {'result MB':>9}"
        )
        for what, row in sorted(rows.items(), key=lambda item: -item[1]["run_s"]):
            print(
                f"{what[:44]:44} {row['jobs']:5.0f} {row['tasks']:6.0f} {row['run_s']:8.1f} "
                f"{row['cpu_s']:8.1f} {row['gc_s']:7.1f} {row['shuffle_mb']:8.1f} "
                f"{row['spill_mb']:8.1f} {row['result_mb']:9.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--exports", type=Path, help="use these exports instead of generating")
    parser.add_argument("--as-of", type=date.fromisoformat, help="default: the last order day")
    parser.add_argument("--driver-memory", default=None, help="e.g. 6g (spark.driver.memory)")
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    parser.add_argument(
        "--work", type=Path, help="keep the DuckDB database, the lake and the event log here"
    )
    parser.add_argument("--jvm", choices=("fast", "large"), help="the session's JVM profile")
    parser.add_argument(
        "--duckdb-only", action="store_true", help="run the DuckDB engine only (for --duckdb)"
    )
    parser.add_argument(
        "--duckdb",
        type=Path,
        help="a working database an earlier run of this script left (its value marts): "
        "skip the DuckDB engine's stages",
    )
    parser.add_argument(
        "--profile-events", type=Path, help="only print the profile of this event log folder"
    )
    args = parser.parse_args()
    if args.profile_events:
        event_log_profile(args.profile_events)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    sampler = Sampler()
    sampler.start()
    exports = args.exports or work / "exports"
    if args.exports is None:
        generate(exports, GeneratorConfig(customers=args.customers))
    times: dict[str, dict[str, tuple[float, float]]] = {"duckdb": {}, "spark": {}}
    jvm: list[int | None] = [None]

    def timed(engine: str, stage: str, fn):
        started, used, jvm_used = time.perf_counter(), cpu(), jvm_cpu(jvm[0])
        out = fn()
        seconds = time.perf_counter() - started
        spent = cpu() - used + jvm_cpu(jvm[0]) - jvm_used
        times[engine][stage] = (seconds, spent)
        peak, load, top = sampler.take()
        print(
            f"{engine:7} {stage:32} {seconds:8.1f} s wall {spent:8.1f} s CPU "
            f"peak RSS {peak:5.1f} GiB  load {load:4.1f} (max {top:4.1f})",
            flush=True,
        )
        return out

    database = args.duckdb or work / "duck.duckdb"
    con = duckdb.connect(str(database))
    if args.duckdb is None:
        timed(
            "duckdb", "staging", lambda: [ingest_source(con, exports, s, "b", NOW) for s in SOURCES]
        )
        timed("duckdb", "identity", lambda: build_identity_links(con))
    as_of = (
        args.as_of
        or con.execute(
            "SELECT max(CAST(ordered_at AS DATE)) FROM staging.orders WHERE status = 'completed'"
        ).fetchone()[0]
    )
    con.close()
    if args.duckdb is None:
        timed(
            "duckdb",
            "value marts (assets)",
            lambda: materialize_duckdb_value_marts(database, as_of),
        )
    print(f"duckdb database {database}, as-of {as_of}", flush=True)
    if args.duckdb_only:
        return
    con = duckdb.connect(str(database), read_only=True)
    expected = duckdb_marts(con, as_of)
    con.close()

    if args.driver_memory:
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {args.driver_memory} pyspark-shell"
    events = work / "events"
    events.mkdir(exist_ok=True)
    extra = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.absolute().as_uri(),
        "spark.eventLog.compress": "false",  # plain JSON lines, one file per session
        "spark.eventLog.rolling.enabled": "false",
    }
    spark = timed(
        "spark",
        "session",
        lambda: local_session(args.master, args.shuffle_partitions, extra, jvm=args.jvm),
    )
    spark.sparkContext.setLogLevel("ERROR")
    jvm[0] = _jvm_pid()
    tables = SparkTables(spark, work / "lake")
    # every file validated, as a cold run does (a --work folder used before keeps validated files)
    timed("spark", "staging", lambda: pipeline.stage_all(tables, exports, "b", NOW, reuse=False))
    timed("spark", "identity", lambda: pipeline.build_identity(tables))
    marts, info = timed(
        "spark", "summaries + fits (driver)", lambda: pipeline.value_marts(tables, as_of, "USD", {})
    )
    timed("spark", "scores + marts written", lambda: lake.publish(work / "lake", marts, {}))
    print(f"exports {exports}, as-of {as_of}, fit rows {info['fit_rows']}")
    reader = duckdb.connect()
    lake.attach(reader, work / "lake")
    for mart in VALUE_MARTS:
        got = reader.execute(f"SELECT * FROM marts.{mart}").pl().drop(RUN_COLUMNS, strict=False)
        key = {
            "customer_rfm": ["customer_id"],
            "customer_value": ["customer_id"],
            "model_fit": ["model", "window"],
            "model_validation": ["model", "frequency_bucket"],
            "cohort_retention": ["cohort_month", "months_since_first_order"],
        }[mart]
        try:
            assert_same_rows(expected[mart], got, key)
            print(f"{mart}: equal ({got.height} rows)")
        except AssertionError as exc:
            print(f"{mart}: DIFFERS {str(exc)[:300]}")
    for engine, stages in times.items():
        wall = sum(s for s, _ in stages.values())
        spent = sum(c for _, c in stages.values())
        print(f"{engine:7} total {wall:8.1f} s wall {spent:8.1f} s CPU")
    spark.stop()
    event_log_profile(events)


def _jvm_pid() -> int | None:
    """The driver JVM's pid (a child of this process), for its CPU seconds."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == me and b"java" in cmd:
            return int(entry.name)
    return None


if __name__ == "__main__":
    main()
