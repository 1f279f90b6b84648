"""The sql/ files as Spark SQL (engagement_box/spark/sql.py): the rewrites sqlglot does not do,
checked on the text, then on Spark itself (marked spark) for the traps found comparing engines."""

from datetime import date
from decimal import Decimal

import duckdb
import pytest

from engagement_box.spark import sql as spark_sql
from engagement_box.spark.sql import CURRENCY_MACROS, IDENTITY_MACROS


def test_duckdb_macros_are_expanded_from_their_files():
    (st,) = spark_sql.load_spark_sql("intermediate/orders_resolution", IDENTITY_MACROS)
    assert st.kind == "view" and st.target == "intermediate.orders_resolution"
    text = st.sql.lower()
    assert "normalized_email" not in text and "customer_keys" not in text
    assert "nullif(lower(replace(replace(trim(email), " in text
    assert "REPLACE(REPLACE(TRIM(email), 'İ', 'i'), 'Σ', 'σ')" in st.sql  # the letters kept
    assert "from intermediate.identity_links" in text


def test_a_list_index_is_one_based_element_at_even_when_it_is_not_a_literal():
    (st,) = spark_sql.transpile("select xs[list_position(ys, 'b')] as v from t")
    text = st.sql.lower()
    assert "element_at(xs, cast(nullif(array_position(ys, 'b'), 0) as int))" in text
    assert "[" not in text


def test_every_division_is_of_doubles_as_in_duckdb():
    (st,) = spark_sql.transpile("select (a - b) / (n - 1) as m from t")
    assert "CAST((a - b) AS DOUBLE) / CAST((n - 1) AS DOUBLE)" in st.sql


def test_parameters_stay_bound_and_null_ones_are_typed():
    (st,) = spark_sql.transpile("select * from t where $start is null or d >= $start")
    assert spark_sql.used_parameters(st.sql) == {"start"}
    typed = spark_sql._typed_nulls(st.sql, {"start": "date"})
    assert "CAST(NULL AS DATE) IS NULL" in typed and ":start" not in typed


def test_table_writes_are_told_apart():
    kinds = [
        (s.kind, s.target)
        for name in (
            "intermediate/create_schema",
            "intermediate/identity_links_table",
            "intermediate/resolved_customers",
            "intermediate/identity_links",
        )
        for s in spark_sql.load_spark_sql(name, IDENTITY_MACROS)
    ]
    assert kinds == [
        ("schema", "intermediate"),
        ("create_table", "intermediate.identity_links"),
        ("create_table_as", "intermediate.resolved_customers"),
        ("insert", "intermediate.identity_links"),
    ]


def test_an_override_replaces_only_what_cannot_be_portable():
    overrides = sorted(p.name for p in spark_sql.OVERRIDES.glob("*.sql"))
    # the identity macros' lower case (Java's is not DuckDB's); the merge's components are
    # labelled outside SQL in both engines, so its file is portable
    assert overrides == ["intermediate__normalization.macros.sql"]

    def macros(path) -> str:  # the statements, without the files' comments
        return path.read_text(encoding="utf-8").split("create or replace macro", 1)[1]

    spark_version = macros(spark_sql.OVERRIDES / "intermediate__normalization.macros.sql")
    two_letters = "replace(replace(trim(value), 'İ', 'i'), 'Σ', 'σ')"
    assert spark_version.count(two_letters) == 2
    assert spark_version.replace(two_letters, "trim(value)") == macros(
        spark_sql.SQL_DIR / "intermediate" / "normalization.sql"
    )
    statements = spark_sql.load_spark_sql("intermediate/customer_merge", IDENTITY_MACROS)
    assert [s.kind for s in statements] == ["create_table_as"]
    # the identity graph's edges are the DuckDB file itself, transpiled (no override)
    (edges,) = spark_sql.load_spark_sql("intermediate/customer_merge_edges", IDENTITY_MACROS)
    assert (edges.kind, edges.target) == ("view", "customer_merge_edges")
    assert "CREATE OR REPLACE TEMPORARY VIEW" in edges.sql and "normalized_email" not in edges.sql


def test_the_rewritten_sql_is_still_valid_duckdb_for_what_duckdb_computes():
    """The rewrites mean the same in DuckDB: the index and the division give DuckDB's results."""
    con = duckdb.connect()
    assert con.execute(
        "select ['x', 'y'][list_position(['a', 'b'], 'b')], 7 / 2, cast(1 as decimal(18, 4)) / 3"
    ).fetchone() == ("y", 3.5, pytest.approx(1 / 3, rel=1e-15))


