"""Sensors: start a run when new or changed export files appear."""

import hashlib
import json

import dagster as dg

from engagement_box import settings
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import IngestError, discover_files
from pipelines.jobs import engagement_job
from pipelines.partitions import current_partition_key
from pipelines.resources import ExportsResource


def export_fingerprints(exports: ExportsResource) -> dict[str, list[int]]:
    """Path -> [size, mtime_ns, ctime_ns] of every export file the ingest would take (cheap: no
    file is read; the ctime moves with an edit whose mtime a tool set back). The same files as
    the ingest's `discover_files`: hidden files are skipped, and a file of another type raises
    its `IngestError`."""
    return {
        export.relpath: list(export.stat)
        for source in SOURCES.values()
        for export in discover_files(exports.path, source)
    }


@dg.sensor(
    name="new_export_files",
    job=engagement_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs the pipeline when a file is added to, or changed in, ENGAGEMENT_DATA_DIR.",
)
def new_export_files(
    context: dg.SensorEvaluationContext, exports: ExportsResource
) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
    problem = settings.first_problem() or exports.problem()  # a run would fail on it: say so
    if problem:
        return dg.SkipReason(f"no run: {problem}")
    try:
        current = export_fingerprints(exports)
    except IngestError as exc:
        return dg.SkipReason(f"no run: {exc}")
    changed = sorted(path for path, stamp in current.items() if seen.get(path) != stamp)
    if not changed:
        return dg.SkipReason(f"no new or changed files among {len(current)}")
    run_key = hashlib.sha256(json.dumps([[p, current[p]] for p in changed]).encode()).hexdigest()
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                partition_key=current_partition_key(),
                tags={"engagement/new_files": str(len(changed))},
            )
        ],
        cursor=json.dumps(current, sort_keys=True),
    )
