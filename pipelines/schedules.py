"""Schedules: the whole graph once a day (current month), retention once a day after it."""

import dagster as dg

from pipelines.jobs import engagement_job, retention_job
from pipelines.partitions import current_partition_key


@dg.schedule(
    name="engagement_daily",
    job=engagement_job,
    cron_schedule="0 5 * * *",  # after the nightly export drops
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Materialize the whole graph every day at 05:00 UTC, as of the current month.",
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    key = current_partition_key()
    scheduled = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"daily-{scheduled.date().isoformat() if scheduled else key}", partition_key=key
    )


retention_schedule = dg.ScheduleDefinition(
    name="version_retention_daily",
    job=retention_job,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Apply the version retention policy every day at 07:00 UTC.",
)
