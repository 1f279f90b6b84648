"""An erased person stays out of the Spark engine's staging, which re-reads every export on each
run: `engagement-box erase` writes the register beside the working database, and the Spark
tasks drop the person's rows (by id and by email) before validation, counted as erased."""

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.spark import lake_tables
from engagement_box import generator
from engagement_box.governance import erasure
from engagement_box.spark import pipeline
from engagement_box.spark.tables import SparkTables
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import ingest_source
from tests.test_erasure import write_erased_by_id_exports

pytestmark = pytest.mark.spark

AT = dt.datetime(2026, 1, 2)  # the run's time: after the generated data, whatever the clock says


def staged(tables: SparkTables, source: str) -> pl.DataFrame:
    return pl.from_arrow(tables.spark.table(f"staging.{source}").toArrow())


@pytest.fixture
def session(spark, spark_run):
    """The shared Spark session, its tables put back as the parity run left them afterwards
    (this test registers tables of its own under the same names)."""
    yield spark
    lake_tables(spark, spark_run[3])


def test_an_erased_person_stays_out_of_a_spark_run(session, tmp_path: Path, monkeypatch):
    spark = session
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    generator.generate(
        exports, generator.GeneratorConfig(customers=80, seed=5, end=dt.date(2025, 12, 31))
    )
    orders = pl.concat(
        [pl.read_csv(p, infer_schema=False) for p in sorted((exports / "orders").glob("*.csv"))]
    )
    person = orders.group_by("customer_id").len().sort("len", descending=True)["customer_id"][0]

    # The DuckDB working database knows the person's profile (and so their email), as after
    # a DuckDB run; the erasure writes its register beside it.
    working = tmp_path / "engagement.working.duckdb"
    con = duckdb.connect(str(working))
    ingest_source(con, exports, "customers", run_id="r", now=AT)
    email = con.execute(
        "SELECT email FROM staging.customers WHERE customer_id = $id", {"id": person}
    ).fetchone()[0]
    report = erasure.erase(con, customer_id=person)
    con.close()
    assert report.found
    register = erasure.register_path(working)
    hashes, salt = erasure.read_register(register)
    assert len(hashes) >= 2 and salt  # the id and the email, with the warehouse's own salt

    before = SparkTables(spark, tmp_path / "lake_before")
    kept = pipeline.stage_all(before, exports, "spark-run", AT)
    assert person in set(staged(before, "orders")["customer_id"])  # the test can fail

    tables = SparkTables(spark, tmp_path / "lake")
    reports = pipeline.stage_all(tables, exports, "spark-run", AT, (hashes, salt))
    assert all(r.holds for r in reports.values())
    for source in ("orders", "customers", "reviews", "referrals"):
        rows = staged(tables, source)
        ids = {c: rows[c] for c in rows.columns if c.endswith("customer_id")}
        assert all(person not in set(v) for v in ids.values()), source
        if "email" in rows.columns:
            assert email.strip().lower() not in set(
                rows["email"].str.strip_chars().str.to_lowercase()
            )
    erased_orders = reports["orders"].rows_erased
    assert erased_orders >= int((orders["customer_id"] == person).sum()) > 0
    # Every row read is staged, quarantined or erased (one of the person's rows was quarantined
    # before: it is erased now).
    after, first = reports["orders"], kept["orders"]
    assert after.rows_read == first.rows_read
    assert after.rows_staged + after.rows_quarantined == (
        first.rows_staged + first.rows_quarantined - erased_orders
    )
    assert reports["customers"].rows_erased >= 1
    assert set(reports) == set(SOURCES)


def test_a_profile_erased_by_id_takes_its_email_and_handles_out_of_a_spark_run(
    session, tmp_path: Path, monkeypatch
):
    """A Spark user's review: after an erasure deleted the lake's tables, another by customer id
    could not read the person's email and handle, so the register held the id alone. The next
    Spark run dropped the profile by its id but staged their social events by handle, their
    guest order and review by email and a second profile with the email. The profile's keys
    are erased with it now, in every source, counted as erased; a till's placeholder address
    another erased profile carried is not. The next run stages the customers once."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    write_erased_by_id_exports(exports)
    working = tmp_path / "engagement.working.duckdb"
    con = duckdb.connect(str(working))
    erasure.erase(con, customer_id="X-1")  # a Spark-only warehouse: nothing staged here
    erasure.erase(con, customer_id="t3")
    con.close()
    erased = erasure.read_register(erasure.register_path(working))

    tables = SparkTables(session, tmp_path / "lake")
    reports = pipeline.stage_all(tables, exports, "spark-run", AT, erased)

    def keys(source: str, key: str) -> list[str]:
        return sorted(staged(tables, source)[key])

    assert keys("customers", "customer_id") == ["BOB", "t0", "t1", "t2", "t4", "t5"]
    assert keys("orders", "order_id") == ["o2", "o3"]  # the till's guest order stays
    assert keys("reviews", "review_id") == ["r2"]
    assert keys("social", "event_id") == ["e3"]
    counts = {name: r.rows_erased for name, r in reports.items() if r.rows_erased}
    assert counts == {"customers": 3, "orders": 1, "reviews": 1, "social": 2}
    assert all(r.holds for r in reports.values())

    again = pipeline.stage_all(tables, exports, "spark-run-2", AT, erased)
    assert again["customers"].files_validated == 0  # the keys found before: validated once
    assert {name: r.rows_erased for name, r in again.items() if r.rows_erased} == counts


def _delete_account(exports: Path) -> None:
    """The retailer deletes X-1 (and X-2) from its CRM: the next customers export lacks them."""
    path = exports / "customers" / "customers.csv"
    rows = pl.read_csv(path, infer_schema=False)
    rows.filter(~pl.col("customer_id").is_in(["X-1", "X-2"])).write_csv(path)


def test_the_keys_erased_with_a_profile_stay_erased_once_it_leaves_the_export(
    session, tmp_path: Path, monkeypatch
):
    """A reviewer's finding: X-1 was erased by id; the Spark staging read their profile and
    erased its email and handle with it. The retailer then deleted the account, and the next
    customers export lacked the profile: the keys were computed again from the profiles read
    (none of X-1's) and the record of them overwritten, so their social event by handle and
    their guest order by email were staged again. The DuckDB engine keeps them
    (`staging.erased_profile_keys`); the Spark staging keeps them too, for good."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    write_erased_by_id_exports(exports)
    working = tmp_path / "engagement.working.duckdb"
    con = duckdb.connect(str(working))
    erasure.erase(con, customer_id="X-1")
    con.close()
    erased = erasure.read_register(erasure.register_path(working))
    tables = SparkTables(session, tmp_path / "lake")

    def ids(source: str, key: str) -> list[str]:
        return sorted(staged(tables, source)[key])

    pipeline.stage_all(tables, exports, "run-1", AT, erased)
    assert "e1" not in ids("social", "event_id") and "o1" not in ids("orders", "order_id")
    _delete_account(exports)
    reports = pipeline.stage_all(tables, exports, "run-2", AT, erased)
    assert ids("social", "event_id") == ["e3"]  # e1 by the handle, e2 to it
    assert ids("orders", "order_id") == ["o2", "o3"]  # o1, the guest order by the email
    assert ids("reviews", "review_id") == ["r2"]
    assert all(r.holds for r in reports.values())
    # a record that cannot be read fails the staging: going on would stage them again
    (tables.lake / pipeline.PROFILE_KEYS_FILE).write_text("{", encoding="utf-8")
    with pytest.raises(erasure.ErasureError, match="cannot be read"):
        pipeline.stage_all(tables, exports, "run-3", AT, erased)
