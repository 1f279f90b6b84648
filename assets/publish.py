"""Publishing: the checked work tables become one new version of the marts, atomically.

`marts/<table>` assets are produced together by one step, so every mart of a version comes from
the same run and one transaction (`engagement_box.governance.versions.publish`). The step
only runs when every upstream blocking check passed: a failed check publishes nothing and
analysts keep seeing the last good version. A run whose inputs (staged files, erasures, settings,
model code) equal those of the existing version of its as-of publishes nothing and names that
version in its metadata.
"""

import datetime as dt
import json
import traceback
from collections.abc import Callable, Iterator, Mapping, Set
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from assets.identity import IDENTITY_KEY
from assets.metadata import table_metadata, version_preview
from assets.value import (
    BUYER_DAYS_KEY,
    VERSION_INPUTS_KEY,
    buyer_days_behind,
    partition_window,
    png_markdown,
    require_rows,
    require_work,
    resolve_window,
    value_assets,
    work_key,
    write_work,
)
from engagement_box import dictionary, partitioned, reports
from engagement_box.activation import audiences
from engagement_box.clock import utc_now
from engagement_box.governance import erasure, readers, versions
from engagement_box.identity import links as identity_links
from engagement_box.settings import lake_dir
from engagement_box.sql import database_path, first_line, load_sql
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import exports_taken_in
from pipelines.partitions import monthly_as_of
from pipelines.resources import EngagementConfig, ModelSettings, Warehouse

# The marts analysts query: `work.<name>` is published to `marts.<name>`; the value is the work
# asset that writes it. This is the one list: a mart added here is versioned (`history.<name>`,
# `marts.<name>_at`) and copied into the file analysts open with no other change.
MARTS = {
    "customer_rfm": "customer_rfm",
    "customer_value": "customer_value",
    "model_fit": "model_fit",
    "model_validation": "model_validation",
    "engagement_value": "engagement_value",
    "customer_persona": "customer_persona",
    "persona_profile": "persona_profile",
    "customer": "customer",
    "cohort_retention": "cohort_retention",
}
# The daily schedule runs at 05:00 in the shop's time zone: a mart not materialized for 26
# hours missed a day (warn), for 50 hours two (fail). Dagster's daemon evaluates it (on by
# default; `freshness: enabled: false` in the instance's dagster.yaml turns it off). The
# schedule starts no run on a day with nothing new, so this is the alarm that exports stopped
# arriving (the operator review: on a quiet warehouse it fires while the version is the data's
# latest); `current_version_is_fresh` below checks the data, not the clock.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=50), warn_window=dt.timedelta(hours=26)
)
FRESHNESS_CHECK = "current_version_is_fresh"


# The run tag that makes a run compute every step even when a version of its as-of was computed
# from the same inputs (`engagement-box run --force`; in the UI's launchpad, add the tag).
FORCE_TAG = "engagement/force"


def is_forced(context: dg.AssetExecutionContext) -> bool:
    """Whether the run carries the tag engagement/force=true: compute even when nothing is new."""
    return context.run.tags.get(FORCE_TAG, "").strip().lower() in ("true", "1", "yes")


