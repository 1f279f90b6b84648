"""The code location: every asset, check, job, schedule, sensor and resource."""

import dagster as dg

from assets.engagement import engagement_assets
from assets.identity import identity_assets
from assets.publish import published_marts, version_inputs
from assets.staging import staged_assets
from assets.value import value_assets
from assets.versions_maintenance import maintenance_assets
from engagement_box import settings
from pipelines.jobs import audiences_job, engagement_job, retention_job
from pipelines.loggers import RUN_LOG_FILE, run_log_file
from pipelines.resources import default_resources
from pipelines.schedules import daily_schedule, retention_schedule
from pipelines.sensors import audience_consent_after_failure, new_export_files

# Who answers for the assets, and which hold personal data (emails, handles): the staged exports,
# the identity links (normalised emails and handles) and the audience files. Erasure requests
# reach all of them (engagement_box/governance/erasure.py); the marts hold pseudonymous ids only.
OWNERS = ["team:data-engineering"]
PERSONAL_DATA_LAYERS = ("staging", "intermediate", "activation")
# The Spark engine's assets are spark/<step>: its staging and identity links hold the same, and
# its audiences (emails) are published in the lake's version beside the marts.
SPARK_PERSONAL_DATA_STEPS = ("staging", "identity_links", "audiences", "published_marts")


def _governed(spec: dg.AssetSpec) -> dg.AssetSpec:
    personal = spec.key.path[0] in PERSONAL_DATA_LAYERS or (
        spec.key.path[0] == "spark" and spec.key.path[-1] in SPARK_PERSONAL_DATA_STEPS
    )
    return spec.replace_attributes(
        owners=OWNERS,
        tags={**spec.tags, "personal_data": "yes" if personal else "no"},
    )


def _spark_definitions() -> dg.Definitions:
    """ENGAGEMENT_ENGINE=spark: the same graph's steps on Spark (assets/spark.py), a job to run
    them, and the Spark session. No schedule or sensor: a cluster's scheduler launches the job."""
    from assets.spark import spark_assets, spark_job
    from pipelines.resources import spark_resources

    return dg.Definitions(
        assets=dg.map_asset_specs(_governed, spark_assets),
        jobs=[spark_job],
        resources=spark_resources(),
        loggers={"console": dg.colored_console_logger, RUN_LOG_FILE: run_log_file},
        executor=dg.in_process_executor,
    )


assets = dg.map_asset_specs(
    _governed,
    [
        *staged_assets,
        *identity_assets,
        version_inputs,
        *value_assets,
        *engagement_assets,
        published_marts,
        *maintenance_assets,
    ],
)

# The engine is chosen when the code location loads (ENGAGEMENT_ENGINE, default duckdb).
defs = (
    _spark_definitions()
    if settings.value("ENGAGEMENT_ENGINE") == "spark"
    else dg.Definitions(
        assets=assets,
        jobs=[engagement_job, audiences_job, retention_job],
        schedules=[daily_schedule, retention_schedule],
        sensors=[new_export_files, audience_consent_after_failure],
        resources=default_resources(),
        # Dagster's console logger, and the file `engagement-box run` writes the full log to.
        loggers={"console": dg.colored_console_logger, RUN_LOG_FILE: run_log_file},
        # One process per run: DuckDB allows one writing process, and the run lock beside the
        # warehouse keeps two runs from writing at once (pipelines/resources.py).
        executor=dg.in_process_executor,
    )
)
