"""The Spark engine's staging says what the DuckDB engine's says of the export files: a file
whose rows are all quarantined (dates the contract does not read, keys staged from an earlier
file) and a header column no contract column reads (a misspelt optional column). Both used to
pass silently on Spark: its staging gave neither the per-file counts nor the ignored columns
that the CLI warns from (`ignored_columns`, `quarantined_by_file`)."""

import datetime as dt
import io
import logging
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.spark import STAGED_KEY, spark_staging
from assets.staging import staged_assets
from engagement_box import cli, generator
from engagement_box.staging.messages import (
    copy_message,
    other_offset_message,
    profile_changes_message,
)
from pipelines.resources import ExportsResource, LakeResource, SparkEngine, Warehouse
from tests.spark_runs import environment

pytestmark = pytest.mark.spark

KEYS = ("ignored_columns", "quarantined_by_file")


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    """A small generated retailer (a few bad rows in its files), and four files a run should
    warn of: one whose order dates are written 11/01/2025, one repeating orders of an earlier
    file (their keys are staged from it), a copy of an orders file sent again under another
    name (the Spark engine said it was quarantined whole), and a customers file whose
    `social_handles` column is misspelt `Social Handle`."""
    path = tmp_path / "exports"
    generator.generate(
        path, generator.GeneratorConfig(customers=80, seed=5, end=dt.date(2025, 12, 31))
    )
    first = sorted((path / "orders").glob("*.csv"))[0]
    orders = pl.read_csv(first, infer_schema=False)
    us_dates = orders.head(3).with_columns(
        pl.Series("order_id", ["US-1", "US-2", "US-3"]), ordered_at=pl.lit("11/01/2025 20:57")
    )
    us_dates.write_csv(path / "orders" / "zz_us_dates.csv")
    orders.head(2).write_csv(path / "orders" / "zz_repeat.csv")
    # written at New York's offset while the shop's zone is not set: said by both engines
    orders.head(2).with_columns(
        pl.Series("order_id", ["NY-1", "NY-2"]), ordered_at=pl.lit("2025-11-01T20:57:00-04:00")
    ).write_csv(path / "orders" / "zz_offset.csv")
    shutil.copy(first, path / "orders" / "zz_resent.csv")  # sent twice: a copy, not a bad file
    customers = pl.read_csv(sorted((path / "customers").glob("*.csv"))[0], infer_schema=False)
    customers.head(2).with_columns(pl.Series("customer_id", ["NEW-1", "NEW-2"])).rename(
        {"social_handles": "Social Handle"}
    ).write_csv(path / "customers" / "zz_more.csv")
    # A later customers export: one consenting customer withdraws, one is sent unchanged.
    consenting = customers.filter(pl.col("marketing_consent") == "true").head(1)
    unchanged = customers.filter(pl.col("marketing_consent") == "false").head(1)
    pl.concat([consenting.with_columns(marketing_consent=pl.lit("false")), unchanged]).write_csv(
        path / "customers" / "zz_withdrawn.csv"
    )
    return path


def staging_said(result, keys) -> tuple[dict, dict, list[str]]:
    """What a run's staging steps gave under `KEYS`, every source's files in one mapping, and
    the warnings the CLI's step lines make of the run's events."""
    given: dict[str, dict] = {key: {} for key in KEYS}
    for event in result.get_asset_materialization_events():
        if event.asset_key in keys:
            for key in KEYS:
                given[key].update(event.materialization.metadata[key].value)
    lines = cli.StepLines(out=io.StringIO())
    for event in result.all_events:
        lines(event)
    return given["ignored_columns"], given["quarantined_by_file"], lines.warnings