@dg.asset(
    key=VERSION_INPUTS_KEY,
    partitions_def=monthly_as_of,
    group_name="value",
    kinds={"duckdb"},
    deps=[dg.AssetKey(["staging", source]) for source in SOURCES],
    output_required=False,
)
def version_inputs(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
):
    """What this as-of's version is computed from: the export files that staged rows, the
    erasures, the settings and the model code (`versions.inputs_fingerprint`), one row per as-of.

    When a retained version of the as-of was computed from the same inputs, the rest of the run
    would publish nothing: this step then yields no output (an observation names the version)
    and Dagster skips every later step, each of whose partitions it reports as standing
    (`computed_in_this_run` false); the analysts' file is still rebuilt (this ingest's
    quarantine rows). A run started for a file that staged no row (a header-only export, one
    sent again under another name) costs its staging and this step. It computes when the
    audience files are not the current version's (`_audiences_behind`), when the as-of's work
    rows were computed from other inputs since (`_work_behind`), and with the run tag
    `engagement/force=true` (`engagement-box run --force`)."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        settings = run_settings(window, engagement_config)
        fingerprint = versions.inputs_fingerprint(
            con, as_of=str(window["as_of"]), settings=settings
        )
        standing = versions.version_with_inputs(
            con, fingerprint, window["partition_key"], str(window["as_of"])
        )
        forced = is_forced(context)
        behind = None
        if standing is not None:
            behind = _work_behind(con, window, fingerprint, engagement_config) or _audiences_behind(
                con, engagement_config
            )
        if behind:
            context.log.info(f"version {standing} has these inputs, but {behind}: computing")
        if standing is not None and not forced and not behind:
            # This ingest's files and quarantine rows reach the analysts' file (and a missing
            # file is built again), as published_marts would have; cheap when unchanged.
            warehouse.publish_for_readers(con)
            context.log.info(
                f"version {standing} (as of {window['as_of']}) was computed from these inputs: "
                "nothing to compute, the later steps are skipped"
            )
            yield dg.AssetObservation(
                asset_key=VERSION_INPUTS_KEY,
                partition=context.partition_key,
                metadata={
                    "standing_version": standing,
                    "as_of": str(window["as_of"]),
                    "inputs_fingerprint": fingerprint,
                },
            )
            # The month's partitions hold what a computing run would write (the as-of's rows,
            # computed from these inputs, and version N): say so, or the UI shows them missing
            # for good, "materialize missing" relaunches them and a backfill counts them failed.
            if context.has_partition_key:
                graph = context.job_def.asset_layer.asset_graph
                rows = version_rows(con, standing)
                computed = computed_metadata(context.instance, con, standing)
                partition = context.partition_key
                for key in partitioned_from_version_inputs(graph):
                    context.log_event(
                        standing_materialization(
                            key,
                            partition,
                            standing,
                            window["as_of"],
                            fingerprint,
                            rows,
                            computed.get(key),
                        )
                    )
            return
        frame = pl.DataFrame(
            {
                "inputs_fingerprint": [fingerprint],
                "settings": [json.dumps(settings, sort_keys=True)],
                "model_code": [versions.model_code_version()],
                "forced": [forced and standing is not None],
            }
        )
        metadata = write_work(con, "version_inputs", frame, window)
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "inputs_fingerprint": fingerprint,
            "standing_version": standing if standing is not None else "",
        }
    )


def _work_behind(
    con, window: dict, fingerprint: str, engagement_config: EngagementConfig
) -> str | None:
    """Why the month's work is not that of its standing version's inputs, or None: the as-of's
    work rows followed other inputs since or failed a blocking check (a step materialized alone
    with other settings), the identity links were built from other files or settings (its
    placeholder limit), or `work.buyer_days` holds other orders or FX settings (a code review:
    both are outside the rows' registry). The month then computes though a version stands (and
    publishes nothing new): the steps that refuse such rows or tables advise a run of the whole
    month, which skipped, so the refusal stayed (the operator review)."""
    problems = []
    tables = partitioned.behind_on(con, "work", window["as_of"], fingerprint)
    if tables:
        named = ", ".join(f"work.{t}" for t in tables)
        problems.append(
            f"the rows of {named} as of {window['as_of']} were computed from other inputs "
            "since (or failed a blocking check)"
        )
    links = identity_links.links_problem(con, engagement_config.setting("max_profiles_per_key"))
    if links is not None:
        problems.append(links)
    buyer_days = buyer_days_behind(con, window)
    if buyer_days is not None:
        problems.append(buyer_days)
    return "; ".join(problems) or None


@contextmanager
def _peek(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A read-only connection to the working database for a question asked before a run (the
    CLI's, the schedule's), or None when it cannot be opened (not there yet, a run holding it).
    A DuckDB error or a `dg.Failure` (no window: no staged orders) while asking means "cannot
    tell" too: it is swallowed, the caller's function returns None after the block, and the
    run, if started, decides as it always does."""
    if not warehouse.exists():
        yield None
        return
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        yield None
        return
    try:
        yield con
    except (duckdb.Error, dg.Failure):
        pass
    finally:
        con.close()


