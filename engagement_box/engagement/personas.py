"""Behavioural personas: k-means clusters on RFM, value and engagement features.

Method (deterministic for a given seed):

1. Features (`PersonaSettings.features`, default days_since_last_order, order_count,
   total_spend, clv, crv, civ, ckv, social_points). Missing values are 0, except
   days_since_last_order, which takes the column's maximum (a customer without orders is as lapsed
   as the most lapsed one). Skewed money and count features are log-transformed,
   sign-preserving: sign(x) * ln(1 + |x|) (all but days_since_last_order by default), then
   standardised (StandardScaler).
2. k is chosen on a fixed-size random sample (`selection_sample_size`, default 8,000): KMeans for
   each k in k_min..k_max (default 3..8), the best mean silhouette (Euclidean, the same definition
   as sklearn.metrics.silhouette_score, computed from one shared distance matrix) wins, ties to the
   smaller k.
3. The final KMeans is fitted on a larger sample (`fit_sample_size`, default 100,000), started from
   the chosen k's centres, and every customer is assigned to its nearest centre, so 1M customers
   take a few seconds. The fitted model (the standardisation, the centres and the names) is kept
   (`PersonaModel`, `work.persona_model`): until it is `ENGAGEMENT_PERSONA_REFIT_DAYS` old (and
   while the settings, the code and the erasures are those it was fitted after), later runs
   assign each customer to its nearest centre with it (`assign_personas`, `model_in_force`)
   instead of fitting again. On the data it was fitted on, assigning gives the fit's own rows.
   KMeans runs on one thread: its OpenMP threads spin while they wait, and on the shared 2-core
   machine that cost 10 CPU-s for 2,500 customers (0.2 s on one thread), and 1.0-1.2 CPU-s
   against 0.3 for a 100,000-row fit.
4. Profile per cluster: size, share, mean of each raw feature and of each standardised feature.
5. Names, from the fit's profile (`_name_clusters`): a feature's label (`TRAIT_LABELS`) is a
   candidate for a cluster only when (a) the cluster stands out on it, its standardised mean at
   least `NAME_Z` (0.5) from 0, and (b) for a label that says what members do (`MEMBER_TESTS`:
   Referrers, Influencers, Influenced, Reviewers, Silent, Socially active, Socially quiet), more
   than `MEMBER_SHARE` (half) of the cluster's members do it (e.g. have a credited referral).
   The candidate farthest from 0 names the cluster; the next one joins it when it sets the
   cluster apart too (`SECOND_LABEL_Z`); two labels in the features' order (e.g. "Influenced,
   Socially active"). A cluster with no candidate is `FALLBACK_NAME` ("Other buyers").
   Names are numbered when two clusters would share one. Why (b): CRV is a prediction, and
   customers who never referred have one from their tenure, so a cluster of newer customers
   stood highest on CRV and was called "Referrers" though 95 % of it had never referred.

No Dagster import here.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import polars as pl

from engagement_box.sql import load_sql, table_exists

DEFAULT_FEATURES = (
    "days_since_last_order",
    "order_count",
    "total_spend",
    "clv",
    "crv",
    "civ",
    "ckv",
    "social_points",
)


# The columns of engagement_value the persona step reads besides the features: what members did,
# which the labels in `MEMBER_TESTS` are checked against (not clustered on).
MEMBER_COLUMNS = ("crv_referrals", "civ_gained", "civ_ceded", "review_count")

# The columns of engagement_value a persona model reads.
VALUE_FEATURE_COLUMNS = (
    "customer_id",
    "clv",
    "crv",
    "civ",
    "ckv",
    "social_points",
    *MEMBER_COLUMNS,
)


def feature_frame(values: pl.DataFrame, rfm_rows: pl.DataFrame, prospect: str) -> pl.DataFrame:
    """One row per scored buyer (RFM segment other than `prospect`): customer_id, the default
    features in `DEFAULT_FEATURES` order and the `MEMBER_COLUMNS` the names are checked against,
    sorted by customer: what a persona model is fitted on and assigned to."""
    return (
        values.select(VALUE_FEATURE_COLUMNS)
        .join(
            rfm_rows.filter(pl.col("segment") != prospect).select(
                "customer_id", "days_since_last_order", "order_count", "total_spend"
            ),
            on="customer_id",
            how="inner",
        )
        .select("customer_id", *DEFAULT_FEATURES, *MEMBER_COLUMNS)
        .sort("customer_id")
    )


# (label when the cluster is high on the feature, label when low)
TRAIT_LABELS: dict[str, tuple[str, str]] = {
    "days_since_last_order": ("Lapsed", "Recent buyers"),
    "order_count": ("Frequent buyers", "Occasional buyers"),
    "total_spend": ("Big spenders", "Light spenders"),
    "clv": ("High future value", "Low future value"),
    # Low: not "Non-referrers". Customers who never referred sit at the population's expected
    # CRV, near the mean; a persona far below it holds referrers whose referrals cost more than
    # they bring (the CEV Costly Referrers), and was called "Non-referrers".
    "crv": ("Referrers", "Low referral value"),
    # Low: not "Not influential". CIV sums to 0 over customers; a persona far below the mean
    # cedes part of its value to the customers who influenced it (a reviewer read "Not
    # influential, Socially active" as a contradiction).
    "civ": ("Influencers", "Influenced"),
    "ckv": ("Reviewers", "Silent"),
    "social_points": ("Socially active", "Socially quiet"),
}

# The labels that say what a cluster's members do, and how a member is checked:
# (feature, high label?) -> (column, whether the member does it when the column is above 0 (True)
# or when it is 0 or missing (False)). Such a label names a cluster only when more than
# MEMBER_SHARE of its members pass; a frame without the column cannot show it, so never does.
# The labels of value (CLV, "Low referral value") and of the RFM features say where the
# cluster's mean is, which the standardised mean already shows.
MEMBER_TESTS: dict[tuple[str, bool], tuple[str, bool]] = {
    ("crv", True): ("crv_referrals", True),  # Referrers: a credited referral
    ("civ", True): ("civ_gained", True),  # Influencers: value from customers they influence
    ("civ", False): ("civ_ceded", True),  # Influenced: value ceded to their influencers
    ("ckv", True): ("review_count", True),  # Reviewers: a review written
    ("ckv", False): ("review_count", False),  # Silent: no review
    ("social_points", True): ("social_points", True),  # Socially active: a social action
    ("social_points", False): ("social_points", False),  # Socially quiet: none
}

# A label names a cluster only when the cluster's standardised mean on its feature is at least
# NAME_Z from 0 (half a standard deviation: below it most of the cluster sits where most of the
# buyers do), and a member-checked label only when more than MEMBER_SHARE of the members pass:
# "Referrers" must be mostly referrers, or an analyst targeting them reaches mostly people who
# never referred. A share several times the base rate was not enough: at the sample's 3.1 %,
# five times it is a persona of 85 % non-referrers.
NAME_Z = 0.5
MEMBER_SHARE = 0.5
# The name of a cluster that no label describes by those rules.
FALLBACK_NAME = "Other buyers"


@dataclass(frozen=True)
class PersonaSettings:
    """How personas are built; see the module docstring for the method."""

    features: Sequence[str] = DEFAULT_FEATURES
    linear_features: Sequence[str] = ("days_since_last_order",)
    k_min: int = 3
    k_max: int = 8
    selection_sample_size: int = 8_000
    fit_sample_size: int = 100_000
    n_init: int = 4
    seed: int = 42
    label_names: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(TRAIT_LABELS))
    member_tests: dict[tuple[str, bool], tuple[str, bool]] = field(
        default_factory=lambda: dict(MEMBER_TESTS)
    )


@dataclass(frozen=True)
class PersonaResult:
    """assignments: customer_id, persona_id, persona; profiles: one row per persona."""

    assignments: pl.DataFrame
    profiles: pl.DataFrame
    k: int
    silhouette_by_k: dict[int, float]
    settings: PersonaSettings
    model: "PersonaModel"


def _filled_features(frame: pl.DataFrame, settings: PersonaSettings) -> np.ndarray:
    exprs = []
    for name in settings.features:
        col = pl.col(name).cast(pl.Float64)
        if name == "days_since_last_order":
            col = col.fill_null(col.max())
        exprs.append(col.fill_null(0.0).alias(name))
    return frame.select(exprs).to_numpy().astype(np.float64, copy=False)


def feature_matrix(frame: pl.DataFrame, settings: PersonaSettings) -> np.ndarray:
    """The transformed (not yet standardised) feature matrix, one row per customer."""
    X = _filled_features(frame, settings).copy()
    for i, name in enumerate(settings.features):
        if name not in settings.linear_features:
            X[:, i] = np.sign(X[:, i]) * np.log1p(np.abs(X[:, i]))
    return X


# A cluster's second label is named only when that feature sets it apart too: by a standardised
# mean of at least SECOND_LABEL_Z, or half of its first feature's. A cluster of referrers (z 5.3)
# whose recency was a little above average (z 0.5) was called "Referrers, Lapsed", and its
# members who had bought last week showed "Lapsed" beside an RFM segment of Champions.
SECOND_LABEL_Z = 1.0


def member_shares(
    frame: pl.DataFrame, labels: np.ndarray, k: int, settings: PersonaSettings
) -> dict[tuple[str, bool], np.ndarray]:
    """For each label in `settings.member_tests` whose column `frame` has: the share of each
    cluster's members (`labels`, one per row of `frame`) who do what it says (0 for an empty
    cluster)."""
    sizes = np.bincount(labels, minlength=k)
    shares: dict[tuple[str, bool], np.ndarray] = {}
    for key, (column, above_zero) in settings.member_tests.items():
        if column not in frame.columns:
            continue
        value = frame.get_column(column).cast(pl.Float64).fill_null(0.0).to_numpy()
        does = value > 0 if above_zero else value <= 0
        counts = np.bincount(labels, weights=does.astype(np.float64), minlength=k)
        shares[key] = np.divide(counts, sizes, out=np.zeros(k), where=sizes > 0)
    return shares


def _name_clusters(
    z_means: np.ndarray,
    settings: PersonaSettings,
    shares: dict[tuple[str, bool], np.ndarray],
) -> list[str]:
    """Each cluster's name from its standardised means (`z_means`, clusters x features) and its
    members' shares (`member_shares`); the rule is the module docstring's step 5."""
    names: list[str] = []
    for c, row in enumerate(z_means):
        candidates = []
        for f, z in enumerate(row):
            if abs(z) < NAME_Z:
                continue
            key = (settings.features[f], bool(z >= 0))
            if key in settings.member_tests and not (
                key in shares and shares[key][c] > MEMBER_SHARE
            ):
                continue  # the members do not show the behaviour the label names
            candidates.append(f)
        order = sorted(candidates, key=lambda f: -abs(row[f]))[:2]
        if len(order) == 2 and abs(row[order[1]]) < min(SECOND_LABEL_Z, abs(row[order[0]]) / 2):
            order = order[:1]
        parts = []
        # Two labels in the features' order, not by which is larger: the same persona fitted
        # again on a later month's data was "Not influential, Socially active" once and
        # "Socially active, Not influential" the next time (low CIV's label then), and versions
        # compare by name.
        for f in sorted(order):
            feature = settings.features[f]
            high, low = settings.label_names.get(feature, (f"High {feature}", f"Low {feature}"))
            parts.append(high if row[f] >= 0 else low)
        names.append(", ".join(parts) or FALLBACK_NAME)
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name} #{seen[name]}")
    return unique


def silhouette_from_distances(D: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient from a square distance matrix (sklearn's definition: a sample
    alone in its cluster scores 0)."""
    k = int(labels.max()) + 1
    onehot = np.zeros((labels.size, k), dtype=D.dtype)
    onehot[np.arange(labels.size), labels] = 1.0
    sizes = onehot.sum(axis=0)
    sums = D @ onehot  # sum of distances from each sample to each cluster
    own = sizes[labels]
    a = np.divide(
        sums[np.arange(labels.size), labels], own - 1, out=np.zeros(labels.size), where=own > 1
    )
    means = np.divide(sums, sizes, out=np.full_like(sums, np.inf), where=sizes > 0)
    means[np.arange(labels.size), labels] = np.inf
    b = means.min(axis=1)
    denom = np.maximum(a, b)
    s = np.divide(b - a, denom, out=np.zeros(labels.size), where=(own > 1) & (denom > 0))
    return float(s.mean())


