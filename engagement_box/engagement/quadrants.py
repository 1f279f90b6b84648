"""Kumar's CLV x CRV quadrants, computed on the customers they describe. No Dagster import here.

"High CLV" is above the quadrant_clv_quantile of CLV among buyers (customers with a CLV from the
purchase models; prospects at CLV 0 do not move the cut). "High CRV" needs a credited referral
and a CRV above half a cent and above the quadrant_crv_quantile of CRV among customers with a
credited referral: a customer who never referred sits at the population's expected rate and
value, which says nothing about them. A referrer whose expected referral value is negative
(their referrals are expected to cost more than they bring) gets their own segment, "CEV Costly
Referrers", whatever their CLV.

Both sides of 0 count from half a cent (`NO_REFERRAL_VALUE`): a referrer the model expects to
refer almost never again has a CRV of 1e-8 one way or the other, which is no referral value;
it made every referrer of a retailer a Costly Referrer by rounding (a review: CRV -2.5e-8 from
a mean referral value of -18.70 times 1.3e-9 expected referrals).

A customer with no CLV (NULL: their completed orders all lack an FX rate, so the purchase models
never valued them) has no quadrant (NULL): high or low CLV is a claim about a CLV nobody measured,
and CEV Misers put them in a purchase-incentive audience as if they had never bought. Only CEV
Costly Referrers, which holds whatever the CLV, is still theirs when their CRV says so.

The names start with "CEV" so they never collide with the RFM segments ("Champions" is both).
"""

from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from engagement_box.engagement.config import EngagementSettings

# A CRV within half a cent of 0 is none: neither costly nor high (in the reporting currency).
NO_REFERRAL_VALUE = 0.005

CHAMPIONS = "CEV Champions"
AFFLUENTS = "CEV Affluents"
ADVOCATES = "CEV Advocates"
MISERS = "CEV Misers"
COSTLY_REFERRERS = "CEV Costly Referrers"

QUADRANTS = (CHAMPIONS, AFFLUENTS, ADVOCATES, MISERS, COSTLY_REFERRERS)
QUADRANT_PLAYS: Mapping[str, str] = MappingProxyType(
    {
        CHAMPIONS: "Retention: reward programs, private sales and early access; keep them close.",
        AFFLUENTS: "Referral incentives: reward them for bringing friends (high CLV, low CRV).",
        ADVOCATES: "Purchase incentives: personalised offers to grow their own spend "
        "(high CRV, low CLV).",
        MISERS: "Both: a purchase incentive first, then a referral incentive once they have "
        "bought.",
        COSTLY_REFERRERS: "Review their referral incentive: their referrals are expected to cost "
        "more in rewards than they bring; stop or cap the reward.",
    }
)


def _cut(values: pl.Series, quantile: float) -> float | None:
    if values.len() == 0:
        return None
    return values.quantile(quantile, "linear")


def assign_quadrants(frame: pl.DataFrame, settings: EngagementSettings) -> pl.DataFrame:
    """Add clv_high, crv_high, crv_losing, quadrant and quadrant_play to a frame with the
    columns buyer, clv, crv and crv_referrals (clv NULL: unvalued, no quadrant but CEV Costly
    Referrers)."""
    buyers = frame.filter(pl.col("buyer"))
    referrers = frame.filter(pl.col("crv_referrals") > 0)
    clv_cut = _cut(buyers.get_column("clv"), settings.quadrant_clv_quantile)
    crv_cut = _cut(referrers.get_column("crv"), settings.quadrant_crv_quantile)
    return with_quadrants(frame, clv_cut, crv_cut)


def with_quadrants(frame: pl.DataFrame, clv_cut: float | None, crv_cut: float | None):
    """`assign_quadrants` given the population's cuts (None: nobody to cut): per customer, so
    the Spark engine computes the cuts from exact counts and runs this per batch."""
    high_clv = (
        (pl.col("buyer") & (pl.col("clv") > clv_cut)).fill_null(False)
        if clv_cut is not None
        else pl.lit(False)
    )
    high_crv = (
        (pl.col("crv_referrals") > 0) & (pl.col("crv") > max(crv_cut, NO_REFERRAL_VALUE))
        if crv_cut is not None
        else pl.lit(False)
    )
    losing = (pl.col("crv_referrals") > 0) & (pl.col("crv") < -NO_REFERRAL_VALUE)
    quadrant = (
        pl.when(pl.col("crv_losing"))
        .then(pl.lit(COSTLY_REFERRERS))
        .when(pl.col("clv").is_null())  # unvalued: no CLV to be high or low
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("clv_high") & pl.col("crv_high"))
        .then(pl.lit(CHAMPIONS))
        .when(pl.col("clv_high"))
        .then(pl.lit(AFFLUENTS))
        .when(pl.col("crv_high"))
        .then(pl.lit(ADVOCATES))
        .otherwise(pl.lit(MISERS))
    )
    return (
        frame.with_columns(
            high_clv.alias("clv_high"), high_crv.alias("crv_high"), losing.alias("crv_losing")
        )
        .with_columns(quadrant.alias("quadrant"))
        .with_columns(
            pl.col("quadrant")
            .replace_strict(dict(QUADRANT_PLAYS), return_dtype=pl.String)
            .alias("quadrant_play")
        )
    )
