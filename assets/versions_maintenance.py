"""Maintenance assets: the retention policy of published versions."""

import dagster as dg

from assets.metadata import PREVIEW_ROWS, markdown_table, table_metadata
from engagement_box.governance import versions
from engagement_box.sql import load_sql
from pipelines.resources import RetentionPolicy, Warehouse


@dg.asset(
    key=dg.AssetKey(["maintenance", "version_retention"]),
    group_name="maintenance",
    kinds={"duckdb"},
)
def version_retention(warehouse: Warehouse, retention: RetentionPolicy) -> dg.MaterializeResult:
    """Versions kept by the retention policy (newest N, none older than D days; current kept);
    the work rows of as-ofs no retained version links (but each table's newest) are deleted.
    Its row count is the versions retained."""
    with warehouse.get_connection() as con:
        result = versions.apply_retention(
            con,
            keep_versions=retention.setting("keep_versions"),
            keep_days=retention.setting("keep_days"),
        )
        readers_file = warehouse.publish_for_readers(con)  # expired versions leave it too
        current = versions.current_version(con)
        as_of = {s["snapshot_id"]: s["as_of"] for s in versions.snapshots(con)}
        metadata = table_metadata(con, "marts", "snapshots")
        # The retained versions, newest first: marts.snapshots also lists the expired ones.
        retained = con.execute(load_sql("marts/latest_retained_versions"), {"n": PREVIEW_ROWS}).pl()
        size = con.execute("SELECT database_size FROM pragma_database_size()").fetchone()
    metadata.update(
        {
            "dagster/row_count": dg.MetadataValue.int(result.kept),
            "preview": dg.MetadataValue.md(markdown_table(retained)),
            "expired_now": dg.MetadataValue.json(result.expired),
            # Each expired version's as-of date, by version id (what `engagement-box retain` says).
            "expired_as_of": dg.MetadataValue.json(
                {str(v): _text(as_of.get(v)) for v in result.expired}
            ),
            "versions_retained": result.kept,
            "history_rows_deleted": result.rows_deleted,
            # The working database's rows no retained version shows and no run carries forward.
            "work_rows_deleted": result.work_rows_deleted,
            "work_as_ofs_trimmed": dg.MetadataValue.json([str(d) for d in result.as_ofs_trimmed]),
            "migration_rows_added": result.migration_rows,
            "current_version": current if current is not None else "",
            "current_as_of": _text(as_of.get(current)),
            "keep_versions": retention.setting("keep_versions"),
            "keep_days": retention.setting("keep_days"),
            "database_size": str(size[0]) if size else "",
            "published_file_rebuilt": readers_file.built,
            "history_files_deleted": len(readers_file.files_deleted),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


def _text(value: object) -> str:
    return "" if value is None else str(value)


maintenance_assets = [version_retention]
