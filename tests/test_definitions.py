"""The code location as the Dagster UI sees it: the graph, checks, schedules, sensor, and no
concurrency pool (runs are serialised by the warehouse's run lock)."""

import datetime as dt
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from engagement_box.governance.readers import default_working as readers_working
from engagement_box.sql import load_sql
from engagement_box.staging.contracts import SOURCES
from pipelines.definitions import defs
from pipelines.partitions import month_end, monthly_as_of
from pipelines.resources import EngagementConfig, ExportsResource, ModelSettings, Warehouse
from pipelines.schedules import daily_schedule
from pipelines.sensors import export_fingerprints, new_export_files
from tests.conftest import good_order, write_csv

REPO = Path(__file__).resolve().parents[1]

EXPECTED_ASSETS = {
    "staging/customers",
    "staging/orders",
    "staging/reviews",
    "staging/social",
    "staging/referrals",
    "staging/fx_rates",
    "intermediate/identity_links",
    "work/buyer_days",
    "work/customer_summary",
    "work/calibration_holdout",
    "work/customer_rfm",
    "work/model_fit",
    "work/customer_value",
    "work/model_validation",
    "work/engagement_value",
    "work/customer_persona",
    "work/persona_profile",
    "work/customer",
    "work/cohort_retention",
    "work/version_inputs",
    "marts/customer_rfm",
    "marts/customer_value",
    "marts/model_fit",
    "marts/model_validation",
    "marts/engagement_value",
    "marts/customer_persona",
    "marts/persona_profile",
    "marts/customer",
    "marts/cohort_retention",
    "activation/audiences",
    "maintenance/version_retention",
}


def specs():
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}


def test_the_asset_graph_is_the_documented_one():
    assert set(specs()) == EXPECTED_ASSETS


def test_every_asset_is_described_and_takes_no_pool_slot():
    """A pool slot is freed only when Dagster sees its run finish, which a killed run never
    does: with the old `duckdb` pool every later run waited forever (issue 11)."""
    graph = defs.resolve_asset_graph()
    for name, node in specs().items():
        assert node.description, name
        assets_def = graph.assets_def_for_key(node.key)
        pools = {op.pool for op in assets_def.node_def.iterate_op_defs()}
        assert pools == {None}, name


def test_the_instance_configuration_limits_no_pool_nor_run_queue():
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / ".dagster/dagster.yaml").read_text()
    )
    assert "concurrency" not in config and "run_coordinator" not in config


def test_blocking_checks_guard_what_gets_published():
    checks = {
        (key.asset_key.to_user_string(), key.name): spec
        for key, spec in (
            (spec.key, spec)
            for ad in defs.resolve_asset_graph().assets_defs
            for spec in ad.check_specs
        )
    }
    blocking = {k for k, spec in checks.items() if spec.blocking}
    assert {
        ("staging/orders", "rows_reconcile"),
        ("work/model_fit", "fits_converged"),
        ("work/customer_value", "values_finite"),
        ("work/engagement_value", "cev_is_the_sum"),
        ("work/customer", "one_row_per_customer"),
        ("work/customer", "documented_segments_and_quadrants"),
        ("work/cohort_retention", "one_row_per_cohort_month"),
    } <= blocking


def test_value_assets_are_partitioned_by_as_of_month_and_staging_is_not():
    nodes = specs()
    assert nodes["staging/orders"].partitions_def is None
    assert nodes["work/customer_value"].partitions_def is not None
    assert month_end("2024-02-01").isoformat() == "2024-02-29"


