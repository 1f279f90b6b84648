"""The floors benchmark measures the whole of what it claims to (benchmarks/floors.py): the ingest
floor loads every raw order the pipeline read, and the daily floor writes a next day of every
per-as-of work table and every published mart without touching the run it measures."""

import hashlib

import duckdb

from assets.publish import MARTS
from engagement_box.governance import readers
from tests import benchmark_scripts
from tests.conftest import good_order, write_csv


def load_floors():
    return benchmark_scripts.load("floors")


def test_the_ingest_floor_loads_every_raw_order_the_pipeline_read(december_run):
    floors = load_floors()
    working = readers.default_working(december_run.database)
    with duckdb.connect(str(working), read_only=True) as con:
        read = con.execute(
            "SELECT sum(rows_read), count(*) FROM staging.ingested_files WHERE source = 'orders'"
        ).fetchone()
    rows, _, _ = floors.ingest_floor(december_run.exports)
    assert read[1] > 1 and rows == read[0] > 0  # several files, every row of each


def test_the_ingest_floor_reads_a_quoted_field_past_duckdbs_sample(exports_dir):
    """A retailer's export whose first quoted value ("12,50", a decimal comma) comes after the
    rows DuckDB's CSV sniffer samples: every row is still loaded (the dialect is stated)."""
    rows = [good_order(i) for i in range(21_000)]
    rows[-1]["net_amount"] = "12,50"
    write_csv(exports_dir / "orders" / "orders_2024-01.csv", rows)
    loaded, _, _ = load_floors().ingest_floor(exports_dir)
    assert loaded == 21_000


def test_the_daily_floor_writes_a_day_of_every_work_table_and_leaves_the_run_alone(december_run):
    floors = load_floors()
    working = readers.default_working(december_run.database)
    before = hashlib.sha256(working.read_bytes()).hexdigest()
    with duckdb.connect(str(working), read_only=True) as con:
        newest_rows = {
            table: con.execute(
                f"SELECT count(*) FROM work.{table} WHERE as_of = (SELECT max(as_of) "
                f"FROM work.{table})"
            ).fetchone()[0]
            for table in ("customer", "customer_rfm", "customer_value", "engagement_value")
        }

    figures = {name: rows for name, rows, _, _ in floors.daily_floor(working)}

    for table, rows in newest_rows.items():
        assert figures[f"write work.{table}"] == rows > 0
    assert {f"Parquet {mart}" for mart in MARTS.values()} <= set(figures)
    assert "write work.written_partitions" not in figures  # a record, not a step's output
    for table, rows in newest_rows.items():  # the other design's files hold the same rows
        assert figures[f"{floors.PARQUET_FILE} {table}"] == rows
    assert hashlib.sha256(working.read_bytes()).hexdigest() == before
