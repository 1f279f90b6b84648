"""Benchmark: the floors under issue 12's two speed targets on this host, measured.

    .venv/bin/python benchmarks/bench_pipeline.py     # first: the exports, cold, ..., plain
    .venv/bin/python benchmarks/floors.py             # then: both floors, against those runs
    .venv/bin/python benchmarks/floors.py --data-dir /tmp/x --work-dir /tmp/w --only ingest

The exports and work dir are bench_pipeline.py's (the same defaults and options); the work dir's
bench_state.json gives the runs to set the floors against (`cold`, `incremental`, `plain`).

`benchmarks/bench_pipeline.py` measures the targets; this script measures how low each can go
with the work the pipeline cannot skip, to tell a target that needs tuning from one that needs a
different design or a different machine.

- ingest: DuckDB alone loads every raw orders export (the CSV files with its own
  parallel reader, the Parquet files) into a table of the staged types in a new database file,
  with both cores and nothing else: no trimming, no validation, no quarantine, no duplicate
  keys, no row numbers (the staged table's columns, NULL allowed). That is the least any
  ingestion into DuckDB costs. With the runs of the state file (`cold` and `plain`), it prints
  the best ingest-to-value ratio such an ingestion would give against the plain pandas +
  lifetimes path, the other steps as the cold run measured them.
- daily: on a copy of the work dir's working database, what a day's run must write
  however it computes: every `work.*` table that holds one partition per as-of gets the rows of
  its newest as-of again as the next day's, through the project's own `write_partition`; each
  published mart's new version is written to Parquet as `published_marts` writes it; then the
  checkpoint. With the state file's `cold` and `incremental` runs, the CPU of this writing, of
  the fits (the incremental run's `work__model_fit`) and of the process outside the steps
  (imports, Dagster) is set against the cold run's CPU and the 25 % target. The same rows are
  also written as one Parquet file per table by polars (lz4): the writing of a design where a
  work partition is a file and a version links its files instead of copying them, measured
  before building it.

Figures are CPU seconds of this process (every thread) and wall seconds; run on a quiet host.
"""

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bench  # noqa: E402

from assets.publish import MARTS  # noqa: E402
from engagement_box.governance.versions import partitioned_work_tables  # noqa: E402
from engagement_box.partitioned import read_partition, write_partition  # noqa: E402
from engagement_box.sql import quote_identifier, quote_literal  # noqa: E402
from engagement_box.staging.contracts import SOURCES  # noqa: E402
from engagement_box.staging.ingestion import create_staged_table, enum_type  # noqa: E402


@contextmanager
def measured(figures: dict, name: str):
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    figures[name] = (time.perf_counter() - wall, time.process_time() - cpu)


def load_state(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path else {}


def ingest_floor(data_dir: Path) -> tuple[int, float, float]:
    """DuckDB's bare load of every raw orders export under `data_dir` into a new database file:
    (rows loaded, wall seconds, CPU seconds)."""
    source = SOURCES["orders"]
    orders = data_dir / "orders"
    csv_files = sorted(str(p) for p in orders.glob("*.csv"))
    parquet_files = sorted(str(p) for p in orders.glob("*.parquet"))
    names = ", ".join(quote_identifier(c) for c in [*source.columns, "source_file"])
    with tempfile.TemporaryDirectory(prefix="floor_ingest_") as tmp:
        con = duckdb.connect(str(Path(tmp) / "floor.duckdb"))
        typed = ", ".join(
            f"try_cast({quote_identifier(c)} AS {t}) AS {quote_identifier(c)}"
            for c, t in _staged_table(con, source).items()
        )
        figures: dict = {}
        with measured(figures, "load"):
            if csv_files:
                con.execute(
                    f"INSERT INTO staging.orders ({names}, source_row) "
                    f"SELECT {typed}, filename, 0 FROM read_csv($files, all_varchar = true, "
                    # the exports' dialect, stated: the sniffer can miss a rare quoted field
                    "header = true, delim = ',', quote = '\"', escape = '\"', filename = true)",
                    {"files": csv_files},
                )
            if parquet_files:
                con.execute(
                    f"INSERT INTO staging.orders ({names}, source_row) "
                    f"SELECT {typed}, filename, 0 FROM read_parquet($files, filename = true)",
                    {"files": parquet_files},
                )
            con.execute("CHECKPOINT")
        rows = con.execute("SELECT count(*) FROM staging.orders").fetchone()[0]
        con.close()
    wall, cpu = figures["load"]
    return rows, wall, cpu


def _staged_table(con: duckdb.DuckDBPyConnection, source) -> dict[str, str]:
    """Create `staging.<source>` as ingestion does (its types, ENUMs and compression), then allow
    NULL everywhere (nothing is validated); returns each export column's SQL type."""
    con.execute("CREATE SCHEMA staging")
    create_staged_table(con, source)
    table = f"staging.{quote_identifier(source.name)}"
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'staging' AND table_name = $table",
            {"table": source.name},
        ).fetchall()
    )
    for column in types:
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {quote_identifier(column)} DROP NOT NULL")
    return {
        c: f"staging.{enum_type(source, c)}" if c in source.enumerations else types[c]
        for c in source.columns
    }


