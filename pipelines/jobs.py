"""Jobs: the whole graph, run by the daily schedule, the new-files sensor and the README."""

import dagster as dg

# Every asset: ingest through the marts. DuckDB takes one writer process at a time, so the job
# runs its steps in one process, one after another (see `executor` in definitions.py).
engagement_job = dg.define_asset_job(
    name="engagement_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest every export, then rebuild every downstream table.",
)
