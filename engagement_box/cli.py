"""`engagement-box`: run the pipeline on the configured exports without starting a server.

    engagement-box run        materialize the whole graph once (ENGAGEMENT_DATA_DIR -> warehouse)
    engagement-box retain     apply the retention policy of published versions now
    engagement-box retire     retire one bad published version (its rows, files and migration)
    engagement-box erase      erase one person from every table, version and audience file
    engagement-box generate   write a synthetic retailer's exports (see engagement_box.generator)

Runs are recorded in the Dagster instance at DAGSTER_HOME (default: `.dagster/` in the checkout),
so `dagster dev` shows them afterwards with their lineage, metadata and checks, and can
re-execute them: a run is created from the code location workspace.yaml names, with its job's
origin, and executed in this process. The console gets one line per step; Dagster's full log goes
to DAGSTER_HOME/run_logs/<run id>.log.
"""

import argparse
import atexit
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from engagement_box import settings
from engagement_box.clock import shop_today, utc_now
from engagement_box.sql import first_line, load_sql

# After SIGTERM or SIGINT a run gets this long to stop by itself, then the process exits anyway.
# Leaving mid-step is safe: every write is one transaction, so the last good version stays.
STOP_GRACE_SECONDS = 6.0


def _instance_home() -> str:
    """DAGSTER_HOME, made absolute as Dagster needs it (a relative value, as in `.env.example`,
    is taken from the working directory like the other path settings); default `.dagster` in
    the repository."""
    given = os.environ.get("DAGSTER_HOME")
    home = (
        str(Path(given).expanduser().absolute()) if given else str(settings.REPO_ROOT / ".dagster")
    )
    os.environ["DAGSTER_HOME"] = home
    os.makedirs(home, exist_ok=True)
    return home


def _instance_home_or_problem() -> tuple[str, str | None]:
    """`_instance_home`, or what is wrong with DAGSTER_HOME (a file, a folder that cannot be
    made): a traceback otherwise."""
    try:
        return _instance_home(), None
    except OSError as error:
        given = os.environ.get("DAGSTER_HOME")
        return "", (
            f"DAGSTER_HOME={given} cannot be the Dagster instance's folder "
            f"({error.strerror or error}): point it at a folder (it is made if missing) and "
            "copy .dagster/dagster.yaml into it"
        )


