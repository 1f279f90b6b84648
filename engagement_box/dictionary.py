"""The data dictionary: what every table and column analysts read means, written once.

One entry per table of the `marts` schema: its grain and key, and for each column its type and a
one-line definition (unit, currency, how it is computed). Three things are generated from it:
- the `COMMENT ON TABLE / COLUMN` of `marts.*` and `history.*`, written at every publish
  (`comment_on`), so `duckdb_columns().comment` answers in the warehouse itself;
- the column schema of the mart assets in Dagster, known before the first run (`assets/publish.py`);
- docs/DATA_DICTIONARY.md (`markdown()`; `tests/test_data_dictionary.py` keeps it equal, and the
  end-to-end test keeps the registry equal to the warehouse after a sample run).

One name, one meaning: `frequency`, `recency` and `monetary_value` are the purchase models'
inputs (repeat purchases, time between first and last order, mean repeat order value) wherever
they appear; the RFM inputs are `order_count`, `days_since_last_order` and `total_spend`.

No Dagster import here.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import duckdb
import polars as pl

from engagement_box.engagement.personas import DEFAULT_FEATURES
from engagement_box.engagement.quadrants import QUADRANTS
from engagement_box.sql import columns as catalog_columns
from engagement_box.sql import load_sql, quote_identifier, quote_literal, table_exists
from engagement_box.staging.contracts import SOCIAL_PLATFORMS
from engagement_box.value.horizons import DAY_HORIZONS, RANGE_HORIZON
from engagement_box.value.rfm import PROSPECT, SEGMENTS


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the DuckDB type in the warehouse
    description: str
    # The documented set of values (checked on the customer mart before publish).
    accepted_values: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The description with its documented values: the one text of the data dictionary,
        the warehouse's COMMENT ON and the Dagster column schema."""
        if not self.accepted_values:
            return self.description
        return (
            f"{self.description} Values: " + ", ".join(f"`{v}`" for v in self.accepted_values) + "."
        )


@dataclass(frozen=True)
class Table:
    name: str
    description: str  # grain, key, what it is for
    key: tuple[str, ...]  # one row per key value per version
    columns: tuple[Column, ...] = field(default_factory=tuple)
    versioned: bool = True  # published with history.<name> and marts.<name>_at(snapshot_id)
    kind: str = "TABLE"  # or VIEW

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


AS_OF = Column(
    "as_of",
    "DATE",
    "The version's as-of date: only orders, reviews, social events and referrals up to the end "
    "of this day count.",
)
CHOICE_AS_OF = Column(
    "choice_as_of",
    "DATE",
    "The as-of whose holdout chose the purchase model: as_of itself, or an earlier as-of whose"
    " choice is still in force (ENGAGEMENT_MODEL_CHOICE_DAYS); then the calibration rows are"
    " that as-of's.",
)
CUSTOMER_ID = Column(
    "customer_id",
    "VARCHAR",
    "The resolved customer (identity links: the customer's id, else the owner of the email; a "
    "buyer without a profile keeps the order's customer id). Pseudonymous, no personal data.",
)
CURRENCY = Column(
    "currency",
    "VARCHAR",
    "The reporting currency of every money column of the row (ENGAGEMENT_CURRENCY).",
)
SNAPSHOT_ID = Column(
    "snapshot_id",
    "BIGINT",
    "The version these rows belong to (marts.snapshots.snapshot_id); only in history.<mart>.",
)
PARTITION_KEY = Column(
    "partition_key",
    "VARCHAR",
    "The month the run was launched for (its partition), as the month's first day (e.g. "
    "'2026-12-01'); NULL when ENGAGEMENT_AS_OF pinned the date. as_of is the earliest of that "
    "month's last day, the day of the last completed order staged and the run's day, so it can "
    "be months earlier (a run of 2026-12 on orders that end in June has as_of 2026-06-30).",
)
SEGMENT_VALUES = (*SEGMENTS, PROSPECT)
SEGMENT = Column(
    "segment",
    "VARCHAR",
    "The RFM segment from the R x F grid of docs/METRICS.md; 'Prospect' for a customer with a "
    "profile and no completed order. NULL in marts.customer (with order_count and total_spend) "
    "for a customer whose completed orders up to the as-of date are all left out of the value "
    "models for want of an FX rate: they bought, so they are no prospect, and they have no row "
    "in marts.customer_rfm.",
    accepted_values=SEGMENT_VALUES,
)
# The rows of a table where a column of documented values may be NULL, and only those: the
# customers whose completed orders are all left out for want of an FX rate: no customer_rfm row
# (segment NULL with order_count in the customer mart) and no CLV (quadrant NULL with clv, in
# the customer mart and engagement_value) (`value_problems`).
NULL_ALLOWED: Mapping[str, Mapping[str, pl.Expr]] = MappingProxyType(
    {
        "customer": MappingProxyType(
            {"segment": pl.col("order_count").is_null(), "quadrant": pl.col("clv").is_null()}
        ),
        "engagement_value": MappingProxyType({"quadrant": pl.col("clv").is_null()}),
    }
)
SEGMENT_PLAY = Column(
    "segment_play",
    "VARCHAR",
    "The marketing play for the segment, in words (the play of its audience files).",
)
QUADRANT_PLAY = Column(
    "quadrant_play",
    "VARCHAR",
    "The marketing play for the quadrant, in words (the play of its audience files).",
)
QUADRANT = Column(
    "quadrant",
    "VARCHAR",
    "Kumar's CLV x CRV quadrant (names start with 'CEV', never an RFM segment): high CLV = above "
    "the ENGAGEMENT_QUADRANT_CLV_QUANTILE of buyers' CLV; high CRV = at least one credited "
    "referral and a CRV above half a cent and above the ENGAGEMENT_QUADRANT_CRV_QUANTILE of "
    "referrers' CRV; CEV Costly Referrers = at least one credited referral and a CRV below "
    "minus half a cent (a CRV within half a cent of 0 is none; a customer who never referred "
    "is low CRV whatever their CRV's sign). NULL, with clv and cev, for a customer whose "
    "completed orders up to the as-of date are all left out of the value models for want of an "
    "FX rate (unvalued: no CLV to be high or low; they are in no quadrant audience), unless "
    "they are CEV Costly Referrers, which holds whatever the CLV.",
    accepted_values=QUADRANTS,
)

