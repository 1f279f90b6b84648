"""The typed resources and what they check before any step.

`ExportsResource` (the export folders), `Warehouse` (the working database, the published file
and the run lock: `acquire_run_lock`, `fail_dead_runs`, a backfill's order), `ModelSettings`,
`EngagementConfig` (with the audience folder), `RetentionPolicy`, and for the Spark engine
`LakeResource` and `SparkEngine`. Each reads its settings as `engagement_box/settings.py`
defines them; `tick_problem` is what the schedule and the sensor check before they ask for
a run, `window_problem` the dates no run can take."""

import datetime as dt
import fcntl
import functools
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from engagement_box import settings
from engagement_box.clock import shop_today
from engagement_box.governance import readers
from engagement_box.sql import is_lock_conflict, load_sql

# What a check comparing two settings adds when one of them was given in the run's config or
# in code: the variable it names may not be where the value came from (a re-review).
GIVEN_TOO = " (with the values given in the run's config or in code, which stand for the variables)"


class _FromSettings(dg.ConfigurableResource):
    """A resource whose unset fields come from `engagement_box.settings` when a run reads them.

    A field left at None means "the environment variable, else its documented default"; a
    value given in code (tests, a deployment) wins. Nothing is read at import.
    """

    # field name -> environment variable (engagement_box.settings.SETTINGS defines each one)
    _ENV: ClassVar[dict[str, str]] = {}

    def _given(self, field: str) -> Any:
        """The field's value given in code or the run's config; None when not given, or given
        empty (a cleared launchpad field: the environment's value then, as when not given)."""
        given = getattr(self, field)
        return None if isinstance(given, str) and not given.strip() else given

    def _given_env(self, field: str) -> dict[str, str] | None:
        """The field's given value as its environment variable's text ({name: text}), or None
        when not given (the environment's value then)."""
        given = self._given(field)
        if given is None:
            return None
        return {
            self._ENV[field]: json.dumps(given) if isinstance(given, dict | list) else str(given)
        }

    def setting(self, field: str) -> Any:
        """The field's value given in code or the run's config, read as its environment
        variable is (trimmed, its case folded: the launchpad's " usd " and a cleared as-of broke
        a run halfway, a re-review), else the variable's."""
        return settings.value(self._ENV[field], self._given_env(field))

    def given_path(self, field: str) -> Path:
        """A path field read as its variable is (`~` expanded; "" was the working directory, a
        re-review), else the variable's."""
        return settings.path(self._ENV[field], self._given_env(field))

    def given_environ(self) -> dict[str, str]:
        """The environment as this resource's given values make it: what the checks that
        compare two settings (`settings.first_problem`, `window_problem`) must see (a config's
        rate for the reporting currency was published, a re-review)."""
        environ = dict(os.environ)
        for field in self._ENV:
            environ.update(self._given_env(field) or {})
        return environ

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # a value given in code or config, before any step (retention's keep_versions of 0
        # failed inside its step with a traceback, a re-review); a schedule's or sensor's tick
        # (no run) says a bad setting in its skip message instead
        if context.run is None:
            return
        problem = self.given_problem()
        if not problem and self.given_values():
            crossed = settings.first_problem(self.given_environ())
            problem = crossed and f"{crossed}{GIVEN_TOO}"
        if problem:
            raise ConfigurationError(problem)

    def given_values(self) -> bool:
        return any(self._given(field) is not None for field in self._ENV)

    def given_problem(self) -> str | None:
        """The first value given in code or the run's config that its environment variable
        would refuse, in the setting's words: a margin of 30 from the launchpad published 30
        times the CLV, where ENGAGEMENT_MARGIN=30 is refused (a re-review)."""
        for field in self._ENV:
            if self._given(field) is None:
                continue  # the environment's: `settings.first_problem` says it
            try:
                self.setting(field)
            except ValueError as error:
                return f"{type(self).__name__}.{field} = {getattr(self, field)!r}: {error}"
        return None


class ExportsResource(_FromSettings):
    """The folder of raw exports: `<data_dir>/<source>/*.csv|*.parquet` (ENGAGEMENT_DATA_DIR)."""

    data_dir: str | None = None

    _ENV: ClassVar[dict[str, str]] = {"data_dir": "ENGAGEMENT_DATA_DIR"}

    @property
    def path(self) -> Path:
        return self.given_path("data_dir")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run on a folder that is not there fails before any step: without this, every
        # source looked "empty" and the run published the old staged data again. A sensor's or
        # schedule's tick (no run) says it in its skip reason instead (`problem`): raised here,
        # it was a resource error with a stack trace.
        if context.run is None:
            return
        super().setup_for_execution(context)
        problem = self.problem()
        if problem:
            raise ConfigurationError(problem)

    def problem(self) -> str | None:
        """Why a run could not read the exports (a missing folder), or None."""
        missing = missing_export_folders(self.path)
        return missing_exports_message(self.path, missing) if missing else None


def _unpartitioned_problem(run: dg.DagsterRun) -> str | None:
    """Why a run of the whole monthly job without a month, or with a partition key that is not
    one of its months, cannot run. Dagster itself failed the first partitioned step of the first
    ("Cannot access partition_key for a non-partitioned run"), and took any date as a key:
    `--tags '{"dagster/partition": "2031-01-01"}'` published a version as of 2031 that became
    current, a key before the first month failed halfway with a CheckError after its staging."""
    from pipelines.jobs import engagement_job
    from pipelines.partitions import MonthOutOfRange, monthly_as_of, partition_key_for_month

    key = run.tags.get(PARTITION_TAG)
    if key:
        if key in monthly_as_of.get_partition_keys():
            return None
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-01", key):
            return (
                f"partition {key!r} is not an as-of month: a partition is a month's first day "
                "(e.g. 2025-12-01)"
            )
        try:
            partition_key_for_month(key[:7])
        except MonthOutOfRange as error:
            return f"partition {key!r}: {error}"
        return None
    if run.job_name != engagement_job.name:
        return None
    if run.asset_selection and all(
        k.path[0] in ("staging", "intermediate", "activation") for k in run.asset_selection
    ):
        return None  # only unpartitioned assets: no month needed
    reexecution = (
        f" A re-execution takes its parent's partition only when asked: from Python, pass "
        f"tags={{'dagster/partition': ...}} with the parent run {run.parent_run_id}'s key."
        if run.parent_run_id
        else ""
    )
    return (
        f"{engagement_job.name} computes one as-of month: give the run a partition (the UI's "
        'partition picker, `dagster job execute ... --tags \'{"dagster/partition": '
        '"2025-12-01"}\'`, or `engagement-box run --month 2025-12`).' + reexecution
    )


