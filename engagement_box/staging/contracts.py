"""Data contracts for the raw exports: orders, customers, reviews, social, referrals and fx_rates.

Each source has a Pandera (polars backend) model that describes the *typed* staged row, and a
`Source` that says where its files live, which column is its key and how the raw text of each
column is parsed. Raw files are read as text; `engagement_box.staging.ingestion` parses every
column with the type the model declares, sends rows that fail to parse or fail a check to the
quarantine, and stages the rest. The models are the single place a rule is written: change a
rule here and both the ingest and the documentation (`docs/CONTRACTS.md` lists these fields) follow.

No Dagster import here: this module is plain Python, tested on its own.
"""

from dataclasses import dataclass
from typing import Optional

import pandera.polars as pa
import polars as pl

from engagement_box.settings import MAX_FX_RATE, SOCIAL_EVENT_TYPES

ORDER_STATUSES = ("completed", "returned", "cancelled")
ORDER_CHANNELS = ("web", "mobile", "store", "app")
# SOCIAL_EVENT_TYPES (the event types of the social export) is defined with the setting that
# weighs them (`engagement_box.settings`), so a setting is checked without loading the contracts.
# Reactions point at somebody else's content, so they need a target (a handle or a post id).
SOCIAL_REACTIONS = ("like", "pin", "comment", "share", "retweet", "mention")
SOCIAL_PLATFORMS = ("instagram", "twitter", "facebook", "pinterest", "tiktok")

# Whitespace as the ingest trims it from both ends of every value: the characters polars'
# str.strip_chars() removes (Unicode White_Space: tabs, line breaks, no-break and other wide
# spaces), with INVISIBLE below (TRIMMED). Erasure
# trims requests and raw quarantined text the same way (`sql/erasure/create_trim_macro.sql`
# spells the same characters; tests/test_erasure.py holds all three equal).
WHITESPACE = "".join(
    map(
        chr,
        (9, 10, 11, 12, 13, 32, 133, 160, 5760, *range(8192, 8203), 8232, 8233, 8239, 8287, 12288),
    )
)
# Characters that show as nothing: zero-width space, non-joiner and joiner, word joiner, the
# byte-order mark (a spreadsheet's "UTF-8 with BOM", or text pasted from a web page) and the soft
# hyphen (a word processor's hyphenation point, shown only at a line's end). The ingest
# trims them with the whitespace (TRIMMED), and removes them anywhere inside an email address or
# a social handle (`Source.contact_keys`), where "anna@shop.com" with a zero-width space in it
# kept one person as two customers. Erasure and identity apply the same rule.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
TRIMMED = WHITESPACE + INVISIBLE
INVISIBLE_PATTERN = f"[{INVISIBLE}]"  # a regular expression: any one of them
# Full-width forms of ASCII (U+FF01-U+FF5E: `ａｎｎ＠example.com`, typed with an East Asian input
# method left in full width) are the ASCII characters in email addresses and social handles
# (`Source.contact_keys`): one person, where they were two customers and an erased person's
# address came back so written (a review). Only this block is folded, not all of Unicode's
# compatibility forms (NFKC): DuckDB and Spark fold it with `translate`, the same rule in SQL.
FULL_WIDTH = "".join(map(chr, range(0xFF01, 0xFF5F)))
HALF_WIDTH = "".join(map(chr, range(0x21, 0x7F)))


def half_width(text):
    """A polars text expression or Series with `FULL_WIDTH` read as ASCII: the one fold the
    ingest and erasure apply (SQL's twin: `erasure_half_width`)."""
    return text.str.replace_many(_FULL_WIDTH_LIST, _HALF_WIDTH_LIST)


_FULL_WIDTH_LIST, _HALF_WIDTH_LIST = list(FULL_WIDTH), list(HALF_WIDTH)
# An address written as a link (`mailto:ann@example.com`, copied from a web page) or with the
# root's dot after its domain (`ann@example.com.`) is that address: the ingest stages it
# without them, and erasure matches it so.
MAILTO_PATTERN = r"(?i)^mailto:"

