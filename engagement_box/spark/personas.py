"""Personas on Spark: fitted on the driver on a seeded sample of the customers, assigned per batch.

The fit is `engagement/personas.py::build_personas`, the DuckDB engine's own, on the rows Spark
brings to the driver: every customer when they are at most `fit_sample_size` (100,000 by default;
so on the bundled sample the model equals the DuckDB engine's), else a seeded Bernoulli sample
of about 1.2 x that many, which `build_personas` cuts to `fit_sample_size` with its own seeded
draw (the names, too, come from those rows: their profile and what their members did,
`personas.MEMBER_COLUMNS`). The sample size is a fit setting, not a share: k-means centres and
the standardisation settle at tens of thousands of rows whatever the population (100M
customers: 0.1 % of them, about 30 MB on the driver). Every customer is then assigned to the
nearest centre on the executors (`personas.standardized` + `nearest_centre` per Arrow batch),
and the profiles (sizes, raw and standardised means) come from Spark's counts and sums per
persona.

The model in force is kept in the lake, `<lake>/models/persona_model.parquet`: one row per as-of
(the model's JSON, the as-of it was fitted at, the settings and code it was fitted with), the
rows of the DuckDB engine's `work.persona_model`. Which model a run assigns with, or whether it
fits again (ENGAGEMENT_PERSONA_REFIT_DAYS), is decided by the DuckDB engine's own
`personas.model_in_force` over those rows. The file is outside `<lake>/tables`, so an erasure
(which deletes the working tables) keeps it: it holds centres and means, no customer's row.
No Dagster import here.
"""

import os
import uuid
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from engagement_box.engagement import personas as model_code
from engagement_box.sql import load_sql
from engagement_box.value import rfm as rfm_code

MODEL_FILE = Path("models") / f"{model_code.MODEL_TABLE}.parquet"