# The columns marts.snapshot_log and its view marts.snapshots share, before and after the
# view's own (is_current, stands_for_as_of).
_LOG_HEAD = (
    Column("snapshot_id", "BIGINT", "The version's id, increasing with each publish."),
    Column(
        "published_at",
        "TIMESTAMP",
        "When it was published (UTC; the host's local time in a version published before "
        "2026-12-07).",
    ),
    Column("run_id", "VARCHAR", "The Dagster run that published it."),
    PARTITION_KEY,
    Column("as_of", "DATE", "The version's as-of date."),
    Column("settings", "JSON", "Every setting that changes the numbers."),
    Column(
        "tables",
        "JSON",
        "Rows of each mart in this version when it was published (an erasure since "
        "then deletes rows from history.*, not from this count).",
    ),
)
_LOG_TAIL = (
    Column(
        "inputs_fingerprint",
        "VARCHAR",
        "Hash of the files, erasures, settings and code the version was computed from.",
    ),
    Column(
        "expired_at",
        "TIMESTAMP",
        "When retention (or a retirement: retired_at) dropped its history rows, or NULL.",
    ),
    Column(
        "retired_at",
        "TIMESTAMP",
        "When an operator retired the version by hand (engagement-box retire: a version "
        "computed from a bad export), or NULL; expired_at is the same time.",
    ),
    Column(
        "retired_reason",
        "VARCHAR",
        "Why it was retired, as the operator wrote it (retire --reason), or NULL.",
    ),
)

_MONEY = "reporting currency"
# What an analyst filtering on p_alive must know (BG/NBD's one-time buyers).
P_ALIVE_CAVEAT = (
    " Under BG/NBD (the model `chosen` in marts.model_fit) a customer with no repeat purchase"
    " (frequency 0: orders on one day only) is 1.0 however long ago they bought: the model lets"
    " customers drop out only right after a repeat purchase. Read their recency"
    " (days_since_last_order in marts.customer_rfm, the segment) instead."
)
_LABELS = {
    "days_since_last_order": "days since the last completed order",
    "order_count": "completed orders",
    "total_spend": f"total spend of completed orders ({_MONEY})",
    "clv": f"CLV ({_MONEY})",
    "crv": f"CRV ({_MONEY})",
    "civ": f"CIV ({_MONEY})",
    "ckv": f"CKV ({_MONEY})",
    "social_points": "social points",
}


def _persona_feature_columns() -> tuple[Column, ...]:
    means = tuple(
        Column(
            f"mean_{f}",
            "DOUBLE",
            f"Mean {_LABELS.get(f, f)} of the persona's customers (raw values, prospects absent).",
        )
        for f in DEFAULT_FEATURES
    )
    zs = tuple(
        Column(
            f"z_{f}",
            "DOUBLE",
            f"Mean standardised {_LABELS.get(f, f)} of the persona (log-scaled unless linear, "
            "then z-scored over the version's clustered customers; 0 = their mean, also "
            "between persona refits).",
        )
        for f in DEFAULT_FEATURES
    )
    return means + zs


