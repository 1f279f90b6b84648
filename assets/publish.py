"""Publishing: the checked work tables become one new version of the marts, atomically.

`marts/<table>` assets are produced together by one step, so every mart of a version comes from
the same run and one transaction (`engagement_box.governance.versions.publish`). The step
only runs when every upstream blocking check passed: a failed check publishes nothing and
analysts keep seeing the last good version. A run whose inputs (staged files, erasures, settings,
model code) equal those of the existing version of its as-of publishes nothing and names that
version in its metadata.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb

from assets.metadata import table_metadata
from assets.value import partition_window, resolve_window, work_key
from engagement_box.governance import versions
from engagement_box.staging.ingestion import exports_taken_in
from pipelines.partitions import monthly_as_of
from pipelines.resources import EngagementConfig, ModelSettings, Warehouse

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


def run_settings(window: dict, engagement_config: EngagementConfig) -> dict[str, str]:
    """Every setting that changes the published numbers: the model window and the engagement
    weights (not where audiences are written)."""
    engagement = {
        field: engagement_config.setting(field)
        for field in engagement_config._ENV
        if field != "audience_dir"
    }
    return {k: str(v) for k, v in {**window, **engagement}.items()}


def standing_version(
    warehouse: Path,
    exports: Path,
    partition_key: str | None,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
    run_date: dt.date,
) -> int | None:
    """The version a run of `partition_key` would publish again, or None when it has work to do.

    A run has nothing to do when every export file is staged as it is now and a retained version
    of the same as-of was computed from the same inputs (files, erasures, settings, model code:
    `versions.inputs_fingerprint`). Cheap (no export is read, no model runs), so the CLI and the
    daily schedule ask it before starting a run. None whenever it cannot tell (no warehouse yet,
    a run holding the file, no staged orders): the run then decides, as it always does.
    """
    if not warehouse.exists():
        return None
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        if not exports_taken_in(con, exports):
            return None
        window = resolve_window(con, model_settings, partition_key, run_date=run_date)
        fingerprint = versions.inputs_fingerprint(
            con, as_of=str(window["as_of"]), settings=run_settings(window, engagement_config)
        )
        return versions.version_with_inputs(con, fingerprint)
    except (duckdb.Error, dg.Failure):
        return None
    finally:
        con.close()


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
def published_marts(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
):
    """Publish every checked work table as one new snapshot of the marts (none if unchanged)."""
    with warehouse.get_connection() as con:
        # The partition's own window: only its as-of's work rows are published. When
        # ENGAGEMENT_AS_OF pins the date, the version records partition_key NULL and
        # as_of_pinned true (its rows belong to that date, not to the month of the run).
        window = partition_window(context, con, model_settings)
        settings = run_settings(window, engagement_config)
        snapshot = versions.publish(
            con,
            list(MARTS),
            run_id=context.run.run_id,
            partition_key=window["partition_key"],
            as_of=str(window["as_of"]),
            settings=settings,
            work_as_of=window["as_of"],
        )
        if snapshot.published:
            outcome = f"published version {snapshot.snapshot_id}"
        else:
            outcome = (
                f"published nothing: the inputs equal those of version {snapshot.snapshot_id} "
                f"(as of {window['as_of']}), which stays as it is"
            )
        context.log.info(outcome)
        for name in MARTS:
            metadata = table_metadata(con, "marts", name)
            # This version's rows (a backfill does not replace marts.<name>, which then still
            # holds the current version).
            metadata["dagster/row_count"] = dg.MetadataValue.int(snapshot.rows[name])
            metadata.update(
                {
                    "snapshot_id": snapshot.snapshot_id,
                    "published_new_version": snapshot.published,
                    "outcome": outcome,
                    "is_current": snapshot.current,
                    "inputs_fingerprint": snapshot.inputs_fingerprint or "",
                    "as_of": str(window["as_of"]),
                    "settings": dg.MetadataValue.json(settings),
                    "time_travel": dg.MetadataValue.md(
                        f"`SELECT * FROM marts.{name}_at({snapshot.snapshot_id})`"
                    ),
                }
            )
            yield dg.MaterializeResult(asset_key=mart_key(name), metadata=metadata)
