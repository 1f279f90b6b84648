"""The rows of export files parsed and checked, on polars frames, with no database: text
trimmed and made NULL where a tool wrote "no value" (`normalise_text`), each column parsed to
its contract type (`parse`: text that does not parse is a failure, never a silent NULL), the
Pandera model's checks (`validate`), dates after the run's time (`future_failures`), and the
failures turned into quarantine rows with a reason and a detail in words (`quarantine_rows`).
`check_batch` does it all to one batch of rows read by `staging/reading.py`; the staging
transaction that stores the result is `staging/ingestion.py`. No Dagster import.
"""

import decimal
import re
from datetime import datetime, timedelta

import pandera.errors as pa_errors
import polars as pl

from engagement_box.clock import in_zone
from engagement_box.staging.contracts import (
    HANDLE_PATTERN,
    INVISIBLE_PATTERN,
    LIST_SEPARATOR,
    MAILTO_PATTERN,
    PATTERN_WORDS,
    ROW_PROBLEM,
    ROW_RULE_WORDS,
    TRIMMED,
    IngestError,
    Source,
    half_width,
)

# Accepted timestamp text, tried in order. "T" between date and time is read as a space first.
# Text with an offset or "Z" is converted to UTC; text without one is taken as UTC. With a shop's
# time zone (ENGAGEMENT_TIME_ZONE) other than UTC, text with an offset is then converted to it,
# and text without one is taken as written there (`in_shop_zone`).
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M%#z",
    "%Y-%m-%d",
)
# The form most exports use, parsed on polars' fast path: "2024-03-01 10:00:00", with "T" for
# the space and/or an offset of zero ("+00:00" or "Z"). ASCII digits only.
CANONICAL_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\+00:00|Z)?$"
# Forms parsed directly by polars (offsets of zero only as literal text: the value is the UTC
# time written); one is chosen per column from a sample of its first values.
DIRECT_TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S+00:00",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S+00:00",
    "%Y-%m-%d %H:%M:%SZ",
)
DIRECT_FORMAT_SAMPLE = 1000
TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")

# A timestamp or date later than the run's time plus this is quarantined as `in_future`: a day
# covers the exporting system's time zone and clock, not a typo of the year.
FUTURE_TOLERANCE = timedelta(days=1)
# Order in which failures of one row are reported: the first becomes the row's `reason`.
REASON_PRIORITY = {
    "wrong_field_count": -1,
    "too_long": -1,
    "unparseable_timestamp": 0,
    "unparseable_date": 0,
    "unparseable_number": 0,
    "unparseable_integer": 0,
    "unparseable_boolean": 0,
    "missing_required_value": 1,
    "duplicate_key": 2,
    "not_an_allowed_value": 3,
    "malformed": 4,
    "out_of_range": 5,
    "in_future": 5,
}
ROW_RULE_PRIORITY = 6  # dataframe-level rules (e.g. not_self_referral) come last


# ----------------------------------------------------------------------------------------------
# Parsing and validation (pure, on polars frames)


# Text that export tools write for "no value": NULL. A database dump wrote guest orders'
# customer_id as `NULL`, which staged every guest as one customer named "NULL". Not `NA` (a
# country code).
# `\N`: MySQL's `SELECT ... INTO OUTFILE` and `mysqldump --tab`, and Hive's and Spark's text
# tables, write NULL so. `NaN`, `nan`, `<NA>`, `NaT`: pandas' missing values turned to text
# (an id column of a frame with gaps, `astype(str)`; `NaT` a datetime's): every guest order was
# staged under one buyer "nan". A float NaN in Parquet is a gap too, so a CSV's `NaN` in a
# number column is no value (a required column's row is `missing_required_value`), the same in
# both formats. A list's entries so written are dropped as blank ones are (`@ann;nan` merged
# everyone whose list ended so into one customer). A handle that is one of these words is
# written with its `@` (`@nan`), which no export tool writes for a gap.
NULL_TEXTS = (
    *("", "NULL", "null", "Null", "N/A", "n/a", "#N/A", "None", "\\N"),
    *("NaN", "nan", "-NaN", "-nan", "<NA>", "NaT"),  # pandas' own NA texts, as it reads them
)


