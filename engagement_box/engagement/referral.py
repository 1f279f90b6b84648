"""CRV, customer referral value, looking forward (Kumar, Petersen & Leone 2007, 2010).

Three steps, each a pure function (docs/METRICS.md "CRV" has the formulas and the reasons):

1. `credited_referrals`: which past referrals count, and the value of each one to the firm:
   (1 - p2) * (A - M + ACQ1) + p2 * ACQ2 - rewards, A = the referee's CLV (a present value at the
   as-of date, never discounted again). Their sum per referrer is `crv_realized`. A referral
   converted within the CLV horizon before the as-of is `recent`: its referee's CLV is near what
   a referee acquired in the horizon brings, and only recent ones value a future referral
   (`valued`; all when none is recent).
2. `fit_referral_model`: how many credited referrals each customer makes in each coming 30-day
   month: BG/NBD on (referrals, day of the last one, days of exposure), whose customers refer
   at their own rate until they stop; the NBD (`fit_referral_rate`, a constant Gamma-distributed
   rate, posterior mean (r + n) / (alpha + T)) when BG/NBD cannot be fitted.
3. `customer_referral_value`: CRV = the customer's expected value of one referral (their recent
   referees' mean value shrunk toward the population's, Buhlmann-Straub credibility) x the
   expected referrals of each month k = 1..H discounted by (1 + d)^k, the CLV's horizon and
   discount.

No Dagster import here.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl
from scipy import optimize, special

from engagement_box.engagement.config import EngagementSettings
from engagement_box.value import fitting, purchase_models
from engagement_box.value.grouping import unique_rows

DAYS_PER_MONTH = 30.0  # the CLV's month: sum_{k=1..H} over 30-day months
POISSON_LIMIT_SHAPE = 1e4  # a fitted Gamma shape this large means "no spread between customers"
# BG/NBD's a + b this large: everyone has the same chance to stop after a referral (the limit
# model of `fit_referral_model`)
SHARED_DROPOUT_LIMIT = 1e4
# When customers stop referring is told by those who referred (how many times, and how long
# ago the last): with fewer referrers than this, the NBD (no stopping) is used, a rule the
# data decides, never the fit.
MIN_REFERRERS = 10

CREDITED_COLUMNS = (
    "referral_id",
    "referrer_customer_id",
    "referee_customer_id",
    "referred_at",
    "converted_at",
    "referee_clv",
    "rewards",
    "p_type2",
    "value",
    "recent",
)


def as_of_end(as_of: date | datetime | None) -> datetime | None:
    """The first instant after the observation: a date means its whole day counts (the next
    midnight); a datetime counts itself (one microsecond later)."""
    if as_of is None:
        return None
    if isinstance(as_of, datetime):
        return as_of + timedelta(microseconds=1)
    return datetime.combine(as_of + timedelta(days=1), time.min)


# Why a referral is or is not credited, in the order the rules are applied (docs/METRICS.md).
REFERRAL_OUTCOMES = (
    "not_converted",  # no conversion by the end of the as-of day
    "referrer_unresolved",  # the referrer matches no customer
    "referee_unresolved",  # the referee matches no customer
    "self_referral",  # referrer and referee are one person (after profiles are merged)
    "referee_already_customer",  # signed up or ordered before its day, or referred someone first
    "referee_referred_before",  # the referee was brought by an earlier referral
    "not_incentivized",  # no reward paid
    "credited",
)

# Not an outcome: the count of referrals a run leaves out because they were sent after its as-of.
SENT_AFTER_AS_OF = "sent_after_as_of"


def referral_outcomes(
    referrals: pl.DataFrame, as_of: date | datetime | None = None
) -> pl.DataFrame:
    """Every referral with its `outcome` (one of `REFERRAL_OUTCOMES`) and `rewards` paid.

    Rules, in this order: converted by the as-of date, referrer and referee resolved, not a
    self-referral (referrer and referee resolved to one person: the ids are those of the merged
    customers, so two profiles of one person referring each other is a self-referral); the
    referee was not a customer before the day of the referral (`referee_since`, their earliest
    signup or first order, when the frame has it: `with_referee_since`), nor had sent a
    referral before it (`referee_sent_first`, from the frame's rows unless it has the column:
    `with_referee_sent_first`); a referee
    counts once (earliest conversion, then earliest referral, then smallest referral_id: the
    referral that brought them); then only incentivized referrals (rewards paid > 0) are
    credited. A later incentivized referral of someone who had already converted brought no
    one, so it is never credited. The first rule a referral fails is its outcome.
    """
    end = as_of_end(as_of)
    added = SENT_FIRST not in referrals.columns or SENT_FIRST_ID not in referrals.columns
    if added:
        referrals = with_referee_sent_first(referrals)
    # A referee who had sent a referral before this one was a member already (two new
    # customers referring each other on the day they joined were both credited); at the same
    # time, the referral with the smaller referral_id was sent first.
    sent_at = pl.col(SENT_FIRST).cast(pl.Datetime("us"))
    referred_at = pl.col("referred_at").cast(pl.Datetime("us"))
    already_customer = (
        (sent_at < referred_at)
        | ((sent_at == referred_at) & _id_before(pl.col(SENT_FIRST_ID), pl.col("referral_id")))
    ).fill_null(False)
    if "referee_since" in referrals.columns:
        already_customer |= (
            pl.col("referee_since").cast(pl.Datetime("us"))
            < pl.col("referred_at").cast(pl.Datetime("us")).dt.truncate("1d")
        ).fill_null(False)
    converted = pl.col("converted_at").is_not_null()
    if end is not None:
        converted &= pl.col("converted_at") < end
    judged = referrals.with_row_index("_row").with_columns(
        (
            pl.col("referrer_reward").cast(pl.Float64).fill_null(0.0)
            + pl.col("referee_reward").cast(pl.Float64).fill_null(0.0)
        ).alias("rewards"),
        pl.when(~converted)
        .then(pl.lit("not_converted"))
        .when(pl.col("referrer_customer_id").is_null())
        .then(pl.lit("referrer_unresolved"))
        .when(pl.col("referee_customer_id").is_null())
        .then(pl.lit("referee_unresolved"))
        .when(pl.col("referrer_customer_id") == pl.col("referee_customer_id"))
        .then(pl.lit("self_referral"))
        .when(already_customer)
        .then(pl.lit("referee_already_customer"))
        .alias("outcome"),
    )
    first = (
        judged.filter(pl.col("outcome").is_null())
        .sort(["referee_customer_id", "converted_at", "referred_at", *_id_order("referral_id")])
        .unique(subset="referee_customer_id", keep="first", maintain_order=True)
        .select("_row", pl.lit(True).alias("_first"))
    )
    return (
        judged.join(first, on="_row", how="left")
        .with_columns(
            pl.when(pl.col("outcome").is_not_null())
            .then(pl.col("outcome"))
            .when(pl.col("_first").is_null())
            .then(pl.lit("referee_referred_before"))
            .when(~(pl.col("rewards") > 0))
            .then(pl.lit("not_incentivized"))
            .otherwise(pl.lit("credited"))
            .alias("outcome")
        )
        .sort("_row")
        .drop("_row", "_first", *([SENT_FIRST, SENT_FIRST_ID] if added else []))
    )


def _id_order(column: str) -> list[pl.Expr]:
    """The order of referral ids where a rule breaks a tie by them: the shorter first, then in
    text order, so plain numbered ids sort as numbers (9 before 10; compared as text, 10 came
    first and denied the referral that brought a customer) and padded ones as text."""
    return [pl.col(column).str.len_chars(), pl.col(column)]


def _id_before(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """Whether referral id `left` comes before `right` in `_id_order`."""
    left_length, right_length = left.str.len_chars(), right.str.len_chars()
    return (left_length < right_length) | ((left_length == right_length) & (left < right))


# When a referral's referee first sent a referral themselves, and that referral's id
# (`with_referee_sent_first`).
SENT_FIRST = "referee_sent_first"
SENT_FIRST_ID = "referee_sent_first_id"


def with_referee_sent_first(referrals: pl.DataFrame) -> pl.DataFrame:
    """The referrals with `referee_sent_first` and `referee_sent_first_id`: the earliest
    referral their referee sent as a referrer (by time, then referral_id; null when none), for
    the rule `referee_already_customer`. From the frame's own rows, so it needs all of them
    (the Spark engine joins the same from the whole table first)."""
    sent = (
        referrals.filter(pl.col("referrer_customer_id").is_not_null())
        .sort("referred_at", *_id_order("referral_id"))
        .group_by(pl.col("referrer_customer_id").alias("referee_customer_id"), maintain_order=True)
        .agg(
            pl.col("referred_at").first().alias(SENT_FIRST),
            pl.col("referral_id").first().alias(SENT_FIRST_ID),
        )
    )
    return referrals.drop(SENT_FIRST, SENT_FIRST_ID, strict=False).join(
        sent, on="referee_customer_id", how="left", maintain_order="left"
    )


def customer_start(customer_since: pl.DataFrame) -> pl.DataFrame:
    """customer_id, since: each customer's earliest signup or first order (`customer_since`
    may list a customer twice: two merged profiles, or a profile and a first order)."""
    missing = {"customer_id", "since"} - set(customer_since.columns)
    if missing:
        raise ValueError(
            "customer_since needs the columns customer_id and since (signup or first order);"
            f" missing: {', '.join(sorted(missing))}"
        )
    return customer_since.group_by(pl.col("customer_id").cast(pl.String)).agg(
        pl.col("since").cast(pl.Datetime("us")).min()
    )


def with_referee_since(referrals: pl.DataFrame, customer_since: pl.DataFrame) -> pl.DataFrame:
    """The referrals with `referee_since`: when their referee became a customer (earliest signup
    or first order; null when unknown), for the rule `referee_already_customer`."""
    start = customer_start(customer_since).rename(
        {"customer_id": "referee_customer_id", "since": "referee_since"}
    )
    return referrals.drop("referee_since", strict=False).join(
        start, on="referee_customer_id", how="left", maintain_order="left"
    )


def outcome_counts(outcomes: pl.DataFrame, sent_after_as_of: int = 0) -> dict[str, int]:
    """How many referrals ended with each outcome, every outcome listed (0 when none), and
    `sent_after_as_of`: the staged referrals sent after the as-of's day, which a run of that
    as-of does not judge (it ignores later activity), so the counts add up to the staged
    referrals."""
    counts = dict(outcomes.get_column("outcome").value_counts().iter_rows())
    return {
        **{name: int(counts.get(name, 0)) for name in REFERRAL_OUTCOMES},
        SENT_AFTER_AS_OF: int(sent_after_as_of),
    }


def credited_referrals(
    referrals: pl.DataFrame,
    clv: pl.DataFrame,
    settings: EngagementSettings,
    as_of: date | datetime | None = None,
) -> pl.DataFrame:
    """One row per past referral credited to its referrer, with its value to the firm.

    Which referrals: those whose `referral_outcomes` is 'credited' (the rules are there).
    """
    first = referral_outcomes(referrals, as_of).filter(pl.col("outcome") == "credited")
    share = settings.crv_unknown_type2_share
    if share is None:
        # Estimated from the credited referrals with an answer: the referees whose value is at
        # stake, asked the same question. 0.5 (no information) when none answered.
        known = first.get_column("would_have_joined_anyway").drop_nulls()
        share = float(known.cast(pl.Float64).mean()) if known.len() else 0.5
    end = as_of_end(as_of)
    # Converted within the CLV horizon before the end of the as-of day (30-day months).
    window = timedelta(days=settings.horizon_months * DAYS_PER_MONTH)
    recent = (
        pl.col("converted_at").cast(pl.Datetime("us")) > pl.lit(end - window, pl.Datetime("us"))
        if end is not None and settings.horizon_months > 0
        else pl.lit(False)
    )
    clv_lookup = clv.select(
        pl.col("customer_id").cast(pl.String).alias("referee_customer_id"),
        pl.col("clv").cast(pl.Float64).alias("referee_clv"),
    )
    s = settings
    p2 = pl.col("p_type2")
    return (
        first.join(clv_lookup, on="referee_customer_id", how="left")
        .with_columns(
            pl.col("referee_clv").fill_null(0.0),
            pl.col("would_have_joined_anyway").cast(pl.Float64).fill_null(share).alias("p_type2"),
        )
        .with_columns(
            (
                (1.0 - p2)
                * (pl.col("referee_clv") - s.crv_retention_cost + s.crv_acquisition_saved_type1)
                + p2 * s.crv_acquisition_saved_type2
                - pl.col("rewards")
            ).alias("value"),
            recent.fill_null(False).alias("recent"),
        )
        .select(*CREDITED_COLUMNS)
        .sort("referral_id")
    )


# --------------------------------------------------------------------------------------------
# The referral-rate model: Poisson counts, Gamma-distributed rates across customers (NBD)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralRateFit:
    """Population parameters of the referral rate (per 30-day month): lambda ~ Gamma(r, alpha),
    mean r / alpha. r = alpha = 0 when nobody was credited with a referral (rate 0 for all);
    r = alpha = inf in the Poisson limit (customers do not differ more than chance says: the
    pooled rate, referrals / exposure, for everyone)."""

    r: float
    alpha: float
    customers: int
    referrals: int
    exposure_months: float
    log_likelihood: float
    # The model CRV's expected referrals come from: BG/NBD's parameters (per day) when it was
    # fitted (customers stop referring), else None and `nbd_reason` says why the NBD is used.
    dropout: Mapping[str, float] | None = None
    nbd_reason: str = ""
    # BG/NBD's standard errors: a and b run large together when every customer is as likely
    # to stop after a referral (a / (a + b), which the expectations follow; docs/METRICS.md)
    dropout_standard_errors: Mapping[str, float] | None = None

    @property
    def poisson_limit(self) -> bool:
        return math.isinf(self.r)

    def expected(
        self,
        n: np.ndarray,
        recency_days: np.ndarray,
        exposure_days: np.ndarray,
        months: int,
        monthly_discount_rate: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each customer's expected credited referrals in the `months` 30-day months after the
        as-of, and the same month by month discounted, sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k.
        BG/NBD's conditional expectation E[Y(k)] when it was fitted (computed once per distinct
        row); else the NBD's posterior rate times k."""
        n = np.asarray(n, dtype=np.float64)
        if self.referrals == 0 or months == 0:
            return np.zeros(n.size), np.zeros(n.size)
        k = np.arange(1, months + 1, dtype=np.float64)
        if self.dropout is None:
            exposure = np.asarray(exposure_days, dtype=np.float64) / DAYS_PER_MONTH
            rate = self.rate(n, exposure)
            return rate * months, rate * float(((1.0 + monthly_discount_rate) ** -k).sum())
        (ux, ut, uT), inverse, _ = unique_rows(n, recency_days, exposure_days)
        if "p" in self.dropout:  # one chance to stop for everyone
            cumulative = np.stack(
                [shared_dropout_expected(self.dropout, t, ux, ut, uT) for t in k * DAYS_PER_MONTH]
            )
        else:
            cumulative = purchase_models.grouped_parts(
                "bgnbd", self.dropout, list(k * DAYS_PER_MONTH), ux, ut, uT
            ).expected()
        discounted = purchase_models.discounted_purchases(cumulative, monthly_discount_rate)
        return cumulative[-1][inverse], discounted[inverse]

    def rate(self, n: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Posterior mean rate per month of customers with n referrals in t months."""
        if self.referrals == 0:
            return np.zeros(np.shape(n))
        if self.poisson_limit:
            return np.full(np.shape(n), self.referrals / self.exposure_months)
        return (self.r + n) / (self.alpha + t)


def _nbd_loglik(theta: np.ndarray, n: np.ndarray, t: np.ndarray, w: np.ndarray):
    r, alpha = np.exp(theta)
    log_p = np.log(alpha) - np.log(alpha + t)
    log_q = np.log(t, out=np.zeros_like(t), where=t > 0) - np.log(alpha + t)
    ll = (
        special.gammaln(r + n)
        - special.gammaln(r)
        - special.gammaln(n + 1.0)
        + r * log_p
        + np.where(n > 0, n * log_q, 0.0)
    )
    d_r = special.digamma(r + n) - special.digamma(r) + log_p
    d_alpha = r / alpha - (r + n) / (alpha + t)
    value = float(w @ ll)
    grad = np.array([float(w @ d_r) * r, float(w @ d_alpha) * alpha])
    return value, grad


def fit_referral_rate(counts: np.ndarray, exposure_months: np.ndarray) -> ReferralRateFit:
    """Maximum likelihood NBD fit of referral counts over exposure (months, > 0 to count).

    Customers with the same count and exposure in whole days are one weighted row, so a million
    customers are a few thousand rows. With no over-dispersion the estimate runs to the Poisson
    limit (large r and alpha, the same posterior rate for everyone); the bounds keep it finite.
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure = np.asarray(exposure_months, dtype=np.float64)
    keep = exposure > 0
    days = np.rint(exposure[keep] * DAYS_PER_MONTH).astype(np.int64)
    return _fit_nbd_grouped(counts[keep], days, np.ones(days.size, dtype=np.int64))


def fit_grouped_referral_rate(
    counts: np.ndarray, exposure_days: np.ndarray, customers: np.ndarray
) -> ReferralRateFit:
    """The fit of `fit_referral_rate` from grouped rows: each distinct (referral count, whole
    days of exposure > 0) with the number of customers who have it, sorted by count then days
    (the Spark engine groups them on the executors and fits here, on the driver)."""
    n = np.asarray(counts).astype(np.float64)
    t = np.asarray(exposure_days) / DAYS_PER_MONTH
    w = np.asarray(customers).astype(np.float64)
    total_n = float(w @ n)
    total_t = float(w @ t)
    if total_n == 0 or total_t == 0:
        return ReferralRateFit(0.0, 0.0, int(w.sum()), int(total_n), total_t, 0.0)
    start = np.log([1.0, total_t / total_n])

    def objective(theta: np.ndarray):
        value, grad = _nbd_loglik(theta, n, t, w)
        return -value, -grad

    result = optimize.minimize(
        objective, start, jac=True, method="L-BFGS-B", bounds=[(-12.0, 16.0), (-12.0, 20.0)]
    )
    r, alpha = np.exp(result.x)
    log_likelihood = float(-result.fun)
    limit = _poisson_loglik(n, t, w, total_n / total_t)
    if r >= POISSON_LIMIT_SHAPE or limit >= log_likelihood:
        # The likelihood still rises toward r, alpha -> inf: a Gamma this narrow (coefficient
        # of variation 1 / sqrt(r) <= 1%) is one rate for everyone; report the exact limit.
        # The optimizer can also stop on the way there (a review: r = 2,935 on 273 customers,
        # whose likelihood was below the limit's): the limit is then the better fit too.
        r = alpha = math.inf
        log_likelihood = limit
    return ReferralRateFit(
        float(r), float(alpha), int(w.sum()), int(total_n), total_t, log_likelihood
    )


def _poisson_loglik(n: np.ndarray, t: np.ndarray, w: np.ndarray, rate: float) -> float:
    """The NBD's log-likelihood in its Poisson limit (one `rate` per month for everyone), in
    the terms of `_nbd_loglik`: weighted rows of n referrals in t months."""
    mean = rate * t
    log_mean = np.log(mean, out=np.zeros_like(mean), where=mean > 0)
    return float(w @ (np.where(n > 0, n * log_mean, 0.0) - mean - special.gammaln(n + 1.0)))


def fit_referral_model(
    counts: np.ndarray, recency_days: np.ndarray, exposure_days: np.ndarray, customers: np.ndarray
) -> ReferralRateFit:
    """The referral model from grouped rows: each distinct (credited referrals, whole days from
    the customer's start to their last referral, whole days of exposure > 0) with the number of
    customers who have it, sorted by those three (the Spark engine groups them on the
    executors). BG/NBD, whose customers refer at their own rate until they stop, at a moment
    of their own (in a backtest on the generated retailer, as of 2025-06-30, it expected 10,560
    referrals in the next 12 months where 10,643 came, the NBD 21,447); its limit of one chance
    to stop for everyone when a and b run to infinity together or are not identified; the NBD
    (a constant rate per customer, `fit_grouped_referral_rate`) with fewer than
    MIN_REFERRERS customers with a credited referral, or when neither dropout model
    can be fitted. The reason is kept (`nbd_reason`). docs/METRICS.md "CRV" step 3."""
    n = np.asarray(counts).astype(np.float64)
    recency = np.asarray(recency_days).astype(np.float64)
    days = np.asarray(exposure_days).astype(np.int64)
    w = np.asarray(customers).astype(np.int64)
    nbd = _fit_nbd_grouped(n, days, w)
    if nbd.referrals == 0:
        return replace(nbd, nbd_reason="nobody was credited with a referral")
    referrers = int(w[n >= 1].sum())
    if referrers < MIN_REFERRERS:
        return replace(
            nbd,
            nbd_reason=f"{referrers} customer(s) with a credited referral, fewer than "
            f"{MIN_REFERRERS}: too few to tell when customers stop referring",
        )
    fit = fitting.fit_bgnbd(
        n, recency, days.astype(np.float64), counts=w, time_unit="D", raise_on_failure=False
    )
    if fit.converged:
        errors = fit.standard_errors
        identified = all(math.isfinite(errors.get(k, math.nan)) for k in fit.params)
        if identified and fit.params["a"] + fit.params["b"] < SHARED_DROPOUT_LIMIT:
            return replace(nbd, dropout=dict(fit.params), dropout_standard_errors=dict(errors))
        why = (
            f"BG/NBD's a + b ran to {fit.params['a'] + fit.params['b']:.3g}"
            if identified
            else "BG/NBD's a and b have no finite standard error"
        )
    else:
        why = f"BG/NBD could not be fitted ({fit.message})"
    # a and b running to infinity together: customers hardly differ in their chance to stop
    # after a referral. The likelihood is flat along a + b, so the fit stopped anywhere on it
    # (a review: erasing one person who never referred flipped it to the NBD, +47 % of CRV);
    # the limit model has one chance p for everyone, and is what those fits approach.
    shared = _fit_shared_dropout(n, recency, days, w)
    if shared is not None:
        return replace(nbd, dropout=shared, nbd_reason=why)
    return replace(
        nbd, nbd_reason=f"{why}, and one chance to stop for everyone could not be fitted either"
    )


def _shared_dropout_log_likelihood(
    r: float, alpha: float, p: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Each row's log-likelihood under BG/NBD's limit a, b -> inf with a / (a + b) = p: rates
    Gamma(r, alpha), and after each referral the same chance p to stop for everyone."""
    head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    alive = x * np.log1p(-p) - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        dead = np.where(
            x > 0, np.log(p) + (x - 1) * np.log1p(-p) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    return head + np.logaddexp(alive, dead)


def _fit_shared_dropout(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray
) -> dict[str, float] | None:
    """Maximum likelihood (r, alpha, p) of `_shared_dropout_log_likelihood` on grouped rows (T
    > 0), or None when it does not converge, or r or alpha runs to a bound (p may reach its
    bounds: everyone, or no one, stopping after a referral)."""
    T = np.asarray(T, dtype=np.float64)
    total = float(w.sum())

    def objective(theta: np.ndarray) -> float:
        r, alpha, p = math.exp(theta[0]), math.exp(theta[1]), float(special.expit(theta[2]))
        return -float(w @ _shared_dropout_log_likelihood(r, alpha, p, x, t_x, T)) / total

    start = np.array([0.0, math.log(max(float(w @ T) / max(float(w @ x), 1.0), 1.0)), 0.0])
    bounds = [(-12.0, 16.0), (-12.0, 20.0), (-18.0, 18.0)]
    result = optimize.minimize(objective, start, method="L-BFGS-B", bounds=bounds)
    if not result.success or not np.isfinite(result.fun):
        return None
    rate = zip(result.x[:2], bounds[:2], strict=True)
    near = [min(abs(v - lo), abs(v - hi)) for v, (lo, hi) in rate]
    if min(near) < 1e-3:
        return None  # r or alpha at a bound: not this model's optimum
    # p at its bounds is kept: 1 - 1.5e-8 is everyone stopping after a referral (no one
    # referred twice, each long ago: a re-review's simulation, where the NBD expected 5 times
    # the referrals that came), 1.5e-8 nobody stopping (the NBD)
    r, alpha, p = math.exp(result.x[0]), math.exp(result.x[1]), float(special.expit(result.x[2]))
    return {"r": r, "alpha": alpha, "p": p}


def shared_dropout_expected(
    params: Mapping[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[referrals in (T, T + t] | x, t_x, T] in BG/NBD's limit of one chance p to stop for
    everyone (its conditional expectation as a, b -> inf, a / (a + b) = p):
    (1 - ((alpha + T) / (alpha + T + p t))^(r + x)) / p over
    1 + [x > 0] p / (1 - p) ((alpha + T) / (alpha + t_x))^(r + x)."""
    r, alpha, p = params["r"], params["alpha"], params["p"]
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    grown = -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + p * t))) / p
    stopped = np.where(
        x > 0, p / (1.0 - p) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))), 0.0
    )
    return grown / (1.0 + stopped)


