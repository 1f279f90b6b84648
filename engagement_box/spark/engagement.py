"""The engagement marts on Spark: engagement_value (social points, CRV, CIV, CKV, CEV, the CLV x CRV
quadrant), customer_persona and persona_profile (`spark/personas.py`), and customer.

The formulas are the DuckDB engine's own functions (`engagement_box/engagement/`), run where they
can run:
- per customer, or per key: the same polars function on each Arrow batch (`mapInArrow`); a
  function that groups by a key (points per actor, CKV per author, outcomes per referee, values
  per referrer) gets whole partitions after a repartition by that key (`per_key`).
- population statistics on the driver, from small grouped rows Spark computes: the share of
  referees who would have joined anyway, the credibility kappa, the referral-rate fit (from the
  distinct (referrals, exposure days) rows with their counts), the quadrant cuts (exact order
  statistics, `exact_quantile`). Each is handed back to the per-batch code.
- CIV: S = beta W + beta^2 W^2 as joins over the reaction edges, two hops, never building W^2
  (`influence`). The one formula written for Spark: scipy's sparse products do not distribute.
- the customer mart: `sql/work/customer.sql`, transpiled, over the work tables.
No Dagster import here.
"""

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, time

import polars as pl
import pyarrow as pa

from engagement_box.engagement import coverage, metrics, quadrants, referral
from engagement_box.engagement.config import EngagementSettings
from engagement_box.engagement.knowledge import customer_knowledge_value
from engagement_box.spark.sql import load_spark_sql, run
from engagement_box.spark.tables import SparkTables

ENGAGEMENT_MARTS = ("engagement_value", "customer_persona", "persona_profile", "customer")


def _arrow_schema(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema)


