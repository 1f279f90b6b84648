"""Customer value assets: summary, RFM segments, purchase model fits and choice, scores, validation.

Each asset writes its partition's rows of a `work.<table>` (keyed by `as_of`, see
`engagement_box.partitioned`); `assets/publish.py` turns one as-of's checked work rows into a
versioned `marts.<table>`. Every asset computes its window from its own partition key
(`partition_window`), so an asset materialized alone computes the same rows as in a full run.
The maths lives in `engagement_box.value`.
"""

import base64
import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np
import polars as pl

from assets.identity import IDENTITY_KEY
from assets.metadata import (
    PREVIEW_ROWS,
    markdown_table,
    money_label,
    money_value,
    preview,
    run_time,
    table_metadata,
)
from assets.staging import staging_key
from engagement_box import dictionary, incremental, partitioned, reports
from engagement_box.clock import in_zone, shop_zone
from engagement_box.governance import versions
from engagement_box.identity import links as identity_links
from engagement_box.settings import value as setting_value
from engagement_box.sql import load_sql, relation_exists, table_exists
from engagement_box.value import (
    choice,
    fitting,
    purchase_models,
    rfm,
    scoring,
    selection,
    uncertainty,
)
from engagement_box.value import marts as value_marts
from engagement_box.value import summary as summaries
from pipelines.partitions import month_end, monthly_as_of
from pipelines.resources import ModelSettings, Warehouse

GROUP = "customer_value"


def work_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["work", name])


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI's metadata panel."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def partition_window(context: dg.AssetExecutionContext, con, settings: ModelSettings) -> dict:
    """The observation window of this asset's partition: as-of, calibration end, unit, currency.

    as-of = ENGAGEMENT_AS_OF if set (then `as_of_pinned` is true and `partition_key` is None: the
    rows belong to the pinned date, not to the month the run was launched for), else the
    partition month's last day, capped at the day of the last completed order (a month still
    running, or with no newer data, ends there), and never past the run's day. Every asset of a
    run calls this with the same partition key and gets the same window; nothing is read from an
    earlier run.
    """
    partition_key = context.partition_key if context.has_partition_key else None
    # the run's day in the shop's calendar (ENGAGEMENT_TIME_ZONE), as the staged timestamps are
    run_day = in_zone(run_time(context), shop_zone()).date()
    return resolve_window(con, settings, partition_key, run_date=run_day)


def resolve_window(
    con,
    settings: ModelSettings,
    partition_key: str | None = None,
    run_date: dt.date | None = None,
) -> dict:
    """`partition_window` for a partition key (None: an unpartitioned run, up to the data);
    the as-of never passes `run_date` (the run's day; see `_cap_at_run_date`)."""
    cfg = settings.resolved()
    if not table_exists(con, "staging", "orders"):  # a new warehouse: DuckDB's catalog error
        raise dg.Failure(
            "no orders are staged in this warehouse yet (staging.orders does not exist): "
            + (
                whole_month({"partition_key": partition_key})
                if partition_key
                else "run the whole graph (engagement-box run) first"
            )
        )
    last_order_day = incremental.last_completed_order_day(con)
    if last_order_day is None:
        raise dg.Failure("no completed orders are staged: nothing to model")
    pinned = _date(cfg.as_of)
    as_of = pinned
    if as_of is None:
        as_of = last_order_day
        if partition_key is not None:
            as_of = min(month_end(partition_key), last_order_day)
    as_of = _cap_at_run_date(as_of, run_date, pinned=pinned is not None)
    calibration_end = _date(cfg.calibration_end) or as_of - dt.timedelta(days=cfg.holdout_days)
    if calibration_end >= as_of:
        # the as-of is known only now, from the staged orders: the ticks and the CLI compare a
        # pinned calibration end with the run's day, not with the last completed order
        raise dg.Failure(
            f"ENGAGEMENT_CALIBRATION_END={calibration_end} must be before the as-of date "
            f"{as_of} (the last completed order is of {last_order_day}): set an earlier date, "
            "or unset it to hold out the last ENGAGEMENT_HOLDOUT_DAYS days"
        )
    return {
        "partition_key": None if pinned is not None else partition_key,
        "as_of_pinned": pinned is not None,
        "as_of": as_of,
        "calibration_end": calibration_end,
        "time_unit": cfg.time_unit,
        "currency": cfg.currency,
        "fx_rates": cfg.fx_rates_json or "{}",
        "clv_horizon_months": cfg.clv_horizon_months,
        "monthly_discount_rate": cfg.monthly_discount_rate,
        "margin": cfg.margin,
        "penalizer": cfg.penalizer,
        "purchase_model": cfg.purchase_model,
        "model_choice_days": int(cfg.model_choice_days),
        "calibration_end_pinned": cfg.calibration_end is not None,
        # the calendar of every staged timestamp: a change stages every file again
        "time_zone": shop_zone(),
    }


def require_identity_links(con, window: dict | None = None) -> None:
    """Orders are grouped by the identity-resolved customer: the links must be built, from the
    files staged now (a run of some steps after an ingest left them as they were). A step of a
    month (`window`) is told to compute the whole month: the links alone met the next refusal a
    step further on (the orders per day behind them; a review)."""
    if not relation_exists(con, "intermediate", "orders_resolution"):
        problem = "the identity links are not built yet"
    else:
        problem = identity_links.links_problem(con)
    if problem is not None:
        advice = (
            whole_month(window)
            if window is not None
            else "materialize intermediate/identity_links first"
        )
        raise dg.Failure(f"{problem}: {advice}")


def _cap_at_run_date(as_of: dt.date, run_date: dt.date | None, pinned: bool) -> dt.date:
    """The as-of date, never past the run's day (issue 13): an order dated in the future that
    reached staging cannot move everyone's as-of. A pinned ENGAGEMENT_AS_OF in the future is
    refused rather than silently changed."""
    if run_date is None or as_of <= run_date:
        return as_of
    if pinned:
        raise dg.Failure(
            f"ENGAGEMENT_AS_OF {as_of} is after the run's date {run_date}: set a date that has "
            "already happened"
        )
    return run_date


def money(window: dict) -> dict:
    """The currency arguments of the summaries: reporting currency and FX rates of this run."""
    return {"currency": window["currency"], "fx_rates": json.loads(window["fx_rates"] or "{}")}


def require_rows(con, table: str, window: dict) -> partitioned.Written:
    """A plain failure when this partition's rows of `work.<table>` were never computed; else
    the registry's record of them."""
    record = partitioned.written(con, "work", table, window["as_of"])
    if record is None:
        raise dg.Failure(
            f"work.{table} holds no rows as of {window['as_of']} (never computed, or trimmed "
            "by retention after its version expired): " + whole_month(window)
        )
    return record