# The label of the alternative design's writes (not part of the day's writing as it is).
PARQUET_FILE = "as a file:"


def daily_floor(working: Path) -> list[tuple[str, int | None, float, float]]:
    """On a copy of the working database `working`: each per-as-of `work.*` table's newest rows
    written again as the next day's, each published mart's to Parquet, then the checkpoint.
    Returns (what, rows, wall seconds, CPU seconds) per write; `working` is only read."""
    figures: dict = {}
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="floor_daily_") as tmp:
        copy = Path(tmp) / "working.duckdb"
        shutil.copyfile(working, copy)
        con = duckdb.connect(str(copy))
        tables = partitioned_work_tables(con)
        newest = {
            t: con.execute(f"SELECT max(as_of) FROM work.{quote_identifier(t)}").fetchone()[0]
            for t in tables
        }
        for table, as_of in newest.items():
            if as_of is None:
                continue
            frame = read_partition(con, "work", table, as_of)  # not timed: the step's result
            rows[f"write work.{table}"] = frame.height
            with measured(figures, f"write work.{table}"):
                write_partition(con, "work", table, frame, as_of + dt.timedelta(days=1))
            as_file = Path(tmp) / f"{table}.work.parquet"
            with measured(figures, f"{PARQUET_FILE} {table}"):
                frame.write_parquet(as_file, compression="lz4")
            del frame
            rows[f"{PARQUET_FILE} {table}"] = (
                pl.scan_parquet(as_file).select(pl.len()).collect().item()
            )
        for mart in MARTS.values():
            if newest.get(mart) is None:
                continue
            with measured(figures, f"Parquet {mart}"):
                con.execute(
                    f"COPY (SELECT * FROM work.{quote_identifier(mart)} WHERE as_of = $as_of) "
                    f"TO {quote_literal(str(Path(tmp) / f'{mart}.parquet'))} (FORMAT parquet)",
                    {"as_of": newest[mart] + dt.timedelta(days=1)},
                )
        with measured(figures, "checkpoint and close"):
            con.execute("CHECKPOINT")
            con.close()
    return [(name, rows.get(name), wall, cpu) for name, (wall, cpu) in figures.items()]


def print_ingest(data_dir: Path, repeats: int, state: dict) -> None:
    orders = data_dir / "orders"
    files = sorted(orders.iterdir())
    print(
        f"ingest floor: {sum(p.suffix == '.csv' for p in files)} CSV and "
        f"{sum(p.suffix == '.parquet' for p in files)} Parquet orders files "
        f"({sum(p.stat().st_size for p in files) / 1e6:.0f} MB) loaded by DuckDB into one table "
        "of the staged types, both cores, nothing validated"
    )
    walls = []
    for attempt in range(1, repeats + 1):
        rows, wall, cpu = ingest_floor(data_dir)
        walls.append(wall)
        print(f"  attempt {attempt}: {rows:,} rows in {wall:.1f} s wall, {cpu:.1f} CPU-s")
    if not state.get("cold") or not state.get("plain"):
        # the comparison needs both: `bench_pipeline.py --reuse cold plain` first (it stopped
        # with KeyError: 'plain'; a review)
        print("(no cold run and plain path in the bench's state: run bench_pipeline.py cold plain")
        print(" on the same --work-dir for the comparison with the ingest-to-value target)")
        return
    wall = min(walls)
    steps, step_cpu = state["cold"]["steps"], state["cold"].get("step_cpu", {})
    others = [s for s in bench.INGEST_TO_VALUE if s != "staging__orders"]
    rest = sum(steps.get(s, 0.0) for s in others)
    project = rest + steps.get("staging__orders", 0.0)
    plain = state["plain"]["total"]
    print(
        f"cold run: staging__orders {steps.get('staging__orders', 0.0):.1f} s wall "
        f"({step_cpu.get('staging__orders', 0.0):.1f} CPU-s); the other ingest-to-value steps "
        f"{rest:.1f} s ({', '.join(others)})"
    )
    print(
        f"ingest-to-value: measured {project:.1f} s, {plain / project:.2f}x the plain path "
        f"({plain:.1f} s); with staging__orders replaced by the fastest bare load above: "
        f"{rest + wall:.1f} s, {plain / (rest + wall):.2f}x; the 3x target needs "
        f"<= {plain / 3:.1f} s in all"
    )


