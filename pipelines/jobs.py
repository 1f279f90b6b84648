"""Jobs: the whole graph (run by the daily schedule, the new-files sensor and the CLI), and the
retention of published versions."""

import dagster as dg

MAINTENANCE = dg.AssetSelection.groups("maintenance")

# Every asset but maintenance: ingest through the marts and audiences. A run is for one as-of
# month (the partition); ingest assets are not partitioned and simply run. DuckDB takes one
# writer process at a time, so steps run in one process, one after another (definitions.py).
engagement_job = dg.define_asset_job(
    name="engagement_pipeline",
    selection=dg.AssetSelection.all() - MAINTENANCE,
    description="Ingest every export, then rebuild and publish every downstream table.",
)

retention_job = dg.define_asset_job(
    name="version_retention",
    selection=MAINTENANCE,
    description="Apply the retention policy to published versions.",
)