def test_spark_staging_warns_of_the_files_as_the_duckdb_engine(session, exports, tmp_path):
    duck = dg.materialize(
        staged_assets,
        resources={
            "warehouse": Warehouse(
                database=str(tmp_path / "published.duckdb"),
                working_database=str(tmp_path / "working.duckdb"),
            ),
            "exports": ExportsResource(data_dir=str(exports)),
        },
    )
    assert duck.success
    duck_ignored, duck_quarantined, duck_warnings = staging_said(
        duck, {a.key for a in staged_assets}
    )

    # The erasure register is read beside the working database: this test's own (there is none).
    with (
        environment("ENGAGEMENT_WORKING_DB", str(tmp_path / "spark.working.duckdb")),
        dg.DagsterInstance.ephemeral() as instance,
    ):
        spark = dg.materialize(
            [spark_staging],
            resources={
                "spark": SparkEngine(master="local[2]", shuffle_partitions=2),
                "lake_dir": LakeResource(lake_dir=str(tmp_path / "lake")),
                "exports": ExportsResource(data_dir=str(exports)),
            },
            instance=instance,
        )
        assert spark.success
        logged = [
            entry.user_message
            for entry in instance.all_logs(spark.run_id)
            if entry.level == logging.WARNING and entry.step_key
        ]
    ignored, quarantined, warnings = staging_said(spark, {STAGED_KEY})

    # What the files hold, said by both engines in the same shape
    assert ignored == duck_ignored == {"customers/zz_more.csv": ["Social Handle"]}
    assert quarantined["orders/zz_us_dates.csv"] == [3, 3]
    assert quarantined["orders/zz_repeat.csv"] == [2, 2]
    assert quarantined == duck_quarantined
    # the generated retailer's files with a few bad rows (CSV and Parquet, of several sources)
    # are counted too, and not warned of below
    few = [f for f, (read, lost) in quarantined.items() if 0 < lost * 2 < read]
    assert {f.split("/")[0] for f in few} >= {"orders", "reviews"}

    # What a person reads: the CLI's warnings of the Spark run equal the DuckDB engine's, and
    # the Spark run's own log says them too
    expected = [
        "customers/zz_more.csv: column(s) Social Handle ignored: not columns of customers "
        "(docs/CONTRACTS.md lists them; a column named differently is not read)",
        "orders/zz_us_dates.csv: 3 of 3 rows quarantined; staging.quarantine says why (fix the "
        "export and drop it again: the changed file replaces its rows; a row quarantined as "
        "duplicate_key repeats a key staged from another file, which a later file never "
        "replaces: to correct it, change the file it was staged from)",
        "orders/zz_repeat.csv: 2 of 2 rows quarantined; staging.quarantine says why (fix the "
        "export and drop it again: the changed file replaces its rows; a row quarantined as "
        "duplicate_key repeats a key staged from another file, which a later file never "
        "replaces: to correct it, change the file it was staged from)",
    ]
    first = sorted((exports / "orders").glob("*.csv"))[0].relative_to(exports).as_posix()
    expected.append(copy_message("orders/zz_resent.csv", first))
    offset = other_offset_message("orders/zz_offset.csv", "ordered_at: 2025-11-01T20:57:00-04:00")
    assert offset in duck_warnings
    expected.append(offset)
    # The withdrawn consent, not applied (a later file never replaces a staged profile), is
    # said by both engines; the unchanged row is not counted. Both engines apply the withdrawal
    # all the same (the Spark engine's identity step since it closed docs/SPARK.md's gap), and
    # say so in the same words.
    withdrawn = pl.read_csv(exports / "customers" / "zz_withdrawn.csv", infer_schema=False)
    who = withdrawn["customer_id"][0]
    changes = {"rows": 1, "first": [who], "consent_withdrawn": 1, "withdrawn_first": [who]}
    said = profile_changes_message("customers/zz_withdrawn.csv", changes)
    assert "applied all the same" in said and "leave the audiences" in said
    expected.append(said)
    assert said in duck_warnings
    assert set(expected) <= set(warnings)
    assert not any(w.startswith("orders/zz_resent.csv: ") and "quarantined" in w for w in warnings)
    # (the repeated orders' one line names files too: the generated retailer's appended
    # returns, which both engines say)
    assert not any(f in w for f in few for w in warnings if "quarantined;" in w)
    assert sum("order row(s) in" in w for w in warnings) == 1
    assert sorted(warnings) == sorted(duck_warnings)
    # The Spark run's own log names its quarantine where it is: a folder of the lake (it named
    # staging.quarantine, which the Spark engine does not have; a review).
    table = tmp_path / "lake" / "tables" / "staging.quarantine"
    folder = table / (table / "_current").read_text(encoding="utf-8").strip()
    where = f"the lake's quarantine ({folder}/*.parquet) says why"
    assert sorted(logged) == sorted(
        w.replace("staging.quarantine says why", where) for w in warnings
    )
    assert any(where in w for w in logged)


