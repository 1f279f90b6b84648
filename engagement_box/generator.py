"""Seeded generator of one retailer's raw exports (orders, customers, reviews, social, referrals).

The bundled sample in `data/sample/` is exactly the output of (from the repository root):

    python -m engagement_box.generator --out data/sample --customers 2500 --seed 20260630

(defaults: window 2023-07-01 .. 2026-06-30 inclusive, 1% bad rows). Same seed and size give
byte-identical files, so `tests/test_generator.py` regenerates the sample and compares bytes.
The run first deletes the source folders and the ground-truth files under `--out` that an
earlier run wrote; it refuses a folder holding export files it did not write.
Scale: 1,000,000 customers give ~10M orders, ~1.1M reviews, ~3M social events and 100k
referrals (~0.9 GB) in about a minute with ~2 GB peak memory on 2 cores.

What the data looks like, so the models downstream have something true to find:

* customers sign up over the window (slightly growing); ~15% never buy (prospects);
* purchases follow the BG/NBD story: each buyer has a rate lambda ~ Gamma(r, alpha) per day and,
  after every purchase, drops out with probability p ~ Beta(a, b); the first purchase is on or after
  the signup date; order values follow Gamma-Gamma: nu ~ Gamma(q, gamma), value ~ Gamma(p, nu)
  (true parameters in `BEHAVIOUR` and in the manifest);
* status mostly completed, some returned / cancelled; each customer has a preferred channel;
* a per-customer share of completed orders gets a review a few days later (ratings skewed
  positive, heavy-tailed helpful votes); some reviews carry only an email, a few come from emails
  of non-customers;
* about a third of customers have one or two social handles; a social graph of own posts
  ("tweet", or "pin" on pinterest) and reactions to other handles' posts, with a heavy-tailed
  (Pareto) popularity, so a few influencers collect most reactions; non-customer handles too;
* referrals by existing customers (a few very active referrers); converted referrals point at a
  real customer who signed up after the invitation (`converted_at` is on that signup date);
* identity mess: emails in orders, reviews and referrals differ in case and surrounding
  whitespace from the customers export, social activity is keyed by handle only (with or without
  "@", in other cases), status / channel / event type / platform sometimes in other cases.

Formats: `customers/customers.csv` (UTF-8 with BOM, CRLF line ends), `orders/orders_YYYY-MM.csv`
one per calendar month, switching to `orders_YYYY-MM.parquet` for the last 6 months,
`reviews/reviews_YYYY.parquet` per year, `social/social_YYYY-Qn.csv` per quarter and
`referrals/referrals.csv`; and `fx_rates/fx_rates.csv`, a rate into USD for GBP and EUR on the
first day of every month, so no order is left out of the value models (no bad rows there).
Every column is written as raw text (Parquet columns are strings).
Timestamps are `YYYY-MM-DD HH:MM:SS`, except social (`YYYY-MM-DDTHH:MM:SS+00:00`); dates are
`YYYY-MM-DD`; booleans `true` / `false`; amounts with two decimals.

Ground truth for the ingest: `<out>/_manifest.json` holds rows per source and per file and the
number of injected bad rows per kind per source; `<out>/_bad_rows.csv` lists every injected bad
row (source, file, 1-based data row, key, kind, column, expected quarantine reason). Bad rows are
either a good row with one defect, or an extra row (`duplicate_exact`: the same row exported again,
later, for orders in the next month's file; `duplicate_key`: an earlier key reused with different,
valid values, right after the original). The first occurrence of a key is the good one.

No Dagster import here: this module is plain Python, run on its own or from the tests.
"""

import argparse
import json
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from engagement_box import settings
from engagement_box.staging.contracts import (
    ORDER_CHANNELS,
    ORDER_STATUSES,
    SOCIAL_EVENT_TYPES,
    SOCIAL_PLATFORMS,
    SOURCES,
)

SECONDS_PER_DAY = 86_400
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
SOCIAL_TS_FORMAT = "%Y-%m-%dT%H:%M:%S+00:00"
DATE_FORMAT = "%Y-%m-%d"
MANIFEST_NAME = "_manifest.json"
PARQUET_ORDER_MONTHS = 6  # the shop's new system exports Parquet: the last months of orders
BAD_ROWS_NAME = "_bad_rows.csv"

FIRST_NAMES = (
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william",
    "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "charles", "karen", "chris", "nancy", "daniel", "lisa", "matthew", "betty", "anthony",
    "margaret", "mark", "sandra", "donald", "ashley", "steven", "kimberly", "paul", "emily",
    "andrew", "donna", "joshua", "michelle", "kenneth", "carol", "kevin", "amanda", "brian",
    "dorothy", "george", "melissa", "timothy", "deborah", "ronald", "stephanie", "jason",
    "rebecca", "edward", "sharon", "jeffrey", "laura", "ryan", "cynthia", "noah", "olivia",
    "liam", "emma", "lucas", "mia", "mateo", "sofia", "yusuf", "aisha", "wei", "mei", "raj",
    "priya", "kenji", "yuki", "omar", "fatima", "lars", "ingrid",
)  # fmt: skip
LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor",
    "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez",
    "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright",
    "scott", "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker", "hall",
    "rivera", "campbell", "mitchell", "carter", "roberts", "kim", "patel", "chen", "wang",
    "mueller", "schmidt", "dubois", "rossi", "novak", "kowalski", "silva", "sato", "tanaka",
    "okafor", "mensah", "haddad", "ivanova", "larsen",
)  # fmt: skip
DOMAINS = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me",
    "aol.com", "mail.com", "fastmail.com", "gmx.net",
)  # fmt: skip
DOMAIN_WEIGHTS = (0.38, 0.14, 0.12, 0.09, 0.11, 0.04, 0.03, 0.03, 0.02, 0.04)
HANDLE_WORDS = (
    "style", "deals", "daily", "vibes", "trend", "looks", "finds", "shop", "review", "haul",
    "inspo", "mood", "wear", "home", "glow", "fit",
)  # fmt: skip
COUNTRIES = ("US", "CA", "GB", "DE", "FR")
COUNTRY_WEIGHTS = (0.88, 0.05, 0.04, 0.015, 0.015)
CURRENCIES = ("USD", "GBP", "EUR")
# Rates into USD (the default reporting currency) on the first day of every month of the window:
# a seeded random walk around these, so every order has a rate on or before its day.
FX_START = {"GBP": 1.27, "EUR": 1.08}
FX_MONTHLY_STEP = 0.01
# The retailer's sources, which get bad rows injected; fx_rates is written clean beside them.
RETAILER_SOURCES = ("customers", "orders", "reviews", "social", "referrals")
COUNTRY_CURRENCY = np.array([0, 0, 1, 2, 2], dtype=np.int8)  # index into CURRENCIES

# Email presentation: 0 absent, 1 as in the customers export, 2 upper case, 3 capitalised,
# 4 leading spaces, 5 trailing space.
EMAIL_MODES_ORDERS = (0.10, 0.55, 0.10, 0.10, 0.08, 0.07)
EMAIL_MODES_PRESENT = (0.0, 0.60, 0.12, 0.12, 0.08, 0.08)
# Handle presentation: 0 "@name", 1 "name", 2 "@Name", 3 "NAME".
HANDLE_MODES_SOCIAL = (0.45, 0.40, 0.10, 0.05)
HANDLE_MODES_CUSTOMERS = (0.85, 0.15, 0.0, 0.0)

# Bad values, by kind. Each one must fail exactly one rule of the contract.
BAD_TIMESTAMPS = ("31/02/2024", "yesterday", "2024-13-45 10:00:00", "not a date", "2024-02-30")
PRE_1990_TIMESTAMPS = ("1900-01-01 00:00:00", "1970-01-01 00:00:00", "1989-12-31 23:59:59")
PRE_1990_DATES = ("1900-01-01", "1970-01-01", "1989-12-31")
BAD_AMOUNTS = ("12,50", "$12", "12.5.0", "twelve", "12.50 EUR", "1 234,00")
# Not `n/a` or another of the ingest's NULL_TEXTS: those are read as no value, not as malformed.
BAD_EMAILS = (
    "no email given", "john at example.com", "jane@example", "@example.com", "mary.smith@",
    "bob smith@example.com",
)  # fmt: skip
BAD_HANDLES = ("john smith", "@@jane", "bob!", "@" + "x" * 70, "#sale")
BAD_BOOLEANS = ("maybe", "unknown", "Y/N", "2")
BAD_COUNTRIES = ("USA", "United States", "u", "12")
BAD_CURRENCIES = ("US$", "dollars", "$", "EURO")
BAD_RATINGS = ("0", "6", "10", "-1")
UNKNOWN_STATUSES = ("pending", "shipped", "on hold", "refunded")
UNKNOWN_CHANNELS = ("phone", "marketplace", "fax", "kiosk")
UNKNOWN_EVENT_TYPES = ("love", "follow", "view", "retweeet")
UNKNOWN_PLATFORMS = ("myspace", "linkedin", "snapchat")