def audiences_behind(warehouse: Path, engagement_config: EngagementConfig) -> str | None:
    """Why the audience files are not the current version's (`_audiences_behind`), or None when
    they are or it cannot tell (no warehouse, no version, a run holding the file). The CLI and the
    daily schedule ask it when nothing is new: a run of the audience files alone then catches up."""
    with _peek(warehouse) as con:
        if con is None or versions.current_version(con) is None:
            return None
        return _audiences_behind(con, engagement_config)


def published_behind(warehouse: Warehouse) -> str | None:
    """Why the analysts' file is not what a publish would build now (`readers.behind`: it was
    deleted, or the warehouse moved and its views read the old folder), or None when it is up
    to date or it cannot tell. The CLI and the daily schedule ask it when nothing is new: a
    publish alone then catches up (a moved warehouse's views broke until data came)."""
    with _peek(warehouse.working_path) as con:
        if con is None:
            return None
        return readers.behind(con, warehouse.layout)
    return None


def delete_expired_files(warehouse: Warehouse) -> list[str]:
    """The files of versions expired over a day ago, deleted when nothing is new (the caller
    holds the run lock): a run that publishes deletes them itself, and a quiet month kept them."""
    with _peek(warehouse.working_path) as con:
        if con is None:
            return []
        return readers.delete_expired_files(con, warehouse.layout, utc_now())
    return []


def partitioned_from_version_inputs(graph) -> list[dg.AssetKey]:
    """work/version_inputs and every partitioned asset downstream of it in `graph` (a job's
    asset graph): the steps a standing version's skip leaves out."""
    found, todo = set(), [VERSION_INPUTS_KEY]
    while todo:
        key = todo.pop()
        if key in found or not graph.has(key):
            continue
        node = graph.get(key)
        if node.partitions_def is not None:
            found.add(key)
        todo.extend(node.child_keys)
    return sorted(found, key=lambda k: k.to_user_string())


# What a publish's own materialization says of the publish itself (published_marts), not of the
# rows: a later run that finds the version standing does not repeat it (it published nothing).
PUBLISH_EVENT_KEYS = frozenset(
    {
        "published_new_version",
        "outcome",
        "is_current",
        "published_file",
        "published_file_rebuilt",
        "published_file_seconds",
    }
)


def ancestry(instance: dg.DagsterInstance, run_id: str | None) -> Iterator[dg.DagsterRun]:
    """The run `run_id`, then the run it re-executed, and so on up to the first."""
    seen: set[str] = set()
    while run_id and run_id not in seen:
        seen.add(run_id)
        run = instance.get_run_by_id(run_id)
        if run is None:
            return
        yield run
        run_id = run.parent_run_id


def computed_metadata(
    instance: dg.DagsterInstance | None, con: duckdb.DuckDBPyConnection, snapshot_id: int
) -> dict[dg.AssetKey, Mapping[str, object]]:
    """What the runs that computed version `snapshot_id` said of each asset, by asset key: the
    run that published it, or for a step it did not run again (a re-execution from failure),
    the run it re-executed, and so on; without what the publish said of itself
    (`PUBLISH_EVENT_KEYS`). Empty when those runs' events are not in `instance` (another
    Dagster home, or deleted). One month's runs: one materialization per asset each. A later
    month whose as-of is the same (the data ended before it) holds the same rows: it takes
    them too."""
    row = con.execute(load_sql("marts/snapshot_run_id"), {"id": snapshot_id}).fetchone()
    if instance is None or not row or not row[0]:
        return {}
    found: dict[dg.AssetKey, Mapping[str, object]] = {}
    for run in ancestry(instance, row[0]):
        said: dict[dg.AssetKey, Mapping[str, object]] = {}
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            materialization = entry.asset_materialization
            if materialization is not None:
                said[materialization.asset_key] = {
                    k: v for k, v in materialization.metadata.items() if k not in PUBLISH_EVENT_KEYS
                }
        for key, metadata in said.items():
            found.setdefault(key, metadata)
    return found