TABLES: tuple[Table, ...] = (
    Table(
        "customer",
        "One row per resolved customer: profile attributes analysts filter by, the "
        "RFM segment, CEV quadrant, persona and every value metric (the play each segment and "
        "quadrant calls for: marts.customer_rfm.segment_play, "
        "marts.engagement_value.quadrant_play). Key: customer_id. Start here.",
        key=("customer_id",),
        columns=(
            CUSTOMER_ID,
            Column(
                "has_profile",
                "BOOLEAN",
                "True when the customer has a staged profile (staging.customers, merged per "
                "person); false for a buyer known only from orders (then the profile columns are "
                "NULL).",
            ),
            Column(
                "country",
                "VARCHAR",
                "Two-letter country code (upper case), from the person's newest profile.",
            ),
            Column(
                "marketing_consent",
                "BOOLEAN",
                "Marketing consent when the version was computed: true only when every profile "
                "of the person says true (the most restrictive answer wins; a profile's is its "
                "latest customers file's word). A version keeps the consent of its day, even one "
                "withdrawn since (the current one too, until a run publishes after the "
                "withdrawal): take contact lists only from the audience files, which follow the "
                "consent of now.",
            ),
            Column(
                "loyalty_member",
                "BOOLEAN",
                "Loyalty programme membership: true when any profile of the person is a member.",
            ),
            Column("signup_date", "DATE", "The person's earliest signup day over their profiles."),
            SEGMENT,
            QUADRANT,
            Column(
                "persona",
                "VARCHAR",
                "The behavioural persona's name (marts.customer_persona); NULL for prospects and "
                "for customers whose completed orders are all without an FX rate, who are not "
                "clustered.",
            ),
            Column(
                "order_count",
                "BIGINT",
                "Completed orders up to the as-of date (the F of RFM; orders without an FX rate "
                "left out); 0 for prospects; NULL, with the segment, for a customer whose "
                "completed orders are all without an FX rate.",
            ),
            Column(
                "total_spend",
                "DOUBLE",
                f"Total net amount of completed orders up to the as-of date ({_MONEY}; orders "
                "without an FX rate left out); 0 for prospects; NULL, with the segment, for a "
                "customer whose completed orders are all without an FX rate.",
            ),
            Column(
                "p_alive",
                "DOUBLE",
                "Probability the customer is still active (chosen purchase model, 0..1); NULL "
                "for prospects and for customers whose completed orders are all without an FX "
                "rate." + P_ALIVE_CAVEAT,
            ),
            Column(
                "clv",
                "DOUBLE",
                f"Customer lifetime value ({_MONEY}), as in engagement_value (NULL, with the "
                f"segment, for a customer whose completed orders are all without an FX rate).",
            ),
            Column("crv", "DOUBLE", f"Customer referral value ({_MONEY}), as in engagement_value."),
            Column(
                "civ", "DOUBLE", f"Customer influence value ({_MONEY}), as in engagement_value."
            ),
            Column(
                "ckv", "DOUBLE", f"Customer knowledge value ({_MONEY}), as in engagement_value."
            ),
            Column(
                "cev",
                "DOUBLE",
                f"Customer engagement value = clv + crv + civ + ckv ({_MONEY}); NULL with clv "
                f"for an unvalued customer (their CRV, CIV and CKV are in their own columns).",
            ),
            CURRENCY,
            AS_OF,
        ),
    ),
    Table(
        "customer_rfm",
        "One row per customer (buyers and prospects): RFM inputs, 1-5 scores, "
        "segment and its play (segment_play, NULL in versions published before 2026-12-06). "
        "A buyer whose completed orders are all left out for want of an FX rate has no row "
        "(nor is a prospect). Key: customer_id.",
        key=("customer_id",),
        columns=(
            CUSTOMER_ID,
            Column(
                "days_since_last_order",
                "BIGINT",
                "Whole days from the last completed order's day to the as-of day (the R of RFM); "
                "NULL for prospects.",
            ),
            Column(
                "order_count",
                "BIGINT",
                "Completed orders up to the as-of date (the F of RFM); 0 for prospects.",
            ),
            Column(
                "total_spend",
                "DOUBLE",
                f"Total net amount of those orders (the M of RFM; {_MONEY}); 0 for prospects.",
            ),
            Column(
                "r_score",
                "TINYINT",
                "Recency score 1-5 by quintile, 5 = most recent; equal values share a score; "
                "NULL for prospects.",
            ),
            Column(
                "f_score",
                "TINYINT",
                "Order-count score 1-5 by quintile, 5 = most orders; NULL for prospects.",
            ),
            Column(
                "m_score",
                "TINYINT",
                "Spend score 1-5 by quintile, 5 = highest spend; NULL for prospects.",
            ),
            Column("rfm_cell", "VARCHAR", "The R x F cell, e.g. 'R5F4'; NULL for prospects."),
            SEGMENT,
            SEGMENT_PLAY,
            AS_OF,
        ),
    ),
    Table(
        "customer_value",
        "One row per buyer (a completed order by the as-of date): the purchase "
        "model's inputs and predictions. Key: customer_id.",
        key=("customer_id",),
        columns=(
            CUSTOMER_ID,
            Column(
                "frequency",
                "BIGINT",
                "Repeat purchases: distinct order days - 1 (the purchase models' x; not the "
                "order count).",
            ),
            Column(
                "recency",
                "DOUBLE",
                "Time between the first and the last order day, in time_unit (the models' t_x; "
                "not the days since the last order).",
            ),
            Column("T", "DOUBLE", "Time from the first order day to the as-of date, in time_unit."),
            Column(
                "monetary_value",
                "DOUBLE",
                f"Mean spend per repeat order day, first day excluded ({_MONEY}); 0 when "
                "frequency = 0.",
            ),
            Column(
                "p_alive",
                "DOUBLE",
                "Probability the customer is still active at the as-of date (0..1)."
                + P_ALIVE_CAVEAT,
            ),
            Column("p_churn", "DOUBLE", "1 - p_alive."),
            *(
                Column(
                    f"expected_purchases_{d}d",
                    "DOUBLE",
                    f"Expected repeat purchases in the {d} days after the as-of date.",
                )
                for d in DAY_HORIZONS
            ),
            *(
                Column(
                    f"expected_purchases_{RANGE_HORIZON}d_{side}",
                    "DOUBLE",
                    f"{nth} percentile of expected_purchases_{RANGE_HORIZON}d from the "
                    "parameters' uncertainty.",
                )
                for side, nth in (("p10", "10th"), ("p90", "90th"))
            ),
            Column(
                "expected_order_value",
                "DOUBLE",
                f"Expected spend per future order, Gamma-Gamma E[M] ({_MONEY}).",
            ),
            Column(
                "clv",
                "DOUBLE",
                f"Discounted margin of the expected purchases over ENGAGEMENT_CLV_HORIZON_MONTHS "
                f"({_MONEY}).",
            ),
            Column("clv_p10", "DOUBLE", f"10th percentile of clv ({_MONEY})."),
            Column("clv_p90", "DOUBLE", f"90th percentile of clv ({_MONEY})."),
            Column(
                "model",
                "VARCHAR",
                "The purchase model that scored the row: bgnbd, mbgnbd or pareto_nbd.",
            ),
            Column("time_unit", "VARCHAR", "Unit of recency and T: D (days) or W (weeks)."),
            CURRENCY,
            AS_OF,
        ),
    ),
    Table(
        "engagement_value",
        "One row per customer (profiles signed up by the as-of date and buyers): "
        "CLV, CRV, CIV, CKV, CEV and the CLV x CRV quadrant. Key: customer_id. Money in the "
        "reporting currency (column currency, NULL in versions published before 2026-12-06).",
        key=("customer_id",),
        columns=(
            CUSTOMER_ID,
            Column(
                "buyer",
                "BOOLEAN",
                "True when the customer has a CLV (a completed order the value models value); "
                "false for prospects and for the unvalued (clv NULL).",
            ),
            Column(
                "clv",
                "DOUBLE",
                f"CLV from marts.customer_value; 0 for prospects (no completed order) "
                f"({_MONEY}). NULL for a customer whose completed orders up to the as-of date "
                f"are all left out of the value models for want of an FX rate (unvalued: a CLV "
                f"of 0 would be a claim nobody measured).",
            ),
            Column(
                "crv",
                "DOUBLE",
                f"Customer referral value: present value of the referrals expected over the CLV "
                f"horizon = expected referrals x value per referral, discounted ({_MONEY}). A "
                f"customer who has not referred anyone yet has one too, from the referral rate "
                f"expected of a customer exposed as long as they were. 0 for everyone when no "
                f"referral is staged: nothing measured (the check "
                f"engagement_sources_are_current warns).",
            ),
            Column(
                "crv_realized",
                "DOUBLE",
                f"What the customer's past credited referrals are worth today; not in CEV "
                f"({_MONEY}).",
            ),
            Column(
                "crv_referrals",
                "BIGINT",
                "Credited referrals so far: converted by the as-of, referrer and referee both "
                "matched to a customer, not the referrer themself after identities merged, a "
                "referee who was not a customer already, the referee's first conversion, and "
                "rewarded.",
            ),
            Column(
                "crv_expected_referrals",
                "DOUBLE",
                "Expected credited referrals over the CLV horizon, from the referral model "
                "the run fitted (its `referral_model` metadata says which): BG/NBD's "
                "conditional expectation; its limit of one chance to stop for everyone when "
                "BG/NBD's a + b run to infinity or are not identified; the Poisson-Gamma "
                "(NBD) rate x months when fewer than 10 customers have a credited referral or "
                "neither dropout model can be fitted.",
            ),
            Column(
                "crv_value_per_referral",
                "DOUBLE",
                f"Value of one credited referral: the mean value of the customer's past "
                f"referees acquired within the CLV horizon before the as-of, shrunk toward "
                f"everyone's such mean (mu) by the credibility kappa; a customer with no such "
                f"referee gets mu (mu is over all credited referees when nobody's is that "
                f"recent) "
                f"(ENGAGEMENT_CRV_VALUE_CREDIBILITY, estimated when unset; the kappa a run "
                f"used is in its work/engagement_value step's metadata, `referral_model`; "
                f"when referrers' referees differ no more than chance would make them, every "
                f"customer gets everyone's mean) ({_MONEY}).",
            ),
            Column(
                "civ",
                "DOUBLE",
                f"Customer influence value = civ_gained - civ_ceded; sums to 0 over customers "
                f"({_MONEY}).",
            ),
            Column(
                "civ_gained",
                "DOUBLE",
                f"CLV share moved to this customer from the customers they influence ({_MONEY}).",
            ),
            Column(
                "civ_ceded",
                "DOUBLE",
                f"This customer's CLV share moved to their influencers ({_MONEY}); 0 for an "
                f"unvalued customer (clv NULL: no value of theirs to move).",
            ),
            Column(
                "cie",
                "DOUBLE",
                "Customer influence effect: this customer's share of all influence in the social "
                "network (S = beta W + beta^2 W^2), 0..1, sums to 1 over customers (0 for "
                "everyone when no social interaction is staged).",
            ),
            Column(
                "ckv_reviews",
                "DOUBLE",
                f"Value of the customer's reviews: each weighs (1 + ln(1 + helpful votes)) x "
                f"(1 verified, 0.5 not) x the value per review ({_MONEY}).",
            ),
            Column(
                "ckv_ideas",
                "DOUBLE",
                f"Value of the customer's ideas; 0, the exports carry no ideas ({_MONEY}).",
            ),
            Column(
                "ckv", "DOUBLE", f"Customer knowledge value = ckv_reviews + ckv_ideas ({_MONEY})."
            ),
            Column("review_count", "BIGINT", "Reviews written up to the as-of date."),
            Column(
                "cev",
                "DOUBLE",
                f"Customer engagement value = clv + crv + civ + ckv ({_MONEY}); NULL with clv "
                f"for an unvalued customer (their CRV, CIV and CKV are in their own columns).",
            ),
            Column(
                "social_points",
                "DOUBLE",
                "Social points on every platform, for the customer's own actions (each social "
                "event counts for its actor, not for the customer reacted to), each event its "
                "type's points: "
                "ENGAGEMENT_SOCIAL_POINTS over the defaults like/pin/tweet 1, comment 5, "
                "share/retweet 10, mention 5 (the version's own setting is `social_points_json` "
                "in marts.snapshots.settings, null for the defaults).",
            ),
            *(
                Column(f"social_points_{p}", "DOUBLE", f"Social points on {p}.")
                for p in SOCIAL_PLATFORMS
            ),
            Column("clv_high", "BOOLEAN", "A buyer whose CLV is above the quadrant's CLV cut."),
            Column(
                "crv_high",
                "BOOLEAN",
                "A credited referrer whose CRV is above the quadrant's CRV cut and above half a "
                "cent (a CRV within half a cent of 0 is no referral value).",
            ),
            Column(
                "crv_losing",
                "BOOLEAN",
                "A credited referrer whose expected referral value (CRV) is below minus half a "
                "cent: their referrals are expected to cost more than they bring.",
            ),
            QUADRANT,
            QUADRANT_PLAY,
            CURRENCY,
            AS_OF,
        ),
    ),
    Table(
        "customer_persona",
        "One row per clustered customer (every customer with a completed order): "
        "their behavioural persona. Key: customer_id.",
        key=("customer_id",),
        columns=(
            CUSTOMER_ID,
            Column(
                "persona_id",
                "INTEGER",
                "The k-means cluster, 0..k-1; see marts.persona_profile. Numbered per persona "
                "model: a refit numbers its clusters anew, so compare versions by this id only "
                "where they used the same model (marts.persona_profile's model_fitted_as_of "
                "says when), else by `persona`.",
            ),
            Column(
                "persona",
                "VARCHAR",
                "The persona's name: the label of its most distinctive feature, and of the "
                "second one when it sets the persona apart too (the two in the features' "
                "order, as marts.persona_profile lists them). A label is used only when the "
                "persona's standardised mean on its feature is at least 0.5 from 0, and a label "
                "saying what members do (Referrers, Influencers, Influenced, Reviewers, Silent, "
                "Socially active, Socially quiet) only when more than half of the persona's "
                "members do it (Referrers: a credited referral, crv_referrals > 0; Reviewers: "
                "a review; Silent: none); 'Other buyers' when no label qualifies "
                "(docs/METRICS.md, Personas). Labels compare the persona with "
                "all buyers when the persona model was fitted (its standardised mean against "
                "theirs, 0: marts.persona_profile's z_ columns), not with the other personas: "
                "Recent buyers ordered more recently than buyers on average, perhaps less "
                "recently than another persona; Occasional buyers buy less often than buyers "
                "on average, not once.",
            ),
            AS_OF,
        ),
    ),
    Table(
        "persona_profile",
        "One row per persona: size, feature means and z-scores. Key: persona_id. "
        "Money means in the reporting currency (column currency, NULL in versions published "
        "before 2026-12-06).",
        key=("persona_id",),
        columns=(
            Column("persona_id", "INTEGER", "The k-means cluster, 0..k-1."),
            Column("persona", "VARCHAR", "The persona's name."),
            Column("size", "BIGINT", "Customers in the persona."),
            Column("share", "DOUBLE", "size / all clustered customers (0..1)."),
            *_persona_feature_columns(),
            Column(
                "model_fitted_as_of",
                "DATE",
                "The as-of of the persona model's fit that assigned this version's customers. "
                "A later date is a refit, which numbers and names its personas anew. A refit "
                "at the same as-of keeps the date (ENGAGEMENT_PERSONA_REFIT_DAYS=0, or a "
                "setting, the model code or an erasure changed since the fit: the persona "
                "step's metadata says refit and why), so two versions with the same date used "
                "the same model (centres, persona_id and names correspond) only when no run "
                "between them refitted. NULL in versions published before the column "
                "(2026-12-05).",
            ),
            CURRENCY,
            AS_OF,
        ),
    ),
    Table(
        "cohort_retention",
        "One row per first-order month (cohort) and month since the first order, up to the "
        "as-of month: how many of the cohort's customers ordered again. Key: "
        "cohort_month, months_since_first_order.",
        key=("cohort_month", "months_since_first_order"),
        columns=(
            Column(
                "cohort_month",
                "DATE",
                "First day of the month of the customers' first completed order.",
            ),
            Column(
                "months_since_first_order",
                "INTEGER",
                "Calendar months from the cohort month to the activity month (0 = the first "
                "order's month).",
            ),
            Column(
                "cohort_customers",
                "BIGINT",
                "Customers whose first completed order is in cohort_month.",
            ),
            Column(
                "active_customers",
                "BIGINT",
                "Of those, customers with a completed order in the activity month.",
            ),
            Column("orders", "BIGINT", "Completed orders of the cohort in the activity month."),
            Column(
                "revenue",
                "DOUBLE",
                f"Net amount of those orders ({_MONEY}; orders without an FX rate left out).",
            ),
            Column(
                "retention_share",
                "DOUBLE",
                "active_customers / cohort_customers (0..1); the as-of month counts only up to "
                "the as-of date.",
            ),
            CURRENCY,
            AS_OF,
        ),
    ),
    Table(
        "model_fit",
        "One row per model (BG/NBD, MBG/NBD, Pareto/NBD, Gamma-Gamma) and window (full, "
        "calibration); while an earlier choice of the purchase model is carried, "
        "the candidates not chosen have their calibration row only (they are fitted on the "
        "full window when the model is chosen). Key: model, window.",
        key=("model", "window"),
        columns=(
            Column("model", "VARCHAR", "bgnbd, mbgnbd, pareto_nbd or gamma_gamma."),
            Column(
                "window",
                "VARCHAR",
                "full (orders up to the as-of date) or calibration (up to the calibration end)."
                ' `window` is a word of SQL: quote it, `"window"`.',
            ),
            Column("window_end", "DATE", "Last day of the window's orders."),
            Column("time_unit", "VARCHAR", "The unit of the fit's time: D (days) or W (weeks)."),
            Column("converged", "BOOLEAN", "The optimiser converged to finite parameters."),
            Column(
                "message", "VARCHAR", "The optimiser's message: `converged`, or why it stopped."
            ),
            Column("reason", "VARCHAR", "Why the fit failed, in words; NULL when it converged."),
            Column("r", "DOUBLE", "Purchase rate Gamma shape r (purchase models)."),
            Column("alpha", "DOUBLE", "Purchase rate Gamma scale alpha, in time_unit."),
            Column("a", "DOUBLE", "Dropout Beta parameter a (BG/NBD, MBG/NBD)."),
            Column("b", "DOUBLE", "Dropout Beta parameter b (BG/NBD, MBG/NBD)."),
            Column("p", "DOUBLE", "Gamma-Gamma spend shape p."),
            Column("q", "DOUBLE", "Gamma-Gamma shape q of the spend scale."),
            Column("gamma", "DOUBLE", "Gamma-Gamma scale gamma (lifetimes' v)."),
            Column(
                "params",
                "VARCHAR",
                "Every fitted parameter as JSON (Pareto/NBD: r, alpha, s, beta).",
            ),
            Column(
                "log_likelihood", "DOUBLE", "Total log-likelihood of the fit, in the data's units."
            ),
            Column("n_customers", "BIGINT", "Customers the fit used."),
            Column("n_rows", "BIGINT", "Distinct grouped rows the fit ran on."),
            Column("penalizer", "DOUBLE", "L2 penalizer (ENGAGEMENT_PENALIZER; 0 by default)."),
            Column("fit_seconds", "DOUBLE", "Seconds the fit took."),
            Column(
                "chosen",
                "BOOLEAN",
                "The purchase model used to score customers (BG/NBD, MBG/NBD or Pareto/NBD). "
                "Always false on the Gamma-Gamma rows, the spend model every CLV uses: "
                "`WHERE (chosen OR model = 'gamma_gamma') AND \"window\" = 'full'` keeps the "
                "fits the scores used.",
            ),
            Column("library_versions", "VARCHAR", "Versions of the numeric libraries, as JSON."),
            Column("fitted_at", "TIMESTAMP", "When the fit ran (UTC)."),
            Column(
                "frequency_spend_correlation",
                "VARCHAR",
                "Pearson and Spearman correlation of repeat purchases and mean repeat spend "
                "(full window), as JSON: Gamma-Gamma assumes none.",
            ),
            CHOICE_AS_OF,
            Column(
                "choice_reason",
                "VARCHAR",
                "Why the chosen model is the one in force, as said when it was chosen on the"
                " holdout of choice_as_of (the rule: BG/NBD kept unless a rival's squared error"
                " per customer is lower by more than 2 standard errors of the paired difference"
                " and by 0.1 %;"
                " or pinned by ENGAGEMENT_PURCHASE_MODEL); NULL when no model was chosen.",
            ),
            AS_OF,
        ),
    ),
    Table(
        "model_validation",
        "One row per purchase model and calibration frequency bucket: the calibration "
        "fit's predicted holdout purchases against the actual. Key: model, frequency_bucket.",
        key=("model", "frequency_bucket"),
        columns=(
            Column("model", "VARCHAR", "bgnbd, mbgnbd or pareto_nbd."),
            Column(
                "frequency_bucket",
                "VARCHAR",
                "Repeat purchases in the calibration window: 0..6, or 7+.",
            ),
            Column("customers", "BIGINT", "Customers in the bucket."),
            Column("actual_mean", "DOUBLE", "Mean actual repeat purchases in the holdout."),
            Column("predicted_mean", "DOUBLE", "Mean predicted repeat purchases in the holdout."),
            Column("converged", "BOOLEAN", "The model's calibration fit converged."),
            Column("total_actual", "DOUBLE", "Actual holdout repeat purchases, all customers."),
            Column(
                "total_predicted", "DOUBLE", "Predicted holdout repeat purchases, all customers."
            ),
            Column(
                "total_error_pct",
                "DOUBLE",
                "(total_predicted - total_actual) / total_actual x 100.",
            ),
            Column(
                "mae_per_customer",
                "DOUBLE",
                "Mean absolute error of a customer's holdout purchases.",
            ),
            Column(
                "mse_per_customer",
                "DOUBLE",
                "Mean squared error of a customer's holdout purchases: what the choice compares.",
            ),
            Column(
                "calibration_log_likelihood",
                "DOUBLE",
                "The calibration fit's log-likelihood.",
            ),
            Column(
                "chosen",
                "BOOLEAN",
                "The model in force: chosen on this holdout (BG/NBD kept unless a rival's"
                " squared error is clearly lower) or pinned by ENGAGEMENT_PURCHASE_MODEL; why:"
                " marts.model_fit's choice_reason.",
            ),
            Column(
                "calibration_end",
                "DATE",
                "Last day of the calibration window of the as-of that chose (choice_as_of); the"
                " holdout runs from the next day to choice_as_of.",
            ),
            CHOICE_AS_OF,
            AS_OF,
        ),
    ),
    Table(
        "segment_migration",
        "One row per consecutive pair of retained versions in as-of order (one version per "
        "as-of: its newest publish; not a version a later run replaced when the data moved "
        "back under it), dimension and move: how many customers moved between RFM "
        "segments or CEV quadrants and the CEV they carry. The two versions may have been "
        "computed with different settings (a quadrant cut, ENGAGEMENT_CURRENCY), and then a "
        "move or a change of CEV can be the setting's: compare the two versions' "
        "marts.snapshots.settings (docs/METRICS.md, Segment migration). Not versioned. Key: "
        "from_snapshot, to_snapshot, dimension, from_value, to_value.",
        key=("from_snapshot", "to_snapshot", "dimension", "from_value", "to_value"),
        versioned=False,
        columns=(
            Column("from_snapshot", "BIGINT", "The earlier version."),
            Column("to_snapshot", "BIGINT", "The next version in as-of order."),
            Column("dimension", "VARCHAR", "rfm_segment or quadrant."),
            Column(
                "from_value",
                "VARCHAR",
                "Segment or quadrant in from_snapshot; '(none)' if absent; '(unvalued)' for a "
                "customer there whose completed orders were all without an FX rate (no segment, "
                "CEV NULL, and no quadrant unless CEV Costly Referrers).",
            ),
            Column(
                "to_value",
                "VARCHAR",
                "Segment or quadrant in to_snapshot; '(none)' if absent; '(unvalued)' as in "
                "from_value.",
            ),
            Column("moved", "BOOLEAN", "from_value differs from to_value."),
            Column("customers", "BIGINT", "Customers who made this move."),
            Column(
                "cev_from",
                "DOUBLE",
                f"Their CEV in from_snapshot ({_MONEY}); a customer without a row there "
                "('(none)') or unvalued there (CEV NULL) adds nothing.",
            ),
            Column(
                "cev_to",
                "DOUBLE",
                f"Their CEV in to_snapshot ({_MONEY}); a customer without a row there "
                "('(none)') or unvalued there (CEV NULL) adds nothing.",
            ),
        ),
    ),
    Table(
        "snapshot_log",
        "One row per publish, kept after the version expires (audit trail); analysts read the "
        "view marts.snapshots. Not versioned. Key: snapshot_id.",
        key=("snapshot_id",),
        versioned=False,
        columns=(
            *_LOG_HEAD,
            *_LOG_TAIL,
        ),
    ),
    Table(
        "snapshots",
        "The view analysts read: one row per publish (marts.snapshot_log) with is_current. Key: "
        "snapshot_id.",
        key=("snapshot_id",),
        versioned=False,
        kind="VIEW",
        columns=(
            *_LOG_HEAD,
            Column("is_current", "BOOLEAN", "True for exactly the version marts.* holds."),
            Column(
                "stands_for_as_of",
                "BOOLEAN",
                "True for the one retained version that stands for its as-of: its newest "
                "publish, unless a later run replaced it because the data moved back under it "
                "(cancelled orders, an erased buyer). Segment migration runs along these; choose "
                "a version by its as-of with `WHERE as_of = ... AND stands_for_as_of`.",
            ),
            *_LOG_TAIL,
        ),
    ),
    Table(
        "current_version",
        "At most one row: the version marts.* holds. Not versioned.",
        key=("singleton",),
        versioned=False,
        columns=(
            Column("singleton", "BOOLEAN", "Always true: the primary key allows one row."),
            Column("snapshot_id", "BIGINT", "The current version."),
        ),
    ),
    Table(
        "published_from",
        "One row, in the published file only: the working database that built this file. A run "
        "whose working database is another one, while this one still exists, is refused before "
        "it replaces the file. Not versioned.",
        key=("warehouse_id",),
        versioned=False,
        columns=(
            Column(
                "warehouse_id",
                "VARCHAR",
                "The working database's own id (a copy of the warehouse keeps it).",
            ),
            Column("working_database", "VARCHAR", "Where that working database was (a path)."),
            Column(
                "published_file",
                "VARCHAR",
                "Where this file was built (a copy or a move elsewhere is a warehouse of its own).",
            ),
        ),
    ),
)