# The version of how the ingest reads values into staged rows (trimming, the invisible
# characters, NULL texts, parsing): recorded with each file taken in
# (`staging.ingested_files.rules`). A file still in the export folder that was taken in under
# other rules is taken in again by the next ingest, as a changed file is, so every staged row
# reads as the rules now say. Raise it with any change that stages a value differently.
#   2: invisible characters trimmed, and removed inside emails and handles (2026-12-03)
#   3: header variants read as their columns (`Social Handles`), a header's trailing unnamed
#      column not counted in a row's fields (2026-12-03)
#   4: blank entries of a handle list dropped (`@ann;@ann_shop;`), each entry trimmed; a CSV
#      value quoted after the separator's space (`O1, "C1"`) read without its quotes
#      (2026-12-03)
#   5: a time with second 60 (`10:00:60`) unparseable, not the next minute (2026-12-03)
#   6: a boolean written as a number with a fraction (`1.0`, `0.0`) read, not quarantined
#      (2026-12-04)
#   7: a quarantine detail names a pattern in words, not as its regular expression;
#      invisible characters in header names ignored (`email` + U+200B was no column); a
#      Parquet timestamp at a fixed offset gives a date column the date written, not its UTC
#      day; a date written `2024-1-2 10:00` read, and a timestamp `2024-1-2T10:00` (with `T`
#      after a one-digit month or day); a NUL in a Parquet text value refuses the
#      file, as in a CSV (2026-12-04)
#   8: `\N` is NULL (MySQL's and Hive's text exports); a header row longer than 64 KiB read
#      whole (2026-12-04)
#   9: `NaN`, `nan`, `<NA>` and `NaT` are NULL (pandas' gaps written as text), and dropped
#      from lists; an integer written
#      with a fraction of zeros or an exponent read exactly, not through a float; Parquet
#      float16 and decimal columns read as numbers (2026-12-05)
#  10: a file whose name holds `[`, `*` or `?` read as that file (polars read it as a pattern
#      of names: another file's rows under its name); a `"` inside a CSV value that is not
#      quoted refuses the file when polars reads it anyway (`="00123"`, `a""b`); ` UTC` after
#      a time read as UTC (BigQuery's text form); the platform `x` read as twitter; quarantine
#      details in words (`fax` is not one of ...) (2026-12-06)
#  11: a header name that writes a column's name without its underscores read as that column
#      (`E-Mail`, `CustomerID`: the email was ignored, and with it the identity link)
#      (2026-12-06)
#  12: customer ids, emails and handles in Unicode's composed form (NFC: a decomposed `é` is
#      the composed one); the soft hyphen (U+00AD) one of the invisible characters; money with
#      more than four decimals rounded from its text, half away from zero (through a float,
#      0.00015 was 0.0001 and 0.00025 0.0003) (2026-12-06)
#  13: email addresses and handles written in full-width characters read as ASCII; an email
#      address without a leading `mailto:` and trailing dots (2026-12-07)
STAGING_RULES = 13
# A raw column beside the contract's: why the row's fields cannot be trusted (NULL when they can).
ROW_PROBLEM = "row_problem"


class IngestError(Exception):
    """A file cannot be ingested at all (unreadable, wrong type, missing columns)."""


# Between the entries of a list column (`Source.lists`).
LIST_SEPARATOR = ";"

# Deliberately simple: one "@", no whitespace, a dot in the domain, none of `,;<>` (two addresses
# in one cell, "Name <address>"). Validation of deliverability is not the warehouse's job;
# catching "n/a", "john at example", "a,b@example.com" and half-typed addresses is.
EMAIL_PATTERN = r"^\s*[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+\s*$"
HANDLE_PATTERN = r"^@?[A-Za-z0-9_.]{1,64}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
# What each pattern asks for, in words: a quarantine row's detail names the rule so
# (`str_matches(an email address, ...): <value>`), where it gave the regular expression.
PATTERN_WORDS = {
    EMAIL_PATTERN: "an email address: one @, a dot after it, no spaces nor any of ,;<>",
    HANDLE_PATTERN: "a handle: an optional @, then 1-64 letters, digits, _ or .",
    CURRENCY_PATTERN: "a three-letter currency code",
    COUNTRY_PATTERN: "a two-letter country code",
}