def standing_materialization(
    key: dg.AssetKey,
    partition: str,
    standing: int,
    as_of: object,
    fingerprint: str,
    version_rows: dict[str, int] | None = None,
    computed: Mapping[str, object] | None = None,
) -> dg.AssetMaterialization:
    """What a month's partition of `key` holds when version `standing` stands for its inputs:
    the as-of's rows and that version, not computed again (the UI then does not show the
    partition missing for good: "materialize missing" would relaunch it, a backfill would count
    it failed). A mart's `dagster/row_count` is the version's rows (`version_rows`, from its
    log), as a computing run gives it; the UI's latest count would otherwise vanish.
    `computed`: the metadata the run that computed these rows gave them (`computed_metadata`:
    the schema, the preview, the plots and the model choice), which a run with nothing new
    replaced in the UI's latest materialization with these few lines."""
    metadata: dict[str, object] = {
        **(computed or {}),
        "standing_version": standing,
        "as_of": str(as_of),
        "inputs_fingerprint": fingerprint,
        "computed_in_this_run": False,
    }
    if key.path[0] == "marts" and version_rows and key.path[-1] in version_rows:
        metadata["dagster/row_count"] = dg.MetadataValue.int(int(version_rows[key.path[-1]]))
    return dg.AssetMaterialization(
        asset_key=key,
        partition=partition,
        description=f"Not computed again: version {standing} (as of {as_of}) was computed from "
        "the same inputs and stands.",
        metadata=metadata,
    )


def version_rows(con: duckdb.DuckDBPyConnection, snapshot_id: int) -> dict[str, int]:
    """Rows per mart of a version, as its log recorded them at publish."""
    row = con.execute(load_sql("marts/snapshot_row_counts"), {"id": snapshot_id}).fetchone()
    return {k: int(v) for k, v in json.loads(row[0]).items()} if row and row[0] else {}


