"""Personas: deterministic k selection, profiles and names on well-separated synthetic groups."""

import datetime as dt

import duckdb
import numpy as np
import polars as pl
import pytest

from engagement_box.engagement.personas import (
    PersonaModel,
    PersonaSettings,
    assign_personas,
    build_personas,
    feature_matrix,
    model_in_force,
    model_inputs,
    record_model,
)


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


# The persona model in force: stored with its rows, assigned with until it is due for a refit.

DAY = dt.date(2026, 3, 31)
INPUTS = {"settings": {"currency": "USD"}, "code": "v1"}


def test_assigning_with_the_fitted_model_gives_the_fit_and_a_stored_model_round_trips():
    frame = _three_groups(seed=2)
    result = build_personas(frame, PersonaSettings(k_min=2, k_max=5))
    stored = PersonaModel.from_json(result.model.to_json())
    assert np.array_equal(stored.centres, result.model.centres)
    assert np.array_equal(stored.mean, result.model.mean)
    assert stored.names == tuple(result.profiles["persona"])
    assignments, profiles = assign_personas(frame, stored)
    assert assignments.equals(result.assignments)
    assert profiles.equals(result.profiles)


def test_a_later_day_keeps_the_model_its_centres_and_names():
    fitted = build_personas(_three_groups(seed=4), PersonaSettings(k_min=2, k_max=5))
    # A later day: the same three behaviours, other customers, a few more of the first group.
    later = pl.concat([_three_groups(seed=5), _three_groups(n_per=20, seed=6).head(20)])
    later = later.with_columns(pl.Series("customer_id", [f"d{i}" for i in range(later.height)]))
    assignments, profiles = assign_personas(later, fitted.model)
    assert profiles["persona"].to_list() == fitted.profiles["persona"].to_list()
    assert profiles["size"].sum() == later.height == assignments.height
    joined = later.select("customer_id", "group").join(assignments, on="customer_id")
    assert joined.group_by("group").agg(pl.col("persona_id").n_unique())["persona_id"].max() == 1
    # each customer is at its nearest centre in the model's standardised space
    X = (feature_matrix(later, PersonaSettings()) - fitted.model.mean) / fitted.model.scale
    d2 = ((X[:, None, :] - fitted.model.centres[None]) ** 2).sum(axis=2)
    assert np.array_equal(assignments["persona_id"].to_numpy(), d2.argmin(axis=1))


def _store(con, as_of: dt.date, fitted_as_of: dt.date, inputs: dict = INPUTS) -> PersonaModel:
    model = build_personas(_three_groups(n_per=40), PersonaSettings(k_min=2, k_max=3)).model
    con.execute("CREATE SCHEMA IF NOT EXISTS work")
    for statement, params in record_model(con, as_of, fitted_as_of, inputs, model):
        con.execute(statement, params)
    return model


@pytest.mark.parametrize(
    ("as_of", "inputs", "refit_days", "reason"),
    [
        (DAY + dt.timedelta(days=29), INPUTS, 30, None),
        (DAY, INPUTS, 30, None),
        (DAY + dt.timedelta(days=30), INPUTS, 30, "is 30 days old"),
        (DAY + dt.timedelta(days=1), INPUTS, 0, "ENGAGEMENT_PERSONA_REFIT_DAYS is 0"),
        (DAY - dt.timedelta(days=1), INPUTS, 30, "no persona model in force at or before"),
        (DAY, {**INPUTS, "code": "v2"}, 30, "the model code changed"),
        (
            DAY,
            {**INPUTS, "settings": {"currency": "EUR"}},
            30,
            "settings changed since the last fit (currency)",
        ),
        # the model's centres were computed with an erased person's rows
        (DAY, model_inputs({"currency": "USD"}, "v1", erasures=["request-1"]), 30, "erased"),
        # no erasure: the inputs as model_inputs writes them equal a model stored without them
        (DAY, model_inputs({"currency": "USD"}, "v1"), 30, None),
    ],
)
def test_the_model_in_force_until_it_is_due_for_a_refit(
    tmp_path, as_of, inputs, refit_days, reason
):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        assert model_in_force(con, DAY, INPUTS, 30).refit  # nothing stored yet
        model = _store(con, DAY, DAY)
        in_force = model_in_force(con, as_of, inputs, refit_days)
        if reason is None:
            assert not in_force.refit, in_force.reason
            assert np.array_equal(in_force.model.centres, model.centres)
            assert in_force.fitted_as_of == DAY
            assert in_force.metadata()["computation"] == "assigned"
        else:
            assert in_force.refit and reason in in_force.reason, in_force.reason
            assert in_force.metadata()["computation"] == "refit"
    finally:
        con.close()


