"""Publishing: the checked work tables become one new version of the marts, atomically.

`marts/<table>` assets are produced together by one step, so every mart of a version comes from
the same run and one transaction (`engagement_box.governance.versions.publish`). The step
only runs when every upstream blocking check passed: a failed check publishes nothing and
analysts keep seeing the last good version.
"""

import dagster as dg

from assets.metadata import table_metadata
from assets.value import partition_window, work_key
from engagement_box.governance import versions
from pipelines.partitions import monthly_as_of
from pipelines.resources import ModelSettings, Warehouse

# The marts analysts query: `work.<name>` is published to `marts.<name>`; the value is the work
# asset that writes it.
MARTS = {
    "customer_rfm": "customer_rfm",
    "customer_value": "customer_value",
    "model_fit": "model_fit",
    "model_validation": "model_validation",
    "engagement_value": "engagement_value",
    "customer_persona": "customer_persona",
    "persona_profile": "persona_profile",
}


def mart_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            mart_key(name),
            deps=[work_key(upstream)],
            group_name="marts",
            kinds={"duckdb"},
            description=f"`marts.{name}`: the latest published version; every retained version "
            f"is in `history.{name}` and `marts.{name}_at(snapshot_id)`.",
        )
        for name, upstream in MARTS.items()
    ],
    pool="duckdb",
    partitions_def=monthly_as_of,
)
def published_marts(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
):
    """Publish every checked work table as one new snapshot of the marts."""
    with warehouse.get_connection() as con:
        # The partition's own window: only its as-of's work rows are published. When
        # ENGAGEMENT_AS_OF pins the date, the version records partition_key NULL and
        # as_of_pinned true (its rows belong to that date, not to the month of the run).
        window = partition_window(context, con, model_settings)
        snapshot = versions.publish(
            con,
            list(MARTS),
            run_id=context.run.run_id,
            partition_key=window["partition_key"],
            as_of=str(window["as_of"]),
            settings={k: str(v) for k, v in window.items()},
            work_as_of=window["as_of"],
        )
        for name in MARTS:
            metadata = table_metadata(con, "marts", name)
            # This version's rows (a backfill does not replace marts.<name>, which then still
            # holds the current version).
            metadata["dagster/row_count"] = dg.MetadataValue.int(snapshot.rows[name])
            metadata.update(
                {
                    "snapshot_id": snapshot.snapshot_id,
                    "as_of": str(window["as_of"]),
                    "settings": dg.MetadataValue.json({k: str(v) for k, v in window.items()}),
                    "time_travel": dg.MetadataValue.md(
                        f"`SELECT * FROM marts.{name}_at({snapshot.snapshot_id})`"
                    ),
                }
            )
            yield dg.MaterializeResult(asset_key=mart_key(name), metadata=metadata)
