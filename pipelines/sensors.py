"""Sensors: start a run when new or changed export files appear, once they stop changing; write
the audience files after a failed run when the marketing consent changed since they were written."""

import hashlib
import json
import time

import dagster as dg

from assets.publish import audience_consent_behind, standing_version
from engagement_box.clock import shop_today
from engagement_box.staging.contracts import SOURCES, IngestError
from engagement_box.staging.reading import discover_files
from pipelines.jobs import audiences_job, engagement_job
from pipelines.partitions import month_of_day_before
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    ModelSettings,
    Warehouse,
    tick_problem,
)

INTERVAL_SECONDS = 60
# A file changed less than this long ago may still be being written (a copy, an SFTP upload, an
# export tool flushing): the sensor waits for it. A file it saw with the same size and times on
# its previous tick is settled whatever its age.
SETTLE_SECONDS = INTERVAL_SECONDS


def export_fingerprints(exports: ExportsResource) -> dict[str, list[int]]:
    """Path -> [size, mtime_ns, ctime_ns] of every export file the ingest would take (cheap: no
    file is read; the ctime moves with an edit whose mtime a tool set back). The same files as
    the ingest's `discover_files`: hidden files are skipped, and a file of another type raises
    its `IngestError`."""
    return {
        export.relpath: list(export.stat)
        for source in SOURCES.values()
        for export in discover_files(exports.path, source)
    }


def now_ns() -> int:
    """The tick's time (tests give their own)."""
    return time.time_ns()


def read_cursor(cursor: str | None) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(taken, settling): the files a run was requested for, and the changed files the previous
    tick saw still settling, each path -> stamp. A cursor from before settling (one mapping of
    the files taken) reads as taken."""
    state = json.loads(cursor) if cursor else {}
    if "taken" in state and isinstance(state["taken"], dict):
        return state["taken"], state.get("settling", {})
    return state, {}


def settling(changed: dict[str, list[int]], before: dict[str, list[int]], now_ns: int) -> list[str]:
    """The changed files that may still be being written: changed within `SETTLE_SECONDS` of
    `now_ns` (the later of mtime and ctime) and not seen with the same stamp on the previous tick
    (`before`)."""
    return sorted(
        path
        for path, stamp in changed.items()
        if before.get(path) != stamp and now_ns - max(stamp[1], stamp[2]) < SETTLE_SECONDS * 1e9
    )


@dg.sensor(
    name="new_export_files",
    job=engagement_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Runs the pipeline when a file is added to, or changed in, ENGAGEMENT_DATA_DIR, once "
        f"every such file has stopped changing (untouched for {SETTLE_SECONDS} s, or unchanged "
        "since the previous tick); the run is of the month of the day before, as the daily "
        "schedule's."
    ),
)
def new_export_files(
    context: dg.SensorEvaluationContext,
    exports: ExportsResource,
    warehouse: Warehouse,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.SensorResult | dg.SkipReason:
    taken, before = read_cursor(context.cursor)
    # A run would fail on it: say so. The month is the daily schedule's: that of the day before
    # (on the 1st, the month just ended, whose last day the night's files complete).
    today = shop_today()
    partition = month_of_day_before(today)
    problem = tick_problem(
        exports,
        warehouse.layout,
        engagement_config.audience_path,
        partition,
        today,
        given=(model_settings, engagement_config),
    )
    if problem:
        return dg.SkipReason(f"no run: {problem}")
    try:
        current = export_fingerprints(exports)
    except IngestError as exc:
        return dg.SkipReason(f"no run: {exc}")
    changed = {path: stamp for path, stamp in current.items() if taken.get(path) != stamp}
    if not changed:
        return dg.SkipReason(f"no new or changed files among {len(current)}")
    # The run takes in every file in the folder: it waits until none may still be half written.
    moving = settling(changed, before, now_ns())
    if moving:
        shown = ", ".join(moving[:5]) + (f" and {len(moving) - 5} more" if len(moving) > 5 else "")
        return dg.SensorResult(
            skip_reason=(
                f"waiting for {len(moving)} file(s) changed in the last {SETTLE_SECONDS} s to "
                f"stop changing: {shown}"
            ),
            cursor=json.dumps({"taken": taken, "settling": changed}, sort_keys=True),
        )
    paths = sorted(changed)
    # Files a run took in already (a failed run re-executed from failure after its file was
    # fixed, a run the schedule or a person started): no run while the month's version was
    # computed from every file as it is now (the daily schedule asks the same).
    standing = standing_version(
        warehouse.working_path,
        exports.path,
        partition,
        model_settings,
        engagement_config,
        run_date=today,
    )
    if standing is not None:
        return dg.SensorResult(
            skip_reason=(
                f"no run: the {len(paths)} new or changed file(s) are staged as they are, and "
                f"version {standing}, computed from the same inputs, stands"
            ),
            cursor=json.dumps({"taken": current, "settling": {}}, sort_keys=True),
        )
    run_key = hashlib.sha256(json.dumps([[p, current[p]] for p in paths]).encode()).hexdigest()
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                partition_key=partition,
                tags={"engagement/new_files": str(len(paths))},
            )
        ],
        cursor=json.dumps({"taken": current, "settling": {}}, sort_keys=True),
    )


@dg.run_failure_sensor(
    name="audience_consent_after_failure",
    monitored_jobs=[engagement_job],
    request_job=audiences_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After a failed engagement_pipeline run: when the marketing consent changed since the "
        "audience files were written, write them alone from the current version (audience_files)."
    ),
)
def audience_consent_after_failure(
    context: dg.RunFailureSensorContext,
    warehouse: Warehouse,
    engagement_config: EngagementConfig,
):
    # A run that failed a blocking check (or any step) after taking in a withdrawal skipped the
    # audience files: an opt-out must not wait for a run that succeeds, so the files are written
    # from the current version with the consent of now (`assets/publish.py::consent_behind`).
    behind = audience_consent_behind(warehouse.working_path, engagement_config)
    if behind is None:
        return dg.SkipReason("the audience files follow the marketing consent of now")
    failed = context.dagster_run.run_id
    return dg.RunRequest(
        run_key=f"consent-after-{failed}",
        tags={"engagement/reason": f"run {failed} failed, but {behind}"[:255]},
    )
