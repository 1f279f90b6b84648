"""Every setting of Engagement Box, defined once: its environment variable, default and meaning.

This table is the single definition. The Dagster resources (`pipelines/resources.py`) read it
when a run starts, not at import; README.md ("Settings") and `.env.example` are checked against
it by `tests/test_settings.py`. Defaults work on the bundled sample. No Dagster import here.

A setting whose default is None has a computed default, described in `default_text`.
"""

import calendar
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def spark_job_command() -> str:
    """The command that runs the Spark engine's graph (the job spark_pipeline), as a person
    types it wherever they are: DAGSTER_HOME absolute (Dagster refuses a relative one; the
    checkout's `.dagster` when unset, as `engagement-box` uses), this Python's `dagster`, the
    code location found from any folder. Dagster reads `.env` from the folder it runs in."""
    home = Path(os.environ.get("DAGSTER_HOME") or REPO_ROOT / ".dagster").expanduser().absolute()
    dagster = Path(sys.executable).with_name("dagster")
    return (
        f"DAGSTER_HOME={shlex.quote(str(home))} {shlex.quote(str(dagster))} job execute -m "
        f"pipelines.definitions -d {shlex.quote(str(REPO_ROOT))} -j spark_pipeline"
    )


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    meaning: str
    parse: Callable[[str], Any] = str
    default_text: str | None = None  # README wording when the default is computed

    @property
    def readme_default(self) -> str:
        return self.default_text or f"`{self.default}`"


def _upper(text: str) -> str:
    return text.strip().upper()


def pattern_characters(text: str) -> list[str]:
    """The characters of `text` that DuckDB and polars read as a pattern of file names."""
    return sorted({c for c in text if c in "*?[]"})


def _plain_path(text: str) -> str:
    """A folder or database path DuckDB or polars read files under: `*`, `?` and `[ ]` are
    patterns to them (a warehouse in `wh*/` read the files of a copy beside it, every customer
    twice; in `wh?/` no run could commit; exports in `ex[1]/` were read from `ex1/`; an erasure
    could not read back the audience files in `aud[1]/`). Refused, naming them."""
    odd = pattern_characters(text)
    if odd:
        raise ValueError(
            f"the path holds {' '.join(odd)}, which DuckDB reads as a pattern of file names: "
            "choose a path without them"
        )
    return text


_UNITS = {"D": "D", "DAY": "D", "DAYS": "D", "W": "W", "WEEK": "W", "WEEKS": "W"}


def _unit(text: str) -> str:
    unit = _UNITS.get(text.strip().upper())
    if unit is None:
        raise ValueError(f"ENGAGEMENT_TIME_UNIT must be D (days) or W (weeks), got {text!r}")
    return unit


def _whole(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number, such as 12") from None


def _number(text: str) -> float:
    """A finite decimal number ("0.5", "1e-3")."""
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("expected a number, such as 0.5") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _ranged(parse: Callable[[str], Any], accept: Callable[[Any], bool], expected: str):
    """`parse`, refusing a value `accept` rejects with "expected <expected>"."""

    def parse_in_range(text: str) -> Any:
        number = parse(text)
        if not accept(number):
            raise ValueError(f"expected {expected}")
        return number

    return parse_in_range


_positive_int = _ranged(_whole, lambda n: n >= 1, "a whole number of at least 1")
_whole_from_zero = _ranged(_whole, lambda n: n >= 0, "a whole number, 0 or more")
_from_zero = _ranged(_number, lambda n: n >= 0, "a number, 0 or more")
_share = _ranged(_number, lambda n: 0 <= n <= 1, "a number from 0 to 1")
_open_share = _ranged(_number, lambda n: 0 < n < 1, "a number between 0 and 1, both excluded")
# A discount rate below 0 makes later money worth more than money now: -0.5 a month multiplied
# every CLV about 650 times and was published without a word. A monthly rate of 1 (someone
# meaning 1 %) is 100 % a month: CLV a tenth of its value, CRV nearly nothing, published the
# same (a review). From 0 to below 1, as a share.
_monthly_rate = _ranged(
    _number, lambda n: 0 <= n < 1, "a monthly rate as a share from 0 to below 1, such as 0.01 (1 %)"
)
# A contribution margin is a share of revenue: 30 (someone meaning 30 %) multiplied every CLV by
# 30 and was published (a review).
_margin = _ranged(_number, lambda n: 0 <= n <= 1, "a share of revenue from 0 to 1, such as 0.3")


def _currency(text: str) -> str:
    """A three-letter currency code (`usd` read as USD): `usdd` or `US Dollar` staged every
    order and then left them all out of the value models for want of a rate into it."""
    code = _upper(text)
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"expected a three-letter currency code such as USD, got {text!r}")
    return code


