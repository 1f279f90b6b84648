"""Engagement assets: the five engagement metrics, personas, audiences.

The maths lives in `engagement_box.engagement` and `engagement_box.activation` (identity
resolution in `engagement_box.identity`, read through `assets/identity.py`'s links); plots in
`engagement_box.reports`.
"""

import datetime as dt

import dagster as dg
import polars as pl

from assets import publish
from assets.identity import IDENTITY_KEY
from assets.metadata import markdown_table, money_label, money_value, preview
from assets.value import (
    _MOVING_KEYS,
    partition_window,
    png_markdown,
    read_work,
    require_identity_links,
    require_work,
    work_key,
    write_work,
)
from engagement_box import dictionary, incremental, reports
from engagement_box.activation import audiences
from engagement_box.engagement import coverage, personas, referral
from engagement_box.engagement.metrics import (
    EngagementParts,
    engagement_parts,
    engagement_values_from_parts,
    unvalued_customers,
)
from engagement_box.governance import erasure, readers, versions
from engagement_box.identity import links as identity
from engagement_box.sql import load_sql
from engagement_box.staging.ingestion import staged_under_other_rules
from engagement_box.value import rfm
from pipelines.partitions import monthly_as_of
from pipelines.resources import AUDIENCE_FILES_KEY, EngagementConfig, ModelSettings, Warehouse

GROUP = "engagement"
METRIC_COLUMNS = ("clv", "crv", "civ", "ckv")
SOURCES_CHECK = "engagement_sources_are_current"


def sources_check_spec(asset: dg.AssetKey, **kwargs) -> dg.AssetCheckSpec:
    """`engagement_sources_are_current` on `asset` (each engine's engagement step)."""
    return dg.AssetCheckSpec(
        SOURCES_CHECK,
        asset=asset,
        description=(
            "The referrals, social and reviews exports (CRV, CIV, CKV) each staged a row "
            "within ENGAGEMENT_STALE_SOURCE_DAYS before the as-of: a source with no row "
            "gives everyone 0 of its metric, one that stopped arriving still counts its old "
            "rows. A warning, not a block."
        ),
        **kwargs,
    )


