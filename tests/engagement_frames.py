"""Small frame builders shared by the engagement metric tests."""

from datetime import datetime

import polars as pl

T0 = datetime(2024, 1, 1)


def clv_frame(values: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"customer_id": list(values), "clv": [float(v) for v in values.values()]},
        schema={"customer_id": pl.String, "clv": pl.Float64},
    )


def social_frame(rows: list[tuple[str | None, str | None, str, str]]) -> pl.DataFrame:
    """rows: (actor, target, event_type, platform)."""
    return pl.DataFrame(
        {
            "actor_customer_id": [r[0] for r in rows],
            "target_customer_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "platform": [r[3] for r in rows],
        },
        schema={
            "actor_customer_id": pl.String,
            "target_customer_id": pl.String,
            "event_type": pl.String,
            "platform": pl.String,
        },
    )


def referral_frame(rows: list[dict]) -> pl.DataFrame:
    base = {
        "referred_at": T0,
        "converted_at": T0,
        "referrer_reward": 5.0,
        "referee_reward": 5.0,
        "would_have_joined_anyway": False,
    }
    return pl.DataFrame(
        [base | r for r in rows],
        schema={
            "referral_id": pl.String,
            "referrer_customer_id": pl.String,
            "referee_customer_id": pl.String,
            "referred_at": pl.Datetime("us"),
            "converted_at": pl.Datetime("us"),
            "referrer_reward": pl.Float64,
            "referee_reward": pl.Float64,
            "would_have_joined_anyway": pl.Boolean,
        },
    )


def review_frame(rows: list[tuple[str | None, int, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "helpful_votes": [r[1] for r in rows],
            "verified_purchase": [r[2] for r in rows],
        },
        schema={
            "customer_id": pl.String,
            "helpful_votes": pl.Int64,
            "verified_purchase": pl.Boolean,
        },
    )


EMPTY_REVIEWS = review_frame([])
EMPTY_SOCIAL = social_frame([])
EMPTY_REFERRALS = referral_frame([])