# The row rules (`pa.dataframe_check`) in words, as a quarantined row's detail gives them (the
# row itself is in the row's raw_values); `social_handles_well_formed` names the entry instead.
ROW_RULE_WORDS = {
    "author_identified": "neither customer_id nor email: a review nobody can be linked to",
    "reaction_has_target": (
        "a reaction (like, pin, comment, share, retweet, mention) with neither target_handle "
        "nor post_id: it cannot be attributed to anyone's influence"
    ),
    "referee_identified": "neither referee_email nor referee_customer_id: no referee to credit",
    "not_self_referral": "referee_customer_id is the referrer_customer_id: a self-referral",
    "converted_after_referred": "converted_at is before referred_at",
}

# Money is stored as DECIMAL(18, 4) in DuckDB: sums are exact, so reruns give identical totals
# (a parallel sum of DOUBLEs can differ in the last bit from run to run). Larger amounts are typos.
# Every amount up to the cap flows through every computation: the currency conversion works in
# DECIMAL(38, 4) (`sql/work/create_currency_macros.sql`), where cap x MAX_RATE fits.
MONEY_DUCKDB_TYPE = "DECIMAL(18, 4)"
MAX_AMOUNT = 1e9
# An exchange rate into the reporting currency: positive, at most this (no currency is worth a
# million of another's units; a larger rate is a typo or a rate the wrong way round). Defined
# with ENGAGEMENT_FX_RATES, which it bounds too.
MAX_RATE = MAX_FX_RATE

# Timestamps earlier than this are typos (year 0202, 1900 defaults), not history.
EARLIEST_TIMESTAMP = pl.datetime(1990, 1, 1)


class Orders(pa.DataFrameModel):
    """One row per order line as the shop exports it (amounts net of tax and discounts)."""

    order_id: str = pa.Field(nullable=False)
    customer_id: str = pa.Field(nullable=False)
    email: Optional[str] = pa.Field(nullable=True, str_matches=EMAIL_PATTERN)
    ordered_at: pl.Datetime = pa.Field(nullable=False, ge=EARLIEST_TIMESTAMP)
    net_amount: float = pa.Field(nullable=False, ge=0, le=MAX_AMOUNT)
    currency: str = pa.Field(nullable=False, str_matches=CURRENCY_PATTERN)
    status: str = pa.Field(nullable=False, isin=list(ORDER_STATUSES))
    channel: str = pa.Field(nullable=False, isin=list(ORDER_CHANNELS))

    class Config:
        strict = False


class Customers(pa.DataFrameModel):
    """One row per customer profile. `social_handles` holds zero or more handles split by ';'."""

    customer_id: str = pa.Field(nullable=False)
    email: str = pa.Field(nullable=False, str_matches=EMAIL_PATTERN)
    social_handles: Optional[str] = pa.Field(nullable=True)
    signup_date: pl.Date = pa.Field(nullable=False, ge=EARLIEST_TIMESTAMP.cast(pl.Date))
    loyalty_member: bool = pa.Field(nullable=False)
    marketing_consent: bool = pa.Field(nullable=False)
    country: str = pa.Field(nullable=False, str_matches=COUNTRY_PATTERN)

    @pa.dataframe_check(name="social_handles_well_formed")
    def social_handles_well_formed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        handles = (
            pl.col("social_handles")
            .str.split(";")
            .list.eval(pl.element().str.strip_chars().str.contains(HANDLE_PATTERN))
        )
        return data.lazyframe.select(pl.col("social_handles").is_null() | handles.list.all())

    class Config:
        strict = False