def test_daily_schedule_runs_the_month_of_its_tick_not_of_the_wall_clock(tmp_path):
    resources = {  # no warehouse yet: the tick cannot know of a standing version, so it runs
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
        "exports": ExportsResource(data_dir=str(tmp_path)),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
    }
    for source in SOURCES:
        (tmp_path / source).mkdir()
    for tick, month in [
        (datetime(2026, 11, 22, 5), "2026-11-01"),
        (datetime(2026, 11, 30, 5), "2026-11-01"),  # a late or catch-up tick keeps its month
        (datetime(2024, 2, 29, 5), "2024-02-01"),
        # the first of the month runs the month just ended, whose last day the night's export
        # brought: its version holds that day (July ran as of 30 June, and June's stopped at
        # the 29th: a review of calendar edges)
        (datetime(2026, 12, 1, 5), "2026-11-01"),
        (datetime(2024, 3, 1, 5), "2024-02-01"),
    ]:
        with dg.build_schedule_context(
            scheduled_execution_time=tick,
            resources=resources,
            repository_def=defs.get_repository_def(),
        ) as context:
            request = daily_schedule.evaluate_tick(context).run_requests[0]
        assert request.partition_key == month
        # one run per day, even if the tick repeats
        assert request.run_key == f"daily-{tick.date().isoformat()}"


def test_a_tick_takes_no_run_lock_and_a_bad_setting_starts_no_run(tmp_path, monkeypatch):
    """The schedule's tick initialised the warehouse resource as a run does: it waited for the
    run lock (up to 30 minutes while a run went) and could move a one-file warehouse. A bad
    setting failed the tick with a traceback, and the sensor launched runs that failed at
    their sixteenth step. Now a tick takes no lock, and both say which variable, no run."""
    for source in SOURCES:
        (tmp_path / source).mkdir()
    database = tmp_path / "w.duckdb"
    holder = subprocess.Popen(  # another process's run holds the lock
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
            f"{database}.run.lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        resources = {
            "warehouse": Warehouse(database=str(database), run_lock_timeout_seconds=2),
            "exports": ExportsResource(data_dir=str(tmp_path)),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        }

        def tick():
            with dg.build_schedule_context(
                scheduled_execution_time=datetime(2026, 11, 22, 5),
                resources=resources,
                repository_def=defs.get_repository_def(),
            ) as context:
                return daily_schedule.evaluate_tick(context)

        assert tick().run_requests[0].partition_key == "2026-11-01"
        monkeypatch.setenv("ENGAGEMENT_CIV_BETA", "1.5")
        refused = tick()
        assert not refused.run_requests
        assert refused.skip_message.startswith("no run: ENGAGEMENT_CIV_BETA='1.5' is not valid")
        sensed = tick_sensor(resources)
        assert isinstance(sensed, dg.SkipReason)
        assert sensed.skip_message.startswith("no run: ENGAGEMENT_CIV_BETA='1.5' is not valid")
    finally:
        holder.kill()
        holder.wait()


def skipped_ticks(tmp_path: Path, **config) -> tuple[str, str]:
    """The schedule's tick for 2026-11-22 and the sensor's, on exports in `tmp_path` (`config`:
    values given in code to EngagementConfig): both skip (asserted); their skip messages."""
    resources = {
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
        "exports": ExportsResource(data_dir=str(tmp_path)),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences"), **config),
    }
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 5),
        resources=resources,
        repository_def=defs.get_repository_def(),
    ) as context:
        ticked = daily_schedule.evaluate_tick(context)
    assert not ticked.run_requests
    sensed = tick_sensor(resources)
    assert isinstance(sensed, dg.SkipReason)
    return ticked.skip_message, sensed.skip_message