def test_spark_staging_names_every_file_refused_for_its_rows(session, tmp_path):
    """Two orders files with a row of more fields than their header: the Spark staging fails
    naming both, as the DuckDB engine does, where the first task to fail named its file alone
    (a sender fixed one file per run). Nothing of the source is left in the lake."""
    from engagement_box.spark.staging import stage_source, validated_table
    from engagement_box.spark.tables import SparkTables, current_folder
    from engagement_box.staging.contracts import IngestError
    from tests.conftest import ORDER_HEADER

    orders = tmp_path / "exports" / "orders"
    orders.mkdir(parents=True)
    header = ",".join(ORDER_HEADER)
    row = "o{},c1,,2024-01-01 10:00:00,10.00,USD,completed,web"
    (orders / "a.csv").write_text(f"{header}\n{row.format(1)}\n")
    (orders / "b.csv").write_text(f"{header}\n{row.format(2)}\n{row.format(3)},extra\n")
    (orders / "d.csv").write_text(f"{header}\n{row.format(4)},extra\n")
    lake = tmp_path / "lake"
    tables = SparkTables(session, lake)
    at = dt.datetime(2026, 1, 1)
    with pytest.raises(IngestError) as refused:
        stage_source(tables, tmp_path / "exports", "orders", "run", at)
    message = str(refused.value)
    assert message.startswith("2 orders files cannot be taken in; nothing was staged: "), message
    assert "orders/b.csv:" in message and "orders/d.csv:" in message, message
    assert message.index("orders/b.csv:") < message.index("orders/d.csv:")  # in path order
    assert "orders/a.csv" not in message
    assert current_folder(lake, validated_table("orders")) is None


def test_spark_staging_names_the_refused_files_of_every_source_before_staging(tmp_path):
    """An orders file without `currency`, a reviews file without `rating`, and a customers file
    whose header is whole but a row has more fields: the Spark staging fails naming all three
    before it stages anything, as the DuckDB engine's staging steps name them (each source its
    own step). It named the orders file alone; the others came up a run later each (a
    review)."""
    from engagement_box.spark.pipeline import stage_all
    from engagement_box.staging.contracts import IngestError
    from tests.conftest import ORDER_HEADER

    exports = tmp_path / "exports"
    for source in ("orders", "reviews", "customers", "social", "referrals"):
        (exports / source).mkdir(parents=True)
    header = ",".join(ORDER_HEADER)
    (exports / "orders" / "a.csv").write_text(
        f"{header}\no1,c1,,2024-01-01 10:00:00,10.00,USD,completed,web\n"
    )
    (exports / "orders" / "b.csv").write_text(
        header.replace(",currency", "") + "\no2,c1,,2024-01-01 10:00:00,10.00,completed,web\n"
    )
    (exports / "reviews" / "r.csv").write_text(
        "review_id,customer_id,email,product_id,helpful_votes,verified_purchase,created_at\n"
        "r1,c1,,p1,0,true,2024-01-02 10:00:00\n"
    )
    (exports / "customers" / "c.csv").write_text(
        "customer_id,email,social_handles,signup_date,loyalty_member,marketing_consent,country\n"
        "c1,,,2023-07-01,false,true,US,extra\n"
    )
    with pytest.raises(IngestError) as refused:  # before any table: none is given
        stage_all(None, exports, "run", dt.datetime(2026, 1, 1))
    message = str(refused.value)
    assert message.startswith("files of 3 sources cannot be taken in; nothing was staged:\n")
    assert "orders/b.csv: missing required column(s) currency" in message, message
    assert "reviews/r.csv: missing required column(s) rating" in message, message
    assert "customers/c.csv:" in message and "orders/a.csv" not in message, message


def orders_staged_by_both(tables, warehouse, exports, at: dt.datetime) -> tuple[list, list]:
    """The orders each engine stages from `exports` at `at`: (order_id, amount, file), sorted."""
    from engagement_box.spark.staging import stage_source
    from engagement_box.staging.ingestion import ingest_source

    staged, _, _ = stage_source(tables, exports, "orders", "run", at)
    spark = sorted((r.order_id, float(r.net_amount), r.source_file) for r in staged.collect())
    ingest_source(warehouse, exports, "orders", now=at)
    duck = warehouse.execute(
        "SELECT order_id, CAST(net_amount AS DOUBLE), source_file FROM staging.orders ORDER BY ALL"
    ).fetchall()
    return spark, duck


