"""Schedules: the whole graph once a day."""

import dagster as dg

from pipelines.jobs import engagement_job

daily_schedule = dg.ScheduleDefinition(
    name="engagement_daily",
    job=engagement_job,
    cron_schedule="0 5 * * *",  # after the nightly export drops
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Materialize the whole graph every day at 05:00 UTC.",
)