def _configured_environ(run: dg.DagsterRun) -> dict[str, str]:
    """The environment as the run's config for `model_settings` makes it: a config that gives
    a good as-of where the shell's is bad was refused by the warehouse's check of the dates,
    which read the environment alone (a re-review). Values given in code are checked by
    `ModelSettings.setup_for_execution`."""
    config = (run.run_config or {}).get("resources", {}).get("model_settings", {})
    given = config.get("config", {}) if isinstance(config, dict) else {}
    try:
        model = ModelSettings(**{k: v for k, v in given.items() if k in ModelSettings._ENV})
    except ValueError:  # a config Dagster's own checks refuse first
        return dict(os.environ)
    return model.given_environ()


def window_problem(
    partition_key: str | None, run_date: dt.date, environ: Mapping[str, str] | None = None
) -> str | None:
    """The dates a run of `partition_key` on `run_date` cannot take, which the run refused only
    after its staging steps (or with a traceback): ENGAGEMENT_HISTORY_START after the run's
    month (no month can run yet), a pinned ENGAGEMENT_AS_OF after the run's day, or
    ENGAGEMENT_CALIBRATION_END on or after the latest day the run can be as of (its month's
    last day, and never after the run's day). Asked by the CLI, the run's first resource and
    the schedule's and sensor's ticks (a pinned as-of against the calibration end is compared
    in `settings.first_problem`; the last completed order, which caps the as-of too, is known
    only once the exports are staged)."""
    from pipelines.partitions import month_end

    start = settings.value("ENGAGEMENT_HISTORY_START", environ)
    if start is not None and start > run_date.replace(day=1).isoformat():
        return (
            f"ENGAGEMENT_HISTORY_START={start} is after the current month ({run_date:%Y-%m}): "
            "no as-of month can run yet; set it to the first month of your data"
        )
    as_of = settings.value("ENGAGEMENT_AS_OF", environ)
    if as_of is not None and as_of > run_date.isoformat():
        return (
            f"ENGAGEMENT_AS_OF={as_of} is after the run's date {run_date}: set a date that has "
            "already happened, or unset it (each month is then as of its last day)"
        )
    end = settings.value("ENGAGEMENT_CALIBRATION_END", environ)
    if as_of is not None and end is not None and end >= as_of:
        return (
            f"ENGAGEMENT_CALIBRATION_END={end} must be before ENGAGEMENT_AS_OF={as_of}: the "
            "holdout is the days after the calibration end, up to the as-of"
        )
    if not partition_key or end is None or as_of is not None:
        return None
    latest = min(month_end(partition_key), run_date)
    if end < latest.isoformat():
        return None
    return (
        f"ENGAGEMENT_CALIBRATION_END={end} must be before the as-of, which for the month "
        f"{partition_key[:7]} is {latest} at the latest: the holdout is the days after the "
        "calibration end"
    )


class ConfigurationError(Exception):
    """A setting points at something that is not there; the message says which and what to do."""


def missing_export_folders(data_dir: Path) -> list[Path]:
    """The export folders a run needs that do not exist: the data folder itself, else each
    source's folder under it (an existing but empty source folder is fine: nothing new; the
    optional `fx_rates/` may be missing, the ENGAGEMENT_FX_RATES setting is its fallback)."""
    from engagement_box.staging.contracts import SOURCES

    if not data_dir.is_dir():
        return [data_dir]
    return [
        data_dir / name
        for name, source in SOURCES.items()
        if source.folder_required and not (data_dir / name).is_dir()
    ]


def missing_exports_message(data_dir: Path, missing: list[Path]) -> str:
    if missing == [data_dir]:
        return (
            f"the export folder {data_dir} does not exist; set ENGAGEMENT_DATA_DIR to the folder "
            "that holds the exports"
        )
    return (
        f"the export folder {data_dir} has no folder for {', '.join(p.name for p in missing)} "
        f"(expected {', '.join(str(p) for p in missing)}); create it, empty if that source has "
        "nothing new"
    )


class ModelSettings(_FromSettings):
    """Settings of the customer value models (README "Settings" documents each one).

    as_of: observation end, inclusive (default: the partition month's end, capped at the data).
    calibration_end: last day of the calibration window, inclusive (default: as_of - holdout_days).
    """

    as_of: str | None = None
    time_unit: str | None = None
    calibration_end: str | None = None
    holdout_days: int | None = None
    clv_horizon_months: int | None = None
    monthly_discount_rate: float | None = None
    margin: float | None = None
    currency: str | None = None
    # JSON map of currency -> rate into `currency`, e.g. '{"GBP": 1.27, "EUR": 1.08}'.
    fx_rates_json: str | None = None
    penalizer: float | None = None
    # bgnbd, mbgnbd or pareto_nbd pins the purchase model; None chooses it on the holdout.
    purchase_model: str | None = None
    # Days a purchase model chosen on the holdout stays in force (0: chosen every run).
    model_choice_days: int | None = None

    _ENV: ClassVar[dict[str, str]] = {
        "as_of": "ENGAGEMENT_AS_OF",
        "time_unit": "ENGAGEMENT_TIME_UNIT",
        "calibration_end": "ENGAGEMENT_CALIBRATION_END",
        "holdout_days": "ENGAGEMENT_HOLDOUT_DAYS",
        "clv_horizon_months": "ENGAGEMENT_CLV_HORIZON_MONTHS",
        "monthly_discount_rate": "ENGAGEMENT_MONTHLY_DISCOUNT_RATE",
        "margin": "ENGAGEMENT_MARGIN",
        "currency": "ENGAGEMENT_CURRENCY",
        "fx_rates_json": "ENGAGEMENT_FX_RATES",
        "penalizer": "ENGAGEMENT_PENALIZER",
        "purchase_model": "ENGAGEMENT_PURCHASE_MODEL",
        "model_choice_days": "ENGAGEMENT_MODEL_CHOICE_DAYS",
    }

    def resolved(self) -> SimpleNamespace:
        """Every field's value for this run: given in code, else the environment, else default."""
        values = {field: self.setting(field) for field in self._ENV}
        if isinstance(values["fx_rates_json"], dict):
            values["fx_rates_json"] = json.dumps(values["fx_rates_json"], sort_keys=True)
        values["time_unit"] = str(values["time_unit"]).upper()[:1]
        values["currency"] = str(values["currency"]).upper()
        values["as_of_pinned"] = values["as_of"] is not None
        if values["purchase_model"] is not None:
            values["purchase_model"] = settings.value(
                "ENGAGEMENT_PURCHASE_MODEL", {"ENGAGEMENT_PURCHASE_MODEL": values["purchase_model"]}
            )
        return SimpleNamespace(**values)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)  # before any step, as the environment's values are
        if context.run is None or not self.given_values():
            return
        # the dates a run compares, with the given values (a config's as-of in 2099 ran eight
        # steps, then failed naming ENGAGEMENT_AS_OF, a re-review)
        problem = window_problem(
            context.run.tags.get(PARTITION_TAG),
            shop_today(),
            self.given_environ(),
        )
        if problem:
            raise ConfigurationError(f"{problem}{GIVEN_TOO}")