def test_a_later_file_named_to_sort_first_does_not_replace_a_staged_key(session, tmp_path):
    """An order staged from `orders_2023-07.csv`, then a new `a_fix.csv` repeating its key with
    another amount: the DuckDB engine keeps the row staged first and quarantines the new one;
    the Spark engine, which stages every file again each run, ranked the files by name alone,
    so the new file's 999.00 replaced the 39.00 every earlier version held, with no warning
    (a review). Keys rank by the file's first staging, then its path, on both engines; a file
    changed in place, or moved into an archive folder (in one run or across two), keeps its
    rank."""
    import duckdb

    from engagement_box.spark.tables import SparkTables
    from tests.conftest import ORDER_HEADER

    orders = tmp_path / "exports" / "orders"
    orders.mkdir(parents=True)
    header = ",".join(ORDER_HEADER)
    row = "{},c1,,2023-07-08 14:43:20,{},USD,completed,web"
    (orders / "orders_2023-07.csv").write_text(f"{header}\n{row.format('O2', '39.00')}\n")
    tables = SparkTables(session, tmp_path / "lake")
    warehouse = duckdb.connect(str(tmp_path / "w.duckdb"))
    first, later = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)

    def staged_by_both(at: dt.datetime) -> tuple[list, list]:
        return orders_staged_by_both(tables, warehouse, tmp_path / "exports", at)

    try:
        staged_by_both(first)
        (orders / "a_fix.csv").write_text(f"{header}\n{row.format('O2', '999.00')}\n")
        spark, duck = staged_by_both(later)
        assert spark == duck == [("O2", 39.0, "orders/orders_2023-07.csv")]
        # the first file changed in place (another amount): it keeps its rank on both engines
        (orders / "orders_2023-07.csv").write_text(f"{header}\n{row.format('O2', '41.00')}\n")
        spark, duck = staged_by_both(later + dt.timedelta(days=1))
        assert spark == duck == [("O2", 41.0, "orders/orders_2023-07.csv")]
        # archived: its content keeps its rank (the DuckDB engine keeps the rows and the path
        # they were staged from; the Spark engine stages them from where the file is now)
        (orders / "archive").mkdir()
        (orders / "orders_2023-07.csv").rename(orders / "archive" / "orders_2023-07.csv")
        spark, duck = staged_by_both(later + dt.timedelta(days=2))
        assert spark == [("O2", 41.0, "orders/archive/orders_2023-07.csv")]
        assert duck == [("O2", 41.0, "orders/orders_2023-07.csv")]
        # moved across two runs: out of the folder for one (Spark then stages a_fix.csv's row,
        # a documented difference), back in another folder after; it keeps its rank
        archived = (orders / "archive" / "orders_2023-07.csv").read_bytes()
        (orders / "archive" / "orders_2023-07.csv").unlink()
        staged_by_both(later + dt.timedelta(days=3))
        (orders / "old").mkdir()
        (orders / "old" / "orders_2023-07.csv").write_bytes(archived)
        spark, duck = staged_by_both(later + dt.timedelta(days=4))
        assert spark == [("O2", 41.0, "orders/old/orders_2023-07.csv")]
        assert duck == [("O2", 41.0, "orders/orders_2023-07.csv")]
    finally:
        warehouse.close()


def test_a_key_a_changed_file_drops_goes_to_the_earlier_repeat_on_both_engines(session, tmp_path):
    """O1 staged from `m.csv`, repeated by `z.csv` a day later; then, in one run, `m.csv`
    rewritten without it and a new `a.csv` holding it. Both engines stage `z.csv`'s row, taken
    in first: the DuckDB engine staged the new file's, read in the run that freed the key (stop
    60's code review)."""
    import duckdb

    from engagement_box.spark.tables import SparkTables
    from tests.conftest import ORDER_HEADER

    orders = tmp_path / "exports" / "orders"
    orders.mkdir(parents=True)
    header = ",".join(ORDER_HEADER)
    row = "{},c1,,2023-07-08 14:43:20,{},USD,completed,web"
    tables = SparkTables(session, tmp_path / "lake")
    warehouse = duckdb.connect(str(tmp_path / "w.duckdb"))

    def staged_by_both(day: int) -> tuple[list, list]:
        at = dt.datetime(2026, 1, day)
        return orders_staged_by_both(tables, warehouse, tmp_path / "exports", at)

    try:
        (orders / "m.csv").write_text(f"{header}\n{row.format('O1', '10.00')}\n")
        staged_by_both(1)
        (orders / "z.csv").write_text(f"{header}\n{row.format('O1', '20.00')}\n")
        staged_by_both(2)
        (orders / "m.csv").write_text(f"{header}\n{row.format('O2', '12.00')}\n")
        (orders / "a.csv").write_text(f"{header}\n{row.format('O1', '30.00')}\n")
        spark, duck = staged_by_both(3)
        assert spark == duck == [("O1", 20.0, "orders/z.csv"), ("O2", 12.0, "orders/m.csv")]
    finally:
        warehouse.close()