@dg.asset(
    key=work_key("engagement_value"),
    partitions_def=monthly_as_of,
    group_name=GROUP,
    kinds={"duckdb", "scipy"},
    deps=[
        IDENTITY_KEY,
        work_key("customer_value"),
        work_key("customer_summary"),
        # who has no RFM row: the profiles whose completed orders all lack an FX rate
        work_key("customer_rfm"),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "cev_is_the_sum",
            asset=work_key("engagement_value"),
            partitions_def=monthly_as_of,
            blocking=True,
            description=(
                "CEV = CLV + CRV + CIV + CKV for every customer, all values finite, and CIV sums "
                "to 0 over the customers (influence moves value between them, never out)."
            ),
        ),
        sources_check_spec(work_key("engagement_value"), partitions_def=monthly_as_of),
    ],
)
def engagement_value(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
) -> dg.MaterializeResult:
    """CLV, CRV, CIV, CKV and CEV per customer, social points per platform, CLV x CRV quadrant."""
    settings = engagement_config.to_settings(model_settings)
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        clv = read_work(con, "customer_value", window, columns=("customer_id", "clv"))
        require_identity_links(con, window)  # people, their reviews, referrals, social events
        # One row per person: merged profiles are one customer, since their earliest signup.
        people = con.execute(load_sql("intermediate/people_since")).pl()
        profiles = people.filter(pl.col("since") <= window["as_of"])
        customers = pl.concat([profiles.select("customer_id"), clv.select("customer_id")]).unique()
        # Profiles whose completed orders all lack an FX rate: no CLV was measured, so their clv,
        # cev and quadrant are NULL (not 0 and CEV Misers); CRV, CIV and CKV are theirs.
        unvalued = unvalued_customers(
            profiles, clv, read_work(con, "customer_rfm", window, columns=("customer_id",))
        )
        # A customer's referral exposure starts at signup, or at the first order of a buyer
        # without a profile (the earlier of the two when both exist).
        first_orders = read_work(
            con, "customer_summary", window, columns=("customer_id", "first_order_date")
        ).rename({"first_order_date": "since"})
        # One row per customer, once: the referral rules and the exposure both read it (each
        # grouping 1.8M rows again cost 0.7-0.9 CPU-s at 1M; a frame already one row per
        # customer, 0.17).
        customer_since = referral.customer_start(
            pl.concat([profiles, first_orders], how="vertical_relaxed")
        )
        # Only what was known at the as-of date: a past month's run ignores later activity.
        until = dt.datetime.combine(window["as_of"], dt.time.max)
        sent = identity.resolved(con, "referrals")
        referrals = referral.with_referee_since(  # a referee who was a customer already: no credit
            sent.filter(
                pl.col("referred_at") <= until
            ).with_columns(  # converted after the as-of date: not converted yet at that date
                pl.when(pl.col("converted_at") <= until)
                .then(pl.col("converted_at"))
                .alias("converted_at")
            ),
            customer_since,
        )
        plan, now = _engagement_plan(con, window, engagement_config, customers, people)
        if plan.incremental:
            parts = _carried_parts(con, plan.previous_as_of)
        else:
            parts = engagement_parts(
                identity.resolved(con, "reviews").filter(pl.col("created_at") <= until),
                identity.resolved(con, "social").filter(pl.col("occurred_at") <= until),
                settings,
            )
        values, referral_model = engagement_values_from_parts(
            clv,
            referrals,
            parts,
            settings,
            as_of=window["as_of"],
            customers=customers,
            customer_since=customer_since,
            unvalued=unvalued,
        )
        values = values.with_columns(
            pl.lit(window["currency"], dtype=pl.String).alias("currency"),
            pl.lit(window["as_of"]).alias("as_of"),
        )
        state = incremental.record(
            con, "engagement_value", window["as_of"], now, values.height, edges=parts.edges.height
        )
        con.execute(load_sql("work/influence_edges_table"))
        edges = [(load_sql("work/delete_influence_edges"), {"as_of": window["as_of"]})]
        if not plan.incremental:
            edges.append((load_sql("work/insert_influence_edges"), {"as_of": window["as_of"]}))
        elif plan.previous_as_of != window["as_of"]:
            edges.append(
                (
                    load_sql("work/carried_influence_edges"),
                    {"as_of": window["as_of"], "previous_as_of": plan.previous_as_of},
                )
            )
        else:
            edges = []  # the same as-of again: its network stays as it is
        check = _cev_check(values, unvalued)
        sources = coverage.coverage(con, window["as_of"])
        con.register("influence_edge_rows", parts.edges)
        try:
            metadata = write_work(
                con,
                "engagement_value",
                values,
                window,
                also=[*edges, *state],
                ran_with=publish.run_settings(window, engagement_config),
                checks=[check],
            )
        finally:
            con.unregister("influence_edge_rows")

    sources_check = sources_check_result(
        sources,
        window["as_of"],
        int(engagement_config.setting("stale_source_days")),
        work_key("engagement_value"),
    )
    if not sources_check.passed:
        context.log.warning(sources_check.description)
    metadata.update(
        {
            **plan.metadata(),
            "engagement_sources": sources_check.metadata["sources"],
            "influence_edges": parts.edges.height,
            **{
                money_label(f"total_{c}", window["currency"]): money_value(values[c].sum())
                for c in (*METRIC_COLUMNS, "cev")
            },
            # Why referrals were or were not credited (self_referral: one person after merging).
            "referral_outcomes": dg.MetadataValue.json(
                referral.outcome_counts(
                    referral.referral_outcomes(referrals, window["as_of"]),
                    sent_after_as_of=sent.height - referrals.height,
                )
            ),
            # What every customer's CRV was computed with: the rate fit, kappa, the mean value.
            "referral_model": dg.MetadataValue.json(
                {**referral_model.report(), "currency": window["currency"]}
            ),
            "quadrants": dg.MetadataValue.json(quadrant_counts(values)),
            # profiles whose completed orders all lack an FX rate: clv, cev and quadrant NULL
            "customers_unvalued": int(values["clv"].null_count()),
            "cev_composition": png_markdown(reports.cev_composition_png(values), "CEV composition"),
            "clv_distribution": png_markdown(
                reports.clv_distribution_png(values["clv"].to_numpy()), "CLV distribution"
            ),
            "quadrant_map": png_markdown(reports.quadrant_map_png(values), "CLV x CRV quadrants"),
        }
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check, sources_check])


