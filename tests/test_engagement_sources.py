"""A partial retailer: an engagement source that never arrived, or stopped arriving, is said.

CRV, CIV and CKV come from the referrals, social and reviews exports. A source with no row gave
every customer 0 of its metric, and one whose tool was cancelled 18 months before still credited
its old reactions, and both without a word (a review of a retailer exporting some sources only).
"""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from assets.engagement import SOURCES_CHECK
from engagement_box import generator
from engagement_box.engagement import coverage
from tests.pipeline_runs import DATA_END, TINY_RETAILER, run_graph

AS_OF = dt.date(2025, 12, 31)


def staged(tmp_path: Path, referrals=(), social=(), reviews=()) -> duckdb.DuckDBPyConnection:
    """A working database whose three engagement sources staged rows dated as given."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA staging")
    for table, column, days in (
        ("referrals", "referred_at", referrals),
        ("social", "occurred_at", social),
        ("reviews", "created_at", reviews),
    ):
        con.execute(f"CREATE TABLE staging.{table} ({column} TIMESTAMP)")
        for day in days:
            con.execute(f"INSERT INTO staging.{table} VALUES (?)", [day])
    return con


def test_each_source_says_its_rows_and_newest_day_up_to_the_as_of(tmp_path):
    con = staged(
        tmp_path,
        social=[dt.datetime(2024, 12, 30, 9), dt.datetime(2024, 6, 1)],
        # the as-of's last second counts, the next day's first does not
        reviews=[dt.datetime(2025, 12, 31, 23, 59, 59), dt.datetime(2026, 1, 1)],
    )
    found = coverage.coverage(con, AS_OF)

    assert [(c.source, c.rows, c.newest) for c in found] == [
        ("referrals", 0, None),
        ("social", 2, dt.date(2024, 12, 30)),
        ("reviews", 1, dt.date(2025, 12, 31)),
    ]
    problems = [c.problem(AS_OF, 90) for c in found]
    assert problems[0].startswith(
        "referrals: no row staged up to 2025-12-31, so every customer's CRV is 0 because "
        "nothing was measured, not because no one referred anyone"
    )
    assert problems[1].startswith(
        "social: its newest row is dated 2024-12-30, 366 days before the as-of 2025-12-31 "
        "(ENGAGEMENT_STALE_SOURCE_DAYS is 90): CIV still counts its 2 rows"
    )
    assert problems[2] is None
    assert found[1].report(AS_OF) == {
        "feeds": "CIV",
        "rows": 2,
        "newest": "2024-12-30",
        "days_before_as_of": 366,
    }


@pytest.mark.parametrize(("stale_days", "warned"), [(366, False), (365, True)])
def test_a_source_is_stale_only_past_the_setting(tmp_path, stale_days, warned):
    con = staged(tmp_path, social=[dt.datetime(2024, 12, 30)])
    (social,) = [c for c in coverage.coverage(con, AS_OF) if c.source == "social"]
    assert (social.problem(AS_OF, stale_days) is not None) is warned


@pytest.mark.integration
def test_a_run_missing_referrals_and_recent_social_warns_and_publishes(tmp_path):
    """The retailer's referrals and customers never arrived and its social tool stopped at the
    end of 2024: the run publishes (a warning, not a block), the engagement step's check names
    both sources, and the audience step says no one has consent (every file empty)."""
    exports = tmp_path / "exports"
    generator.generate(exports, TINY_RETAILER)
    (exports / "referrals" / "referrals.csv").unlink()
    (exports / "customers" / "customers.csv").unlink()  # no profiles: no one's consent either
    for file in (exports / "social").glob("social_2025-*.csv"):
        file.unlink()

    result = run_graph(exports, tmp_path / "warehouse" / "w.duckdb")

    assert result.success
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == SOURCES_CHECK]
    assert not check.passed and check.severity.value == "WARN"
    assert "referrals: no row staged up to 2025-12-31" in check.description
    assert "social: its newest row is dated 2024-12-" in check.description
    assert "reviews" not in check.description
    sources = check.metadata["sources"].value
    assert sources["referrals"]["rows"] == 0 and sources["reviews"]["rows"] > 0
    assert sources["social"]["days_before_as_of"] > 365 - 1
    assert check.description.count("An engagement source that is missing or has ended") == 1
    # and the audience step says why every audience file is empty
    (audiences,) = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["activation", "audiences"]
    ]
    assert audiences["customers_with_consent"].value == 0
    assert "no customer of version 1 has marketing consent on record" in (
        audiences["no_consent_warning"].value
    )


def test_the_shared_run_finds_every_source_current(december_run):
    (check,) = [
        c
        for c in december_run.result.get_asset_check_evaluations()
        if c.check_name == SOURCES_CHECK
    ]
    assert check.passed, check.description
    days = {s: r["days_before_as_of"] for s, r in check.metadata["sources"].value.items()}
    assert set(days) == {"referrals", "social", "reviews"}
    assert all(0 <= d <= 90 for d in days.values()), days
    assert DATA_END.isoformat() in check.description


def test_the_threshold_is_no_input_of_a_version():
    """Moving the warning's threshold changes no number: it is not among a version's settings,
    so a run with nothing else new publishes nothing."""
    from assets.publish import run_settings
    from pipelines.resources import EngagementConfig

    window = {"as_of": AS_OF}
    assert run_settings(window, EngagementConfig(stale_source_days=5)) == run_settings(
        window, EngagementConfig()
    )
    assert "stale_source_days" not in run_settings(window, EngagementConfig())