def test_a_missing_export_folder_or_a_refused_file_is_a_ticks_skip_reason(tmp_path):
    """With referrals/ moved away, the sensor's and the schedule's ticks failed with
    DagsterResourceFunctionError and a stack trace; a run still fails before any step."""
    for source in SOURCES:
        if source != "referrals":
            (tmp_path / source).mkdir()

    scheduled, sensed = skipped_ticks(tmp_path)
    assert scheduled.startswith("no run: ") and "referrals" in scheduled and "referrals" in sensed
    # A file the ingest refuses by its type: the sensor skipped, the schedule requested a run
    # that failed in staging__orders on it. Both now say it and start nothing.
    (tmp_path / "referrals").mkdir()
    (tmp_path / "orders" / "notes.txt").write_text("to do\n")
    scheduled, sensed = skipped_ticks(tmp_path)
    assert scheduled.startswith("no run: orders/notes.txt: unsupported file type")
    assert sensed == scheduled
    # An audience folder that is a file: both ticks requested runs that failed in their
    # resources' setup (a review); they say it instead, as the run would have.
    (tmp_path / "orders" / "notes.txt").unlink()
    (tmp_path / "audiences").write_text("not a folder\n")
    scheduled, sensed = skipped_ticks(tmp_path)
    assert scheduled == (
        f"no run: the audience folder {tmp_path / 'audiences'} cannot be written (it is a "
        "file, not a folder); point ENGAGEMENT_AUDIENCE_DIR at a folder this user can write "
        "(it is created when missing)"
    )
    assert sensed == scheduled
    assert not list(tmp_path.glob(".*write-check"))  # the tick's probe is not left behind


def test_a_calibration_end_no_as_of_can_follow_is_a_ticks_skip_reason(tmp_path, monkeypatch):
    """A calibration end on or after the latest as-of of the tick's month: the schedule ticked a
    run every day that failed in its setup (a re-review); it skips, naming the setting."""
    for source in SOURCES:
        (tmp_path / source).mkdir()
    monkeypatch.setenv("ENGAGEMENT_CALIBRATION_END", "2999-01-01")
    monkeypatch.delenv("ENGAGEMENT_AS_OF", raising=False)
    scheduled, sensed = skipped_ticks(tmp_path)
    assert scheduled == (
        "no run: ENGAGEMENT_CALIBRATION_END=2999-01-01 must be before the as-of, which for the "
        "month 2026-11 is 2026-11-22 at the latest: the holdout is the days after the "
        "calibration end"
    )
    assert sensed.startswith("no run: ENGAGEMENT_CALIBRATION_END=2999-01-01")


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("ENGAGEMENT_AS_OF", "ENGAGEMENT_AS_OF=2999-12-01 is after the run's date"),
        ("ENGAGEMENT_HISTORY_START", "ENGAGEMENT_HISTORY_START=2999-12-01 is after the current"),
    ],
)
def test_a_date_no_run_can_take_yet_is_a_ticks_skip_reason(tmp_path, monkeypatch, name, said):
    """A pinned as-of after the tick's day: both ticks requested a run a day that failed after
    its staging steps; a history start after the current month made the sensor's tick raise
    (a review). Both skip, naming the setting."""
    for source in SOURCES:
        (tmp_path / source).mkdir()
    monkeypatch.setenv(name, "2999-12-01")
    scheduled, sensed = skipped_ticks(tmp_path)
    assert scheduled.startswith(f"no run: {said}") and sensed.startswith(f"no run: {said}")