def _fit_nbd_grouped(n: np.ndarray, days: np.ndarray, w: np.ndarray) -> ReferralRateFit:
    """`fit_grouped_referral_rate` of rows that may repeat a (count, days) pair (they differ in
    recency, or are one customer each): summed per pair first, in count then days order (one
    int64 key per pair: a 1-D unique, far cheaper than unique rows)."""
    span = int(days.max()) + 1 if days.size else 1
    keys, inverse = np.unique(n.astype(np.int64) * span + days, return_inverse=True)
    weights = np.bincount(inverse, weights=w, minlength=keys.size).astype(np.int64)
    return fit_grouped_referral_rate(keys // span, keys % span, weights)


def grouped_referral_rows(
    n: np.ndarray, recency_days: np.ndarray, exposure_days: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (n, recency_days, exposure_days > 0) rows of per-customer arrays, sorted by
    n, recency, exposure, and how many customers each stands for (`fit_referral_model`'s input)."""
    n = np.asarray(n).astype(np.int64)
    recency = np.asarray(recency_days).astype(np.int64)
    days = np.asarray(exposure_days).astype(np.int64)
    keep = days > 0
    n, recency, days = n[keep], recency[keep], days[keep]
    span = int(days.max()) + 1 if days.size else 1
    keys, weights = np.unique((n * span + recency) * span + days, return_counts=True)
    return keys // span // span, keys // span % span, keys % span, weights


# --------------------------------------------------------------------------------------------
# The value of one referral, shrunk toward the population mean
# --------------------------------------------------------------------------------------------


def value_credibility(per_referrer: pl.DataFrame) -> float:
    """Buhlmann-Straub kappa = within-referrer variance / between-referrer variance of the value
    of one referral (columns n_valued, mean, ss: count, mean, sum of squared deviations from the
    mean of the referrer's `valued` referrals; a referrer with none does not count).

    inf (everyone gets the population mean) when the referrers differ no more than chance says;
    1.0 (one referral weighs as much as the population mean) when no referrer has two referrals,
    so the two variances cannot be told apart.
    """
    per_referrer = per_referrer.filter(pl.col("n_valued") > 0)
    n = per_referrer.get_column("n_valued").to_numpy().astype(np.float64)
    if n.size == 0:
        return math.inf
    mean = per_referrer.get_column("mean").to_numpy()
    ss = per_referrer.get_column("ss").to_numpy()
    total = n.sum()
    dof = (n - 1.0).sum()
    if dof <= 0:
        return 1.0
    within = ss.sum() / dof
    mu = (n * mean).sum() / total
    spread = total - (n**2).sum() / total
    between = ((n * (mean - mu) ** 2).sum() - (n.size - 1) * within) / spread if spread > 0 else 0
    if between <= 0:
        return math.inf
    return float(within / between)


def annuity(settings: EngagementSettings) -> float:
    """sum_{k=1..H} 1 / (1 + d)^k: the present value of 1 a month for H months (CLV's months)."""
    d = settings.monthly_discount_rate
    k = np.arange(1, settings.horizon_months + 1, dtype=np.float64)
    return float(((1.0 + d) ** -k).sum())


@dataclass(frozen=True)
class ReferralModel:
    """What every customer's CRV of one run was computed with: the referral-rate fit, the
    credibility kappa (set by ENGAGEMENT_CRV_VALUE_CREDIBILITY, else estimated) and everyone's
    mean value of one credited referral."""

    fit: ReferralRateFit
    kappa: float
    kappa_estimated: bool
    mean_value: float
    # How many credited referrals valued a future one, and whether those were the recent ones
    # (`valued_referrals`) or, none being recent, all of them.
    referrals_valued: int = 0
    valued_recent: bool = False

    def report(self) -> dict[str, object]:
        """The model in plain JSON values, for the step's metadata (no inf: JSON has none)."""
        fit = self.fit
        if fit.referrals == 0:
            rate = "0: nobody was credited with a referral"
        elif fit.poisson_limit:
            rate = (
                f"{fit.referrals / fit.exposure_months:.6g} for everyone: referrers do not "
                "differ beyond chance (Poisson limit)"
            )
        else:
            rate = (
                f"{fit.r / fit.alpha:.6g} on average (Gamma r={fit.r:.6g}, alpha={fit.alpha:.6g})"
            )
        if math.isinf(self.kappa):
            kappa = "inf: referrers' referees differ no more than chance, everyone gets the mean"
        else:
            kappa = round(self.kappa, 6)
        if fit.dropout is not None and "p" in fit.dropout:
            model = (
                "BG/NBD in its limit of one chance to stop after a referral for everyone ("
                + ", ".join(f"{k}={v:.6g}" for k, v in fit.dropout.items())
                + f", per day): {fit.nbd_reason}"
            )
        elif fit.dropout is not None:
            p = fit.dropout["a"] / (fit.dropout["a"] + fit.dropout["b"])
            model = (
                "BG/NBD: each customer refers at their own rate until they stop ("
                + ", ".join(f"{k}={v:.6g}" for k, v in fit.dropout.items())
                + f", per day; a / (a + b) = {p:.4g}, the mean chance to stop after a referral)"
            )
        else:
            model = f"NBD, a constant rate per customer: {fit.nbd_reason}"
        if fit.dropout is not None and fit.referrals:
            rate = f"the NBD's, not used (for comparison): {rate}"
        return {
            "expected_referrals_from": model,
            "referral_rate_per_month": rate,
            "customers_exposed": fit.customers,
            "credited_referrals": fit.referrals,
            "exposure_months": round(fit.exposure_months, 1),
            "value_credibility_kappa": kappa,
            "kappa": "estimated (Buhlmann-Straub)" if self.kappa_estimated else "set",
            "mean_value_per_referral": round(self.mean_value, 2),
            "value_per_referral_from": (
                f"{self.referrals_valued} referrals converted within the CLV horizon before the "
                "as-of"
                if self.valued_recent
                else f"all {self.referrals_valued} credited referrals (none converted within the "
                "CLV horizon before the as-of)"
                if self.referrals_valued
                else "no credited referral"
            ),
            **(
                {"bgnbd_standard_errors": {k: float(v) for k, v in errors.items()}}
                if (errors := fit.dropout_standard_errors)
                else {}
            ),
        }


def customer_referral_value(
    credited: pl.DataFrame,
    exposure_start: pl.DataFrame,
    settings: EngagementSettings,
    as_of: date | datetime,
) -> tuple[pl.DataFrame, ReferralModel]:
    """Forward CRV for every customer of `exposure_start` (customer_id, start).

    A customer's exposure runs from `start` (or their first credited referral if earlier) to the
    end of the as-of day, in whole days / 30 (30-day months). Returns the frame (customer_id,
    crv, crv_realized, crv_referrals, crv_expected_referrals, crv_value_per_referral) and the
    model it was computed with (`ReferralModel`: the rate fit, kappa, the population mean value
    of one referral).
    """
    credited = valued_referrals(credited)
    per_referrer = referrer_stats(credited)
    kappa = (
        settings.crv_value_credibility
        if settings.crv_value_credibility is not None
        else value_credibility(per_referrer)
    )
    valued = credited.filter(pl.col("valued")).get_column("value")
    mu = float(valued.mean()) if valued.len() else 0.0
    frame = referral_exposure(exposure_start, per_referrer, as_of)
    fit = fit_referral_model(
        *grouped_referral_rows(
            frame.get_column("n").to_numpy(),
            frame.get_column("recency_days").to_numpy(),
            frame.get_column("exposure_days").to_numpy(),
        )
    )
    model = ReferralModel(
        fit,
        float(kappa),
        settings.crv_value_credibility is None,
        mu,
        referrals_valued=valued.len(),
        valued_recent=bool(credited.get_column("recent").any()) if credited.height else False,
    )
    return referral_values(frame, fit, kappa, mu, settings), model


def valued_referrals(credited: pl.DataFrame) -> pl.DataFrame:
    """`credited` with `valued`: the referrals whose values estimate the value of a future one.
    The recent ones (converted within the CLV horizon before the as-of): an older referee's CLV
    at the as-of is what is left of them, not what a newly acquired referee brings (a review:
    referees of the last year were worth 253 on average, all credited referees 98). All of them
    when none is recent."""
    any_recent = bool(credited.get_column("recent").any()) if credited.height else False
    return credited.with_columns((pl.col("recent") if any_recent else pl.lit(True)).alias("valued"))


def referrer_stats(credited: pl.DataFrame) -> pl.DataFrame:
    """Per referrer (customer_id) of `credited` (`valued_referrals` rows): n credited referrals
    (the rate's count), crv_realized (the sum of all their values), the first and the last
    referral's time;
    n_valued, the mean and the sum of squared deviations of the values of the `valued` ones (a
    future referral's value; mean NULL when none is)."""
    valued = pl.col("value").filter(pl.col("valued"))
    return credited.group_by(pl.col("referrer_customer_id").alias("customer_id")).agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("valued").sum().cast(pl.Int64).alias("n_valued"),
        valued.mean().alias("mean"),
        ((valued - valued.mean()) ** 2).sum().alias("ss"),
        pl.col("value").sum().alias("crv_realized"),
        pl.col("referred_at").min().alias("first_referral"),
        pl.col("referred_at").max().alias("last_referral"),
    )


def referral_exposure(
    exposure_start: pl.DataFrame, per_referrer: pl.DataFrame, as_of: date | datetime
) -> pl.DataFrame:
    """Each customer of `exposure_start` (customer_id, start) with n, mean, crv_realized from
    `per_referrer` (`referrer_stats` rows) and their exposure up to the end of the as-of day:
    `exposure_days` (whole days; at least 1 for whoever made a credited referral, which proves
    exposure), `exposure` (the same in 30-day months) and `recency_days` (whole days from the
    start to the last credited referral, 0 without one). Per customer: the Spark engine runs it
    on each batch of customers."""
    end = as_of_end(as_of)
    frame = (
        exposure_start.select(
            pl.col("customer_id").cast(pl.String), pl.col("start").cast(pl.Datetime("us"))
        )
        .join(per_referrer, on="customer_id", how="left")
        .with_columns(
            pl.col("n").fill_null(0),
            pl.col("n_valued").fill_null(0),
            pl.col("crv_realized").fill_null(0.0),
            pl.min_horizontal("start", "first_referral").alias("start"),
        )
        .with_columns(
            (
                (pl.lit(end, dtype=pl.Datetime("us")) - pl.col("start")).dt.total_seconds()
                / 86400.0
                / DAYS_PER_MONTH
            )
            .fill_null(0.0)
            .clip(lower_bound=0.0)
            .alias("exposure")
        )
    )
    n = frame.get_column("n").to_numpy().astype(np.float64)
    exposure = frame.get_column("exposure").to_numpy()
    # Whole days, as the fit counts them; a credited referral is proof of exposure: at least
    # one day for whoever made one.
    exposure = np.rint(exposure * DAYS_PER_MONTH) / DAYS_PER_MONTH
    exposure = np.where(n > 0, np.maximum(exposure, 1.0 / DAYS_PER_MONTH), exposure)
    exposure_days = np.rint(exposure * DAYS_PER_MONTH).astype(np.int64)
    # Whole days from the start to the last credited referral (0 without one), within exposure.
    last = (
        pl.col("last_referral").cast(pl.Datetime("us")) - pl.col("start")
    ).dt.total_seconds() / 86400.0
    recency = np.rint(frame.select(last.fill_null(0.0).clip(lower_bound=0.0)).to_series())
    recency = np.where(n > 0, np.minimum(recency, exposure_days), 0).astype(np.int64)
    return frame.with_columns(
        pl.Series("exposure", exposure),
        pl.Series("exposure_days", exposure_days),
        pl.Series("recency_days", recency),
    )


def referral_values(
    frame: pl.DataFrame,
    fit: ReferralRateFit,
    kappa: float,
    mu: float,
    settings: EngagementSettings,
) -> pl.DataFrame:
    """CRV per customer of `frame` (`referral_exposure` rows) from the population's rate fit,
    kappa and mean value of one referral: customer_id, crv, crv_realized, crv_referrals,
    crv_expected_referrals, crv_value_per_referral. Per customer (per batch on Spark)."""
    n = frame.get_column("n").to_numpy().astype(np.float64)
    expected, discounted = fit.expected(
        n,
        frame.get_column("recency_days").to_numpy(),
        frame.get_column("exposure_days").to_numpy(),
        settings.horizon_months,
        settings.monthly_discount_rate,
    )
    # the value of a future referral: the referrer's own valued referrals, shrunk toward mu
    valued = frame.get_column("n_valued").to_numpy().astype(np.float64)
    own_mean = frame.get_column("mean").fill_null(0.0).to_numpy()
    if math.isinf(kappa):
        value = np.full(n.shape, mu)
    else:
        value = np.divide(
            valued * own_mean + kappa * mu,
            valued + kappa,
            out=np.full(n.shape, mu),
            where=(valued + kappa) > 0,
        )
    return frame.select(
        "customer_id",
        # + 0.0: a loss-making referral's value times no future referrals is -0.0, which the
        # marts, CSVs and BI tools print as "-0"
        pl.Series("crv", value * discounted + 0.0),
        "crv_realized",
        pl.col("n").alias("crv_referrals"),
        pl.Series("crv_expected_referrals", expected),
        pl.Series("crv_value_per_referral", value),
    )