def sources_check_result(
    sources: list[coverage.Coverage], as_of: dt.date, stale_days: int, asset: dg.AssetKey
) -> dg.AssetCheckResult:
    """A warning naming each engagement source that staged no row, or none in the last
    `stale_days` days before `as_of` (`coverage.Coverage.problem`)."""
    problems = [p for p in (c.problem(as_of, stale_days) for c in sources) if p]
    return dg.AssetCheckResult(
        check_name=SOURCES_CHECK,
        asset_key=asset,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{'; '.join(problems)} ({coverage.HELP})"
        if problems
        else f"every engagement source staged a row within {stale_days} days before {as_of}",
        metadata={
            "sources": dg.MetadataValue.json({c.source: c.report(as_of) for c in sources}),
            "problems": dg.MetadataValue.json(problems),
        },
    )


# The quadrant's count of the unvalued customers in the metadata (their quadrant is NULL), as
# the segment migration labels them.
UNVALUED_LABEL = "(unvalued)"


def quadrant_counts(values: pl.DataFrame) -> dict[str, int]:
    """Customers per quadrant, the unvalued (quadrant NULL) as `UNVALUED_LABEL`."""
    counts = values.group_by("quadrant").len().sort("quadrant", nulls_last=True)
    return {q if q is not None else UNVALUED_LABEL: int(n) for q, n in counts.iter_rows()}


def _cev_check(values: pl.DataFrame, unvalued_ids: pl.Series) -> dg.AssetCheckResult:
    """`cev_is_the_sum` of the engagement values: every value finite, CEV the sum of the four
    metrics, CIV summing to 0 (influence moves value between customers, never out). The one NULL
    allowed: clv of an unvalued customer (`unvalued_ids`, judged from the profiles, CLVs and RFM
    rows: `metrics.unvalued_customers`, not from the NULL itself, so a CLV lost on the way
    fails), and then cev is NULL too, and only then (the sum of the parts measured would count
    their CLV as 0)."""
    numeric = [c for c, t in values.schema.items() if t.is_numeric()]
    unvalued = values["customer_id"].cast(pl.String).is_in(unvalued_ids.cast(pl.String).implode())

    def not_finite(column: str) -> pl.Series:
        bad = ~values[column].cast(pl.Float64).is_finite()
        if column in ("clv", "cev"):  # NULL for the unvalued, and for them only
            return bad.fill_null(False) | (values[column].is_null() != unvalued)
        return bad.fill_null(True)

    non_finite = {c: int(not_finite(c).sum()) for c in numeric if not_finite(c).any()}
    gap = (values["cev"] - sum(values[c] for c in METRIC_COLUMNS)).abs().max() or 0.0
    civ_total = float(values["civ"].sum() or 0.0)
    civ_moved = float(values["civ_ceded"].sum() or 0.0)
    n_unvalued = int(unvalued.sum())
    return dg.AssetCheckResult(
        check_name="cev_is_the_sum",
        passed=not non_finite
        and float(gap) <= 1e-6 * max(1.0, float(values["cev"].abs().max() or 0))
        and abs(civ_total) <= 1e-9 * max(1.0, civ_moved),
        metadata={
            "max_abs_gap": float(gap),
            "civ_total": civ_total,
            "civ_moved": civ_moved,
            "non_finite_by_column": dg.MetadataValue.json(non_finite),
            "customers_unvalued": n_unvalued,
        },
        description=(
            f"cev = clv + crv + civ + ckv for every customer (largest gap {float(gap):.2g}"
            f"), CIV sums to {civ_total:.2g} over the {civ_moved:,.2f} it moves"
            + (
                f"; {n_unvalued} customer(s) unvalued (no completed order with an FX rate): clv "
                "and cev NULL"
                if n_unvalued
                else ""
            )
            + (f"; non-finite or NULL values: {non_finite}" if non_finite else "")
        ),
    )


def _engagement_plan(
    con, window: dict, engagement_config: EngagementConfig, customers, people
) -> tuple[incremental.Plan, dict]:
    """How this as-of's engagement values are computed: carrying CKV, the social points and the
    influence network from an earlier as-of (only new orders files since, no review or social
    event dated between the two as-ofs, no customer with a profile newly counted), or cold."""
    settings = {
        k: v
        for k, v in publish.run_settings(window, engagement_config).items()
        if k not in (*_MOVING_KEYS, "persona_refit_days")
    }
    now = incremental.inputs(con, settings, fixed=incremental.ENGAGEMENT_FIXED)
    plan = incremental.plan(con, "engagement_value", window["as_of"], now)
    if not plan.incremental:
        return plan, now
    earlier = con.execute(
        load_sql("work/engagement_value_customers"), {"as_of": plan.previous_as_of}
    ).pl()
    new_people = (
        customers.join(earlier, on="customer_id", how="anti")
        .join(people.select("customer_id"), on="customer_id", how="semi")
        .height
    )
    problem = incremental.engagement_carry_problem(con, plan, window["as_of"], new_people)
    if problem is not None:
        since = f"the run as of {plan.previous_as_of}"
        return incremental.Plan(False, f"{problem} (since {since}): computed in full"), now
    reason = plan.reason.replace(
        "the rest carried forward", "CKV, social points and the influence network carried forward"
    )
    return incremental.Plan(True, reason, plan.previous_as_of, plan.previous, plan.new_files), now