def test_changing_only_a_quadrant_cut_keeps_the_persona_model(tmp_path):
    """ENGAGEMENT_QUADRANT_CLV_QUANTILE changed alone refitted the personas (a reviewer's
    June rerun: 1,859 of 2,495 customers changed persona, k 4 -> 8), though the quadrant is
    no persona feature: the migration then showed a setting's effect as customers' moves. A
    setting that moves the features still refits."""
    stored = model_inputs({"currency": "USD", "quadrant_clv_quantile": 0.5, "as_of": "x"}, "v1")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        _store(con, DAY, DAY, stored)
        for changed, refit in (
            ({"quadrant_clv_quantile": 0.6}, False),
            ({"quadrant_crv_quantile": 0.7}, False),
            ({"persona_refit_days": 90}, False),
            ({"monthly_discount_rate": 0.02}, True),
        ):
            inputs = model_inputs(
                {"currency": "USD", "quadrant_clv_quantile": 0.5, "as_of": "x", **changed},
                "v1",
            )
            in_force = model_in_force(con, DAY + dt.timedelta(days=1), inputs, 30)
            assert in_force.refit == refit, (changed, in_force.reason)
    finally:
        con.close()


def test_an_engagement_export_added_or_withdrawn_refits_the_personas(tmp_path):
    """A partial retailer's review: the persona model fitted on orders alone stayed in force
    for months after reviews and referrals arrived (a feature constant at 0 when it was
    fitted places no one), and after social was withdrawn a persona still said "Socially
    quiet" of everyone. The exports measured are an input of the model; a model stored before
    they were recorded is not judged by them."""
    then = model_inputs({"currency": "USD"}, "v1", sources=["reviews"])
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        _store(con, DAY, DAY, then)
        later = DAY + dt.timedelta(days=1)
        same = model_inputs({"currency": "USD"}, "v1", sources=["reviews"])
        assert not model_in_force(con, later, same, 30).refit
        added = model_inputs({"currency": "USD"}, "v1", sources=["referrals", "reviews"])
        in_force = model_in_force(con, later, added, 30)
        assert (
            in_force.refit
            and (
                "exports measured changed since the last fit (then: reviews; now: referrals, reviews)"
            )
            in in_force.reason
        )
        withdrawn = model_inputs({"currency": "USD"}, "v1", sources=[])
        assert "now: none" in model_in_force(con, later, withdrawn, 30).reason
        _store(con, DAY, DAY, INPUTS)  # recorded without sources (an earlier release)
        assert not model_in_force(con, later, added, 30).refit
    finally:
        con.close()