def _models(lake: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session holding the lake's stored persona models as
    `work.persona_model` (the table `personas.model_in_force` and `record_model` use)."""
    con = duckdb.connect()
    path = Path(lake) / MODEL_FILE
    if path.exists():
        con.execute(load_sql("marts/create_schema", schema="work"))
        con.execute(
            load_sql("work/persona_model_from_file", table=model_code.MODEL_TABLE),
            {"path": str(path)},
        )
    return con


def model_in_force(
    lake: Path, as_of: date, inputs: dict, refit_days: int
) -> model_code.ModelInForce:
    """The persona model a Spark run assigns with at `as_of` (`personas.model_in_force` over the
    lake's stored models), or None with the reason to fit again."""
    with _models(lake) as con:
        return model_code.model_in_force(con, as_of, inputs, refit_days)


def record_model(
    lake: Path, as_of: date, fitted_as_of: date, inputs: dict, model: model_code.PersonaModel
) -> Path:
    """Store `model` as the one in force at `as_of` in the lake (`personas.record_model`'s rows),
    written beside the file and renamed over it: a reader sees the old rows or the new ones."""
    path = Path(lake) / MODEL_FILE
    with _models(lake) as con:
        for statement, parameters in model_code.record_model(
            con, as_of, fitted_as_of, inputs, model
        ):
            con.execute(statement, parameters)
        rows = con.execute(load_sql("work/persona_model_rows", table=model_code.MODEL_TABLE)).pl()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    rows.write_parquet(temporary)
    os.replace(temporary, path)
    return path


# The features in the DuckDB asset's order (`personas.feature_frame`)
FEATURE_COLUMNS = ("customer_id", *model_code.DEFAULT_FEATURES)


def personas(
    spark,
    values,
    rfm,
    settings: model_code.PersonaSettings | None = None,
    model: model_code.PersonaModel | None = None,
):
    """(customer_persona rows, persona_profile rows, what the step said: the model among it) for
    the customers of `values` (engagement_value rows) with an order in `rfm` (customer_rfm
    rows). With `model` (the one in force) they are assigned with it; without, a model is
    fitted first."""
    from pyspark.sql import functions as F

    from engagement_box.spark.engagement import per_batch

    settings = settings or model_code.PersonaSettings()
    # a fit names its personas, checking the labels against what members did (the DuckDB
    # engine's `personas.feature_frame` columns); assigning keeps the model's names
    members = model_code.MEMBER_COLUMNS if model is None else ()
    features = (
        values.select("customer_id", "clv", "crv", "civ", "ckv", "social_points", *members)
        .join(
            rfm.filter(F.col("segment") != rfm_code.PROSPECT).select(
                "customer_id", "days_since_last_order", "order_count", "total_spend"
            ),
            "customer_id",
        )
        .select(*FEATURE_COLUMNS, *members)
    ).localCheckpoint()  # joined once: read by the count, the sample and the assignment
    n, longest = features.agg(F.count("*"), F.max("days_since_last_order")).first()
    if n == 0:
        raise ValueError("no customer with an order by the as-of date: no personas to fit")
    # a customer without a last order is as lapsed as the most lapsed one (what
    # `personas._filled_features` does over the whole frame; a batch sees only its rows)
    features = features.fillna({"days_since_last_order": longest})
    fitted = None
    if model is None:
        sample = (
            features
            if n <= settings.fit_sample_size
            else features.sample(
                fraction=min(1.0, 1.2 * settings.fit_sample_size / n), seed=settings.seed
            )
        )
        fitted = model_code.build_personas(
            pl.from_arrow(sample.orderBy("customer_id").toArrow()), settings
        )
        model = fitted.model
    assign_settings = model_code.PersonaSettings(
        features=model.features, linear_features=model.linear_features
    )
    names = model_code.persona_names(model)

    def assign(batch: pl.DataFrame) -> pl.DataFrame:
        raw, z = model_code.standardized(batch, model, assign_settings)
        labels = model_code.nearest_centre(z, model.centres)
        return pl.DataFrame(
            {
                "customer_id": batch.get_column("customer_id"),
                "persona_id": labels,
                "persona": np.asarray(names, dtype=object)[labels],
                **{f"raw_{f}": raw[:, i] for i, f in enumerate(model.features)},
                **{f"z_{f}": z[:, i] for i, f in enumerate(model.features)},
            },
            schema_overrides={"persona": pl.String},
        )

    measures = [f"{kind}_{f}" for kind in ("raw", "z") for f in model.features]
    wide = per_batch(
        features,
        assign,
        "customer_id string, persona_id int, persona string, "
        + ", ".join(f"{m} double" for m in measures),
    ).localCheckpoint()
    rows = (
        wide.groupBy("persona_id")
        .agg(F.count("*").alias("size"), *[F.avg(m).alias(m) for m in measures])
        .collect()
    )
    # the spread of each standardised feature over every customer profiled (`profile_z`)
    overall = wide.agg(
        *[F.avg(f"z_{f}").alias(f"mean_{f}") for f in model.features],
        *[F.stddev_pop(f"z_{f}").alias(f"std_{f}") for f in model.features],
    ).first()
    k, width = model.k, len(model.features)
    sizes = np.zeros(k, dtype=np.int64)
    raw_means, z_means = np.zeros((k, width)), np.zeros((k, width))
    for row in rows:
        c = int(row["persona_id"])
        sizes[c] = int(row["size"])
        raw_means[c] = [row[f"raw_{f}"] for f in model.features]
        z_means[c] = [row[f"z_{f}"] for f in model.features]
    z_means = model_code.profile_z(
        z_means,
        sizes,
        np.array([overall[f"mean_{f}"] for f in model.features], dtype=np.float64),
        np.array([overall[f"std_{f}"] for f in model.features], dtype=np.float64),
    )
    profiles = model_code.profile_frame(names, sizes, raw_means, z_means, model.features)
    profile_rows = spark.createDataFrame(profiles.to_arrow(compat_level=pl.CompatLevel.oldest()))
    info = {
        "persona_k": k,
        "persona_customers": int(n),
        "persona_fit_rows": int(fitted.assignments.height) if fitted else 0,
        "persona_model": model,
    }
    if fitted is not None:
        info["silhouette_by_k"] = {str(key): v for key, v in fitted.silhouette_by_k.items()}
    return wide.select("customer_id", "persona_id", "persona"), profile_rows, info


def personas_in_force(
    spark,
    lake: Path,
    values,
    rfm,
    as_of: date,
    inputs: dict,
    refit_days: int,
    settings: model_code.PersonaSettings | None = None,
):
    """`personas` with the model in force at `as_of` (the lake's, `model_in_force`), or with a
    new fit when there is none, when it is `refit_days` old, or when `inputs` (settings, code)
    changed; the model used is then stored as the one in force at `as_of` (`record_model`).
    Returns what `personas` does, the profiles with the model's `model_fitted_as_of`;
    `info["persona_model_in_force"]` says which model and why."""
    from pyspark.sql import functions as F

    in_force = model_in_force(lake, as_of, inputs, refit_days)
    assignments, profiles, info = personas(spark, values, rfm, settings, in_force.model)
    fitted_as_of = as_of if in_force.refit else in_force.fitted_as_of
    profiles = profiles.withColumn("model_fitted_as_of", F.lit(fitted_as_of))  # as DuckDB's
    record_model(lake, as_of, fitted_as_of, inputs, info["persona_model"])
    info["persona_model_in_force"] = in_force
    return assignments, profiles, info