@pytest.mark.spark
def test_traps_on_spark(spark):
    # the list index with a non-literal argument: GBP's rate must not come back for EUR
    (st,) = spark_sql.transpile(
        "select cast($rates as decimal(38, 10)[])[list_position($currencies, $c)] as rate"
    )
    row = spark_sql.run(
        spark, st.sql, {"rates": [1.27, 1.08, 1.0], "currencies": ["GBP", "EUR", "USD"], "c": "EUR"}
    ).collect()[0]
    assert row.rate == Decimal("1.0800000000")
    missing = spark_sql.run(
        spark, st.sql, {"rates": [1.27], "currencies": ["GBP"], "c": "JPY"}
    ).collect()[0]
    assert missing.rate is None
    # DECIMAL division: DuckDB's DOUBLE, not six decimals
    (st,) = spark_sql.transpile("select cast(1 as decimal(18, 4)) / cast(3 as decimal(18, 4)) as q")
    assert spark_sql.run(spark, st.sql).collect()[0].q == pytest.approx(1 / 3, rel=1e-15)
    # a NULL parameter with its type
    (st,) = spark_sql.transpile("select $start is null as none, cast($as_of as date) + 1 as d")
    row = spark_sql.run(
        spark, st.sql, {"start": None, "as_of": date(2025, 6, 30)}, {"start": "date"}
    ).collect()[0]
    assert row.none is True and row.d == date(2025, 7, 1)
    with pytest.raises(ValueError, match="NULL parameters need a Spark type: start"):
        spark_sql.run(spark, st.sql, {"start": None, "as_of": date(2025, 6, 30)})
    # a value is bound, never written into the statement
    (st,) = spark_sql.transpile("select $name as v")
    assert spark_sql.run(spark, st.sql, {"name": "x' or '1'='1"}).collect()[0].v == "x' or '1'='1"


def test_currency_macros_expand_into_the_buyer_days():
    statements = spark_sql.load_spark_sql(
        "work/buyer_days",
        CURRENCY_MACROS,
        customer_column="buyer_id",
        orders_schema="intermediate",
        orders_table="orders_resolution",
    )
    (st,) = statements
    assert "reporting_amount" not in st.sql.lower() and "element_at" in st.sql.lower()
    assert spark_sql.used_parameters(st.sql) == {"fx_currencies", "fx_rates"}


# Emails and handles whose full lower case (Java's, Python's, polars') differs from each letter's
# own (DuckDB's lower): 'İ' and a final 'Σ'.
UNICODE_KEYS = ["İrem@Example.TR", "ΟΔΟΣ@x.gr", " @ΣΟΦΙΑΣ ", "plain@x.com"]


@pytest.mark.spark
def test_identity_normalises_a_key_as_duckdb_and_erasure_do(spark):
    """'İrem@…' and 'irem@…' were one customer on DuckDB and two on Spark (Java lower-cases
    'İ' to two characters), and erasure's Python normalisation missed the address on file (a
    review): the one macro file gives each engine, and erasure, the same keys."""
    from engagement_box.governance import erasure
    from engagement_box.sql import load_sql

    con = duckdb.connect()
    con.execute("CREATE SCHEMA intermediate")
    con.execute(load_sql("intermediate/normalization"))
    query = (
        "select intermediate.normalized_email($v) as email, "
        "intermediate.normalized_handle($v) as handle"
    )
    (st,) = spark_sql.transpile(query, IDENTITY_MACROS)
    for key in UNICODE_KEYS:
        duck = con.execute(query, {"v": key}).fetchone()
        row = spark_sql.run(spark, st.sql, {"v": key}).collect()[0]
        python = (erasure.normalize(key, "email"), erasure.normalize(key, "handle"))
        assert (row.email, row.handle) == duck == python, key


@pytest.mark.spark
def test_rate_jumps_are_found_as_duckdb_finds_them(spark):
    """`work/fx_rate_jumps.sql`, which both engines ask before converting (a typo of 95 for
    0.095 valued orders a thousand times over), finds the same steps on Spark as on DuckDB."""
    from engagement_box.sql import SQL_DIR

    rows = [
        (date(2025, 1, 1), "NOK", 0.095, "fx_rates/a.csv", 2),
        (date(2025, 7, 1), "NOK", 95.0, "fx_rates/b.csv", 3),
        (date(2025, 8, 1), "NOK", 0.0951, "fx_rates/b.csv", 4),
        (date(2025, 1, 1), "EUR", 1.08, "fx_rates/a.csv", 5),
        (date(2025, 2, 1), "EUR", 5.4, "fx_rates/a.csv", 6),  # fivefold exactly: a step it may take
        (
            date(2025, 1, 1),
            "USD",
            7.0,
            "fx_rates/a.csv",
            7,
        ),  # the reporting currency: not looked at
        (date(2025, 2, 1), "USD", 1.0, "fx_rates/a.csv", 8),
    ]
    columns = ["date", "currency", "rate", "source_file", "source_row"]
    text = (SQL_DIR / "work" / "fx_rate_jumps.sql").read_text()
    text = text.replace("staging.fx_rates", "fx_rates_of_the_test")
    params = {"currency": "USD", "max_jump": 5.0}
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE fx_rates_of_the_test (date DATE, currency VARCHAR, rate DOUBLE, "
        "source_file VARCHAR, source_row BIGINT)"
    )
    con.executemany("INSERT INTO fx_rates_of_the_test VALUES (?, ?, ?, ?, ?)", rows)
    duck = con.execute(text, params).fetchall()
    spark.createDataFrame(rows, columns).createOrReplaceTempView("fx_rates_of_the_test")
    (st,) = spark_sql.transpile(text)
    found = [tuple(r) for r in spark_sql.run(spark, st.sql, params).collect()]
    assert [(r[0], r[5]) for r in duck] == [("NOK", date(2025, 7, 1)), ("NOK", date(2025, 8, 1))]
    assert found == duck
