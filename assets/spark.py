"""The Spark engine's assets (ENGAGEMENT_ENGINE=spark; `pipelines/definitions.py` picks them).

Thin: each calls `engagement_box/spark/`, which runs the same sql/ files and contract code as
the DuckDB engine on Spark, and returns metadata. Working tables are Parquet under
ENGAGEMENT_LAKE_DIR/tables; the marts are published there as versions (`engagement_box/spark/
lake.py`). Not partitioned: a run models up to ENGAGEMENT_AS_OF, else the last completed order.
"""

import datetime as dt
import json
import math
from pathlib import Path

import dagster as dg
import polars as pl

from assets.engagement import sources_check_result, sources_check_spec
from assets.identity import placeholder_check, placeholder_check_spec, placeholder_metadata
from assets.metadata import markdown_table, run_time
from assets.publish import ancestry, is_forced
from assets.value import left_out_check
from engagement_box import settings
from engagement_box.activation import audiences as activation
from engagement_box.clock import in_zone, shop_zone
from engagement_box.engagement import personas
from engagement_box.governance import erasure, versions
from engagement_box.identity.links import max_profiles_per_key, shared_keys_on_spark
from engagement_box.spark import audiences, engagement, inputs, lake, pipeline
from engagement_box.spark.sql import load_spark_sql
from engagement_box.spark.staging import export_file_stats
from engagement_box.spark.tables import (
    CURRENT,
    UNFINISHED,
    SparkTables,
    current_folder,
    prune_superseded,
    record_checks,
    recorded_checks,
)
from engagement_box.staging import messages
from engagement_box.staging.contracts import SOURCES
from engagement_box.value import summary as summaries
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    LakeResource,
    ModelSettings,
    RetentionPolicy,
    SparkEngine,
)

STAGED_KEY = dg.AssetKey(["spark", "staging"])
VERSION_INPUTS_KEY = dg.AssetKey(["spark", "version_inputs"])
IDENTITY_KEY = dg.AssetKey(["spark", "identity_links"])
MARTS_KEY = dg.AssetKey(["spark", "marts"])
ENGAGEMENT_KEY = dg.AssetKey(["spark", "engagement_marts"])
AUDIENCES_KEY = dg.AssetKey(["spark", "audiences"])
PUBLISHED_KEY = dg.AssetKey(["spark", "published_marts"])


# What a staging records per source (`inputs.record_staged`), as its metadata names them.
_ROW_COUNTS = ("rows_read", "rows_staged", "rows_quarantined", "rows_erased")

# The steps with blocking checks before each step: it reads the tables they wrote.
CHECKED_BEFORE = {
    IDENTITY_KEY: (STAGED_KEY,),
    MARTS_KEY: (STAGED_KEY,),
    ENGAGEMENT_KEY: (STAGED_KEY, MARTS_KEY),
    AUDIENCES_KEY: (STAGED_KEY, MARTS_KEY, ENGAGEMENT_KEY),
    PUBLISHED_KEY: (STAGED_KEY, MARTS_KEY, ENGAGEMENT_KEY),
}


def require_checks_passed(lake, step: dg.AssetKey) -> None:
    """Refuse to run `step` on tables a step before it wrote that failed a blocking check,
    that a step stopped before checking, or whose checks no step recorded (a lake of an earlier
    release; `tables.recorded_checks`): Dagster stops the steps after a failed blocking check
    in that run only, so a later run of only the steps after it would otherwise publish its
    tables."""
    recorded = recorded_checks(lake)
    if not (Path(lake) / "tables").is_dir():
        raise dg.Failure(
            f"the lake {lake} holds no working tables: no Spark run wrote them yet, or an "
            "erase deleted them (they held the person; the next whole run writes them again "
            "from every export). Run the whole job spark_pipeline "
            f"({settings.spark_job_command()}, or the job in the UI)"
        )
    refused = []
    for key in CHECKED_BEFORE[step]:
        name = key.to_user_string()
        if name not in recorded:
            refused.append(
                f"{name} has not recorded the checks of its tables in this lake (it never ran "
                "here, or ran under a release before 2026-12-05)"
            )
        elif recorded[name] == [UNFINISHED]:
            refused.append(f"{name} stopped before it checked its tables when it last ran")
        elif recorded[name]:
            refused.append(
                f"{name} failed its blocking check(s) {', '.join(recorded[name])} when it last ran"
            )
    if refused:
        raise dg.Failure(
            "; ".join(refused)
            + ": the tables it wrote are neither read by the steps after it nor published. "
            "A failed check's description (the run's log, or the asset's Checks tab in the "
            "Dagster UI) says what to fix; then run the whole job spark_pipeline "
            f"({settings.spark_job_command()}, or the job in the UI)"
        )