@contextmanager
def _instance_lock(home: str):
    """Held while the Dagster instance opens: two runs starting together on a new DAGSTER_HOME
    would otherwise both create its storage, and one crashed ("table ... already exists")."""
    fd = os.open(os.path.join(home, ".engagement-box.instance.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def open_instance(home: str):
    """The Dagster instance at `home`, its storage created (once) under a lock."""
    import dagster as dg

    with _instance_lock(home):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)  # creates (or upgrades) the run and event storage now
        if instance.telemetry_enabled:
            # Dagster greets a new instance (its telemetry notice, on stderr) when it first
            # records a run's telemetry, which fell between two step lines: greet it here,
            # before the run's lines. The checkout's .dagster/dagster.yaml turns telemetry off.
            from dagster_shared.telemetry import get_or_set_instance_id

            get_or_set_instance_id()
    return instance


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def _stop_on_signal(on_timeout: Callable[[int], None]):
    """On SIGTERM or SIGINT, let the run stop by itself for STOP_GRACE_SECONDS, then call
    `on_timeout(signum)` and exit. Dagster only looks at the signal between its own steps, and
    not at all while a step waits, so a thread watches the signal instead of the main loop."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    # A Python handler must be set for the wake-up byte to be written; Dagster replaces it with
    # its own while the run executes, and the byte is written for either.
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}

    received: list[int] = []

    def watch() -> None:
        got = reader.recv(1)
        if not got:  # the run ended: no signal came
            return
        received.append(got[0])
        name = signal.Signals(got[0]).name
        print(f"{name} received: stopping the run", file=sys.stderr, flush=True)
        # Plain sleeps, not timed lock waits: those hang under a faked clock (libfaketime).
        time.sleep(STOP_GRACE_SECONDS)
        print(
            f"the run did not stop within {STOP_GRACE_SECONDS:.0f} s of {name}; leaving it now "
            "(the current version is the last one published whole: marts.snapshots says which)",
            file=sys.stderr,
            flush=True,
        )
        reporter = threading.Thread(target=on_timeout, args=(got[0],), daemon=True)
        reporter.start()
        deadline = time.monotonic() + 2.0
        while reporter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(128 + got[0])

    watcher = threading.Thread(target=watch, name="stop-on-signal", daemon=True)
    watcher.start()
    try:
        yield received
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()  # wakes the watcher, which ends unless a signal already came
        watcher.join(0.5)
        reader.close()


def root_causes(result) -> list[str]:
    """Each failure of a run, once per step in the order they happened, as the user-facing
    message of the exception that caused it (not Dagster's "Execution of run ... failed").
    `result` is a run's result or its events."""
    causes: dict[str | None, str] = {}
    for event in getattr(result, "all_events", result):
        if not event.is_failure and event.event_type_value not in (
            "RESOURCE_INIT_FAILURE",
            "ENGINE_EVENT",
        ):
            continue
        error = getattr(event.event_specific_data, "error", None)
        if error is None or event.step_key in causes or error.cls_name in _SAID_APART:
            continue
        # Dagster's wrappers unwrapped down to the first error raised by the step's code: its
        # message is the one written for the user (a ModelFitError's "the likelihood is flat"
        # was said as the numpy error it was raised from, "Matrix is not positive definite").
        while error.cause is not None and error.cls_name.startswith("Dagster"):
            error = error.cause
        message = error.message.strip()
        prefix, _, rest = message.partition(": ")
        if rest and prefix.rsplit(".", 1)[-1] == error.cls_name:
            message = rest
        said = message.splitlines()[0] if message else error.cls_name
        if event.step_key is None and any(c.endswith(said) for c in causes.values()):
            continue  # the run's failure repeating a step's
        where = f"{event.step_key}: " if event.step_key else ""
        causes[event.step_key] = f"{where}{said}"
    return list(causes.values())


# A blocking check's failure: Dagster's error only names the check; its own description is
# said instead (`StepLines.failed_checks`).
_SAID_APART = ("DagsterAssetCheckFailedError",)


def _exports_problem() -> str | None:
    """Why a run could not read its exports or write its audience files, or None."""
    from pipelines.resources import (
        audience_folder_message,
        missing_export_folders,
        missing_exports_message,
    )

    data_dir = settings.data_dir()
    missing = missing_export_folders(data_dir)
    if missing:
        return missing_exports_message(data_dir, missing)
    return audience_folder_message(settings.audience_dir())


WORKSPACE_YAML = settings.REPO_ROOT / "workspace.yaml"
JOB_NAME = "engagement_pipeline"


@contextmanager
def code_location(instance):
    """The code location workspace.yaml names, loaded in this process under the same name
    `dagster dev` gives it: runs created from it record where their job comes from, so the
    UI can re-execute them. Dagster has no public API for this (`dagster job launch` uses the
    same internals, `dagster._core`): the pinned Dagster version keeps them in place, and the
    CLI's tests run through them."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    (origin,) = location_origins_from_yaml_paths([str(WORKSPACE_YAML)])
    in_process = InProcessCodeLocationOrigin(
        loadable_target_origin=origin.loadable_target_origin, location_name=origin.location_name
    )
    with in_process.create_location(instance) as location:
        yield location


def create_run(
    instance, location, tags: dict[str, str], run_config: dict, job_name: str = JOB_NAME
):
    """A run of `job_name` (default: the whole pipeline; its partition is in `tags`), created
    the way `dagster job launch` and the UI create runs (with the job's remote origin), not the
    way `execute_in_process` does: so "Re-execute" in the UI works for it."""
    from dagster._core.definitions.selector import JobSubsetSelector

    (repo,) = location.get_repositories().values()
    remote_job = location.get_job(
        JobSubsetSelector(
            location_name=location.name,
            repository_name=repo.name,
            job_name=job_name,
            op_selection=None,
        )
    )
    plan = location.get_execution_plan(
        remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    return instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.tags, **tags},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )


class StepLines:
    """One console line per step as it finishes: status, seconds, CPU seconds, the rows of the
    tables it wrote, checks. Steps run one at a time in this process (the in-process executor),
    so the process's CPU time while a step runs (every thread: DuckDB's and polars' too) is the
    step's."""

    INGESTED = (
        "files_ingested",
        "rows_staged_this_run",
        "rows_quarantined_this_run",
        "rows_erased_this_run",
    )
    HEADER = (
        f"  {'step':30} {'status':7} {'seconds':>8} {'cpu s':>7} {'rows':>19}  {'checks':10}  path"
    )

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.started: dict[str, float] = {}
        self.cpu_started: dict[str, float] = {}
        self.rows: dict[str, list[int]] = {}
        self.checks: dict[str, list[tuple[str, bool, bool]]] = {}  # (name, passed, only warns)
        self.finished: list[str] = []
        self.failed_checks: list[str] = []
        self.warnings: list[str] = []
        self.moved: list[str] = []  # export files moved or renamed since they were taken in
        # per source: unchanged files taken in again under the ingest's current rules
        self.restaged: dict[str, int] = {}
        self.left_out: str | None = None
        # step -> (path, why) from the step's `computation` metadata (the incremental steps)
        self.paths: dict[str, tuple[str, str]] = {}
        # What the publish did: the metadata of published_marts (assets/publish.py), by key
        self.publish: dict[str, object] | None = None
        self.skipped: set[str] = set()
        # What this run's staging steps took in (their metadata, summed over the sources)
        self.ingested = dict.fromkeys(self.INGESTED, 0)
        # (known, id) of the version current before the run (`current_version`)
        self.version_before: tuple[bool, int | None] = (False, None)
        # The signals received while the run executes (`_stop_on_signal`): a step that fails
        # after one was stopped, and its line says so instead of FAILED.
        self.signals: list[int] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Dagster warns, for each step after a skipped one, that a blocking check of the
        skipped step "emitted no result" and the step "will proceed" (it is skipped all the
        same): not said when that step was skipped."""
        said = record.getMessage()
        return not (
            "emitted no result in step" in said
            and any(f"in step {step!r}" in said for step in self.skipped)
        )

    def _staging_warnings(self, event, metadata) -> None:
        """What a staging step found in the files that a person should know (its metadata)."""
        withdrawn = metadata.get("keys_withdrawn")
        copies = metadata.get("copies_of_earlier_files")
        moved = metadata.get("files_moved")
        if moved and moved.value:
            from engagement_box.staging.messages import moved_message

            self.moved.append(moved_message(moved.value))
        adopted = metadata.get("erasures_adopted")
        if adopted and adopted.value:
            from engagement_box.staging.messages import adopted_message

            self.warnings.append(adopted_message(adopted.value))
        restaged = metadata.get("files_restaged_for_rules")
        if restaged and restaged.value:
            self.restaged[event.asset_key.path[-1]] = len(restaged.value)
        ignored, quarantined = metadata.get("ignored_columns"), metadata.get("quarantined_by_file")
        if (ignored and ignored.value) or (quarantined and quarantined.value):
            from engagement_box.staging.messages import file_warnings

            # A resent copy is said as a copy (copy_message) below. The Spark engine's one
            # staging step gives every source's files under these keys too.
            self.warnings += file_warnings(
                ignored.value if ignored else {},
                quarantined.value if quarantined else {},
                copies.value if copies else {},
            )
        cut_short = metadata.get("cut_short_files")
        if cut_short and cut_short.value:
            from engagement_box.staging.messages import cut_short_message

            self.warnings += [cut_short_message(f, r) for f, r in cut_short.value.items()]
        offsets = metadata.get("other_offsets")
        if offsets and offsets.value:
            from engagement_box.staging.messages import other_offset_message

            self.warnings += [other_offset_message(f, e) for f, e in offsets.value.items()]
        restaged = metadata.get("duplicates_restaged")
        profiles = metadata.get("profile_changes_not_applied")
        orders = metadata.get("order_changes_not_applied")
        if not any(m and m.value for m in (withdrawn, copies, restaged, profiles, orders)):
            return
        from engagement_box.staging.messages import (
            copy_message,
            order_changes_message,
            profile_changes_message,
            restaged_message,
            withdrawn_message,
        )

        for file, changes in (profiles.value if profiles else {}).items():
            self.warnings.append(profile_changes_message(file, changes))
        if orders and orders.value:
            self.warnings.append(order_changes_message(orders.value))

        source = event.asset_key.path[-1]
        for file, keys in (withdrawn.value if withdrawn else {}).items():
            self.warnings.append(withdrawn_message(source, file, keys))
        if restaged and restaged.value:
            self.warnings.append(restaged_message(source, restaged.value))
        for file, other in (copies.value if copies else {}).items():
            self.warnings.append(copy_message(file, other))

    def __call__(self, event) -> None:
        kind, step = event.event_type_value, event.step_key
        if kind == "STEP_START":
            self.started[step] = time.monotonic()
            self.cpu_started[step] = time.process_time()
        elif kind == "ASSET_MATERIALIZATION":
            metadata = event.event_specific_data.materialization.metadata
            rows = metadata.get("dagster/row_count")
            # A partition a standing version holds was written by no step of this run: its
            # rows are not this step's (a run that computed nothing said "52,200 in 21 tables").
            standing = "computed_in_this_run" in metadata
            if not standing:
                self.rows.setdefault(step, []).append(rows.value if rows is not None else None)
            # Nor is their path: it is what the run that computed them said ("cold" for a
            # step that computed nothing here).
            path, why = metadata.get("computation"), metadata.get("computation_reason")
            if path is not None and not standing and step not in self.paths:
                self.paths[step] = (str(path.value), str(why.value) if why is not None else "")
            self._staging_warnings(event, metadata)
            if "no_consent_warning" in metadata:  # the audience step: every file empty
                self.warnings.append(str(metadata["no_consent_warning"].value))
            if "rows_quarantined_this_run" in metadata:  # a staging step
                for key in self.INGESTED:
                    self.ingested[key] += int(metadata[key].value) if key in metadata else 0
            if "published_new_version" in metadata and self.publish is None:
                keys = (
                    "snapshot_id",
                    "published_new_version",
                    "as_of",
                    "is_current",
                    "replaced_current_version",
                    "replaced_current_as_of",
                )
                self.publish = {key: metadata[key].value for key in keys if key in metadata}
        elif kind == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            warns = check.severity.value != "ERROR"  # said, not fatal
            self.checks.setdefault(step, []).append((check.check_name, check.passed, warns))
            if not check.passed:
                why = f": {check.description}" if check.description else ""
                said = f"check {check.check_name} on {check.asset_key.to_user_string()} failed{why}"
                # Only an ERROR check blocks the publish; a WARN check is said, not fatal.
                if check.severity.value == "ERROR":
                    self.failed_checks.append(said)
                else:
                    self.warnings.append(said)
            if check.check_name == "orders_left_out_within_limit":  # says how many, and why
                self.left_out = check.description
        elif kind == "ASSET_OBSERVATION":  # work/version_inputs: a version has these inputs
            metadata = event.event_specific_data.asset_observation.metadata
            if "standing_version" in metadata and self.publish is None:
                self.publish = {
                    "snapshot_id": metadata["standing_version"].value,
                    "published_new_version": False,
                    "as_of": metadata["as_of"].value,
                    "skipped": True,
                }
        elif kind == "STEP_SKIPPED":
            self.skipped.add(step)
            self.line(step, "skipped", 0.0, 0.0)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            seconds = time.monotonic() - self.started.get(step, time.monotonic())
            cpu = time.process_time() - self.cpu_started.get(step, time.process_time())
            status = "ok"
            if kind == "STEP_SUCCESS":
                seconds = event.event_specific_data.duration_ms / 1000
            else:  # a step failing after Ctrl-C or SIGTERM was stopped by it
                status = "stopped" if self.signals else "FAILED"
            self.line(step, status, seconds, cpu)

    def line(self, step: str, status: str, seconds: float, cpu: float) -> None:
        self.finished.append(step)
        counts = [r for r in self.rows.get(step, []) if r is not None]
        rows = f"{sum(counts):,}" if counts else ""
        if counts and len(self.rows.get(step, [])) > 1:
            rows += f" in {len(self.rows[step])} tables"
        checks = self.checks.get(step, [])
        passed = sum(1 for _, ok, _ in checks if ok)
        failed = [name for name, ok, warns in checks if not ok and not warns]
        warned = [name for name, ok, warns in checks if not ok and warns]
        said = f"{passed} passed" if checks else ""
        if failed:
            said += f", {len(failed)} FAILED ({', '.join(failed)})"
        if warned:  # a WARN check that did not hold: its warning line says why
            said += f", {len(warned)} warned ({', '.join(warned)})"
        path = self.paths.get(step, ("", ""))[0]
        line = f"  {step:30} {status:7} {seconds:8.1f} {cpu:7.1f} {rows:>19}  {said:10}  {path}"
        print(line.rstrip(), file=self.out, flush=True)

    def publish_outcome(self) -> str | None:
        """Which version the run published, or that it published nothing (its inputs equal
        those of a version that stays); None when no publish step ran."""
        if self.publish is None:
            return None
        version, as_of = self.publish.get("snapshot_id"), self.publish.get("as_of")
        # What this run took in, on every outcome: a cron log then shows the rows quarantined
        # (a half-written file's last row said nothing anywhere else).
        files, staged, quarantined, erased = self.ingested.values()
        why = " (staging.quarantine says why)" if quarantined else ""
        # Rows of people erased before are read and kept out: neither staged nor quarantined.
        kept_out = (
            f", {erased:,} kept out as erased people's (staging.erased_rows)" if erased else ""
        )
        took = (
            f"; this run took in {files} file(s): {staged:,} {_plural(staged, 'row')} staged, "
            f"{quarantined:,} quarantined{why}{kept_out}"
            if files
            else ""
        )
        if self.publish.get("skipped"):
            return (
                f"computed nothing: version {version} (as of {as_of}) was computed from these "
                "inputs (the files that staged rows, erasures, settings, model code) and stays; "
                f"the steps after work__version_inputs were skipped (--force computes them){took}"
            )
        if not self.publish["published_new_version"]:
            return (
                f"published nothing: the inputs equal those of version {version} "
                f"(as of {as_of}), which stays{took}"
            )
        said = f"published version {version} (as of {as_of})"
        if self.publish.get("is_current") is False:  # a backfill of an earlier month
            said += "; it is not the current version: one with a later as-of stays current"
        replaced = self.publish.get("replaced_current_version")
        if replaced:  # the data moved back (a re-sent export cancelled the newest orders)
            from engagement_box.governance.versions import replaced_words

            said += "; " + replaced_words(replaced, self.publish.get("replaced_current_as_of"))
        return said + took

    def computed_in_full(self) -> list[str]:
        """The steps computed in full with why, when some step carried an earlier as-of forward
        or an earlier state was there to carry (the reason a daily run cost more than a day);
        nothing on a first run, where every step says it had no earlier state ("no ...")."""
        from engagement_box.incremental import DAILY_PATHS

        carried = any(path in DAILY_PATHS for path, _ in self.paths.values())
        earlier = any(
            path != "refit" and not why.startswith("no ") for path, why in self.paths.values()
        )
        if not (carried or earlier):
            return []
        # The steps of one reason on one line (an erasure, the model's choice and its
        # comparison give several steps the same reason). A persona refit is its schedule.
        steps_of: dict[str, list[str]] = {}
        for step, (path, why) in self.paths.items():
            if path not in DAILY_PATHS and path != "refit":
                steps_of.setdefault(why, []).append(step)
        # the reason as the step gives it, without "computed in full" twice on the line
        return [
            f"{', '.join(steps)}: {why.removesuffix(': computed in full')}"
            for why, steps in steps_of.items()
        ]


def _plain_dagster_error(error: Exception) -> str:
    """A Dagster error about partitions or selections, in plain words with what to do."""
    from dagster import DagsterInvalidSubsetError, DagsterUnknownPartitionError

    if isinstance(error, DagsterUnknownPartitionError):
        return (
            f"{error}. Pick an as-of month with --month YYYY-MM between ENGAGEMENT_HISTORY_START "
            "and the current month"
        )
    if isinstance(error, DagsterInvalidSubsetError):
        return (
            f"{error}. The job {JOB_NAME} could not select those assets: check the names "
            "against `dagster asset list -m pipelines.definitions`"
        )
    return str(error)


AUDIENCES_JOB = "audience_files"


def _audiences_behind() -> str | None:
    """Why the audience files are not the current version's, or None (assets/publish.py)."""
    from assets.publish import audiences_behind
    from pipelines.resources import EngagementConfig

    return audiences_behind(settings.working_db_path(), EngagementConfig())


def _publish_if_behind() -> str | None:
    """Build the analysts' file again when it is not what a publish would build now (deleted,
    or the warehouse moved: its views read the old folder), under the run lock the caller
    holds; why it did, or None."""
    from assets.publish import delete_expired_files, published_behind
    from pipelines.resources import warehouse_resource

    warehouse = warehouse_resource()
    why = published_behind(warehouse)
    if why is None:
        delete_expired_files(warehouse)  # a publish would: an expired version's day is over
        return None
    with warehouse.get_connection() as con:
        warehouse.publish_for_readers(con)
    return why


def _standing_version(partition: str) -> int | None:
    """The version a run of `partition` would only publish again (assets/publish.py)."""
    from assets.publish import standing_version
    from pipelines.resources import EngagementConfig, ModelSettings

    return standing_version(
        settings.working_db_path(),  # the pipeline's own database: staged files and versions
        settings.data_dir(),
        partition,
        ModelSettings(),
        EngagementConfig(),
        run_date=shop_today(),
    )


def _holds_no_exports(data_dir: Path) -> bool:
    """True when no source folder of `data_dir` holds an export file the ingest would read (a
    .csv or .parquet file; hidden files do not count): a run there can find nothing new."""
    from engagement_box.staging.contracts import SOURCES, IngestError
    from engagement_box.staging.reading import discover_files

    for source in SOURCES.values():
        try:
            if discover_files(data_dir, source):
                return False
        except IngestError:  # a file of another type: the ingest fails the run on it
            return False
    return True


def _version_as_of(snapshot_id: int) -> date | None:
    """A version's as-of date, read before a run starts (None: cannot tell)."""
    from assets.publish import _peek

    with _peek(settings.working_db_path()) as con:
        if con is not None:
            row = con.execute(load_sql("marts/version_as_of"), {"snapshot_id": snapshot_id})
            found = row.fetchone()
            return found[0] if found else None
    return None


def _month_as_of_said(partition: str, as_of: date | None) -> str:
    """After "nothing to do": the as-of the month resolved to when it is not the month's last
    day (capped at the last completed order). A month run before its orders arrived said only
    "for this run's as-of" (an on-call review): which date, and why, was left to guess."""
    if as_of is None or settings.value("ENGAGEMENT_AS_OF"):  # a pinned as-of is said above
        return ""
    first = date.fromisoformat(partition)
    month = partition[:7]
    if as_of < first:
        return (
            f" No completed order dated in {month} is staged yet, so the month's as-of is the "
            f"last completed order's day, {as_of}: a run after {month}'s orders are exported "
            "computes it."
        )
    from pipelines.partitions import month_end

    if as_of < month_end(partition):
        return (
            f" The month's as-of is {as_of}: the last completed order staged, or the run's day "
            "if that is earlier."
        )
    return ""


def _nothing_to_do(standing: int, partition: str) -> str:
    """Why `engagement-box run` starts no run: nothing is new and version `standing` stands
    (with its as-of, and why it is not the month's end when it is not). An export folder that
    holds no file at all is said as such (a wrong ENGAGEMENT_DATA_DIR read as "every export is
    staged as it is")."""
    as_of = _version_as_of(standing)
    version = f"version {standing}" + (f" (as of {as_of})" if as_of else "")
    month = _month_as_of_said(partition, as_of)
    data_dir = settings.data_dir()
    if _holds_no_exports(data_dir):
        from engagement_box.staging.contracts import SOURCES

        return (
            f"nothing to do: {data_dir} holds no .csv or .parquet export under any source folder "
            f"({', '.join(SOURCES)}), so nothing is new; {version}, computed from the "
            "exports staged before with the same settings and model code, stands for this "
            f"run's as-of.{month} No run started; check ENGAGEMENT_DATA_DIR if exports were "
            "expected there (--force runs the whole graph anyway)."
        )
    return (
        f"nothing to do: every export is staged as it is, and {version} was "
        "computed from the same inputs (settings, model code) for this run's as-of, so "
        f"it stands.{month}{_files_gone_said(data_dir)} No run started; --force runs the whole "
        "graph anyway."
    )


# The steps that can change which version is current: the publish (work/version_inputs finds a
# standing version and rebuilds the analysts' file, but leaves marts.current_version as it is).
_MOVES_CURRENT = ("published_marts",)


def current_version() -> tuple[bool, int | None]:
    """(known, the current version's id or None: none published) of the working database, read
    before a run starts, while this process holds no connection to it: after a stop the
    interrupted step's may still be open, and a second open in the same process hung or was
    refused (a re-review)."""
    from assets.publish import _peek
    from engagement_box.governance import versions

    working = settings.working_db_path()
    if not working.exists():
        return True, None
    with _peek(working) as con:
        if con is not None:
            return True, versions.current_version(con)
    return False, None


def _current_version_said(steps: "StepLines") -> str:
    """After a stopped run that did not say it published: which version is current, the last
    one published whole (it said only "marts.snapshots says which", a review). Certain when no
    step that can change it started; else said with the version before the run."""
    known, before = steps.version_before
    if not known:
        return "the current version is the last one published whole (marts.snapshots says which)"
    if not any(step in steps.started for step in _MOVES_CURRENT):
        if before is None:
            return "no version is published yet"
        return f"the current version is still version {before}, the last one published whole"
    return "the current version is the last one published whole (marts.snapshots says which; " + (
        "none was published before this run)"
        if before is None
        else f"version {before} before this run)"
    )


def _files_gone_said(data_dir: Path, shown: int = 3) -> str:
    """The files taken in that the export folder no longer holds, said after "nothing to do":
    a user who deleted an export to withdraw its rows was told only that nothing was new."""
    from assets.publish import _peek
    from engagement_box.staging.ingestion import files_not_in_folder

    gone: list[str] = []
    with _peek(settings.working_db_path()) as con:
        if con is not None:
            gone = files_not_in_folder(con, data_dir)
    if not gone:
        return ""
    named = ", ".join(gone[:shown]) + (
        f" and {len(gone) - shown:,} more" if len(gone) > shown else ""
    )
    return (
        f" {len(gone):,} file(s) taken in are no longer in {data_dir} ({named}): their rows "
        "stay staged; to withdraw rows, send the file again without them."
    )


def _working_database_problem(salt: bool = False) -> str | None:
    """What is wrong with the working database when it cannot be opened (not a DuckDB file,
    damaged, not readable), else None: asked before any step, since every step would fail on
    it, each with the same message. Cheap: one open and close, nothing read. A database not
    there yet (the first run) is fine, and is not created here (a warehouse from before the
    working database is copied to it when the run starts: that published file is opened
    read-only instead). A lock another process holds is not asked about here: the steps wait
    for it, as they always do.

    With `salt` (a run: its ingest hashes with it; retention does not), also
    ENGAGEMENT_ERASURE_SALT when it did not make the hashes of the erasures logged there
    (`erasure.check_salt`): every staging step would refuse it, so the bad setting is said
    before any step, as `erase` says it."""
    import duckdb

    from engagement_box.governance import erasure
    from pipelines.resources import is_lock_conflict, open_error

    path, setting, read_only = settings.working_db_path(), "ENGAGEMENT_WORKING_DB", False
    if not path.exists():
        # The run starts by adopting the published file (a warehouse from before the working
        # database) when there is one: a damaged one would stop every step the same way.
        path, setting, read_only = settings.warehouse_path(), "ENGAGEMENT_WAREHOUSE", True
        if not path.exists():
            return None
    try:
        con = duckdb.connect(str(path), read_only=read_only)  # as the steps open it
    except duckdb.Error as error:
        return None if is_lock_conflict(error) else str(open_error(path, error, setting))
    try:
        if salt and not read_only:  # (a warehouse to adopt logs no erasure of its own here)
            erasure.check_salt(con)
    except erasure.ErasureError as error:  # the salt, or a register that cannot be read
        return str(error)
    finally:
        con.close()
    return None


def _waiting(what: str) -> Callable[[str], None]:
    """What a run or an erasure says, once, when it has to wait for the run lock of `what`."""

    def say(holder: str) -> None:
        print(f"waiting for the run that holds {what} to finish ({holder})", flush=True)

    return say


def run(args: argparse.Namespace) -> int:
    # Before the code location loads: it reads ENGAGEMENT_HISTORY_START.
    problem = settings.first_problem()
    if problem:
        return _nothing_ran(problem)
    if settings.value("ENGAGEMENT_ENGINE") == "spark":  # its graph has no monthly job
        return _nothing_ran(_spark_run_advice())
    from pipelines.resources import window_problem

    problem = window_problem(None, shop_today())  # no month could run
    if problem:
        return _nothing_ran(problem)
    home, problem = _instance_home_or_problem()
    if problem:
        return _nothing_ran(problem)
    from pipelines.definitions import defs
    from pipelines.partitions import MonthOutOfRange, current_partition_key, partition_key_for_month

    job = defs.resolve_job_def(JOB_NAME)
    try:
        partition = partition_key_for_month(args.month) if args.month else current_partition_key()
    except MonthOutOfRange as error:
        print(f"engagement-box run: {error}", file=sys.stderr)
        return 2
    print(f"exports:   {settings.data_dir()}")
    print(f"warehouse: {settings.warehouse_path()}")
    print(f"working:   {settings.working_db_path()}")
    print(f"audiences: {settings.audience_dir()}")
    print(f"dagster:   {home}")
    print(f"as-of month: {partition[:7]} (partition key {partition})")
    pinned = settings.value("ENGAGEMENT_AS_OF")
    if pinned:  # the month still keys the run; the date is the setting's
        print(f"as-of date:  {pinned}, pinned by ENGAGEMENT_AS_OF for every month")
    problem = window_problem(partition, shop_today()) or _exports_problem()
    if not problem:
        problem = _foreign_working_problem()
        waiting = _register_waiting() if problem else None
        if waiting:  # said now, not at the next refusal once this one is dealt with (a review)
            problem = f"{problem}. Besides, {waiting}"
    if problem:
        return _nothing_ran(problem)

    # The run lock is held from the check for new inputs to the end of the run: a run started
    # together with another one waits for it, then finds what it published (nothing to do)
    # instead of computing it again. The run's Warehouse resource re-enters it.
    with ExitStack() as held:
        problem = _hold_run_lock(held, salt=True)  # `retain` takes it without: it hashes nothing
        if problem:
            return _nothing_ran(problem)
        return _run_locked(args, job, partition, home)


def _foreign_working_problem() -> str | None:
    """The published file is another working database's, which still exists (a stray
    ENGAGEMENT_WORKING_DB): refused before any step, as the publish would refuse it."""
    from engagement_box.governance import readers

    layout = readers.Layout(published=settings.warehouse_path(), working=settings.working_db_path())
    return readers.foreign_working_problem_before_run(layout)


def _spark_run_advice() -> str:
    """How to run the Spark graph (`settings.spark_job_command`), with DAGSTER_HOME made
    absolute and created as `engagement-box` makes it."""
    _instance_home()
    here = ""
    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        here = " from this folder (Dagster reads its .env)"
        given = dotenv_values(env_file).get("DAGSTER_HOME")
        if given and not Path(given).expanduser().is_absolute():
            # Dagster's commands take .env's value over the command line's, and refuse a
            # relative one ("must be an absolute path"; a re-review)
            here += (
                f", after setting DAGSTER_HOME={Path(given).expanduser().absolute()} in "
                f"{env_file} (Dagster refuses its relative {given})"
            )
    return (
        "engagement-box run runs the DuckDB engine, and ENGAGEMENT_ENGINE is spark. Run the "
        f"Spark graph with `{settings.spark_job_command()}`{here} (or from the UI; README "
        '"Running on Apache Spark"), or unset ENGAGEMENT_ENGINE to run on DuckDB'
    )


SPARK_RETAIN = (
    "engagement-box retain applies the DuckDB warehouse's retention policy, and ENGAGEMENT_ENGINE "
    "is spark: every Spark run applies the policy to the lake's versions as it ends "
    "(spark/published_marts, or spark/version_inputs when nothing is new; docs/SPARK.md). "
    "Unset ENGAGEMENT_ENGINE to retain the DuckDB "
    "warehouse's versions"
)


def _nothing_ran(problem: str) -> int:
    """Say why nothing ran, on stderr, and give its exit code (2)."""
    print(f"FAILED before any step: {problem}", file=sys.stderr)
    return 2


def _hold_run_lock(held: ExitStack, salt: bool = False) -> str | None:
    """Take the warehouse's run lock into `held` (waiting for a run that holds it), then check
    the working database under it (and with `salt`, the erasure salt:
    `_working_database_problem`), when no run of ours has it open. Why nothing can run (the
    lock cannot be created, another run held it too long, the database is damaged, the salt
    is not the erasures'), else None."""
    from dagster import Failure

    from pipelines.errors import ConfigurationError
    from pipelines.resources import warehouse_resource
    from pipelines.runs import run_lock

    try:
        held.enter_context(run_lock(warehouse_resource().path, on_wait=_waiting("the warehouse")))
    except (Failure, ConfigurationError) as error:
        return str(error)
    return _working_database_problem(salt)


def _compaction_left() -> None:
    """Remove the copy a stopped `erase --compact` left beside the working database, saying so:
    it stayed, gigabytes at scale, while every later run said nothing of a compaction that
    never happened. Under the run lock, which a compaction holds too."""
    working = settings.working_db_path()
    copy = working.with_name(working.name + ".compacting")
    if not copy.exists():
        return
    for path in (copy, copy.with_name(copy.name + ".wal")):
        path.unlink(missing_ok=True)
    print(
        f"removed {copy}: an `engagement-box erase --compact` was stopped before it finished, so "
        "the working database was not compacted (freed blocks of erased rows may remain in it); "
        "compact it with the next erase's --compact"
    )


def _run_locked(args: argparse.Namespace, job, partition: str, home: str) -> int:
    import duckdb

    from pipelines.runs import process_tags

    _compaction_left()

    if not args.force:
        standing = _standing_version(partition)
        if standing is not None:
            behind = _audiences_behind()
            if behind is None:
                print(_nothing_to_do(standing, partition))
            else:  # nothing to compute, but the files marketing reads are not the current version's
                print(
                    f"nothing new to compute: version {standing} stands for this run's as-of, "
                    f"but {behind}; writing them from the current version ({AUDIENCES_JOB})"
                )
            # A run killed while publishing leaves both behind: the analysts' file first.
            try:
                rebuilt = _publish_if_behind()
            except (OSError, duckdb.Error) as error:
                print(
                    f"engagement-box run: FAILED, the published file could not be built again "
                    f"({first_line(error)}): make the warehouse folder "
                    f"{settings.warehouse_path().parent} writable (or free space there), then "
                    "run again",
                    file=sys.stderr,
                )
                return 2
            if rebuilt:
                print(f"published file rebuilt: {rebuilt}")
            _report_standing_partitions(home, job, partition, standing)
            for run_id, published in _fail_dead_runs(home):
                print(
                    f"run {run_id} was marked failed: its process ended without finishing it"
                    + (
                        f", after it published version {published[0]} (as of {published[1]}), "
                        "which stands whole"
                        if published
                        else ""
                    )
                )
            stopped = _stopped_erasures()
            if stopped:
                print(
                    f"warning: {stopped} erasure(s) stopped after their commit: the Spark lake's "
                    "versions may still hold their person; run the same `engagement-box erase` "
                    "again to finish"
                )
            if behind is None:
                return 0
            lines = StepLines()
            executed = _execute(home, AUDIENCES_JOB, process_tags(), lines)
            return 2 if executed is None else _finish(executed, lines)
    steps = StepLines()
    tags = {**job.get_tags_for_partition_key(partition, None), **process_tags()}
    if args.force:  # work/version_inputs then lets every step run
        from assets.publish import FORCE_TAG

        tags[FORCE_TAG] = "true"
    executed = _execute(home, JOB_NAME, tags, steps)
    if executed is None:
        return 2
    if steps.left_out:
        print(f"orders left out of the value models: {steps.left_out}")
    for line in steps.computed_in_full():
        print(f"computed in full: {line}")
    for moved in steps.moved:
        print(moved)
    if steps.restaged:
        from engagement_box.staging.messages import rules_message

        print(rules_message(steps.restaged))
    for warning in steps.warnings:
        print(f"warning: {warning}")
    published = steps.publish_outcome()
    if published:
        print(published)
    code = _finish(executed, steps)
    if code == 1:  # failed (not stopped by a signal): an opt-out taken in must not wait for it
        _write_audiences_with_consent(home)
    return code


def _write_audiences_with_consent(home: str) -> None:
    """After a failed run: when the consent changed since the audience files were written (a
    withdrawal the run took in before a blocking check stopped it), write them alone from the
    current version with the consent of now (the job audience_files), saying so. The run's
    exit code stays its own."""
    from assets.publish import audience_consent_behind
    from pipelines.resources import EngagementConfig
    from pipelines.runs import process_tags

    behind = audience_consent_behind(settings.working_db_path(), EngagementConfig())
    if behind is None:
        return
    print(
        f"the run failed, but {behind}: writing them from the current version with the "
        f"consent of now ({AUDIENCES_JOB})"
    )
    lines = StepLines()
    executed = _execute(home, AUDIENCES_JOB, process_tags(), lines)
    if executed is None or not executed.succeeded:
        print(
            f"also FAILED writing the audience files ({AUDIENCES_JOB}): they may hold people "
            "who withdrew their consent; run `engagement-box run` again",
            file=sys.stderr,
        )
    else:
        print("audience files written with the consent of now")


def _stopped_erasures() -> int:
    """Erasures stopped after their commit that a run cannot finish (a Spark lake holds
    versions, which only `erase` rewrites; without one, the audience job just run did)."""
    from assets.publish import _peek, lake_holds_versions
    from engagement_box.governance import readers

    if not lake_holds_versions():
        return 0
    with _peek(settings.working_db_path()) as con:
        return len(readers.unfinished_erasures(con)) if con is not None else 0
    return 0


def _fail_dead_runs(home: str) -> list[tuple[str, tuple | None]]:
    """With the run lock held and no run to start: the runs still marked started whose process
    is gone were killed. A run's resource says so when it starts (`fail_dead_runs`), but a
    command with nothing to do starts none, and the schedule none either: the UI showed a
    killed run as running until the next real run. Returns each one's id and the (version,
    as-of) it published before it stopped, or None."""
    from pipelines.runs import fail_dead_runs

    published: dict = {}
    with open_instance(home) as instance:
        return [(run_id, published[run_id]) for run_id in fail_dead_runs(instance, None, published)]


def _report_standing_partitions(home: str, job, partition: str, standing: int) -> None:
    """Tell Dagster that the month's partitions it has no materialization of hold version
    `standing`'s rows, as the skip of `work/version_inputs` says in a run. A run killed in its
    publish, after the commit, left its month's marts partitions missing; runs with nothing to
    do start none, so the UI showed them missing for good."""
    from assets.publish import (
        _peek,
        computed_metadata,
        partitioned_from_version_inputs,
        standing_materialization,
        version_rows,
    )

    with open_instance(home) as instance:
        row, rows, computed = None, {}, {}
        with _peek(settings.working_db_path()) as con:
            if con is not None:
                row = con.execute(
                    load_sql("marts/version_as_of_and_inputs"), {"id": standing}
                ).fetchone()
                rows = version_rows(con, standing)
                computed = computed_metadata(instance, con, standing)
        if row is None:
            return
        as_of, fingerprint = row
        for key in partitioned_from_version_inputs(job.asset_layer.asset_graph):
            if partition in instance.get_materialized_partitions(key):
                continue
            instance.report_runless_asset_event(
                standing_materialization(
                    key, partition, standing, as_of, fingerprint or "", rows, computed.get(key)
                )
            )


@dataclass(frozen=True)
class Executed:
    """A run `_execute` created and executed: its id, its events, whether it succeeded, and
    the signal that stopped it (None when none came)."""

    run_id: str
    events: list
    succeeded: bool
    signal: int | None


def _execute(home: str, job_name: str, tags: dict[str, str], steps: StepLines) -> Executed | None:
    """Create a run of `job_name` from the code location and execute it in this process, one
    console line per step (`steps`); Dagster's full log goes to DAGSTER_HOME/run_logs/<run id>.log.
    None, said on stderr, when the run could not be created (nothing ran: exit 2)."""
    from dagster import DagsterError
    from dagster._core.execution.api import execute_run_iterator
    from dagster._utils.hosted_user_process import recon_job_from_origin

    from pipelines.loggers import RUN_LOG_FILE, run_log_path

    events = []
    with open_instance(home) as instance:
        try:
            with code_location(instance) as location:
                dagster_run = create_run(
                    instance,
                    location,
                    tags=tags,
                    run_config={"loggers": {RUN_LOG_FILE: {}}},
                    job_name=job_name,
                )
        except DagsterError as error:
            print(f"FAILED before any step: {_plain_dagster_error(error)}", file=sys.stderr)
            return None
        print(f"run:       {dagster_run.run_id}")
        print(f"full log:  {run_log_path(dagster_run.run_id)}", flush=True)
        print(steps.HEADER, flush=True)
        steps.version_before = current_version()  # under the run lock: no other run publishes

        def fail_run(signum: int) -> None:
            run = instance.get_run_by_id(dagster_run.run_id)
            if run is not None and not run.is_finished:
                instance.report_run_failed(
                    run, message=f"stopped by {signal.Signals(signum).name} before it finished"
                )

        plan_log = logging.getLogger("dagster._core.execution.plan.active")
        plan_log.addFilter(steps)
        try:
            with _stop_on_signal(fail_run) as received:
                steps.signals = received  # the watching thread appends the signal it gets
                recon_job = recon_job_from_origin(dagster_run.job_code_origin)
                for event in execute_run_iterator(recon_job, dagster_run, instance):
                    events.append(event)
                    steps(event)
        finally:
            plan_log.removeFilter(steps)
        finished = instance.get_run_by_id(dagster_run.run_id)
    not_run = [key for key in dagster_run.step_keys_to_execute or [] if key not in steps.finished]
    if not_run:
        print(f"  {len(not_run)} steps did not run: {', '.join(not_run)}")
    return Executed(
        run_id=dagster_run.run_id,
        events=events,
        succeeded=finished is not None and finished.status.value == "SUCCESS",
        signal=received[0] if received else None,
    )


def _finish(executed: Executed, steps: StepLines) -> int:
    """The run's last line and its exit code: stopped by a signal (128 + its number), failed
    (1: the failing step's own cause, or the blocking checks that failed), or succeeded (0)."""
    from pipelines.loggers import run_log_path

    log = run_log_path(executed.run_id)
    if executed.signal is not None:
        name = signal.Signals(executed.signal).name
        published = steps.publish or {}
        if published.get("published_new_version") and not published.get("skipped"):
            # Stopped after its publish committed (in the audiences, say): the version stands.
            said = (
                f"after it published version {published.get('snapshot_id')}, which stands; the "
                "audience files may be a version behind until the next run writes them"
            )
        else:
            said = _current_version_said(steps)
        print(f"FAILED stopped by {name}; {said} (full log: {log})", file=sys.stderr)
        return 128 + executed.signal
    if not executed.succeeded or steps.failed_checks:
        # A blocking check's own description says why; Dagster's error only names the check.
        causes = root_causes(executed.events)
        if steps.failed_checks:  # and every step that failed besides, below
            first, others = f"{'; '.join(steps.failed_checks)}; nothing was published", causes
        else:
            first, others = (causes[0] if causes else None), causes[1:]
        print(
            f"FAILED {first or 'the run failed; see the full log'} (full log: {log})",
            file=sys.stderr,
        )
        said_before = {(first or "").partition(": ")[2]}
        for other in others:  # every step that failed, so one run shows every file to fix
            step, _, why = other.partition(": ")
            if why in said_before:  # (six staging steps refusing one register said it six times)
                print(f"also FAILED {step}, for the same reason", file=sys.stderr)
                continue
            said_before.add(why)
            print(f"also FAILED {other}", file=sys.stderr)
        if any(
            "No space left on device" in cause and not cause.startswith("maintenance__")
            for cause in causes
        ):
            # DuckDB's words name the file and nothing to do (a review of a full disk)
            print(
                "the disk is full: free space where the message says the file is, then run the "
                f"month again (or re-execute from failure); {_current_version_said(steps)}",
                file=sys.stderr,
            )
        return 1
    print(f"run {executed.run_id} succeeded")
    return 0


RETENTION_JOB = "version_retention"
RETENTION_ASSET = "maintenance/version_retention"


def retention_outcome(events) -> list[str]:
    """What retention did, in plain words, from the metadata of its materialization
    (assets/versions_maintenance.py): the versions it expired now, how many stay under which
    policy, the current version, and the work rows it trimmed. Nothing when it did not
    materialize."""
    for event in events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == RETENTION_ASSET:
            meta = {key: value.value for key, value in materialization.metadata.items()}
            break
    else:
        return []

    def version(snapshot_id: object, as_of: object) -> str:
        return f"{snapshot_id} (as of {as_of})" if as_of else str(snapshot_id)

    expired_as_of = meta.get("expired_as_of") or {}
    expired = [version(v, expired_as_of.get(str(v))) for v in meta.get("expired_now") or []]
    kept = int(meta.get("versions_retained", 0))
    lines = [
        f"expired now: {_plural(len(expired), 'version')} {', '.join(expired)}"
        if expired
        else "expired now: none (each version is within the policy, or is the current one)",
        f"versions kept: {kept} (policy: keep the newest ENGAGEMENT_KEEP_VERSIONS="
        f"{meta.get('keep_versions')}, expire any older than ENGAGEMENT_KEEP_DAYS="
        f"{meta.get('keep_days')} days; the current version always stays)",
    ]
    current = meta.get("current_version")
    lines.append(
        f"current version: {version(current, meta.get('current_as_of'))}"
        if current not in (None, "")
        else "current version: none (nothing was published yet)"
    )
    deleted = int(meta.get("history_files_deleted") or 0)
    if deleted:
        lines.append(
            f"version files deleted: {deleted:,} (of versions no longer retained: expired "
            "ones once sessions opened before they expired had a day to finish, and any the "
            "working database has no record of, such as a restored backup's abandoned ones)"
        )
    trimmed = meta.get("work_as_ofs_trimmed") or []
    if trimmed:
        rows = int(meta.get("work_rows_deleted", 0))
        lines.append(
            f"work rows deleted: {rows:,} of {_plural(len(trimmed), 'as-of')} "
            f"{', '.join(trimmed)}: no retained version reads them (a version keeps its own "
            "copy when its as-of is computed again) and no run carries them forward"
        )
    return lines


def retain(args: argparse.Namespace) -> int:
    """Apply the retention policy now: the `version_retention` job (the one its daily schedule
    runs), under the run lock and recorded in the Dagster instance as `run` does."""
    problem = settings.first_problem()
    if problem:
        return _nothing_ran(problem)
    if settings.value("ENGAGEMENT_ENGINE") == "spark":  # its graph has no retention job
        return _nothing_ran(SPARK_RETAIN)
    home, problem = _instance_home_or_problem()
    if problem:
        return _nothing_ran(problem)
    from pipelines.runs import process_tags

    warehouse = settings.warehouse_path()
    print(f"warehouse: {warehouse}")
    print(f"dagster:   {home}")
    if not settings.working_db_path().exists() and not warehouse.exists():
        print(
            f"FAILED before any step: no warehouse at {warehouse} (working database "
            f"{settings.working_db_path()}): no version to retain. Check ENGAGEMENT_WAREHOUSE "
            "(and ENGAGEMENT_WORKING_DB); `engagement-box run` publishes the first version",
            file=sys.stderr,
        )
        return 2
    with ExitStack() as held:
        # before any step, as `run` refuses it (it refused inside its step: a review); under
        # the lock, which a run finishing meanwhile holds
        problem = _hold_run_lock(held) or _foreign_working_problem()
        if problem:
            return _nothing_ran(problem)
        waiting = _register_waiting()
        steps = StepLines()
        executed = _execute(home, RETENTION_JOB, process_tags(), steps)
        if executed is None:
            return 2
    if executed.succeeded and executed.signal is None:
        for line in retention_outcome(executed.events):
            print(line)
    if waiting:  # retention only deletes, so it ran; the next run still waits (a review)
        print(f"warning: the next run will refuse: {waiting}", file=sys.stderr)
    return _finish(executed, steps)


def _register_waiting() -> str | None:
    """`erasure.register_problem` of the working database (a backup restored beside today's
    register), asked read-only under the run lock; None when there is no working database or
    it cannot be opened (the command's own steps say why then)."""
    import duckdb

    from engagement_box.governance import erasure

    working = settings.working_db_path()
    if not working.exists():
        return None
    try:
        con = duckdb.connect(str(working), read_only=True)
    except duckdb.Error:
        return None
    try:
        return erasure.register_problem(con)
    finally:
        con.close()


SPARK_RETIRE = (
    "engagement-box retire retires a version of the DuckDB warehouse, and ENGAGEMENT_ENGINE is "
    "spark: the Spark lake's versions cannot be retired one by one (its retention expires them "
    "by age and count as each Spark run ends, docs/SPARK.md). Unset ENGAGEMENT_ENGINE to retire "
    "a version of the DuckDB warehouse"
)


def retire(args: argparse.Namespace) -> int:
    """Retire one published version by hand (a version computed from a half-copied export):
    `versions.retire_version` under the run lock `run` and `retain` take, then the analysts'
    file without it, its Parquet files deleted, and when it was the current version (with
    --current), the audience files written from the new current one (the job audience_files)."""
    import duckdb

    from engagement_box.governance import readers, versions
    from pipelines.resources import WarehouseError, adopt_single_file, warehouse_resource

    problem = settings.first_problem()
    if problem:
        return _nothing_ran(problem)
    if settings.value("ENGAGEMENT_ENGINE") == "spark":
        return _not_retired(SPARK_RETIRE)
    home, problem = _instance_home_or_problem()  # the audience files of a new current version
    if problem:
        return _not_retired(problem)
    warehouse = warehouse_resource()
    if not warehouse.layout.working.exists() and not warehouse.layout.published.exists():
        return _not_retired(
            f"no warehouse at {warehouse.layout.published} (working database "
            f"{warehouse.layout.working}): no version to retire. Check ENGAGEMENT_WAREHOUSE "
            "(and ENGAGEMENT_WORKING_DB)"
        )
    with ExitStack() as held:
        problem = _hold_run_lock(held) or _foreign_working_problem()
        if problem:
            return _not_retired(problem)
        waiting = _register_waiting()
        if waiting and args.current:
            # the new current version's audience files could not be written (the audience
            # step refuses): it retired, then failed, leaving the retired version's files
            return _not_retired(f"{waiting}; then retire the current version")
        try:
            adopt_single_file(warehouse.layout)  # (an older single file: adopted, as a run does)
            with warehouse.get_connection() as con:
                done = versions.retire_version(
                    con, args.version, now=utc_now(), reason=args.reason,
                    current_too=args.current,
                )  # fmt: skip
                published = warehouse.publish_for_readers(con)
        except versions.RetireRefused as refused:
            return _not_retired(str(refused))
        except (WarehouseError, duckdb.Error, OSError) as error:
            print(
                f"engagement-box retire: FAILED ({first_line(error)}); the retirement is one "
                "transaction: marts.snapshots says whether version "
                f"{args.version} was retired (retired_at). Run the same command again once the "
                "cause is fixed",
                file=sys.stderr,
            )
            return 1
        # (the rebuild deleted them already when the clock is a grace past `now`)
        name = f"snapshot_{done.snapshot_id}.parquet"
        files = sum(Path(p).name == name for p in published.files_deleted)
        files += len(readers.delete_version_files(warehouse.layout, done.snapshot_id))
        for line in retirement_said(done, args.reason, files, published.built):
            print(line)
        if waiting:
            print(f"warning: the next run will refuse: {waiting}", file=sys.stderr)
        if not done.was_current:
            return 0
        print("writing the audience files from the new current version (audience_files):")
        from pipelines.runs import process_tags

        steps = StepLines()
        executed = _execute(home, AUDIENCES_JOB, process_tags(), steps)
        return 2 if executed is None else _finish(executed, steps)


def _not_retired(problem: str) -> int:
    """Say why no version was retired, on stderr, and give its exit code (2)."""
    print(f"engagement-box retire: FAILED, nothing was retired: {problem}", file=sys.stderr)
    return 2


def retirement_said(done, reason: str | None, files: int, rebuilt: bool) -> list[str]:
    """What `retire` did, in words (`done`: a `versions.Retirement`): the version and its
    as-of, the history rows and files gone, the migration pairs removed and computed, the work
    rows trimmed, and which version is current now."""

    def pairs(found: list[tuple[int, int]]) -> str:
        return ", ".join(f"{a} -> {b}" for a, b in found) or "none"

    lines = [
        f"retired version {done.snapshot_id} (as of {done.as_of})"
        + (f": {reason}" if reason else ""),
        f"history rows deleted: {done.rows_deleted:,}; version files deleted: {files}"
        + ("; analysts' file rebuilt without it" if rebuilt else ""),
        f"migration pairs removed: {pairs(done.pairs_removed)}; computed: "
        f"{pairs(done.pairs_added)} ({done.migration_rows:,} rows)",
    ]
    if done.as_ofs_trimmed:
        lines.append(
            f"work rows deleted: {done.work_rows_deleted:,} of as-of "
            f"{', '.join(str(d) for d in done.as_ofs_trimmed)} (no retained version reads them)"
        )
    if done.was_current:
        lines.append(
            f"current version: {done.current} (as of {done.current_as_of}), in place of the "
            f"retired one. The next run publishes from the exports staged now: if the bad "
            "export is still staged, send the corrected file first (it is taken in again)"
        )
    else:
        lines.append(f"current version: {done.current} (as of {done.current_as_of}), unchanged")
    lines.append(
        f"marts.snapshots keeps version {done.snapshot_id}'s row (retired_at, retired_reason)"
    )
    return lines


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def _empty_erasure_key(args: argparse.Namespace) -> str | None:
    """What is wrong with the erase command's --customer-id or --email, if it is empty (or only
    whitespace, which the erasure trims as the ingest does), else None."""
    from engagement_box.governance.erasure import normalize

    for option, kind, value in (
        ("--customer-id", "customer_id", args.customer_id),
        ("--email", "email", args.email),
        ("--handle", "handle", args.handle),
    ):
        if value is not None and normalize(value, kind) is None:
            said = kind.replace("_", " ")
            return f"{option} is empty: give the {said} of the person to erase"
    return None


def _logged_erasures(con) -> set[str]:
    """The erasure requests the working database has logged (none before any erase)."""
    from engagement_box.sql import table_exists

    if not table_exists(con, "staging", "erasure_log"):
        return set()
    return {r for (r,) in con.execute(load_sql("staging/erasure_request_ids")).fetchall()}


def _erase_stopped(
    working: Path, logged: set[str] | None, stop: BaseException, from_register: bool = False
) -> int:
    """What an erase stopped by Ctrl-C did, said from the working database: committed or not
    (exit 130 either way, as a stopped run). `from_register`: one erasure after another, so
    some may stand and others not have begun."""
    import duckdb

    if logged is None:  # stopped while waiting for the run lock, before the erasure began
        print(
            f"engagement-box erase: stopped ({type(stop).__name__}) before the erasure began: "
            "nothing was erased",
            file=sys.stderr,
        )
        return 130
    committed = None
    try:
        con = duckdb.connect(str(working), read_only=True)
        try:
            committed = bool(_logged_erasures(con) - logged)
        finally:
            con.close()
    except duckdb.Error:
        committed = None
    if committed and from_register:
        said = (
            "after some of the register's erasures were committed, perhaps not all: run "
            "`engagement-box erase --from-register` again to finish them"
        )
    elif committed:
        said = (
            "after the erasure was committed: the person is gone from the working database, "
            "but the versions' files, the published file, the audience files or the Spark "
            "lake's versions may still hold them; run the same command again to finish it"
        )
    elif committed is None:
        said = "and whether the erasure was committed could not be read: run the same command again"
    else:
        said = "before the erasure was committed: nothing was erased"
    print(f"engagement-box erase: stopped ({type(stop).__name__}) {said}", file=sys.stderr)
    return 130


def erase(args: argparse.Namespace) -> int:
    """Erase one person from every table, every retained version and the audience files."""
    import duckdb
    from dagster import Failure

    from engagement_box.governance import erasure
    from pipelines.errors import ConfigurationError
    from pipelines.resources import (
        EngagementConfig,
        LakeResource,
        WarehouseError,
        adopt_single_file,
        warehouse_resource,
    )
    from pipelines.runs import run_lock

    problem = settings.path_problem()  # a path DuckDB reads as a pattern: another folder's files
    if problem:
        print(f"engagement-box erase: FAILED, nothing was erased: {problem}", file=sys.stderr)
        return 2
    warehouse = warehouse_resource()
    lake = LakeResource()
    logged: set[str] | None = None  # the requests logged before this one, once read
    if not any(
        p.exists() for p in (warehouse.layout.working, warehouse.layout.published, lake.path)
    ):
        # A mistyped path would otherwise create an empty warehouse, log the request there and
        # say it was taken, while the real one keeps the person.
        print(
            f"engagement-box erase: FAILED, nothing was erased: no warehouse at "
            f"{warehouse.layout.published} (working database {warehouse.layout.working}) and no "
            f"Spark lake at {lake.path}. Check ENGAGEMENT_WAREHOUSE (and ENGAGEMENT_WORKING_DB, "
            "ENGAGEMENT_LAKE_DIR); a first `engagement-box run` creates the warehouse (the "
            "Spark engine's first run of the job spark_pipeline, its lake)",
            file=sys.stderr,
        )
        return 2
    from engagement_box.governance import readers

    foreign = readers.foreign_working_problem_before_run(warehouse.layout)
    if foreign:  # the erasure would be logged in a stray database, the person left where they are
        print(f"engagement-box erase: FAILED, nothing was erased: {foreign}", file=sys.stderr)
        return 2

    # A Spark-only setup has no working database until an erase logs its first request there:
    # a refused one leaves none behind (an empty file at the working database's path). Judged
    # once the run locks are held: a first run holding them may create it meanwhile, and an
    # erase that gave up waiting deleted that run's database (a re-review).
    created = False

    def refused(error: BaseException, code: int) -> int:
        if created:
            for leftover in (warehouse.layout.working, Path(f"{warehouse.layout.working}.wal")):
                leftover.unlink(missing_ok=True)
        # (--from-register erases one key after another: those before the error stand)
        done = (
            "the keys erased before it stand; run it again"
            if args.from_register
            else ("nothing was erased")
        )
        print(f"engagement-box erase: FAILED, {done}: {error}", file=sys.stderr)
        return code

    # Under the run locks of the warehouse and of the Spark lake (the one each engine's run
    # holds from its first step to its last): a run publishing at the same time could otherwise
    # put back a file it built before the erasure, or publish a version the erasure never saw.
    try:
        with ExitStack() as held:
            held.enter_context(
                run_lock(
                    warehouse.path,
                    warehouse.run_lock_timeout_seconds,
                    on_wait=_waiting("the warehouse"),
                )
            )
            # (where no Spark run ever started, there is neither a lake nor its lock file)
            if lake.path.exists() or Path(f"{lake.path}.run.lock").exists():
                held.enter_context(
                    run_lock(
                        lake.path,
                        lake.run_lock_timeout_seconds,
                        on_wait=_waiting("the Spark lake"),
                        what=("the Spark lake's folder", "ENGAGEMENT_LAKE_DIR"),
                    )
                )
            adopt_single_file(warehouse.layout)  # (an older single file: adopted, not created)
            created = not warehouse.layout.working.exists()
            with warehouse.get_connection() as con:
                logged = _logged_erasures(con)
                if args.from_register:
                    again = _erase_from_register(con, warehouse.layout, lake.path)
                else:
                    report = erasure.erase(
                        con,
                        customer_id=args.customer_id,
                        email=args.email,
                        handle=args.handle,
                        audience_dir=EngagementConfig().audience_path,
                        published=warehouse.layout,
                        lake=lake.path,
                        shared=args.shared,
                    )
    except (KeyboardInterrupt, duckdb.InterruptException) as stop:
        # Ctrl-C: main's "stopped before the run started; nothing was written" was said after
        # the erasure had committed (DuckDB's interrupt gave a traceback and exit 1 instead).
        return _erase_stopped(warehouse.layout.working, logged, stop, args.from_register)
    except (erasure.SaltMismatch, erasure.SharedKey) as error:  # a bad setting or request
        return refused(error, 2)
    except ConfigurationError as error:  # the warehouse folder or a setting: nothing ran
        return refused(error, 2)
    except WarehouseError as error:  # a damaged working database: a traceback (a re-review)
        return refused(
            f"{error}. Until the working database is restored, the person stays in the "
            f"published file {warehouse.layout.published} and its history folder, which a new "
            "warehouse leaves as they are",
            2,
        )
    except Failure as error:  # another run held the lock too long
        return refused(error, 1)
    except erasure.ErasureError as error:  # the register cannot be read or matched
        return refused(error, 2)
    except (duckdb.IOException, duckdb.FatalException, OSError) as error:
        # A full disk ended in a 30-line traceback that did not say the request may have been
        # logged already (a backup and disk-full review): an erasure stopped after its request
        # was logged is finished by the same erase again, or by the next run.
        print(
            f"engagement-box erase: FAILED: {error}. If the disk is full, free space where the "
            "message says, then run the same erase again: an erasure stopped after its request "
            "was logged is finished by it (or by the next `engagement-box run`)",
            file=sys.stderr,
        )
        return 1
    if args.from_register:
        _say_register_erasure(again, warehouse.layout)
        if args.compact:
            return _compact_after_erasure(warehouse.path, warehouse.working_path)
        return 0 if not again.shared else 1
    _say_erasure(report, args, warehouse.path, lake.path)
    if args.compact:
        return _compact_after_erasure(warehouse.path, warehouse.working_path)
    return 0


@dataclass
class _RegisterErasure:
    """What `erase --from-register` did: the requests found in the staged rows and made, the
    reports of those made, those refused as shared keys, the keys logged as they were."""

    requests: int = 0
    reports: list = field(default_factory=list)
    shared: int = 0
    adopted: int = 0


def _erase_from_register(con, layout, lake: Path) -> _RegisterErasure:
    """Erase again, whole, the people the register lists and this working database's log lacks
    (a backup restored beside today's register), found in its staged rows and versions; then
    take the register's other keys into the log (`erasure.register_requests`,
    `adopt_register`)."""
    from engagement_box.governance import erasure
    from pipelines.resources import EngagementConfig

    done = _RegisterErasure()
    requests = erasure.register_requests(con)
    done.requests = len(requests)
    for kind, key in requests:
        try:
            done.reports.append(
                erasure.erase(
                    con,
                    **{kind: key},
                    audience_dir=EngagementConfig().audience_path,
                    published=layout,
                    lake=lake,
                    # a key identity counts as shared is in the register only when its request
                    # said every carrier was the person's (`--shared`), or it was not shared then
                    shared=True,
                )
            )
        except erasure.SharedKey:  # (kept: nothing is refused as shared with shared=True)
            done.shared += 1
    if not done.shared:  # every key found is erased: the rest are in no staged row
        done.adopted = erasure.adopt_register(con, none_staged=True)
    return done


def _say_register_erasure(done: _RegisterErasure, layout) -> None:
    """What `erase --from-register` did, on stdout, without a key (they are the erased
    people's)."""
    from engagement_box.governance import erasure

    register = erasure.register_path(layout.working)
    if not done.requests and not done.adopted:
        print(f"{register} lists no erasure that {layout.working} lacks: nothing to erase again")
        return
    rows = sum(sum(r.rows_deleted.values()) for r in done.reports)
    files = sum(len(r.history_files_rewritten) for r in done.reports)
    print(
        f"{register} listed erasures that {layout.working} had not made (a backup from before "
        f"them restored?): {done.requests} {_plural(done.requests, 'key')} of them found in its "
        f"staged rows and versions and erased again ({rows} {_plural(rows, 'row')} deleted, "
        f"{files} history Parquet {_plural(files, 'file')} rewritten; the keys are not printed)"
    )
    if done.shared:
        print(
            f"  {done.shared} of them refused as keys many profiles share: not erased again, "
            "and the next run refuses until they are (exit 1)"
        )
    if done.adopted:
        print(
            f"  the register's other {done.adopted} erased {_plural(done.adopted, 'key')} "
            "logged: their rows stay out of exports read later"
        )
    if not done.shared:
        print("  the next run publishes a version computed without them")


def _say_erasure(report, args: argparse.Namespace, published: Path, lake: Path) -> None:
    """What `erase` did, on stdout: the request, each table's deleted rows, what was left alone
    and why, the audience files and versions rewritten, and what the next run publishes."""
    from engagement_box.spark import lake as spark_lake

    request = f"request {report.request_id} at {report.requested_at:%Y-%m-%d %H:%M:%S}"
    matched = report.found
    if not matched:
        # Still logged on purpose: the log keeps this person's rows out of exports read later.
        print(
            f"{request}: no staged, published or audience row matched; nothing deleted. "
            "The request is logged: their rows stay out of exports read later. It cannot be "
            "withdrawn: if the id or email was mistyped, whoever is given it later is kept "
            "out too"
        )
    else:
        print(f"{request}: erased")
    if report.placeholders_not_followed:
        keys = report.placeholders_not_followed
        print(
            f"  {keys} {'email or handle' if keys == 1 else 'emails or handles'} of the person's "
            f"profiles left alone: carried by more profiles than {report.profiles_limit} (a "
            "placeholder), so not theirs; the other profiles and rows carrying it stay"
        )
    if report.guest_ids_followed:
        ids = report.guest_ids_followed
        print(
            f"  {ids} buyer {_plural(ids, 'id')} of the person's orders or reviews with no "
            "customer profile (guest checkouts) erased with them"
        )
    if report.guest_ids_shared:
        ids = report.guest_ids_shared
        print(
            f"  {ids} buyer {_plural(ids, 'id')} of the person's orders or reviews left alone: "
            "other people's emails are on orders under it too (a shared guest id); its rows "
            "that carry the person's email are deleted, the rest stay"
        )
    for table, rows in sorted(report.rows_deleted.items()):
        print(f"  {table:40} {rows:>8} {_plural(rows, 'row')} deleted")
    for file, rows in sorted(report.duplicates_restaged.items()):
        print(
            f"  {file:40} {rows:>8} {_plural(rows, 'row')} staged: another person's duplicate of "
            "a key the deleted row held, quarantined until now"
        )
    in_warehouse = any(
        t.startswith(("work.", "history_rows.")) and n for t, n in report.rows_deleted.items()
    )
    if report.lake_rows_removed or in_warehouse:
        runs = ["`engagement-box run`"] if in_warehouse else []
        next_run = " or ".join(runs + (["the Spark job"] if report.lake_rows_removed else []))
        print(
            "  other customers' numbers in the versions that held the person stay as computed "
            "with them (the CIV any of them ceded to the person, for one: where there was "
            "some, CIV no longer sums to 0 there); "
            f"the next run ({next_run}) publishes a version computed without them"
        )
    for path, rows in sorted(report.audience_rows_removed.items()):
        print(f"  {path:40} {rows:>8} audience {_plural(rows, 'row')} removed")
    for folder, why in sorted(report.audience_folders_passed.items()):
        print(f"  audience folder {folder} not rewritten: {why}")
    if report.published_file:
        # Rebuilt after every erasure (its erasure log changed), with or without a match.
        without = (
            " without the person"
            if matched
            else " (it records the erasure requests; none of its rows held the person)"
        )
        print(f"  published file rebuilt{without}: {published}")
    if report.history_files_rewritten:
        files = len(report.history_files_rewritten)
        print(f"  {files} history Parquet {_plural(files, 'file')} rewritten without the person")
    # (only where the lake holds versions: an empty ENGAGEMENT_LAKE_DIR is no Spark lake)
    if report.lake_tables_missing and (args.email or args.handle) and spark_lake.has_lake(lake):
        print(
            "  the Spark lake's working tables are gone (an earlier erasure deleted them; the "
            "next Spark run writes them again): its versions were searched by customer id and "
            "by the audiences' emails only. If the person is in a version still, erase them "
            "again by --customer-id"
        )
    elif report.profile_keys_unread and spark_lake.has_lake(lake):
        # A Spark user's review: the second of two erasures in a row logged the id alone, and
        # the next Spark run staged the person's social events by handle again. The staging
        # now erases the email and handles of a profile erased by its id when it reads it.
        print(
            "  the Spark lake's working tables are gone (an earlier erasure deleted them), so "
            "this person's emails and handles could not be read from their profile now: the "
            "next Spark run erases those its profile carries when it reads the profile, and "
            "keeps out every row carrying them (social events by handle, orders, reviews and "
            "referrals by email). An email or handle the profile no longer carries is erased "
            "by --email or --handle"
        )
    for mart, rows in sorted(report.lake_rows_removed.items()):
        print(
            f"  {'lake ' + mart:40} {rows:>8} {_plural(rows, 'row')} removed from the Spark "
            "lake's versions"
        )


def _compact_after_erasure(published: Path, working: Path) -> int:
    """`erase --compact`: the working database rewritten without the blocks the erasure freed,
    under the run lock. Exit code 0, or 130 when stopped (the erasure stands)."""
    import duckdb

    from engagement_box.governance import erasure
    from pipelines.runs import run_lock

    try:
        with run_lock(published):
            compacted = erasure.compact(working)
    except (KeyboardInterrupt, duckdb.InterruptException) as stop:
        print(
            f"engagement-box erase: stopped ({type(stop).__name__}) while compacting: the "
            "erasure above is complete, the working database was not compacted (its copy "
            "removed); run the erase with --compact again to compact it",
            file=sys.stderr,
        )
        return 130
    print(f"working database rewritten without free blocks: {compacted}")
    return 0


def generate(args: argparse.Namespace) -> int:
    from engagement_box import generator

    return generator.main(args)


def load_env_file() -> list[str]:
    """Settings from `.env` in the working directory (README "Settings"): Dagster's commands
    load the same file for the runs they start (`dagster dev`, the UI's runs), so a setting put
    there holds for both. A variable already set in the environment keeps its value here;
    Dagster's commands let `.env` win, so a variable set both ways with different values is
    said (the returned warnings)."""
    from dotenv import dotenv_values

    path = Path.cwd() / ".env"
    if not path.is_file():
        return []
    warnings = []
    for name, value in dotenv_values(path).items():
        if value is None:
            continue
        if name not in os.environ:
            os.environ[name] = value
        elif os.environ[name] != value:
            warnings.append(
                f"warning: {name} differs between the environment and {path}: this command "
                "uses the environment's value; runs started by dagster dev use the file's"
            )
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engagement-box", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize the whole graph once")
    run_parser.add_argument(
        "--month",
        help="as-of month YYYY-MM (default: the current month; the as-of date is capped at "
        "the last completed order)",
    )
    run_parser.add_argument(
        "--force",
        action="store_true",
        help="run every step even when nothing is new (by default a run whose exports, settings "
        "and model code equal those of the month's standing version starts nothing, and one "
        "whose new files staged no row skips the steps after staging)",
    )
    run_parser.set_defaults(func=run)
    retain_parser = sub.add_parser(
        "retain",
        help="apply the retention policy now: expire the versions it no longer keeps",
        description="Run the version_retention job once (what its daily schedule runs): keep "
        "the newest ENGAGEMENT_KEEP_VERSIONS versions younger than ENGAGEMENT_KEEP_DAYS days "
        "(the current version always stays), and say what it expired.",
    )
    retain_parser.set_defaults(func=retain)
    retire_parser = sub.add_parser(
        "retire",
        help="retire one bad published version (e.g. computed from a half-copied export)",
        description="Retire one version now, under the run lock: its rows leave history.* and "
        "the analysts' file (marts.<mart>_at(N) refuses it), its Parquet files are deleted, "
        "marts.segment_migration pairs its neighbours instead, and its row of marts.snapshots "
        "stays with retired_at and the reason. The current version is refused unless --current "
        "is given: the last version of the migration chain left then becomes current (the one "
        "that would be current had the retired one never been published), and the audience "
        "files are written from it. An unknown, expired or retired version is refused.",
    )
    retire_parser.add_argument(
        "--version", type=int, required=True, help="the version's snapshot_id (marts.snapshots)"
    )
    retire_parser.add_argument(
        "--reason", help="why, kept in marts.snapshots.retired_reason (e.g. a half-copied file)"
    )
    retire_parser.add_argument(
        "--current",
        action="store_true",
        help="allow retiring the current version: the last version left in the migration chain "
        "becomes current and the audience files are written from it",
    )
    retire_parser.set_defaults(func=retire)
    erase_parser = sub.add_parser(
        "erase", help="erase a person (GDPR/CCPA) from every table, version and audience"
    )
    who = erase_parser.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--customer-id", help="the person's customer id (their merged profiles go with it)"
    )
    who.add_argument("--email", help="the person's email (matched trimmed, in any case)")
    who.add_argument(
        "--from-register",
        action="store_true",
        help="erase again the people the erasure register beside the working database lists "
        "and the database has not erased (a backup restored from before their erasure: the "
        "run refuses until this is done); their keys are not printed",
    )
    who.add_argument(
        "--handle",
        help="the person's social handle, with or without its @ (for someone known only by a "
        "handle, e.g. from social events; a profile carrying it goes with it)",
    )
    erase_parser.add_argument(
        "--shared",
        action="store_true",
        help="the --email or --handle is on more profiles than ENGAGEMENT_MAX_PROFILES_PER_KEY "
        "(identity counts it as shared), and every one of them is this person's: erase them all "
        "(without it such a request is refused)",
    )
    erase_parser.add_argument(
        "--compact",
        action="store_true",
        help="also rewrite the working database so freed blocks holding old data are gone (the "
        "published file is rebuilt whole anyway); no other connection may have it open",
    )
    erase_parser.set_defaults(func=erase)
    gen = sub.add_parser(
        "generate",
        help="write a synthetic retailer's exports (seeded, deterministic)",
        description="Generate one retailer's raw exports (seeded, deterministic).",
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:
        # The generator imports the contracts (pandera, polars, numpy: about 2 CPU-s); only
        # `generate` needs its options, so `--help`, `run` and `erase` start without them.
        from engagement_box import generator

        generator.add_arguments(gen)
    gen.set_defaults(func=generate)
    args = parser.parse_args(argv)
    if args.func is not generate:
        for warning in [*load_env_file(), *settings.unknown_variables()]:
            print(warning, flush=True)
    if args.func is erase:
        empty = _empty_erasure_key(args)
        if empty:
            erase_parser.error(empty)  # exits 2 with the usage, as argparse does
    from sqlalchemy.exc import OperationalError

    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("stopped before the run started; nothing was written", file=sys.stderr)
        return 130
    except OperationalError as error:
        # Dagster's own storage (runs, events: SQLite under DAGSTER_HOME) failed, a full disk
        # say: a 78-line traceback that named no folder (a disk-full review).
        home = os.environ.get("DAGSTER_HOME") or "DAGSTER_HOME"
        print(
            f"engagement-box {args.command}: FAILED: Dagster's run storage under {home} could "
            f"not be read or written ({first_line(error.orig or error)}). If its disk is "
            "full, free space there and run again (a run it stopped is marked failed then). "
            "Each step's writes to the warehouse are one transaction: the current version is "
            "the last one published whole (marts.snapshots says which)",
            file=sys.stderr,
        )
        return 1


def entry() -> None:
    """The `engagement-box` command: `main`, then an exit without the interpreter's teardown.

    A run leaves millions of Python objects behind (Dagster's definitions, the modules of
    polars, DuckDB, scipy), and the interpreter's last collections walk them all before the
    process ends: 1.3 CPU-s of a 1 % day at 1M customers (docs/BENCHMARKS.md), work that frees
    memory the exit frees anyway. Everything a command writes is committed and closed before
    `main` returns; the threads still running are waited for and the exit handlers run
    (logging's flush, temporary folders) as at a normal exit. An exception leaves the usual way.
    """
    sys.stdout = _Console(sys.stdout) if sys.stdout is not None else None
    sys.stderr = _Console(sys.stderr) if sys.stderr is not None else None
    code = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):  # None when the descriptor was closed (`>&-`)
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(code)


# Control characters but the line break, each written as its escape (`\x1b`): the console
# shows what an export holds (a file's header, a key, a refused name), and a value holding a
# terminal's escape sequence retitled the window and erased the line before it (a security
# review).
_ESCAPED = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x0A}


class _Console:
    """The console as the CLI writes to it: control characters shown escaped (`_ESCAPED`); and
    for a reader that may stop reading (`engagement-box run | head -4`): the first write after
    it left raised BrokenPipeError in the middle of the command, after the run was created,
    which Dagster then showed as NOT_STARTED for ever. The rest of the output goes to /dev/null
    instead, and the command finishes and exits with its own code."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(text.translate(_ESCAPED))
            return len(text)
        except BrokenPipeError:
            self._reader_left()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_left()

    def _reader_left(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


if __name__ == "__main__":
    entry()