def test_a_published_file_of_another_working_database_is_a_ticks_skip_reason(tmp_path):
    """A stray ENGAGEMENT_WORKING_DB: the ticks requested runs that computed everything into
    a new database and failed at the publish (a re-review). Both skip, naming the one."""
    for source in SOURCES:
        (tmp_path / source).mkdir()
    other = tmp_path / "other.working.duckdb"
    duckdb.connect(str(other)).close()
    published = tmp_path / "w.duckdb"
    with duckdb.connect(str(published)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(load_sql("marts/create_published_from"))
        con.execute(
            "INSERT INTO marts.published_from VALUES ('someone', $other, $published)",
            {"other": str(other), "published": str(published)},
        )
    scheduled, sensed = skipped_ticks(tmp_path)
    said = f"no run: {published} was built from the working database {other}, which still"
    assert scheduled.startswith(said) and sensed.startswith(said)


def test_two_folder_checks_at_once_do_not_remove_each_others_file(tmp_path):
    """The sensor's and the schedule's ticks (or a tick and a starting run) tried the same file
    name: one removed it under the other, whose check said the folder "cannot be written (no
    such file or directory)" and skipped the day's run (a review: 1,526 of 6,000 checks)."""
    import threading

    from pipelines.runs import folder_not_writable

    said: list[str | None] = []

    def check() -> None:
        said.extend(folder_not_writable(tmp_path, "w.duckdb") for _ in range(400))

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert said == [None] * 800
    assert not list(tmp_path.iterdir())


def setup_failure(tmp_path: Path, **execute) -> str:
    """The message a whole-job run in this process stops with before any step (its resources'
    setup refused it), on empty export folders in `tmp_path`; `execute`: the partition or tags."""
    for source in SOURCES:
        (tmp_path / source).mkdir(exist_ok=True)
    result = defs.resolve_job_def("engagement_pipeline").execute_in_process(
        resources={
            "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
            "exports": ExportsResource(data_dir=str(tmp_path)),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        },
        raise_on_error=False,
        **execute,
    )
    assert not result.success
    assert not any(e.is_step_success for e in result.all_events)
    (failure,) = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    return failure.event_specific_data.error.message


def test_the_monthly_job_without_a_month_stops_before_any_step_saying_what_to_give(tmp_path):
    """`dagster job execute -j engagement_pipeline` with no partition staged every export, then
    failed inside Dagster: "Cannot access partition_key for a non-partitioned run"."""
    assert setup_failure(tmp_path).startswith(
        "pipelines.errors.ConfigurationError: engagement_pipeline computes one as-of month: "
        "give the run a partition"
    )
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "w.working.duckdb").exists()


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("the month after the current one", "months after the current one cannot run yet"),
        ("2020-01-01", "To run an earlier month, set ENGAGEMENT_HISTORY_START"),
        ("2025-12-15", "a partition is a month's first day (e.g. 2025-12-01)"),
    ],
)
def test_a_partition_key_that_is_not_an_as_of_month_stops_the_run_before_any_step(
    tmp_path, key, said
):
    """Dagster takes any partition tag: `--tags '{"dagster/partition": "2031-01-01"}'`
    published a version as of 2031 that became current, and a key before the first month
    failed halfway with Dagster's CheckError after staging every export (a review)."""
    if key == "the month after the current one":
        current = dt.date.fromisoformat(monthly_as_of.get_last_partition_key())
        key = (current + dt.timedelta(days=32)).replace(day=1).isoformat()
    message = setup_failure(tmp_path, tags={"dagster/partition": key})
    assert message.startswith(f"pipelines.errors.ConfigurationError: partition '{key}'")
    assert said in message
    assert not (tmp_path / "w.working.duckdb").exists()


def test_a_calibration_end_after_the_months_last_day_stops_the_run_before_any_step(
    tmp_path, monkeypatch
):
    """ENGAGEMENT_CALIBRATION_END=2026-01-15 for December 2025: the staging steps ran, then
    work/version_inputs refused it, twelve steps later (a re-review)."""
    monkeypatch.setenv("ENGAGEMENT_CALIBRATION_END", "2026-01-15")
    monkeypatch.delenv("ENGAGEMENT_AS_OF", raising=False)
    assert (
        "ENGAGEMENT_CALIBRATION_END=2026-01-15 must be before the as-of, which for the month "
        "2025-12 is 2025-12-31 at the latest" in setup_failure(tmp_path, partition_key="2025-12-01")
    )


def test_an_audience_folder_that_is_a_file_stops_the_run_before_its_first_step(tmp_path):
    """ENGAGEMENT_AUDIENCE_DIR pointing at a file failed the audiences step with a raw
    FileExistsError, after the version was published; the run now stops before it writes."""
    (tmp_path / "audiences").write_text("not a folder\n")
    assert setup_failure(tmp_path, partition_key="2025-12-01").startswith(
        f"pipelines.errors.ConfigurationError: the audience folder {tmp_path / 'audiences'} "
        "cannot be written (it is a file, not a folder); nothing ran"
    )
    assert not (tmp_path / "w.working.duckdb").exists()