def _checking(lake, step: dg.AssetKey) -> None:
    """`step` starts writing its tables: until it records its checks, they count as unchecked
    (a step stopped halfway leaves part of them)."""
    record_checks(lake, step.to_user_string(), [UNFINISHED])


def _checked(lake, step: dg.AssetKey, checks: list[dg.AssetCheckResult]) -> None:
    """`step`'s tables are written and checked: record the blocking checks they failed."""
    record_checks(lake, step.to_user_string(), [c.check_name for c in checks if not c.passed])


def lake_tables(spark, lake, views: bool = True) -> SparkTables:
    """The lake's tables in this session: registered again only when the session does not
    already hold every table at its current files (a step in the run's process after another
    step finds them as that step left them; registering some 30 tables again cost 20 Spark jobs
    and 10-20 s)."""
    tables = SparkTables(spark, lake)
    if not _session_holds(tables):
        pipeline.restore(tables) if views else tables.restore()
    return tables


def _session_holds(tables: SparkTables) -> bool:
    catalog = tables.spark.catalog
    pointers = sorted((tables.lake / "tables").glob(f"*.*/{CURRENT}"))
    for pointer in pointers:
        name = pointer.parent.name
        if not catalog.tableExists(name):
            return False
        folder = (pointer.parent / pointer.read_text(encoding="utf-8").strip()).resolve()
        files = tables.spark.table(name).inputFiles()
        if not files or any(f"{folder}/" not in f for f in files):
            return False
    return bool(pointers)


