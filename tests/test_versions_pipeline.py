"""Through Dagster: months after the data ends publish no new version (their as-of is capped at
the last completed order, and every input is the same)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.publish import standing_version
from engagement_box.governance.readers import default_working
from pipelines.definitions import defs
from pipelines.resources import EngagementConfig, ExportsResource, ModelSettings, Warehouse
from pipelines.schedules import daily_schedule
from tests.pipeline_runs import copy_run, run_graph

pytestmark = pytest.mark.integration


def test_months_after_the_data_ends_reuse_the_last_version(december_run, tmp_path: Path):
    december = copy_run(december_run, tmp_path)  # the data ends in December 2025
    exports, database = december.exports, december.database

    later = run_graph(exports, database, partition="2026-01-01")

    assert later.success
    con = duckdb.connect(str(database), read_only=True)
    try:
        snapshots = con.execute(
            "SELECT snapshot_id, partition_key, is_current FROM marts.snapshots"
        ).fetchall()
    finally:
        con.close()
    assert snapshots == [(1, "2025-12-01", True)]
    # January's as-of is December's last order day, with the same inputs: nothing to compute.
    (observed,) = [
        e.asset_observation_data.asset_observation.metadata
        for e in later.get_asset_observation_events()
    ]
    assert observed["standing_version"].value == 1
    assert observed["as_of"].value == "2025-12-31"
    assert not [
        e for e in later.get_asset_materialization_events() if e.asset_key.path[0] == "marts"
    ]


def test_a_run_with_nothing_new_is_known_before_it_starts(december_run, tmp_path: Path):
    """The CLI and the daily schedule ask `standing_version` before starting a run: with every
    export staged as it is and the same settings, a month's version already stands; a new
    export file or another setting means work to do."""
    december = copy_run(december_run, tmp_path)  # December 2025 published as version 1
    exports, database = december.exports, december.database

    def standing(
        partition: str, settings: ModelSettings | None = None, published: Path = database
    ) -> int | None:
        return standing_version(
            default_working(published),
            exports,
            partition,
            settings or ModelSettings(),
            EngagementConfig(),
            run_date=dt.date(2026, 2, 15),
        )

    assert standing("2025-12-01", published=tmp_path / "new" / "w.duckdb") is None  # no warehouse
    assert standing("2025-12-01") == 1
    assert standing("2026-01-01") == 1  # the as-of is capped at the last order: same inputs
    assert standing("2025-11-01") is None  # another as-of: never computed
    assert standing("2025-12-01", ModelSettings(clv_horizon_months=6)) is None

    # The daily schedule asks the same question and starts no run.
    def tick(audiences: Path):
        with dg.build_schedule_context(
            scheduled_execution_time=dt.datetime(2026, 1, 22, 5),
            resources={
                "warehouse": Warehouse(database=str(database)),
                "exports": ExportsResource(data_dir=str(exports)),
                "model_settings": ModelSettings(),
                "engagement_config": EngagementConfig(audience_dir=str(audiences)),
            },
            repository_def=defs.get_repository_def(),
        ) as context:
            return daily_schedule.evaluate_tick(context)

    result = tick(database.parent / "audiences")  # the run's own audience files: current
    assert not result.run_requests
    assert "version 1" in result.skip_message
    # Audience files that are not the current version's (a run failed after publishing; a new
    # folder): a run of the audience files alone, nothing computed.
    (request,) = tick(tmp_path / "new_audiences").run_requests
    assert request.asset_selection == [dg.AssetKey(["activation", "audiences"])]
    assert request.run_key == "daily-2026-01-22-audiences"

    late = exports / "orders" / "late.csv"
    late.write_text(
        (exports / "orders").glob("*.csv").__next__().read_text().splitlines()[0] + "\n"
    )
    assert standing("2025-12-01") is None  # a file the warehouse has not taken in