class Warehouse(DuckDBResource):
    """The warehouse: the pipeline's working database and the file analysts open.

    `database` (ENGAGEMENT_WAREHOUSE) is the published file analysts open; the pipeline only ever
    replaces it whole (`engagement_box.governance.readers`). `working_database`
    (ENGAGEMENT_WORKING_DB, default next to it) is where every step reads and writes; only the
    pipeline opens it. Unlike the stock `DuckDBResource`, the connection is closed even when the
    asset raises (a leaked connection would hold DuckDB's file lock), and a lock held by another
    process on the working database is waited for up to `lock_timeout_seconds`, then the step
    fails with DuckDB's message. Nothing is written in that case.
    """

    lock_timeout_seconds: float = 60.0
    # A run holds `<database>.run.lock` from its first step to its last, so two runs never
    # interleave their steps (one would read the other's half-built work tables). The second
    # run waits up to this long, then fails before writing anything. The kernel releases the
    # lock when a run dies, even by kill -9.
    run_lock_timeout_seconds: float = 1800.0
    # The working database; None: ENGAGEMENT_WORKING_DB, else next to `database`.
    working_database: str | None = None
    _run_lock: int | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path:
        """The published file: `database` if given, else ENGAGEMENT_WAREHOUSE (read now)."""
        return Path(self.database) if self.database else settings.warehouse_path()

    @property
    def working_path(self) -> Path:
        """The working database: `working_database` if given; else, when `database` is given in
        code, next to it; else ENGAGEMENT_WORKING_DB (default next to ENGAGEMENT_WAREHOUSE)."""
        if self.working_database:
            return Path(self.working_database)
        if self.database:
            return readers.default_working(Path(self.database))
        return settings.working_db_path()

    @property
    def layout(self) -> readers.Layout:
        return readers.Layout(published=self.path, working=self.working_path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.run is None:
            # A schedule's tick (it reads where the working database is): it takes no run lock,
            # which would hold the daemon's tick for as long as a run goes, and moves nothing.
            return
        # A setting that does not parse failed a step halfway through the run (CIV's decay, in
        # the engagement step after fifteen others): the run stops here, naming the variable.
        # The as-of's dates only for the monthly job: retention and the audience files take
        # none, and a pinned as-of after today stopped retention expiring versions.
        from pipelines.jobs import engagement_job  # it imports this module

        monthly = context.run.job_name == engagement_job.name
        problem = (
            settings.first_problem()
            or _unpartitioned_problem(context.run)
            or (
                window_problem(
                    context.run.tags.get(PARTITION_TAG),
                    shop_today(),
                    _configured_environ(context.run),
                )
                if monthly
                else None
            )
            or readers.foreign_working_problem_before_run(self.layout)
        )
        if problem:
            raise ConfigurationError(problem)
        # A misspelled setting is ignored: the CLI says so, and a `dagster` command's run too,
        # in its log (the UI shows it), naming `.env` when it is set there.
        for warning in settings.unknown_variables():
            context.log.warning(warning.removeprefix("warning: "))
        run_id = context.run.run_id
        if context.instance is not None:
            # The UI's "Re-execute" runs in the webserver's process, with its settings: a rerun
            # of a run started elsewhere (another .env, another shell) published into this
            # process's warehouse and reported success while the run's own stayed as it was.
            moved = moved_reexecution(context.instance, context.run, self.layout)
            if moved:
                raise ConfigurationError(moved)
        if context.instance is not None and run_id is not None:
            # Who runs this run (a later run marks it failed if this process dies unfinished),
            # and on which warehouse (what a re-execution of it must work on too).
            context.instance.add_run_tags(run_id, {**process_tags(), **location_tags(self.layout)})
        instance, run = context.instance, context.run
        month = run.tags.get(PARTITION_TAG, "this run")
        self._run_lock = acquire_run_lock(
            self.path,
            self.run_lock_timeout_seconds,
            # in the run's own log (the UI shows it), not only on the webserver's terminal: a
            # run from the UI, the schedule or the sensor otherwise sat in its resources' start
            # for up to the timeout without a word (a review)
            on_wait=lambda holder: context.log.info(
                lock_wait_message(month, "the warehouse", holder, self.run_lock_timeout_seconds)
            ),
            ahead=(lambda: earlier_in_backfill(instance, run)) if instance is not None else None,
            say=lambda first: context.log.info(f"{month} waits for {first} to go first{GONE}"),
        )
        if context.instance is not None:
            # Holding the lock, no other run of this warehouse is working: runs still marked
            # started whose process is gone were killed. Say so, so the UI and any queue agree.
            fail_dead_runs(context.instance, keep=run_id)
        adopt_single_file(self.layout)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._run_lock is not None:
            release_run_lock(self._run_lock)
            self._run_lock = None

    def _config(self) -> dict:
        """`connection_config`, with ENGAGEMENT_DUCKDB_THREADS (read now) when it is set."""
        config = dict(self.connection_config)
        threads = settings.value("ENGAGEMENT_DUCKDB_THREADS")
        if threads is not None:
            config.setdefault("threads", threads)
        return config

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the working database (never to the file analysts open). In a run
        holding the run lock, first that its lock file is still the one it locked
        (`run_lock_replaced`)."""
        if self._run_lock is not None:
            replaced = run_lock_replaced(self.path, self._run_lock)
            if replaced:
                raise WarehouseError(replaced)
        path = self.working_path
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay, waited = 0.1, False
        while True:
            try:
                conn = duckdb.connect(str(path), config=self._config())
                break
            except duckdb.Error as exc:
                # Only a lock held by another process is worth waiting for.
                if not is_lock_conflict(exc):
                    raise open_error(path, exc, "ENGAGEMENT_WORKING_DB") from None
                if not waited:  # said once: a run waiting in silence looks hung
                    print(
                        f"waiting for the working database {path}: another process has it open "
                        f"({lock_holder(exc)}); only the pipeline should open it (analysts "
                        f"open {self.path})",
                        file=sys.stderr,
                        flush=True,
                    )
                    waited = True
                if time.monotonic() + delay > deadline:
                    raise WarehouseError(
                        f"the working database {path} stayed in use by another process for "
                        f"{self.lock_timeout_seconds:.0f} s ({lock_holder(exc)}); nothing was "
                        "written. Only the pipeline should open it (analysts open "
                        f"{self.path}): close that process or wait, then run again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            yield conn
        except Exception as error:
            interrupt = _interrupt_behind(error)
            if interrupt is None:
                raise
            # A signal (Ctrl-C, SIGTERM) during a query: DuckDB stops the query and raises its
            # own error, which Dagster took for the step's failure and went on to the steps that
            # do not need it (a review: three staging steps ran after Ctrl-C). Raised as the
            # interrupt it is, the run stops there.
            raise interrupt from error
        finally:
            conn.close()

    def publish_for_readers(
        self, con: duckdb.DuckDBPyConnection, *, erased: bool = False
    ) -> readers.Published:
        """Rebuild the file analysts open from the working database (`con`), if it changed."""
        return readers.publish(con, self.layout, erased=erased)


# The run locks this process holds: lock path -> [descriptor, depth]. The CLI takes the lock
# before it checks for new inputs and starts the run; the run's Warehouse resource, in the same
# process, then re-enters it instead of waiting for itself.
_HELD: dict[str, list[int]] = {}


def _interrupt_behind(error: BaseException) -> BaseException | None:
    """The interrupt (Dagster's, or a KeyboardInterrupt) an error was raised from, if any:
    DuckDB's "Query interrupted" carries the signal handler's exception as its cause. An error
    raised `from None` was raised instead of what it replaced (a step's own message, say that a
    version was published but the analysts' file not built): it stays that error."""

    def behind(exc: BaseException) -> BaseException | None:
        if exc.__cause__ is not None:
            return exc.__cause__
        return None if exc.__suppress_context__ else exc.__context__

    seen: set[int] = set()
    cause = behind(error)
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (dg.DagsterExecutionInterruptedError, KeyboardInterrupt)):
            return cause
        seen.add(id(cause))
        cause = behind(cause)
    return None


def run_lock_holder(path: str) -> str:
    """Who holds the run lock at `path`, as its holder wrote it ("pid 123 since ...": the first
    line; the second says not to delete the file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().strip() or "a process that wrote nothing"
    except OSError:
        return "unknown"


# The lock file's second line: it stays after every run and names a pid, as a stale pidfile
# does, which invites deleting it; a run started after its deletion did not wait for the one
# holding it (a review).
RUN_LOCK_NOTE = (
    "held with flock by a run or an erasure while it works, free otherwise; never delete this "
    "file: a run started after would not wait for the one holding it"
)


def lock_wait_message(run: str, what: str, holder: str, timeout_seconds: float) -> str:
    """What a run says in its log, once, when another run or an erasure holds the run lock."""
    return (
        f"{run} waits for the run or erasure that holds {what} to finish ({holder}); it waits "
        f"up to {timeout_seconds:.0f} s (run_lock_timeout_seconds), then fails having written "
        "nothing"
    )


def acquire_run_lock(
    database: Path,
    timeout_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    ahead: Callable[[], str | None] | None = None,
    say: Callable[[str], None] | None = None,
    what: tuple[str, str] = ("the warehouse folder", "ENGAGEMENT_WAREHOUSE"),
) -> int:
    """Take `<database>.run.lock` (flock), waiting up to `timeout_seconds` for another run or
    erasure to finish; `on_wait(holder)` is called once if it has to wait. Re-entrant within a
    process. Returns the open descriptor (`release_run_lock` frees it).

    `ahead()`, asked every few seconds while waiting, names a run that must go first (the
    earlier month of a backfill, `earlier_in_backfill`), or None. While it names one, this run
    does not take the lock even when it is free, and its timeout starts again: a backfill of
    many months waits as long as its earlier months take, and `timeout_seconds` bounds only the
    wait for runs outside it. `say(run)` tells who goes first, once per run named (default:
    a line on stderr). `what`: the folder and the setting a lock that cannot be made names."""
    path = f"{database}.run.lock"
    if path in _HELD:
        _HELD[path][1] += 1
        return _HELD[path][0]
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        folder, setting = what
        raise ConfigurationError(
            f"cannot create the run lock {path} ({exc.strerror.lower()}); {folder} "
            f"{database.parent} must be writable by this user, or point {setting} at a "
            "writable place"
        ) from None
    deadline = time.monotonic() + timeout_seconds
    first, said, asked = None, None, 0.0
    while True:
        if ahead is not None and time.monotonic() - asked >= AHEAD_POLL_SECONDS:
            first, asked = ahead(), time.monotonic()
            if first is not None:
                deadline = time.monotonic() + timeout_seconds
        if first is not None:
            if said != first:  # said once per run that goes first: a silent wait looks hung
                if say is not None:
                    say(first)
                else:
                    print(f"waiting for {first} to go first{GONE}", file=sys.stderr, flush=True)
                said = first
            time.sleep(0.5)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if on_wait is not None:
                on_wait(run_lock_holder(path))
                on_wait = None
            if time.monotonic() > deadline:
                os.close(fd)
                raise dg.Failure(
                    f"another run has held {path} for over {timeout_seconds:.0f} s; nothing "
                    "was written"
                ) from None
            time.sleep(0.5)
    problem = folder_not_writable(database.parent, database.name)
    if problem:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        folder, setting = what
        raise ConfigurationError(
            f"{folder} {database.parent} cannot be written ({problem}); nothing ran. It must "
            f"be writable by this user, or point {setting} at a writable place"
        )
    os.ftruncate(fd, 0)
    held = f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
    os.write(fd, f"{held}\n{RUN_LOCK_NOTE}\n".encode())
    _HELD[path] = [fd, 1]
    return fd


def tick_problem(
    exports: "ExportsResource",
    layout: readers.Layout,
    audience_folder: Path,
    partition_key: str,
    run_date: dt.date,
    given: Sequence["_FromSettings"] = (),
) -> str | None:
    """What would fail a run a schedule's or sensor's tick starts for `partition_key` on
    `run_date`, before it read a row: a setting (also one given in code to a resource of
    `given`: a tick failed with a traceback, a re-review), the export folder, the warehouse's
    folder, the audience folder or the calibration end (a tick requested runs that failed in
    their resources' setup, each a failed run in the UI)."""
    problem = (
        settings.first_problem()
        or next((p for p in (r.given_problem() for r in (exports, *given)) if p), None)
        or exports.problem()
    )
    if problem:
        return problem
    database = layout.published
    if database.parent.is_dir():  # a first run makes it
        unwritable = folder_not_writable(database.parent, database.name)
        if unwritable:
            return (
                f"the warehouse folder {database.parent} cannot be written ({unwritable}): "
                "it must be writable by this user, or point ENGAGEMENT_WAREHOUSE at a "
                "writable place"
            )
    return (
        audience_folder_message(audience_folder)
        or window_problem(partition_key, run_date)
        or readers.foreign_working_problem_before_run(layout)
    )


def folder_not_writable(folder: Path, name: str) -> str | None:
    """Why no new file can be made in `folder` (the warehouse's: its write-ahead logs, the
    published file's new copy), or None. The run lock opening an existing lock file says nothing
    of that: a folder made read-only or immutable after its first run let every staging step
    fail on its write-ahead log (six DuckDB errors, exit 1). The file made is the proof: a tick,
    or a run starting, that tried the same file at the same moment may remove it first, which
    said "cannot be written (no such file)" and skipped the day's run (a review)."""
    probe = folder / f".{name}.write-check"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink(missing_ok=True)
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return None


def run_lock_replaced(database: Path, fd: int) -> str | None:
    """Why the run holding `<database>.run.lock` (descriptor `fd`) must stop: the file at that
    path was deleted or replaced since it was locked, so a run started since took a lock of its
    own and may be working beside this one (a review: both ran, only DuckDB's file lock kept
    their steps apart). Each step asks before it opens the working database, so this run stops
    between two steps, each written whole, as a killed run does. None while the file is its."""
    path = f"{database}.run.lock"
    try:
        now = os.stat(path)
    except FileNotFoundError:
        what = "deleted"
    else:
        held = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return None
        what = "replaced"
    return (
        f"the run lock {path} was {what} during this run, so another run may have started "
        "beside it: this run stops before its next step (each step it ran is written whole). "
        "Never delete that file; run again once no other run is working"
    )


def release_run_lock(fd: int) -> None:
    for path, held in _HELD.items():
        if held[0] == fd:
            held[1] -= 1
            if held[1] > 0:
                return  # an outer holder in this process still holds it
            del _HELD[path]
            break
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def run_lock(
    database: Path,
    timeout_seconds: float = 1800.0,
    on_wait: Callable[[str], None] | None = None,
    what: tuple[str, str] = ("the warehouse folder", "ENGAGEMENT_WAREHOUSE"),
) -> Iterator[None]:
    """Hold the run lock of the warehouse `database` (for work outside a run: an erasure, or
    the CLI from its check for new inputs to the end of the run it starts); `what` as in
    `acquire_run_lock` (the Spark lake's lock names the lake)."""
    fd = acquire_run_lock(database, timeout_seconds, on_wait, what=what)
    try:
        yield
    finally:
        release_run_lock(fd)


def adopt_single_file(layout: readers.Layout) -> None:
    """A warehouse from before the working database becomes the working database (see
    `readers.adopt_single_file`); a damaged file fails here, naming it."""
    try:
        readers.adopt_single_file(layout)
    except duckdb.Error as exc:
        if is_lock_conflict(exc):
            raise WarehouseError(
                f"the warehouse {layout.published} is from before the working database and has "
                f"unsaved changes, and another process has it open ({lock_holder(exc)}); close "
                "it once so the run can copy it to the working database, then run again"
            ) from None
        raise open_error(layout.published, exc) from None


class WarehouseError(Exception):
    """The warehouse file cannot be used; the message says why and what to do."""


# Words of DuckDB's messages for a file that is not (or no longer) a whole DuckDB database.
_DAMAGE_MARKERS = (
    "not a valid DuckDB database file",
    "Corrupt database file",
    "checksum",
    "Could not read enough bytes",
    "replaying WAL",
)


def lock_holder(exc: Exception) -> str:
    text = str(exc)
    start = text.find("Conflicting lock is held in")
    if start < 0:
        return "its lock is held"
    held = text[start:].split(". See also")[0].replace("Conflicting lock is held in", "held by")
    # DuckDB's advice to open read-only is for the one who waits, not about the holder (who
    # may well be a read-only session): it would mislead here.
    return held.split(". However,")[0]


def open_error(path: Path, exc: Exception, setting: str = "ENGAGEMENT_WAREHOUSE") -> WarehouseError:
    """A plain sentence for a warehouse file that cannot be opened (not a lock conflict),
    naming it by its setting's word: the working database, or the warehouse file."""
    text = str(exc)
    what = "the working database" if setting == "ENGAGEMENT_WORKING_DB" else "the warehouse file"
    if any(marker in text for marker in _DAMAGE_MARKERS):
        start = (
            # a new working database beside the published file would replace its versions
            "point ENGAGEMENT_WORKING_DB and ENGAGEMENT_WAREHOUSE at new files to start a new "
            "warehouse (the published file and its history keep the versions published so far)"
            if setting == "ENGAGEMENT_WORKING_DB"
            else f"point {setting} at a new file to start a new warehouse"
        )
        return WarehouseError(
            f"{what} {path} is damaged and cannot be opened; restore it (and its "
            f".wal file, if any) from a backup, or {start} (DuckDB said: {text.splitlines()[0]})"
        )
    if "Permission denied" in text:
        return WarehouseError(
            f"{what} {path} cannot be opened: permission denied; it and its folder "
            "must be readable and writable by this user"
        )
    return WarehouseError(f"{what} {path} cannot be opened: {text.splitlines()[0]}")


# Tags naming the process that executes a run (see `fail_dead_runs`).
HOST_TAG = "engagement/host"
PID_TAG = "engagement/pid"
PID_START_TAG = "engagement/pid_start"


def _process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


# Where a run worked, recorded on it when its warehouse is set up; Dagster tags a re-execution
# with the run it re-executes.
WORKING_DB_TAG = "engagement/working_database"
PUBLISHED_TAG = "engagement/warehouse"
PARENT_RUN_TAG = "dagster/parent_run_id"


def location_tags(layout: readers.Layout) -> dict[str, str]:
    # The folders resolved (links, `..`), the file names kept: a publish replaces a link at the
    # file's own path by the file, which would name another path the next time.
    return {
        WORKING_DB_TAG: str(layout.working.parent.resolve() / layout.working.name),
        PUBLISHED_TAG: str(layout.published.parent.resolve() / layout.published.name),
    }


def _located_ancestor(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun | None:
    """The nearest run up `run`'s re-execution chain that recorded where it worked: a refused
    re-execution records nothing, and its own re-execution must be judged by the run above."""
    seen: set[str] = set()
    parent_id = _parent_id(run)
    while parent_id and parent_id not in seen:
        seen.add(parent_id)
        parent = instance.get_run_by_id(parent_id)
        if parent is None:
            return None
        if parent.tags.get(WORKING_DB_TAG) or parent.tags.get(PUBLISHED_TAG):
            return parent
        parent_id = _parent_id(parent)
    return None


def _parent_id(run: dg.DagsterRun) -> str | None:
    """The run `run` re-executes: the run's own field (Python's `execute_job` with
    `ReexecutionOptions` sets only that), else Dagster's tag (what the UI sets too)."""
    return run.parent_run_id or run.tags.get(PARENT_RUN_TAG)


def moved_reexecution(instance: dg.DagsterInstance, run: dg.DagsterRun, layout) -> str | None:
    """Why `run` may not run on `layout`: it re-executes a run that worked on another warehouse
    (the recorded `location_tags` of the nearest run up its chain that has them), or None (not a
    re-execution, the same warehouse, or runs from before the tags)."""
    parent = _located_ancestor(instance, run)
    if parent is None:
        return None
    direct = parent.run_id == _parent_id(run)
    rerun = f"run {parent.run_id}" if direct else f"a rerun of run {parent.run_id}"
    here = location_tags(layout)
    there = {tag: parent.tags[tag] for tag in here if parent.tags.get(tag)}
    if all(there[tag] == here[tag] for tag in there):
        return None
    return (
        f"this run re-executes {rerun}, which worked on the working "
        f"database {there.get(WORKING_DB_TAG, '?')} (analysts' file "
        f"{there.get(PUBLISHED_TAG, '?')}); this "
        f"process's settings point at {here[WORKING_DB_TAG]} ({here[PUBLISHED_TAG]}). Nothing "
        "was written. Re-execute it from a process with that run's ENGAGEMENT_WAREHOUSE and "
        "ENGAGEMENT_WORKING_DB (its .env), or start a new run here"
    )


def process_tags(pid: int | None = None) -> dict[str, str]:
    pid = pid or os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PID_START_TAG: _process_start(pid) or "",
    }


def process_gone(tags: dict[str, str]) -> bool:
    """True when the tags name a process on this host that no longer runs."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False  # another machine, or not ours to judge
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = _process_start(pid)
    return bool(tags.get(PID_START_TAG)) and started is not None and started != tags[PID_START_TAG]


def _inherited(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """True when the run's process tags are its parent's, copied by a re-execution (the UI's
    "Re-execute") and not yet replaced by its own process (its Warehouse resource writes them
    when the run starts): they say nothing about this run's process."""
    parent_id = run.tags.get("dagster/parent_run_id")
    parent = instance.get_run_by_id(parent_id) if parent_id else None
    if parent is None:
        return False
    return all(run.tags.get(t) == parent.tags.get(t) for t in (HOST_TAG, PID_TAG, PID_START_TAG))


BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"
# How often a run waiting for the lock asks the instance whether an earlier month of its
# backfill is still to run (one query of the run storage).
AHEAD_POLL_SECONDS = 2.0
# A run of the backfill that Dagster is starting, whose process has not yet said who it is
# (its Warehouse writes its process tags before it waits): waited for this long after its last
# change of status, then not (its launch died, and nothing will mark it failed). A QUEUED run
# is never waited for: with a run queue, it may need the slot the waiting run holds.
LAUNCH_GRACE_SECONDS = 300.0
# What a backfill's wait adds: a run started on another host (a container) whose process is
# gone stays "started", since no other host can tell, and the months after it waited for it
# with no word of how to go on (a review).
GONE = (
    " (if its process is gone, e.g. on another host or container, end it: in the UI, "
    "that run's Terminate, forced, and run its month again afterwards)"
)

_LAUNCHING = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def earlier_in_backfill(instance: dg.DagsterInstance, run: dg.DagsterRun | None) -> str | None:
    """The earliest month of `run`'s backfill still to run before it, as "the run of <month> in
    backfill <id>"; None when the run is not part of a backfill or is its earliest unfinished
    month.

    Dagster launches every run of a backfill from the UI at once, and they would take the run
    lock in whatever order they reach it. The months' numbers do not depend on the order, but
    the persona model does (a month takes the model in force at the latest earlier as-of, and
    refits when it is due): months run in order refit the same months a backfill from the
    command line does. A run whose process is gone (killed), a run still queued, and one whose
    launch has said nothing for `LAUNCH_GRACE_SECONDS` do not hold the others back."""
    if run is None:
        return None
    backfill, partition = run.tags.get(BACKFILL_TAG), run.tags.get(PARTITION_TAG)
    if not backfill or not partition:
        return None
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill}, statuses=_LAUNCHING)
    )
    now = time.time()
    earlier = sorted(
        record.dagster_run.tags[PARTITION_TAG]
        for record in records
        if record.dagster_run.run_id != run.run_id
        and record.dagster_run.tags.get(PARTITION_TAG, partition) < partition
        and _still_to_run(instance, record, now)
    )
    return f"the run of {earlier[0]} in backfill {backfill}" if earlier else None