def _time_zone(text: str) -> str:
    """An IANA time zone name (`America/New_York`, `Europe/Berlin`, `UTC`), as the tz database
    the machine has knows it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = text.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected a time zone name such as America/New_York or UTC, got {text!r}"
        ) from None
    return name


def _spark_jvm(text: str) -> str:
    profile = text.strip().lower()
    if profile not in ("fast", "large"):
        raise ValueError(f"ENGAGEMENT_SPARK_JVM must be fast or large, got {text!r}")
    return profile


PURCHASE_MODELS = ("bgnbd", "mbgnbd", "pareto_nbd")


def _purchase_model(text: str) -> str:
    name = text.strip().lower()
    if name not in PURCHASE_MODELS:
        raise ValueError(f"choose one of {', '.join(PURCHASE_MODELS)}, or leave it unset")
    return name


ENGINES = ("duckdb", "spark")


def _engine(text: str) -> str:
    name = text.strip().lower()
    if name not in ENGINES:
        raise ValueError(f"choose {' or '.join(ENGINES)}")
    return name


def _iso_date(text: str) -> str:
    """A date written YYYY-MM-DD, kept as that text (the run reads it as a date)."""
    written = text.strip()
    try:
        return date.fromisoformat(written).isoformat()
    except ValueError:
        shape = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", written)
        if shape and 1 <= int(shape[2]) <= 12:  # the form is right: the day is not in the month
            year, month = int(shape[1]), int(shape[2])
            days = calendar.monthrange(year, month)[1]
            raise ValueError(
                f"{year}-{month:02d} has {days} days: no day {int(shape[3])}"
            ) from None
        raise ValueError("expected a date YYYY-MM-DD") from None


def _month_start(text: str) -> str:
    """A month's first day, YYYY-MM-01: the as-of months are whole months from there (a day
    inside a month made Dagster start at the next month, so the month given never ran)."""
    day = _iso_date(text)
    if not day.endswith("-01"):
        raise ValueError(f"expected a month's first day (YYYY-MM-01, e.g. {day[:8]}01)")
    return day


def _json_map(text: str, example: str = '{"GBP": 1.27}') -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object such as {example}, got {text!r}")
    return value


def _json_number(value: Any) -> float | None:
    """A JSON number as a finite float, else None (text, true/false, null)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# The largest exchange rate a conversion is sized for (the staged fx_rates export's bound too:
# engagement_box.staging.contracts.MAX_RATE): no currency is worth a million of another's units.
MAX_FX_RATE = 1e6


def _fx_rates(text: str) -> dict[str, float]:
    """Rates into the reporting currency: three-letter codes, each a number above 0 and at most
    MAX_FX_RATE (a 0 would make every order of the currency worth nothing)."""
    rates = {}
    for key, value in _json_map(text).items():
        code = str(key).strip().upper()
        rate = _json_number(value)
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise ValueError(f"{key!r} is not a three-letter currency code such as GBP")
        if code in rates:  # `GBP` and `gbp`: one of them was kept without a word (a re-review)
            raise ValueError(f"{code} is given twice (codes are read in upper case)")
        if rate is None or not 0 < rate <= MAX_FX_RATE:
            raise ValueError(
                f"the rate of {code} is {value!r}; a rate must be a number above 0 and at most "
                f"{MAX_FX_RATE:,.0f}"
            )
        rates[code] = rate
    return rates