def normalise_text(raw: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Trim every value (whitespace and invisible characters, `contracts.TRIMMED`), remove
    invisible characters inside email addresses and social handles, trim each entry of a list
    and drop the blank ones (`Source.lists`), make empty text and the `NULL_TEXTS` NULL, fold
    the case of enumerations and codes, compose the ids, emails and handles (NFC,
    `Source.identity_keys`), read full-width emails and handles as ASCII and an email without a
    `mailto:` before it and dots after it (`folded_contact`)."""
    exprs = []
    contact_keys = source.contact_keys
    for name in source.columns:
        col = pl.col(name)
        if name in contact_keys:  # 0.5 CPU-s for 10M order emails
            col = col.str.replace_all(INVISIBLE_PATTERN, "")
        if name in source.lists:  # entries trimmed, blank ones (and NULL_TEXTS) dropped
            if name in contact_keys:  # a full-width `；` separates handles as `;` does
                col = half_width(col)
            col = (
                col.str.split(LIST_SEPARATOR)
                .list.eval(pl.element().str.strip_chars(TRIMMED))
                .list.eval(pl.element().filter(~pl.element().is_in(list(NULL_TEXTS))))
                .list.join(LIST_SEPARATOR)
            )
        col = col.str.strip_chars(TRIMMED).replace(list(NULL_TEXTS), None)
        if name in source.casefold:
            col = col.str.to_lowercase()
        if name in source.upcase:
            col = col.str.to_uppercase()
        aliases = {written: read for column, written, read in source.aliases if column == name}
        if aliases:
            col = col.replace(aliases)
        exprs.append(col.alias(name))
    normalised = raw.with_columns(exprs)
    normalised = normalised.with_columns(
        composed(normalised[name]) for name in source.identity_keys
    )
    return normalised.with_columns(
        folded_contact(normalised[name], email=name.endswith("email"))
        for name in source.contact_keys
    )


def folded_contact(text: pl.Series, email: bool) -> pl.Series:
    """An email address or handle column with full-width ASCII read as ASCII (`FULL_WIDTH`), and
    an address without a leading `mailto:` and trailing dots (`MAILTO_PATTERN`). Only the values
    that can hold one are changed (none, in most files; finding them: 0.3-0.5 CPU-s per 10M
    addresses)."""
    other = (text.str.len_bytes() != text.str.len_chars()).fill_null(False)
    if email:
        other = other | text.str.contains(":", literal=True).fill_null(False)
        other = other | text.str.ends_with(".").fill_null(False)
    if not other.any():
        return text
    rows = other.arg_true()
    values = half_width(text.gather(rows))
    values = values.str.normalize("NFC")  # a full-width letter, then a combining accent
    if email:
        values = values.str.replace(MAILTO_PATTERN, "").str.strip_chars(TRIMMED)
        values = values.str.strip_chars_end(TRIMMED + ".").replace("", None)
    return text.scatter(rows, values)


def composed(text: pl.Series) -> pl.Series:
    """`text` in Unicode's composed form (NFC), the values that are ASCII left as they are:
    normalising every value cost 3 s for 10M ids, finding the others 0.2 s."""
    other = (text.str.len_bytes() != text.str.len_chars()).fill_null(False)
    if not other.any():
        return text
    rows = other.arg_true()
    return text.scatter(rows, text.gather(rows).str.normalize("NFC"))


# A time whose seconds are 60 (`10:00:60`): polars reads it as the next minute (and 23:59:60 as
# the next day), where 24:00:00 or 10:61:00 are refused. A row so written is quarantined as
# unparseable, not moved silently (a leap second is not a time a shop's export records).
_SECOND_60 = r"\d:[0-5]\d:60(?:[^0-9]|$)"


def _without_second_60(text: pl.Series, parsed: pl.Series) -> pl.Series:
    """`parsed`, NULL where its text writes a 60th second or no four-digit year."""
    parsed = _with_four_digit_year(text, parsed)
    maybe = text.str.contains(":60", literal=True).fill_null(False) & parsed.is_not_null()
    if not maybe.any():
        return parsed
    rows = maybe.arg_true()
    bad = text.gather(rows).str.contains(_SECOND_60)
    return parsed.scatter(rows.filter(bad), None) if bad.any() else parsed


def _with_four_digit_year(text: pl.Series, parsed: pl.Series) -> pl.Series:
    """`parsed`, NULL where its text does not begin with a four-digit year: polars' `%Y` also
    reads `0-1-1`, `12-01-01 10:00` and `+2024-03-01`, and the date columns, which take the
    year from the text, did not (a date and a timestamp column read one text differently).
    Only values before the year 1000 (negative years too) or with a `+` first are looked at
    again (0.08 CPU-s for 7M timestamps; through `dt.year()` 0.3)."""
    first = datetime(1000, 1, 1) if parsed.dtype != pl.Date else datetime(1000, 1, 1).date()
    maybe = parsed.is_not_null() & ((parsed < first) | text.str.starts_with("+"))
    if not maybe.any():
        return parsed
    rows = maybe.arg_true()
    bad = ~text.gather(rows).str.contains(r"^[0-9]{4}-")
    return parsed.scatter(rows.filter(bad), None) if bad.any() else parsed


def _parse_timestamps(text: pl.Series) -> pl.Series:
    """Timestamps as naive UTC; NULL where the text is none of the accepted forms.

    An export mostly writes one form. The plain form that fits a sample of the column
    (`DIRECT_TIMESTAMP_FORMATS`) is parsed directly, with no regex and no rewrite; the rest goes
    on to `_parse_timestamps_other`. Every path gives the value the general formats give (tests
    compare them on edge cases and on generated text).
    """
    fmt = _direct_timestamp_format(text)
    if fmt is None:
        return _parse_timestamps_other(text)
    # No cache: timestamps are mostly distinct, and the cache made this 35% slower.
    parsed = _without_second_60(
        text, text.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False)
    )
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    return parsed.scatter(todo.arg_true(), _parse_timestamps_other(text.filter(todo)))


def _direct_timestamp_format(text: pl.Series) -> str | None:
    """The direct format that parses most of the first values, if one parses any.

    Trying a format that does not fit costs more than one that does (308 against 136 ms for
    800k values), so the format is chosen on a sample rather than tried in turn.
    """
    sample = text.head(DIRECT_FORMAT_SAMPLE).drop_nulls()
    if not len(sample):
        return None
    parsed = {
        fmt: len(sample)
        - sample.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False).null_count()
        for fmt in DIRECT_TIMESTAMP_FORMATS
    }
    best = max(parsed, key=lambda fmt: parsed[fmt])
    return best if parsed[best] else None


def _parse_dates(text: pl.Series) -> pl.Series:
    """Dates: plain `2024-03-01` parsed directly; any other accepted timestamp text gives the
    date it is written with (`2024-03-01T23:30:00-05:00` is 1 March, the day where it was
    written, not 2 March, the day in UTC)."""
    parsed = _with_four_digit_year(
        text, text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False)
    )
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    rest = text.filter(todo)
    # The date part as written: one-digit months and days too (`2024-1-2 10:00`), which a
    # timestamp accepts (its first ten characters were taken, and it was quarantined).
    written = rest.str.extract(r"^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})", 1).str.strptime(
        pl.Date, "%Y-%m-%d", strict=False, cache=False
    )
    dates = pl.select(
        pl.when(_parse_timestamps(rest).is_not_null()).then(written).alias(text.name)
    ).to_series()
    return parsed.scatter(todo.arg_true(), dates)


def _parse_timestamps_other(text: pl.Series) -> pl.Series:
    """Timestamps not in the plain form: a common variant ("T" between date and time, and/or an
    offset of zero, "+00:00" or "Z"; ASCII digits only) is rewritten to the plain form and
    parsed on polars' fast path; only the rest goes through the general formats, each tried on
    the rows still unparsed. The general formats accept disjoint texts (with an offset, with
    seconds, with minutes only, date only), so the order of the attempts cannot change a result.
    """
    canonical = text.str.contains(CANONICAL_TIMESTAMP)
    parsed = pl.select(
        pl.when(pl.lit(canonical))
        .then(
            pl.concat_str(
                pl.lit(text).str.slice(0, 10), pl.lit(" "), pl.lit(text).str.slice(11, 8)
            ).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        )
        .alias(text.name)
    ).to_series()
    parsed = _without_second_60(text, parsed)
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    return parsed.scatter(todo.arg_true(), _parse_timestamps_general(text.filter(todo)))


def _parse_timestamps_general(text: pl.Series) -> pl.Series:
    """Every accepted timestamp form, each format tried only on the rows not parsed yet."""
    # `T` between date and time, also after a one-digit month or day (`2024-1-2T10:00`)
    text = text.str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})T", "$1 ")
    # ` UTC` after the time, as BigQuery and other warehouses write a timestamp as text
    text = text.str.replace(r"^(\d{4}-\d{1,2}-\d{1,2} [0-9:.]*\d) UTC$", "$1+00:00")
    parsed = pl.Series(text.name, [None] * len(text), dtype=pl.Datetime("us"))
    for fmt in TIMESTAMP_FORMATS:
        todo = parsed.is_null() & text.is_not_null()
        if not todo.any():
            break
        attempt = text.filter(todo).str.strptime(
            pl.Datetime("us", "UTC") if "z" in fmt else pl.Datetime("us"), fmt, strict=False
        )
        if attempt.dtype.time_zone is not None:  # type: ignore[union-attr]
            attempt = attempt.dt.replace_time_zone(None)
        parsed = parsed.scatter(todo.arg_true(), attempt)
    return _without_second_60(text, parsed)


# The first instant and day a contract check can report: polars reads the year 0 (`0000-01-01`,
# or `0001-01-01T00:00:00+01:00` in UTC), which Python's datetime cannot hold, and the contract
# checks then failed the whole source with "year 0 is out of range", naming no file or row.
_FIRST_TIMESTAMP = datetime(1, 1, 1)
_FIRST_DATE = _FIRST_TIMESTAMP.date()


def _whole_decimal(written: str) -> int | None:
    """`written` (an exponent form such as `1e3`) as the integer it is exactly, or None when it
    is not whole or no BIGINT holds it."""
    try:
        number = decimal.Decimal(written)
    except decimal.InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() > 18 or number != number.to_integral_value():
        return None
    whole = int(number)
    return whole if -(2**63) <= whole < 2**63 else None


# A timestamp's text that ends in an offset (`Z`, `+05:30`, `-0400`, `-04`, ` UTC`) after a time.
WITH_OFFSET = (
    r"[0-9]:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?\s*(?:Z|z|[+-][0-9]{2}(?::?[0-9]{2})?|UTC)$"
)


def in_shop_zone(text: pl.Series, values: pl.Series, zone: str) -> pl.Series:
    """Parsed timestamps (naive UTC where the text had an offset, as written where it had none)
    as the wall-clock time of the shop's `zone`: the instants written with an offset are
    converted; the rest were written in the shop's time already. UTC: as they are."""
    if zone == "UTC":
        return values
    instants = text.str.strip_chars().str.contains(WITH_OFFSET).fill_null(False)
    if not instants.any():
        return values
    rows = instants.arg_true()
    local = (
        values.gather(rows)
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(zone)
        .dt.replace_time_zone(None)
    )
    return values.scatter(rows, local)


def parse_column(text: pl.Series, dtype: pl.DataType, zone: str = "UTC") -> tuple[pl.Series, str]:
    """Parse one text column; returns the typed column and the reason to give a failure.
    `zone`: the shop's time zone, which a timestamp's day is read in (`in_shop_zone`)."""
    if dtype == pl.String:
        return text, ""
    if dtype == pl.Datetime:
        values = _parse_timestamps(text)
        values = values.set(values < _FIRST_TIMESTAMP, None)
        return in_shop_zone(text, values, zone), "unparseable_timestamp"
    if dtype == pl.Date:
        values = _parse_dates(text)
        return values.set(values < _FIRST_DATE, None), "unparseable_date"
    if dtype == pl.Float64:
        values = text.cast(pl.Float64, strict=False)
        return values.set(~values.is_finite().fill_null(True), None), "unparseable_number"
    if dtype == pl.Int64:
        # `5.0`: pandas writes an integer column with a gap as floats, in CSV as in Parquet
        values = text.cast(pl.Int64, strict=False)
        retry = values.is_null() & text.is_not_null()
        if retry.any():
            # A fraction of zeros, read exactly (`12345678901234567.00` through a float was
            # ...68; `.0` is 0); an exponent form (`1e3`) exactly, as a decimal, when its value
            # is whole (through a float, `1.0000000000000000001` was 1, `12345678901234567e0`
            # ...68, `40000000000000000001e-19` 4; three reviews). Anything else (`4.5`) stays
            # NULL: quarantined, the text shown.
            exact = text.str.replace(r"^([+-]?)(\d*)\.0*$", "${1}0${2}")
            values = values.fill_null(exact.cast(pl.Int64, strict=False))
            exponent = (
                retry
                & values.is_null()
                & text.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$").fill_null(False)
            ).arg_true()
            if len(exponent):  # rare: each read as a decimal in Python
                values = values.scatter(
                    exponent,
                    pl.Series([_whole_decimal(t) for t in text.gather(exponent)], dtype=pl.Int64),
                )
        return values.alias(text.name), "unparseable_integer"
    if dtype == pl.Boolean:
        lowered = text.str.to_lowercase()
        values = (
            pl.select(
                pl.when(lowered.is_in(TRUE_TEXT))
                .then(True)
                .when(lowered.is_in(FALSE_TEXT))
                .then(False)
                .otherwise(None)
            )
            .to_series()
            .alias(text.name)
        )
        # A flag written as a number with a fraction (`1.0`, `0.0`: pandas writes a 0/1 column
        # with a missing value as floats, and a Parquet float column reads so) is the integer:
        # 1.0 is true, 0.0 false, 0.5 unparseable, as `5.0` is the integer 5.
        retry = values.is_null() & text.is_not_null()
        if retry.any():
            floats = text.cast(pl.Float64, strict=False)
            values = (
                pl.select(
                    pl.when(pl.lit(retry) & (pl.lit(floats) == 1.0))
                    .then(True)
                    .when(pl.lit(retry) & (pl.lit(floats) == 0.0))
                    .then(False)
                    .otherwise(pl.lit(values))
                )
                .to_series()
                .alias(text.name)
            )
        return values, "unparseable_boolean"
    raise TypeError(f"no parser for {dtype}")


_FOUR_PLACES = decimal.Decimal("0.0001")


def money_to_four_places(text: pl.Series, values: pl.Series) -> pl.Series:
    """Amounts of money as staged (`DECIMAL(18,4)`): a value with more than four decimals is
    rounded to four from its text, exactly, half away from zero (as DuckDB casts a text). The
    float it was parsed into rounded by its binary value: 0.00015 was staged as 0.0001 and
    0.00025 as 0.0003, a Parquet DECIMAL's too (a review). Only a value whose fifth decimal
    onwards is a half, give or take the float's error, can round otherwise than the float does
    (`x * 10^4` within 1e-12 of its own size of a half-integer): those are rounded from their
    text; every other value stays as parsed, and the staged column's cast rounds it as its text
    would. (Comparing `round(x * 10^4) / 10^4` with `x` flagged a third of 10M generated
    amounts: polars divides by multiplying, so 272000 / 10^4 is 27.200000000000003.)"""
    scaled = values * 10_000
    from_half = ((scaled - scaled.round(0)).abs() - 0.5).abs()
    tolerance = scaled.abs().clip(lower_bound=1.0) * 1e-12
    more = (values.is_not_null() & (from_half <= tolerance)).fill_null(False)
    if not more.any():
        return values
    rows = more.arg_true()
    exact = [
        _four_places(t, v) for t, v in zip(text.gather(rows), values.gather(rows), strict=True)
    ]
    return values.scatter(rows, pl.Series(exact, dtype=pl.Float64))


def _four_places(written: str, parsed: float) -> float:
    # A form only the float parser reads, or a number too long to quantize (1e24 and more
    # places; the contract's cap quarantines it): the float's value stands.
    try:
        return float(decimal.Decimal(written).quantize(_FOUR_PLACES, decimal.ROUND_HALF_UP))
    except decimal.InvalidOperation:
        return parsed


def parse(
    text: pl.DataFrame, source: Source, zone: str = "UTC"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed columns, and the parse failures as (index, column, reason, detail). `zone`: the
    shop's time zone (`parse_column`)."""
    typed = {}
    failures = []
    for name, dtype in source.dtypes.items():
        values, reason = parse_column(text[name], dtype, zone)
        if name in source.money:
            values = money_to_four_places(text[name], values)
        typed[name] = values.alias(name)
        if reason:
            bad = (values.is_null() & text[name].is_not_null()).arg_true()
            if len(bad):
                failures.append(
                    pl.DataFrame(
                        {
                            "index": bad.cast(pl.Int64),
                            "column": name,
                            "reason": reason,
                            "detail": text[name].gather(bad),
                        }
                    )
                )
    frame = text.select("source_file", "source_row").with_columns(**typed)
    return frame, _concat_failures(failures)


def _reason_expr() -> pl.Expr:
    """Pandera's check names mapped to stable quarantine reasons."""
    check = pl.col("check")
    return (
        pl.when(check == "not_nullable")
        .then(pl.lit("missing_required_value"))
        .when(check.str.starts_with("isin"))
        .then(pl.lit("not_an_allowed_value"))
        .when(check.str.starts_with("str_matches"))
        .then(pl.lit("malformed"))
        .when(check.str.contains(r"^(greater_than|less_than|in_range)"))
        .then(pl.lit("out_of_range"))
        .otherwise(check)  # the model's named row rules, e.g. not_self_referral
        .alias("reason")
    )


# A date bound as pandera names it in a check on polars (`1990-01-01 00:00:00.alias("datetime")
# .strict_cast(Date)`): the detail a quarantine row shows says `1990-01-01`.
_POLARS_LITERAL = r'(\d{4}-\d{2}-\d{2})(?: 00:00:00)?\.alias\("[^"]*"\)(?:\.strict_cast\(\w+\))?'


def _check_in_words(check: pl.Expr) -> pl.Expr:
    """Pandera's name of a check as a quarantine detail shows it: a date bound as written
    (`_POLARS_LITERAL`), a pattern in words (`contracts.PATTERN_WORDS`)."""
    check = check.str.replace_all(_POLARS_LITERAL, "$1")
    for pattern, words in PATTERN_WORDS.items():
        check = check.str.replace(
            f"str_matches('{pattern}')", f"str_matches({words})", literal=True
        )
    return check


def validate(typed: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Run the Pandera contract; failures as (index, column, reason, detail)."""
    try:
        source.model.validate(typed, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        # Schema-level problems without a row index (wrong dtype) are bugs in parsing, not data.
        unindexed = cases.filter(pl.col("index").is_null())
        if unindexed.height:
            raise IngestError(
                f"{source.name}: contract failures without a row: {unindexed.to_dicts()}"
            ) from errors
        frame_rule = pl.col("schema_context") == "DataFrameSchema"
        failures = cases.select(
            pl.col("index").cast(pl.Int64),
            pl.when(frame_rule).then(None).otherwise(pl.col("column")).alias("column"),
            _reason_expr(),
            _check_in_words(pl.col("check")).alias("check"),
            frame_rule.alias("row_rule"),
            pl.col("failure_case").fill_null("null").alias("value"),
        )
        return _bad_handles_named(_with_detail_in_words(failures), typed)
    return _concat_failures([])


def _with_detail_in_words(failures: pl.DataFrame) -> pl.DataFrame:
    """The failures with a detail in words, the value quoted (`fax` is not one of web, mobile,
    store, app), where Pandera's name of the check read `isin(['web', ...]): fax` (a review).
    A row rule says what the row lacks (`contracts.ROW_RULE_WORDS`), where the detail repeated
    the row's JSON, which raw_values holds. Worded once per distinct check, then joined."""
    kinds = failures.select("check", "row_rule").unique()
    said = pl.DataFrame(
        [
            {"check": check, "row_rule": row_rule, **_check_words(check, row_rule)}
            for check, row_rule in kinds.iter_rows()
        ],
        schema={
            "check": pl.String,
            "row_rule": pl.Boolean,
            "before": pl.String,
            "after": pl.String,
        },
    )
    return (
        failures.join(
            said, on=["check", "row_rule"], how="left", nulls_equal=True, maintain_order="left"
        )
        .with_columns(
            pl.when(pl.col("after").is_null())
            .then(pl.col("before"))
            .otherwise(pl.concat_str("before", "value", "after"))
            .alias("detail")
        )
        .select("index", "column", "reason", "detail")
    )


_CHECK_WORDS = {
    "isin": "` is not one of {}",
    "greater_than_or_equal_to": "` is below the lowest accepted value, {}",
    "less_than_or_equal_to": "` is above the highest accepted value, {}",
    "greater_than": "` is not above {}",
    "in_range": "` is outside {}",
    "str_matches": "` is not {}",
}


def _check_words(check: str, row_rule: bool) -> dict[str, str | None]:
    """A check's words around the value (`before`, `after`; no value when `after` is None)."""
    name, _, argument = check.partition("(")
    argument = argument.removesuffix(")")
    if row_rule:
        if name in ROW_RULE_WORDS:
            return {"before": ROW_RULE_WORDS[name], "after": None}
    elif check == "not_nullable":
        return {"before": "no value, where one is required", "after": None}
    elif name in _CHECK_WORDS:
        if name == "isin":
            argument = re.sub(r"[\[\]']", "", argument)
        if name == "in_range":
            argument = argument.replace(", ", " to ", 1)
        return {"before": "`", "after": _CHECK_WORDS[name].format(argument)}
    return {"before": f"{check}: ", "after": ""}


def _bad_handles_named(failures: pl.DataFrame, typed: pl.DataFrame) -> pl.DataFrame:
    """The `social_handles_well_formed` failures with the column named and the first entry
    that is no handle in the detail. Pandera's detail of a row rule is the whole row as JSON,
    which did not say which of `@ann;@ann-lee` was refused. The failures keep their order."""
    rule = pl.col("reason") == "social_handles_well_formed"
    if not failures.select(rule.any()).item():
        return failures
    first_bad = (
        typed["social_handles"]
        .gather(failures["index"])
        .str.split(LIST_SEPARATOR)
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(~pl.element().str.contains(HANDLE_PATTERN)))
        .list.first()
    )
    return failures.with_columns(
        pl.when(rule).then(pl.lit("social_handles")).otherwise(pl.col("column")).alias("column"),
        pl.when(rule)
        .then(
            pl.format(
                "`{}` is not a handle (an optional @, then 1-64 letters, digits, _ or .)",
                pl.lit(first_bad),
            )
        )
        .otherwise(pl.col("detail"))
        .alias("detail"),
    )


def _concat_failures(parts: list[pl.DataFrame]) -> pl.DataFrame:
    schema = {"index": pl.Int64, "column": pl.String, "reason": pl.String, "detail": pl.String}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat([p.select(list(schema)).cast(schema) for p in parts])


def quarantine_rows(
    raw: pl.DataFrame, failures: pl.DataFrame, source: Source, run_id: str, at: datetime
) -> pl.DataFrame:
    """One quarantine row per failing raw row: first reason by priority, all reasons listed."""
    if failures.height == 0:
        return empty_quarantine()
    column_order = {name: i for i, name in enumerate(source.columns)}
    ranked = failures.with_columns(
        pl.col("reason")
        .replace_strict(REASON_PRIORITY, default=ROW_RULE_PRIORITY, return_dtype=pl.Int64)
        .alias("priority"),
        pl.col("column")
        .replace_strict(column_order, default=len(column_order), return_dtype=pl.Int64)
        .alias("column_rank"),
    ).sort("index", "priority", "column_rank", "reason")
    per_row = ranked.group_by("index", maintain_order=True).agg(
        pl.col("column").first(),
        pl.col("reason").first(),
        pl.col("detail").first(),
        pl.concat_str(pl.col("column").fill_null("row"), pl.lit(":"), pl.col("reason"))
        .unique(maintain_order=True)
        .alias("reasons"),
    )
    # Only the failing rows are looked up and encoded as JSON (a batch has millions of good ones).
    # Gathered first: a struct of every row of the batch cost 0.4 CPU-s over 10M orders.
    raw_rows = raw.select(
        pl.col("source_file", "source_row", *source.columns).gather(per_row["index"])
    ).select(
        "source_file",
        "source_row",
        pl.struct(source.columns).struct.json_encode().alias("raw_values"),
    )
    return pl.concat([per_row, raw_rows], how="horizontal").select(
        pl.lit(source.name).alias("source"),
        "source_file",
        "source_row",
        "column",
        "reason",
        "detail",
        "reasons",
        "raw_values",
        pl.lit(run_id).alias("run_id"),
        pl.lit(at).cast(pl.Datetime("us")).alias("quarantined_at"),
    )


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "source": pl.String,
            "source_file": pl.String,
            "source_row": pl.Int64,
            "column": pl.String,
            "reason": pl.String,
            "detail": pl.String,
            "reasons": pl.List(pl.String),
            "raw_values": pl.String,
            "run_id": pl.String,
            "quarantined_at": pl.Datetime("us"),
        }
    )