def print_daily(work: Path, state: dict) -> None:
    working = work / "warehouse" / "engagement.working.duckdb"
    if not working.exists():
        sys.exit(f"{working} does not exist: run `bench_pipeline.py --work-dir {work} cold` first")
    print(f"daily floor on a copy of {working} ({working.stat().st_size / 1e9:.1f} GB)")
    figures = daily_floor(working)
    for name, count, wall, cpu in figures:
        label = f"{name} ({count:,} rows)" if count is not None else name
        print(f"  {label:52} {wall:5.2f} s wall {cpu:5.2f} CPU-s")
    writing = sum(cpu for name, *_, cpu in figures if not name.startswith(PARQUET_FILE))
    as_files = sum(cpu for name, *_, cpu in figures if name.startswith(PARQUET_FILE))
    print(f"  writing a day's outputs: {writing:.1f} CPU-s (the audience files not included)")
    print(
        f"  the same rows as one Parquet file per work table, which a version would link: "
        f"{as_files:.1f} CPU-s"
    )
    if not state.get("cold"):
        return
    cold, incremental = state["cold"], state.get("incremental")
    print(f"cold run: {cold['cpu']:.1f} CPU-s; 25 % of it: {0.25 * cold['cpu']:.1f} CPU-s")
    if incremental:
        step_cpu = incremental.get("step_cpu", {})
        fits = step_cpu.get("work__model_fit", 0.0)
        outside = incremental["cpu"] - sum(step_cpu.values())
        floor = writing + fits + outside
        print(
            f"1 % run: measured {incremental['cpu']:.1f} CPU-s "
            f"({100 * incremental['cpu'] / cold['cpu']:.0f} % of cold); its fits {fits:.1f} and "
            f"the process outside the steps {outside:.1f} CPU-s"
        )
        print(
            f"floor (writing + fits + outside the steps, nothing computed): {floor:.1f} CPU-s = "
            f"{100 * floor / cold['cpu']:.0f} % of cold; left for all the day's computing under "
            f"the target: {0.25 * cold['cpu'] - floor:.1f} CPU-s (the run computes for "
            f"{incremental['cpu'] - floor:.1f} now)"
        )
        saved = writing - as_files
        day, whole = incremental["cpu"] - saved, cold["cpu"] - saved  # both write these rows
        print(
            f"with work partitions as files that versions link (computing as it is): the 1 % "
            f"run at about {day:.1f} CPU-s, the cold run {whole:.1f}: {100 * day / whole:.0f} %"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="as bench_pipeline.py")
    parser.add_argument(
        "--data-dir", type=Path, help="the raw exports (default: bench_pipeline.py's)"
    )
    parser.add_argument("--work-dir", type=Path, help="its work dir (default: bench_pipeline.py's)")
    parser.add_argument("--state", type=Path, help="default: the work dir's bench_state.json")
    parser.add_argument("--repeats", type=int, default=2, help="ingest floor attempts")
    parser.add_argument("--only", choices=("ingest", "daily"), help="one of the two floors")
    args = parser.parse_args()
    base = Path("/tmp/bench_pipeline")  # bench_pipeline.py's defaults
    data_dir = args.data_dir or base / f"exports-{args.customers}"
    work = args.work_dir or base / f"work-{args.customers}"
    state_file = args.state or work / "bench_state.json"
    state = load_state(state_file if state_file.exists() else None)
    if args.only != "daily":
        if not (data_dir / "orders").is_dir():
            sys.exit(f"no orders exports in {data_dir}: run benchmarks/bench_pipeline.py first")
        print_ingest(data_dir, args.repeats, state)
    if args.only != "ingest":
        print_daily(work, state)


if __name__ == "__main__":
    main()