def require_work(con, table: str, window: dict, fingerprint: str | None = None) -> None:
    """A plain failure when this partition's rows of `work.<table>` were never computed, failed
    a blocking check when they were (`partitioned.Written.failed_checks`), or were computed from
    other inputs than those of now (`partitioned.Written.behind`; the inputs now: `fingerprint`,
    default `step_fingerprint`): a step (or the publish) would otherwise build on rows a check
    refused, or on rows of older exports, erasures, settings or code."""
    record = require_rows(con, table, window)
    as_of = window["as_of"]
    failed = record.failed_checks
    if failed:  # Dagster stops the steps after a failed blocking check in its own run only
        raise dg.Failure(
            f"work.{table} as of {as_of} failed its blocking check{'s' * (len(failed) > 1)} "
            f"{', '.join(failed)} when it was computed: its rows are neither read by later "
            "steps nor published. The check's description (the run's log, or the asset's "
            "Checks tab in the Dagster UI) says what to fix; then " + whole_month(window)
        )
    now = fingerprint if fingerprint is not None else step_fingerprint(con, window)
    if record.behind(now):
        raise dg.Failure(
            f"work.{table} as of {as_of} was computed from other inputs than those of now "
            f"({_what_changed(con, window)}): its rows are not those of the inputs now. "
            + _sentence(whole_month(window))
        )


def _sentence(words: str) -> str:
    return words[:1].upper() + words[1:]


def whole_month(window: dict) -> str:
    """The advice of a step that refuses rows computed from other inputs: the whole month, so
    every step computes again (a re-execution from failure keeps the steps that succeeded, so
    a re-execution of all steps; materializing the step named upstream met the next refusal one
    step further on, a review)."""
    month = window.get("partition_key") or window["as_of"].strftime("%Y-%m-01")
    return (
        f"materialize the whole month (engagement-box run --month {month[:7]}, or the job for "
        f"partition {month}; re-executing a failed run: all steps, not from failure) so every "
        "step computes again"
    )


def read_work(
    con, table: str, window: dict, columns: tuple[str, ...] | None = None
) -> pl.DataFrame:
    """This partition's rows of `work.<table>` (only `columns` when given); a plain failure when
    they are not there."""
    require_work(con, table, window)
    return partitioned.read_partition(con, "work", table, window["as_of"], columns=columns)


def write_work(
    con,
    table: str,
    frame: pl.DataFrame,
    window: dict,
    also: list | tuple = (),
    ran_with: Mapping[str, object] | None = None,
    checks: Sequence[dg.AssetCheckResult] = (),
) -> dict:
    """Replace this partition's rows of `work.<table>`; the metadata describes those rows.
    `also`: statements run in the same transaction (an incremental step's state). `ran_with`:
    the settings the step computed with (default: the window's): the rows record the
    fingerprint of their inputs (`step_fingerprint`), which a step reading them and the publish
    compare with the inputs of now. `checks`: the step's blocking checks of these rows, which
    the step returns too: the rows record those that failed (`require_work` refuses them)."""
    if table == partitioned.INPUTS_TABLE:  # the inputs it records
        computation = frame["inputs_fingerprint"].item() if frame.height == 1 else None
    else:
        computation = step_fingerprint(con, window, ran_with)
    if table in dictionary.RENAMED_TABLES:  # a warehouse from before the renames keeps its rows
        dictionary.rename_legacy_columns(con)  # (0.1 s of catalog scan: only where it matters)
    partitioned.write_partition(
        con,
        "work",
        table,
        frame,
        window["as_of"],
        also=also,
        computation=computation,
        failed_checks=[check.check_name for check in checks if not check.passed],
    )
    return partition_metadata(con, table, window)


# Keys of the window that move from run to run without changing how a row is computed, and the
# model choice's schedule (which as-of's choice is used; `choice.choice_in_force` compares what
# a choice is made from): an incremental step's state compares the rest
# (`engagement_box.incremental`).
_MOVING_KEYS = (
    "partition_key",
    "as_of",
    "as_of_pinned",
    "calibration_end",
    "model_choice_days",
    "calibration_end_pinned",
)


def incremental_plan(con, table: str, window: dict) -> tuple[incremental.Plan, dict]:
    """How `work.<table>` is computed this time (incrementally from an earlier as-of, or cold)
    and the inputs to record with its rows."""
    settings = {k: v for k, v in window.items() if k not in _MOVING_KEYS}
    now = incremental.inputs(con, settings)
    return incremental.plan(con, table, window["as_of"], now), now


# Window keys a step may run with other than those recorded without its rows being other
# inputs' rows: the model choice's schedule (a choice forced with ENGAGEMENT_MODEL_CHOICE_DAYS=0
# stays in force, `value/choice.py`); the partition's label is no input (`RUN_ONLY_SETTINGS`).
_SCHEDULE_KEYS = frozenset({"model_choice_days"})


def step_fingerprint(con, window: dict, ran_with: Mapping[str, object] | None = None) -> str:
    """The fingerprint of the inputs a step computes from now (`versions.inputs_fingerprint`):
    the staged files and erasures now, this process's model code, and the settings it runs with
    (`ran_with`, default the window's; the identity links' placeholder limit as they were
    built). A setting the step does not use counts as `work/version_inputs` recorded it for the
    as-of, so in a whole run every step's fingerprint is the one recorded, which the publish
    compares with the rows' (`partitioned.Written.behind`)."""
    from assets.publish import run_settings  # it imports this module
    from pipelines.resources import EngagementConfig

    # what no record says: the settings as the environment gives them
    recorded: dict = json.loads(json.dumps(run_settings(window, EngagementConfig())))
    settings, _ = _recorded_inputs(con, window["as_of"])
    if settings is not None:
        recorded = {**recorded, **settings}
    used = _used_settings(con, window, ran_with)
    for key in _SCHEDULE_KEYS:
        if key in recorded:
            used[key] = recorded[key]
    return versions.inputs_fingerprint(con, as_of=window["as_of"], settings={**recorded, **used})


def _recorded_inputs(con, as_of) -> tuple[dict | None, str | None]:
    """The settings and model code `work/version_inputs` recorded for `as_of` (None: none)."""
    if not table_exists(con, "work", partitioned.INPUTS_TABLE):
        return None, None
    row = con.execute(load_sql("work/recorded_settings"), {"as_of": as_of}).fetchone()
    if row is None:
        return None, None
    return (json.loads(row[0]) if row[0] is not None else None), row[1]


def _used_settings(con, window: dict, ran_with: Mapping[str, object] | None = None) -> dict:
    """The settings a step runs with (`ran_with`, default the window's) as a fingerprint takes
    them: without the schedule's keys and the run-only settings, with the identity links'
    placeholder limit as they were built."""
    used = json.loads(
        json.dumps(
            {
                k: versions.json_value(v)
                for k, v in (window if ran_with is None else ran_with).items()
                if k not in _SCHEDULE_KEYS and k not in versions.RUN_ONLY_SETTINGS
            }
        )
    )
    built = incremental.state(con, incremental.IDENTITY_STATE, None)
    if built is not None and "max_profiles_per_key" in built.get("settings", {}):
        used["max_profiles_per_key"] = int(built["settings"]["max_profiles_per_key"])
    return used


