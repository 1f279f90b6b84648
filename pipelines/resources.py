"""The typed resources and what they check before any step.

`ExportsResource` (the export folders), `Warehouse` (the working database, the published file
and the run lock, which `pipelines/runs.py` keeps with the runs' tags, dead runs and a
backfill's order), `ModelSettings`,
`EngagementConfig` (with the audience folder), `RetentionPolicy`, and for the Spark engine
`LakeResource` and `SparkEngine`. Each reads its settings as `engagement_box/settings.py`
defines them; `tick_problem` is what the schedule and the sensor check before they ask for
a run, `window_problem` the dates no run can take."""

import datetime as dt
import functools
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
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
from engagement_box.sql import is_lock_conflict
from pipelines.errors import ConfigurationError
from pipelines.runs import (
    GONE,
    PARTITION_TAG,
    acquire_run_lock,
    earlier_in_backfill,
    fail_dead_runs,
    folder_not_writable,
    location_tags,
    lock_wait_message,
    moved_reexecution,
    process_tags,
    release_run_lock,
    run_lock_replaced,
)

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
    stale_source_days: int | None = None

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
        # a warning's threshold, not an input of the numbers (`NOT_INPUTS`)
        "stale_source_days": "ENGAGEMENT_STALE_SOURCE_DAYS",
    }
    # Where files go and when to warn: recorded with no version, and no input of its fingerprint.
    NOT_INPUTS: ClassVar[tuple[str, ...]] = ("audience_dir", "stale_source_days")

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
                    "persona_refit_days",
                    "max_profiles_per_key",
                    *self.NOT_INPUTS,
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
