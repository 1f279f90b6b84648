"""work.buyer_days: the one pass over the orders that the summaries read. Same-day orders,
non-completed orders, dated and setting FX rates, unrated currencies and email-resolved guest
orders give the same rows as the summaries' own pass over the orders, and a new orders file
added incrementally gives exactly the rows of a cold build."""

from datetime import date

import polars as pl
import pytest

from engagement_box import incremental
from engagement_box.identity.links import build_identity_links
from engagement_box.sql import load_sql, table_exists
from engagement_box.value import summary as summaries
from tests.conftest import ORDER_HEADER
from tests.test_identity import con  # noqa: F401  (the staged customers, reviews, social, ...)

FX = {"JPY": 0.007}  # the setting's fallback rate; GBP has dated rates in the fx_rates export
SETTINGS = summaries.buyer_days_settings("USD", '{"JPY": 0.007}')
AS_OF, CALIBRATION_END = date(2024, 3, 31), date(2024, 2, 15)
ORDER_COLUMNS = (*ORDER_HEADER, "source_file")
FIRST_FILE = [
    # c2 twice on one day (one in GBP at the dated rate), a return that day, one more day later
    ("o1", "c2", "bob@example.com", "2024-01-05 09:00", "10.1234", "USD", "completed"),
    ("o2", "c2", "bob@example.com", "2024-01-05 18:00", "20", "GBP", "completed"),
    ("o3", "c2", "bob@example.com", "2024-01-05 19:00", "99", "USD", "returned"),
    ("o4", "c2", "bob@example.com", "2024-02-20 10:00", "7", "JPY", "completed"),
    # a guest id with c4's email: c4's order; a cancelled one of c4 that never counts
    ("o5", "legacy-9", "DEE@example.com", "2024-01-10 08:00", "15", "USD", "completed"),
    ("o6", "c4", "dee@example.com", "2024-01-11 08:00", "500", "USD", "cancelled"),
    # no profile at all: its own customer; a currency with no rate: left out
    ("o7", "legacy-8", None, "2024-01-12 12:00", "30", "USD", "completed"),
    ("o8", "legacy-8", None, "2024-01-13 12:00", "40", "CHF", "completed"),
]
NEW_FILE = [
    # on a day c2 already has (added to that row), on a new day after the last staged order (the
    # last GBP rate holds through it), and a guest order resolved by email
    ("n1", "c2", "bob@example.com", "2024-01-05 21:00", "5", "GBP", "completed"),
    ("n2", "c2", "bob@example.com", "2024-03-30 10:00", "8", "GBP", "completed"),
    ("n3", "guest-1", "dee@example.com", "2024-03-30 11:00", "2.5", "USD", "completed"),
    ("n4", "c4", "dee@example.com", "2024-03-30 12:00", "3", "USD", "returned"),
]


def _stage_orders(db, rows: list[tuple], source_file: str) -> None:
    frame = pl.DataFrame(
        [(*r, "web", source_file) for r in rows], schema=list(ORDER_COLUMNS), orient="row"
    )
    db.register("new_rows", frame.to_arrow())
    db.execute(
        "INSERT INTO staging.orders BY NAME SELECT * REPLACE ("
        "CAST(ordered_at AS TIMESTAMP) AS ordered_at, "
        "CAST(net_amount AS DECIMAL(18, 4)) AS net_amount) FROM new_rows"
    )
    db.unregister("new_rows")
    db.execute(
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('orders', $f, $sha)",
        {"f": source_file, "sha": f"sha-{source_file}"},
    )


@pytest.fixture()
def staged(con):  # noqa: F811
    """The identity fixture's staged sources, with these orders (DECIMAL amounts, as staged),
    dated GBP rates and a record of the staged files."""
    con.execute("DROP TABLE staging.orders")
    con.execute(
        "CREATE TABLE staging.orders (order_id VARCHAR, customer_id VARCHAR, email VARCHAR, "
        "ordered_at TIMESTAMP, net_amount DECIMAL(18, 4), currency VARCHAR, status VARCHAR, "
        "channel VARCHAR, source_file VARCHAR)"
    )
    con.execute(
        "CREATE TABLE staging.ingested_files "
        "(source VARCHAR, source_file VARCHAR, sha256 VARCHAR, rows_staged BIGINT DEFAULT 1)"
    )
    con.execute(
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('customers', 'customers/c.csv', 'c1'), "
        "('fx_rates', 'fx_rates/fx.csv', 'f1')"
    )
    con.execute(
        'CREATE TABLE staging.fx_rates ("date" DATE, currency VARCHAR, rate DOUBLE, '
        "source_file VARCHAR, source_row BIGINT)"
    )
    con.execute(
        "INSERT INTO staging.fx_rates VALUES ('2024-01-01', 'GBP', 1.25, 'fx_rates/fx.csv', 1), "
        "('2024-02-01', 'GBP', 1.3, 'fx_rates/fx.csv', 2)"
    )
    _stage_orders(con, FIRST_FILE, "orders/o1.csv")
    build_identity_links(con)
    return con


