"""Marts that explain themselves: the data dictionary, its document, the warehouse comments, the
Dagster column schema, the customer and cohort marts, and the checks on what analysts read.

The end-to-end test (tests/test_pipeline_e2e.py) checks the dictionary against the warehouse of a
sample run: the same tables, columns, types and comments.
"""

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.publish import FRESHNESS_CHECK, MART_FRESHNESS, MARTS, mart_key
from engagement_box import dictionary, reports
from engagement_box.frames import write_frame
from engagement_box.governance import versions
from engagement_box.value.summary import cohort_retention
from pipelines.definitions import defs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "DATA_DICTIONARY.md"
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_document_is_the_dictionary():
    assert DOC.read_text(encoding="utf-8") == dictionary.markdown(), (
        "docs/DATA_DICTIONARY.md is out of date: regenerate it with the command at its top"
    )


def test_the_p_alive_caveat_is_what_the_run_gives(december_run):
    """The dictionary warns analysts that under BG/NBD every customer without a repeat purchase
    has p_alive 1.0, however long ago they bought (the sample's Hibernating one-time buyers
    did). Held to a run: if a change of model or scoring ends it, the warning must go."""
    con = duckdb.connect(str(december_run.database), read_only=True)
    try:
        chosen = con.execute(
            "SELECT model FROM marts.model_fit WHERE chosen AND \"window\" = 'full'"
        ).fetchone()[0]
        assert chosen == "bgnbd"  # the model the caveat is about (quoted "window" works, too)
        one_day, repeat = con.execute(
            "SELECT list(DISTINCT p_alive) FILTER (WHERE frequency = 0), "
            "max(p_alive) FILTER (WHERE frequency > 0) FROM marts.customer_value"
        ).fetchone()
    finally:
        con.close()
    assert one_day == [1.0] and repeat < 1.0
    for table in ("customer", "customer_value"):
        (column,) = [c for c in dictionary.table(table).columns if c.name == "p_alive"]
        assert dictionary.P_ALIVE_CAVEAT in column.text and "frequency 0" in column.text


def test_every_published_mart_and_only_those_is_a_versioned_entry():
    assert set(dictionary.PUBLISHED) == set(MARTS)


@pytest.mark.parametrize("entry", dictionary.TABLES, ids=lambda t: t.name)
def test_every_column_has_one_description_and_the_key_exists(entry):
    names = entry.column_names
    assert len(names) == len(set(names)), f"{entry.name}: a column is listed twice"
    assert entry.description.strip()
    for column in entry.columns:
        assert column.description.strip(), f"{entry.name}.{column.name} has no description"
    assert set(entry.key) <= set(names)


def test_one_name_one_meaning_across_the_marts():
    """A column name means the same in every mart: the same description, or one that points to
    the defining mart ('as in ...')."""
    by_name: dict[str, set[str]] = {}
    for entry in dictionary.TABLES:
        if not entry.versioned:
            continue
        for column in entry.columns:
            if column.description.endswith("as in engagement_value."):
                continue
            by_name.setdefault(column.name, set()).add(column.description)
    # RFM inputs never reuse the purchase models' names.
    rfm = dictionary.table("customer_rfm").column_names
    assert not {"frequency", "recency", "monetary", "monetary_value", "recency_days"} & set(rfm)
    same_meaning = {"customer_id", "as_of", "currency", "segment", "quadrant"}
    for name in same_meaning:
        assert len(by_name[name]) == 1, name


def test_the_mart_assets_show_every_column_with_its_description_before_any_run():
    graph = defs.resolve_asset_graph()
    for name in MARTS:
        spec = graph.get(mart_key(name))
        schema = spec.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == dictionary.table(name).column_names
        assert all(c.description for c in schema.columns)
        assert spec.freshness_policy == MART_FRESHNESS
    assert graph.get(mart_key("customer")).check_keys >= {
        dg.AssetCheckKey(mart_key("customer"), FRESHNESS_CHECK)
    }


def test_the_checks_on_the_customer_mart_block_the_publish():
    graph = defs.resolve_asset_graph()
    customer = dg.AssetKey(["work", "customer"])
    blocking = {
        key.name for key in graph.get(customer).check_keys if graph.get_check_spec(key).blocking
    }
    assert blocking == {"one_row_per_customer", "documented_segments_and_quadrants"}
    assert customer in graph.get(mart_key("customer")).parent_keys