@dg.asset(
    key=STAGED_KEY,
    group_name="spark",
    kinds={"spark", "parquet"},
    check_specs=[dg.AssetCheckSpec("rows_reconcile", asset=STAGED_KEY, blocking=True)],
)
def spark_staging(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    exports: ExportsResource,
) -> dg.MaterializeResult:
    """Every export validated by the contracts on Spark; good rows staged, bad ones quarantined,
    the rows of people erased before (`engagement-box erase`) left out. When the export files
    (by content), the erasures and the code are those the lake's staged tables came from, and
    no row was held back as dated after that run's time, the tables stand: nothing is read
    into Spark (the session is not even started) and nothing is written. The run tag
    engagement/force=true stages anyway."""
    erased = erasure.register_of(settings.working_db_path())
    code = inputs.staging_code(versions.model_code_version())
    at = run_time(context)
    staged_tables = [*(f"staging.{name}" for name in SOURCES), "staging.quarantine"]
    stands, digests = None, None
    if not is_forced(context):
        files = export_file_stats(exports.path)
        digests = {path: sha256 for path, _, sha256 in files}  # staging hashes them once
        stands = inputs.staging_stands(lake_dir.path, files, erased, code, staged_tables, at)
    if stands is not None:
        context.log.info(
            "the lake's staged tables came from these export files (by content), erasures "
            "and code, and no row was held back as dated in the future: they stand, nothing "
            "is staged again"
        )
        rows = {name: dict(zip(_ROW_COUNTS, n, strict=True)) for name, n in stands["rows"].items()}
        return dg.MaterializeResult(
            metadata={
                "staged_tables_stand": True,
                "erased_subjects": len(erased[0]),
                **{f"{name}_{k}": v for name, counts in rows.items() for k, v in counts.items()},
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="rows_reconcile",
                    passed=True,
                    description="the staged tables stand: their rows reconciled when staged",
                )
            ],
        )
    tables = SparkTables(spark.session(), lake_dir.path)
    _checking(lake_dir.path, STAGED_KEY)
    # the keys of erased profiles, and the placeholder limit (ENGAGEMENT_MAX_PROFILES_PER_KEY:
    # this step takes no engagement_config): the email and handles of a profile erased by its
    # id are erased with it (`pipeline.stage_all`)
    profile_keys, _ = erasure.register_profile_keys(settings.working_db_path())
    limit = max_profiles_per_key()
    reports = pipeline.stage_all(
        tables,
        exports.path,
        context.run.run_id,
        at,
        erased,
        digests,
        code,
        not is_forced(context),
        profile_keys,
        limit,
    )
    inputs.record_staged(lake_dir.path, reports, erased, code, at)
    metadata: dict = {
        "staged_tables_stand": False,
        "erased_subjects": len(erased[0]),
        # per source, the files read and validated in this run; the others' rows were
        # validated by an earlier run from the same content, erasures and code
        "files_validated": dg.MetadataValue.json(
            {name: [r.files_validated, r.files] for name, r in reports.items()}
        ),
    }
    for name, report in reports.items():
        metadata.update({f"{name}_{k}": getattr(report, k) for k in _ROW_COUNTS})
        metadata[f"{name}_quarantine_by_reason"] = dg.MetadataValue.json(
            report.quarantine_by_reason
        )
    # Under the DuckDB staging assets' keys, in their shape (the CLI warns from them): every
    # source's files in one mapping, a file's path starting with its source's folder.
    ignored = {f: c for r in reports.values() for f, c in r.ignored_columns.items()}
    quarantined = {f: n for r in reports.values() for f, n in r.quarantined_files.items()}
    copies = {f: o for r in reports.values() for f, o in r.copies.items()}
    metadata["ignored_columns"] = dg.MetadataValue.json(ignored)
    metadata["quarantined_by_file"] = dg.MetadataValue.json(quarantined)
    metadata["copies_of_earlier_files"] = dg.MetadataValue.json(copies)
    profiles = {f: c for r in reports.values() for f, c in r.profile_changes.items()}
    metadata["profile_changes_not_applied"] = dg.MetadataValue.json(profiles)
    # a later file's consent is applied by the identity step (`pipeline.apply_later_consents`)
    for file, changes in profiles.items():
        context.log.warning(messages.profile_changes_message(file, changes))
    orders = {f: c for r in reports.values() for f, c in r.order_changes.items()}
    metadata["order_changes_not_applied"] = dg.MetadataValue.json(orders)
    if orders:
        context.log.warning(messages.order_changes_message(orders))
    offsets = {f: e for r in reports.values() for f, e in r.other_offsets.items()}
    metadata["other_offsets"] = dg.MetadataValue.json(offsets)
    for file, example in offsets.items():
        context.log.warning(messages.other_offset_message(file, example))
    # as the CLI says them
    # the quarantine is a table of the lake: its current write's files (README "Running on
    # Apache Spark"), not the DuckDB warehouse's staging.quarantine
    written = current_folder(lake_dir.path, "staging.quarantine")
    written = written or lake_dir.path / "tables" / "staging.quarantine"
    where = f"the lake's quarantine ({written}/*.parquet)"
    for warning in messages.file_warnings(ignored, quarantined, copies, where):
        context.log.warning(warning)
    for file, other in copies.items():
        context.log.warning(messages.copy_message(file, other))
    holds = all(r.holds for r in reports.values())
    checks = [
        dg.AssetCheckResult(
            check_name="rows_reconcile",
            passed=holds,
            description=(
                "rows read = staged + quarantined + erased for every source"
                if holds
                else "rows read differ from staged + quarantined + erased: "
                + ", ".join(n for n, r in reports.items() if not r.holds)
            ),
            metadata={
                n: f"{r.rows_read} = {r.rows_staged} + {r.rows_quarantined} + {r.rows_erased}"
                for n, r in reports.items()
            },
        )
    ]
    _checked(lake_dir.path, STAGED_KEY, checks)
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


def _retention_policy(retention: RetentionPolicy, otherwise: str) -> tuple[int, int]:
    """(keep_versions, keep_days), refused (`otherwise` says what then did not happen) when
    they keep nothing."""
    keep_versions = retention.setting("keep_versions")
    keep_days = retention.setting("keep_days")
    if keep_versions < 1 or keep_days < 0:
        raise dg.Failure(
            f"the retention policy keeps {keep_versions} versions of at most {keep_days} days: "
            f"keep_versions must be at least 1 and keep_days at least 0; {otherwise}"
        )
    return keep_versions, keep_days


def _retained(lake_dir: Path, keep_versions: int, keep_days: int) -> dict:
    """The retention policy applied to the lake's versions, and the tables' earlier writes
    deleted (a version holds its own copies, no step reads them); what was done, as metadata.
    Every run ends with it: the one that publishes, and the one with nothing new."""
    kept = lake.retain(lake_dir, keep_versions=keep_versions, keep_days=keep_days)
    pruned, freed = prune_superseded(lake_dir)
    return {
        "superseded_table_writes_deleted": pruned,
        "superseded_table_bytes_freed": freed,
        "versions_retained": kept.kept,
        "expired_now": dg.MetadataValue.json(kept.expired),
        "expired_folders_deleted": dg.MetadataValue.json(kept.deleted),
    }