# The two staging tables the published file also holds, for the data engineers (not versioned:
# the file holds them as the last run left them). Their COMMENT ON is written when the ingest
# creates them (`comment_on_staging`) and copied into the published file.
STAGING_TABLES: tuple[Table, ...] = (
    Table(
        "quarantine",
        "One row per raw export row that failed its contract, with why (docs/CONTRACTS.md, "
        "Quarantine reasons). Every raw row is either staged (staging.<source>) or here. Key: "
        "source, source_file, source_row.",
        key=("source", "source_file", "source_row"),
        versioned=False,
        columns=(
            Column(
                "source",
                "VARCHAR",
                "The export: orders, customers, reviews, social, referrals or fx_rates.",
            ),
            Column(
                "source_file",
                "VARCHAR",
                "The file the row was read from, relative to "
                "ENGAGEMENT_DATA_DIR (e.g. orders/orders_2026-03.csv).",
            ),
            Column(
                "source_row",
                "BIGINT",
                "The row's 1-based record number in its file (the CSV header not counted).",
            ),
            Column(
                "column",
                "VARCHAR",
                "The column of the first failure (NULL for a rule on the whole row)."
                ' `column` is a word of SQL: quote it, `"column"`.',
            ),
            Column(
                "reason",
                "VARCHAR",
                "The first failure, in the order of docs/CONTRACTS.md's "
                "table of reasons (e.g. malformed, duplicate_key, unparseable_timestamp).",
            ),
            Column(
                "detail",
                "VARCHAR",
                "What exactly failed, in words (the rule's bound and the value it refused, "
                "whether a repeated key was staged before or earlier in this ingest); NULL when "
                "the reason says it all. Masked in the published file as raw_values is.",
            ),
            Column(
                "reasons",
                "VARCHAR[]",
                "Every failure of the row, as 'column:reason' ('row:reason' for row rules).",
            ),
            Column(
                "raw_values",
                "JSON",
                "The row as it was read, every value as text: what to "
                "correct in the export. In the published file its emails and handles are "
                "masked (j***@gmail.com, @j***, c***: personal fields whole, emails and @handles "
                "in the others and in detail); the working database keeps them, and "
                "source_file, source_row find the row in the export. An erasure deletes the "
                "rows that name the person.",
            ),
            Column("run_id", "VARCHAR", "The run that quarantined it (Dagster's run id)."),
            Column("quarantined_at", "TIMESTAMP", "When it was quarantined (UTC)."),
        ),
    ),
    Table(
        "ingested_files",
        "One row per export file taken in: its content hash, how many rows it had and where "
        "they went (rows_read = rows_staged + rows_quarantined when it was taken in). A file "
        "whose path and content "
        "are here is not read again. Key: source, source_file.",
        key=("source", "source_file"),
        versioned=False,
        columns=(
            Column(
                "source",
                "VARCHAR",
                "The export: orders, customers, reviews, social, referrals or fx_rates.",
            ),
            Column(
                "source_file",
                "VARCHAR",
                "The file's path relative to ENGAGEMENT_DATA_DIR "
                "when it was taken in; its staged rows carry the same source_file.",
            ),
            Column(
                "sha256",
                "VARCHAR",
                "SHA-256 of the file's bytes: a changed file is read "
                "again, a copy under another name is recognised.",
            ),
            Column("size_bytes", "BIGINT", "The file's size when last seen."),
            Column(
                "mtime_ns",
                "BIGINT",
                "The file's modification time when last seen (nanoseconds since 1970).",
            ),
            Column("rows_read", "BIGINT", "Data rows read from the file."),
            Column("rows_staged", "BIGINT", "Rows of the file staged in staging.<source>."),
            Column("rows_quarantined", "BIGINT", "Rows of the file in staging.quarantine."),
            Column("run_id", "VARCHAR", "The run that took the file in (Dagster's run id)."),
            Column("ingested_at", "TIMESTAMP", "When the file was taken in (UTC)."),
            Column(
                "ctime_ns",
                "BIGINT",
                "The file's status-change time when last seen: with "
                "size and mtime, the same three mean the same file without reading it.",
            ),
            Column(
                "moved_to",
                "VARCHAR",
                "Where the file is now when it was moved or renamed "
                "after it was taken in; NULL: still at source_file.",
            ),
            Column(
                "rules",
                "INTEGER",
                "The version of the ingest's rules the file was taken in "
                "under (contracts.STAGING_RULES): a file taken in under other rules is read "
                "again.",
            ),
            Column(
                "first_taken_in",
                "TIMESTAMP",
                "When the file at this path was first taken in (UTC), kept when it is taken in "
                "again (changed, moved, other rules): a key repeated in files of one ingest is "
                "staged from the file first taken in, then by path. NULL: before it was "
                "recorded (ingested_at stands for it).",
            ),
            Column(
                "content_taken_in",
                "TIMESTAMP",
                "When the file's present content (its sha256) was first taken in (UTC), kept "
                "when the same content is taken in again (moved, other rules): a later "
                "customers file's marketing consent ranks by it, so an opt-out edited into an "
                "older file wins over a repeat taken in before the edit. NULL: before it was "
                "recorded (ingested_at stands for it).",
            ),
        ),
    ),
)
STAGING_BY_NAME: Mapping[str, Table] = {t.name: t for t in STAGING_TABLES}