def build_personas(frame: pl.DataFrame, settings: PersonaSettings | None = None) -> PersonaResult:
    """Cluster customers (frame: customer_id, the feature columns and, for the names, the
    `MEMBER_COLUMNS`: without one, its labels name no cluster) into personas."""
    # Imported here: scikit-learn takes 3 CPU-s to import, and every process that loads the code
    # location (the CLI, the UI's code server, each run) would pay it without clustering.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _build_personas(frame, settings)


def _build_personas(frame: pl.DataFrame, settings: PersonaSettings | None) -> PersonaResult:
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances
    from sklearn.preprocessing import StandardScaler

    settings = settings or PersonaSettings()
    n = frame.height
    if n < settings.k_min + 1:
        raise ValueError(f"need more than {settings.k_min} customers to cluster, got {n}")
    X_raw = feature_matrix(frame, settings)
    rng = np.random.default_rng(settings.seed)

    fit_idx = (
        np.sort(rng.choice(n, settings.fit_sample_size, replace=False))
        if n > settings.fit_sample_size
        else np.arange(n)
    )
    scaler = StandardScaler().fit(X_raw[fit_idx])
    X = scaler.transform(X_raw)

    sel_idx = (
        np.sort(rng.choice(n, settings.selection_sample_size, replace=False))
        if n > settings.selection_sample_size
        else np.arange(n)
    )
    X_sel = X[sel_idx]
    D = pairwise_distances(X_sel).astype(np.float32)
    k_hi = min(settings.k_max, len(np.unique(X_sel, axis=0)) - 1)
    scores: dict[int, float] = {}
    centres: dict[int, np.ndarray] = {}
    for k in range(settings.k_min, max(settings.k_min, k_hi) + 1):
        model = KMeans(n_clusters=k, n_init=settings.n_init, random_state=settings.seed)
        labels = model.fit_predict(X_sel)
        centres[k] = model.cluster_centers_
        scores[k] = silhouette_from_distances(D, labels) if len(np.unique(labels)) > 1 else -1.0
    del D
    best_k = max(scores, key=lambda k: (scores[k], -k))

    final = KMeans(n_clusters=best_k, init=centres[best_k], n_init=1, random_state=settings.seed)
    final.fit(X[fit_idx])
    unnamed = PersonaModel(
        features=tuple(settings.features),
        linear_features=tuple(settings.linear_features),
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        centres=np.asarray(final.cluster_centers_, dtype=np.float64),
        names=(),
    )
    # The names come from the fit's own profile; every later assignment keeps them. Named
    # after the assignment, not assigned again (the same labels: 1.0 s at 1M customers).
    assignments, profiles = _assign(frame, unnamed, settings)
    z_means = profiles.select([f"z_{f}" for f in settings.features]).to_numpy()
    shares = member_shares(frame, assignments["persona_id"].to_numpy(), best_k, settings)
    fitted = replace(unnamed, names=tuple(_name_clusters(z_means, settings, shares)))
    names = persona_names(fitted)
    assignments = assignments.with_columns(
        pl.Series(
            "persona", np.asarray(names, dtype=object)[assignments["persona_id"].to_numpy()]
        ).cast(pl.String)
    )
    profiles = profiles.with_columns(pl.Series("persona", names, dtype=pl.String))
    return PersonaResult(
        assignments=assignments,
        profiles=profiles,
        k=best_k,
        silhouette_by_k=scores,
        settings=settings,
        model=fitted,
    )


