"""Whole-graph runs shared by the end-to-end tests.

A run of the graph costs most of the suite's time, so the tiny retailer's December runs once per
test session, for all the workers (`conftest.december_run`). Tests that only read it use it as it
is; tests that go on from it (a rerun, a new export, a backfill) work on their own copy
(`copy_run`), never on the shared one.
"""

import datetime as dt
import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from engagement_box import generator
from engagement_box.governance import readers
from engagement_box.staging.contracts import SOURCES
from pipelines.definitions import defs
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    ModelSettings,
    warehouse_resource,
)

# Every test names its month: none depends on today's date. The generated retailers end with
# December 2025, a month that exists in the partitions under any clock from 2026 on.
MONTH = "2025-12-01"
DATA_END = dt.date(2025, 12, 31)
TINY_RETAILER = generator.GeneratorConfig(customers=400, seed=11, end=DATA_END)


def run_graph(
    exports: Path,
    database: Path,
    settings: ModelSettings | None = None,
    partition: str | None = None,
    instance: dg.DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
):
    """The whole job in this process, as a scheduled run of `partition` (default December)."""
    job = defs.resolve_job_def("engagement_pipeline")
    for source in SOURCES:  # a source with no exports has an empty folder (else: setup error)
        (exports / source).mkdir(parents=True, exist_ok=True)
    resources = {
        "warehouse": warehouse_resource(database),
        "exports": ExportsResource(data_dir=str(exports)),
        "model_settings": settings or ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(database.parent / "audiences")),
    }
    return job.execute_in_process(
        resources=resources,
        partition_key=partition or MONTH,
        raise_on_error=False,
        instance=instance,
        tags=tags,
    )


@dataclass(frozen=True)
class StoredResult:
    """A finished run's events as its Dagster instance stored them, with the accessors of
    `dg.ExecuteInProcessResult` the tests use: readable from any process."""

    all_events: list[dg.DagsterEvent]
    success: bool

    @classmethod
    def load(cls, home: Path) -> "StoredResult":
        """The one run in the Dagster instance at `home`."""
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            (run,) = instance.get_runs()
            events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        return cls(events, run.status == dg.DagsterRunStatus.SUCCESS)

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [e for e in self.all_events if e.is_step_materialization]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [
            e.event_specific_data
            for e in self.all_events
            if e.event_type_value == dg.DagsterEventType.ASSET_CHECK_EVALUATION.value
        ]


@dataclass(frozen=True)
class PipelineRun:
    """One run's exports, warehouse (the published file; the working database is beside it),
    Dagster home and result."""

    exports: Path
    database: Path
    dagster_home: Path
    result: dg.ExecuteInProcessResult | StoredResult | None = None


def december(root: Path) -> PipelineRun:
    """The tiny retailer's exports under `root`, run for December with a real (SQLite) Dagster
    instance in `root/dagster_home`, as a scheduled run stores it."""
    exports = root / "exports"
    generator.generate(exports, TINY_RETAILER)
    warehouse = root / "warehouse"
    warehouse.mkdir()
    home = root / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        result = run_graph(exports, warehouse / "w.duckdb", instance=instance)
    return PipelineRun(exports, warehouse / "w.duckdb", home, result)


def shared_december(root: Path) -> PipelineRun:
    """`december(root)` once for all the processes that ask for it: the first to take the lock
    beside `root` runs it, the others wait and then read it. Every caller gets the run's events
    from its Dagster instance (`StoredResult`). A run that failed half way is run again."""
    lock = os.open(f"{root}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root.with_name(root.name + ".done")
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            december(root)
            done.touch()
    finally:
        os.close(lock)  # releases the lock
    home = root / "dagster_home"
    return PipelineRun(
        root / "exports", root / "warehouse" / "w.duckdb", home, StoredResult.load(home)
    )


def copy_run(run: PipelineRun, root: Path) -> PipelineRun:
    """A private copy of `run` under `root`: the exports (modification times kept, so the copy's
    staging knows them as the same files) and the warehouse folder (working database, history
    files, audiences). The published file is not copied, since its views name the original's
    history files: it is built afresh from the copy's working database, as a run publishes it."""
    exports = root / "exports"
    shutil.copytree(run.exports, exports)
    warehouse = root / "warehouse"
    shutil.copytree(
        run.database.parent,
        warehouse,
        ignore=lambda folder, names: [n for n in names if n == run.database.name],
    )
    database = warehouse / run.database.name
    layout = readers.Layout(published=database, working=readers.default_working(database))
    con = duckdb.connect(str(layout.working))
    try:
        readers.publish(con, layout, now=dt.datetime.combine(DATA_END, dt.time()))
    finally:
        con.close()
    assert database.exists()
    return PipelineRun(exports, database, root / "dagster_home")