def _ran_version_inputs(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether run `run_id` computed `work/version_inputs` (its event log says so: a run's
    stored step list is None for a whole plan and for a plan an asset selection cut alike)."""
    step = VERSION_INPUTS_KEY.to_python_identifier()
    return any(
        entry.dagster_event is not None and entry.dagster_event.step_key == step
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    )


def inputs_kept_from_parent(run: dg.DagsterRun, instance: dg.DagsterInstance | None) -> bool:
    """Whether `run` re-executes steps of runs of which one computed `work/version_inputs`,
    without computing it itself (Dagster's "from failure"): it keeps the inputs that step
    recorded then, and re-executing all its steps computes them again. A re-execution whose
    asset selection leaves the step out cannot: what it needs is the whole month."""
    if run.parent_run_id is None or instance is None or _ran_version_inputs(instance, run.run_id):
        return False
    if run.asset_selection and VERSION_INPUTS_KEY not in run.asset_selection:
        # Its selection leaves the step out (a run of some assets, or Dagster's "from asset
        # failure", which narrows it): all of its steps again would not compute it either.
        return False
    return any(
        _ran_version_inputs(instance, earlier.run_id)
        for earlier in ancestry(instance, run.parent_run_id)
    )


def _require_work_from(
    con, window: dict, fingerprint: str, reexecution: Callable[[], bool] = lambda: False
) -> None:
    """Refuse to publish work rows computed from other inputs than those staged now: a version
    is named by its inputs, and rows of older inputs published under the new ones would stand
    as current with no later run replacing them (it would find the same inputs and publish
    nothing). `work/version_inputs` records what this as-of's rows are computed from; publishing
    the marts alone after an ingest, a setting or a code change, is then refused, in words."""
    row = (
        con.execute(
            load_sql("work/recorded_inputs_fingerprint"), {"as_of": window["as_of"]}
        ).fetchone()
        if versions.table_exists(con, "work", "version_inputs")
        else None
    )
    if row is not None and row[0] == fingerprint:
        return
    month = window["partition_key"] or window["as_of"].strftime("%Y-%m-01")
    said = (
        "were computed from other inputs (staged files, erasures, settings, model code) than "
        "those of now"
        if row is not None
        else "have no record of their inputs (work/version_inputs did not run for it)"
    )
    how = (
        "Re-execute all steps, not from failure: a re-execution from failure keeps the inputs "
        "work/version_inputs recorded before the settings, files or code changed"
        if reexecution()  # asked only when refusing: it reads the runs' event logs
        else f"Materialize the whole month (engagement-box run --month {month[:7]}, or the job "
        f"for partition {month}) so every step computes first"
    )
    raise dg.Failure(
        f"the work rows of as-of {window['as_of']} {said}: publishing them would name old "
        f"numbers by new inputs. {how}"
    )


def _audiences_behind(con, engagement_config: EngagementConfig) -> str | None:
    """Why the audience files are not those of the current version (a run that failed after
    publishing, another ENGAGEMENT_AUDIENCE_DIR, an erase stopped after its commit), or None
    when they are."""
    if erasure.register_problem(con):  # a backup restored: no file until erased again
        return None
    current = versions.current_version(con)
    folder = engagement_config.audience_path
    if audiences.written_ahead(folder, database_path(con), readers.version_ids(con)):
        # the audience step says what to do, and writes nothing
        return f"the audience files in {folder} come from a version this database never published"
    written = audiences.recorded_version(folder)
    if written is None:
        return f"{folder} holds no audience files of version {current}"
    stopped = readers.unfinished_erasures(con)
    if stopped and not lake_holds_versions():  # the lake's are rewritten by `erase` alone
        return (
            f"{len(stopped)} erasure(s) stopped after their commit may have left their person in "
            f"the audience files in {folder} and the versions' files"
        )
    if written != current:
        return f"the audience files in {folder} are version {written}'s, not version {current}'s"
    said = _consent_changed(con, folder)  # (the guards of consent_behind are above)
    if said:
        return said
    missing = audiences.missing_files(folder)
    if missing:  # moved or deleted in a shared folder
        return (
            f"{len(missing)} audience file(s) of version {current} are missing from {folder} "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    return None


def consent_behind(con, folder: Path) -> str | None:
    """Why the audience files in `folder` do not follow the consent of now (a withdrawal staged
    since they were written, by a run that published nothing or failed, even before the identity
    step; a re-consent once the identity step took it in), or None when they do or no person is
    merged yet. None too while the register of erased people lists some this database has not
    erased (a backup restored): its people would go back into the files (a review), which are
    written again once `erase --from-register` has erased them."""
    if audience_files_held(con, folder):
        return None  # (said by the audience step; a sensor would only fail each tick)
    return _consent_changed(con, folder)


def audience_files_held(con, folder: Path) -> str | None:
    """Why the audience files in `folder` are not written from `con`'s current version now,
    or None: the register of erased people lists some this database has not erased, or the
    files come from a version it never published (a backup restored, with its own register:
    nothing else tells). The audience step refuses with it; the consent catch-up waits."""
    waiting = erasure.register_problem(con)  # a backup restored beside today's register
    if waiting:
        return (
            f"{waiting}. The audience files are left as they are, not written from a version "
            "that may hold those people; run again once that is done"
        )
    return audiences.written_ahead(folder, database_path(con), readers.version_ids(con))


def _consent_changed(con, folder: Path) -> str | None:
    """`consent_behind` without its guards: the consent the files record against now's."""
    now = identity_links.live_consent(con)
    if now is None:
        return None
    written = audiences.recorded_consent(folder)
    if written == now:
        return None
    if written is None:
        return f"the audience files in {folder} do not record the marketing consent they follow"
    return (
        f"the audience files in {folder} were written when {written.get('consenting')} "
        f"person(s) consented to marketing, and the consent changed since ({now['consenting']} "
        "now)"
    )


def audience_consent_behind(warehouse: Path, engagement_config: EngagementConfig) -> str | None:
    """`consent_behind` of the audience folder, or None when it cannot tell (no warehouse, no
    version, a run holding the file). The CLI and the sensor `audience_consent_after_failure`
    ask it after a run failed: the audience files alone are then written from the current
    version with the consent of now, so an opt-out never waits for a run that succeeds."""
    with _peek(warehouse) as con:
        if con is None or versions.current_version(con) is None:
            return None
        return consent_behind(con, engagement_config.audience_path)


def lake_holds_versions() -> bool:
    """Whether the Spark lake (ENGAGEMENT_LAKE_DIR) holds published versions: only `erase`
    rewrites them, so an erasure stopped after its commit is finished there by the same erase
    again, not by a run of this engine."""
    from engagement_box.spark import lake as spark_lake

    return spark_lake.has_lake(lake_dir())


def mart_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


def column_schema(name: str) -> dg.TableSchema:
    """The mart's columns with their types and descriptions, from the data dictionary: shown in
    the UI before the first run."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=c.name, type=c.type, description=c.text)
            for c in dictionary.table(name).columns
        ]
    )


def run_settings(window: dict, engagement_config: EngagementConfig) -> dict[str, object]:
    """Every setting that changes the published numbers: the model window and the engagement
    weights (not where audiences are written). JSON values as an analyst reads them in
    `marts.snapshots.settings`: true/false, numbers, null for a setting left unset, dates as
    text."""
    engagement = {
        field: engagement_config.setting(field)
        for field in engagement_config._ENV
        if field not in engagement_config.NOT_INPUTS
    }
    points = engagement["social_points_json"]
    if isinstance(points, str):  # given to the resource as text rather than read from settings
        engagement["social_points_json"] = json.loads(points) if points.strip() else None
    return {k: versions.json_value(v) for k, v in {**window, **engagement}.items()}


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
    `versions.inputs_fingerprint`), and the as-of's work rows are all of those inputs
    (`_work_behind`). Cheap (no export is read, no model runs), so the CLI and the daily
    schedule ask it before starting a run. None whenever it cannot tell (no warehouse yet,
    a run holding the file, no staged orders): the run then decides, as it always does.
    """
    with _peek(warehouse) as con:
        if con is None or not exports_taken_in(con, exports):
            return None
        if erasure.register_problem(con):  # a backup restored: the ingest says what to do
            return None
        window = resolve_window(con, model_settings, partition_key, run_date=run_date)
        fingerprint = versions.inputs_fingerprint(
            con, as_of=str(window["as_of"]), settings=run_settings(window, engagement_config)
        )
        standing = versions.version_with_inputs(
            con, fingerprint, window["partition_key"], str(window["as_of"])
        )
        if standing is not None and _work_behind(con, window, fingerprint, engagement_config):
            return None  # the run computes those rows again (`version_inputs`)
        return standing


def _require_every_mart(selected: Set[dg.AssetKey]) -> None:
    """Refuse a run that selects some marts but not all: one version holds every mart, so
    publishing one alone would update the others without Dagster recording it."""
    left_out = [name for name in MARTS if mart_key(name) not in selected]
    if left_out:
        chosen = sorted(k.to_user_string() for k in selected)
        raise dg.Failure(
            description=f"this run selects {', '.join(chosen)} but not "
            f"{', '.join(mart_key(n).to_user_string() for n in left_out)}: a published "
            "version holds every mart, so they are published together. Select the whole "
            "`marts` group (or the job engagement_pipeline) and launch again; nothing was "
            "published"
        )


def _work_steps() -> list[dg.AssetKey]:
    """Every step between the ingest and the publish: the identity links, the orders per buyer
    and day, work/version_inputs and the partitioned work steps after it (from the definitions:
    a job built for a selection holds only it)."""
    from assets.engagement import engagement_assets  # imports this module

    steps = [
        key
        for definition in (*value_assets, *engagement_assets)
        for key in definition.keys
        if key.path[0] == "work"
    ]
    between = {IDENTITY_KEY, VERSION_INPUTS_KEY, *steps}
    return sorted(between, key=lambda k: k.to_user_string())


def _require_steps_between(context: dg.AssetExecutionContext) -> None:
    """Refuse a run that selects staging (or work/version_inputs) and the marts but not every
    step between them: Dagster orders only the selected steps, so the publish ran before the
    ingest and said "published nothing" of the state before it, and a later run of some steps
    could publish rows that do not follow the new exports."""
    layer = context.job_def.asset_layer
    # The run's selection; a job built for the selection (`dagster.materialize`) has none
    selection = context.run.asset_selection or layer.executable_asset_keys
    starts = sorted(
        k.to_user_string()
        for k in selection
        if k.path[0] == "staging" or k in (IDENTITY_KEY, VERSION_INPUTS_KEY)
    )
    if not starts:
        return
    # after staging every step; after identity the steps that read it; after the inputs'
    # record the partitioned steps (identity and the orders per day say when they are behind)
    if any(k.startswith("staging/") for k in starts):
        needed = _work_steps()
    elif IDENTITY_KEY.to_user_string() in starts:
        needed = [k for k in _work_steps() if k != IDENTITY_KEY]
    else:
        needed = [k for k in _work_steps() if k not in (IDENTITY_KEY, BUYER_DAYS_KEY)]
    left_out = [k.to_user_string() for k in needed if k not in selection]
    if left_out:
        shown = ", ".join(left_out[:4])
        if len(left_out) > 4:
            shown += f" and {len(left_out) - 4} more"
        month = context.partition_key if context.has_partition_key else None
        run = f"engagement-box run --month {month[:7]}" if month else "engagement-box run"
        raise dg.Failure(
            description=f"this run selects {', '.join(starts[:3])}"
            f"{' ...' if len(starts) > 3 else ''} and the marts but not {shown}: the marts "
            "would be published before the steps that compute from the new exports, or "
            "without them; nothing was published. Materialize the whole month (the job "
            f"engagement_pipeline, or {run}): the steps after what this run stages need "
            "computing"
        )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            mart_key(name),
            deps=[work_key(upstream)],
            group_name="marts",
            kinds={"duckdb"},
            description=f"`marts.{name}`: {dictionary.table(name).description} The latest "
            f"published version; every retained version is in `history.{name}` and "
            f"`marts.{name}_at(snapshot_id)`.",
            metadata={
                "dagster/column_schema": column_schema(name),
                "dagster/table_name": f"marts.{name}",
            },
            freshness_policy=MART_FRESHNESS,
        )
        for name, upstream in MARTS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=mart_key("customer"),
            partitions_def=monthly_as_of,
            description="The current version is as of the last completed order staged: no "
            "newer staged data waits for a run (compares dates in the warehouse, not the clock).",
        )
    ],
    partitions_def=monthly_as_of,
    # Subsettable so that Dagster takes a backfill launched from the asset graph: for a
    # non-subsettable multi-asset, Dagster 1.13 compares each mart's targeted partitions with
    # `!=`, which on its TimeWindowPartitionsSubset compares a count some subsets have not
    # computed yet, and refuses equal ranges ("Targeted subset must match ..."). A version
    # still holds every mart: a run that selects only some is refused (`_require_every_mart`).
    can_subset=True,
)
def published_marts(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
):
    """Publish every checked work table as one new snapshot of the marts (none if unchanged)."""
    if not context.selected_asset_keys:  # the freshness check alone (the UI's "Execute" on it)
        if not warehouse.working_path.exists():  # never run: nothing to open (or to create)
            yield _freshness_result(versions.Freshness(None, None, None))
            return
        with warehouse.get_connection() as con:
            yield _freshness_result(versions.freshness(con))
        return
    _require_every_mart(context.selected_asset_keys)
    _require_steps_between(context)
    with warehouse.get_connection() as con:
        # The partition's own window: only its as-of's work rows are published. When
        # ENGAGEMENT_AS_OF pins the date, the version records partition_key NULL and
        # as_of_pinned true (its rows belong to that date, not to the month of the run).
        window = partition_window(context, con, model_settings)
        settings = run_settings(window, engagement_config)
        for name in MARTS:  # never an empty version of an as-of never computed, or trimmed
            require_rows(con, name, window)
        fingerprint = versions.inputs_fingerprint(
            con, as_of=str(window["as_of"]), settings=settings
        )
        _require_work_from(
            con, window, fingerprint, lambda: inputs_kept_from_parent(context.run, context.instance)
        )
        for name in MARTS:  # nor rows computed from other inputs than the version is named by
            require_work(con, name, window, fingerprint)
        snapshot = versions.publish(
            con,
            list(MARTS),
            run_id=context.run.run_id,
            partition_key=window["partition_key"],
            as_of=str(window["as_of"]),
            settings=settings,
            work_as_of=window["as_of"],
            fingerprint=fingerprint,
        )
        if snapshot.published:
            outcome = f"published version {snapshot.snapshot_id}"
            if snapshot.replaced:  # the data moved back: said, as a backfill's version is
                outcome += "; " + versions.replaced_words(*snapshot.replaced)
        else:
            outcome = (
                f"published nothing: the inputs equal those of version {snapshot.snapshot_id} "
                f"(as of {window['as_of']}), which stays as it is"
            )
        # The file analysts open: rebuilt next to theirs and renamed over it (readers never wait).
        try:
            readers_file = warehouse.publish_for_readers(con)
        except Exception as error:  # the version is committed: say so, not only the IO error
            if not snapshot.published:
                raise
            context.log.error(f"building the analysts' file failed:\n{traceback.format_exc()}")
            raise dg.Failure(
                description=(
                    f"version {snapshot.snapshot_id} is published in the working database, but "
                    f"the file analysts open could not be built ({first_line(error)}); they see "
                    "the version before until a run builds it. Fix the cause (e.g. space or "
                    "permissions in the warehouse folder) and run again: it builds the file and "
                    "writes the audiences"
                )
            ) from None  # the console says the deepest cause: this one (the log has the trace)
        if readers_file.built:
            context.log.info(
                f"{warehouse.path} replaced in {readers_file.seconds:.2f} s "
                f"({len(readers_file.files_written)} history files written)"
            )
        context.log.info(outcome)
        for name in MARTS:
            metadata = table_metadata(con, "marts", name)
            # This version's rows (a backfill does not replace marts.<name>, which then still
            # holds the current version): its count and its preview.
            metadata["dagster/row_count"] = dg.MetadataValue.int(snapshot.rows[name])
            metadata["preview"] = version_preview(con, name, snapshot.snapshot_id)
            metadata.update(
                {
                    "snapshot_id": snapshot.snapshot_id,
                    "published_new_version": snapshot.published,
                    "outcome": outcome,
                    "is_current": snapshot.current,
                    "replaced_current_version": snapshot.replaced[0] if snapshot.replaced else 0,
                    "replaced_current_as_of": snapshot.replaced[1] if snapshot.replaced else "",
                    "published_file": str(warehouse.path),
                    "published_file_rebuilt": readers_file.built,
                    "published_file_seconds": round(readers_file.seconds, 3),
                    "inputs_fingerprint": snapshot.inputs_fingerprint or "",
                    "as_of": str(window["as_of"]),
                    "settings": dg.MetadataValue.json(settings),
                    "time_travel": dg.MetadataValue.md(
                        f"`SELECT * FROM marts.{name}_at({snapshot.snapshot_id})`"
                    ),
                }
            )
            if name == "cohort_retention":  # the version's heatmap, where analysts look
                cohorts = con.execute(
                    load_sql("history/cohort_retention_of_version"),
                    {"snapshot_id": snapshot.snapshot_id},
                ).pl()
                metadata["retention_heatmap"] = png_markdown(
                    reports.cohort_retention_png(cohorts), "cohort retention heatmap"
                )
            yield dg.MaterializeResult(asset_key=mart_key(name), metadata=metadata)
        fresh = versions.freshness(con)
    if (
        dg.AssetCheckKey(mart_key("customer"), FRESHNESS_CHECK)
        not in context.selected_asset_check_keys
    ):
        return
    yield _freshness_result(fresh)


def _freshness_result(fresh: versions.Freshness) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=FRESHNESS_CHECK,
        asset_key=mart_key("customer"),
        passed=fresh.fresh,
        severity=dg.AssetCheckSeverity.WARN,
        description=fresh.describe(),
        metadata={
            "current_snapshot_id": fresh.snapshot_id or 0,
            "current_as_of": str(fresh.as_of),
            "last_completed_order_day": str(fresh.last_order_day),
            "days_behind": fresh.days_behind,
            "orders_files_since": fresh.files_since,
        },
    )