# The event types of the social export (its contract, engagement_box.staging.contracts, reads
# them from here).
SOCIAL_EVENT_TYPES = ("like", "pin", "tweet", "comment", "share", "retweet", "mention")


def _social_points(text: str) -> dict[str, float]:
    """Points per event type, merged over the defaults: known event types, numbers 0 or more (a
    misspelt type would otherwise be ignored and the version published anyway)."""
    points = {}
    for key, value in _json_map(text, example='{"comment": 5}').items():
        number = _json_number(value)
        if key not in SOCIAL_EVENT_TYPES:
            raise ValueError(
                f"{key!r} is not an event type of the social export; use "
                f"{', '.join(SOCIAL_EVENT_TYPES)}"
            )
        if number is None or number < 0:
            raise ValueError(f"the points of {key} are {value!r}; expected a number, 0 or more")
        points[key] = number
    return points


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ENGAGEMENT_DATA_DIR",
        "data/sample",
        "folder of exports: `<dir>/{orders,customers,reviews,social,referrals}/*.csv\\|*.parquet`,"
        " and optionally `<dir>/fx_rates/` (dated exchange rates, `docs/CONTRACTS.md`)",
        _plain_path,
    ),
    Setting(
        "ENGAGEMENT_WAREHOUSE",
        "data/warehouse/engagement.duckdb",
        "the DuckDB file analysts open: a published copy, replaced whole after each publish,"
        ' retention or erasure (see "Readers and runs"); retained versions are Parquet files'
        " in `<name>.history/` beside it",
        _plain_path,
    ),
    Setting(
        "ENGAGEMENT_WORKING_DB",
        None,
        "the pipeline's own DuckDB file (staging, work, and the source of the versions); only"
        " the pipeline opens it",
        _plain_path,
        default_text="next to `ENGAGEMENT_WAREHOUSE`: `<name>.working.duckdb`",
    ),
    Setting(
        "ENGAGEMENT_AUDIENCE_DIR",
        "data/audiences",
        "where audience CSV/Parquet files are written",
        _plain_path,
    ),
    Setting(
        "ENGAGEMENT_ENGINE",
        "duckdb",
        "`duckdb` (the embedded warehouse) or `spark` (the same SQL and contracts on Apache Spark,"
        " marts as Parquet in `ENGAGEMENT_LAKE_DIR`; needs the `spark` extra and Java 17)",
        parse=_engine,
    ),
    Setting(
        "ENGAGEMENT_SPARK_MASTER",
        "local[2]",
        "Spark master of the `spark` engine: `local[N]` on this machine, or a cluster's URL"
        " (`spark://host:7077`, `yarn`, `k8s://...`)",
    ),
    Setting(
        "ENGAGEMENT_SPARK_JVM",
        "fast",
        "the `spark` engine's JVM: `fast` starts in 10-15 s (client JIT, serial collector; the"
        " sample, tests), `large` for millions of rows (full JIT, parallel collector;"
        " docs/SPARK.md)",
        _spark_jvm,
    ),
    Setting(
        "ENGAGEMENT_LAKE_DIR",
        "data/lake",
        "where the `spark` engine writes: `<lake>/marts/<mart>/`, every retained version in"
        " `<lake>/history/<mart>/snapshot_id=<n>/`, its working tables in `<lake>/tables/`"
        " (a path every Spark executor can reach on a cluster)",
        _plain_path,
    ),
    Setting(
        "DAGSTER_HOME",
        ".dagster",
        "the Dagster instance: run history, schedules, sensors (`engagement-box` sets it); for a"
        " folder of your own, copy `.dagster/dagster.yaml` into it first (no run-queue limit,"
        " telemetry off), or Dagster's defaults and its telemetry notice apply",
    ),
    Setting(
        "ENGAGEMENT_DUCKDB_THREADS",
        None,
        "threads of each DuckDB connection a step opens; lower it when other jobs share the"
        " machine (the test suite runs two workers on two cores with 1 each)",
        parse=_positive_int,
        default_text="unset: DuckDB's default, one per core",
    ),
    Setting(
        "ENGAGEMENT_AS_OF",
        None,
        "observation end (inclusive); when set, pins every run (recorded as pinned)",
        parse=_iso_date,
        default_text="unset: the partition month's last day, capped at the last completed order",
    ),
    Setting(
        "ENGAGEMENT_HISTORY_START",
        "2023-07-01",
        "first as-of month partition, a month's first day (read when the code location loads)",
        parse=_month_start,
    ),
    Setting(
        "ENGAGEMENT_TIME_UNIT",
        "D",
        "model time unit: `D` (days) or `W` (weeks = days / 7)",
        parse=_unit,
    ),
    Setting(
        "ENGAGEMENT_CALIBRATION_END",
        None,
        "last calibration day (inclusive) for the holdout check",
        parse=_iso_date,
        default_text="as-of minus `ENGAGEMENT_HOLDOUT_DAYS`",
    ),
    Setting(
        "ENGAGEMENT_HOLDOUT_DAYS",
        "182",
        "holdout length when no calibration end is given",
        parse=_positive_int,
    ),
    Setting(
        "ENGAGEMENT_CLV_HORIZON_MONTHS",
        "12",
        "CLV and CRV horizon (30-day months)",
        parse=_positive_int,  # 0 months: every CLV 0, and the value step's checks fail
    ),
    Setting(
        "ENGAGEMENT_MONTHLY_DISCOUNT_RATE",
        "0.01",
        "monthly discount rate of CLV and CRV",
        parse=_monthly_rate,
    ),
    Setting(
        "ENGAGEMENT_MARGIN",
        "1.0",
        "contribution margin applied to CLV (1.0 = revenue)",
        parse=_margin,
    ),
    Setting("ENGAGEMENT_CURRENCY", "USD", "reporting currency of every value", parse=_currency),
    Setting(
        "ENGAGEMENT_TIME_ZONE",
        "UTC",
        "the shop's time zone (an IANA name, e.g. `America/New_York`): its calendar makes the"
        " days and months of every timestamp, the as-of and the run's day. A timestamp written"
        " with an offset is converted to it, one without an offset is taken as written in it;"
        " a change takes every export file in again",
        parse=_time_zone,
    ),
    Setting(
        "ENGAGEMENT_FX_RATES",
        "{}",
        'JSON map of rates into the reporting currency, e.g. `{"GBP": 1.27}`: the fallback for'
        " orders with no dated rate in the `fx_rates` export (`docs/CONTRACTS.md`); each rate above"
        " 0 and at most 1,000,000. Completed orders with no rate either way are left out of the"
        " value models; the run's summary says how many and in which currency, and the blocking"
        " check `orders_left_out_within_limit` fails when more than 1 % of completed orders are"
        " left out",
        parse=_fx_rates,
    ),
    Setting(
        "ENGAGEMENT_PENALIZER",
        "0",
        "lifetimes penalizer (keep 0: a penalty biases the published estimates)",
        parse=_from_zero,
    ),
    Setting(
        "ENGAGEMENT_PURCHASE_MODEL",
        None,
        "purchase model of the scores: `bgnbd`, `mbgnbd` or `pareto_nbd` pins it",
        parse=_purchase_model,
        default_text="unset: the model that best predicts the holdout (docs/METRICS.md)",
    ),
    Setting(
        "ENGAGEMENT_MODEL_CHOICE_DAYS",
        "28",
        "purchase model: a run uses the model chosen on an earlier holdout while that choice"
        " is younger than this many days and no staged orders, customers or fx_rates file"
        " changed since but new orders files (same fit settings and code, no erasure), fitting"
        " only it and Gamma-Gamma on the full window; 0 chooses on the run's holdout",
        parse=_whole_from_zero,
    ),
    Setting(
        "ENGAGEMENT_SOCIAL_POINTS",
        None,
        "JSON map of event type to points (0 or more), merged over the defaults",
        parse=_social_points,
        default_text="like/pin/tweet 1, comment 5, share/retweet 10, mention 5",
    ),
    Setting(
        "ENGAGEMENT_CRV_UNKNOWN_TYPE2_SHARE",
        None,
        'share of credited referees with no answer treated as "would have joined anyway"',
        parse=_share,
        default_text="the share among credited referrals with an answer (0.5 if none)",
    ),
    Setting("ENGAGEMENT_CRV_RETENTION_COST", "0", "M: marketing cost to retain a referee", _number),
    Setting(
        "ENGAGEMENT_CRV_ACQ_SAVED_TYPE1",
        "0",
        "acquisition cost saved per type-one referee",
        parse=_number,
    ),
    Setting(
        "ENGAGEMENT_CRV_ACQ_SAVED_TYPE2",
        "0",
        "acquisition cost saved per type-two referee (the rewards paid are taken off)",
        parse=_number,
    ),
    Setting(
        "ENGAGEMENT_CRV_VALUE_CREDIBILITY",
        None,
        "kappa: how many referrals the population mean weighs when a referrer's value per"
        " referral is shrunk toward it",
        parse=_from_zero,
        default_text="estimated from the referrals (Buhlmann-Straub)",
    ),
    Setting("ENGAGEMENT_CIV_BETA", "0.5", "decay of indirect influence (must be < 1)", _open_share),
    Setting(
        "ENGAGEMENT_CIV_ATTRIBUTION_SHARE",
        "0.1",
        "share of an influenced customer's CLV that moves to their influencers (0 to 1)",
        parse=_share,
    ),
    Setting(
        "ENGAGEMENT_CKV_VALUE_PER_REVIEW", "1.0", "value of one review of weight 1", _from_zero
    ),
    Setting(
        "ENGAGEMENT_QUADRANT_CLV_QUANTILE",
        "0.5",
        'where "high" CLV starts: a quantile of CLV among buyers',
        parse=_share,
    ),
    Setting(
        "ENGAGEMENT_QUADRANT_CRV_QUANTILE",
        "0.5",
        'where "high" CRV starts: a quantile of CRV among customers with a credited referral',
        parse=_share,
    ),
    Setting(
        "ENGAGEMENT_MAX_PROFILES_PER_KEY",
        "5",
        "identity: an email or social handle carried by more than this many customer profiles is"
        " a placeholder (a shop's noemail@..., its own handle), not one person's: it merges no"
        " profiles and resolves no order, review, social event or referral (the identity"
        " step's check lists how many)",
        parse=_positive_int,
    ),
    Setting(
        "ENGAGEMENT_MAX_WITHDRAWN_SHARE",
        "0.05",
        "staging: an export file that changed and no longer holds more than this share of the"
        " rows it staged before (and 20 rows or more) is refused, nothing staged from it, and the"
        " run fails saying so: a half-written or cut-short export looks so. Set 1 for the run"
        " that takes in an export from which those rows were truly removed",
        parse=_share,
    ),
    Setting(
        "ENGAGEMENT_PERSONA_REFIT_DAYS",
        "90",
        "personas: a run assigns each customer to the nearest centre of the persona model in"
        " force and fits a new model once that model is this many days old (or the code, or a"
        " setting its features depend on, changed: every model and engagement setting but the"
        " quadrant cuts; or a person was erased since the fit; or, DuckDB engine, a referrals,"
        " social or reviews export started or stopped staging rows), so a monthly schedule refits"
        " each quarter, not every month; 0 fits every run",
        parse=_whole_from_zero,
    ),
    Setting(
        "ENGAGEMENT_STALE_SOURCE_DAYS",
        "90",
        "the engagement step warns of a referrals, social or reviews export whose newest row is"
        " more than this many days before the as-of (its CRV, CIV or CKV still counts the old"
        " rows) or that staged no row (that metric 0 for everyone); a warning only, not an"
        " input of the numbers",
        parse=_positive_int,
    ),
    Setting(
        "ENGAGEMENT_KEEP_VERSIONS",
        "30",
        "retention: how many published versions are kept",
        parse=_positive_int,
    ),
    Setting(
        "ENGAGEMENT_KEEP_DAYS",
        "400",
        "retention: versions older than this many days expire",
        parse=_whole_from_zero,
    ),
    Setting(
        "ENGAGEMENT_ERASURE_SALT",
        None,
        "secret salt of the hashes in the erasure log (keep it safe: it keeps erased people out"
        " of re-read exports)",
        default_text="unset: a random salt kept in the warehouse",
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def raw(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The setting's text: the environment's value if set and not empty, else its default."""
    setting = BY_NAME[name]
    value = (os.environ if environ is None else environ).get(name)
    return value if value not in (None, "") else setting.default


def raw_given(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the setting is set (not empty): a default left alone can be said as such."""
    BY_NAME[name]  # a setting of this module's
    return bool((os.environ if environ is None else environ).get(name))


def value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The setting, parsed (None when unset with no default). A bad value names the variable."""
    text = raw(name, environ)
    if text is None:
        return None
    try:
        return BY_NAME[name].parse(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r}{origin(name, text)} is not valid: {exc}") from None


def origin(name: str, text: str) -> str:
    """Where a variable's value was set, when it is the `.env` of the working directory, which
    every `dagster` command loads into the environment (and the CLI too, `cli.load_env_file`):
    a bad value said without it sent a user looking in their shell (an on-call review). Empty
    otherwise."""
    env = Path.cwd() / ".env"
    if not env.is_file():
        return ""
    from dotenv import dotenv_values

    try:
        given = dotenv_values(env).get(name)
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (set in {env})" if given == text else ""


def first_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """The first setting whose value does not parse, in the words of `value` (it names the
    variable), else None. Asked before anything runs (the CLI, a run's first resource, the
    schedule's and sensor's ticks): a bad value otherwise surfaced as a traceback or as a step
    failing after the steps before it."""
    for setting in SETTINGS:
        try:
            value(setting.name, environ)
        except ValueError as error:
            return str(error)
    problem = _resolved_path_problem(environ)
    if problem:
        return problem
    currency = value("ENGAGEMENT_CURRENCY", environ)
    if currency in value("ENGAGEMENT_FX_RATES", environ):
        # ignored without a word (the fx_rates export refuses such a row, docs/CONTRACTS.md)
        return (
            f"ENGAGEMENT_FX_RATES gives a rate for {currency}, the reporting currency "
            "(ENGAGEMENT_CURRENCY): its rate is 1 by definition; remove it"
        )
    # The dates a monthly run compares (the calibration end against a pinned as-of, ...) are
    # `pipelines/resources.py::window_problem`'s: retention and the audience files take none.
    return None


PATH_SETTINGS = (
    "ENGAGEMENT_DATA_DIR",
    "ENGAGEMENT_WAREHOUSE",
    "ENGAGEMENT_WORKING_DB",
    "ENGAGEMENT_AUDIENCE_DIR",
    "ENGAGEMENT_LAKE_DIR",
)


def path_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """`first_problem` of the path settings alone: what a command that runs no step (an
    erasure) must refuse, without being stopped by a bad value of a model setting."""
    for name in PATH_SETTINGS:
        try:
            value(name, environ)
        except ValueError as error:
            return str(error)
    return _resolved_path_problem(environ)


def _resolved_path_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """The paths as used (a relative one from the working directory, a default under the
    repository) with a character a pattern reads: the setting's text may hold none (`sample`
    run from a folder `p[1]/` read the exports of `p1/`; a re-review)."""
    environ = os.environ if environ is None else environ
    for name in PATH_SETTINGS:
        if name == "ENGAGEMENT_WORKING_DB" and not environ.get(name):
            continue  # next to the warehouse, checked with it
        used = str(path(name, environ))
        odd = pattern_characters(used)
        if odd:
            return (
                f"{name} is {used}, which holds {' '.join(odd)}: DuckDB and polars read them as "
                "a pattern of file names. Choose a folder without them (for a relative path, "
                "the working directory counts)"
            )
    return None


def isolated_environment(given: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child process that must run with `given` settings only (the
    benchmarks and stress scripts): this process's variables but its ENGAGEMENT_ ones, every
    setting set empty, which reads as its default (so a `.env` in the child's working directory,
    which the CLI reads for a variable not set, sets none either), then `given`. A shell's
    ENGAGEMENT_WORKING_DB sent a benchmark's retailer into the user's working database."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")},
        **{setting.name: "" for setting in SETTINGS},
        **given,
    }


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Warnings for variables that look like settings but are none (`ENGAGEMENT_TIMEUNIT`,
    `ENGAGMENT_TIME_UNIT`): they are ignored, and a run would otherwise go on without saying so."""
    import difflib

    environ = os.environ if environ is None else environ
    known = set(BY_NAME)
    warnings = []
    for name in sorted(environ):
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.85)
        if not name.startswith("ENGAGEMENT_") and not close:
            continue
        hint = f" (did you mean {close[0]}?)" if close else ""
        where = origin(name, environ[name])
        warnings.append(f"warning: {name}{where} is not a setting{hint}; it is ignored")
    return warnings