@dataclass(frozen=True)
class PersonaModel:
    """What assigns personas without fitting again: the features and their transform, the
    standardisation (mean and scale of the fit sample), the k centres and the names."""

    features: tuple[str, ...]
    linear_features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    centres: np.ndarray
    names: tuple[str, ...]

    @property
    def k(self) -> int:
        return int(self.centres.shape[0])

    def to_json(self) -> str:
        """The model as JSON (floats written exactly: `repr` round-trips a float64)."""
        return json.dumps(
            {
                "features": list(self.features),
                "linear_features": list(self.linear_features),
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "centres": self.centres.tolist(),
                "names": list(self.names),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "PersonaModel":
        value = json.loads(text)
        return cls(
            features=tuple(value["features"]),
            linear_features=tuple(value["linear_features"]),
            mean=np.asarray(value["mean"], dtype=np.float64),
            scale=np.asarray(value["scale"], dtype=np.float64),
            centres=np.asarray(value["centres"], dtype=np.float64).reshape(
                -1, len(value["features"])
            ),
            names=tuple(value["names"]),
        )


def nearest_centre(X: np.ndarray, centres: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean distance, ties to the lower index) of each
    row, in chunks so 1M rows stay small in memory."""
    labels = np.empty(X.shape[0], dtype=np.int32)
    for start in range(0, X.shape[0], chunk):
        block = X[start : start + chunk]
        d2 = ((block[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels[start : start + chunk] = d2.argmin(axis=1)
    return labels


def assign_personas(frame: pl.DataFrame, model: PersonaModel) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Assignments and profiles of `frame`'s customers under a fitted `model` (no fit): each
    customer's nearest centre after the model's transform and standardisation; the profiles are
    this frame's sizes and means under the model's names. On the frame it was fitted on this
    gives exactly what `build_personas` returned."""
    settings = PersonaSettings(features=model.features, linear_features=model.linear_features)
    missing = sorted(set(model.features) - set(frame.columns))
    if missing:
        raise ValueError(f"the persona model needs the columns {', '.join(missing)}")
    return _assign(frame, model, settings)


def standardized(
    frame: pl.DataFrame, model: PersonaModel, settings: PersonaSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(the raw features with missing values filled, the model's standardised features) of each
    row of `frame`."""
    return _filled_features(frame, settings), (feature_matrix(frame, settings) - model.mean) / (
        model.scale
    )


def profile_z(
    z_means: np.ndarray, sizes: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """The personas' standardised feature means over the customers profiled (0 = their mean,
    in their standard deviations), from their means in the model's standardisation (`z_means`)
    and the mean and standard deviation of those over every customer profiled. The two agree
    on the customers the model was fitted on; between refits the model's standardisation is
    its fit's, and a population that moved since would read as every persona below (or above)
    the mean. A persona with no customer keeps 0s. A feature with no spread is 0: in the
    model's standardisation a constant is one repeated number whose standard deviation is
    rounding (1e-16), not 0, so a spread that small for the column's size counts as none (a
    re-review: z of -2.7 for social points nobody had, and the engines disagreed)."""
    flat = std <= 1e-9 * np.maximum(1.0, np.abs(mean))
    z = (z_means - mean) / np.where(flat, 1.0, std)
    return np.where((sizes[:, None] > 0) & ~flat[None, :], z, 0.0)


def persona_names(model: PersonaModel) -> list[str]:
    return list(model.names) or [f"Persona {c}" for c in range(model.k)]


def profile_frame(
    names: Sequence[str],
    sizes: np.ndarray,
    raw_means: np.ndarray,
    z_means: np.ndarray,
    features: Sequence[str],
) -> pl.DataFrame:
    """persona_profile's rows: each persona's size, share, raw and standardised feature means."""
    k, n = len(names), int(sizes.sum())
    return pl.DataFrame(
        {
            "persona_id": np.arange(k, dtype=np.int32),
            "persona": list(names),
            "size": sizes.astype(np.int64),
            "share": sizes / n if n else np.zeros(k),
            **{f"mean_{f}": raw_means[:, i] for i, f in enumerate(features)},
            **{f"z_{f}": z_means[:, i] for i, f in enumerate(features)},
        }
    )


def _assign(
    frame: pl.DataFrame, model: PersonaModel, settings: PersonaSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw_values, X = standardized(frame, model, settings)
    labels = nearest_centre(X, model.centres)
    k = model.k
    sizes = np.bincount(labels, minlength=k)
    raw_means = np.zeros((k, X.shape[1]))
    z_means = np.zeros((k, X.shape[1]))
    for c in range(k):
        mask = labels == c
        if mask.any():
            raw_means[c] = raw_values[mask].mean(axis=0)
            z_means[c] = X[mask].mean(axis=0)
    if X.shape[0]:
        z_means = profile_z(z_means, sizes, X.mean(axis=0), X.std(axis=0))
    names = persona_names(model)
    profiles = profile_frame(names, sizes, raw_means, z_means, settings.features)
    assignments = pl.DataFrame(
        {
            "customer_id": frame.get_column("customer_id"),
            "persona_id": labels,
            "persona": np.asarray(names, dtype=object)[labels],
        },
        schema_overrides={"persona": pl.String},
    )
    return assignments, profiles


# --------------------------------------------------------------------------------------------
# The persona model in force: re-fitted on its own schedule, assigned daily
# --------------------------------------------------------------------------------------------

MODEL_TABLE = "persona_model"


@dataclass(frozen=True)
class ModelInForce:
    """The stored model to assign with at an as-of, or None (refit) with the reason."""

    model: PersonaModel | None
    fitted_as_of: dt.date | None
    reason: str

    @property
    def refit(self) -> bool:
        return self.model is None

    def metadata(self) -> dict[str, object]:
        return {
            "computation": "refit" if self.refit else "assigned",
            "computation_reason": self.reason,
            "persona_model_fitted_as_of": str(self.fitted_as_of) if self.fitted_as_of else "",
        }


# Settings a persona model does not depend on: its schedule, and the quadrant cuts (the
# quadrant is no feature, DEFAULT_FEATURES). A change of any other model or engagement setting
# moves the features, so the model is fitted again.
NOT_MODEL_SETTINGS = ("persona_refit_days", "quadrant_clv_quantile", "quadrant_crv_quantile")


def model_inputs(
    run_settings: dict,
    code: str,
    moving: tuple[str, ...] = (),
    erasures: Sequence[str] = (),
    sources: Sequence[str] | None = None,
) -> dict:
    """What a persona model is fitted from, as `model_in_force` compares it: the run's settings
    but those it does not depend on (`NOT_MODEL_SETTINGS`, and `moving`: the window's keys that
    change every run), the model code version, the erasures applied (`erasures`: the
    requests or the erased people's hashes, kept as one digest): centres fitted with an erased
    person's rows are not used once they are erased; and `sources`, the engagement exports
    that staged rows (`coverage`): a model fitted while one was missing has a feature constant
    at 0, which places no one, and names no persona by it."""
    skip = (*moving, *NOT_MODEL_SETTINGS)
    inputs = {
        "settings": {k: v for k, v in run_settings.items() if k not in skip},
        "code": code,
        "erasures": erasures_digest(erasures),
    }
    if sources is not None:
        inputs["sources"] = sorted(sources)
    return inputs


def erasures_digest(erasures: Sequence[str]) -> str:
    """One digest of the erasures a model was fitted after; the same for none as a model stored
    before erasures were recorded with it."""
    if not erasures:
        return ""
    return hashlib.sha256("\n".join(sorted(erasures)).encode()).hexdigest()


def model_in_force(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, inputs: dict, refit_days: int
) -> ModelInForce:
    """The persona model the step assigns with at `as_of`: the one in force at the latest as-of
    at or before it, if it was fitted fewer than `refit_days` days before `as_of` from the same
    settings and code (`inputs`); else None: the step fits a new model (the reason says why)."""
    if refit_days <= 0:
        return ModelInForce(None, None, "ENGAGEMENT_PERSONA_REFIT_DAYS is 0: fitted every run")
    if not table_exists(con, "work", MODEL_TABLE):
        return ModelInForce(None, None, "no persona model stored yet: fitted")
    row = con.execute(
        load_sql("work/persona_model_in_force", table=MODEL_TABLE), {"as_of": as_of}
    ).fetchone()
    if row is None:
        return ModelInForce(None, None, f"no persona model in force at or before {as_of}: fitted")
    used_at, fitted_as_of, stored_inputs, model = row
    age = (as_of - fitted_as_of).days
    if age >= refit_days:
        return ModelInForce(
            None,
            None,
            f"the model in force (fitted as of {fitted_as_of}) is {age} days old, "
            f"ENGAGEMENT_PERSONA_REFIT_DAYS is {refit_days}: fitted again",
        )
    stored = json.loads(stored_inputs)
    if stored.get("code") != inputs.get("code"):
        return ModelInForce(None, None, "the model code changed since the last fit: fitted again")
    if stored.get("erasures", "") != inputs.get("erasures", ""):
        return ModelInForce(
            None,
            None,
            "a person was erased since the last fit (its centres were computed with their "
            "rows): fitted again",
        )
    if "sources" in stored and "sources" in inputs and stored["sources"] != inputs["sources"]:
        # (a model stored before sources were recorded is not judged by them)
        return ModelInForce(
            None,
            None,
            f"the engagement exports measured changed since the last fit (then: "
            f"{', '.join(stored['sources']) or 'none'}; now: "
            f"{', '.join(inputs['sources']) or 'none'}): fitted again",
        )
    if stored.get("settings") != inputs.get("settings"):
        changed = sorted(
            k
            for k in set(stored.get("settings", {})) | set(inputs.get("settings", {}))
            if stored.get("settings", {}).get(k) != inputs.get("settings", {}).get(k)
        )
        return ModelInForce(
            None, None, f"settings changed since the last fit ({', '.join(changed)}): fitted again"
        )
    return ModelInForce(
        PersonaModel.from_json(model),
        fitted_as_of,
        f"assigned with the model fitted as of {fitted_as_of} (in force at {used_at}, "
        f"{age} of ENGAGEMENT_PERSONA_REFIT_DAYS={refit_days} days old)",
    )


def record_model(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    fitted_as_of: dt.date,
    inputs: dict,
    model: PersonaModel,
) -> list[tuple[str, dict]]:
    """The statements (with parameters) recording the model in force at `as_of`; run them in
    the transaction that writes the assignments, so the two never disagree."""
    con.execute(load_sql("marts/create_schema", schema="work"))
    con.execute(load_sql("work/create_persona_model", table=MODEL_TABLE))
    return [
        (load_sql("work/delete_persona_model", table=MODEL_TABLE), {"as_of": as_of}),
        (
            load_sql("work/insert_persona_model", table=MODEL_TABLE),
            {
                "as_of": as_of,
                "fitted_as_of": fitted_as_of,
                "inputs": json.dumps(inputs, sort_keys=True),
                "model": model.to_json(),
            },
        ),
    ]