BY_NAME: Mapping[str, Table] = {t.name: t for t in TABLES}
# The marts each publish copies from work.<name> into history.<name> (marts.<name> views it).
PUBLISHED = tuple(t.name for t in TABLES if t.versioned)


def table(name: str) -> Table:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"marts.{name} is not in the data dictionary (engagement_box/dictionary.py)"
        ) from None


def columns_in(schema: str, name: str) -> tuple[Column, ...]:
    """The columns of `schema.name` as published: history tables start with snapshot_id."""
    if schema == "staging":
        return STAGING_BY_NAME[name].columns
    columns = table(name).columns
    return (SNAPSHOT_ID, *columns) if schema == "history" else columns


def in_documented_order(name: str, names: list[str]) -> list[str]:
    """`names` (columns of mart `name`, of a table or view of it) in the dictionary's order:
    `snapshot_id` first, then the documented columns there are, then any other in its own
    order. A warehouse a column was added to later (ALTER TABLE ... ADD COLUMN appends it)
    reads as a new one does, so a query by position or a `SELECT *` comparison of two
    warehouses gives the same columns. An undocumented table's names are left as they are."""
    entry = BY_NAME.get(name)
    if entry is None:
        return list(names)
    given = set(names)
    documented = [c.name for c in (SNAPSHOT_ID, *entry.columns) if c.name in given]
    placed = set(documented)
    return documented + [n for n in names if n not in placed]