def _carried_parts(con, previous_as_of: dt.date) -> EngagementParts:
    """CKV, the social points and the influence network of an earlier as-of's engagement values."""
    params = {"previous_as_of": previous_as_of}
    rows = con.execute(load_sql("work/carried_engagement_parts"), params).pl()
    edges = con.execute(load_sql("work/influence_edges_of"), params).pl()
    return EngagementParts(
        edges=edges,
        knowledge=rows.select("customer_id", "ckv_reviews", "review_count", "ckv_ideas"),
        points=rows.select("customer_id", pl.col("^social_points.*$")),
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            work_key("customer_persona"),
            group_name=GROUP,
            kinds={"duckdb", "scikitlearn"},
            deps=[work_key("customer_rfm"), work_key("engagement_value")],
            description="Behavioural clusters (k-means on standardized RFM, value and "
            "engagement features): each customer's persona.",
        ),
        dg.AssetSpec(
            work_key("persona_profile"),
            group_name=GROUP,
            kinds={"duckdb"},
            deps=[work_key("customer_rfm"), work_key("engagement_value")],
            description="Each persona's size, feature means, z-scores and descriptive name "
            "(computed with the persona assignments).",
        ),
    ],
    partitions_def=monthly_as_of,
)
def customer_persona(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    model_settings: ModelSettings,
    engagement_config: EngagementConfig,
):
    """Behavioural clusters and their profiles: the persona model in force, or a new k-means fit
    when it is ENGAGEMENT_PERSONA_REFIT_DAYS old."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        rfm_rows = read_work(con, "customer_rfm", window)
        features = personas.feature_frame(
            read_work(con, "engagement_value", window, columns=personas.VALUE_FEATURE_COLUMNS),
            rfm_rows,
            rfm.PROSPECT,
        )
        inputs = personas.model_inputs(
            publish.run_settings(window, engagement_config),
            versions.model_code_version(),
            moving=_MOVING_KEYS,
            erasures=versions.erasure_requests(con),
            # the engagement exports with rows (a source added or withdrawn refits)
            sources=[c.source for c in coverage.coverage(con, window["as_of"]) if c.rows],
        )
        in_force = personas.model_in_force(
            con, window["as_of"], inputs, int(engagement_config.setting("persona_refit_days"))
        )
        if in_force.refit:
            result = personas.build_personas(features)
            model, fitted_as_of = result.model, window["as_of"]
            assignments, profiles = result.assignments, result.profiles
        else:
            model, fitted_as_of = in_force.model, in_force.fitted_as_of
            assignments, profiles = personas.assign_personas(features, model)
        # which model assigned the version's customers, for analysts comparing versions
        profiles = profiles.with_columns(
            pl.lit(fitted_as_of, dtype=pl.Date).alias("model_fitted_as_of"),
            pl.lit(window["currency"], dtype=pl.String).alias("currency"),
        )
        record = personas.record_model(con, window["as_of"], fitted_as_of, inputs, model)
        ran_with = publish.run_settings(window, engagement_config)
        persona_metadata = write_work(
            con, "customer_persona", assignments, window, also=record, ran_with=ran_with
        )
        profile_metadata = write_work(con, "persona_profile", profiles, window, ran_with=ran_with)
    persona_metadata.update(
        {
            **in_force.metadata(),
            # the model assigned with: the stored one, or the one fitted now, as of this as-of
            "persona_model_fitted_as_of": str(fitted_as_of),
            "k": model.k,
        }
    )
    if in_force.refit:
        persona_metadata["silhouette_by_k"] = dg.MetadataValue.json(
            {str(k): v for k, v in result.silhouette_by_k.items()}
        )
    profile_metadata["profiles"] = dg.MetadataValue.md(
        markdown_table(profiles.select([c for c in profiles.columns if not c.startswith("z_")]))
    )
    yield dg.MaterializeResult(asset_key=work_key("customer_persona"), metadata=persona_metadata)
    yield dg.MaterializeResult(asset_key=work_key("persona_profile"), metadata=profile_metadata)


@dg.asset(
    key=work_key("customer"),
    partitions_def=monthly_as_of,
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[
        work_key("engagement_value"),
        work_key("customer_rfm"),
        work_key("customer_persona"),
        work_key("customer_value"),
        IDENTITY_KEY,  # intermediate.resolved_customers: the merged person's attributes
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "one_row_per_customer",
            asset=work_key("customer"),
            partitions_def=monthly_as_of,
            blocking=True,
            description="One row per customer in the version, no NULL customer_id.",
        ),
        dg.AssetCheckSpec(
            "documented_segments_and_quadrants",
            asset=work_key("customer"),
            partitions_def=monthly_as_of,
            blocking=True,
            description="Every segment and quadrant is one of the documented values "
            "(docs/DATA_DICTIONARY.md), never NULL.",
        ),
    ],
)
def customer(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """One row per customer: profile attributes, segment, quadrant, persona and every value."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        for table in ("engagement_value", "customer_rfm", "customer_persona", "customer_value"):
            require_work(con, table, window)
        require_identity_links(con, window)  # the merged person's attributes
        rows = con.execute(
            load_sql("work/customer"), {"as_of": window["as_of"], "currency": window["currency"]}
        ).pl()
        keys = dictionary.key_problems(rows, "customer")
        values = dictionary.value_problems(rows, "customer")
        checks = [
            dg.AssetCheckResult(
                check_name="one_row_per_customer",
                passed=not keys,
                description="; ".join(keys) or f"{rows.height} customers, one row each",
            ),
            dg.AssetCheckResult(
                check_name="documented_segments_and_quadrants",
                passed=not values,
                description="; ".join(values) or "every segment and quadrant is documented",
            ),
        ]
        metadata = write_work(con, "customer", rows, window, checks=checks)
    metadata.update(
        {
            "with_profile": int(rows["has_profile"].sum()) if rows.height else 0,
            "with_marketing_consent": int(rows["marketing_consent"].fill_null(False).sum())
            if rows.height
            else 0,
            money_label("total_cev", window["currency"]): money_value(rows["cev"].sum()),
        }
    )
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