def _inputs_now(
    context: dg.AssetExecutionContext,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> tuple[str | None, dict]:
    """The fingerprint of the inputs as the run finds them (`inputs.inputs_fingerprint`: what
    the last staging read, every setting that changes a number, the model code, the keys of
    erased profiles), and the settings in it; None when the lake does not say what its staging
    read."""
    given = _given_settings(model_settings, engagement_config)
    pinned = model_settings.resolved().as_of
    if pinned:  # the as-of is never past the run's day (`pipeline.as_of_date`)
        run_day = in_zone(run_time(context), shop_zone()).date()  # the shop's calendar
        given["as_of"] = min(dt.date.fromisoformat(str(pinned)), run_day).isoformat()
    profile_keys, _ = erasure.register_profile_keys(settings.working_db_path())
    fingerprint = inputs.inputs_fingerprint(
        lake_dir.path,
        {k: versions.json_value(v) for k, v in sorted(given.items())},
        versions.model_code_version(),
        profile_keys,
    )
    return fingerprint, given


def _keep_fingerprint_if_ours(
    context: dg.AssetExecutionContext,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> None:
    """Before a step writes tables: forget the recorded inputs fingerprint unless this run
    recorded it, or re-executes (from failure, maybe through other re-executions) the run that
    did, with settings and code that give the same fingerprint. A step run alone, or one of a
    re-execution with other settings or code, writes tables the fingerprint does not describe:
    a version published from them must not record it (a review: a re-execution with another
    setting, then one more with the setting put back, published the first run's fingerprint
    over the changed setting's numbers)."""
    if _fingerprint_if_ours(context, lake_dir, model_settings, engagement_config) is None:
        inputs.forget_fingerprint(lake_dir.path)


def _fingerprint_if_ours(
    context: dg.AssetExecutionContext,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> str | None:
    """The recorded inputs fingerprint, when this run recorded it or re-executes the run that
    did with settings and code that give the same fingerprint; else None."""
    recorded = inputs.recorded_fingerprint(lake_dir.path, _lineage(context))
    if recorded is None:
        return None
    fingerprint, recorded_by = recorded
    if recorded_by != context.run.run_id:  # a re-execution: its own settings and code
        now, _ = _inputs_now(context, lake_dir, model_settings, engagement_config)
        if now != fingerprint:
            return None
    return fingerprint


def _lineage(context: dg.AssetExecutionContext) -> frozenset[str]:
    """This run's id and those of the runs it re-executes, back to the first (Dagster gives a
    re-execution from failure a new run id; its steps continue that run's)."""
    earlier = ancestry(context.instance, context.run.run_id)
    return frozenset({context.run.run_id, *(run.run_id for run in earlier)})


@dg.asset(
    key=VERSION_INPUTS_KEY,
    group_name="spark",
    kinds={"spark"},
    deps=[STAGED_KEY],
    output_required=False,
)
def spark_version_inputs(
    context: dg.AssetExecutionContext,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
    retention: RetentionPolicy,
):
    """What this run's version is computed from: the files staging read and what it made of
    them, the erasures, the settings and the model code (`spark/inputs.py`). When the lake's
    current version was computed from the same and the audience files are its own, the rest
    of the run would publish an identical version: this step then yields no output and Dagster
    skips every later step, after applying the retention policy (the publish's last act) and
    deleting the tables' earlier writes this staging left. The run tag engagement/force=true
    computes anyway."""
    fingerprint, given = _inputs_now(context, lake_dir, model_settings, engagement_config)
    if fingerprint is None:
        raise dg.Failure(
            f"the lake {lake_dir.path} does not say what its staging read: materialize "
            "spark/staging (the whole job spark_pipeline)"
        )
    standing = inputs.standing_version(lake_dir.path, fingerprint, engagement_config.audience_path)
    forced = is_forced(context)
    if standing is not None and not forced:
        retained = _retained(
            lake_dir.path, *_retention_policy(retention, "nothing was retained or expired")
        )
        context.log.info(
            f"version {standing} of the lake was computed from these inputs (the same export "
            "files, erasures, settings and model code) and the audience files are its own: "
            "nothing to compute, nothing is published; the run tag engagement/force=true "
            "computes anyway"
        )
        yield dg.AssetObservation(
            asset_key=VERSION_INPUTS_KEY,
            metadata={
                "standing_version": standing,
                "inputs_fingerprint": fingerprint,
                **retained,
            },
        )
        return
    inputs.record_fingerprint(lake_dir.path, fingerprint, context.run.run_id)
    yield dg.MaterializeResult(
        metadata={
            "inputs_fingerprint": fingerprint,
            "forced": forced and standing is not None,
            "settings": dg.MetadataValue.json(given),
        }
    )


@dg.asset(
    key=IDENTITY_KEY,
    group_name="spark",
    kinds={"spark", "parquet"},
    deps=[VERSION_INPUTS_KEY],
    check_specs=[placeholder_check_spec(IDENTITY_KEY)],
)
def spark_identity_links(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.MaterializeResult:
    """One customer per person, by the identity rules of sql/intermediate/, on Spark."""
    require_checks_passed(lake_dir.path, IDENTITY_KEY)
    _keep_fingerprint_if_ours(context, lake_dir, model_settings, engagement_config)
    tables = lake_tables(spark.session(), lake_dir.path, views=False)
    limit = max_profiles_per_key(engagement_config.setting("max_profiles_per_key"))
    # erased profiles still count on the keys they carried, as on the DuckDB engine
    erased = erasure.register_profile_keys(settings.working_db_path())
    pipeline.build_identity(tables, limit, erased)
    counts = {
        name: tables.spark.table(f"intermediate.{name}").count()
        for name in ("customer_merge", "resolved_customers", "identity_links")
    }
    placeholders = shared_keys_on_spark(tables.spark)
    return dg.MaterializeResult(
        metadata={
            **{f"{k}_rows": v for k, v in counts.items()},
            **placeholder_metadata(placeholders, limit),
        },
        check_results=[placeholder_check(placeholders, limit, where=f"the lake {lake_dir.path}")],
    )


@dg.asset(
    key=MARTS_KEY,
    group_name="spark",
    kinds={"spark", "parquet"},
    deps=[IDENTITY_KEY],
    check_specs=[
        dg.AssetCheckSpec(
            "orders_left_out_within_limit",
            asset=MARTS_KEY,
            blocking=True,
            description=(
                f"At most {summaries.MAX_ORDERS_LEFT_OUT_SHARE:.0%} of completed orders are left "
                "out of the value models for want of an FX rate into the reporting currency "
                "(the DuckDB engine's check on work/customer_summary)."
            ),
        )
    ],
)
def spark_marts(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.MaterializeResult:
    """The value marts (RFM, values, fits, validation, cohorts) as work tables in the lake."""
    require_checks_passed(lake_dir.path, MARTS_KEY)
    tables = lake_tables(spark.session(), lake_dir.path)
    cfg = model_settings.resolved()
    if cfg.time_unit != "D":
        raise dg.Failure("the Spark engine models in days: set ENGAGEMENT_TIME_UNIT=D")
    # before `value_marts`, which writes tables as it goes (a review: a run of this step alone,
    # stopped inside it, left its summaries under another run's fingerprint and passed checks)
    _keep_fingerprint_if_ours(context, lake_dir, model_settings, engagement_config)
    _checking(lake_dir.path, MARTS_KEY)
    pinned = dt.date.fromisoformat(str(cfg.as_of)) if cfg.as_of else None
    # the run's day in the shop's calendar (ENGAGEMENT_TIME_ZONE), as the staged timestamps are
    as_of = pipeline.as_of_date(tables, pinned, in_zone(run_time(context), shop_zone()).date())
    marts, info = pipeline.value_marts(
        tables,
        as_of,
        cfg.currency,
        json.loads(cfg.fx_rates_json or "{}"),
        calibration_end=dt.date.fromisoformat(str(cfg.calibration_end))
        if cfg.calibration_end
        else None,
        holdout_days=cfg.holdout_days,
        purchase_model=cfg.purchase_model,
        horizon_months=cfg.clv_horizon_months,
        monthly_discount_rate=cfg.monthly_discount_rate,
        margin=cfg.margin,
        penalizer=cfg.penalizer,
    )
    for name, frame in marts.items():
        tables.save(f"work.{name}", frame)
    left_out, completed = info["orders_left_out"], info["completed_orders"]
    people = info["customers_left_out"]
    checks = [left_out_check(left_out, completed, cfg.currency, people)]
    _checked(lake_dir.path, MARTS_KEY, checks)
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "marts": sorted(marts),
            **{f"fit_{k}": v for k, v in info["fit_rows"].items()},
            "bgnbd": dg.MetadataValue.json(info["bgnbd"].params),
            "gamma_gamma": dg.MetadataValue.json(info["gamma_gamma"].params),
            "orders_left_out_no_fx_rate": dg.MetadataValue.json(left_out),
            **people,
        },
        check_results=checks,
    )


# The settings that move with the as-of: a change in them is no reason to fit personas again
# (nor one of `personas.NOT_MODEL_SETTINGS`)
_MOVING = ("as_of", "calibration_end")


def _given_settings(model_settings: ModelSettings, engagement_config: EngagementConfig) -> dict:
    """Every setting of the run's two settings resources that can change a number, by field
    name (not where audience files go nor when to warn: `EngagementConfig.NOT_INPUTS`), and the
    shop's time zone (the calendar of every staged timestamp, as the DuckDB engine's window
    records it)."""
    return {
        **{f: model_settings.setting(f) for f in model_settings._ENV},
        **{
            f: engagement_config.setting(f)
            for f in engagement_config._ENV
            if f not in engagement_config.NOT_INPUTS
        },
        "time_zone": shop_zone(),
    }


def persona_inputs(
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
    sources: list[str] | None = None,
) -> dict:
    """What a persona model is fitted from besides the data: every setting that changes its
    features (the value models' and the engagement weights', not the quadrant cuts), the model
    code, the people erased (the register's hashes) and the engagement exports that staged rows
    (`sources`, as the DuckDB engine). A stored model fitted from other inputs is not used
    (`personas.model_in_force`)."""
    given = _given_settings(model_settings, engagement_config)
    erased, _ = erasure.register_of(settings.working_db_path())
    return personas.model_inputs(
        {k: str(v) for k, v in sorted(given.items())},
        versions.model_code_version(),
        _MOVING,
        erasures=list(erased),  # model_inputs sorts and digests them
        sources=sources,
    )


def _work_as_of(tables: SparkTables, table: str) -> dt.date:
    """The as-of of the rows the earlier step wrote (each Spark run rebuilds them for one)."""
    if not tables.spark.catalog.tableExists(f"work.{table}"):
        raise dg.Failure(f"work.{table} is not in the lake: materialize spark/marts first")
    (latest,) = load_spark_sql("work/latest_as_of", table=table)
    (as_of,) = tables.spark.sql(latest.sql).first()
    return as_of


@dg.asset(
    key=ENGAGEMENT_KEY,
    group_name="spark",
    kinds={"spark", "parquet"},
    deps=[MARTS_KEY],
    check_specs=[
        dg.AssetCheckSpec("cev_is_the_sum", asset=ENGAGEMENT_KEY, blocking=True),
        sources_check_spec(ENGAGEMENT_KEY),
    ],
)
def spark_engagement_marts(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.MaterializeResult:
    """engagement_value (CRV, CIV, CKV, CEV, quadrants), personas (the model in force, or a new
    fit when it is ENGAGEMENT_PERSONA_REFIT_DAYS old) and the customer mart on Spark."""
    from pyspark.sql import functions as F

    require_checks_passed(lake_dir.path, ENGAGEMENT_KEY)
    tables = lake_tables(spark.session(), lake_dir.path)
    as_of = _work_as_of(tables, "customer_value")
    _keep_fingerprint_if_ours(context, lake_dir, model_settings, engagement_config)
    _checking(lake_dir.path, ENGAGEMENT_KEY)
    sources = engagement.source_coverage(tables, as_of)
    marts, info = engagement.engagement_marts(
        tables,
        as_of,
        model_settings.resolved().currency,
        engagement_config.to_settings(model_settings),
        persona_inputs(model_settings, engagement_config, [c.source for c in sources if c.rows]),
        int(engagement_config.setting("persona_refit_days")),
    )
    in_force = info["persona_model_in_force"]
    values = marts["engagement_value"]
    # No valued order: clv and cev NULL, and only they. The customers judged unvalued are
    # counted apart (`engagement.unvalued_customers`): a NULL CLV beyond them is one lost.
    unvalued = F.col("clv").isNull()

    def not_finite(c: str):
        bad = F.isnan(c) | (F.abs(c) == float("inf"))
        if c in ("clv", "cev"):
            return F.coalesce(bad, F.lit(False)) | (F.col(c).isNull() != unvalued)
        return F.col(c).isNull() | bad

    rows, gap, worst, non_finite, civ_total, civ_moved, n_unvalued = values.agg(
        F.count("*"),
        F.max(F.abs(F.col("cev") - (F.col("clv") + F.col("crv") + F.col("civ") + F.col("ckv")))),
        F.max(F.abs("cev")),
        F.sum(sum(not_finite(c).cast("int") for c in ("clv", "crv", "civ", "ckv", "cev"))),
        F.sum("civ"),  # influence moves value between customers: 0 in all
        F.sum("civ_ceded"),
        F.count_if(unvalued),
    ).first()
    gap, worst = float(gap or 0.0), float(worst or 0.0)
    civ_total, civ_moved = float(civ_total or 0.0), float(civ_moved or 0.0)
    fit = info["referral_rate_fit"]
    checks = [
        dg.AssetCheckResult(
            check_name="cev_is_the_sum",
            passed=not non_finite
            and int(n_unvalued or 0) == info["customers_unvalued"]
            and gap <= 1e-6 * max(1.0, worst)
            and abs(civ_total) <= 1e-9 * max(1.0, civ_moved),
            metadata={
                "max_abs_gap": gap,
                "non_finite_values": int(non_finite or 0),
                "civ_total": civ_total,
                "civ_moved": civ_moved,
                "customers_unvalued": int(n_unvalued or 0),
            },
            description=(
                f"cev = clv + crv + civ + ckv for every customer (largest gap {gap:.2g}), "
                f"CIV sums to {civ_total:.2g} over the {civ_moved:,.2f} it moves"
                + (
                    f"; {int(n_unvalued)} customer(s) unvalued (no completed order with an FX "
                    "rate): clv and cev NULL"
                    if n_unvalued
                    else ""
                )
                + (f"; {int(non_finite)} non-finite or NULL values" if non_finite else "")
                + (
                    f"; {int(n_unvalued or 0) - info['customers_unvalued']} CLV(s) NULL beyond "
                    "the customers unvalued: lost on the way"
                    if int(n_unvalued or 0) != info["customers_unvalued"]
                    else ""
                )
            ),
        ),
    ]
    _checked(lake_dir.path, ENGAGEMENT_KEY, checks)  # the blocking ones: a warning blocks none
    sources_check = sources_check_result(
        sources, as_of, int(engagement_config.setting("stale_source_days")), ENGAGEMENT_KEY
    )
    if not sources_check.passed:
        context.log.warning(sources_check.description)
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "dagster/row_count": int(rows),
            "engagement_sources": sources_check.metadata["sources"],
            "persona_customers": info["persona_customers"],
            # what every customer's CRV was computed with (the DuckDB engine's key and text)
            "referral_model": dg.MetadataValue.json(
                {**info["referral_model"].report(), "currency": model_settings.resolved().currency}
            ),
            "referral_outcomes": dg.MetadataValue.json(info["referral_outcomes"]),
            "referral_rate_fit": dg.MetadataValue.json(
                {
                    # inf: the Poisson limit (one rate for everyone, docs/METRICS.md "CRV")
                    **{
                        k: v if math.isfinite(v) else str(v)
                        for k, v in (("r", fit.r), ("alpha", fit.alpha))
                    },
                    "grouped_rows": info["referral_rate_rows"],
                }
            ),
            "quadrant_cuts": dg.MetadataValue.json(
                {"clv": info["clv_cut"], "crv": info["crv_cut"]}
            ),
            "persona_k": info["persona_k"],
            "persona_fit_rows": info["persona_fit_rows"],
            **{f"persona_{k}": v for k, v in in_force.metadata().items()},
            **(
                {"silhouette_by_k": dg.MetadataValue.json(info["silhouette_by_k"])}
                if in_force.refit
                else {}
            ),
        },
        check_results=[*checks, sources_check],
    )


@dg.asset(key=AUDIENCES_KEY, group_name="spark", kinds={"spark", "parquet"}, deps=[ENGAGEMENT_KEY])
def spark_audiences(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.MaterializeResult:
    """Consenting customers per RFM segment and quadrant (the activation audiences) on Spark."""
    from pyspark.sql import functions as F

    require_checks_passed(lake_dir.path, AUDIENCES_KEY)
    tables = lake_tables(spark.session(), lake_dir.path)
    as_of = _work_as_of(tables, "engagement_value")
    _keep_fingerprint_if_ours(context, lake_dir, model_settings, engagement_config)
    tables.save(
        f"work.{audiences.MART}",
        audiences.audiences(tables.spark, as_of).select("*", F.lit(as_of).alias("as_of")),
    )
    sizes = pl.from_arrow(
        tables.spark.table(f"work.{audiences.MART}")
        .groupBy("audience_kind", "audience")
        .count()
        .orderBy("audience_kind", "audience")
        .toArrow()
    ).rename({"count": "len"})
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "dagster/row_count": int(sizes["len"].sum()) if sizes.height else 0,
            "audience_sizes": dg.MetadataValue.md(markdown_table(sizes)),
        }
    )


@dg.asset(key=PUBLISHED_KEY, group_name="spark", kinds={"parquet"}, deps=[AUDIENCES_KEY])
def spark_published_marts(
    context: dg.AssetExecutionContext,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
    retention: RetentionPolicy,
) -> dg.MaterializeResult:
    """Every mart of the run published to the lake as one new version (readers see it whole),
    then the audience files of that version (ENGAGEMENT_AUDIENCE_DIR), then the retention
    policy applied to the lake's versions (the DuckDB engine's, ENGAGEMENT_KEEP_VERSIONS and
    ENGAGEMENT_KEEP_DAYS)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # read before publishing: a policy refused after it left a published version, a failed run
    policy = _retention_policy(retention, "nothing was published")
    require_checks_passed(lake_dir.path, PUBLISHED_KEY)
    folders = engagement.work_folders(lake_dir.path)
    if "customer" not in folders:
        raise dg.Failure("work.customer is not in the lake: materialize spark/engagement_marts")
    as_of = pc.max(pq.read_table(folders["customer"], columns=["as_of"])["as_of"]).as_py()
    # the work tables' files, copied: the marts are not computed or encoded again
    given = {"as_of": str(as_of), "engine": "spark"}
    # What a later run with nothing new finds (`spark_version_inputs`): the inputs this run's
    # tables were computed from, when this run recorded them, or the run it re-executes from
    # failure did, with the same settings as this one (not a publish run alone)
    fingerprint = _fingerprint_if_ours(context, lake_dir, model_settings, engagement_config)
    if fingerprint:
        given["inputs_fingerprint"] = fingerprint
    record = lake.publish(lake_dir.path, folders, given)
    files, replacing = {}, None
    # a version of an earlier as-of than the current one's (a backfill) is not current: the
    # audience files stay the current version's, as the DuckDB engine leaves them
    if record["current"] and audiences.MART in record["marts"]:
        replacing = activation.replacing_another_owners(
            engagement_config.audience_path, lake_dir.path
        )
        if replacing:
            context.log.warning(replacing)
        files = audiences.export_files(
            lake_dir.path / record["marts"][audiences.MART], engagement_config.audience_path
        )
        # which version they are, as the DuckDB engine's files say: without it a consumer
        # could not tell whole files from a half-written folder (a review)
        activation.record_version(
            engagement_config.audience_path,
            record["snapshot_id"],
            as_of,
            files,
            engine="spark",
            written_for=lake_dir.path,
        )
        # where this engine's files are, for an erase run with the other engine's settings
        (lake_record,) = activation.folder_records(None, lake_dir.path)
        activation.remember_folder(lake_record, engagement_config.audience_path)
    # the run's outcome in its log, as the DuckDB engine says it ("published version N")
    if record["current"]:
        context.log.info(
            f"published version {record['snapshot_id']} of the lake {lake_dir.path} (as of "
            f"{as_of}): {len(folders)} marts, {len(files)} audiences (a CSV and a Parquet file "
            f"each) in {engagement_config.audience_path}"
        )
    else:
        context.log.info(
            f"published version {record['snapshot_id']} of the lake {lake_dir.path} (as of "
            f"{as_of}); it is not the current version: one with a later as-of stays current, "
            f"and the audience files in {engagement_config.audience_path} stay its own"
        )
    return dg.MaterializeResult(
        metadata={
            **_retained(lake_dir.path, *policy),
            "snapshot_id": record["snapshot_id"],
            "is_current": record["current"],
            "audience_directory": dg.MetadataValue.path(str(engagement_config.audience_path)),
            "audience_files": dg.MetadataValue.json(files),
            "replaced_another_owners_files": replacing is not None,
            "as_of": str(as_of),
            "lake": str(lake_dir.path),
            "marts": sorted(folders),
        }
    )


spark_assets = [
    spark_staging,
    spark_version_inputs,
    spark_identity_links,
    spark_marts,
    spark_engagement_marts,
    spark_audiences,
    spark_published_marts,
]

spark_job = dg.define_asset_job(
    name="spark_pipeline",
    selection=dg.AssetSelection.assets(*spark_assets),
    description="Stage, resolve identity, model, score engagement and publish the marts on Spark.",
)
