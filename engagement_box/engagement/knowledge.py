"""CKV, customer knowledge value: a documented proxy from reviews (Kumar et al. 2010 give no
formula). Each review weighs (1 + ckv_helpful_weight * ln(1 + helpful votes)) x
(ckv_verified_weight if a verified purchase, else ckv_unverified_weight); CKV is the sum of the
weights x ckv_value_per_review. The exports carry no ideas, so the ideas term is 0 (ckv_ideas).
No Dagster import here.
"""

import polars as pl

from engagement_box.engagement.config import EngagementSettings


def customer_knowledge_value(reviews: pl.DataFrame, settings: EngagementSettings) -> pl.DataFrame:
    """CKV per review author: ckv_reviews (value), review_count, ckv_ideas (0: no ideas export)."""
    s = settings
    weight = (
        1.0 + s.ckv_helpful_weight * pl.col("helpful_votes").cast(pl.Float64).fill_null(0.0).log1p()
    ) * pl.when(pl.col("verified_purchase").fill_null(False)).then(s.ckv_verified_weight).otherwise(
        s.ckv_unverified_weight
    )
    return (
        reviews.filter(pl.col("customer_id").is_not_null())
        .group_by(pl.col("customer_id").cast(pl.String))
        .agg(
            (weight.sum() * s.ckv_value_per_review).alias("ckv_reviews"),
            pl.len().cast(pl.Int64).alias("review_count"),
        )
        .with_columns(pl.lit(0.0).alias("ckv_ideas"))
        .sort("customer_id")
    )