class Reviews(pa.DataFrameModel):
    """One row per product review. Written by a known customer id, or by email only."""

    review_id: str = pa.Field(nullable=False)
    customer_id: Optional[str] = pa.Field(nullable=True)
    email: Optional[str] = pa.Field(nullable=True, str_matches=EMAIL_PATTERN)
    product_id: str = pa.Field(nullable=False)
    rating: int = pa.Field(nullable=False, in_range={"min_value": 1, "max_value": 5})
    helpful_votes: int = pa.Field(nullable=False, ge=0)
    verified_purchase: bool = pa.Field(nullable=False)
    created_at: pl.Datetime = pa.Field(nullable=False, ge=EARLIEST_TIMESTAMP)

    @pa.dataframe_check(name="author_identified")
    def author_identified(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A review nobody can be linked to is of no use to any metric."""
        return data.lazyframe.select(
            pl.col("customer_id").is_not_null() | pl.col("email").is_not_null()
        )

    class Config:
        strict = False


class Social(pa.DataFrameModel):
    """One row per social interaction: `actor_handle` did `event_type` on a target's content."""

    event_id: str = pa.Field(nullable=False)
    actor_handle: str = pa.Field(nullable=False, str_matches=HANDLE_PATTERN)
    event_type: str = pa.Field(nullable=False, isin=list(SOCIAL_EVENT_TYPES))
    target_handle: Optional[str] = pa.Field(nullable=True, str_matches=HANDLE_PATTERN)
    post_id: Optional[str] = pa.Field(nullable=True)
    platform: str = pa.Field(nullable=False, isin=list(SOCIAL_PLATFORMS))
    occurred_at: pl.Datetime = pa.Field(nullable=False, ge=EARLIEST_TIMESTAMP)

    @pa.dataframe_check(name="reaction_has_target")
    def reaction_has_target(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A like or a share of nothing cannot be attributed to anyone's influence."""
        return data.lazyframe.select(
            ~pl.col("event_type").is_in(list(SOCIAL_REACTIONS))
            | pl.col("target_handle").is_not_null()
            | pl.col("post_id").is_not_null()
        )

    class Config:
        strict = False


class Referrals(pa.DataFrameModel):
    """One row per referral invitation sent by an existing customer."""

    referral_id: str = pa.Field(nullable=False)
    referrer_customer_id: str = pa.Field(nullable=False)
    referee_email: Optional[str] = pa.Field(nullable=True, str_matches=EMAIL_PATTERN)
    referee_customer_id: Optional[str] = pa.Field(nullable=True)
    referred_at: pl.Datetime = pa.Field(nullable=False, ge=EARLIEST_TIMESTAMP)
    converted_at: Optional[pl.Datetime] = pa.Field(nullable=True, ge=EARLIEST_TIMESTAMP)
    referrer_reward: float = pa.Field(nullable=False, ge=0, le=MAX_AMOUNT)
    referee_reward: float = pa.Field(nullable=False, ge=0, le=MAX_AMOUNT)
    would_have_joined_anyway: Optional[bool] = pa.Field(nullable=True)

    @pa.dataframe_check(name="referee_identified")
    def referee_identified(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("referee_email").is_not_null() | pl.col("referee_customer_id").is_not_null()
        )

    @pa.dataframe_check(name="not_self_referral")
    def not_self_referral(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("referee_customer_id").is_null()
            | (pl.col("referee_customer_id") != pl.col("referrer_customer_id"))
        )

    @pa.dataframe_check(name="converted_after_referred")
    def converted_after_referred(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("converted_at").is_null() | (pl.col("converted_at") >= pl.col("referred_at"))
        )

    class Config:
        strict = False


class FxRates(pa.DataFrameModel):
    """One row per day and currency: units of the reporting currency (ENGAGEMENT_CURRENCY) one
    unit of `currency` buys. An order is converted at the latest rate on or before its day."""

    date: pl.Date = pa.Field(nullable=False, ge=EARLIEST_TIMESTAMP.cast(pl.Date))
    currency: str = pa.Field(nullable=False, str_matches=CURRENCY_PATTERN)
    rate: float = pa.Field(nullable=False, gt=0, le=MAX_RATE)

    class Config:
        strict = False


@dataclass(frozen=True)
class Source:
    """A raw export: its folder name under ENGAGEMENT_DATA_DIR, its contract and its key."""

    name: str
    model: type[pa.DataFrameModel]
    # The key column, or columns (unique together); a repeated key is quarantined in the first.
    key_columns: tuple[str, ...]
    # Columns whose text is case-folded before validation ("Completed" is "completed").
    casefold: tuple[str, ...] = ()
    # Amounts of money (stored as MONEY_DUCKDB_TYPE).
    money: tuple[str, ...] = ()
    # Codes that are upper case by definition ("usd" is "USD", "de" is "DE").
    upcase: tuple[str, ...] = ()
    # Lists of values split by `LIST_SEPARATOR` (a customer's social handles): each entry is
    # trimmed and blank entries dropped (`@ann;@ann_shop;` is two handles), none left is NULL.
    lists: tuple[str, ...] = ()
    # Values read as another, after case-folding: (column, written, read as). X is Twitter's
    # name since 2023, which exports now write for the platform whose points are twitter's.
    aliases: tuple[tuple[str, str, str], ...] = ()
    # False for an export a retailer may not have at all (its folder may be missing): the FX
    # rates, whose fallback is the ENGAGEMENT_FX_RATES setting.
    folder_required: bool = True

    @property
    def key(self) -> str:
        """The column a repeated key is reported in (the first key column)."""
        return self.key_columns[0]

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def columns(self) -> list[str]:
        return list(self.schema.columns)

    @property
    def contact_keys(self) -> list[str]:
        """The email address and social handle columns (`email`, `referee_email`,
        `social_handles`, `actor_handle`, `target_handle`): INVISIBLE characters are removed from
        their values anywhere, not only at the ends."""
        return [
            c
            for c in self.columns
            if c == "email" or c.endswith(("_email", "_handle")) or c == "social_handles"
        ]

    @property
    def identity_keys(self) -> list[str]:
        """The columns identity and erasure match people by: the contact keys and the customer
        ids (`customer_id`, `referrer_customer_id`, `referee_customer_id`). Their values are
        staged in Unicode's composed form (NFC): `José` typed on one system and written with a
        combining accent by another (macOS) are one text, so one person (a review: two
        profiles of one email, one consenting, and an erasure that found one)."""
        ids = [c for c in self.columns if c == "customer_id" or c.endswith("_customer_id")]
        return [*ids, *self.contact_keys]

    @property
    def required_columns(self) -> list[str]:
        """Columns a file must have in its header; optional (nullable) ones may be absent."""
        return [name for name, col in self.schema.columns.items() if not col.nullable]

    @property
    def enumerations(self) -> dict[str, tuple[str, ...]]:
        """Columns restricted to a fixed set of values (an `isin` check), with the values."""
        return {
            name: tuple(check.statistics["allowed_values"])
            for name, col in self.schema.columns.items()
            for check in col.checks
            if check.name == "isin"
        }

    @property
    def dtypes(self) -> dict[str, pl.DataType]:
        return {name: col.dtype.type for name, col in self.schema.columns.items()}


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "orders",
            Orders,
            key_columns=("order_id",),
            casefold=("status", "channel"),
            upcase=("currency",),
            money=("net_amount",),
        ),
        Source(
            "customers",
            Customers,
            key_columns=("customer_id",),
            upcase=("country",),
            lists=("social_handles",),
        ),
        Source("reviews", Reviews, key_columns=("review_id",)),
        Source(
            "social",
            Social,
            key_columns=("event_id",),
            casefold=("event_type", "platform"),
            aliases=(("platform", "x", "twitter"),),
        ),
        Source(
            "referrals",
            Referrals,
            key_columns=("referral_id",),
            money=("referrer_reward", "referee_reward"),
        ),
        Source(
            "fx_rates",
            FxRates,
            key_columns=("date", "currency"),
            upcase=("currency",),
            folder_required=False,
        ),
    )
}