def path(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """A path setting: a value you set is taken from the working directory, as shells do; the
    default is inside the repository (where the bundled sample lives)."""
    given = (os.environ if environ is None else environ).get(name)
    if given:
        return Path(given).expanduser().absolute()
    default = BY_NAME[name].default
    if default is None:
        raise ValueError(f"{name} has no value")
    return REPO_ROOT / default


def data_dir() -> Path:
    return path("ENGAGEMENT_DATA_DIR")


def warehouse_path() -> Path:
    return path("ENGAGEMENT_WAREHOUSE")


def working_db_path() -> Path:
    """ENGAGEMENT_WORKING_DB, else `<warehouse stem>.working.duckdb` next to the warehouse."""
    given = os.environ.get("ENGAGEMENT_WORKING_DB")
    if given:
        return Path(given).expanduser().absolute()
    published = warehouse_path()
    return published.with_name(f"{published.stem}.working{published.suffix or '.duckdb'}")


def audience_dir() -> Path:
    return path("ENGAGEMENT_AUDIENCE_DIR")


def lake_dir() -> Path:
    return path("ENGAGEMENT_LAKE_DIR")


def markdown_table() -> str:
    """The README's settings table, made from this one definition."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {s.readme_default} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(rows)


def env_example() -> str:
    """`.env.example`, made from this one definition: every setting with its default (none for
    a computed default), every one commented out. A copy used as it was set them all, and every
    `dagster` command takes `.env` over the shell: its relative DAGSTER_HOME stopped
    `dagster dev`, and its ENGAGEMENT_ENGINE=duckdb hid the Spark job an exported engine asked
    for (a review)."""
    lines = [
        "# Copy to .env (git-ignored) and uncomment the settings you change, or export them.",
        "# Defaults work on the bundled sample. Every dagster command takes a setting of .env over",
        "# the shell's (README, Settings): leave in .env none that you also set on a command line.",
        "# Made from engagement_box/settings.py (tests/test_settings.py keeps them equal).",
    ]
    for s in SETTINGS:
        lines.append(f"# {s.name}={s.default if s.default is not None else ''}")
    return "\n".join(lines) + "\n"