IN_FUTURE = "in_future"  # the reason of a date after the run's time (plus FUTURE_TOLERANCE)


def future_failures(
    typed: pl.DataFrame, source: Source, now: datetime, zone: str = "UTC"
) -> pl.DataFrame:
    """Timestamps and dates later than `now` (the run's time, UTC) plus FUTURE_TOLERANCE, the
    run's time read in the shop's `zone` as the timestamps are."""
    local = in_zone(now, zone) if zone != "UTC" else now
    limit = local + FUTURE_TOLERANCE
    where = "UTC" if zone == "UTC" else zone
    failures = []
    for name, dtype in source.dtypes.items():
        if dtype.base_type() not in (pl.Datetime, pl.Date):
            continue
        if dtype.base_type() == pl.Datetime:
            bound, shown = limit, "%Y-%m-%d %H:%M:%S"
        else:
            bound, shown = limit.date(), "%Y-%m-%d"
        bad = (typed[name] > bound).arg_true()
        if len(bad):
            failures.append(
                pl.DataFrame(
                    {
                        "index": bad.cast(pl.Int64),
                        "column": name,
                        "reason": IN_FUTURE,
                        "detail": typed[name].gather(bad).dt.to_string(shown)
                        + f" is after the run's time {local:%Y-%m-%d %H:%M} {where} plus "
                        f"{FUTURE_TOLERANCE.days} day",
                    }
                )
            )
    return _concat_failures(failures)


