"""The Spark engine against the DuckDB engine on a generated retailer of 20,000 customers (with the
generator's bad rows, repeated keys, merged profiles and foreign currencies): every value mart,
every engagement mart and the audiences equal, integers and text exactly, numbers to 1e-9
relative.

Runs in the shared Spark session after the sample's parity tests (`tests/conftest.py::spark`)."""

from datetime import date

import duckdb
import pytest

from engagement_box import generator
from engagement_box.spark import lake
from tests.spark_runs import both_engines
from tests.test_spark_engagement import ENGAGEMENT_MARTS, duckdb_engagement
from tests.test_spark_parity import (
    VALUE_MARTS,
    assert_published_mart_equals,
    assert_same_rows,
    duckdb_marts,
)

pytestmark = [pytest.mark.spark, pytest.mark.large]

CUSTOMERS = 20_000
AS_OF = date(2025, 12, 31)


@pytest.fixture(scope="module")
def marts(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("parity20k")
    exports = root / "exports"
    generator.generate(exports, generator.GeneratorConfig(customers=CUSTOMERS, seed=20, end=AS_OF))
    con, _, _, lake_dir, _ = both_engines(spark, root, exports, AS_OF)
    expected = duckdb_marts(con, AS_OF)
    engagement, _ = duckdb_engagement(con, AS_OF)
    con.close()
    reader = duckdb.connect()
    published = lake.attach(reader, lake_dir)
    yield reader, published, {**expected, **engagement}
    reader.close()


@pytest.mark.parametrize("mart", VALUE_MARTS)
def test_every_value_mart_equals_the_duckdb_engine_at_20k_customers(marts, mart):
    reader, published, expected = marts
    assert mart in published
    assert_published_mart_equals(reader, mart, expected[mart])


@pytest.mark.parametrize(("mart", "key"), ENGAGEMENT_MARTS)
def test_every_engagement_mart_and_the_audiences_equal_the_duckdb_engine_at_20k(marts, mart, key):
    reader, published, expected = marts
    assert mart in published
    got = reader.execute(f"SELECT * FROM marts.{mart}").pl()
    assert got.height > 0
    assert_same_rows(expected[mart], got, key)