def _what_changed(con, window: dict) -> str:
    """Which inputs of a step refusing rows differ from those `work/version_inputs` recorded for
    the as-of (the last whole run's): the settings by name and the model code; the rows keep
    only a fingerprint, so what else changed is named as what it may be. An operator whose
    `dagster` command ran without a setting the run before had (README "Settings") saw only
    "other inputs (staged files, erasures, settings or model code)" (a review)."""
    settings, code = _recorded_inputs(con, window["as_of"])
    if settings is None:
        return "the staged files, erasures, settings or model code"
    used = _used_settings(con, window)
    changed = sorted(k for k, v in used.items() if k in settings and settings[k] != v)
    said = []
    if changed:
        said.append(
            f"this run's {', '.join(changed)} differ{'s' * (len(changed) == 1)} from the "
            "value the as-of's inputs were recorded with"
        )
    if code is not None and code != versions.model_code_version():
        said.append("the model code changed since they were recorded")
    return "; ".join(said) or (
        "not the settings nor the model code recorded for the as-of: the staged files or "
        "erasures, or a step run alone with other settings"
    )


def partition_metadata(con, table: str, window: dict) -> dict:
    """`table_metadata` of `work.<table>`, with the row count and preview of this partition.
    Counted and previewed in SQL: reading the partition back (1M rows at 1M customers) cost
    about 0.7 CPU-s a step for a number and five rows."""
    metadata = table_metadata(con, "work", table)
    rows, first_rows = partitioned.partition_summary(
        con, "work", table, window["as_of"], preview_rows=PREVIEW_ROWS
    )
    metadata["dagster/row_count"] = dg.MetadataValue.int(rows)
    metadata["preview"] = preview(first_rows)
    metadata["as_of"] = str(window["as_of"])
    metadata["as_of_pinned"] = bool(window["as_of_pinned"])
    return metadata


BUYER_DAYS_KEY = work_key(summaries.BUYER_DAYS)
# assets/publish.py: not materialized when a version of the as-of has the same inputs, which
# skips every step after it
VERSION_INPUTS_KEY = work_key("version_inputs")


