"""The whole-pipeline benchmark's day of new orders is a valid export: measured as work, not as
quarantine (benchmarks/bench_pipeline.py)."""

from datetime import date, datetime

import duckdb

from engagement_box.generator import GeneratorConfig, generate
from engagement_box.staging.ingestion import ingest_source
from tests import benchmark_scripts


def load_bench():
    return benchmark_scripts.load("bench_pipeline")


def test_new_orders_are_staged_whole_for_existing_customers_on_the_next_day(tmp_path):
    bench = load_bench()
    exports = tmp_path / "exports"
    generate(exports, GeneratorConfig(customers=300, seed=5))
    assert bench.last_order_day(exports) == date(2026, 6, 30)
    assert bench.month_after_data(exports) == "2026-07"

    new = bench.new_orders(exports, share=0.05, seed=1)
    assert new.equals(bench.new_orders(exports, share=0.05, seed=1))  # drawn deterministically
    assert new["ordered_at"].str.starts_with("2026-07-01 ").all()

    con = duckdb.connect(str(tmp_path / "bench.duckdb"))
    now = datetime(2026, 7, 2)
    ingest_source(con, exports, "customers", now=now)
    before = ingest_source(con, exports, "orders", now=now)
    new.write_parquet(exports / "orders" / bench.NEW_ORDERS_FILE)
    report = ingest_source(con, exports, "orders", now=now)

    assert report.files_ingested == [f"orders/{bench.NEW_ORDERS_FILE}"]
    assert report.rows_read == new.height > 0.04 * before.rows_read
    assert report.rows_staged == new.height  # no new order quarantined or taken as a duplicate
    known = {r[0] for r in con.execute("SELECT customer_id FROM staging.customers").fetchall()}
    assert set(new["customer_id"].str.strip_chars()) <= known