def test_comments_are_written_on_marts_and_history_and_survive_a_second_publish(warehouse):
    frame = pl.DataFrame(
        {"customer_id": ["a", "b"], "segment": ["Champions", "Prospect"], "extra": [1, 2]}
    )
    for as_of in ("2025-01-31", "2025-02-28"):
        write_frame(warehouse, "work", "customer_rfm", frame)
        versions.publish(
            warehouse,
            ["customer_rfm"],
            run_id="r",
            partition_key=None,
            as_of=as_of,
            settings={"as_of": as_of},
        )
    comments = dict(
        (
            (schema, column),
            comment,
        )
        for schema, column, comment in warehouse.execute(
            "SELECT schema_name, column_name, comment FROM duckdb_columns() "
            "WHERE table_name = 'customer_rfm'"
        ).fetchall()
    )
    # The data dictionary's text, with the documented values (the document shows the same).
    segment = dictionary.table("customer_rfm").column("segment").text
    assert "Values: `Hibernating`" in segment and "`Champions`" in segment
    assert comments[("marts", "segment")] == comments[("history", "segment")] == segment
    assert comments[("history", "snapshot_id")] == dictionary.SNAPSHOT_ID.description
    # A column the dictionary does not define gets no comment (the e2e test fails on it).
    assert comments[("marts", "extra")] is None
    tables = dict(  # a mart is a view of its current version in history, the log a table
        warehouse.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts' "
            "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE schema_name = 'marts'"
        ).fetchall()
    )
    assert tables["customer_rfm"] == dictionary.table("customer_rfm").description
    assert tables["snapshot_log"] == dictionary.table("snapshot_log").description


def test_key_and_value_problems_are_named():
    good = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "segment": ["Champions", "Prospect"],
            "quadrant": ["CEV Misers"] * 2,
        }
    )
    assert dictionary.key_problems(good, "customer") == []
    assert dictionary.value_problems(good, "customer") == []
    bad = pl.DataFrame(
        {
            "customer_id": ["a", "a", None],
            "segment": ["Champions", "Gold", None],
            "quadrant": ["Champions", "CEV Misers", "CEV Misers"],
        }
    )
    keys = dictionary.key_problems(bad, "customer")
    assert any("1 row(s) with a NULL" in p for p in keys)
    assert any("1 key value(s) on more than one row, e.g. a" in p for p in keys)
    values = dictionary.value_problems(bad, "customer")
    assert values == [
        "2 row(s) with segment outside the documented values, e.g. 'Gold', NULL",
        "1 row(s) with quadrant outside the documented values, e.g. 'Champions'",
    ]


def test_a_null_segment_is_documented_only_for_a_customer_without_rfm_inputs():
    """A customer whose completed orders are all left out for want of an FX rate has no
    customer_rfm row: segment, order_count and total_spend NULL in the customer mart (they were
    published as Prospects, a review). A NULL segment on a row with an order count is not."""
    rows = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "segment": ["Champions", None, None],
            "quadrant": ["CEV Misers"] * 3,
            "order_count": [3, None, 2],
        }
    )
    assert dictionary.value_problems(rows, "customer") == [
        "1 row(s) with segment outside the documented values, e.g. NULL"
    ]
    assert dictionary.value_problems(rows.head(2), "customer") == []
    assert "NULL in marts.customer" in dictionary.table("customer").column("segment").text


ORDERS_DDL = """
create schema if not exists staging;
create table staging.orders (
    order_id varchar, customer_id varchar, email varchar, ordered_at timestamp,
    net_amount double, currency varchar, status varchar, channel varchar,
    source_file varchar, source_row bigint
)
"""