# The reason the ingest (`engagement_box.staging.ingestion`) gives a row with this kind of defect.
EXPECTED_REASON = {
    "missing_required": "missing_required_value",
    "unparseable_timestamp": "unparseable_timestamp",
    "unparseable_date": "unparseable_date",
    "timestamp_before_1990": "out_of_range",
    "unparseable_amount": "unparseable_number",
    "negative_amount": "out_of_range",
    "unparseable_boolean": "unparseable_boolean",
    "unparseable_integer": "unparseable_integer",
    "malformed_email": "malformed",
    "malformed_handle": "malformed",
    "malformed_currency": "malformed",
    "malformed_country": "malformed",
    "malformed_social_handles": "social_handles_well_formed",
    "unknown_status": "not_an_allowed_value",
    "unknown_channel": "not_an_allowed_value",
    "unknown_event_type": "not_an_allowed_value",
    "unknown_platform": "not_an_allowed_value",
    "rating_out_of_range": "out_of_range",
    "negative_count": "out_of_range",
    "author_unidentified": "author_identified",
    "reaction_without_target": "reaction_has_target",
    "referee_unidentified": "referee_identified",
    "self_referral": "not_self_referral",
    "converted_before_referred": "converted_after_referred",
    "duplicate_exact": "duplicate_key",
    "duplicate_key": "duplicate_key",
}


@dataclass(frozen=True)
class Behaviour:
    """True parameters of the simulated customers (days are the time unit)."""

    prospect_share: float = 0.15
    same_day_first_purchase: float = 0.45
    first_purchase_delay_days: float = 20.0
    bgnbd_r: float = 0.45
    bgnbd_alpha: float = 5.0
    bgnbd_a: float = 0.5
    bgnbd_b: float = 2.5
    gg_p: float = 6.0
    gg_q: float = 4.0
    gg_gamma: float = 33.0
    status_weights: tuple[float, float, float] = (0.90, 0.06, 0.04)
    channel_weights: tuple[float, float, float, float] = (0.45, 0.25, 0.15, 0.15)
    preferred_channel_share: float = 0.75
    review_propensity_beta: tuple[float, float] = (0.5, 3.5)
    rating_weights: tuple[float, ...] = (0.06, 0.05, 0.09, 0.22, 0.58)
    email_only_review_share: float = 0.15
    non_customer_review_share: float = 0.02
    handle_share: float = 0.35
    second_handle_share: float = 0.15
    non_customer_handles_per_customer: float = 0.10
    social_events_per_customer: float = 3.0
    own_post_share: float = 0.25
    popularity_pareto_shape: float = 1.1
    referrals_per_customer: float = 0.10
    referral_conversion: float = 0.35
    referrer_pareto_shape: float = 1.3
    joined_anyway_answered: float = 0.40
    joined_anyway_true: float = 0.30
    case_variant_share: float = 0.02


BEHAVIOUR = Behaviour()


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate: size, window (inclusive dates), bad-row share and seed."""

    customers: int = 2_500
    start: date = date(2023, 7, 1)
    end: date = date(2026, 6, 30)
    bad_share: float = 0.01
    seed: int = 20260630
    behaviour: Behaviour = field(default_factory=Behaviour)

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if not 0.0 <= self.bad_share < 0.5:
            raise ValueError("bad_share must be in [0, 0.5)")


@dataclass(frozen=True, eq=False)
class BadKind:
    """One kind of defect: the columns it may hit and either a pool of bad texts or a function.

    `make` receives the chosen rows as formatted text and returns their replacement columns;
    `eligible` (an expression on the typed rows) restricts which rows can carry the defect.
    """

    name: str
    columns: tuple[str, ...]
    pool: tuple[str | None, ...] | None = None
    make: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    eligible: pl.Expr | None = None


@dataclass
class _Written:
    """Row counts of one written source."""

    rows: int = 0
    files: dict[str, int] = field(default_factory=dict)
    bad_rows: dict[str, int] = field(default_factory=dict)
    bad_columns: dict[str, list[str]] = field(default_factory=dict)
    bad_table: list[pl.DataFrame] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Small vectorised helpers


def _categorical(rng: np.random.Generator, weights: tuple[float, ...], size: int) -> np.ndarray:
    """Draw `size` category codes (int8) with the given weights."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    codes = np.searchsorted(cum / cum[-1], rng.random(size), side="right")
    return np.minimum(codes, len(weights) - 1).astype(np.int8)


def _weighted_index(rng: np.random.Generator, cum_weights: np.ndarray, size: int) -> np.ndarray:
    """Draw `size` indices with probability proportional to the weights behind `cum_weights`."""
    idx = np.searchsorted(cum_weights, rng.random(size) * cum_weights[-1], side="right")
    return np.minimum(idx, len(cum_weights) - 1)


def _pareto_weights(rng: np.random.Generator, shape: float, size: int) -> np.ndarray:
    """Heavy-tailed positive weights (Pareto with minimum 1)."""
    return (1.0 - rng.random(size)) ** (-1.0 / shape)


def _ids(numbers: pl.Series, prefix: str, width: int) -> pl.Series:
    """`prefix` + zero-padded numbers ("O000000042"); numbers must be below 10**width."""
    padded = (pl.lit(numbers) + 10**width).cast(pl.String).str.slice(1)
    return pl.select(pl.concat_str([pl.lit(prefix), padded])).to_series()


def _non_customer_emails(base: pl.Series, ext: pl.Series, mode: pl.Series) -> pl.Series:
    """`base` with the rows where `ext` >= 0 replaced by a non-customer's email as presented."""
    idx = (ext >= 0).arg_true()
    if not len(idx):
        return base
    sub = pl.DataFrame({"k": ext.gather(idx), "m": mode.gather(idx)}).select(
        _messy_email(_non_customer_email(pl.col("k")), pl.col("m"))
    )
    return base.scatter(idx, sub.to_series())