def test_the_audience_folder_check_follows_links_and_asks_only_runs_that_write_there(tmp_path):
    """A link to nothing passed the check (`exists()` is False for it) and failed the last step
    with FileExistsError; a run that writes no audience file is not refused for the folder."""
    import pipelines.resources as resources

    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x")
    nothing = "a link to nothing (or a loop of links)"
    assert resources.audience_folder_problem(tmp_path / "dangling") == f"it is {nothing}"
    assert resources.audience_folder_problem(tmp_path / "dangling" / "sub") == (
        f"{tmp_path / 'dangling'} is {nothing}"
    )
    (tmp_path / "file").write_text("")
    (tmp_path / "to_a_file").symlink_to(tmp_path / "file")
    assert resources.audience_folder_problem(tmp_path / "to_a_file") == "it is a link to a file"
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    assert resources.audience_folder_problem(tmp_path / "linked") is None
    assert resources.audience_folder_problem(tmp_path / "linked" / "new" / "deeper") is None

    for source in SOURCES:
        (tmp_path / "exports" / source).mkdir(parents=True)
    from assets.engagement import engagement_assets
    from assets.identity import identity_assets
    from assets.staging import staged_assets

    result = dg.materialize(  # the identity links read the engagement settings
        [*staged_assets, *identity_assets, *engagement_assets],
        selection="*intermediate/identity_links",  # with the staging steps before it
        resources={
            "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
            "exports": ExportsResource(data_dir=str(tmp_path / "exports")),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "dangling")),
        },
        raise_on_error=False,
    )
    assert result.success  # it writes no audience file: the folder is not its concern

    # which runs write audience files: a whole job's, the steps' of either engine that do
    spark_publish = dg.AssetKey(["spark", "published_marts"])
    for run, writes in [
        (dg.DagsterRun(job_name="engagement_pipeline"), True),
        (dg.DagsterRun(job_name="j", asset_selection=frozenset()), True),
        (dg.DagsterRun(job_name="j", asset_selection=frozenset({spark_publish})), True),
        (dg.DagsterRun(job_name="j", step_keys_to_execute=["activation__audiences"]), True),
        (dg.DagsterRun(job_name="j", step_keys_to_execute=["spark__published_marts"]), True),
        (dg.DagsterRun(job_name="j", step_keys_to_execute=["work__customer"]), False),
        (dg.DagsterRun(job_name="j", asset_selection=frozenset({dg.AssetKey("x")})), False),
    ]:
        assert resources.writes_audience_files(run) is writes, run