# Not partitioned: the audience files are those of the current version of the marts (a backfill
# of a past month does not move the current version, so it leaves the audiences as they are).
AUDIENCES_KEY = AUDIENCE_FILES_KEY  # defined with the resources, whose check reads it


def _nothing_published(warehouse: Warehouse) -> str:
    """Why the audience files cannot be written yet (a new warehouse, or a first run that failed
    a blocking check): the job met a DuckDB catalog error."""
    return (
        f"no version is published in {warehouse.working_path} yet (ENGAGEMENT_WAREHOUSE "
        f"{warehouse.path}): the audience files are written from the current version. Run "
        "the pipeline for a month first (engagement-box run, or the job engagement_pipeline); "
        "no audience file was written"
    )


@dg.asset(
    key=AUDIENCES_KEY,
    group_name="activation",
    kinds={"csv", "parquet"},
    deps=[
        dg.AssetKey(["marts", "customer_rfm"]),
        dg.AssetKey(["marts", "engagement_value"]),
        IDENTITY_KEY,
    ],
)
def audience_exports(
    context: dg.AssetExecutionContext, warehouse: Warehouse, engagement_config: EngagementConfig
) -> dg.MaterializeResult:
    """Consenting customers per RFM segment and quadrant of the current version (CSV, Parquet)."""
    if not warehouse.working_path.exists():  # not created here: a mistyped path stays visible
        raise dg.Failure(_nothing_published(warehouse))
    with warehouse.get_connection() as con:
        if versions.current_version_as_of(con)[0] is None:
            raise dg.Failure(_nothing_published(warehouse))
        held = publish.audience_files_held(con, engagement_config.audience_path)
        if held:
            raise dg.Failure(held)
        # The merged person's email and consent of now (the most restrictive answer of their
        # profiles; a withdrawal staged since the identity step counts: a run that failed
        # before it asks for these files alone), and that consent, recorded with the files
        # (`_audiences_behind`).
        with identity.consent_of_now(con):
            customers = con.execute(load_sql("intermediate/audience_customers")).pl()
            consent = identity.consent_digest(con)
        # Anyone the erasure log names, by id or address under today's rules, stays out, though
        # the marts hold them: a profile staged under older ingest rules from a file no longer
        # in the exports folder is never read again, and one whose `mailto:` or full-width
        # address rules 13 reads as an erased person's went on into the files (an upgrade
        # review). Only when something was ever erased.
        kept_out = _erased_customers(con, customers)
        customers = customers.filter(~kept_out)
        frame = audiences.build_audiences(
            customers,
            segments=con.execute(load_sql("marts/customer_segments")).pl(),
            quadrants=con.execute(load_sql("marts/customer_quadrants")).pl(),
        )
        # The version the audiences come from: the current one (a backfill publishes a higher id
        # that is not current).
        snapshot_id, as_of = versions.current_version_as_of(con)
        # The analysts' file shows that version too: a run killed after its publish, before the
        # file was rebuilt, left it a version behind while this step catches the audiences up
        # (cheap when the file is current).
        stopped = readers.unfinished_erasures(con)  # erases stopped after their commit
        if stopped and publish.lake_holds_versions():
            stopped = []  # the Spark lake's versions too: finished by the same erase again
        readers_file = warehouse.publish_for_readers(con)  # checks every history file then
    unplayed = audiences.without_play(frame)
    if unplayed:
        context.log.warning(audiences.without_play_message(unplayed))
    consenting = int(customers["marketing_consent"].fill_null(False).sum())
    no_consent = None if consenting else audiences.no_consent_message(snapshot_id, customers.height)
    if no_consent:
        context.log.warning(no_consent)
    if kept_out.any():
        context.log.warning(
            f"{int(kept_out.sum())} customer(s) of the current version carry an id or address "
            "an erasure named (rows staged under older ingest rules, from files no longer in "
            "the exports folder): left out of the audience files. Erase them by "
            "`engagement-box erase --customer-id` to take them out of the marts too"
        )
    out = engagement_config.audience_path
    replacing = audiences.replacing_another_owners(out, warehouse.working_path)
    if replacing:
        context.log.warning(replacing)
    # Rebuilt whole each time: a customer who withdrew consent or was erased leaves every file.
    files = audiences.export_audiences(frame, out)
    audiences.record_version(
        out, snapshot_id, as_of, files, written_for=warehouse.working_path, consent=consent
    )
    # where this engine's files are, for an erase run with the other engine's settings
    (working_record,) = audiences.folder_records(warehouse.working_path, None)
    audiences.remember_folder(working_record, out)
    if stopped:  # their files all rewritten now: the history files above, the audiences here
        with warehouse.get_connection() as con:
            readers.finish_erasures(con, stopped)
    sizes = (
        frame.group_by("audience_kind", "audience")
        .len(name="customers")
        .sort("audience_kind", "audience")
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            # the files' columns and first rows, personal columns masked as every preview is
            "dagster/column_schema": dg.MetadataValue.table_schema(
                dg.TableSchema(
                    columns=[dg.TableColumn(name=c, type=str(t)) for c, t in frame.schema.items()]
                )
            ),
            "preview": preview(frame),
            "snapshot_id": snapshot_id or 0,
            "directory": dg.MetadataValue.path(str(out)),
            "audiences_without_play": dg.MetadataValue.json(unplayed),
            "customers_with_consent": consenting,
            **({"no_consent_warning": no_consent} if no_consent else {}),
            "published_file_rebuilt": readers_file.built,
            "replaced_another_owners_files": replacing is not None,
            "files": dg.MetadataValue.json(files),
            "audience_sizes": dg.MetadataValue.md(markdown_table(sizes)),
            "customers_in_any_audience": int(frame["customer_id"].n_unique())
            if frame.height
            else 0,
            "erased_left_out": int(kept_out.sum()),
        }
    )


def _erased_customers(con, customers: pl.DataFrame) -> pl.Series:
    """True for the audience customers (customer_id, email) whose id or address an erasure
    logged (`erasure.suppression_mask`, today's normalisation); all False when none was, or
    when every file that staged rows was taken in under today's rules: each row was then
    checked against the log as it reads today, and an erasure since deleted its person's rows,
    so none can be found (hashing every customer's id and email cost 5.8 s at 1M customers on
    each run: a code review)."""
    hashes = erasure.erased_subject_hashes(con)
    if not hashes or not staged_under_other_rules(con):
        return pl.Series("erased", [False] * customers.height, dtype=pl.Boolean)
    salt = erasure.resolve_salt(con)
    return erasure.suppression_mask(customers, "customers", hashes, salt)


engagement_assets = [engagement_value, customer_persona, customer, audience_exports]
