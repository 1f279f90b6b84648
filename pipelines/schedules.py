"""Schedules: the whole graph once a day (the month of the day just ended), retention once a day
after it."""

import dagster as dg

from assets.engagement import AUDIENCES_KEY
from assets.publish import audiences_behind, published_behind, standing_version
from engagement_box.staging.contracts import IngestError
from pipelines.jobs import engagement_job, retention_job
from pipelines.partitions import SHOP_ZONE, month_of_day_before
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    ModelSettings,
    Warehouse,
    tick_problem,
)
from pipelines.sensors import export_fingerprints


@dg.schedule(
    name="engagement_daily",
    job=engagement_job,
    cron_schedule="0 5 * * *",  # after the nightly export drops, in the shop's time zone
    execution_timezone=SHOP_ZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Materialize the whole graph every day at 05:00 in the shop's time zone "
        "(ENGAGEMENT_TIME_ZONE), as of the month of the day just ended."
    ),
)
def daily_schedule(
    context: dg.ScheduleEvaluationContext,
    warehouse: Warehouse,
    exports: ExportsResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.RunRequest | dg.SkipReason:
    # The month comes from the tick's scheduled time, never from the wall clock: a late or
    # catch-up tick for 30 November still runs November. It is the month of the day before the
    # tick, the day whose export the night brought: the tick of 1 July runs June, whose version
    # then holds June's last day (it ran July, as of 30 June, and June's own version stopped at
    # 29 June: a review of calendar edges).
    # A setting that does not parse would fail the run (or this tick, with a traceback):
    # no run, and the tick says which variable.
    scheduled = context.scheduled_execution_time
    if scheduled is None:
        raise dg.DagsterInvariantViolationError("the daily schedule needs a scheduled time")
    partition_key = month_of_day_before(scheduled)
    problem = tick_problem(
        exports,
        warehouse.layout,
        engagement_config.audience_path,
        partition_key,
        scheduled.date(),
        given=(model_settings, engagement_config),
    )
    if problem:
        return dg.SkipReason(f"no run: {problem}")
    try:  # a file the ingest refuses by its name (`notes.txt`): the run would fail on it too
        export_fingerprints(exports)
    except IngestError as exc:
        return dg.SkipReason(f"no run: {exc}")
    # Nothing new (every export staged as it is, same settings and code): no run at all.
    standing = standing_version(
        warehouse.working_path,  # the pipeline's own database: staged files and versions
        exports.path,
        partition_key,
        model_settings,
        engagement_config,
        run_date=scheduled.date(),
    )
    if standing is not None:
        behind = audiences_behind(warehouse.working_path, engagement_config)
        if behind:  # nothing to compute; the audience files alone catch up with the version
            return dg.RunRequest(
                run_key=f"daily-{scheduled.date().isoformat()}-audiences",
                partition_key=partition_key,
                asset_selection=[AUDIENCES_KEY],
                tags={"engagement/reason": f"version {standing} stands, but {behind}"[:255]},
            )
        stale = published_behind(warehouse)
        if stale:  # nothing to compute; the run's first steps publish the analysts' file again
            return dg.RunRequest(
                run_key=f"daily-{scheduled.date().isoformat()}-published",
                partition_key=partition_key,
                tags={"engagement/reason": f"version {standing} stands, but {stale}"[:255]},
            )
        return dg.SkipReason(
            f"nothing new for {partition_key}: the exports, settings and model code equal those "
            f"of version {standing}, which stands"
        )
    return dg.RunRequest(
        run_key=f"daily-{scheduled.date().isoformat()}", partition_key=partition_key
    )


retention_schedule = dg.ScheduleDefinition(
    name="version_retention_daily",
    job=retention_job,
    cron_schedule="0 7 * * *",
    execution_timezone=SHOP_ZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Apply the version retention policy every day at 07:00 in the shop's time zone.",
)