def test_a_run_with_a_bad_setting_stops_before_its_first_step_naming_it(tmp_path, monkeypatch):
    """A run from the UI with ENGAGEMENT_CIV_BETA=1.5 ran fifteen steps, then failed the
    engagement step. The warehouse resource now refuses the run before any step writes."""
    for source in SOURCES:
        (tmp_path / source).mkdir()
    monkeypatch.setenv("ENGAGEMENT_CIV_BETA", "1.5")
    database = tmp_path / "w.duckdb"
    result = dg.materialize(
        [a for a in defs.assets if dg.AssetKey(["staging", "fx_rates"]) in a.keys],
        resources={
            "warehouse": Warehouse(database=str(database)),
            "exports": ExportsResource(data_dir=str(tmp_path)),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert failure.event_specific_data.error.message.startswith(
        "pipelines.errors.ConfigurationError: ENGAGEMENT_CIV_BETA='1.5' is not valid"
    )
    assert not any(e.is_step_success for e in result.all_events)
    assert not database.exists() and not readers_working(database).exists()


def tick_sensor(resources: dict, cursor: str | None = None):
    """One tick of the sensor with the given resources, and a warehouse and an audience folder
    beside the export folder (not the repository's) where not given."""
    beside = Path(resources["exports"].data_dir).with_name("tick")
    wanted = ("exports", "warehouse", "model_settings", "engagement_config")
    given = {k: v for k, v in resources.items() if k in wanted}
    resources = {
        "warehouse": Warehouse(database=str(beside / "w.duckdb")),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(beside / "audiences")),
        **given,
    }
    with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
        return new_export_files(context)


def _sense(exports, cursor=None, after: float = 1.0, **resources):
    """One tick of the sensor, `after` seconds after the last change to any export file (the
    tick's clock is the files' own, so the wall clock never decides)."""
    from pipelines import sensors

    changed = max(
        (
            max(p.stat().st_mtime_ns, p.stat().st_ctime_ns)
            for p in Path(exports.data_dir).rglob("*")
        ),
        default=0,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sensors, "now_ns", lambda: changed + int(after * 1e9))
        return tick_sensor({"exports": exports, **resources}, cursor)


def test_sensor_requests_a_run_for_new_files_only(tmp_path):
    exports = ExportsResource(data_dir=str(tmp_path))
    for source in SOURCES:  # every source has its folder (a missing one is a setup error)
        (tmp_path / source).mkdir()
    write_csv(tmp_path / "orders" / "day1.csv", [good_order(1)])

    # Just written: it may still be being copied, so the first tick waits and the next one,
    # seeing it unchanged, starts the run.
    waiting = _sense(exports)
    assert not waiting.run_requests
    assert waiting.skip_reason.skip_message.startswith(
        "waiting for 1 file(s) changed in the last 60 s"
    )
    first = _sense(exports, waiting.cursor)
    assert len(first.run_requests) == 1
    cursor = first.cursor
    assert "orders/day1.csv" in json.loads(cursor)["taken"]

    again = _sense(exports, cursor)
    assert isinstance(again, dg.SkipReason)

    write_csv(tmp_path / "orders" / "day2.csv", [good_order(2)])
    third = _sense(exports, _sense(exports, cursor).cursor)
    assert len(third.run_requests) == 1
    assert third.run_requests[0].run_key != first.run_requests[0].run_key

    # A corrected file sent again under its name and size (19.90 for 29.90), its time put back
    # too: a run, under a run key of its own (a mutation review: a change judged by the size, or
    # a key made of the paths alone, which Dagster drops as a run already requested, passed).
    day1 = tmp_path / "orders" / "day1.csv"
    before = day1.stat()
    text = day1.read_bytes()
    fixed = text.replace(b"1", b"2", 1)
    assert fixed != text and len(fixed) == len(text)
    day1.write_bytes(fixed)
    assert day1.stat().st_size == before.st_size
    os.utime(day1, ns=(before.st_atime_ns, before.st_mtime_ns))
    settled = _sense(exports, third.cursor, after=120)
    assert not isinstance(settled, dg.SkipReason), settled.skip_message
    corrected = settled if settled.run_requests else _sense(exports, settled.cursor, after=120)
    assert len(corrected.run_requests) == 1, corrected
    keys = {first.run_requests[0].run_key, third.run_requests[0].run_key}
    assert corrected.run_requests[0].run_key not in keys

    # The sensor sees the files the ingest takes: a hidden file is no news, a file the ingest
    # refuses is a skip that says why (the run would fail on it).
    cursor = corrected.cursor
    (tmp_path / "orders" / ".day3.csv.partial").write_text("order_id\n")
    quiet = _sense(exports, cursor)
    assert isinstance(quiet, dg.SkipReason)
    (tmp_path / "orders" / "day3.xlsx").write_text("not an export")
    refused = _sense(exports, cursor)
    assert isinstance(refused, dg.SkipReason) and "orders/day3.xlsx" in refused.skip_message


def test_sensor_runs_the_month_of_the_day_before_as_the_schedule_does(tmp_path, monkeypatch):
    """A file sensed on 1 July holds 30 June's orders: the run completes June (whose version
    then holds its last day), as the daily tick of that morning does; running July there gave a
    "July" version as of 30 June and left June's stopped at the 29th. Any other day it is the
    day's own month."""
    from pipelines import sensors
    from pipelines.partitions import month_of_day_before

    exports = ExportsResource(data_dir=str(tmp_path))
    for source in SOURCES:
        (tmp_path / source).mkdir()
    write_csv(tmp_path / "orders" / "day1.csv", [good_order(1)])
    months = {}
    for today in (dt.date(2026, 7, 1), dt.date(2026, 7, 15), dt.date(2026, 1, 1)):
        monkeypatch.setattr(sensors, "shop_today", lambda today=today: today)
        (request,) = _sense(exports, after=120).run_requests
        months[today.isoformat()] = request.partition_key
    assert months == {
        "2026-07-01": "2026-06-01",
        "2026-07-15": "2026-07-01",
        "2026-01-01": "2025-12-01",
    }
    # The schedule's tick of the same mornings takes the same months.
    assert [
        month_of_day_before(datetime(2026, 7, 1, 5)),
        month_of_day_before(datetime(2026, 7, 15, 5)),
    ] == [
        "2026-06-01",
        "2026-07-01",
    ]
    # The history's first day has no month before it: its own.
    monkeypatch.setattr("pipelines.partitions.HISTORY_START", "2026-07-01")
    assert month_of_day_before(dt.date(2026, 7, 1)) == "2026-07-01"


def test_sensor_starts_no_run_for_files_a_run_took_in_already(december_run, tmp_path):
    """The operator review: a file failed its run, was fixed, and the run re-executed from
    failure published the month; the sensor, whose cursor knew nothing of it, then started one
    more run, which staged nothing and skipped. Files staged as they are, under a version
    computed from them, are no reason for a run (the daily schedule asks the same); a file no
    run took in is."""
    from tests.pipeline_runs import copy_run

    copy = copy_run(december_run, tmp_path)  # December 2025, every export taken in: version 1
    exports = ExportsResource(data_dir=str(copy.exports))
    given = {
        "warehouse": Warehouse(database=str(copy.database)),
        "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
    }
    known = _sense(exports, after=120, **given)  # a cursor that knows none of them
    assert not known.run_requests
    assert "staged as they are, and version 1, computed from the same inputs, stands" in (
        known.skip_reason.skip_message
    )
    assert isinstance(_sense(exports, known.cursor, after=120, **given), dg.SkipReason)

    write_csv(copy.exports / "orders" / "late.csv", [good_order(1)])
    (request,) = _sense(exports, known.cursor, after=120, **given).run_requests
    assert request.tags == {"engagement/new_files": "1"}


def test_sensor_skips_saying_which_model_setting_is_not_valid(tmp_path):
    """The code review: the sensor asks the standing version with the model settings, which it
    did not check first as the schedule does, so a bad one failed its tick with a traceback."""
    exports = ExportsResource(data_dir=str(tmp_path))
    for source in SOURCES:
        (tmp_path / source).mkdir()
    write_csv(tmp_path / "orders" / "day1.csv", [good_order(1)])
    tick = _sense(exports, after=120, model_settings=ModelSettings(margin=30.0))
    assert isinstance(tick, dg.SkipReason), tick
    assert tick.skip_message.startswith("no run: ") and "margin" in tick.skip_message


def test_sensor_waits_while_a_file_is_still_being_written(tmp_path):
    """An export copied into the folder while the sensor ticked started a run that took in the
    file cut short (a CSV's last line cut, a Parquet file without its footer failed the run).
    The sensor now starts a run only when no new or changed file moved since its previous tick
    (or in the last minute)."""
    exports = ExportsResource(data_dir=str(tmp_path))
    for source in SOURCES:
        (tmp_path / source).mkdir()
    path = tmp_path / "orders" / "big.csv"
    write_csv(path, [good_order(1)])
    tick = _sense(exports)
    assert not tick.run_requests
    with path.open("a", encoding="utf-8") as handle:  # the copy goes on
        handle.write(",".join(good_order(2).values()) + "\n")
    tick = _sense(exports, tick.cursor)
    assert not tick.run_requests and "orders/big.csv" in tick.skip_reason.skip_message
    done = _sense(exports, tick.cursor)  # unchanged since the previous tick: settled
    assert len(done.run_requests) == 1
    assert json.loads(done.cursor)["taken"]["orders/big.csv"][0] == path.stat().st_size


def test_sensor_reads_the_cursor_of_the_release_before_settling(tmp_path):
    """A deployment upgraded with the sensor on: its cursor is the mapping of files taken."""
    exports = ExportsResource(data_dir=str(tmp_path))
    for source in SOURCES:
        (tmp_path / source).mkdir()
    write_csv(tmp_path / "orders" / "day1.csv", [good_order(1)])
    old = json.dumps(export_fingerprints(exports))
    quiet = _sense(exports, old)
    assert isinstance(quiet, dg.SkipReason) and quiet.skip_message.startswith("no new or changed")


def test_sensor_starts_a_run_at_once_for_files_untouched_for_a_minute(tmp_path):
    exports = ExportsResource(data_dir=str(tmp_path))
    for source in SOURCES:
        (tmp_path / source).mkdir()
    write_csv(tmp_path / "orders" / "day1.csv", [good_order(1)])
    assert not _sense(exports, after=59).run_requests
    assert len(_sense(exports, after=61).run_requests) == 1


BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


@pytest.mark.parametrize(
    "groups", [("work", "marts"), ("staging", "intermediate", "work", "marts")]
)
def test_a_backfill_launched_from_the_asset_graph_is_taken(groups):
    """The UI's backfill of months for assets selected in the asset graph (the same GraphQL
    mutation and launch checks, on this code location loaded in the test's process: a code
    server's start times out under a faked clock). With the marts one non-subsettable step,
    Dagster refused every such launch: "Targeted subset must match between every key in a
    non-subsettable multi-asset, but does not match between marts/engagement_value and
    marts/customer_persona" (equal ranges; docs/ARCHITECTURE.md)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="pipelines.definitions", working_directory=str(REPO)),
        location_name="engagement_box",
    )
    with (
        dg.instance_for_test() as instance,
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget([location])) as ws,
    ):
        context = ws.create_request_context()
        keys = [k for k in context.asset_graph.get_all_asset_keys() if k.path[0] in groups]
        assert any(k.path[0] == "marts" for k in keys)
        params = {
            "partitionNames": ["2026-04-01", "2026-05-01"],
            "assetSelection": [{"path": k.path} for k in keys],
        }
        launched = execute_dagster_graphql(context, BACKFILL, {"params": params}).data
        assert launched["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", (
            launched
        )
        (backfill,) = instance.get_backfills()
        assert set(backfill.asset_selection) == set(keys)


def test_a_run_of_some_marts_only_is_refused_before_anything_is_published(tmp_path):
    """A version holds every mart: a run selecting one mart (now that the marts' step can be
    subset, for the backfills above) must not publish, and says what to select."""
    from assets.publish import mart_key, published_marts

    result = dg.materialize(
        [published_marts],
        selection=[mart_key("customer")],
        partition_key="2026-05-01",
        resources={
            "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(tmp_path / "audiences")),
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.message
    assert "selects marts/customer but not marts/" in message
    assert "Select the whole `marts` group" in message and "nothing was published" in message
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "w.working.duckdb").exists()


def test_a_bad_value_given_in_code_makes_a_tick_skip_saying_it(tmp_path):
    """A deployment's resource given civ_beta=1.5 in code failed the schedule's tick with a
    traceback, and the sensor requested runs that failed at start (a re-review): both skip,
    naming the resource's field and its variable."""
    for source in SOURCES:
        (tmp_path / source).mkdir()
    scheduled, sensed = skipped_ticks(tmp_path, civ_beta=1.5)
    assert scheduled.startswith("no run: EngagementConfig.civ_beta = 1.5: ENGAGEMENT_CIV")
    assert sensed.startswith("no run: EngagementConfig.civ_beta = 1.5")
