"""One run at a time, and the runs Dagster recorded.

The run lock (`acquire_run_lock`, `run_lock`): `<working database>.run.lock` (or the lake's),
taken by the CLI before it looks for new inputs and by the `Warehouse` resource when a run
starts, re-entered in the same process, held to the run's last step, by erasures too. The runs'
tags (`process_tags`, `location_tags`): which process on which host executes a run, and which
warehouse it wrote; from them `fail_dead_runs` marks failed the runs whose process is gone (a
kill leaves them "started"), `moved_reexecution` refuses a re-execution of a run of another
warehouse, and `earlier_in_backfill` makes a backfill's months take the lock in order.
`pipelines/resources.py` uses these; the CLI and the schedule's checks too."""

import datetime as dt
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from engagement_box.governance import readers
from engagement_box.sql import load_sql
from pipelines.errors import ConfigurationError

# The run locks this process holds: lock path -> [descriptor, depth]. The CLI takes the lock
# before it checks for new inputs and starts the run; the run's Warehouse resource, in the same
# process, then re-enters it instead of waiting for itself.
_HELD: dict[str, list[int]] = {}


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