def test_the_age_counts_from_the_fit_not_from_the_last_assignment(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        _store(con, DAY, DAY)
        _store(con, DAY + dt.timedelta(days=20), DAY)  # assigned 20 days later, same model
        assert not model_in_force(con, DAY + dt.timedelta(days=29), INPUTS, 30).refit
        late = model_in_force(con, DAY + dt.timedelta(days=31), INPUTS, 30)
        assert late.refit and "31 days old" in late.reason
    finally:
        con.close()


def _every_member_does_it(settings: PersonaSettings, k: int) -> dict:
    """Member shares under which every member of every cluster does what each label says."""
    return {key: np.ones(k) for key in settings.member_tests}


def test_a_persona_is_named_by_its_second_feature_only_when_that_sets_it_apart_too():
    """Referrers whose recency is barely above average are "Referrers", not "Referrers,
    Lapsed"; two features that both set a cluster apart both name it."""
    from engagement_box.engagement.personas import _name_clusters

    settings = PersonaSettings()
    features = list(settings.features)
    z = np.zeros((3, len(features)))
    z[0, features.index("crv")], z[0, features.index("days_since_last_order")] = 5.3, 0.52
    z[1, features.index("clv")], z[1, features.index("civ")] = 1.43, -2.98
    z[2, features.index("days_since_last_order")], z[2, features.index("clv")] = -0.57, -0.56
    names = _name_clusters(z, settings, _every_member_does_it(settings, 3))
    crv_high = settings.label_names["crv"][0]
    assert names[0] == crv_high
    assert names[1].count(", ") == 1 and names[2].count(", ") == 1


def test_a_persona_of_costly_referrers_is_not_called_non_referrers():
    """Customers who never referred sit at the population's expected CRV; a persona far below
    it is made of referrers whose referrals cost more than they bring (a review found 35 such
    customers, every one with credited referrals, named "Non-referrers"). Its name says what
    its members have: a low referral value."""
    rng = np.random.default_rng(7)
    n_plain, n_costly, n_good = 900, 60, 40
    n = n_plain + n_costly + n_good
    crv = np.concatenate([np.full(n_plain, 2.4), np.full(n_costly, -30.0), np.full(n_good, 250.0)])
    frame = pl.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "days_since_last_order": rng.integers(1, 300, n),
            "order_count": rng.integers(1, 6, n),
            "total_spend": rng.gamma(2.0, 50.0, n),
            "clv": rng.gamma(2.0, 40.0, n),
            "crv": crv,
            "civ": np.zeros(n),
            "ckv": np.zeros(n),
            "social_points": np.zeros(n),
        }
    )
    result = build_personas(frame)
    members = (
        result.assignments.join(frame.select("customer_id", "crv"), on="customer_id")
        .group_by("persona")
        .agg(pl.col("crv").max().alias("highest_crv"))
    )
    costly = members.filter(pl.col("highest_crv") < 0)["persona"].to_list()
    assert costly, result.profiles
    for name in costly:
        assert "referral value" in name.lower() and "non-referrer" not in name.lower(), name


def test_a_personas_two_labels_keep_one_order_whichever_is_larger():
    """The same persona fitted on two months' data was "Not influential, Socially active" once
    and "Socially active, Not influential" the next (which of the two z-scores was larger had
    changed; low CIV's label is "Influenced" now); versions are compared by name, so the labels
    come in the features' order."""
    from engagement_box.engagement.personas import PersonaSettings, _name_clusters

    settings = PersonaSettings()
    civ, social = settings.features.index("civ"), settings.features.index("social_points")
    months = np.zeros((2, len(settings.features)))
    months[0, [civ, social]] = (-2.0, 1.6)
    months[1, [civ, social]] = (-1.6, 2.0)
    shares = _every_member_does_it(settings, 1)
    names = _name_clusters(months[:1], settings, shares) + _name_clusters(
        months[1:], settings, shares
    )
    assert names == ["Influenced, Socially active"] * 2


def test_a_later_days_profile_is_standardised_over_its_own_customers():
    """Between refits customers go to the nearest centre in the fit's standardisation, but the
    profile's z-scores are over the version's own customers (0 = their mean, docs/METRICS.md):
    in the fit's scale a population that moved read as every persona above (or below) it."""
    fitted = build_personas(_three_groups(seed=4), PersonaSettings(k_min=2, k_max=5))
    later = _three_groups(seed=5).with_columns(
        pl.col("total_spend") * 8, pl.col("clv") * 8, pl.col("days_since_last_order") + 200
    )
    assignments, profiles = assign_personas(later, fitted.model)
    features = feature_matrix(later, PersonaSettings())
    labels = assignments["persona_id"].to_numpy()
    sizes = profiles["size"].to_numpy()
    assert (sizes > 0).sum() >= 2
    for column, name in enumerate(PersonaSettings().features):
        values, got = features[:, column], profiles[f"z_{name}"].to_numpy()
        spread = values.std() or 1.0
        expected = [
            (values[labels == c].mean() - values.mean()) / spread if sizes[c] else 0.0
            for c in range(len(got))
        ]
        assert got == pytest.approx(expected, abs=1e-9), name
        assert float((got * sizes).sum()) == pytest.approx(0.0, abs=1e-9), name
    # the spend moved up eightfold: in the fit's scale every persona read above the mean
    assert profiles["z_total_spend"].max() > 0 > profiles["z_total_spend"].min()