@dg.asset(
    key=BUYER_DAYS_KEY,
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[staging_key("orders"), staging_key("fx_rates"), IDENTITY_KEY],
)
def buyer_days(model_settings: ModelSettings, warehouse: Warehouse) -> dg.MaterializeResult:
    """Completed orders per customer and order day in the reporting currency, every staged day."""
    cfg = model_settings.resolved()
    with warehouse.get_connection() as con:
        require_identity_links(con)
        now = incremental.inputs(
            con, summaries.buyer_days_settings(cfg.currency, cfg.fx_rates_json)
        )
        plan = summaries.refresh_buyer_days(
            con,
            now,
            currency=cfg.currency,
            fx_rates=json.loads(cfg.fx_rates_json or "{}"),
        )
        metadata = table_metadata(con, "work", summaries.BUYER_DAYS)
        totals = con.execute(load_sql("work/buyer_days_totals")).fetchone()
    computation = plan.metadata()
    if plan.incremental and not plan.new_files:
        computation["computation"] = "unchanged"
    metadata.update(
        {
            **computation,
            "buyers": int(totals[0]),
            "completed_orders": int(totals[1]),
            "first_order_day": str(totals[2]),
            "last_order_day": str(totals[3]),
            "currency": str(cfg.currency),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


def buyer_days_behind(con, window: dict) -> str | None:
    """Why `work.buyer_days` does not hold the orders as staged now, with this window's
    currency and FX rates, or None when it does."""
    settings = summaries.buyer_days_settings(window["currency"], window["fx_rates"])
    return summaries.buyer_days_problem(con, incremental.inputs(con, settings))


def require_buyer_days(con, window: dict) -> None:
    """A plain failure when `work.buyer_days` does not hold the orders as staged now."""
    problem = buyer_days_behind(con, window)
    if problem is not None:
        raise dg.Failure(f"{problem}: " + whole_month(window))


@dg.asset(
    key=work_key("customer_summary"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb"},
    deps=[
        BUYER_DAYS_KEY,
        staging_key("orders"),
        staging_key("fx_rates"),
        IDENTITY_KEY,
        VERSION_INPUTS_KEY,
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "orders_left_out_within_limit",
            asset=work_key("customer_summary"),
            partitions_def=monthly_as_of,
            blocking=True,
            description=(
                "At most "
                f"{summaries.MAX_ORDERS_LEFT_OUT_SHARE:.0%} of completed orders are left out "
                "of the value models for want of an FX rate into the reporting currency."
            ),
        )
    ],
)
def customer_summary(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """Per-customer purchase summary (x, t_x, T, spend) from completed orders up to the as-of."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        require_identity_links(con, window)
        require_buyer_days(con, window)
        plan, now = incremental_plan(con, "customer_summary", window)
        if plan.incremental:
            summary, recomputed = summaries.customer_summary_since(
                con, plan.previous_as_of, plan.new_files, window["as_of"]
            )
        else:
            summary = summaries.customer_summary(con, window["as_of"], stored=True)
            recomputed = summary.height
        left_out, completed = summaries.orders_left_out(con, window["as_of"], **money(window))
        people = (
            summaries.left_out_customer_counts(
                summaries.customers_left_out(
                    con, window["as_of"], **money(window), left_out=left_out
                ),
                summary["customer_id"],
            )
            if left_out  # no order left out, nobody to look for: no second pass
            else None
        )
        state = incremental.record(con, "customer_summary", window["as_of"], now, summary.height)
        checks = [left_out_check(left_out, completed, window["currency"], people)]
        metadata = write_work(con, "customer_summary", summary, window, also=state, checks=checks)
    repeat = int((summary["frequency"] > 0).sum()) if summary.height else 0
    metadata.update(
        {
            **plan.metadata(),
            "customers_recomputed": recomputed,
            "calibration_end": str(window["calibration_end"]),
            "buyers": summary.height,
            "repeat_buyers": repeat,
            "currency": window["currency"],
            "orders_left_out_no_fx_rate": dg.MetadataValue.json(left_out),
            **(people or {"customers_left_out": 0, "customers_partly_left_out": 0}),
        }
    )
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


def _left_out_people_words(people: Mapping[str, int]) -> str:
    """Whom the left-out orders are of, in words (empty when they are of nobody counted)."""
    alone, partly = people["customers_left_out"], people["customers_partly_left_out"]
    said = []
    if alone:
        said.append(
            f"{alone} customer(s) with no other completed order get no RFM segment (not "
            "Prospect: they bought) and no CLV (a buyer among them without a customer profile "
            "has no row in the marts at all)"
        )
    if partly:
        said.append(f"{partly} customer(s) are valued on their other orders only")
    return "".join(f"{s}; " for s in said)


def left_out_check(
    left_out: dict[str, int],
    completed: int,
    currency: str,
    people: Mapping[str, int] | None = None,
) -> dg.AssetCheckResult:
    """`orders_left_out_within_limit` of either engine: the completed orders left out of the
    value models for want of an FX rate (per currency), against all completed orders, and the
    customers they are of (`people`, `summaries.left_out_customer_counts`; None: none left out):
    those with no other order get no RFM segment, and are no prospects either."""
    n_left_out = sum(left_out.values())
    people = dict(people or {"customers_left_out": 0, "customers_partly_left_out": 0})
    share = n_left_out / completed if completed else 0.0
    by_currency = ", ".join(f"{c} {n}" for c, n in left_out.items())
    passed = share <= summaries.MAX_ORDERS_LEFT_OUT_SHARE
    # How to take them in: a run of the whole graph; a failed check is told why a
    # re-execution from it would not do (a passed one has no failure to re-execute from).
    again = (
        ", then run again (the next scheduled run takes them in)"
        if passed
        else ", then run the whole graph again (in the UI: re-execute all steps; the currencies "
        "are converted in an earlier step, so a re-execution from this failure stops there)"
    )
    return dg.AssetCheckResult(
        check_name="orders_left_out_within_limit",
        passed=passed,
        metadata={
            "orders_left_out": n_left_out,
            "completed_orders": completed,
            "share_left_out": share,
            "by_currency": dg.MetadataValue.json(left_out),
            **people,
        },
        description=(
            f"{n_left_out} of {completed} completed orders left out: no FX rate into {currency} "
            f"({by_currency}); "
            + _left_out_people_words(people)
            + "add them to the fx_rates export or ENGAGEMENT_FX_RATES"
            + (
                # a shop selling in one currency only (a review): report in it, no rate needed
                f", or report in {next(iter(left_out))} (ENGAGEMENT_CURRENCY="
                f"{next(iter(left_out))}: every completed order is in it)"
                if n_left_out == completed and len(left_out) == 1
                else ""
            )
            + again
            if n_left_out
            else "no completed order left out"
        ),
    )


@dg.asset(
    key=work_key("customer_rfm"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "polars"},
    deps=[work_key("customer_summary"), IDENTITY_KEY],
)
def customer_rfm(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """RFM scores (1-5 by quintile, equal values share a score) and named segments per customer."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        summary = read_work(con, "customer_summary", window)
        require_identity_links(con, window)  # the people below are the merged profiles of now
        # One row per person (merged profiles), signed up by the as-of date (their earliest signup).
        customers = con.execute(
            load_sql("intermediate/customers_signed_up_by"), {"as_of": window["as_of"]}
        ).pl()["customer_id"]
        # Buyers whose orders the summary left out for want of an FX rate are no prospects.
        left_out = summaries.customers_left_out(con, window["as_of"], **money(window))
        scored = rfm.score_rfm(
            summary, window["as_of"], customers=customers, left_out=left_out["customer_id"]
        )
        scored = scored.with_columns(
            pl.col("segment").cast(pl.String), pl.lit(window["as_of"]).alias("as_of")
        )
        metadata = write_work(con, "customer_rfm", scored, window)
    counts = {str(k): int(v) for k, v in rfm.segment_counts(scored).items()}
    metadata["segments"] = dg.MetadataValue.json(counts)
    # the people with completed orders the step has no row for (segment NULL in marts.customer)
    metadata.update(summaries.left_out_customer_counts(left_out, summary["customer_id"]))
    metadata["segment_sizes"] = png_markdown(reports.segment_sizes_png(counts), "segment sizes")
    return dg.MaterializeResult(metadata=metadata)


# The columns of customer_summary that scoring reads: the customer and `model_inputs`.
SCORED_COLUMNS = ("customer_id", "frequency", "recency_days", "T_days", "monetary_value")


def model_inputs(frame: pl.DataFrame, unit: str) -> tuple[np.ndarray, ...]:
    """(x, t_x, T, m) of a summary in the model's time unit."""
    return (
        frame["frequency"].to_numpy(),
        summaries.to_time_unit(frame["recency_days"].to_numpy(), unit),
        summaries.to_time_unit(frame["T_days"].to_numpy(), unit),
        frame["monetary_value"].cast(pl.Float64).to_numpy(),
    )


@dg.asset(
    key=work_key("calibration_holdout"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb"},
    deps=[BUYER_DAYS_KEY, IDENTITY_KEY, VERSION_INPUTS_KEY],
)
def calibration_holdout(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """Calibration-window summary per customer and their repeat purchases in the holdout (what
    the purchase model is chosen on; no rows when a choice made earlier is in force)."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        require_identity_links(con, window)
        require_buyer_days(con, window)
        in_force = choice.choice_in_force(con, window)
        if in_force.carried:
            # Nothing reads this as-of's holdout: the fits and the comparison are carried. The
            # as-of is written with no rows, so that it is the table's newest and retention may
            # trim the earlier one with every other table's (versions.trim_work).
            if table_exists(con, "work", "calibration_holdout"):
                empty = con.execute(load_sql("work/empty_calibration_holdout")).pl()
                write_work(con, "calibration_holdout", empty, window)
            return dg.MaterializeResult(
                metadata={
                    **in_force.metadata(),
                    "computation": "skipped",
                    "computation_reason": f"model choice carried: {in_force.reason}",
                    "dagster/row_count": dg.MetadataValue.int(0),
                    "as_of": str(window["as_of"]),
                    "calibration_end": str(window["calibration_end"]),
                }
            )
        plan, now = incremental_plan(con, "calibration_holdout", window)
        previous_end = _date(plan.previous.get("calibration_end"))
        if plan.incremental and (previous_end is None or previous_end > window["calibration_end"]):
            plan = incremental.Plan(
                False,
                f"the calibration end moved back from {previous_end} to "
                f"{window['calibration_end']}: computed in full",
            )
        if plan.incremental:
            cal, recomputed = summaries.calibration_holdout_since(
                con,
                plan.previous_as_of,
                previous_end,
                plan.new_files,
                window["calibration_end"],
                window["as_of"],
            )
        else:
            cal = summaries.calibration_holdout(
                con, window["calibration_end"], window["as_of"], stored=True
            )
            recomputed = cal.height
        state = incremental.record(
            con,
            "calibration_holdout",
            window["as_of"],
            now,
            cal.height,
            calibration_end=window["calibration_end"],
        )
        metadata = write_work(con, "calibration_holdout", cal, window, also=state)
    metadata.update(
        {
            **plan.metadata(),
            "customers_recomputed": recomputed,
            "calibration_end": str(window["calibration_end"]),
            "holdout_purchases": int(cal["holdout_purchases"].sum()) if cal.height else 0,
        }
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=work_key("model_fit"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "python"},
    deps=[work_key("customer_summary"), work_key("calibration_holdout")],
    check_specs=[
        dg.AssetCheckSpec(
            "fits_converged",
            asset=work_key("model_fit"),
            partitions_def=monthly_as_of,
            blocking=True,
            description=(
                "The chosen purchase model and Gamma-Gamma converged to finite parameters on the "
                "calibration and the full window."
            ),
        )
    ],
)
def model_fit(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma fits on both windows; the model chosen (or
    the chosen model and Gamma-Gamma on the full window while an earlier choice is in force)."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        unit = window["time_unit"]
        in_force = choice.choice_in_force(con, window)
        full = read_work(con, "customer_summary", window)
        fits, correlations, inputs = {}, {}, {}
        starts, started_from = earlier_fits(con, window)
        pinned = window["purchase_model"]
        windows = [("full", full)]
        if not in_force.carried:
            windows.append(("calibration", read_work(con, "calibration_holdout", window)))
        with fitting.one_blas_thread():  # half the step's CPU: see its docstring
            for name, frame in windows:
                x, t_x, T, m = inputs[name] = model_inputs(frame, unit)
                fits[name] = value_marts.purchase_fits(
                    x,
                    t_x,
                    T,
                    unit,
                    window["penalizer"],
                    starts=starts.get(name),
                    models=(in_force.model,) if in_force.carried else purchase_models.MODEL_NAMES,
                )
                fits[name]["gamma_gamma"] = fitting.fit_gamma_gamma(
                    x,
                    m,
                    penalizer=window["penalizer"],
                    raise_on_failure=False,
                    start=starts.get(name, {}).get("gamma_gamma"),
                )
                corr = scoring.frequency_spend_correlation(x, m)
                correlations[name] = {"pearson": corr.pearson, "spearman": corr.spearman}
            if in_force.carried:  # the choosing as-of's calibration fits, as they were stored
                comparison, chosen, reason = None, in_force.model, in_force.reason
                carried = partitioned.read_partition(
                    con, "work", "model_fit", in_force.carried_from
                ).filter(pl.col("window") == "calibration")
                fits["calibration"] = _fits_of_rows(carried)
            else:
                calibration_fits = {
                    k: v for k, v in fits["calibration"].items() if k != "gamma_gamma"
                }
                comparison, reason = value_marts.comparison(
                    windows[1][1], unit, pinned, calibration_fits
                )
                chosen = comparison.chosen if comparison else None
        ends = {"full": window["as_of"], "calibration": window["calibration_end"]}
        choice_as_of = in_force.choice_as_of or window["as_of"]
        choice_reason = reason if chosen else None
        if in_force.carried:
            # Why the model is in force: the reason given when it was chosen, kept verbatim.
            given = carried.get_column("choice_reason", default=pl.Series([], dtype=pl.String))
            choice_reason = given.drop_nulls().first() or reason
            carried = carried.with_columns(choice_reason=pl.lit(choice_reason, dtype=pl.String))
        frame = value_marts.fit_table(
            {"full": fits["full"]} if in_force.carried else fits,
            ends,
            unit,
            chosen,
            correlations["full"],
            choice_as_of,
            choice_reason=choice_reason,
        )
        if in_force.carried:
            frame = pl.concat([frame, carried.select(frame.columns)], how="vertical_relaxed")
        failed = [] if chosen else [f"no purchase model chosen: {reason}"]
        failed += [
            f"{fit.model} ({name} window): {fit.message or fit.reason}"
            for name, by_model in fits.items()
            for fit in by_model.values()
            if fit.model in (chosen, "gamma_gamma") and not fit.converged
        ]
        if not failed:
            failed = _unbounded_uncertainty(chosen, fits["full"], *inputs["full"])
        # Only a choice whose fits converged is carried to later as-ofs.
        recorded = choice.record_choice(con, window, in_force, None if failed else chosen)
        check = dg.AssetCheckResult(
            check_name="fits_converged",
            passed=not failed,
            metadata={"failures": dg.MetadataValue.json(failed), "chosen_model": chosen or "none"},
            description=(
                _failed_fits_words(
                    failed,
                    full,
                    window,
                    later_orders=(incremental.last_completed_order_day(con) or window["as_of"])
                    > window["as_of"],
                )
                if failed
                else f"{chosen} and gamma_gamma converged"
            ),
        )
        metadata = write_work(con, "model_fit", frame, window, also=recorded, checks=[check])

    metadata.update(in_force.metadata())
    if chosen:  # a choice made now is of this as-of (`in_force` knows a carried one's only)
        metadata["model_chosen_as_of"] = str(choice_as_of)
    # The CLI's path column and its list of what a daily run computed in full read these.
    metadata["computation"] = "carried" if in_force.carried else "chosen"
    metadata["computation_reason"] = in_force.reason
    for name, by_model in fits.items():
        for model, fit in by_model.items():
            metadata[f"{model}_{name}"] = dg.MetadataValue.json(fit.as_metadata())
    metadata["chosen_model"] = chosen or "none"
    metadata["fits_started_from"] = (
        f"the fits as of {started_from} (BG/NBD, Gamma-Gamma)"
        if any(starts.get(name) for name, _ in windows)
        else "fits on a sample of the rows"
    )
    # Every fit at a glance: the generic preview showed 5 of the 8 rows, 25 columns with JSON.
    metadata["preview"] = dg.MetadataValue.md(markdown_table(frame.select(FIT_PREVIEW_COLUMNS)))
    metadata["choice_reason"] = reason
    metadata["choice_pinned"] = pinned is not None
    if comparison is not None:
        metadata["holdout_comparison"] = dg.MetadataValue.md(markdown_table(comparison.models))
    metadata["frequency_spend_correlation"] = dg.MetadataValue.json(correlations)
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _unbounded_uncertainty(
    chosen: str, fits: Mapping[str, fitting.FitResult], x, t_x, T, m
) -> list[str]:
    """The full window's fits whose likelihood is flat at their parameters (a fit that stopped
    near a boundary, e.g. one month of orders with a short holdout): customer_value's ranges
    come from the parameters' covariance, which such a fit does not have. The check passed
    them and customer_value failed with numpy's "Matrix is not positive definite" (a review).
    0.3-0.5 CPU-s at 1M customers."""
    try:
        with fitting.one_blas_thread():
            uncertainty.log_param_covariance(chosen, fits[chosen].params, x, t_x, T)
            uncertainty.gamma_gamma_log_covariance(fits["gamma_gamma"].params, x, m)
    except fitting.ModelFitError as error:
        return [f"{error.model} (full window): {error.message}"]
    return []


def _failed_fits_words(
    failed: list[str], full: pl.DataFrame, window: dict, later_orders: bool = True
) -> str:
    """Why the fits failed and what to do: too little data first; a calibration window with no
    buyer is the calibration end's (before the first order: the advice about outliers and FX
    rates sent users to their exports); else the orders' values. `later_orders`: whether
    completed orders are staged after the as-of (else no later month has more to model); an
    as-of pinned by ENGAGEMENT_AS_OF is every month's, so the way to later orders is the pin."""
    pinned = bool(window.get("as_of_pinned"))
    said = _too_few(full, window["as_of"], later_orders, pinned) + "; ".join(failed)
    span = _history_days(full)
    # A holdout shorter than the orders' span leaves buyers in the calibration window; where
    # they span under two days none does (every order on one day: the advice was repeated with
    # ENGAGEMENT_HOLDOUT_DAYS=1, a review).
    holdout_helps = span is None or span >= 2
    if holdout_helps and any("no customer in the calibration window" in f for f in failed):
        end = window["calibration_end"]
        if setting_value("ENGAGEMENT_CALIBRATION_END") is not None:
            return (
                f"{said}. ENGAGEMENT_CALIBRATION_END={end} is before any buyer's first order: "
                "set it later, or unset it (the calibration then ends ENGAGEMENT_HOLDOUT_DAYS "
                "before the as-of), then run the month again"
            )
        return (
            f"{said}. The calibration window ends {end} (ENGAGEMENT_HOLDOUT_DAYS before the "
            "as-of), before any buyer's first order: "
            + (
                "set ENGAGEMENT_AS_OF later (it is every month's as-of), or shorten "
                if pinned and later_orders
                else "run a later month, or shorten "
                if later_orders
                else "shorten "
            )
            + "ENGAGEMENT_HOLDOUT_DAYS"
            + (f" below the {span} days the orders span" if span is not None else "")
        )
    if span is not None and span < SHORT_HISTORY_DAYS:
        # One month of orders, or all on one day: shortening the holdout or looking for
        # outliers (the advice below) cannot help (a review).
        first = window["as_of"] - dt.timedelta(days=span)
        return (
            f"{said}. The orders of the window span only {span} days ({first} to the as-of "
            f"{window['as_of']}): the purchase models learn from the time between a customer's "
            "purchases and after their last one, which needs months of orders: "
            + (
                "set ENGAGEMENT_AS_OF later (it is every month's as-of), or unset it"
                if pinned and later_orders
                else "run a later month (later orders are staged)"
                if later_orders
                else "export a longer history (or wait for one), then run again"
            )
        )
    if _no_dropout(full):
        return (
            said + ". Every customer of the window made a repeat purchase and bought until "
            "near its end: the orders show no customer who stopped buying, which the purchase "
            "models need to estimate dropout. An export filtered to active or repeat customers, "
            "or generated data, looks so: export every customer's orders, then run the month "
            "again"
        )
    penalizer = float(window.get("penalizer") or 0.0)
    if penalizer > 0 and any("boundary" in f for f in failed):
        # ENGAGEMENT_PENALIZER=0.1 on a small shop: Gamma-Gamma's q shrunk under 1 (a review)
        return (
            f"{said}. ENGAGEMENT_PENALIZER={penalizer:g} shrinks every parameter towards 0 "
            "(lifetimes' penalizer): a large one pushes a fit to a boundary. Try a smaller one "
            "(0.001) or none, then run the month again"
        )
    if all(fitting.P_AT_INFINITY in f for f in failed):
        return said  # each names its customers and what to do (`fitting._p_at_infinity`)
    return (
        said + ". Look for outliers and for a currency without its rate in the orders of the "
        "window (a few orders of 1,000s in another currency can push a fit to its boundary), "
        "fix the export or ENGAGEMENT_FX_RATES, then run the month again"
    )


def _no_dropout(full: pl.DataFrame) -> bool:
    """Whether the window's customers show no dropout: no one-time buyer, and their last
    orders on average within 5 % of the window's end (a failed fit's advice about outliers and
    FX rates sent such a user to their exports' values)."""
    if not full.height or not {"frequency", "recency_days", "T_days"} <= set(full.columns):
        return False
    one_time = int((full["frequency"] == 0).sum())
    mean_t = float(full["T_days"].mean() or 0.0)
    return one_time == 0 and mean_t > 0 and float(full["recency_days"].mean()) >= 0.95 * mean_t


# A failed fit on orders spanning fewer days than this is said as too short a history.
SHORT_HISTORY_DAYS = 90


def _history_days(full: pl.DataFrame) -> int | None:
    """Days from the window's first order to its as-of (the longest customer age, T)."""
    if not full.height or "T_days" not in full.columns:
        return None
    return int(full["T_days"].max())


# Below this many repeat buyers a failed fit is said first as too little data: a month near the
# start of the orders (`--month` before most of them) failed with advice about outliers.
FEW_REPEAT_BUYERS = 100


def _too_few(full: pl.DataFrame, as_of, later_orders: bool = True, pinned: bool = False) -> str:
    """The first words of a failed fit's description when the window holds few repeat buyers
    (empty otherwise): how many, and to run a later month where later orders are staged (else
    that the exports hold too few buyers: a small retailer's whole history)."""
    repeat = int((full["frequency"] > 0).sum()) if "frequency" in full.columns else 0
    if repeat >= FEW_REPEAT_BUYERS:
        return ""
    return (
        f"only {full.height} customers have a completed order by {as_of}, {repeat} of them with "
        "a repeat purchase: too few for the purchase models, which is likely why they failed "
        + (
            f"(ENGAGEMENT_AS_OF={as_of} pins every month's as-of: set it later, or unset it). "
            if pinned and later_orders
            else "(run a later month, `engagement-box run --month YYYY-MM`). "
            if later_orders
            else f"(no completed order is staged after {as_of}, so no later month has more: "
            f"the models need the orders of more customers, at least {FEW_REPEAT_BUYERS} of "
            "them with a repeat purchase). "
        )
    )


# The columns of work.model_fit its step's preview shows (the parameters, not their JSON).
FIT_PREVIEW_COLUMNS = (
    "model",
    "window",
    "chosen",
    "converged",
    "r",
    "alpha",
    "a",
    "b",
    "p",
    "q",
    "gamma",
    "log_likelihood",
    "n_customers",
)


def earlier_fits(con, window: dict) -> tuple[dict[str, dict[str, dict]], dt.date | None]:
    """The converged BG/NBD and Gamma-Gamma parameters by window of the latest as-of before this
    one fitted with the same time unit and penalizer, and that as-of ({} and None when there is
    none). The fits polish from them instead of from a fit on a sample of the rows: Newton's
    steps reach the same optimum from either start, to the bit after the last polish from a
    grid point (`fitting._CANONICAL_GRID`), and the sample fits are saved. MBG/NBD and
    Pareto/NBD stop at a step of 1e-6, so their optimum depends on the start: they keep theirs
    (a polish tight enough for warm and cold to agree to 1e-9 costs more evaluations than the
    start saves; docs/BENCHMARKS.md)."""
    if not table_exists(con, "work", "model_fit"):
        return {}, None
    rows = con.execute(
        load_sql("work/earlier_fits"),
        {"as_of": window["as_of"], "unit": window["time_unit"], "penalizer": window["penalizer"]},
    ).fetchall()
    starts: dict[str, dict[str, dict]] = {}
    for _as_of, window_name, model, params in rows:
        starts.setdefault(window_name, {})[model] = json.loads(params)
    return starts, (rows[0][0] if rows else None)


def _stored_fits(con, window_name: str, window: dict) -> dict[str, fitting.FitResult]:
    """The fits of one window as stored in work.model_fit, by model name."""
    rows = read_work(con, "model_fit", window)
    return _fits_of_rows(rows.filter(pl.col("window") == window_name))


def _fits_of_rows(rows: pl.DataFrame) -> dict[str, fitting.FitResult]:
    """Stored rows of work.model_fit as fits, by model name."""
    return {
        row["model"]: fitting.FitResult(
            model=row["model"],
            params=json.loads(row["params"]),
            log_likelihood=row["log_likelihood"],
            n_customers=row["n_customers"],
            n_rows=row["n_rows"],
            fit_seconds=row["fit_seconds"],
            converged=row["converged"],
            message=row["message"] or "",
            time_unit=row["time_unit"],
            penalizer=row["penalizer"],
            reason=row["reason"],
        )
        for row in rows.iter_rows(named=True)
    }


def _chosen_fits(con, window_name: str, window: dict) -> tuple[str, dict, dict]:
    """(chosen model, its parameters, Gamma-Gamma's) of one window of work.model_fit."""
    rows = read_work(con, "model_fit", window).filter(pl.col("window") == window_name)
    chosen = rows.filter(pl.col("chosen") & pl.col("converged"))["model"].to_list()
    fits = _stored_fits(con, window_name, window)
    gg = fits.get("gamma_gamma")
    if len(chosen) != 1 or gg is None or not gg.converged:
        raise dg.Failure(
            f"work.model_fit as of {window['as_of']} has no converged chosen purchase model and "
            f"Gamma-Gamma fit for the {window_name} window: see the fits_converged check"
        )
    return chosen[0], fits[chosen[0]].params, gg.params


@dg.asset(
    key=work_key("customer_value"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "python"},
    deps=[work_key("model_fit"), work_key("customer_summary")],
    check_specs=[
        dg.AssetCheckSpec(
            "values_finite",
            asset=work_key("customer_value"),
            partitions_def=monthly_as_of,
            blocking=True,
            description="No NaN or infinite value in any numeric column.",
        )
    ],
)
def customer_value(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """P(alive), expected purchases (30/90/365 days), order value and CLV, with 10-90% ranges."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        unit = window["time_unit"]
        model, params, gg = _chosen_fits(con, "full", window)
        summary = read_work(con, "customer_summary", window, columns=SCORED_COLUMNS)
        x, t_x, T, m = model_inputs(summary, unit)
        started = time.perf_counter()
        scores = value_marts.score_table(
            summary["customer_id"],
            x,
            t_x,
            T,
            m,
            model=model,
            params=params,
            gamma_gamma=gg,
            unit=unit,
            months=window["clv_horizon_months"],
            monthly_discount_rate=window["monthly_discount_rate"],
            margin=window["margin"],
        )
        scoring_seconds = time.perf_counter() - started
        frame = scores.with_columns(
            pl.lit(model).alias("model"),
            pl.lit(unit).alias("time_unit"),
            pl.lit(window["currency"]).alias("currency"),
            pl.lit(window["as_of"]).alias("as_of"),
        )
        numeric = [c for c, t in frame.schema.items() if t.is_float()]
        bad = {
            c: int((~frame[c].is_finite()).sum()) for c in numeric if (~frame[c].is_finite()).any()
        }
        check = dg.AssetCheckResult(
            check_name="values_finite",
            passed=not bad,
            metadata={"non_finite_by_column": dg.MetadataValue.json(bad)},
            description=(
                "every score and value is a finite number"
                if not bad
                else "scores that are NaN or infinite, per column: "
                + ", ".join(f"{c} {n}" for c, n in bad.items())
                + "; the fits_converged check of work/model_fit says which fit failed"
            ),
        )
        metadata = write_work(con, "customer_value", frame, window, checks=[check])
    metadata.update(
        {
            "model": model,
            "scoring_seconds": round(scoring_seconds, 3),
            money_label("total_clv", window["currency"]): money_value(
                np.nansum(frame["clv"].to_numpy())
            ),
            "mean_p_alive": float(np.nanmean(scores["p_alive"].to_numpy())) if len(x) else 0.0,
            "clv_horizon_months": window["clv_horizon_months"],
        }
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


@dg.asset(
    key=work_key("model_validation"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb", "python"},
    deps=[work_key("model_fit"), work_key("calibration_holdout")],
    check_specs=[
        dg.AssetCheckSpec(
            "holdout_total_within_25pct",
            asset=work_key("model_validation"),
            partitions_def=monthly_as_of,
            description=(
                "The chosen model's predicted holdout repeat purchases within 25% of the actual "
                "total."
            ),
        )
    ],
)
def model_validation(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """Every calibration-window purchase model against the holdout: totals, by frequency, squared
    and absolute errors (the comparison that chose the model in force, carried while an earlier
    choice is used)."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        unit = window["time_unit"]
        chosen, _, _ = _chosen_fits(con, "calibration", window)
        # What work/model_fit did (it recorded the choice after the holdout step asked).
        recorded = choice.recorded_choice(con, window["as_of"])
        if recorded is not None and recorded.carried_from is not None:
            return _carried_validation(con, window, recorded, chosen)
        fits = {
            name: fit
            for name, fit in _stored_fits(con, "calibration", window).items()
            if name in purchase_models.MODEL_NAMES
        }
        cal = read_work(con, "calibration_holdout", window)
        comparison, reason = value_marts.comparison(cal, unit, window["purchase_model"], fits)
        if comparison is None or comparison.chosen != chosen:
            raise dg.Failure(
                f"work.model_fit as of {window['as_of']} chose {chosen}, but the holdout now "
                f"says {comparison.chosen if comparison else reason}: materialize work/model_fit "
                "again"
            )
        table, totals = value_marts.validation_table(
            comparison, window["calibration_end"], window["as_of"]
        )
        metadata = write_work(con, "model_validation", table, window)
    png = selection.comparison_plot_png(
        comparison, title=f"Holdout {window['calibration_end']} .. {window['as_of']}"
    )
    result = comparison.validations[chosen]
    metadata.update(
        {
            "model_choice": "chosen",
            "model_chosen_as_of": str(window["as_of"]),
            "computation": "chosen",
            "computation_reason": recorded.reason if recorded else "chosen on the holdout",
            "chosen_model": chosen,
            "choice_reason": comparison.reason,
            "models": dg.MetadataValue.md(markdown_table(totals)),
            "total_actual": float(result.total_actual),
            "total_predicted": float(result.total_predicted),
            "mae_per_customer": float(result.mae),
            "mse_per_customer": float(result.mse),
            "calibration_plot": png_markdown(
                png, "actual vs predicted holdout purchases by calibration frequency, every model"
            ),
        }
    )
    return _validation_result(
        metadata, chosen, float(result.total_actual), float(result.total_predicted)
    )


def _carried_validation(
    con, window: dict, recorded: choice.RecordedChoice, chosen: str
) -> dg.MaterializeResult:
    """model_validation while an earlier choice is in force: the comparison that made it."""
    fitted = read_work(con, "model_fit", window, columns=("choice_as_of",))
    table = partitioned.read_partition(con, "work", "model_validation", recorded.carried_from)
    if (
        set(fitted["choice_as_of"].to_list()) != {recorded.choice_as_of}
        or chosen != recorded.model
        or not table.height
    ):
        raise dg.Failure(
            f"work.model_fit as of {window['as_of']} does not hold the choice it recorded "
            f"({recorded.model}, chosen as of {recorded.choice_as_of}, carried from "
            f"{recorded.carried_from}): materialize work/model_fit again"
        )
    metadata = write_work(con, "model_validation", table, window)
    totals = table.select(value_marts.VALIDATION_TOTALS).unique().sort("model")
    result = totals.filter(pl.col("model") == chosen).row(0, named=True)
    metadata.update(
        {
            "model_choice": "carried",
            "model_chosen_as_of": str(recorded.choice_as_of),
            "computation": "carried",
            "computation_reason": recorded.reason,
            "chosen_model": chosen,
            "choice_reason": f"carried from {recorded.carried_from}",
            "models": dg.MetadataValue.md(markdown_table(totals)),
            "total_actual": float(result["total_actual"]),
            "total_predicted": float(result["total_predicted"]),
            "mae_per_customer": float(result["mae_per_customer"]),
            "mse_per_customer": (
                float(result["mse_per_customer"])
                if result.get("mse_per_customer") is not None
                else None
            ),
            "calibration_plot": (
                f"in the materialization of work/model_validation as of "
                f"{recorded.choice_as_of}, whose holdout chose the model"
            ),
        }
    )
    return _validation_result(
        metadata, chosen, float(result["total_actual"]), float(result["total_predicted"])
    )


def _validation_result(
    metadata: dict, chosen: str, total_actual: float, total_predicted: float
) -> dg.MaterializeResult:
    """model_validation's result, with its check of the chosen model's holdout total."""
    relative = abs(total_predicted - total_actual) / total_actual if total_actual else float("inf")
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="holdout_total_within_25pct",
                passed=relative <= 0.25,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"relative_error": float(relative), "model": chosen},
                description=(
                    f"{chosen} predicted {total_predicted:,.0f} holdout purchases against "
                    f"{total_actual:,.0f} made ({relative:.1%} off; at most 25%)"
                    + (
                        ""
                        if relative <= 0.25
                        else ": the fitted model does not describe the holdout; look at the "
                        "models table of this step (another ENGAGEMENT_PURCHASE_MODEL, a longer "
                        "calibration window) before trusting this version's expected purchases"
                    )
                ),
            )
        ],
    )


