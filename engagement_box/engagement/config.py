"""The weights and thresholds of the engagement metrics (`EngagementSettings`), one place.

docs/METRICS.md defines every metric and the reason for each default; the environment variables
that set them are in engagement_box/settings.py. No Dagster import here.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from engagement_box.staging.contracts import SOCIAL_REACTIONS

DEFAULT_SOCIAL_POINTS: Mapping[str, float] = MappingProxyType(
    {
        "like": 1.0,
        "pin": 1.0,
        "tweet": 1.0,
        "comment": 5.0,
        "share": 10.0,
        "retweet": 10.0,
        # Not in the Magento guide. A mention is text the customer writes naming someone, the same
        # effort as a comment and less reach than a share: 5 points.
        "mention": 5.0,
    }
)


@dataclass(frozen=True)
class EngagementSettings:
    """Weights and thresholds of the engagement metrics, with documented defaults.

    Social points: social_points per event type; social_points_by_platform overrides them per
    platform ({platform: {event_type: points}}).

    CRV (forward-looking, docs/METRICS.md "CRV"): the next horizon_months (30-day months, the CLV
    horizon) discounted at monthly_discount_rate (the CLV's); crv_retention_cost M,
    crv_acquisition_saved_type1 / _type2 (ACQ1 / ACQ2); crv_unknown_type2_share (None: the share
    observed among credited referrals with an answer); crv_value_credibility (kappa of the
    shrinkage of a referrer's value per referral toward the population mean; None: estimated).

    CIV: civ_beta (decay per hop), civ_max_order (hops), civ_reaction_types and civ_event_weights
    (which reactions count and how much), civ_attribution_share (the share of an influenced
    customer's CLV that moves to their influencers), civ_prune_tol (drop tiny entries of W^n).

    CKV: ckv_value_per_review, ckv_helpful_weight, ckv_verified_weight, ckv_unverified_weight.

    Quadrants: quadrant_clv_quantile among customers with a CLV (buyers), quadrant_crv_quantile
    among customers with a credited referral.
    """

    social_points: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SOCIAL_POINTS))
    social_points_by_platform: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    horizon_months: int = 12
    monthly_discount_rate: float = 0.01
    crv_unknown_type2_share: float | None = None
    crv_retention_cost: float = 0.0
    crv_acquisition_saved_type1: float = 0.0
    crv_acquisition_saved_type2: float = 0.0
    crv_value_credibility: float | None = None

    civ_beta: float = 0.5
    civ_max_order: int = 2
    civ_reaction_types: Sequence[str] = SOCIAL_REACTIONS
    civ_event_weights: Mapping[str, float] | None = None
    civ_attribution_share: float = 0.1
    civ_prune_tol: float = 0.0

    ckv_value_per_review: float = 1.0
    ckv_helpful_weight: float = 1.0
    ckv_verified_weight: float = 1.0
    ckv_unverified_weight: float = 0.5

    quadrant_clv_quantile: float = 0.5
    quadrant_crv_quantile: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.civ_beta < 1:
            raise ValueError("civ_beta must be between 0 and 1 (both excluded)")
        if self.civ_max_order < 1:
            raise ValueError("civ_max_order must be 1 or more")
        if not 0 <= self.civ_attribution_share <= 1:
            raise ValueError("civ_attribution_share must be between 0 and 1")
        if self.horizon_months < 0:
            raise ValueError("horizon_months must be 0 or more")
        if self.monthly_discount_rate <= -1:
            raise ValueError("monthly_discount_rate must be above -1")
        share = self.crv_unknown_type2_share
        if share is not None and not 0 <= share <= 1:
            raise ValueError("crv_unknown_type2_share must be between 0 and 1")
        kappa = self.crv_value_credibility
        if kappa is not None and kappa < 0:
            raise ValueError("crv_value_credibility must be 0 or more")
        for name in ("quadrant_clv_quantile", "quadrant_crv_quantile"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
