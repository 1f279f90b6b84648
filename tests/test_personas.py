"""Personas: deterministic k selection, profiles and names on well-separated synthetic groups."""

import numpy as np
import polars as pl
import pytest

from engagement_box.engagement.personas import PersonaSettings, build_personas


def _three_groups(n_per: int = 300, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = 3 * n_per
    group = np.repeat(np.arange(3), n_per)
    recency = np.where(group == 0, 5, np.where(group == 1, 300, 60)) + rng.integers(0, 5, n)
    frequency = np.where(group == 0, 12, 1) + rng.integers(0, 2, n)
    monetary = np.where(group == 0, 2000.0, 40.0) * rng.uniform(0.9, 1.1, n)
    civ = np.where(group == 2, 500.0, 0.0) * rng.uniform(0.9, 1.1, n)
    social = np.where(group == 2, 200.0, 0.0) * rng.uniform(0.9, 1.1, n)
    return pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "days_since_last_order": recency,
            "order_count": frequency,
            "total_spend": monetary,
            "clv": monetary / 2,
            "crv": np.zeros(n),
            "civ": civ,
            "ckv": np.zeros(n),
            "social_points": social,
            "group": group,
        }
    )


def test_finds_the_groups_and_profiles_them():
    frame = _three_groups()
    result = build_personas(frame, PersonaSettings(k_min=2, k_max=6))
    assert result.k == 3
    assert set(result.silhouette_by_k) == {2, 3, 4, 5, 6}
    joined = frame.select("customer_id", "group").join(result.assignments, on="customer_id")
    # each true group maps to exactly one persona
    assert joined.group_by("group").agg(pl.col("persona_id").n_unique())["persona_id"].max() == 1
    assert result.profiles["size"].sum() == frame.height
    assert result.profiles["persona"].n_unique() == 3
    names = " | ".join(result.profiles["persona"])
    assert "Influencers" in names or "Socially active" in names


def test_deterministic_for_a_seed():
    frame = _three_groups(seed=1)
    settings = PersonaSettings(k_min=3, k_max=4)
    a = build_personas(frame, settings)
    b = build_personas(frame, settings)
    assert a.k == b.k
    assert a.assignments.equals(b.assignments)


def test_missing_values_are_handled():
    frame = _three_groups(n_per=50).with_columns(
        pl.when(pl.col("group") == 1)
        .then(None)
        .otherwise(pl.col("days_since_last_order"))
        .alias("days_since_last_order"),
        pl.lit(None, pl.Float64).alias("ckv"),
    )
    result = build_personas(frame)
    assert result.assignments["persona_id"].null_count() == 0
    assert result.assignments.height == frame.height


def test_silhouette_matches_sklearn():
    from sklearn.metrics import pairwise_distances, silhouette_score

    from engagement_box.engagement.personas import silhouette_from_distances

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4))
    labels = rng.integers(0, 4, 200)
    labels[0] = 4  # a singleton cluster scores 0
    expected = silhouette_score(X, labels)
    got = silhouette_from_distances(pairwise_distances(X), labels)
    assert got == pytest.approx(expected, rel=1e-9)
