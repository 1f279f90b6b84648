"""The code location: every asset, check, job, schedule, sensor and resource."""

import dagster as dg

from assets.engagement import engagement_assets
from assets.identity import identity_assets
from assets.publish import published_marts
from assets.staging import staged_assets
from assets.value import value_assets
from assets.versions_maintenance import maintenance_assets
from pipelines.jobs import engagement_job, retention_job
from pipelines.resources import default_resources
from pipelines.schedules import daily_schedule, retention_schedule
from pipelines.sensors import new_export_files

defs = dg.Definitions(
    assets=[
        *staged_assets,
        *identity_assets,
        *value_assets,
        *engagement_assets,
        published_marts,
        *maintenance_assets,
    ],
    jobs=[engagement_job, retention_job],
    schedules=[daily_schedule, retention_schedule],
    sensors=[new_export_files],
    resources=default_resources(),
    # One process per run: DuckDB allows one writing process, and the "duckdb" pool (limit 1 in
    # .dagster/dagster.yaml) keeps two runs from writing at once.
    executor=dg.in_process_executor,
)