def test_cohort_retention_counts_customers_orders_and_revenue_by_month(warehouse):
    warehouse.execute(ORDERS_DDL)
    warehouse.execute(
        "insert into staging.orders (order_id, customer_id, ordered_at, net_amount, currency, "
        "status) values "
        "('1', 'x', '2024-01-05', 10, 'USD', 'completed'), "
        "('2', 'y', '2024-01-20', 20, 'GBP', 'completed'), "
        "('3', 'x', '2024-03-02', 30, 'USD', 'completed'), "
        "('4', 'x', '2024-03-09', 5, 'USD', 'completed'), "
        "('5', 'y', '2024-02-01', 99, 'USD', 'cancelled'), "
        "('6', 'z', '2024-02-10', 7, 'JPY', 'completed'), "  # no rate: left out
        "('7', 'w', '2024-02-11', 8, 'USD', 'completed'), "
        "('8', 'w', '2024-03-20', 8, 'USD', 'completed'), "  # after the as-of date
        "('9', 'x', '2024-03-15 23:00', 2, 'USD', 'completed')"  # on the as-of day: counted
    )
    out = cohort_retention(warehouse, dt.date(2024, 3, 15), currency="USD", fx_rates={"GBP": 1.5})
    assert out.select(
        pl.col("cohort_month").dt.strftime("%Y-%m"),
        "months_since_first_order",
        "cohort_customers",
        "active_customers",
        "orders",
        "revenue",
        "retention_share",
    ).rows() == [
        ("2024-01", 0, 2, 2, 2, 40.0, 1.0),
        ("2024-01", 1, 2, 0, 0, 0.0, 0.0),
        ("2024-01", 2, 2, 1, 3, 37.0, 0.5),
        ("2024-02", 0, 1, 1, 1, 8.0, 1.0),
        ("2024-02", 1, 1, 0, 0, 0.0, 0.0),
    ]
    png = reports.cohort_retention_png(out)
    assert png.startswith(b"\x89PNG")


def test_freshness_compares_the_current_version_with_the_staged_orders(warehouse):
    warehouse.execute(ORDERS_DDL)
    warehouse.execute(
        "insert into staging.orders (order_id, customer_id, ordered_at, net_amount, currency, "
        "status) values ('1', 'x', '2025-01-20 10:00', 10, 'USD', 'completed')"
    )
    assert versions.freshness(warehouse).describe() == "no version is published yet"
    write_frame(warehouse, "work", "customer_rfm", pl.DataFrame({"customer_id": ["x"]}))
    versions.publish(
        warehouse, ["customer_rfm"], run_id="r", partition_key=None, as_of="2025-01-20",
        settings={"n": 1},
    )  # fmt: skip
    fresh = versions.freshness(warehouse)
    assert (fresh.days_behind, fresh.as_of) == (0, dt.date(2025, 1, 20))
    warehouse.execute(
        "insert into staging.orders (order_id, customer_id, ordered_at, net_amount, currency, "
        "status) values ('2', 'x', '2025-02-03 09:00', 10, 'USD', 'completed')"
    )
    behind = versions.freshness(warehouse)
    assert behind.days_behind == 14 and not behind.fresh
    assert "run its month (engagement-box run --month 2025-02)" in behind.describe()


def test_a_version_pinned_past_the_data_is_stale_when_orders_arrive_after_it(warehouse):
    """ENGAGEMENT_AS_OF=2025-02-28 with orders up to 2025-02-05: the version was said fresh
    ("as of 2025-02-28, the last completed order") even after an orders file of 2025-02-06 was
    staged, whose orders it does not hold. Dates cannot tell; the files staged since can."""
    from engagement_box.sql import load_sql

    warehouse.execute(ORDERS_DDL)
    warehouse.execute(load_sql("staging/create_ingested_files"))
    order = (
        "insert into staging.orders (order_id, customer_id, ordered_at, net_amount, currency, "
        "status) values ($id, 'x', $at, 10, 'USD', 'completed')"
    )
    file = (
        "insert into staging.ingested_files (source, source_file, sha256, size_bytes, mtime_ns, "
        "rows_read, rows_staged, rows_quarantined, ingested_at) "
        "values ('orders', $name, 'h', 1, 1, 1, 1, 0, $at)"
    )
    warehouse.execute(order, {"id": "1", "at": dt.datetime(2025, 2, 5, 10)})
    warehouse.execute(file, {"name": "orders/a.csv", "at": dt.datetime(2000, 1, 1)})
    write_frame(warehouse, "work", "customer_rfm", pl.DataFrame({"customer_id": ["x"]}))
    versions.publish(
        warehouse, ["customer_rfm"], run_id="r", partition_key=None, as_of="2025-02-28",
        settings={"pinned": True},
    )  # fmt: skip
    pinned = versions.freshness(warehouse)
    assert pinned.fresh
    assert pinned.describe() == (
        "version 1 is as of 2025-02-28, after the last completed order staged (2025-02-05)"
    )
    warehouse.execute(order, {"id": "2", "at": dt.datetime(2025, 2, 6, 9)})
    warehouse.execute(file, {"name": "orders/b.csv", "at": dt.datetime(2100, 1, 1)})
    stale = versions.freshness(warehouse)
    assert stale.days_behind == 0 and not stale.fresh
    assert stale.describe() == (
        "the current version 1 (as of 2025-02-28) was published before 1 orders file(s) were "
        "staged, whose orders it does not hold: run its month again (engagement-box run --month "
        "2025-02)"
    )