def _refresh(db) -> incremental.Plan:
    now = incremental.inputs(db, SETTINGS)
    return summaries.refresh_buyer_days(db, now, currency="USD", fx_rates=FX)


def _sorted(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows())


def test_the_stored_days_hold_completed_rated_orders_per_customer_and_day(staged):
    plan = _refresh(staged)
    assert not plan.incremental
    rows = staged.execute(
        "SELECT customer_id, order_day, orders, CAST(day_spend AS DOUBLE) FROM work.buyer_days "
        "ORDER BY ALL"
    ).fetchall()
    assert rows == [
        # 10.1234 + 20 GBP at 1.25; the return that day does not count
        ("c2", date(2024, 1, 5), 2, 35.1234),
        ("c2", date(2024, 2, 20), 1, 0.049),  # 7 JPY at the setting's 0.007
        ("c4", date(2024, 1, 10), 1, 15.0),  # legacy-9's order, by c4's email
        ("legacy-8", date(2024, 1, 12), 1, 30.0),  # the CHF order is left out
    ]
    assert summaries.buyer_days_problem(staged, incremental.inputs(staged, SETTINGS)) is None


def test_the_summaries_from_the_stored_days_equal_their_own_pass_over_the_orders(staged):
    _refresh(staged)
    money = {"currency": "USD", "fx_rates": FX, "resolve_identity": True}
    stored = summaries.customer_summary(staged, AS_OF, stored=True)
    own = summaries.customer_summary(staged, AS_OF, **money)
    assert _sorted(stored) == _sorted(own)
    assert stored.schema == own.schema  # the narrower stored spend sums to the same types
    stored = summaries.calibration_holdout(staged, CALIBRATION_END, AS_OF, stored=True)
    own = summaries.calibration_holdout(staged, CALIBRATION_END, AS_OF, **money)
    assert _sorted(stored) == _sorted(own) and stored.schema == own.schema
    stored = summaries.cohort_retention(staged, AS_OF, stored=True)
    own = summaries.cohort_retention(staged, AS_OF, **money)
    assert _sorted(stored) == _sorted(own) and stored.schema == own.schema
    january = stored.filter(
        (pl.col("cohort_month") == date(2024, 1, 1)) & (pl.col("months_since_first_order") == 0)
    ).row(0, named=True)
    # three customers ordered in January: c2's two same-day orders count as two orders
    assert (january["cohort_customers"], january["active_customers"], january["orders"]) == (
        3,
        3,
        4,
    )
    assert january["revenue"] == pytest.approx(35.1234 + 15 + 30)


def test_a_new_orders_file_is_added_and_equals_a_cold_build(staged):
    _refresh(staged)
    _stage_orders(staged, NEW_FILE, "orders/o2.csv")
    now = incremental.inputs(staged, SETTINGS)
    assert "other staged orders" in summaries.buyer_days_problem(staged, now)

    plan = _refresh(staged)
    assert plan.incremental and plan.new_files == ("orders/o2.csv",)
    assert summaries.buyer_days_problem(staged, now) is None
    stored = staged.execute("SELECT * FROM work.buyer_days ORDER BY ALL").fetchall()
    summaries.days_source(staged, stored=False, currency="USD", fx_rates=FX, resolve_identity=True)
    cold = staged.execute("SELECT * FROM temp.buyer_days ORDER BY ALL").fetchall()
    assert stored == cold  # exactly: counts and DECIMAL sums
    c2_first_day = [r for r in stored if r[0] == "c2" and r[1] == date(2024, 1, 5)]
    assert [(r[2], float(r[3])) for r in c2_first_day] == [(3, 35.1234 + 6.25)]
    assert [r[:3] for r in stored if r[1] == date(2024, 3, 30)] == [
        ("c2", date(2024, 3, 30), 1),  # 8 GBP at the last dated rate, 1.3
        ("c4", date(2024, 3, 30), 1),  # the guest order, by email
    ]

    assert _refresh(staged).incremental  # nothing new: the rows stay as they are
    assert staged.execute("SELECT * FROM work.buyer_days ORDER BY ALL").fetchall() == stored


def test_the_summaries_refuse_stored_days_that_are_not_built(con):  # noqa: F811
    with pytest.raises(ValueError, match="materialize work/buyer_days first"):
        summaries.customer_summary(con, AS_OF, stored=True)


def _spend_type(db) -> str:
    return db.execute(
        "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'work' "
        "AND table_name = 'buyer_days' AND column_name = 'day_spend'"
    ).fetchone()[0]