def test_a_feature_nobody_varies_on_a_later_day_has_z_scores_of_0():
    """Social points nobody had on a later day: in the model's standardisation a constant is one
    repeated number whose standard deviation is rounding, not 0, and the profile showed z of
    -0.56 to -2.7 for it (a re-review); no spread is z 0, as the dictionary says."""
    fitted = build_personas(_three_groups(seed=4), PersonaSettings(k_min=2, k_max=5))
    later = _three_groups(seed=5).with_columns(pl.lit(3.7).alias("social_points"))
    _, profiles = assign_personas(later, fitted.model)
    assert profiles["z_social_points"].to_list() == [0.0] * profiles.height
    assert profiles["z_total_spend"].abs().max() > 0.1  # the others still spread


# Names true of their members: a label names a cluster that stands out on its feature, and a
# label saying what members do only when most of them do it.


def _newer_customers_and_referrers(seed: int = 11) -> pl.DataFrame:
    """Three groups that differ only in referral (the other features the same for everyone):
    600 customers with no referral value, 400 whom the referral model values from their tenure
    though 4 % of them ever referred (CRV is a prediction), and 50 referrers with two credited
    referrals each."""
    rng = np.random.default_rng(seed)
    n_plain, n_newer, n_referrers = 600, 400, 50
    n = n_plain + n_newer + n_referrers
    group = np.repeat(np.arange(3), [n_plain, n_newer, n_referrers])
    crv = np.where(group == 0, 0.0, np.where(group == 1, 20.0, 2000.0)) * rng.uniform(0.9, 1.1, n)
    referrals = np.where(group == 2, 2, 0)
    referrals[np.flatnonzero(group == 1)[: n_newer * 4 // 100]] = 1
    return pl.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "days_since_last_order": np.full(n, 60),
            "order_count": np.full(n, 3),
            "total_spend": np.full(n, 150.0),
            "clv": np.full(n, 80.0),
            "crv": crv,
            "civ": np.zeros(n),
            "ckv": np.zeros(n),
            "social_points": np.zeros(n),
            "crv_referrals": referrals,
            "civ_gained": np.zeros(n),
            "civ_ceded": np.zeros(n),
            "review_count": np.zeros(n, dtype=np.int64),
            "group": group,
        }
    )


def test_a_persona_high_on_crv_whose_members_never_referred_is_not_called_referrers():
    """A review: "Referrers, Socially quiet" held 558 customers of whom 25 (4.5 %) had ever
    referred; their CRV, a prediction, came from their tenure and was their largest z-score
    (0.59). A persona is "Referrers" only when most of its members referred; a persona of
    referrers still is."""
    frame = _newer_customers_and_referrers()
    result = build_personas(frame)
    members = (
        result.assignments.join(
            frame.select("customer_id", "group", "crv_referrals"), "customer_id"
        )
        .group_by("persona_id", "persona")
        .agg(
            pl.col("group").mode().first().alias("group"),
            (pl.col("crv_referrals") > 0).mean().alias("referred"),
        )
    )
    newer = members.filter(pl.col("group") == 1).row(0, named=True)
    referrers = members.filter(pl.col("group") == 2).row(0, named=True)
    z_crv = result.profiles.sort("z_crv", descending=True)
    # the newer customers stand out on CRV, above every persona but the referrers
    assert z_crv["persona_id"][1] == newer["persona_id"], result.profiles
    assert newer["referred"] < 0.1 and "Referrers" not in newer["persona"], newer
    assert referrers["referred"] == 1.0 and referrers["persona"] == "Referrers", referrers