@dg.asset(
    key=work_key("cohort_retention"),
    group_name=GROUP,
    partitions_def=monthly_as_of,
    kinds={"duckdb"},
    # customer_summary: the incremental path takes each customer's cohort from it
    deps=[BUYER_DAYS_KEY, work_key("customer_summary")],
    check_specs=[
        dg.AssetCheckSpec(
            "one_row_per_cohort_month",
            asset=work_key("cohort_retention"),
            partitions_def=monthly_as_of,
            blocking=True,
            description="One row per cohort month and month since the first order, no NULL key.",
        )
    ],
)
def cohort_retention(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_settings: ModelSettings
) -> dg.MaterializeResult:
    """Customers by first-order month and months since: active, orders, revenue, retention."""
    with warehouse.get_connection() as con:
        window = partition_window(context, con, model_settings)
        require_identity_links(con, window)
        require_buyer_days(con, window)
        plan, now = _cohort_plan(con, window)
        recounted_from = None
        if plan.incremental:
            cohorts, recounted_from = summaries.cohort_retention_since(
                con, plan.previous_as_of, plan.new_files, window["as_of"]
            )
        else:
            cohorts = summaries.cohort_retention(con, window["as_of"], stored=True)
        cohorts = cohorts.with_columns(
            pl.lit(window["currency"], dtype=pl.String).alias("currency")
        )
        state = incremental.record(con, "cohort_retention", window["as_of"], now, cohorts.height)
        problems = dictionary.key_problems(cohorts, "cohort_retention")
        check = dg.AssetCheckResult(
            check_name="one_row_per_cohort_month",
            passed=not problems,
            description="; ".join(problems) or "one row per cohort and month",
        )
        metadata = write_work(con, "cohort_retention", cohorts, window, also=state, checks=[check])
    metadata.update(plan.metadata())
    if recounted_from is not None:
        metadata["months_recounted_from"] = str(recounted_from)
    first = cohorts.filter(pl.col("months_since_first_order") == 1)
    metadata.update(
        {
            "cohorts": int(cohorts["cohort_month"].n_unique()) if cohorts.height else 0,
            money_label("total_revenue", window["currency"]): money_value(cohorts["revenue"].sum()),
            "month_1_retention_share": float(
                first["active_customers"].sum() / first["cohort_customers"].sum()
            )
            if first.height and first["cohort_customers"].sum()
            else 0.0,
        }
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _cohort_plan(con, window: dict) -> tuple[incremental.Plan, dict]:
    """`incremental_plan` of the cohort retention; its incremental path also needs this as-of's
    customer summary computed from the same inputs (the cohorts come from it), else it is cold."""
    plan, now = incremental_plan(con, "cohort_retention", window)
    if plan.incremental and not incremental.computed_from(
        con, "customer_summary", window["as_of"], now
    ):
        return incremental.Plan(
            False,
            "the customer summary of this as-of is not computed from the same inputs: "
            "computed in full",
        ), now
    return plan, now


value_assets = [
    buyer_days,
    customer_summary,
    calibration_holdout,
    cohort_retention,
    customer_rfm,
    model_fit,
    customer_value,
    model_validation,
]