@pytest.mark.parametrize("when", ["cold", "new file"])
def test_a_day_spend_past_64_bits_widens_the_column_and_loses_nothing(staged, when):
    """The stored spend is DECIMAL(18, 4) while every day fits; a day of 1e9 at the largest rate
    the contract allows (1e6) does not, and the column becomes DECIMAL(38, 4), exact."""
    huge = [("h1", "c2", "bob@example.com", "2024-01-20 10:00", "1000000000", "XAU", "completed")]
    fx = {**FX, "XAU": 1e6}
    settings = summaries.buyer_days_settings("USD", '{"JPY": 0.007, "XAU": 1000000.0}')
    if when == "cold":
        _stage_orders(staged, huge, "orders/o2.csv")
    else:
        now = incremental.inputs(staged, settings)
        summaries.refresh_buyer_days(staged, now, currency="USD", fx_rates=fx)
        assert _spend_type(staged) == "DECIMAL(18,4)"
        _stage_orders(staged, huge, "orders/o2.csv")
    now = incremental.inputs(staged, settings)
    plan = summaries.refresh_buyer_days(staged, now, currency="USD", fx_rates=fx)
    assert plan.incremental == (when == "new file")
    assert _spend_type(staged) == "DECIMAL(38,4)"
    stored = staged.execute("SELECT * FROM work.buyer_days ORDER BY ALL").fetchall()
    summaries.days_source(staged, stored=False, currency="USD", fx_rates=fx, resolve_identity=True)
    assert stored == staged.execute("SELECT * FROM temp.buyer_days ORDER BY ALL").fetchall()
    (spend,) = [r[3] for r in stored if r[1] == date(2024, 1, 20)]
    assert spend == 10**15


def test_a_rate_a_thousand_times_its_previous_one_is_refused_not_converted_with(staged):
    """A typo in the rates (GBP at 1300 for 1.3) valued every GBP order of the month a thousand
    times over and moved the spend model of every customer, without a word (a review). A step
    of more than fivefold between two dated rates of a currency is refused, naming both rows;
    corrected in its file, the rates convert again."""
    staged.execute("UPDATE staging.fx_rates SET rate = 1300 WHERE \"date\" = '2024-02-01'")
    now = incremental.inputs(staged, SETTINGS)
    with pytest.raises(ValueError) as refused:
        summaries.refresh_buyer_days(staged, now, currency="USD", fx_rates=FX)
    assert str(refused.value).startswith(
        "the fx_rates export has rates into USD that jump more than 5x from one dated rate of "
        "a currency to the next: GBP 1300 on 2024-02-01 (fx_rates/fx.csv row 2) after 1.25 on "
        "2024-01-01 (fx_rates/fx.csv row 1): 1,040x."
    )
    assert not table_exists(staged, "work", "buyer_days")  # nothing half written
    staged.execute("UPDATE staging.fx_rates SET rate = 0.1 WHERE \"date\" = '2024-02-01'")
    with pytest.raises(ValueError, match="GBP 0.1 on 2024-02-01 .* 12x"):  # the other way
        summaries.refresh_buyer_days(staged, now, currency="USD", fx_rates=FX)
    staged.execute("UPDATE staging.fx_rates SET rate = 6.25 WHERE \"date\" = '2024-02-01'")
    assert _refresh(staged).reason  # fivefold exactly: a step a rate may take
    # (in DOUBLEs 0.0012 * 5 is above 0.006: a code review found such a step refused)
    staged.execute(
        "INSERT INTO staging.fx_rates VALUES ('2024-01-01', 'JPY', 0.0012, 'fx_rates/fx.csv', 3), "
        "('2024-02-01', 'JPY', 0.006, 'fx_rates/fx.csv', 4)"
    )
    jumps = staged.execute(
        load_sql("work/fx_rate_jumps"), {"currency": "USD", "max_jump": summaries.MAX_RATE_JUMP}
    ).fetchall()
    assert jumps == []


def test_rates_into_another_currency_are_refused_not_converted_with(staged):
    """ENGAGEMENT_CURRENCY=GBP with an fx_rates export into USD (GBP at 1.25 and 1.3): GBP
    orders were converted at the GBP -> USD rates as if they were into GBP, and the version
    published wrong money without a word. The export's rates for the reporting currency itself
    say they are into another one: the step refuses, naming the fix."""
    now = incremental.inputs(staged, SETTINGS)
    with pytest.raises(ValueError) as refused:
        summaries.refresh_buyer_days(staged, now, currency="GBP", fx_rates={"USD": 0.79})
    assert str(refused.value).startswith(
        "the fx_rates export gives GBP, the reporting currency (ENGAGEMENT_CURRENCY), rates "
        "other than 1 (2 row(s), 1.25 to 1.3): its rates are into another currency."
    )
    assert _refresh(staged).reason  # into USD, the export's own currency: converted as before
