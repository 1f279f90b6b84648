"""Publishing: the checked work tables become one new version of the marts, atomically.

`marts/<table>` assets are produced together by one step, so every mart of a version comes from
the same run and one transaction (`engagement_box.governance.versions.publish`). The step
only runs when every upstream blocking check passed: a failed check publishes nothing and
analysts keep seeing the last good version.
"""

import dagster as dg

from assets.metadata import table_metadata
from assets.value import read_window, work_key
from engagement_box.governance import versions
from pipelines.partitions import monthly_as_of
from pipelines.resources import Warehouse

# The marts analysts query: `work.<name>` is published to `marts.<name>`; the value is the work
# asset that writes it (persona profiles come with the persona assignments).
MARTS = {
    "customer_rfm": "customer_rfm",
    "customer_value": "customer_value",
    "model_fit": "model_fit",
    "model_validation": "model_validation",
    "engagement_value": "engagement_value",
    "customer_persona": "customer_persona",
    "persona_profile": "customer_persona",
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
    partitions_def=monthly_as_of,
)
def published_marts(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Publish every checked work table as one new snapshot of the marts."""
    with warehouse.get_connection() as con:
        window = read_window(con)
        snapshot = versions.publish(
            con,
            list(MARTS),
            run_id=context.run.run_id,
            partition_key=context.partition_key if context.has_partition_key else None,
            as_of=str(window["as_of"]),
            settings={k: str(v) for k, v in window.items()},
        )
        for name in MARTS:
            metadata = table_metadata(con, "marts", name)
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