# A value longer than this (in UTF-8 bytes) is no id, email, handle list, code or number of any
# export: its row is quarantined as `too_long` and the value is not read further. A security
# review staged a 400,000,000-character customer id from a 26 KB Parquet file (zstd), which
# took a run past 4 GiB two steps later and into every preview. The longest legitimate value is
# a customer's handle list; an email is at most 254 bytes.
MAX_VALUE_BYTES = 1000
TOO_LONG = "too_long"


def too_long_failures(raw: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Cells longer than MAX_VALUE_BYTES (a length is read from the offsets: no value is
    scanned)."""
    parts = []
    for name in source.columns:
        lengths = raw[name].str.len_bytes()
        bad = (lengths > MAX_VALUE_BYTES).arg_true()
        if len(bad):
            said = [f"{n:,} bytes, more than {MAX_VALUE_BYTES:,}" for n in lengths.gather(bad)]
            parts.append(
                pl.DataFrame(
                    {
                        "index": bad.cast(pl.Int64),
                        "column": name,
                        "reason": TOO_LONG,
                        "detail": pl.Series(said, dtype=pl.String),
                    }
                )
            )
    return _concat_failures(parts)


def without_long_values(raw: pl.DataFrame, source: Source) -> pl.DataFrame:
    """`raw` with values longer than MAX_VALUE_BYTES cut to that length (what the quarantine
    keeps of them, and what the rules read: their rows are quarantined whatever they hold)."""
    return raw.with_columns(
        pl.when(pl.col(name).str.len_bytes() > MAX_VALUE_BYTES)
        .then(pl.col(name).str.slice(0, MAX_VALUE_BYTES))
        .otherwise(pl.col(name))
        for name in source.columns
    )


def row_problem_failures(raw: pl.DataFrame) -> pl.DataFrame:
    """Rows whose fields cannot be trusted as read (`row_problem`: fewer fields than the header)."""
    problem = raw[ROW_PROBLEM]
    bad = problem.is_not_null().arg_true()
    if not len(bad):
        return _concat_failures([])
    return _concat_failures(
        [
            pl.DataFrame(
                {
                    "index": bad.cast(pl.Int64),
                    "column": pl.repeat(None, len(bad), dtype=pl.String, eager=True),
                    "reason": "wrong_field_count",
                    "detail": problem.gather(bad),
                }
            )
        ]
    )


def check_batch(
    raw: pl.DataFrame, source: Source, run_id: str, at: datetime, zone: str = "UTC"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a batch of raw text rows into (typed good rows, quarantine rows). `at` is the run's
    time (UTC): the quarantine's time and the bound of `in_future`. `zone`: the shop's time zone
    (ENGAGEMENT_TIME_ZONE), which timestamps are staged in (`in_shop_zone`)."""
    too_long = too_long_failures(raw, source)
    if too_long.height:  # rare: the batch is copied only when it holds one
        raw = without_long_values(raw, source)
    text = normalise_text(raw, source)
    typed, parse_failures = parse(text, source, zone)
    # Text that failed to parse is NULL now: the NULL is not a second failure of the same cell.
    check_failures = validate(typed, source).join(
        parse_failures.select("index", "column"),
        on=["index", "column"],
        how="anti",
        nulls_equal=False,
    )
    failures = pl.concat(
        [
            too_long,
            row_problem_failures(raw),
            parse_failures,
            check_failures,
            future_failures(typed, source, at, zone),
        ]
    )
    good = typed
    if failures.height:
        bad = pl.repeat(False, typed.height, dtype=pl.Boolean, eager=True)
        good = typed.filter(~bad.scatter(failures["index"], True))
    return good, quarantine_rows(raw, failures, source, run_id, at)