def _amount_of(cents: pl.Expr) -> pl.Expr:
    """Integer cents as text with two decimals."""
    return pl.concat_str(
        [(cents // 100).cast(pl.String), pl.lit("."), (cents % 100).cast(pl.String).str.zfill(2)]
    )


def _bool(col: str) -> pl.Expr:
    return pl.when(pl.col(col)).then(pl.lit("true")).otherwise(pl.lit("false"))


def _messy_email(email: pl.Expr, mode: pl.Expr) -> pl.Expr:
    """Present an email as exports do: missing, as is, other case, surrounded by spaces."""
    capitalised = pl.concat_str([email.str.slice(0, 1).str.to_uppercase(), email.str.slice(1)])
    return (
        pl.when(mode == 0)
        .then(pl.lit(None, dtype=pl.String))
        .when(mode == 2)
        .then(email.str.to_uppercase())
        .when(mode == 3)
        .then(capitalised)
        .when(mode == 4)
        .then(pl.concat_str([pl.lit("  "), email]))
        .when(mode == 5)
        .then(pl.concat_str([email, pl.lit(" ")]))
        .otherwise(email)
    )


def _messy_handle(handle: pl.Expr, mode: pl.Expr) -> pl.Expr:
    """Present a handle: "@name", "name", "@Name" or "NAME"."""
    capitalised = pl.concat_str([handle.str.slice(0, 1).str.to_uppercase(), handle.str.slice(1)])
    return (
        pl.when(mode == 1)
        .then(handle)
        .when(mode == 2)
        .then(pl.concat_str([pl.lit("@"), capitalised]))
        .when(mode == 3)
        .then(handle.str.to_uppercase())
        .otherwise(pl.concat_str([pl.lit("@"), handle]))
    )


def _case_variant(text: pl.Expr, flag: pl.Expr) -> pl.Expr:
    """Some exports write enumerations capitalised or in upper case ("Completed", "WEB")."""
    capitalised = pl.concat_str([text.str.slice(0, 1).str.to_uppercase(), text.str.slice(1)])
    return (
        pl.when(flag == 1)
        .then(capitalised)
        .when(flag == 2)
        .then(text.str.to_uppercase())
        .otherwise(text)
    )


def _lookup(values: tuple[str, ...], col: str) -> pl.Expr:
    """Text of a small integer code column."""
    return (
        pl.col(col)
        .cast(pl.Int64)
        .replace_strict(list(range(len(values))), list(values), return_dtype=pl.String)
    )


def _non_customer_email(k: pl.Expr) -> pl.Expr:
    """Emails of people who are not customers (an underscore never appears in customer emails)."""
    first = (k % len(FIRST_NAMES)).replace_strict(
        list(range(len(FIRST_NAMES))), list(FIRST_NAMES), return_dtype=pl.String
    )
    last = ((k // len(FIRST_NAMES)) % len(LAST_NAMES)).replace_strict(
        list(range(len(LAST_NAMES))), list(LAST_NAMES), return_dtype=pl.String
    )
    domain = ((k // 7) % len(DOMAINS)).replace_strict(
        list(range(len(DOMAINS))), list(DOMAINS), return_dtype=pl.String
    )
    return pl.concat_str(
        [first, pl.lit("_"), last, pl.lit("."), k.cast(pl.String), pl.lit("@"), domain]
    )


def _epoch_seconds(d: date) -> int:
    return int((datetime(d.year, d.month, d.day) - datetime(1970, 1, 1)).total_seconds())


def _month_code(ts: np.ndarray) -> np.ndarray:
    """Calendar month of epoch seconds as year * 12 + month - 1."""
    months = ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return months + 1970 * 12


# --------------------------------------------------------------------------------------------
# The population


@dataclass
class _World:
    """Everything the sources share: customers, their emails and handles, the window."""

    cfg: GeneratorConfig
    start_s: int
    end_s: int  # exclusive: midnight after the last day
    signup_day: np.ndarray  # days since epoch, ascending with the customer index
    emails: pl.Series  # clean customer emails, by customer index
    handles: pl.Series  # handle names without "@": customers' first, then non-customers'
    handle_owner: np.ndarray  # customer index or -1
    handle_platform: np.ndarray  # index into SOCIAL_PLATFORMS
    customer_handles: np.ndarray  # (n, 2) handle index or -1
    buyer: np.ndarray  # made at least one order
    country: np.ndarray
    tables: "_Tables"


class _Tables:
    """Text lookup tables, so that formatting millions of rows is a gather, not a format.

    Values of a row are looked up by integer: customer id by customer index, an email as
    presented (`EMAIL_MODES_*` code * n + customer index), a handle as presented, a date by day,
    a time by second of the day, an amount by cents.
    """

    def __init__(self, emails: pl.Series, handles: pl.Series, first_day: int, last_day: int):
        n = len(emails)
        self.n_customers = n
        self.n_handles = len(handles)
        self.customer_ids = pl.select(
            pl.concat_str(
                [pl.lit("C"), (pl.int_range(1, n + 1) + 10**7).cast(pl.String).str.slice(1)]
            )
        ).to_series()
        frame = pl.DataFrame({"e": emails})
        self.email_variants = pl.concat(
            [
                frame.select(_messy_email(pl.col("e"), pl.lit(mode, pl.Int8)).alias("e"))["e"]
                for mode in range(len(EMAIL_MODES_ORDERS))
            ]
        )
        hframe = pl.DataFrame({"h": handles})
        self.handle_variants = pl.concat(
            [
                hframe.select(_messy_handle(pl.col("h"), pl.lit(mode, pl.Int8)).alias("h"))["h"]
                for mode in range(len(HANDLE_MODES_SOCIAL))
            ]
        )
        self.first_day = first_day
        self.day_text = pl.select(
            pl.from_epoch(pl.int_range(first_day, last_day + 1), time_unit="d").dt.strftime(
                DATE_FORMAT
            )
        ).to_series()
        seconds = pl.int_range(0, SECONDS_PER_DAY)
        self.time_text = pl.select(
            pl.concat_str(
                [
                    (seconds // 3600 + 100).cast(pl.String).str.slice(1),
                    (seconds // 60 % 60 + 100).cast(pl.String).str.slice(1),
                    (seconds % 60 + 100).cast(pl.String).str.slice(1),
                ],
                separator=":",
            )
        ).to_series()
        self._amounts = pl.Series(dtype=pl.String)

    def customer_id(self, index: pl.Series) -> pl.Series:
        """Customer id text; null where the index is negative."""
        return _gather_or_null(self.customer_ids, index)

    def email(self, index: pl.Series, mode: pl.Series) -> pl.Series:
        """A customer's email as presented with `mode`; null where the index is negative."""
        combined = mode.cast(pl.Int64) * self.n_customers + index.clip(0)
        return _gather_or_null(self.email_variants, combined.set(index < 0, -1))

    def handle(self, index: pl.Series, mode: pl.Series) -> pl.Series:
        """A handle as presented with `mode`; null where the index is negative."""
        combined = mode.cast(pl.Int64) * self.n_handles + index.clip(0)
        return _gather_or_null(self.handle_variants, combined.set(index < 0, -1))

    def date(self, day: pl.Series) -> pl.Series:
        """Days since the epoch as `YYYY-MM-DD`."""
        return self.day_text.gather(day - self.first_day)

    def timestamp(self, ts: pl.Series, sep: str = " ", suffix: str = "") -> pl.Series:
        """Epoch seconds as `YYYY-MM-DD HH:MM:SS` (or with `sep` / `suffix`); null if negative."""
        valid = ts >= 0
        safe = ts.set(~valid, self.first_day * SECONDS_PER_DAY)
        day = self.day_text.gather(safe // SECONDS_PER_DAY - self.first_day)
        clock = self.time_text.gather(safe % SECONDS_PER_DAY)
        parts = [pl.lit(day), pl.lit(sep), pl.lit(clock)] + ([pl.lit(suffix)] if suffix else [])
        text = pl.select(pl.concat_str(parts).alias("t")).to_series()
        return text.set(~valid, None) if not valid.all() else text

    def amount(self, cents: pl.Series) -> pl.Series:
        """Cents as text with two decimals (a table up to the largest amount seen)."""
        top = int(cents.max() or 0)
        if top >= 20_000_000:
            return pl.select(_amount_of(pl.lit(cents))).to_series()
        if top >= len(self._amounts):
            size = max(top + 1, 2 * len(self._amounts), 100_000)
            self._amounts = pl.select(_amount_of(pl.int_range(0, size))).to_series()
        return self._amounts.gather(cents)


def _gather_or_null(table: pl.Series, index: pl.Series) -> pl.Series:
    """`table[index]`, null where the index is negative."""
    valid = index >= 0
    if not len(table):
        return pl.Series(table.name, [None] * len(index), dtype=table.dtype)
    if valid.all():
        return table.gather(index)
    return table.gather(index.clip(0)).set(~valid, None)


def _population(cfg: GeneratorConfig, rng: np.random.Generator) -> tuple[_World, pl.DataFrame]:
    """Customers: signup dates, names, emails, handles; returns the world and the typed rows."""
    b = cfg.behaviour
    n = cfg.customers
    start_s = _epoch_seconds(cfg.start)
    end_s = _epoch_seconds(cfg.end + timedelta(days=1))
    start_day, n_days = start_s // SECONDS_PER_DAY, (end_s - start_s) // SECONDS_PER_DAY
    # Slowly growing signups; the last week sees none (exports lag).
    span = max(n_days - 7, 1)
    signup_day = np.sort(start_day + np.floor(span * rng.random(n) ** (1 / 1.3))).astype(np.int64)

    first = rng.integers(len(FIRST_NAMES), size=n)
    last = rng.integers(len(LAST_NAMES), size=n)
    number = rng.permutation(n) + 1  # unique per customer, unrelated to the id
    pattern = _categorical(rng, (0.5, 0.3, 0.2), n)
    domain = _categorical(rng, DOMAIN_WEIGHTS, n)
    country = _categorical(rng, COUNTRY_WEIGHTS, n)
    n_handles = np.where(
        rng.random(n) < b.handle_share, 1 + (rng.random(n) < b.second_handle_share), 0
    ).astype(np.int8)
    names = pl.DataFrame(
        {
            "first": pl.Series(FIRST_NAMES)[first],
            "last": pl.Series(LAST_NAMES)[last],
            "num": number.astype(np.int64),
            "pattern": pattern,
            "domain": pl.Series(DOMAINS)[domain],
        }
    )
    local = (
        pl.when(pl.col("pattern") == 0)
        .then(pl.concat_str(["first", pl.lit("."), "last", pl.col("num").cast(pl.String)]))
        .when(pl.col("pattern") == 1)
        .then(pl.concat_str(["first", "last", pl.col("num").cast(pl.String)]))
        .otherwise(
            pl.concat_str([pl.col("first").str.slice(0, 1), "last", pl.col("num").cast(pl.String)])
        )
    )
    emails = names.select(pl.concat_str([local, pl.lit("@"), "domain"]).alias("email"))["email"]

    # Handles: "{first}_{last}{num}" and "{last}.{first}{num}" for customers, "the{word}{k}" for
    # non-customers, so they never collide.
    has1 = np.flatnonzero(n_handles >= 1)
    has2 = np.flatnonzero(n_handles == 2)
    h1 = names[has1].select(
        pl.concat_str(["first", pl.lit("_"), "last", pl.col("num").cast(pl.String)]).alias("h")
    )["h"]
    h2 = names[has2].select(
        pl.concat_str(["last", pl.lit("."), "first", pl.col("num").cast(pl.String)]).alias("h")
    )["h"]
    n_ext = int(round(b.non_customer_handles_per_customer * n))
    ext = pl.DataFrame({"k": np.arange(1, n_ext + 1, dtype=np.int64)}).select(
        pl.concat_str(
            [
                pl.lit("the"),
                (pl.col("k") % len(HANDLE_WORDS)).replace_strict(
                    list(range(len(HANDLE_WORDS))), list(HANDLE_WORDS), return_dtype=pl.String
                ),
                pl.col("k").cast(pl.String),
            ]
        ).alias("h")
    )["h"]
    handles = pl.concat([h1, h2, ext]).alias("handle")
    handle_owner = np.concatenate([has1, has2, np.full(n_ext, -1, dtype=np.int64)])
    customer_handles = np.full((n, 2), -1, dtype=np.int64)
    customer_handles[has1, 0] = np.arange(len(has1))
    customer_handles[has2, 1] = len(has1) + np.arange(len(has2))
    handle_platform = _categorical(rng, (0.35, 0.25, 0.15, 0.10, 0.15), len(handles))

    typed = pl.DataFrame(
        {
            "cust": np.arange(n, dtype=np.int64),
            "signup_day": signup_day,
            "country": country,
            "loyalty": rng.random(n) < 0.32,
            "consent": rng.random(n) < 0.58,
            "h1": customer_handles[:, 0],
            "h2": customer_handles[:, 1],
            "h1_mode": _categorical(rng, HANDLE_MODES_CUSTOMERS, n),
            "h2_mode": _categorical(rng, HANDLE_MODES_CUSTOMERS, n),
            "sep": _categorical(rng, (0.8, 0.2), n),
            "_ts": signup_day * SECONDS_PER_DAY,
            "_part": np.zeros(n, dtype=np.int64),
        }
    )
    world = _World(
        cfg=cfg,
        start_s=start_s,
        end_s=end_s,
        signup_day=signup_day,
        emails=emails,
        handles=handles,
        handle_owner=handle_owner,
        handle_platform=handle_platform,
        customer_handles=customer_handles,
        buyer=np.zeros(n, dtype=bool),
        country=country,
        tables=_Tables(emails, handles, start_day, start_day + n_days),
    )
    return world, typed


def _format_customers(world: _World) -> Callable[[pl.DataFrame], pl.DataFrame]:
    t = world.tables

    def fmt(rows: pl.DataFrame) -> pl.DataFrame:
        first = t.handle(rows["h1"], rows["h1_mode"])
        second = t.handle(rows["h2"], rows["h2_mode"])
        sep = pl.when(pl.col("sep") == 1).then(pl.lit("; ")).otherwise(pl.lit(";"))
        return rows.select(
            t.customer_id(rows["cust"]).alias("customer_id"),
            t.email(rows["cust"], pl.Series([1] * rows.height, dtype=pl.Int8)).alias("email"),
            pl.when(pl.lit(second).is_not_null())
            .then(pl.concat_str([pl.lit(first), sep, pl.lit(second)]))
            .otherwise(pl.lit(first))
            .alias("social_handles"),
            t.date(rows["signup_day"]).alias("signup_date"),
            _bool("loyalty").alias("loyalty_member"),
            _bool("consent").alias("marketing_consent"),
            _lookup(COUNTRIES, "country").alias("country"),
        )

    return fmt


# --------------------------------------------------------------------------------------------
# Orders: BG/NBD purchases, Gamma-Gamma spend


def _orders(world: _World, rng: np.random.Generator) -> pl.DataFrame:
    """Typed order rows (one per order), in time order, with `oid` the order number."""
    b = world.cfg.behaviour
    n = world.cfg.customers
    day_s = SECONDS_PER_DAY
    signup_s = world.signup_day * day_s
    # First purchase: on the signup day for many, else some days later; some never buy.
    same_day = rng.random(n) < b.same_day_first_purchase
    delay = np.where(
        same_day,
        rng.uniform(0.3, 0.99, n) * day_s,
        day_s + rng.exponential(b.first_purchase_delay_days * day_s, n),
    )
    first_s = signup_s + delay
    buyer = (rng.random(n) >= b.prospect_share) & (first_s < world.end_s - 60)
    lam = rng.gamma(b.bgnbd_r, 1.0 / b.bgnbd_alpha, n)  # purchases per day while alive
    drop_p = rng.beta(b.bgnbd_a, b.bgnbd_b, n)
    purchases_until_dropout = rng.geometric(np.clip(drop_p, 1e-9, 1.0))
    horizon_days = np.where(buyer, (world.end_s - first_s) / day_s, 0.0)
    # Events of the Poisson process after the first purchase, in the window, while alive.
    n_process = rng.poisson(lam * horizon_days)
    n_repeat = np.where(buyer, np.minimum(purchases_until_dropout - 1, n_process), 0)
    n_repeat = np.minimum(n_repeat, 5_000).astype(np.int64)

    # Repeat times: the first c of N uniform order statistics on (0, T), via exponential spacings.
    total = int(n_repeat.sum())
    owner = np.repeat(np.arange(n, dtype=np.int64), n_repeat)
    spacing = rng.exponential(1.0, total)
    cum = np.cumsum(spacing)
    ends = np.cumsum(n_repeat)
    starts = ends - n_repeat
    base = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    within = cum - np.repeat(base, n_repeat)
    s_c = np.where(n_repeat > 0, cum[np.maximum(ends - 1, 0)] - base, 0.0)
    tail = rng.gamma(np.maximum(n_process - n_repeat + 1, 1).astype(np.float64), 1.0)
    denom = np.repeat(s_c + tail, n_repeat)
    repeat_s = first_s[owner] + (within / denom) * (horizon_days[owner] * day_s)

    buyers = np.flatnonzero(buyer)
    cust = np.concatenate([buyers, owner])
    ts = np.concatenate([first_s[buyers], repeat_s]).astype(np.int64)
    ts = np.minimum(ts, world.end_s - 1)
    order = (
        pl.DataFrame({"ts": ts})
        .select(pl.arg_sort_by("ts", maintain_order=True))
        .to_series()
        .to_numpy()
    )
    cust, ts = cust[order], ts[order]
    world.buyer[buyers] = True

    m = len(cust)
    nu = rng.gamma(b.gg_q, 1.0 / b.gg_gamma, n)  # per-customer Gamma-Gamma scale
    value = rng.gamma(b.gg_p, 1.0, m) / nu[cust]
    cents = np.maximum(np.round(value * 100), 99).astype(np.int64)
    preferred = _categorical(rng, b.channel_weights, n)
    channel = np.where(
        rng.random(m) < b.preferred_channel_share,
        preferred[cust],
        _categorical(rng, b.channel_weights, m),
    ).astype(np.int8)
    case = _case_variants(rng, m, b.case_variant_share)
    return pl.DataFrame(
        {
            "oid": np.arange(1, m + 1, dtype=np.int64),
            "cust": cust,
            "_ts": ts,
            "cents": cents,
            "currency": COUNTRY_CURRENCY[world.country[cust]],
            "status": _categorical(rng, b.status_weights, m),
            "channel": channel,
            "email_mode": _categorical(rng, EMAIL_MODES_ORDERS, m),
            "status_case": case,
            "channel_case": np.roll(case, 1),
            "_part": _month_code(ts),
        }
    )


def _case_variants(rng: np.random.Generator, size: int, share: float) -> np.ndarray:
    """0 as is, 1 capitalised, 2 upper case."""
    return _categorical(rng, (1 - share, share / 2, share / 2), size)


def _format_orders(world: _World) -> Callable[[pl.DataFrame], pl.DataFrame]:
    t = world.tables

    def fmt(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.select(
            _ids(rows["oid"], "O", 9).alias("order_id"),
            t.customer_id(rows["cust"]).alias("customer_id"),
            t.email(rows["cust"], rows["email_mode"]).alias("email"),
            t.timestamp(rows["_ts"]).alias("ordered_at"),
            t.amount(rows["cents"]).alias("net_amount"),
            _lookup(CURRENCIES, "currency").alias("currency"),
            _case_variant(_lookup(ORDER_STATUSES, "status"), pl.col("status_case")).alias("status"),
            _case_variant(_lookup(ORDER_CHANNELS, "channel"), pl.col("channel_case")).alias(
                "channel"
            ),
        )

    return fmt


# --------------------------------------------------------------------------------------------
# Reviews


def _reviews(world: _World, orders: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Reviews of completed orders a few days later, plus a few by non-customers."""
    b = world.cfg.behaviour
    n = world.cfg.customers
    propensity = rng.beta(*b.review_propensity_beta, n)
    cust = orders["cust"].to_numpy()
    completed = orders["status"].to_numpy() == 0
    reviewed = completed & (rng.random(len(cust)) < propensity[cust])
    r_cust = cust[reviewed]
    r_ts = orders["_ts"].to_numpy()[reviewed] + (
        (0.3 + rng.exponential(5.0, len(r_cust))) * SECONDS_PER_DAY
    ).astype(np.int64)
    keep = r_ts < world.end_s
    r_cust, r_ts = r_cust[keep], r_ts[keep]
    n_ext = int(round(b.non_customer_review_share * len(r_cust)))
    ext_ts = rng.integers(world.start_s, world.end_s, n_ext)
    cust_all = np.concatenate([r_cust, np.full(n_ext, -1, dtype=np.int64)])
    ts = np.concatenate([r_ts, ext_ts])
    order = np.lexsort((cust_all, ts))
    cust_all, ts = cust_all[order], ts[order]
    m = len(ts)
    n_products = max(200, n // 200)
    product_cum = np.cumsum(1.0 / np.arange(1, n_products + 1) ** 1.05)
    author = _categorical(
        rng, (0.45, 1 - 0.45 - b.email_only_review_share, b.email_only_review_share), m
    )  # 0 id only, 1 id and email, 2 email only
    is_ext = cust_all < 0
    author = np.where(is_ext, 2, author).astype(np.int8)
    verified = np.where(is_ext, False, rng.random(m) < 0.97)
    votes = np.minimum(rng.zipf(2.0, m) - 1, 50_000)
    return pl.DataFrame(
        {
            "rid": np.arange(1, m + 1, dtype=np.int64),
            "cust": cust_all,
            "ext": np.where(cust_all < 0, np.arange(m, dtype=np.int64) + 1_000_000, -1),
            "_ts": ts,
            "product": _weighted_index(rng, product_cum, m).astype(np.int64) + 1,
            "rating": _categorical(rng, b.rating_weights, m) + 1,
            "votes": votes.astype(np.int64),
            "verified": verified,
            "author": author,
            "email_mode": _categorical(rng, EMAIL_MODES_PRESENT, m),
            "_part": ts.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970,
        }
    )


def _format_reviews(world: _World) -> Callable[[pl.DataFrame], pl.DataFrame]:
    t = world.tables

    def fmt(rows: pl.DataFrame) -> pl.DataFrame:
        author = rows["author"]
        shown_mode = pl.select(
            pl.when(pl.lit(author) == 0).then(0).otherwise(pl.lit(rows["email_mode"]).clip(1))
        ).to_series()
        email = _non_customer_emails(
            t.email(rows["cust"], shown_mode), rows["ext"], rows["email_mode"].clip(1)
        )
        customer = t.customer_id(rows["cust"])
        return rows.select(
            _ids(rows["rid"], "R", 8).alias("review_id"),
            pl.when(pl.col("author") != 2).then(pl.lit(customer)).alias("customer_id"),
            pl.lit(email).alias("email"),
            _ids(rows["product"], "P", 5).alias("product_id"),
            pl.col("rating").cast(pl.String).alias("rating"),
            pl.col("votes").cast(pl.String).alias("helpful_votes"),
            _bool("verified").alias("verified_purchase"),
            t.timestamp(rows["_ts"]).alias("created_at"),
        )

    return fmt


# --------------------------------------------------------------------------------------------
# Social

# Reaction type probabilities per platform, over SOCIAL_EVENT_TYPES
# ("like", "pin", "tweet", "comment", "share", "retweet", "mention").
_REACTION_WEIGHTS = {
    "instagram": (0.70, 0.0, 0.0, 0.15, 0.05, 0.0, 0.10),
    "twitter": (0.50, 0.0, 0.0, 0.10, 0.0, 0.28, 0.12),
    "facebook": (0.60, 0.0, 0.0, 0.20, 0.15, 0.0, 0.05),
    "pinterest": (0.40, 0.50, 0.0, 0.10, 0.0, 0.0, 0.0),
    "tiktok": (0.70, 0.0, 0.0, 0.15, 0.10, 0.0, 0.05),
}
_TYPE_CODE = {t: i for i, t in enumerate(SOCIAL_EVENT_TYPES)}


def _social(world: _World, rng: np.random.Generator) -> pl.DataFrame:
    """Own posts and reactions to other handles' posts, with heavy-tailed popularity."""
    b = world.cfg.behaviour
    n_handles = len(world.handles)
    n_events = int(round(b.social_events_per_customer * world.cfg.customers))
    if n_handles < 2 or n_events < 2:
        return _empty_social()
    n_posts = max(1, int(round(b.own_post_share * n_events)))
    n_react = n_events - n_posts
    popularity = _pareto_weights(rng, b.popularity_pareto_shape, n_handles)
    activity = rng.lognormal(0.0, 1.0, n_handles)

    # Posts: influencers post a bit more.
    post_author = _weighted_index(rng, np.cumsum(activity * popularity**0.5), n_posts)
    post_ts = world.start_s + np.floor(
        (world.end_s - world.start_s) * rng.random(n_posts) ** (1 / 1.2)
    ).astype(np.int64)
    post_order = np.lexsort((post_author, post_ts))
    post_author, post_ts = post_author[post_order], post_ts[post_order]
    post_platform = world.handle_platform[post_author]
    pin = SOCIAL_PLATFORMS.index("pinterest")
    post_type = np.where(post_platform == pin, _TYPE_CODE["pin"], _TYPE_CODE["tweet"])

    # Reactions: pick a post with weight = its author's popularity, an actor by activity.
    target_post = _weighted_index(rng, np.cumsum(popularity[post_author]), n_react)
    actor = _weighted_index(rng, np.cumsum(activity), n_react)
    target = post_author[target_post]
    actor = np.where(actor == target, (actor + 1) % n_handles, actor)
    platform = post_platform[target_post]
    table = np.cumsum(np.array([_REACTION_WEIGHTS[p] for p in SOCIAL_PLATFORMS]), axis=1)
    table /= table[:, -1:]
    u = rng.random(n_react)
    r_type = np.minimum((u[:, None] > table[platform]).sum(axis=1), len(SOCIAL_EVENT_TYPES) - 1)
    delay = (rng.exponential(1.5, n_react) * SECONDS_PER_DAY).astype(np.int64) + 60
    r_ts = np.minimum(post_ts[target_post] + delay, world.end_s - 1)
    r_post = np.where(r_type == _TYPE_CODE["mention"], -1, target_post + 1)

    ts = np.concatenate([post_ts, r_ts])
    order = np.lexsort((np.arange(len(ts)), ts))
    m = len(ts)
    case = _case_variants(rng, m, b.case_variant_share)
    typed = pl.DataFrame(
        {
            "actor": np.concatenate([post_author, actor])[order].astype(np.int64),
            "etype": np.concatenate([post_type, r_type])[order].astype(np.int8),
            "target": np.concatenate([np.full(n_posts, -1), target])[order].astype(np.int64),
            "post": np.concatenate([np.arange(1, n_posts + 1), r_post])[order].astype(np.int64),
            "platform": np.concatenate([post_platform, platform])[order].astype(np.int8),
            "_ts": ts[order],
            "actor_mode": _categorical(rng, HANDLE_MODES_SOCIAL, m),
            "target_mode": _categorical(rng, HANDLE_MODES_SOCIAL, m),
            "type_case": case,
            "platform_case": np.roll(case, 7),
        }
    )
    months = _month_code(typed["_ts"].to_numpy())
    quarter = (months // 12) * 4 + (months % 12) // 3
    return typed.with_columns(
        pl.Series("eid", np.arange(1, m + 1, dtype=np.int64)), pl.Series("_part", quarter)
    )


def _empty_social() -> pl.DataFrame:
    cols = ("actor", "etype", "target", "post", "platform", "_ts", "actor_mode", "target_mode")
    extra = ("type_case", "platform_case", "eid", "_part")
    return pl.DataFrame({c: pl.Series(c, [], dtype=pl.Int64) for c in cols + extra})


def _format_social(world: _World) -> Callable[[pl.DataFrame], pl.DataFrame]:
    t = world.tables

    def fmt(rows: pl.DataFrame) -> pl.DataFrame:
        post = rows["post"]
        return rows.select(
            _ids(rows["eid"], "E", 9).alias("event_id"),
            t.handle(rows["actor"], rows["actor_mode"]).alias("actor_handle"),
            _case_variant(_lookup(SOCIAL_EVENT_TYPES, "etype"), pl.col("type_case")).alias(
                "event_type"
            ),
            t.handle(rows["target"], rows["target_mode"]).alias("target_handle"),
            pl.when(pl.col("post") > 0).then(pl.lit(_ids(post.clip(0), "PST", 9))).alias("post_id"),
            _case_variant(_lookup(SOCIAL_PLATFORMS, "platform"), pl.col("platform_case")).alias(
                "platform"
            ),
            t.timestamp(rows["_ts"], "T", "+00:00").alias("occurred_at"),
        )

    return fmt


# --------------------------------------------------------------------------------------------
# Referrals


def _referrals(world: _World, rng: np.random.Generator) -> pl.DataFrame:
    """Invitations by existing customers; converted ones point at a later-signing customer."""
    b = world.cfg.behaviour
    n = world.cfg.customers
    day_s = SECONDS_PER_DAY
    n_ref = int(round(b.referrals_per_customer * n))
    weight = _pareto_weights(rng, b.referrer_pareto_shape, n) * np.where(world.buyer, 3.0, 1.0)
    cum = np.cumsum(weight)
    signup = world.signup_day

    # Converted: a referee signed up 1+ days after the invitation; the referrer signed up before.
    first_day = signup[0] if n else 0
    candidates = np.flatnonzero(signup >= first_day + 2)
    n_conv = min(int(round(b.referral_conversion * n_ref)), len(candidates))
    referee = (
        np.sort(rng.choice(candidates, size=n_conv, replace=False)) if n_conv else candidates[:0]
    )
    lead_days = np.minimum(1.0 + rng.exponential(6.0, n_conv), signup[referee] - first_day)
    referred_day = np.floor(signup[referee] - lead_days).astype(np.int64)
    referred_c = referred_day * day_s + rng.integers(7 * 3600, 23 * 3600, n_conv)
    eligible = np.searchsorted(signup, referred_c // day_s, side="right")  # signed up by then
    referrer_c = np.minimum(
        np.searchsorted(cum, rng.random(n_conv) * cum[np.maximum(eligible - 1, 0)], side="right"),
        np.maximum(eligible - 1, 0),
    )
    converted_c = signup[referee] * day_s + rng.integers(8 * 3600, 22 * 3600, n_conv)

    # Not converted: any customer invites a non-customer some time after signing up.
    n_open = n_ref - n_conv
    referrer_o = _weighted_index(rng, cum, n_open)
    from_s = signup[referrer_o] * day_s
    referred_o = from_s + (rng.random(n_open) * (world.end_s - from_s)).astype(np.int64)

    referrer = np.concatenate([referrer_c, referrer_o]).astype(np.int64)
    referred = np.concatenate([referred_c, referred_o])
    order = np.lexsort((referrer, referred))
    conv = np.concatenate([np.ones(n_conv, bool), np.zeros(n_open, bool)])[order]
    m = n_ref
    answered = conv & (rng.random(m) < b.joined_anyway_answered)
    anyway = np.where(answered, (rng.random(m) < b.joined_anyway_true).astype(np.int8), -1)
    referrer_reward = np.array([1000, 1500, 2000, 2500])[_categorical(rng, (0.4, 0.3, 0.2, 0.1), m)]
    referee_reward = np.array([500, 1000])[_categorical(rng, (0.6, 0.4), m)]
    return pl.DataFrame(
        {
            "rfid": np.arange(1, m + 1, dtype=np.int64),
            "referrer": referrer[order],
            "referee": np.concatenate([referee, np.full(n_open, -1)])[order].astype(np.int64),
            "ext": np.where(
                np.concatenate([referee, np.full(n_open, -1)])[order] < 0,
                np.arange(m, dtype=np.int64) + 5_000_000,
                -1,
            ),
            "_ts": referred[order],
            "converted": np.concatenate([converted_c, np.full(n_open, -1)])[order].astype(np.int64),
            "referrer_reward": np.where(conv, referrer_reward, 0).astype(np.int64),
            "referee_reward": np.where(conv, referee_reward, 0).astype(np.int64),
            "anyway": anyway,
            "id_mode": _categorical(rng, (0.5, 0.3, 0.2), m),  # both, email only, id only
            "email_mode": _categorical(rng, EMAIL_MODES_PRESENT, m),
            "_part": np.zeros(m, dtype=np.int64),
        }
    )


def _format_referrals(world: _World) -> Callable[[pl.DataFrame], pl.DataFrame]:
    t = world.tables

    def fmt(rows: pl.DataFrame) -> pl.DataFrame:
        referee = rows["referee"]
        shown = referee.set(rows["id_mode"] == 2, -1)
        email = _non_customer_emails(
            t.email(shown, rows["email_mode"]), rows["ext"], rows["email_mode"]
        )
        return rows.select(
            _ids(rows["rfid"], "RF", 7).alias("referral_id"),
            t.customer_id(rows["referrer"]).alias("referrer_customer_id"),
            pl.lit(email).alias("referee_email"),
            t.customer_id(referee.set(rows["id_mode"] == 1, -1)).alias("referee_customer_id"),
            t.timestamp(rows["_ts"]).alias("referred_at"),
            t.timestamp(rows["converted"]).alias("converted_at"),
            t.amount(rows["referrer_reward"]).alias("referrer_reward"),
            t.amount(rows["referee_reward"]).alias("referee_reward"),
            pl.when(pl.col("anyway") == 1)
            .then(pl.lit("true"))
            .when(pl.col("anyway") == 0)
            .then(pl.lit("false"))
            .alias("would_have_joined_anyway"),
        )

    return fmt


# --------------------------------------------------------------------------------------------
# Bad rows


def _shift_timestamp_text(col: str, days: int, fmt: str = TS_FORMAT) -> pl.Expr:
    return (
        (pl.col(col).str.to_datetime(TS_FORMAT) + pl.duration(days=days))
        .dt.strftime(fmt)
        .alias(col)
    )


def _bad_kinds(source: str) -> list[BadKind]:
    """The defects injected into a source (duplicates are added for every source)."""
    required = tuple(SOURCES[source].required_columns)
    missing = BadKind("missing_required", required, pool=(None, "", "  "))
    if source == "orders":
        return [
            missing,
            BadKind("unparseable_timestamp", ("ordered_at",), pool=BAD_TIMESTAMPS),
            BadKind("timestamp_before_1990", ("ordered_at",), pool=PRE_1990_TIMESTAMPS),
            BadKind("unparseable_amount", ("net_amount",), pool=BAD_AMOUNTS),
            BadKind(
                "negative_amount",
                ("net_amount",),
                make=lambda t: t.select(pl.concat_str([pl.lit("-"), "net_amount"])),
            ),
            BadKind("malformed_currency", ("currency",), pool=BAD_CURRENCIES),
            BadKind("unknown_status", ("status",), pool=UNKNOWN_STATUSES),
            BadKind("unknown_channel", ("channel",), pool=UNKNOWN_CHANNELS),
            BadKind("malformed_email", ("email",), pool=BAD_EMAILS),
        ]
    if source == "customers":
        return [
            missing,
            BadKind("malformed_email", ("email",), pool=BAD_EMAILS),
            BadKind("unparseable_date", ("signup_date",), pool=BAD_TIMESTAMPS),
            BadKind("timestamp_before_1990", ("signup_date",), pool=PRE_1990_DATES),
            BadKind(
                "malformed_social_handles",
                ("social_handles",),
                make=lambda t: t.select(
                    pl.concat_str(
                        [pl.col("social_handles").fill_null("@ok_handle"), pl.lit(";john smith!")]
                    )
                ),
            ),
            BadKind(
                "unparseable_boolean", ("loyalty_member", "marketing_consent"), pool=BAD_BOOLEANS
            ),
            BadKind("malformed_country", ("country",), pool=BAD_COUNTRIES),
        ]
    if source == "reviews":
        return [
            missing,
            BadKind(
                "author_unidentified",
                ("customer_id", "email"),
                make=lambda t: t.select(
                    pl.lit(None, dtype=pl.String).alias("customer_id"),
                    pl.lit(None, dtype=pl.String).alias("email"),
                ),
            ),
            BadKind("malformed_email", ("email",), pool=BAD_EMAILS, eligible=pl.col("author") != 0),
            BadKind("rating_out_of_range", ("rating",), pool=BAD_RATINGS),
            BadKind("unparseable_integer", ("helpful_votes",), pool=("many", "1.5", "3 votes")),
            BadKind(
                "negative_count",
                ("helpful_votes",),
                make=lambda t: t.select(
                    pl.concat_str(
                        [pl.lit("-"), (pl.col("helpful_votes").cast(pl.Int64) + 1).cast(pl.String)]
                    )
                ),
            ),
            BadKind("unparseable_boolean", ("verified_purchase",), pool=BAD_BOOLEANS),
            BadKind("unparseable_timestamp", ("created_at",), pool=BAD_TIMESTAMPS),
            BadKind("timestamp_before_1990", ("created_at",), pool=PRE_1990_TIMESTAMPS),
        ]
    if source == "social":
        reaction_codes = [_TYPE_CODE[t] for t in ("like", "comment", "share", "retweet", "pin")]
        return [
            missing,
            BadKind("malformed_handle", ("actor_handle",), pool=BAD_HANDLES),
            BadKind(
                "malformed_handle",
                ("target_handle",),
                pool=BAD_HANDLES,
                eligible=pl.col("target") >= 0,
            ),
            BadKind("unknown_event_type", ("event_type",), pool=UNKNOWN_EVENT_TYPES),
            BadKind("unknown_platform", ("platform",), pool=UNKNOWN_PLATFORMS),
            BadKind(
                "reaction_without_target",
                ("target_handle", "post_id"),
                make=lambda t: t.select(
                    pl.lit(None, dtype=pl.String).alias("target_handle"),
                    pl.lit(None, dtype=pl.String).alias("post_id"),
                ),
                eligible=pl.col("etype").is_in(reaction_codes) & (pl.col("target") >= 0),
            ),
            BadKind("unparseable_timestamp", ("occurred_at",), pool=BAD_TIMESTAMPS),
            BadKind("timestamp_before_1990", ("occurred_at",), pool=PRE_1990_TIMESTAMPS),
        ]
    if source == "referrals":
        return [
            missing,
            BadKind(
                "referee_unidentified",
                ("referee_email", "referee_customer_id"),
                make=lambda t: t.select(
                    pl.lit(None, dtype=pl.String).alias("referee_email"),
                    pl.lit(None, dtype=pl.String).alias("referee_customer_id"),
                ),
            ),
            BadKind(
                "malformed_email",
                ("referee_email",),
                pool=BAD_EMAILS,
                eligible=(pl.col("referee") < 0) | (pl.col("id_mode") != 2),
            ),
            BadKind(
                "self_referral",
                ("referee_customer_id",),
                make=lambda t: t.select(
                    pl.col("referrer_customer_id").alias("referee_customer_id")
                ),
            ),
            BadKind(
                "converted_before_referred",
                ("converted_at",),
                make=lambda t: t.select(
                    _shift_timestamp_text("referred_at", -3).alias("converted_at")
                ),
                eligible=pl.col("converted") >= 0,
            ),
            BadKind("unparseable_timestamp", ("referred_at",), pool=BAD_TIMESTAMPS),
            BadKind("timestamp_before_1990", ("referred_at",), pool=PRE_1990_TIMESTAMPS),
            BadKind("unparseable_amount", ("referrer_reward", "referee_reward"), pool=BAD_AMOUNTS),
            BadKind(
                "negative_amount",
                ("referrer_reward",),
                make=lambda t: t.select(pl.lit("-10.00").alias("referrer_reward")),
            ),
            BadKind("unparseable_boolean", ("would_have_joined_anyway",), pool=BAD_BOOLEANS),
        ]
    raise ValueError(f"unknown source {source!r}")


def _duplicate_key_change(source: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Different but valid values for a row that reuses an earlier key."""
    if source == "orders":
        return lambda t: t.select(
            pl.format(
                "{}.{}",
                (pl.col("net_amount").str.split(".").list.first().cast(pl.Int64) + 7).cast(
                    pl.String
                ),
                pl.lit("49"),
            ).alias("net_amount"),
            pl.lit("returned").alias("status"),
        )
    if source == "customers":
        return lambda t: t.select(
            pl.concat_str([pl.lit("new."), pl.col("email").str.strip_chars()]).alias("email"),
            pl.lit("true").alias("loyalty_member"),
        )
    if source == "reviews":
        return lambda t: t.select(
            (pl.col("rating").cast(pl.Int64) % 5 + 1).cast(pl.String).alias("rating")
        )
    if source == "social":
        return lambda t: t.select(_shift_timestamp_text_social("occurred_at", 1))
    if source == "referrals":
        return lambda t: t.select(pl.lit("30.00").alias("referrer_reward"))
    raise ValueError(source)


def _shift_timestamp_text_social(col: str, hours: int) -> pl.Expr:
    return (
        (pl.col(col).str.to_datetime(SOCIAL_TS_FORMAT) + pl.duration(hours=hours))
        .dt.strftime(SOCIAL_TS_FORMAT)
        .alias(col)
    )


def _allocate(n_rows: int, share: float, kinds: list[str]) -> dict[str, int]:
    """Bad rows per kind: `share` of the rows, spread evenly; each kind at least once when the
    source has 10 rows per kind (so small samples exercise every kind)."""
    if share <= 0 or n_rows == 0:
        return {k: 0 for k in kinds}
    total = int(round(share * n_rows))
    if n_rows >= 10 * len(kinds):
        total = max(total, len(kinds))
    base, extra = divmod(total, len(kinds))
    return {k: base + (i < extra) for i, k in enumerate(kinds)}


@dataclass
class _Injected:
    """A source's rows in file order, with the text replacements and the bad-row ledger."""

    rows: pl.DataFrame
    overrides: list[tuple[np.ndarray, pl.DataFrame]]  # (row positions, replacement columns)
    ledger: pl.DataFrame  # _row, kind, column


def _insert_copies(typed: pl.DataFrame, copies: pl.DataFrame) -> pl.DataFrame:
    """Rows in file order: each copy right after its original, or first in its new partition.

    `typed` is already in file order (by partition, then time), so this is an insertion, not a
    sort; a copy moved to a later partition is older than every row there.
    """
    parts = typed["_part"].to_numpy()
    if len(parts) > 1:
        ts = typed["_ts"].to_numpy()
        same = parts[1:] == parts[:-1]
        if (np.diff(parts) < 0).any() or (np.diff(ts)[same] < 0).any():
            raise ValueError("typed rows must be sorted by partition, then time")
    src = copies["_src"].to_numpy()
    moved = copies["_part"].to_numpy() != parts[src]
    at = np.where(moved, np.searchsorted(parts, copies["_part"].to_numpy(), "left"), src + 1)
    order = np.lexsort((src, copies["_dup"].to_numpy(), at))
    index = np.insert(np.arange(len(parts)), at[order], len(parts) + order)
    return pl.concat([typed, copies]).select(pl.all().gather(pl.Series(index)))


def _inject(
    source: str,
    typed: pl.DataFrame,
    fmt: Callable[[pl.DataFrame], pl.DataFrame],
    bad_share: float,
    rng: np.random.Generator,
    next_part: Callable[[np.ndarray], np.ndarray] | None = None,
) -> _Injected:
    """Choose bad rows, add duplicates, sort into file order and prepare the replacements."""
    n = typed.height
    kinds = _bad_kinds(source)
    names = list(dict.fromkeys([k.name for k in kinds] + ["duplicate_exact", "duplicate_key"]))
    counts = _allocate(n, bad_share, names)
    # Kinds listed twice (malformed_handle on two columns) split their count.
    per_entry: list[int] = []
    for i, kind in enumerate(kinds):
        same = [j for j, other in enumerate(kinds) if other.name == kind.name]
        share, extra = divmod(counts[kind.name], len(same))
        per_entry.append(share + (same.index(i) < extra))
    taken = np.zeros(n, dtype=bool)

    def pick(k: int, mask: np.ndarray | None = None) -> np.ndarray:
        ok = ~taken if mask is None else (~taken & mask)
        cand = np.flatnonzero(ok)
        chosen = np.sort(rng.choice(cand, size=min(k, len(cand)), replace=False))
        taken[chosen] = True
        return chosen

    typed = typed.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_src"), pl.lit(0, pl.Int8).alias("_dup")
    )
    copies = []
    for flag, name in ((1, "duplicate_exact"), (2, "duplicate_key")):
        chosen = pick(counts[name])
        copy = typed[chosen].with_columns(pl.lit(flag, pl.Int8).alias("_dup"))
        if flag == 1 and next_part is not None and copy.height:
            copy = copy.with_columns(pl.Series("_part", next_part(copy["_part"].to_numpy())))
        copies.append(copy)
    chosen_in_place = []
    for kind, k in zip(kinds, per_entry, strict=True):
        mask = None
        if kind.eligible is not None:
            mask = typed.select(kind.eligible.fill_null(False)).to_series().to_numpy()
        chosen_in_place.append(pick(k, mask))

    rows = _insert_copies(typed, pl.concat(copies))
    src = rows["_src"].to_numpy()
    dup = rows["_dup"].to_numpy()
    position = np.empty(n, dtype=np.int64)
    original = np.flatnonzero(dup == 0)
    position[src[original]] = original

    overrides: list[tuple[np.ndarray, pl.DataFrame]] = []
    ledger: list[pl.DataFrame] = []

    def record(pos: np.ndarray, kind: str, columns: list[str]) -> None:
        ledger.append(
            pl.DataFrame(
                {"_row": pos, "kind": [kind] * len(pos), "column": columns},
                schema={"_row": pl.Int64, "kind": pl.String, "column": pl.String},
            )
        )

    for flag, name in ((1, "duplicate_exact"), (2, "duplicate_key")):
        pos = np.flatnonzero(dup == flag)
        if not len(pos):
            continue
        if flag == 2:
            text = fmt(rows[pos])
            overrides.append((pos, _duplicate_key_change(source)(text)))
        record(pos, name, [SOURCES[source].key] * len(pos))

    for kind, chosen in zip(kinds, chosen_in_place, strict=True):
        if not len(chosen):
            continue
        pos = np.sort(position[chosen])
        if kind.make is not None:
            text = fmt(rows[pos])
            replacement = kind.make(text)
            replacement.columns = list(kind.columns)  # same order as `columns`
            overrides.append((pos, replacement))
            record(pos, kind.name, ["+".join(kind.columns)] * len(pos))
            continue
        column = np.array(kind.columns)[rng.integers(len(kind.columns), size=len(pos))]
        values = np.array(kind.pool, dtype=object)[rng.integers(len(kind.pool), size=len(pos))]
        for col in kind.columns:
            hit = column == col
            if hit.any():
                overrides.append(
                    (
                        pos[hit],
                        pl.DataFrame({col: pl.Series(col, values[hit].tolist(), dtype=pl.String)}),
                    )
                )
        record(pos, kind.name, list(column))
    ledger_df = (
        pl.concat(ledger)
        if ledger
        else pl.DataFrame(schema={"_row": pl.Int64, "kind": pl.String, "column": pl.String})
    )
    return _Injected(rows=rows, overrides=overrides, ledger=ledger_df.sort("_row"))


# --------------------------------------------------------------------------------------------
# Writing


def _part_name(source: str, part: int) -> str:
    if source == "orders":
        return f"orders_{part // 12:04d}-{part % 12 + 1:02d}"
    if source == "reviews":
        return f"reviews_{part:04d}"
    if source == "social":
        return f"social_{part // 4:04d}-Q{part % 4 + 1}"
    return source


class _Writer:
    """Writes files on one background thread while the main thread formats the next ones.

    At most `depth` files wait, which bounds memory; each file is written whole by one job, so
    the bytes do not depend on timing.
    """

    def __init__(self, depth: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator-writer")
        self._pending: deque[Future] = deque()
        self._depth = depth

    def submit(self, job: Callable[[], object]) -> None:
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(job))

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)


def _write_file(text: pl.DataFrame, path: Path, csv_options: dict | None) -> None:
    if path.suffix == ".parquet":
        text.write_parquet(path, compression="zstd", statistics=False)
    else:
        text.write_csv(path, **(csv_options or {}))


def _write(
    source: str,
    injected: _Injected,
    fmt: Callable[[pl.DataFrame], pl.DataFrame],
    out: Path,
    extension: Callable[[int], str],
    writer: _Writer,
    csv_options: dict | None = None,
) -> _Written:
    """Format each partition, apply the bad values and write it; count what was written."""
    folder = out / source
    folder.mkdir(parents=True, exist_ok=True)
    columns = SOURCES[source].columns
    rows = injected.rows
    parts = rows["_part"].to_numpy()
    written = _Written(rows=rows.height)
    if not rows.height:
        return written
    bounds = np.flatnonzero(np.diff(parts)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(parts)]])
    ledger = injected.ledger
    ledger_rows = ledger["_row"].to_numpy()
    for lo, hi in zip(starts, stops, strict=True):
        part = int(parts[lo])
        text = fmt(rows.slice(int(lo), int(hi - lo)))
        for pos, values in injected.overrides:
            inside = (pos >= lo) & (pos < hi)
            if not inside.any():
                continue
            local = pos[inside] - lo
            picked = values.filter(pl.Series(inside))
            text = text.with_columns(
                text[col].scatter(local, picked[col]) for col in picked.columns
            )
        text = text.select(columns)
        name = _part_name(source, part) + extension(part)
        writer.submit(partial(_write_file, text, folder / name, csv_options))
        written.files[name] = text.height
        in_file = (ledger_rows >= lo) & (ledger_rows < hi)
        if in_file.any():
            part_ledger = ledger.filter(pl.Series(in_file))
            local_rows = part_ledger["_row"].to_numpy() - lo
            written.bad_table.append(
                part_ledger.select(
                    pl.lit(source).alias("source"),
                    pl.lit(f"{source}/{name}").alias("file"),
                    pl.Series("row", local_rows + 1),
                    text[SOURCES[source].key].gather(local_rows).alias("key"),
                    "kind",
                    "column",
                )
            )
    counts = ledger.group_by("kind").len().sort("kind")
    written.bad_rows = dict(zip(counts["kind"], counts["len"], strict=True))
    cols = ledger.group_by("kind").agg(pl.col("column").unique().sort()).sort("kind")
    written.bad_columns = dict(zip(cols["kind"], cols["column"].to_list(), strict=True))
    return written


def _fx_rates(cfg: GeneratorConfig, rng: np.random.Generator) -> pl.DataFrame:
    """One rate per month and currency into USD, as text (date, currency, rate)."""
    months = pl.date_range(
        cfg.start.replace(day=1), cfg.end, interval="1mo", eager=True
    ).dt.strftime(DATE_FORMAT)
    frames = []
    for currency, start in FX_START.items():
        steps = rng.normal(0.0, FX_MONTHLY_STEP, len(months))
        steps[0] = 0.0
        rates = start * np.exp(np.cumsum(steps))
        frames.append(
            pl.DataFrame(
                {
                    "date": months,
                    "currency": currency,
                    "rate": pl.Series(rates).round(4).cast(pl.String),
                }
            )
        )
    return pl.concat(frames).sort("date", "currency")


def foreign_files(out: Path) -> list[str]:
    """Files in `out`'s source folders that no earlier run of the generator wrote there (its
    `_manifest.json` lists them): exports the generator must not delete."""
    try:
        listed = {
            f"{source}/{name}"
            for source, info in load_manifest(out)["sources"].items()
            for name in info["files"]
        }
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    return sorted(
        path.relative_to(out).as_posix()
        for source in (*SOURCES, "fx_rates")
        if (out / source).is_dir()
        for path in (out / source).rglob("*")
        if path.is_file() and path.relative_to(out).as_posix() not in listed
    )


def _clear(out: Path) -> None:
    """Remove what an earlier run wrote (only the source folders and the ground truth)."""
    for source in SOURCES:
        folder = out / source
        if folder.is_dir():
            shutil.rmtree(folder)
    for name in (MANIFEST_NAME, BAD_ROWS_NAME):
        (out / name).unlink(missing_ok=True)


def generate(out: Path | str, config: GeneratorConfig | None = None) -> dict:
    """Write the raw exports (one folder per source) under `out` and return the manifest (also
    `_manifest.json`)."""
    cfg = config or GeneratorConfig()
    out = Path(out)
    foreign = foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise FileExistsError(
            f"{out} holds export files the generator did not write ({shown}); it replaces its "
            "source folders whole, so choose an empty folder or move them away first"
        )
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(11)]

    world, customers = _population(cfg, streams[0])
    orders = _orders(world, streams[1])
    last_order_part = int(orders["_part"].max()) if orders.height else 0
    formats: dict[str, tuple] = {
        # source: (formatter, next partition of a re-export, file extension, CSV options)
        "customers": (_format_customers(world), None, lambda p: ".csv",
                      {"include_bom": True, "line_terminator": "\r\n"}),
        "orders": (_format_orders(world),
                   lambda p: np.minimum(p + 1, last_order_part),
                   lambda p: ".parquet" if p > last_order_part - PARQUET_ORDER_MONTHS else ".csv",
                   None),
        "reviews": (_format_reviews(world), None, lambda p: ".parquet", None),
        "social": (_format_social(world), None, lambda p: ".csv", None),
        "referrals": (_format_referrals(world), None, lambda p: ".csv", None),
    }  # fmt: skip
    sources: dict[str, dict] = {}
    ledgers: list[pl.DataFrame] = []
    writer = _Writer()

    def emit(index: int, source: str, typed: pl.DataFrame) -> None:
        fmt, next_part, ext, csv_options = formats[source]
        injected = _inject(source, typed, fmt, cfg.bad_share, streams[5 + index], next_part)
        written = _write(source, injected, fmt, out, ext, writer, csv_options)
        ledgers.extend(written.bad_table)
        n_bad = sum(written.bad_rows.values())
        sources[source] = {
            "rows": written.rows,
            "clean_rows": written.rows - n_bad,
            "files": written.files,
            "bad_rows": written.bad_rows,
            "bad_columns": written.bad_columns,
        }

    try:
        # Generation runs in the main thread while the previous source's files are written.
        emit(0, "customers", customers)
        del customers
        reviews = _reviews(world, orders, streams[2])
        emit(1, "orders", orders)
        del orders
        emit(2, "reviews", reviews)
        del reviews
        emit(3, "social", _social(world, streams[3]))
        referrals = _referrals(world, streams[4])
        converted = int((referrals["converted"] >= 0).sum())
        emit(4, "referrals", referrals)
        del referrals
        rates = _fx_rates(cfg, streams[10])
        (out / "fx_rates").mkdir(parents=True, exist_ok=True)
        writer.submit(partial(_write_file, rates, out / "fx_rates" / "fx_rates.csv", None))
        sources["fx_rates"] = {
            "rows": rates.height,
            "clean_rows": rates.height,
            "files": {"fx_rates.csv": rates.height},
            "bad_rows": {},
            "bad_columns": {},
        }
    finally:
        writer.close()
    sources = {name: sources[name] for name in SOURCES}
    ledger = (
        pl.concat(ledgers)
        if ledgers
        else pl.DataFrame(
            schema=dict.fromkeys(("source", "file", "row", "key", "kind", "column"), pl.String)
        )
    )
    ledger = ledger.with_columns(
        pl.col("kind").replace_strict(EXPECTED_REASON, return_dtype=pl.String).alias("reason")
    )
    ledger.write_csv(out / BAD_ROWS_NAME)

    params = asdict(cfg)
    params["start"], params["end"] = cfg.start.isoformat(), cfg.end.isoformat()
    manifest = {
        "generator": "engagement_box.generator",
        "format_version": 1,
        "params": params,
        "rows": {s: v["rows"] for s, v in sources.items()},
        "bad_rows_total": {s: sum(v["bad_rows"].values()) for s, v in sources.items()},
        "sources": sources,
        "truth": {
            "customers": cfg.customers,
            "buyers": int(world.buyer.sum()),
            "prospects": int(cfg.customers - world.buyer.sum()),
            "customers_with_handles": int((world.customer_handles[:, 0] >= 0).sum()),
            "non_customer_handles": int((world.handle_owner < 0).sum()),
            "converted_referrals": converted,
        },
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def load_manifest(out: Path | str) -> dict:
    """Read `<out>/_manifest.json` written by `generate`."""
    return json.loads((Path(out) / MANIFEST_NAME).read_text())


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The generator's options (shared by `python -m engagement_box.generator` and
    `engagement-box generate`)."""
    defaults = GeneratorConfig()
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--customers", type=int, default=defaults.customers, help="number of customer profiles"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument(
        "--bad-share",
        type=float,
        default=defaults.bad_share,
        help="share of rows made deliberately bad (each lands in the quarantine with a reason)",
    )
    parser.add_argument(
        "--start", type=date.fromisoformat, default=defaults.start, help="first day, YYYY-MM-DD"
    )
    parser.add_argument(
        "--end", type=date.fromisoformat, default=defaults.end, help="last day, YYYY-MM-DD"
    )
    return parser


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m engagement_box.generator",
        description="Generate one retailer's raw exports (seeded, deterministic).",
    )
    return add_arguments(parser).parse_args(argv)


def main(argv: list[str] | argparse.Namespace | None = None) -> int:
    """Generate the exports and print rows per source and the time taken."""
    args = argv if isinstance(argv, argparse.Namespace) else _parse_args(argv)
    try:
        cfg = GeneratorConfig(
            customers=args.customers,
            start=args.start,
            end=args.end,
            bad_share=args.bad_share,
            seed=args.seed,
        )
    except ValueError as error:  # an option out of range: said in one line, nothing written
        print(f"engagement-box generate: error: {error}", file=sys.stderr)
        return 2
    used = str(Path(args.out).expanduser().absolute())
    odd = settings.pattern_characters(used)
    if odd:  # every run would refuse the folder as ENGAGEMENT_DATA_DIR (README, "Settings")
        print(
            f"engagement-box generate: error: {used} holds {' '.join(odd)}, which the pipeline "
            "reads as a pattern of file names: choose a folder without them",
            file=sys.stderr,
        )
        return 2
    began = time.perf_counter()
    try:
        manifest = generate(args.out, cfg)
    except FileExistsError as error:  # exports of somebody's: nothing deleted, nothing written
        print(f"engagement-box generate: error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - began
    print(f"wrote {args.out} (seed {cfg.seed}, {cfg.start} .. {cfg.end})")
    for source, info in manifest["sources"].items():
        print(
            f"  {source:<10} {info['rows']:>11,} rows in {len(info['files']):>3} file(s), "
            f"{sum(info['bad_rows'].values()):>8,} bad"
        )
    print(f"  {'total':<10} {sum(manifest['rows'].values()):>11,} rows in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