def _still_to_run(instance: dg.DagsterInstance, record, now: float) -> bool:
    """Whether an unfinished run of a backfill will still run: its process is alive, or it is
    being launched and has not yet said who runs it (for `LAUNCH_GRACE_SECONDS`)."""
    other = record.dagster_run
    if other.tags.get(PID_TAG) and not _inherited(instance, other):
        return not process_gone(other.tags)
    changed = record.update_timestamp or record.create_timestamp
    return now - changed.timestamp() < LAUNCH_GRACE_SECONDS


def fail_dead_runs(
    instance: dg.DagsterInstance,
    keep: str | None = None,
    published: dict[str, tuple[int, dt.date] | None] | None = None,
) -> list[str]:
    """Mark failed every run still "starting" or "started" whose process is gone (killed, or
    the machine stopped), and free any concurrency slots it held. Returns their ids. The
    failure names the version the run published before it stopped, if it did
    (`published_by_run`), which `published` receives by run id when given."""
    unfinished = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
    )
    failed = []
    for run in unfinished:
        if run.run_id == keep or not process_gone(run.tags) or _inherited(instance, run):
            continue
        version = published_by_run(run)
        if published is not None:
            published[run.run_id] = version
        instance.report_run_failed(
            run,
            message=(
                f"process {run.tags[PID_TAG]} on {run.tags[HOST_TAG]} ended without finishing "
                f"this run (killed or stopped){dead_run_words(version)}"
            ),
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed


def published_by_run(run: dg.DagsterRun) -> tuple[int, dt.date] | None:
    """(version, as-of) a run published, read from the working database its tags name, or None
    (it published none, or it cannot be told: no such file, a process holding it). A run killed
    after its publish's commit is failed in Dagster though its version stands whole: the UI
    showed only a failed run (an on-call review)."""
    working = run.tags.get(WORKING_DB_TAG)
    if not working or not Path(working).exists():
        return None
    try:
        con = duckdb.connect(working, read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute(load_sql("marts/version_of_run"), {"run_id": run.run_id}).fetchone()
    except duckdb.Error:  # a working database from before any publish
        return None
    finally:
        con.close()
    return (int(row[0]), row[1]) if row else None


def dead_run_words(published: tuple[int, dt.date] | None) -> str:
    """What follows "ended without finishing this run (killed or stopped)"."""
    if published is None:
        return "; nothing it left half-done was published"
    version, as_of = published
    return (
        f", after it published version {version} (as of {as_of}), which stands whole; what "
        "it left undone after its publish (the audience files) the next run finishes"
    )


class EngagementConfig(_FromSettings):
    """Weights and values of the engagement metrics (defaults in README "Settings").

    Each field maps to `engagement_box.engagement.config.EngagementSettings`; JSON fields take a
    mapping, e.g. ENGAGEMENT_SOCIAL_POINTS='{"like": 1, "comment": 5, "share": 10}'. CRV looks
    forward over the CLV's horizon at the CLV's discount rate: `to_settings` takes both from
    `ModelSettings` (`clv_horizon_months`, `monthly_discount_rate`), so CEV never adds a CLV
    and a CRV of different horizons.
    """

    social_points_json: str | None = None
    crv_unknown_type2_share: float | None = None
    crv_retention_cost: float | None = None
    crv_acquisition_saved_type1: float | None = None
    crv_acquisition_saved_type2: float | None = None
    crv_value_credibility: float | None = None
    civ_beta: float | None = None
    civ_attribution_share: float | None = None
    ckv_value_per_review: float | None = None
    quadrant_clv_quantile: float | None = None
    quadrant_crv_quantile: float | None = None
    persona_refit_days: int | None = None
    max_profiles_per_key: int | None = None
    audience_dir: str | None = None

    _ENV: ClassVar[dict[str, str]] = {
        "social_points_json": "ENGAGEMENT_SOCIAL_POINTS",
        "crv_unknown_type2_share": "ENGAGEMENT_CRV_UNKNOWN_TYPE2_SHARE",
        "crv_retention_cost": "ENGAGEMENT_CRV_RETENTION_COST",
        "crv_acquisition_saved_type1": "ENGAGEMENT_CRV_ACQ_SAVED_TYPE1",
        "crv_acquisition_saved_type2": "ENGAGEMENT_CRV_ACQ_SAVED_TYPE2",
        "crv_value_credibility": "ENGAGEMENT_CRV_VALUE_CREDIBILITY",
        "civ_beta": "ENGAGEMENT_CIV_BETA",
        "civ_attribution_share": "ENGAGEMENT_CIV_ATTRIBUTION_SHARE",
        "ckv_value_per_review": "ENGAGEMENT_CKV_VALUE_PER_REVIEW",
        "quadrant_clv_quantile": "ENGAGEMENT_QUADRANT_CLV_QUANTILE",
        "quadrant_crv_quantile": "ENGAGEMENT_QUADRANT_CRV_QUANTILE",
        "persona_refit_days": "ENGAGEMENT_PERSONA_REFIT_DAYS",
        # identity's placeholder limit: it changes who is one customer, so every metric
        "max_profiles_per_key": "ENGAGEMENT_MAX_PROFILES_PER_KEY",
        "audience_dir": "ENGAGEMENT_AUDIENCE_DIR",
    }

    def to_settings(self, model_settings: ModelSettings):
        """The metrics' settings of a run; the horizon and discount rate are the CLV's, from
        `model_settings` (one place to set them, in code or by environment variable)."""
        from engagement_box.engagement.metrics import DEFAULT_SOCIAL_POINTS, EngagementSettings

        model = model_settings.resolved()

        points = dict(DEFAULT_SOCIAL_POINTS)
        given = self.setting("social_points_json")
        if given:
            extra = json.loads(given) if isinstance(given, str) else given
            points.update({k: float(v) for k, v in extra.items()})
        return EngagementSettings(
            social_points=points,
            horizon_months=model.clv_horizon_months,
            monthly_discount_rate=model.monthly_discount_rate,
            **{
                field: self.setting(field)
                for field in self._ENV
                if field
                not in (
                    "social_points_json",
                    "audience_dir",
                    "persona_refit_days",
                    "max_profiles_per_key",
                )
            },
        )

    @property
    def audience_path(self) -> Path:
        return self.given_path("audience_dir")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        # An audience folder that cannot be written failed the last step, after the publish,
        # with a raw FileExistsError: the run stops before its first step instead.
        if context.run is None:
            return  # a tick: it writes nothing there
        if not writes_audience_files(context.run):
            return  # a run of other steps (the identity links read these settings too)
        problem = audience_folder_message(self.audience_path, then="nothing ran: ")
        if problem:
            raise ConfigurationError(problem)


# The audience files' asset (assets/engagement.py::AUDIENCES_KEY): defined here, where the
# folder's check reads it, because the assets import this module and not the other way round.
AUDIENCE_FILES_KEY = dg.AssetKey(["activation", "audiences"])
# Every step that writes audience files: the DuckDB engine's, and the Spark engine's publish
# (assets/spark.py::PUBLISHED_KEY).
AUDIENCE_WRITERS = frozenset({AUDIENCE_FILES_KEY, dg.AssetKey(["spark", "published_marts"])})


def writes_audience_files(run: dg.DagsterRun) -> bool:
    """Whether `run`'s steps include one that writes audience files. A whole job's run names no
    assets (None, or an empty selection in process) and no step keys."""
    selection, steps = run.asset_selection, run.step_keys_to_execute
    if selection and not selection & AUDIENCE_WRITERS:
        return False
    writers = {key.to_python_identifier() for key in AUDIENCE_WRITERS}
    return steps is None or bool(writers & set(steps))


def _not_a_folder(path: Path) -> str:
    if path.is_symlink():
        return "a link to a file" if path.exists() else "a link to nothing (or a loop of links)"
    return "a file, not a folder"


def audience_folder_message(folder: Path, then: str = "") -> str | None:
    """What to say when the audience files could not be written in `folder` (`then`: what
    comes before the fix), or None."""
    problem = audience_folder_problem(folder)
    if problem is None:
        return None
    return (
        f"the audience folder {folder} cannot be written ({problem}); {then}point "
        "ENGAGEMENT_AUDIENCE_DIR at a folder this user can write (it is created when missing)"
    )


def audience_folder_problem(folder: Path) -> str | None:
    """Why the audience files could not be written in `folder` (made when missing), or None."""
    if folder.is_dir():
        return folder_not_writable(folder, "audiences")
    if os.path.lexists(folder):  # a file, or a link to nothing (`exists` says False for it)
        return f"it is {_not_a_folder(folder)}"
    ancestor = folder.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is {_not_a_folder(ancestor)}"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable by this user"
    return None


class RetentionPolicy(_FromSettings):
    """Which published versions stay queryable: the newest `keep_versions` that are younger
    than `keep_days` days; the current version always stays."""

    keep_versions: int | None = None
    keep_days: int | None = None

    _ENV: ClassVar[dict[str, str]] = {
        "keep_versions": "ENGAGEMENT_KEEP_VERSIONS",
        "keep_days": "ENGAGEMENT_KEEP_DAYS",
    }


class LakeResource(_FromSettings):
    """Where the Spark engine writes its tables and publishes its marts (ENGAGEMENT_LAKE_DIR).

    A Spark run holds the lake's run lock, `<lake>.run.lock` (the same flock as the warehouse's
    run lock), from its first step to its last: two Spark runs never write one lake at once, and
    `engagement-box erase` waits for a run in progress instead of rewriting versions under it."""

    lake_dir: str | None = None
    run_lock_timeout_seconds: float = 1800.0

    _ENV: ClassVar[dict[str, str]] = {"lake_dir": "ENGAGEMENT_LAKE_DIR"}
    _run_lock: int | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path:
        return self.given_path("lake_dir")

    def problem(self) -> str | None:
        """A lake given as a URL (`hdfs://`, `s3a://`): the engine reads and writes the lake
        with this machine's file system calls, so such a run wrote the whole lake into a local
        folder named `hdfs:` and succeeded."""
        given = self._given("lake_dir") or settings.raw("ENGAGEMENT_LAKE_DIR")
        if given and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", str(given)):
            return (
                f"ENGAGEMENT_LAKE_DIR={given} is a URL: the lake must be a folder path every "
                "Spark executor and this machine reach the same way (a shared or mounted file "
                "system: NFS, an HDFS or object store mount), e.g. /mnt/lake"
            )
        return None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every setting before the first step, as the DuckDB engine's Warehouse does: a
        # retention setting that did not parse failed the run's last step, after it published.
        problem = self.problem() or settings.first_problem() or self.given_problem()
        if problem:
            raise ConfigurationError(problem)
        run = getattr(context, "run", None)
        month = run.tags.get(PARTITION_TAG, "this run") if run is not None else "this run"

        log = context.log.info if context is not None else functools.partial(print, file=sys.stderr)
        self._run_lock = acquire_run_lock(
            self.path,
            self.run_lock_timeout_seconds,
            on_wait=lambda holder: log(
                lock_wait_message(month, "the Spark lake", holder, self.run_lock_timeout_seconds)
            ),
            what=("the Spark lake's folder", "ENGAGEMENT_LAKE_DIR"),
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._run_lock is not None:
            release_run_lock(self._run_lock)
            self._run_lock = None


class SparkEngine(dg.ConfigurableResource):
    """The Spark session of the `spark` engine, from Dagster's `PySparkResource` (dagster-pyspark)
    with the settings of `engagement_box/spark/session.py::spark_conf` for ENGAGEMENT_SPARK_MASTER
    (read when the run starts). The session is started on first use and stopped with the run."""

    master: str | None = None
    shuffle_partitions: int = 4

    _pyspark: Any = PrivateAttr(default=None)

    def session(self):
        if self._pyspark is None:
            from dagster_pyspark import PySparkResource

            from engagement_box.spark.session import (
                quiet_known_warnings,
                spark_conf,
                use_this_python,
            )

            master = self.master or settings.value("ENGAGEMENT_SPARK_MASTER")
            problem = java_problem()
            if problem:
                raise ConfigurationError(problem)
            use_this_python(master)
            resource = PySparkResource(spark_config=spark_conf(master, self.shuffle_partitions))
            resource.setup_for_execution(None)  # builds the session (SparkSession.getOrCreate)
            quiet_known_warnings(resource.spark_session)
            self._pyspark = resource
        return self._pyspark.spark_session


def java_problem() -> str | None:
    """What keeps Spark from starting its JVM, said plainly (it failed with Py4J's
    "Java gateway process exited" and a stack): JAVA_HOME naming no java, or no java at all."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            return (
                f"JAVA_HOME={home} holds no java ({java} is missing or not executable): the "
                "spark engine needs Java 17; point JAVA_HOME at a Java 17 installation or unset it"
            )
        return None
    if shutil.which("java") is None:
        return (
            "no java on PATH and JAVA_HOME is not set: the spark engine needs Java 17 (e.g. "
            "`apt install openjdk-17-jre-headless`), or run the DuckDB engine"
        )
    return None


def spark_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location with ENGAGEMENT_ENGINE=spark."""
    return {
        "spark": SparkEngine(),
        "lake_dir": LakeResource(),
        "exports": ExportsResource(),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(),
        "retention": RetentionPolicy(),
    }


def warehouse_resource(database: str | Path | None = None) -> "Warehouse":
    """The DuckDB warehouse at `database` (default: ENGAGEMENT_WAREHOUSE, read at run time)."""
    return Warehouse(database=str(database) if database else "")


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location. No setting is read here: each resource reads its
    settings when a run uses it."""
    return {
        "warehouse": warehouse_resource(),
        "exports": ExportsResource(),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(),
        "retention": RetentionPolicy(),
    }