def accepted_values(name: str) -> dict[str, tuple[str, ...]]:
    return {c.name: c.accepted_values for c in table(name).columns if c.accepted_values}


# ----------------------------------------------------------------------------------------------
# In the warehouse


def _existing_columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    return [column for column, _ in catalog_columns(con, schema, name)]


# Columns renamed so that one name has one meaning: (table, old name, new name). A warehouse
# from before the rename gets its columns renamed in work, marts and history, values kept.
RENAMED: tuple[tuple[str, str, str], ...] = (
    ("customer_rfm", "recency_days", "days_since_last_order"),
    ("customer_rfm", "frequency", "order_count"),
    ("customer_rfm", "monetary", "total_spend"),
    *(
        ("persona_profile", f"{prefix}_{old}", f"{prefix}_{new}")
        for prefix in ("mean", "z")
        for old, new in (
            ("recency_days", "days_since_last_order"),
            ("frequency", "order_count"),
            ("monetary", "total_spend"),
        )
    ),
)


# The tables `RENAMED` renames columns of: a write of another table needs no renaming first.
RENAMED_TABLES = frozenset(name for name, _, _ in RENAMED)


def rename_legacy_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Rename the columns of `RENAMED` where a table still has the old name and not the new one
    (work, marts and the versions' rows; `history.<mart>` is a view of them). Returns what was
    renamed, as `schema.table.old -> new`.

    Called before a write of one of `RENAMED_TABLES` and before every publish: one catalog
    query, not one per pair."""
    schemas = ("work", "marts", "history", "history_rows")
    names = sorted({name for name, _, _ in RENAMED})
    existing: dict[tuple[str, str], set[str]] = {}
    for schema, name, column in con.execute(  # base tables: a view shows the renamed columns
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE schema_name IN (SELECT unnest($schemas)) AND table_name IN (SELECT unnest($names)) "
        "AND (schema_name, table_name) IN (SELECT (schema_name, table_name) FROM duckdb_tables())",
        {"schemas": list(schemas), "names": names},
    ).fetchall():
        existing.setdefault((schema, name), set()).add(column)
    done = []
    for schema in schemas:
        for name, old, new in RENAMED:
            columns = existing.get((schema, name), set())
            if old in columns and new not in columns:
                con.execute(
                    load_sql(
                        "marts/rename_legacy_column", schema=schema, table=name, old=old, new=new
                    )
                )
                columns.discard(old)
                columns.add(new)
                done.append(f"{schema}.{name}.{old} -> {new}")
    return done


def _column_identifier(name: str) -> str:
    """A column name of this dictionary, quoted (the dictionary is the allow-list; `T` is upper
    case, which `quote_identifier` refuses)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not an allowed SQL identifier: {name!r}")
    return f'"{name}"'


def comment_statements(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> Iterator[str]:
    """COMMENT ON statements for `schema.name` and each of its columns the dictionary defines.
    DuckDB binds no parameter in COMMENT ON: the texts are this module's constants, quoted as
    literals."""
    entry = STAGING_BY_NAME[name] if schema == "staging" else table(name)
    target = f"{quote_identifier(schema)}.{quote_identifier(name)}"
    # What the warehouse holds under that name: a mart is a view of its current version in
    # `marts` and a table in `history`.
    kind = "TABLE" if table_exists(con, schema, name) else "VIEW"
    description = entry.description
    if schema == "history":  # every retained version's rows: the version is part of the key
        description = "Every retained version's rows, with snapshot_id. " + description.replace(
            "Key: ", "Key: snapshot_id, ", 1
        )
    yield f"COMMENT ON {kind} {target} IS {quote_literal(description)}"
    defined = {c.name: c for c in columns_in(schema, name)}
    for column in _existing_columns(con, schema, name):
        if column in defined:
            yield (
                f"COMMENT ON COLUMN {target}.{_column_identifier(defined[column].name)} "
                f"IS {quote_literal(defined[column].text)}"
            )


def comment_on(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> None:
    """Write the dictionary's descriptions on `schema.name` (in the caller's transaction)."""
    for statement in comment_statements(con, schema, name):
        con.execute(statement)


def comment_on_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Write the descriptions of the staging tables the published file holds."""
    for entry in STAGING_TABLES:
        if table_exists(con, "staging", entry.name):
            comment_on(con, "staging", entry.name)


# ----------------------------------------------------------------------------------------------
# The document


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/DATA_DICTIONARY.md."""
    lines = [
        "# Data dictionary",
        "",
        "Every table and column of the `marts` schema, then the two staging tables the "
        "published file also holds. Generated from `engagement_box/"
        "dictionary.py` (`python -c 'from engagement_box import dictionary; "
        'print(dictionary.markdown(), end="")\' > docs/DATA_DICTIONARY.md`); the same texts are '
        "the warehouse's `COMMENT ON` (`SELECT table_name, column_name, comment FROM "
        "duckdb_columns() WHERE schema_name = 'marts'`) and the column schema of the mart assets "
        "in Dagster.",
        "",
        "Versioned marts: `marts.<name>` is the current version, `history.<name>` every retained "
        "version (the same columns after a first column `snapshot_id`), "
        "`marts.<name>_at(snapshot_id)` one version. Money is in the reporting currency "
        "(`ENGAGEMENT_CURRENCY`, column `currency` where a table has it).",
        "",
        "One name, one meaning: `frequency`, `recency` and `monetary_value` are the purchase "
        "models' inputs (repeat purchases, time between first and last order, mean repeat order "
        "value); the RFM inputs are `order_count`, `days_since_last_order` and `total_spend`. "
        "`Champions` is an RFM segment; the CLV x CRV quadrants all start with `CEV`.",
        "",
    ]
    for entry in TABLES:
        lines += _section("marts", entry)
    lines += [
        "# Also in the published file: the ingest's records",
        "",
        "For the data engineers, as the last run left them (not versioned). The same texts are "
        "their `COMMENT ON` (`schema_name = 'staging'`).",
        "",
    ]
    for entry in STAGING_TABLES:
        lines += _section("staging", entry)
    return "\n".join(lines)


def _section(schema: str, entry: Table) -> list[str]:
    """One table's part of the document: heading, description, versions, column table."""
    lines = [f"## {schema}.{entry.name}", "", entry.description, ""]
    if entry.versioned:
        lines += [f"Versions: `history.{entry.name}`, `marts.{entry.name}_at(snapshot_id)`.", ""]
    lines += ["| column | type | description |", "| --- | --- | --- |"]
    lines += [f"| {c.name} | {c.type} | {_cell(c.text)} |" for c in entry.columns]
    return [*lines, ""]


# ----------------------------------------------------------------------------------------------
# Checks on what analysts read (blocking asset checks before publish)

EXAMPLES = 5


def key_problems(frame: pl.DataFrame, name: str) -> list[str]:
    """Why `frame` is not one row per key of `name` (null or repeated keys); empty when it is."""
    key = list(table(name).key)
    problems = []
    missing = [c for c in key if c not in frame.columns]
    if missing:
        return [f"key column(s) {missing} missing"]
    nulls = frame.filter(pl.any_horizontal(pl.col(key).is_null())).height
    if nulls:
        problems.append(f"{nulls} row(s) with a NULL in the key {', '.join(key)}")
    repeated = frame.group_by(key).len().filter(pl.col("len") > 1).sort(key)
    if repeated.height:
        shown = ["/".join(str(v) for v in row[:-1]) for row in repeated.head(EXAMPLES).iter_rows()]
        problems.append(
            f"{repeated.height} key value(s) on more than one row, e.g. {', '.join(shown)}"
        )
    return problems


def value_problems(frame: pl.DataFrame, name: str) -> list[str]:
    """Columns of `name` with a value outside the documented set (NULL included, except on the
    rows `NULL_ALLOWED` names)."""
    problems = []
    for column, allowed in accepted_values(name).items():
        if column not in frame.columns:
            problems.append(f"{column} missing")
            continue
        ok = pl.col(column).cast(pl.String).is_in(list(allowed)).fill_null(False)
        null_allowed = NULL_ALLOWED.get(name, {}).get(column)
        if null_allowed is not None and set(null_allowed.meta.root_names()) <= set(frame.columns):
            ok = ok | (pl.col(column).is_null() & null_allowed)
        bad = frame.filter(~ok)
        if bad.height:
            values = bad[column].cast(pl.String).unique().sort(nulls_last=True).head(EXAMPLES)
            problems.append(
                f"{bad.height} row(s) with {column} outside the documented values, e.g. "
                + ", ".join("NULL" if v is None else repr(v) for v in values.to_list())
            )
    return problems