def _batches(frame: pl.DataFrame, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    if frame.height:
        table = frame.select(schema.names).to_arrow(compat_level=pl.CompatLevel.oldest())
        yield from table.cast(schema).to_batches()


def _struct(schema):
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(schema) if isinstance(schema, str) else schema


def per_batch(frame, fn: Callable[[pl.DataFrame], pl.DataFrame], schema):
    """`fn` (polars in, polars out) on each Arrow batch of `frame`: for per-customer code.
    `schema`: the output's, a DDL string or a StructType."""
    schema = _struct(schema)
    out = _arrow_schema(schema)

    def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _batches(fn(pl.from_arrow(pa.Table.from_batches([batch]))), out)

    return frame.mapInArrow(apply, schema)


def per_key(frame, key: str, fn: Callable[[pl.DataFrame], pl.DataFrame], schema):
    """`fn` on all the rows of each partition after repartitioning `frame` by `key`: every
    key's rows reach one call, so code that groups by the key runs unchanged."""
    schema = _struct(schema)
    out = _arrow_schema(schema)

    def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        parts = [pa.Table.from_batches([b]) for b in batches]
        if parts:
            yield from _batches(fn(pl.from_arrow(pa.concat_tables(parts))), out)

    return frame.repartition(key).mapInArrow(apply, schema)


ALL_TO_DRIVER = 100_000  # up to this many values, a quantile's input is sorted on the driver


def exact_quantile(frame, column: str, q: float) -> float | None:
    """The `q` quantile of `column` (linear interpolation between order statistics, as polars'
    `quantile(q, "linear")`), exactly. Up to ALL_TO_DRIVER values, polars takes them all; above,
    Spark finds a narrow range of values around the two ranks with an approximate quantile,
    counts the rows below it, and only the rows inside it reach the driver. None when there
    are no rows."""
    from pyspark.sql import functions as F

    values = frame.select(F.col(column).cast("double").alias("v")).filter(F.col("v").isNotNull())
    first = [r[0] for r in values.limit(ALL_TO_DRIVER + 1).collect()]
    if len(first) <= ALL_TO_DRIVER:  # few enough: every value, in one job
        return float(pl.Series(first, dtype=pl.Float64).quantile(q, "linear")) if first else None
    n = values.count()
    position = q * (n - 1)
    lower, upper = math.floor(position), math.ceil(position)
    error = 0.001
    low, high = values.approxQuantile(
        "v", [max(0.0, q - 2 * error), min(1.0, q + 2 * error)], error
    )
    below, inside = values.agg(
        F.sum((F.col("v") < low).cast("long")), F.sum(F.col("v").between(low, high).cast("long"))
    ).first()
    below, inside = int(below or 0), int(inside or 0)
    if below <= lower and upper < below + inside:
        window = sorted(r[0] for r in values.filter(F.col("v").between(low, high)).collect())
    else:  # the approximate bracket missed a rank (it should not): take every value
        below, window = 0, sorted(r[0] for r in values.collect())
    lo, hi = window[lower - below], window[upper - below]
    return float(pl.Series([lo, hi]).quantile(position - lower, "linear"))


def source_coverage(tables: SparkTables, as_of: date) -> list[coverage.Coverage]:
    """Each engagement source's staged rows up to the end of `as_of` and its newest, from the
    lake (the DuckDB engine's query: `coverage.coverage`)."""
    (query,) = load_spark_sql("intermediate/engagement_source_coverage")
    rows = run(tables.spark, query.sql, {"until": coverage.until_of(as_of)}).collect()
    return coverage.from_rows(tuple(row) for row in rows)


def _resolved(tables: SparkTables, source: str):
    return tables.run([f"intermediate/resolved_{source}"])


def social_points(social, settings: EngagementSettings):
    """customer_id, social_points and one column per platform: `metrics.social_points` per
    partition of the actors."""
    from engagement_box.staging.contracts import SOCIAL_PLATFORMS

    columns = ", ".join(f"social_points_{p} double" for p in SOCIAL_PLATFORMS)
    return per_key(
        social.filter("actor_customer_id IS NOT NULL"),
        "actor_customer_id",
        lambda f: metrics.social_points(f, settings),
        f"customer_id string, social_points double, {columns}",
    )


def knowledge_value(reviews, settings: EngagementSettings):
    """`knowledge.customer_knowledge_value` per partition of the review authors."""
    return per_key(
        reviews.filter("customer_id IS NOT NULL"),
        "customer_id",
        lambda f: customer_knowledge_value(f, settings),
        "customer_id string, ckv_reviews double, review_count bigint, ckv_ideas double",
    )


def influence(social, clv, settings: EngagementSettings, customers=None):
    """CIE and the CIV ledger (`influence.customer_influence_value`) by joins: W from the
    reaction edges (among `customers` when given, as `influence.network_among`), then row and
    column sums of S = b W + b^2 W^2, diag(W^2), and W (W v), each a join of W with a
    per-customer vector. Nothing of size W^2 is built."""
    from pyspark.sql import functions as F

    if settings.civ_max_order > 2:
        raise ValueError(
            "the Spark engine computes influence over 1 or 2 hops (civ_max_order); "
            f"{settings.civ_max_order} would need W^n, which it never builds"
        )
    weights = settings.civ_event_weights
    weight = (
        F.coalesce(
            F.try_element_at(
                F.create_map(*[F.lit(x) for kv in dict(weights).items() for x in kv]),
                F.col("event_type"),
            ).cast("double"),
            F.lit(0.0),
        )
        if weights
        else F.lit(1.0)
    )
    reactions = (
        social.filter(
            F.col("event_type").isin(list(settings.civ_reaction_types))
            & F.col("actor_customer_id").isNotNull()
            & F.col("target_customer_id").isNotNull()
            & (F.col("actor_customer_id") != F.col("target_customer_id"))
        )
        .select(
            F.col("target_customer_id").alias("i"),
            F.col("actor_customer_id").alias("j"),
            weight.alias("w"),
        )
        .filter(F.col("w") > 0)
    )
    if customers is not None:
        ids = customers.select(F.col("customer_id").alias("id"))
        reactions = reactions.join(ids.withColumnRenamed("id", "i"), "i", "left_semi").join(
            ids.withColumnRenamed("id", "j"), "j", "left_semi"
        )
    raw = reactions.groupBy("i", "j").agg(F.sum("w").alias("w"))
    total = raw.groupBy("j").agg(F.sum("w").alias("total"))
    # W_ij = raw_ij * (1 / j's total), as the sparse code scales each entry
    W = (
        raw.join(total, "j")
        .select("i", "j", (F.col("w") * (F.lit(1.0) / F.col("total"))).alias("W"))
        .localCheckpoint()
    )
    if W.isEmpty():
        return None
    beta = settings.civ_beta
    b2 = beta**2 if settings.civ_max_order == 2 else 0.0
    nodes = W.select(F.col("i").alias("id")).union(W.select(F.col("j").alias("id"))).distinct()

    def by(frame, key: str, value, name: str):
        return frame.groupBy(F.col(key).alias("id")).agg(F.sum(value).alias(name))

    def times(vector, name: str, out: str):
        """(W v)_i = sum_k W_ik v_k, for a vector (id, name)."""
        joined = W.join(vector.withColumnRenamed("id", "j"), "j")
        return by(joined, "i", F.col("W") * F.col(name), out)

    def times_t(vector, name: str, out: str):
        """(W^T v)_j = sum_i W_ij v_i."""
        joined = W.join(vector.withColumnRenamed("id", "i"), "i")
        return by(joined, "j", F.col("W") * F.col(name), out)

    def on_nodes(*vectors):
        frame = nodes
        for v in vectors:
            frame = frame.join(v, "id", "left")
        return frame.fillna(0.0)

    w1 = by(W, "i", F.col("W"), "w1")  # sum_j W_ij
    c1 = by(W, "j", F.col("W"), "c1")  # sum_i W_ij
    back = W.select(F.col("j").alias("i"), F.col("i").alias("j"), F.col("W").alias("Wback"))
    diag = by(W.join(back, ["i", "j"]), "i", F.col("W") * F.col("Wback"), "d")  # diag(W^2)
    terms = on_nodes(
        w1, c1, diag, times(on_nodes(w1), "w1", "Ww1"), times_t(on_nodes(c1), "c1", "Wtc1")
    )
    clv_of = clv.select(F.col("customer_id").alias("id"), F.col("clv").cast("double"))
    terms = (
        terms.join(clv_of, "id", "left")
        .select(
            "id",
            (F.lit(beta) * F.col("w1") + F.lit(b2) * F.col("Ww1")).alias("row_sum"),
            (F.lit(beta) * F.col("c1") + F.lit(b2) * F.col("Wtc1")).alias("col_sum"),
            (F.lit(b2) * F.col("d")).alias("diag"),
            (
                F.lit(settings.civ_attribution_share)
                * F.greatest(F.coalesce(F.col("clv"), F.lit(0.0)), F.lit(0.0))
            ).alias("movable"),
        )
        .withColumn("col_off", F.col("col_sum") - F.col("diag"))
        .withColumn("influenced", F.col("col_off") > F.lit(1e-15))
        .withColumn(
            "v", F.when(F.col("influenced"), F.col("movable") / F.col("col_off")).otherwise(0.0)
        )
        .localCheckpoint()
    )
    # loops do not count: i's influence over others, a share of everyone's over others
    terms = terms.withColumn("row_off", F.greatest(F.col("row_sum") - F.col("diag"), F.lit(0.0)))
    grand = terms.agg(F.sum("row_off")).first()[0]
    Wv = times(terms.select("id", "v"), "v", "Wv")
    WWv = times(on_nodes(Wv), "Wv", "WWv")
    out = terms.join(Wv, "id", "left").join(WWv, "id", "left").fillna(0.0, ["Wv", "WWv"])
    gained = (
        F.lit(beta) * F.col("Wv") + F.lit(b2) * F.col("WWv") - F.col("diag") * F.col("v")
    ).alias("civ_gained")
    ceded = F.when(F.col("influenced"), F.col("movable")).otherwise(0.0).alias("civ_ceded")
    cie = (F.col("row_off") / F.lit(grand)) if grand and grand > 0 else F.lit(0.0)
    return out.select(F.col("id").alias("customer_id"), cie.alias("cie"), gained, ceded).withColumn(
        "civ", F.col("civ_gained") - F.col("civ_ceded")
    )


CREDITED_SCHEMA = (
    "referral_id string, referrer_customer_id string, referee_customer_id string, "
    "referred_at timestamp_ntz, converted_at timestamp_ntz, referee_clv double, rewards double, "
    "p_type2 double, value double, recent boolean"
)


def referral_value(
    spark,
    referrals,
    clv,
    customers,
    customer_since,
    settings: EngagementSettings,
    as_of: date,
    sent_after_as_of: int = 0,
):
    """(CRV per customer, what the referral steps said): outcomes per referee partition
    (`referral.referral_outcomes`, with the count of referrals `sent_after_as_of`, which the
    caller left out), the share of type-two referees and the credited referrals'
    values (`referral.credited_referrals`), each referrer's statistics (`referrer_stats`), kappa
    and the referral-rate fit on the driver from grouped rows, then `referral_values` per batch."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    by_referee = (
        referrals.join(
            clv.select(
                F.col("customer_id").alias("referee_customer_id"),
                F.col("clv").cast("double").alias("_referee_clv"),
            ),
            "referee_customer_id",
            "left",
        )
        .join(  # when the referee became a customer (`referral.with_referee_since`)
            customer_since.select(
                F.col("customer_id").alias("referee_customer_id"),
                F.col("since").alias("referee_since"),
            ),
            "referee_customer_id",
            "left",
        )
        .join(  # when the referee first sent a referral (`referral.with_referee_sent_first`)
            referrals.where(F.col("referrer_customer_id").isNotNull())
            .groupBy(F.col("referrer_customer_id").alias("referee_customer_id"))
            .agg(  # in `referral._id_order`: the shorter id first, then in text order
                F.min(
                    F.struct(
                        "referred_at",
                        F.char_length("referral_id").alias("_length"),
                        "referral_id",
                    )
                ).alias("_sent")
            )
            .select(
                "referee_customer_id",
                F.col("_sent.referred_at").alias(referral.SENT_FIRST),
                F.col("_sent.referral_id").alias(referral.SENT_FIRST_ID),
            ),
            "referee_customer_id",
            "left",
        )
    ).localCheckpoint()
    # every referral with its outcome (the rules need all of a referee's referrals at once)
    judged = StructType(
        [
            *by_referee.schema.fields,
            StructField("rewards", DoubleType()),
            StructField("outcome", StringType()),
        ]
    )
    outcomes = per_key(
        by_referee,
        "referee_customer_id",
        lambda f: referral.referral_outcomes(f, as_of),
        judged,
    ).localCheckpoint()
    counted = outcomes.groupBy("outcome").agg(
        F.count("*").alias("n"),
        F.sum(F.col("would_have_joined_anyway").cast("double")).alias("yes"),
        F.count("would_have_joined_anyway").alias("answered"),
        F.min("referred_at").alias("first"),
    )
    counts = {r["outcome"]: r for r in counted.collect()}
    outcome_counts = {
        **{o: int(counts[o]["n"]) if o in counts else 0 for o in referral.REFERRAL_OUTCOMES},
        referral.SENT_AFTER_AS_OF: sent_after_as_of,
    }
    share = settings.crv_unknown_type2_share
    if share is None:
        credited_row = counts.get("credited")
        answered = int(credited_row["answered"]) if credited_row else 0
        share = float(credited_row["yes"]) / answered if answered else 0.5
    programme = min((r["first"] for r in counts.values() if r["first"] is not None), default=None)
    fixed = replace(settings, crv_unknown_type2_share=share)

    def credit(frame: pl.DataFrame) -> pl.DataFrame:
        lookup = frame.select(
            pl.col("referee_customer_id").alias("customer_id"), pl.col("_referee_clv").alias("clv")
        ).filter(pl.col("clv").is_not_null())
        lookup = lookup.unique(subset="customer_id", keep="first")
        return referral.credited_referrals(frame.drop("_referee_clv"), lookup, fixed, as_of)

    # the credited referrals are one per referee: judged again alone, they stay credited, so
    # their values are computed per batch, with no second shuffle
    credited = per_batch(
        outcomes.filter(F.col("outcome") == "credited").drop("rewards", "outcome"),
        credit,
        CREDITED_SCHEMA,
    ).localCheckpoint()
    # the referrals that value a future one (`referral.valued_referrals`): the recent ones, or
    # all when none is recent
    recent = credited.agg(F.count(F.when(F.col("recent"), 1))).first()[0] > 0
    credited = credited.withColumn("valued", F.col("recent") if recent else F.lit(True))
    per_referrer = per_key(
        credited,
        "referrer_customer_id",
        referral.referrer_stats,
        "customer_id string, n bigint, n_valued bigint, mean double, ss double, "
        "crv_realized double, first_referral timestamp_ntz, last_referral timestamp_ntz",
    ).localCheckpoint()
    stats = pl.from_arrow(per_referrer.select("n_valued", "mean", "ss").toArrow())
    kappa = (
        settings.crv_value_credibility
        if settings.crv_value_credibility is not None
        else referral.value_credibility(stats)
    )
    valued = credited.filter(F.col("valued")).agg(F.avg("value"), F.count("*")).first()
    mu = float(valued[0]) if valued[0] is not None else 0.0

    joined = per_key(
        by_referee.drop("_referee_clv"),
        "referee_customer_id",
        metrics.referee_joined,
        "customer_id string, joined timestamp_ntz",
    )
    frame = (
        customers.join(joined, "customer_id", "left")
        .join(customer_since, "customer_id", "left")
        .join(per_referrer, "customer_id", "left")
    )

    def exposure(batch: pl.DataFrame) -> pl.DataFrame:
        start = metrics.exposure_start_of(batch.select("customer_id", "joined", "since"), programme)
        stats = batch.filter(pl.col("n").is_not_null()).select(
            "customer_id",
            "n",
            "n_valued",
            "mean",
            "ss",
            "crv_realized",
            "first_referral",
            "last_referral",
        )
        return referral.referral_exposure(start, stats, as_of)

    exposed = per_batch(
        frame,
        exposure,
        "customer_id string, n bigint, n_valued bigint, mean double, crv_realized double, "
        "exposure double, exposure_days bigint, recency_days bigint",
    ).localCheckpoint()
    keys = ("n", "recency_days", "exposure_days")
    grouped = (
        exposed.filter(F.col("exposure_days") > 0)
        .groupBy(*(F.col(k) for k in keys))
        .agg(F.count("*").alias("customers"))
        # a few thousand rows, and one per referrer at most: sorted here, as the DuckDB
        # engine's `referral.grouped_referral_rows` sorts them
        .toArrow()
        .sort_by([(k, "ascending") for k in keys])
    )
    fit = referral.fit_referral_model(*(grouped.column(k).to_numpy() for k in (*keys, "customers")))
    crv = per_batch(
        exposed,
        lambda b: referral.referral_values(b, fit, kappa, mu, settings),
        "customer_id string, crv double, crv_realized double, crv_referrals bigint, "
        "crv_expected_referrals double, crv_value_per_referral double",
    )
    info = {
        "referral_outcomes": outcome_counts,
        "type2_share": share,
        "kappa": kappa,
        "mean_value_per_referral": mu,
        "referrals_valued": int(valued[1]),
        "valued_recent": recent,
        # what every customer's CRV was computed with, as the DuckDB engine reports it
        "referral_model": referral.ReferralModel(
            fit,
            float(kappa),
            settings.crv_value_credibility is None,
            mu,
            referrals_valued=int(valued[1]),
            valued_recent=recent,
        ),
        "referral_rate_fit": fit,
        "referral_rate_rows": grouped.num_rows,
    }
    return crv, info


def _engagement_schema() -> str:
    # Every value column is a double but the key, the buyer flag and the two counts.
    types = {
        "customer_id": "string",
        "buyer": "boolean",
        "crv_referrals": "bigint",
        "review_count": "bigint",
    }
    columns = [f"{c} {types.get(c, 'double')}" for c in metrics.VALUE_COLUMNS]
    return ", ".join(
        [
            *columns,
            "clv_high boolean",
            "crv_high boolean",
            "crv_losing boolean",
            "quadrant string",
            "quadrant_play string",
        ]
    )


def unvalued_customers(profiles, clv, rfm):
    """`metrics.unvalued_customers` on Spark: the profiles signed up by the as-of with neither
    a CLV nor a customer_rfm row (their completed orders all lack an FX rate), one column
    customer_id."""
    return (
        profiles.select("customer_id")
        .join(clv.select("customer_id"), "customer_id", "left_anti")
        .join(rfm.select("customer_id"), "customer_id", "left_anti")
        .distinct()
    )


def engagement_value(
    tables: SparkTables,
    as_of: date,
    customer_value,
    summary,
    settings: EngagementSettings,
    rfm=None,
):
    """The rows of `metrics.engagement_values` for the as-of (as `assets/engagement.py` calls
    it), as a Spark DataFrame, and what the steps said (referral outcomes, fits, cuts). `rfm`:
    the as-of's customer_rfm rows; a profile with neither a CLV nor one of those is unvalued
    (`unvalued_customers`: clv, cev and quadrant NULL), none when not given."""
    from pyspark.sql import functions as F

    spark = tables.spark
    until = F.lit(datetime.combine(as_of, time.max)).cast("timestamp_ntz")
    clv = customer_value.select("customer_id", F.col("clv").cast("double")).localCheckpoint()
    (people,) = load_spark_sql("intermediate/people_signed_up_by")
    profiles = run(spark, people.sql, {"as_of": as_of})
    customers = (
        profiles.select("customer_id").union(clv.select("customer_id")).distinct()
    ).localCheckpoint()
    # a customer's referral exposure starts at signup, or at the first order of a buyer without
    # a profile (the earlier when both exist)
    customer_since = (
        profiles.unionByName(
            summary.select("customer_id", F.col("first_order_date").alias("since"))
        )
        .groupBy("customer_id")
        .agg(F.min(F.col("since").cast("timestamp_ntz")).alias("since"))
    )
    sent = _resolved(tables, "referrals")
    referrals = sent.filter(F.col("referred_at") <= until).withColumn(
        "converted_at", F.when(F.col("converted_at") <= until, F.col("converted_at"))
    )
    social = _resolved(tables, "social").filter(F.col("occurred_at") <= until).localCheckpoint()
    reviews = _resolved(tables, "reviews").filter(F.col("created_at") <= until)

    crv, info = referral_value(
        spark,
        referrals,
        clv,
        customers,
        customer_since,
        settings,
        as_of,
        # not judged by a run of this as-of: counted, so the outcomes add up to the staged rows
        sent_after_as_of=sent.filter(F.col("referred_at") > until).count(),
    )
    crv = crv.localCheckpoint()
    civ = influence(social, clv, settings, customers)
    parts = [
        clv.withColumn("buyer", F.lit(True)),
        crv,
        civ,
        knowledge_value(reviews, settings),
        social_points(social, settings),
    ]
    unvalued_count = 0
    if rfm is not None:  # the flag `metrics.finish_values` reads, then drops
        unvalued = unvalued_customers(profiles, clv, rfm).localCheckpoint()
        unvalued_count = unvalued.count()  # the check's count of NULL CLVs to allow
        parts.append(unvalued.withColumn(metrics.UNVALUED, F.lit(True)))
    joined = customers
    for part in parts:
        if part is not None:
            joined = joined.join(part, "customer_id", "left")
    if civ is None:  # nobody reacted to anyone: the columns are there, empty (0 once finished)
        for column in ("cie", "civ_gained", "civ_ceded", "civ"):
            joined = joined.withColumn(column, F.lit(None).cast("double"))
    # the quadrant cuts, from exact order statistics of the population they describe
    clv_cut = exact_quantile(clv, "clv", settings.quadrant_clv_quantile)
    crv_cut = exact_quantile(
        crv.filter(F.col("crv_referrals") > 0), "crv", settings.quadrant_crv_quantile
    )
    values = per_batch(
        joined,
        lambda b: quadrants.with_quadrants(metrics.finish_values(b), clv_cut, crv_cut),
        _engagement_schema(),
    )
    info.update({"clv_cut": clv_cut, "crv_cut": crv_cut, "customers_unvalued": unvalued_count})
    return values, info


def work_folders(lake) -> dict:
    """{mart: the folder of its `work.<mart>` table's current files} for every mart of the data
    dictionary, and the audiences, the run wrote: the publish copies these files, with no Spark
    job."""
    from pathlib import Path

    from engagement_box import dictionary
    from engagement_box.spark import audiences
    from engagement_box.spark.tables import CURRENT

    folders = {}
    for mart in (*dictionary.PUBLISHED, audiences.MART):
        pointer = Path(lake) / "tables" / f"work.{mart}" / CURRENT
        if pointer.exists():
            folders[mart] = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    return folders


def customer_mart(tables: SparkTables, as_of: date, currency: str):
    """`sql/work/customer.sql` over the work tables of the as-of, transpiled."""
    return tables.run(["work/customer"], values={"as_of": as_of, "currency": currency})


def engagement_marts(
    tables: SparkTables,
    as_of: date,
    currency: str,
    settings: EngagementSettings,
    persona_inputs: dict,
    persona_refit_days: int,
    persona_settings=None,
) -> tuple[dict, dict]:
    """engagement_value, customer_persona, persona_profile and customer for the as-of, each
    saved as `work.<mart>` (with `as_of`) and returned as DataFrames over those tables, with
    what the steps said. Reads `work.customer_value`, `work.customer_rfm` and
    `work.customer_summary`, which the value step saved. Personas are assigned with the model in
    force in the lake, or fitted again when it is `persona_refit_days` old or was fitted from
    other `persona_inputs` (`personas.personas_in_force`)."""
    from pyspark.sql import functions as F

    from engagement_box.spark import personas

    spark = tables.spark
    stamp = F.lit(as_of).alias("as_of")
    rfm = spark.table("work.customer_rfm").filter(F.col("as_of") == F.lit(as_of))
    values, info = engagement_value(
        tables,
        as_of,
        spark.table("work.customer_value").filter(F.col("as_of") == F.lit(as_of)),
        spark.table("work.customer_summary"),
        settings,
        rfm,
    )
    money = F.lit(currency).alias("currency")  # the reporting currency of the money columns
    tables.save("work.engagement_value", values.select("*", money, stamp))
    values = spark.table("work.engagement_value")
    assignments, profiles, persona_info = personas.personas_in_force(
        spark,
        tables.lake,
        values,
        rfm,
        as_of,
        persona_inputs,
        persona_refit_days,
        persona_settings,
    )
    tables.save("work.customer_persona", assignments.select("*", stamp))
    tables.save("work.persona_profile", profiles.select("*", money, stamp))
    tables.save("work.customer", customer_mart(tables, as_of, currency).select("*", stamp))
    info.update(persona_info)
    return {name: spark.table(f"work.{name}") for name in ENGAGEMENT_MARTS}, info
