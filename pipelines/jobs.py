"""Jobs: the whole graph (run by the daily schedule, the new-files sensor and the CLI), the
audience files alone, and the retention of published versions."""

import dagster as dg

from assets.engagement import AUDIENCES_KEY

MAINTENANCE = dg.AssetSelection.groups("maintenance")

# Every asset but maintenance: ingest through the marts and audiences. A run is for one as-of
# month (the partition); ingest assets are not partitioned and simply run. DuckDB takes one
# writer process at a time, so steps run in one process, one after another (definitions.py).
engagement_job = dg.define_asset_job(
    name="engagement_pipeline",
    selection=dg.AssetSelection.all() - MAINTENANCE,
    description="Ingest every export, then rebuild and publish every downstream table.",
)

AUDIENCES = dg.AssetSelection.assets(AUDIENCES_KEY)

# The audience files written again from the current version, nothing computed: what the CLI
# starts when nothing is new but the files are not the current version's (a run that failed
# after publishing, a new ENGAGEMENT_AUDIENCE_DIR); the daily schedule selects the same asset.
audiences_job = dg.define_asset_job(
    name="audience_files",
    selection=AUDIENCES,
    description="Write the audience files again from the current published version.",
)

retention_job = dg.define_asset_job(
    name="version_retention",
    selection=MAINTENANCE,
    description="Apply the retention policy to published versions.",
)
