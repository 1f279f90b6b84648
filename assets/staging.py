"""Staging assets: one per raw export source, each with its reconciliation check.

`staging/<source>` reads the new and changed files under `<ENGAGEMENT_DATA_DIR>/<source>/`,
validates them against `engagement_box.staging.contracts`, and writes `staging.<source>` plus
that source's rows of `staging.quarantine`. The work itself is
`engagement_box.staging.ingestion.ingest_source`.
"""

import dagster as dg

from assets.metadata import run_time, table_metadata
from engagement_box.staging.contracts import SOURCES, IngestError
from engagement_box.staging.ingestion import PROFILE_SOURCE, ingest_source, orphaned_duplicates
from engagement_box.staging.messages import (
    copy_message,
    order_changes_message,
    profile_changes_message,
    restaged_message,
    withdrawn_message,
)
from engagement_box.staging.reconciliation import reconcile
from pipelines.resources import ExportsResource, Warehouse

GROUP = "staging"
PRIORITY_TAG = "dagster/priority"  # the in-process executor runs higher first
RECONCILIATION = "rows_reconcile"


def staging_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", source])


def _staged_asset(source_name: str) -> dg.AssetsDefinition:
    source = SOURCES[source_name]

    @dg.asset(
        key=staging_key(source_name),
        group_name=GROUP,
        kinds={"duckdb", "polars", "pandera"},
        description=(
            f"Validated rows of the `{source_name}` exports (`staging.{source_name}`); rows that "
            f"break the contract go to `staging.quarantine` with a reason."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                name=RECONCILIATION,
                asset=staging_key(source_name),
                blocking=True,
                description=(
                    "Rows read = rows staged + rows quarantined (+ rows of people erased on "
                    "request), over every file ingested; every key quarantined as a duplicate "
                    "is staged once."
                ),
            )
        ],
        metadata={"contract": dg.MetadataValue.text(source.model.__name__)},
        # The customers first in a run: the emails and handles of a profile erased by its id
        # that it reads are erased with it, and the other sources' staging drops their rows
        # (`erasure.erased_profiles_keys`) only once the profile is read.
        op_tags={PRIORITY_TAG: "1"} if source_name == PROFILE_SOURCE else None,
    )
    def staged(
        context: dg.AssetExecutionContext, warehouse: Warehouse, exports: ExportsResource
    ) -> dg.MaterializeResult:
        """The source's new and changed export files, validated against its contract: good rows
        into `staging.<source>`, bad ones into `staging.quarantine` with their reasons, in one
        transaction; the metadata counts what was read, staged and quarantined per file."""
        with warehouse.get_connection() as con:
            try:
                report = ingest_source(
                    con, exports.path, source_name, run_id=context.run.run_id, now=run_time(context)
                )
            except IngestError as exc:
                raise dg.Failure(description=str(exc)) from exc
            counts = reconcile(con, source_name)
            orphans = orphaned_duplicates(con, source_name)
            metadata = table_metadata(con, "staging", source_name)

        # Nothing lost: every row read is in one place, and no key is only a duplicate.
        reconciled = counts.holds and orphans == 0
        context.log.info(
            f"{source_name}: {len(report.files_ingested)} file(s) ingested, "
            f"{report.files_skipped} unchanged; {report.rows_staged} rows staged, "
            f"{report.rows_quarantined} quarantined"
            + (f"; {len(report.moved)} moved or renamed, not read again" if report.moved else "")
        )
        for file, withdrawn in report.keys_withdrawn.items():
            context.log.warning(withdrawn_message(source_name, file, withdrawn))
        if report.duplicates_restaged:
            context.log.warning(restaged_message(source_name, report.duplicates_restaged))
        for file, changes in report.profile_changes.items():
            context.log.warning(profile_changes_message(file, changes))
        if report.order_changes:
            context.log.warning(order_changes_message(report.order_changes))
        for file, other in report.copies.items():
            context.log.warning(copy_message(file, other))
        metadata.update(
            {
                "files_seen": report.files_seen,
                "files_ingested": len(report.files_ingested),
                "files_skipped_unchanged": report.files_skipped,
                "files_replaced": dg.MetadataValue.json(report.files_replaced),
                "rows_read_this_run": report.rows_read,
                "rows_staged_this_run": report.rows_staged,
                "rows_quarantined_this_run": report.rows_quarantined,
                # rows of people erased before, read and kept out (staging.erased_rows)
                "rows_erased_this_run": report.rows_erased,
                "rows_quarantined_total": counts.rows_quarantined,
                "quarantine_by_reason": dg.MetadataValue.json(report.quarantine_by_reason),
                "duplicates_restaged": dg.MetadataValue.json(report.duplicates_restaged),
                # Keys a changed file staged before and no file stages now (the CLI warns).
                "keys_withdrawn": dg.MetadataValue.json(report.keys_withdrawn),
                # Repeated profiles whose values differ from the staged ones (the CLI warns).
                "profile_changes_not_applied": dg.MetadataValue.json(report.profile_changes),
                # Repeated orders whose values differ from the staged ones, returns among them
                # (the CLI warns).
                "order_changes_not_applied": dg.MetadataValue.json(report.order_changes),
                # New files with the content of a file taken in before (the CLI warns).
                "copies_of_earlier_files": dg.MetadataValue.json(report.copies),
                # New path -> the path taken in from: files moved or renamed, not read again.
                "files_moved": dg.MetadataValue.json(report.moved),
                # Unchanged files taken in again under the ingest's current rules (the CLI says).
                "files_restaged_for_rules": dg.MetadataValue.json(report.restaged_for_rules),
                "ignored_columns": dg.MetadataValue.json(report.ignored_columns),
                # File -> [rows read, rows quarantined], for this run's files (the CLI warns of
                # a file mostly quarantined).
                "quarantined_by_file": dg.MetadataValue.json(report.quarantined_files),
                # CSV files whose last line has no line end and whose last row was quarantined:
                # cut short, it seems (the CLI warns).
                "cut_short_files": dg.MetadataValue.json(report.cut_short),
                # Files whose timestamps are written at another offset than UTC's while
                # ENGAGEMENT_TIME_ZONE is not set (the CLI warns).
                "other_offsets": dg.MetadataValue.json(report.other_offsets),
                # Erased people's keys taken from the register (a working database started
                # anew beside it; the CLI says so).
                "erasures_adopted": report.erasures_adopted,
                "ingest_seconds": round(report.seconds, 3),
            }
        )
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=RECONCILIATION,
                    passed=reconciled,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=(
                        f"rows read {counts.rows_read:,} = staged {counts.rows_staged:,} + "
                        f"quarantined {counts.rows_quarantined:,} + erased {counts.rows_erased:,}"
                        + (
                            f"; {orphans:,} duplicate_key rows without their staged key"
                            if orphans
                            else ""
                        )
                    ),
                    metadata={
                        **counts._asdict(),
                        "difference": counts.rows_read
                        - counts.rows_staged
                        - counts.rows_quarantined
                        - counts.rows_erased,
                        "duplicates_without_staged_key": orphans,
                    },
                )
            ],
        )

    return staged


staged_assets = [_staged_asset(name) for name in SOURCES]