def readme_query(marker: str) -> str:
    block = re.search(r"```sql\n(.*?)```", README.split(marker, 1)[1], flags=re.S)
    assert block, f"README has no sql block after {marker!r}"
    return block.group(1)


def test_the_readme_customer_query_finds_consenting_us_cev_champions_by_clv(warehouse):
    columns = dictionary.table("customer").column_names
    rows = [
        ("c1", "US", True, "CEV Champions", 100.0),
        ("c2", "US", True, "CEV Champions", 300.0),
        ("c3", "US", False, "CEV Champions", 900.0),  # no consent
        ("c4", "DE", True, "CEV Champions", 800.0),  # not in the United States
        ("c5", "US", True, "CEV Misers", 700.0),  # another quadrant
        ("c6", "US", True, "Champions", 600.0),  # the RFM segment's name, not a quadrant
    ]
    frame = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "country": [r[1] for r in rows],
            "marketing_consent": [r[2] for r in rows],
            "quadrant": [r[3] for r in rows],
            "clv": [r[4] for r in rows],
        }
    )
    warehouse.execute("CREATE SCHEMA marts")
    warehouse.register("given", frame)
    selected = ", ".join(
        f'given."{c}"' if c in frame.columns else f'NULL AS "{c}"' for c in columns
    )
    warehouse.execute(f"CREATE TABLE marts.customer AS SELECT {selected} FROM given")
    found = warehouse.execute(readme_query("<!-- customer-query -->")).fetchall()
    assert [r[0] for r in found] == ["c2", "c1"]


def test_a_warehouse_from_before_the_renames_keeps_its_values_under_the_new_names(warehouse):
    old = pl.DataFrame(
        {"customer_id": ["a"], "recency_days": [3], "frequency": [2], "monetary": [9.5]}
    )
    write_frame(warehouse, "work", "customer_rfm", old)
    versions.publish(
        warehouse, ["customer_rfm"], run_id="r", partition_key=None, as_of="2025-01-31",
        settings={"n": 1},
    )  # fmt: skip
    assert dictionary.rename_legacy_columns(warehouse) == []  # publish renamed them already
    for schema in ("work", "marts", "history"):
        row = warehouse.execute(
            f"SELECT days_since_last_order, order_count, total_spend FROM {schema}.customer_rfm"
        ).fetchall()
        assert row == [(3, 2, 9.5)], schema


def test_the_published_staging_tables_are_described_in_the_file_and_the_document(december_run):
    """The analysts' file holds staging.quarantine and staging.ingested_files (the README's
    first query reads the quarantine); neither had a description anywhere."""
    con = duckdb.connect(str(december_run.database), read_only=True)
    try:
        for entry in dictionary.STAGING_TABLES:
            (table_comment,) = con.execute(
                "SELECT comment FROM duckdb_tables() WHERE schema_name = 'staging' "
                "AND table_name = $name",
                {"name": entry.name},
            ).fetchone()
            assert table_comment == entry.description
            columns = dict(
                con.execute(
                    "SELECT column_name, comment FROM duckdb_columns() "
                    "WHERE schema_name = 'staging' AND table_name = $name",
                    {"name": entry.name},
                ).fetchall()
            )
            assert columns == {c.name: c.text for c in entry.columns}, entry.name
    finally:
        con.close()
    document = DOC.read_text(encoding="utf-8")
    assert "## staging.quarantine" in document and "## staging.ingested_files" in document


def test_the_engagement_plots_of_a_run_with_non_finite_values_are_drawn_without_warnings():
    """A run whose blocking check `cev_is_the_sum` found non-finite values (a setting of 1e308)
    printed matplotlib's "invalid value encountered" warnings on the console beside the check's
    own message (a review): the plots draw the finite values."""
    import warnings

    values = pl.DataFrame(
        {
            "clv": [1.0, float("inf"), 3.0],
            "crv": [0.0, 1.0, 2.0],
            "civ": [0.0, 0.0, 0.0],
            "ckv": [0.0, float("nan"), 1.0],
            "quadrant": ["CEV Champions"] * 3,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots = [
            reports.cev_composition_png(values),
            reports.clv_distribution_png(values["clv"].to_numpy()),
            reports.quadrant_map_png(values),
        ]
    assert all(png.startswith(b"\x89PNG") for png in plots)