def test_the_reviewed_sample_persona_is_not_named_after_crv():
    """The reviewed persona's own profile (the bundled sample, May 2026) and its members' shares
    (4.5 % referred, 6.8 % had social points, 19.7 % reviewed): named after what it does stand
    out on, not "Referrers"."""
    from engagement_box.engagement.personas import MEMBER_SHARE, _name_clusters

    settings = PersonaSettings()
    z = np.array([[-0.541, -0.538, -0.509, 0.296, 0.592, 0.254, -0.369, -0.543]])
    shares = {key: np.array([0.0]) for key in settings.member_tests}
    shares["crv", True][0] = 0.045
    shares["social_points", False][0] = 1 - 0.068
    shares["ckv", False][0] = 1 - 0.197
    (name,) = _name_clusters(z, settings, shares)
    assert name == "Recent buyers, Socially quiet", name
    # the same profile whose members mostly referred is "Referrers"
    shares["crv", True][0] = MEMBER_SHARE + 0.01
    assert "Referrers" in _name_clusters(z, settings, shares)[0].split(", "), shares


def test_no_label_for_a_persona_that_stands_out_on_nothing():
    """A persona within half a standard deviation of the buyers' mean on every feature, or
    standing out only on behaviour its members do not show, is "Other buyers"; a
    behaviour label with no column to check it against names nobody."""
    from engagement_box.engagement.personas import FALLBACK_NAME, NAME_Z, _name_clusters

    settings = PersonaSettings()
    features = list(settings.features)
    z = np.zeros((3, len(features)))
    z[0, :] = NAME_Z - 0.01
    z[1, features.index("social_points")] = 1.5  # but only 40 % have social points
    z[2, features.index("ckv")] = 2.0  # the shares have no review count
    shares = {key: np.full(3, 0.4) for key in settings.member_tests if key[0] != "ckv"}
    names = _name_clusters(z, settings, shares)
    assert names == [f"{FALLBACK_NAME} #{i}" for i in (1, 2, 3)], names


def test_a_customer_with_no_last_order_is_placed_as_the_most_lapsed():
    """A missing days_since_last_order is filled with the column's largest (the most lapsed),
    not its smallest (a mutation review: only a test of no-NULL-persona covered it)."""
    from engagement_box.engagement.personas import PersonaSettings, _filled_features

    settings = PersonaSettings()
    frame = pl.DataFrame({name: [1.0, 2.0, 3.0] for name in settings.features}).with_columns(
        pl.Series("days_since_last_order", [10.0, None, 400.0]), pl.lit(None).alias("ckv")
    )
    filled = _filled_features(frame, settings)
    days = settings.features.index("days_since_last_order")
    assert filled[:, days].tolist() == [10.0, 400.0, 400.0]
    assert filled[:, settings.features.index("ckv")].tolist() == [0.0, 0.0, 0.0]


def test_every_setting_a_persona_feature_depends_on_refits_the_model():
    """A change of any setting a version records, but the refit schedule, the quadrant cuts and
    the window's moving keys, makes the stored model another's (`model_in_force` refits): a
    setting wrongly listed as not the model's kept an old model for up to 90 days (a mutation
    review)."""
    from assets.publish import run_settings
    from assets.value import _MOVING_KEYS
    from engagement_box.engagement import personas
    from pipelines.resources import EngagementConfig

    window = {"as_of": "2026-06-30", "currency": "USD", "margin": 1.0, "partition_key": "x"}
    recorded = run_settings(window, EngagementConfig())
    kept = {"persona_refit_days", "quadrant_clv_quantile", "quadrant_crv_quantile"}
    before = personas.model_inputs(recorded, "code", _MOVING_KEYS)
    for key in recorded:
        after = personas.model_inputs({**recorded, key: "another"}, "code", _MOVING_KEYS)
        assert (after == before) is (key in kept or key in _MOVING_KEYS), key
    assert {"civ_attribution_share", "civ_beta", "margin", "currency"} <= set(recorded)
