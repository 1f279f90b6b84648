"""Safe operations: concurrent runs and runs killed with SIGKILL leave a readable, consistent
warehouse, and the next run succeeds. Real `engagement-box run` processes, really killed, on the
project's own Dagster configuration (`.dagster/dagster.yaml` copied into a new DAGSTER_HOME)."""

import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from engagement_box import generator
from engagement_box.governance.compare import current_marts
from engagement_box.governance.readers import default_working
from engagement_box.staging.contracts import SOURCES

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("retailer")
    generator.generate(
        out, generator.GeneratorConfig(customers=400, seed=11, end=dt.date(2025, 12, 31))
    )
    return out


# The marts a run publishes, without the columns that record when and how fast it ran.


def dagster_home(database: Path) -> Path:
    """A new DAGSTER_HOME beside `database` holding the project's real instance configuration."""
    home = database.parent / "dagster_home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    return home


def start_run(
    exports: Path, database: Path, name: str = "run", force: bool = False, **env_overrides: str
) -> subprocess.Popen:
    """A real `engagement-box run`; its output and the Dagster log go to `<name>.log` beside
    the warehouse. `force`: run even when nothing is new (a run to interrupt must do work)."""
    env = {
        **os.environ,
        "ENGAGEMENT_DATA_DIR": str(exports),
        "ENGAGEMENT_WAREHOUSE": str(database),
        "ENGAGEMENT_AUDIENCE_DIR": str(database.parent / "audiences"),
        "DAGSTER_HOME": str(dagster_home(database)),
        **env_overrides,
    }
    log_path = database.parent / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 (the child process writes it)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engagement_box.cli",
            "run",
            "--month",
            "2025-12",
            *(["--force"] if force else []),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log.close()
    proc.log_path = log_path
    return proc


def output(run: subprocess.Popen) -> str:
    """What the run printed, then Dagster's full log of it (the file the run names)."""
    text = run.log_path.read_text()
    named = re.search(r"^full log:\s+(\S+)$", text, flags=re.M)
    if named and Path(named[1]).exists():
        text += Path(named[1]).read_text(errors="replace")
    return text


def wait_for_step(run: subprocess.Popen, step: str | None = None, timeout: float = 300) -> None:
    """Wait until the run starts `step` (any step if None)."""
    marker = f'Started execution of step "{step}"' if step else "Started execution of step"
    deadline = time.monotonic() + timeout
    while marker not in output(run):
        assert run.poll() is None, output(run)[-3000:]
        assert time.monotonic() < deadline, f"no {marker!r} within {timeout} s"
        time.sleep(0.1)


def assert_consistent(database: Path) -> int:
    """Staging reconciles, every retained version is whole, marts = the current version, in the
    working database and in the published file analysts open.

    Returns the number of published versions (in the working database)."""
    if database.exists():  # the published file: versions only (the staged rows are not in it)
        consistent(database, staging=False)
    return consistent(default_working(database))


def consistent(database: Path, staging: bool = True) -> int:
    if not database.exists():
        return 0
    con = duckdb.connect(str(database), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
        if (
            staging
            and "staging" in schemas
            and con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'staging' "
                "AND table_name = 'ingested_files'"
            ).fetchone()[0]
        ):
            staging_tables = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'staging'"
                ).fetchall()
            }
            for source in SOURCES:
                if source not in staging_tables:  # killed before its table was created
                    assert not con.execute(
                        "SELECT count(*) FROM staging.ingested_files WHERE source = $s",
                        {"s": source},
                    ).fetchone()[0], source
                    continue
                read, staged, quarantined = con.execute(
                    "SELECT (SELECT coalesce(sum(rows_read), 0) FROM staging.ingested_files "
                    "WHERE source = $s), (SELECT count(*) FROM staging." + source + "), "
                    "(SELECT count(*) FROM staging.quarantine WHERE source = $s)",
                    {"s": source},
                ).fetchone()
                assert read == staged + quarantined, source
        if (
            "marts" not in schemas
            or not con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' "
                "AND table_name = 'snapshots'"  # a view over marts.snapshot_log
            ).fetchone()[0]
        ):
            return 0
        snapshots = con.execute(
            'SELECT snapshot_id, "tables", is_current FROM marts.snapshots ORDER BY snapshot_id'
        ).fetchall()
        for snapshot_id, tables, _ in snapshots:
            if "history" not in schemas:
                break
            for table, count in json.loads(tables).items():
                got = con.execute(
                    f"SELECT count(*) FROM history.{table} WHERE snapshot_id = $id",
                    {"id": snapshot_id},
                ).fetchone()[0]
                assert got == count, (snapshot_id, table)
        if snapshots:
            assert sum(1 for s in snapshots if s[2]) == 1  # exactly one current version
            current = max(s[0] for s in snapshots if s[2])
            for table, count in json.loads(snapshots[current - 1][1]).items():
                assert con.execute(f"SELECT count(*) FROM marts.{table}").fetchone()[0] == count
        return len(snapshots)
    finally:
        con.close()


def run_statuses(database: Path) -> dict[str, str]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home(database))) as instance:
        return {run.run_id: run.status.value for run in instance.get_runs()}


def test_killed_and_stopped_runs_never_block_the_next_run_nor_lose_the_last_version(
    exports, tmp_path
):
    """SIGKILL in the first run on a fresh warehouse; two runs started together finish in turn;
    SIGKILL inside publish, SIGTERM mid-run; then a normal run is not held up and publishes the
    same marts. (Runs starting together on a new DAGSTER_HOME: tests/test_faults.py.)
    (benchmarks/stress_kills.py does the same at random points, ten times and more.)"""
    database = tmp_path / "w.duckdb"
    rng = random.Random(20261201)

    first = start_run(exports, database, "first")  # the first run on a fresh warehouse
    wait_for_step(first)
    time.sleep(rng.uniform(0.0, 2.0))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert assert_consistent(database) == 0  # nothing was published, and the file opens

    # Two runs started together: one waits for the other to finish, then finds its inputs
    # unchanged and starts no run instead of computing the same version again.
    started = time.monotonic()
    together = [start_run(exports, database, "good"), start_run(exports, database, "second")]
    codes = [run.wait(timeout=600) for run in together]
    assert codes == [0, 0], [output(run)[-2000:] for run in together]
    two_runs_seconds = time.monotonic() - started
    said = [output(run) for run in together]
    waited = [text for text in said if "waiting for the run that holds the warehouse" in text]
    assert len(waited) == 1 and "nothing to do" in waited[0], said
    assert "No run started" in waited[0]  # without --force, nothing new starts no Dagster run
    assert assert_consistent(database) == 1
    published = current_marts(database)
    # the next run marked the killed one failed: Dagster alone would show it "started" forever
    assert sorted(run_statuses(database).values()) == ["FAILURE", "SUCCESS"]

    in_publish = start_run(exports, database, "in_publish", force=True)
    wait_for_step(in_publish, "published_marts")
    time.sleep(rng.uniform(0.0, 0.3))
    in_publish.send_signal(signal.SIGKILL)
    in_publish.wait(timeout=60)
    assert assert_consistent(database) >= 1  # the last good version is intact and readable

    stopped = start_run(exports, database, "stopped", force=True)
    wait_for_step(stopped, "staging__orders")
    stopped.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = stopped.wait(timeout=60)
    assert time.monotonic() - sent < 10, output(stopped)[-3000:]
    assert code != 0
    versions = assert_consistent(database)
    assert versions >= 1

    started = time.monotonic()
    last = start_run(exports, database, "last", force=True)
    # Not held up by the killed and stopped runs: within the time two runs took, and a margin.
    assert last.wait(timeout=two_runs_seconds + 120) == 0, output(last)[-3000:]
    assert time.monotonic() - started < two_runs_seconds + 120
    assert "blocked by limit" not in output(last)
    # Same exports, settings and code as the good run: its version stands, no duplicate.
    assert assert_consistent(database) == versions
    assert current_marts(database) == published
    statuses = sorted(run_statuses(database).values())
    assert statuses.count("SUCCESS") == 2  # good and last; the others were stopped
    assert "STARTED" not in statuses


def test_a_reexecution_is_not_failed_for_its_parents_process_tags():
    """The UI's "Re-execute" copies the parent's process tags (host, pid); until the child's
    own process replaces them, a run taking the lock judged the child by its dead parent's pid
    and marked it failed before it started. Only a run whose own tags name a gone process is."""
    import dagster as dg

    from pipelines.runs import PID_START_TAG, fail_dead_runs, process_tags

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    tags = process_tags(gone.pid)
    tags[PID_START_TAG] = tags[PID_START_TAG] or "1"  # the pid is gone: its start is unknown
    with dg.instance_for_test() as instance:
        parent = dg.DagsterRun(
            job_name="engagement_pipeline", status=dg.DagsterRunStatus.FAILURE, tags=tags
        )
        child = dg.DagsterRun(
            job_name="engagement_pipeline",
            status=dg.DagsterRunStatus.STARTING,
            tags={**tags, "dagster/parent_run_id": parent.run_id},
        )
        orphan = dg.DagsterRun(
            job_name="engagement_pipeline", status=dg.DagsterRunStatus.STARTED, tags=tags
        )
        for run in (parent, child, orphan):
            instance.add_run(run)
        assert fail_dead_runs(instance) == [orphan.run_id]
        assert instance.get_run_by_id(child.run_id).status == dg.DagsterRunStatus.STARTING


def test_a_reexecution_on_another_warehouse_is_refused_before_it_writes(december_run, tmp_path):
    """The UI's "Re-execute" runs with the webserver's settings: a rerun of a run started with
    another .env published into the UI's warehouse and said SUCCESS, while the run's own
    warehouse stayed without it. A run records where it worked; its re-execution elsewhere is
    refused, saying both places; on the same warehouse it goes on."""
    import dagster as dg

    from engagement_box.governance import readers
    from pipelines.runs import PUBLISHED_TAG, WORKING_DB_TAG, moved_reexecution

    database = december_run.database
    here = readers.Layout(published=database, working=readers.default_working(database))
    with dg.DagsterInstance.local_temp(str(december_run.dagster_home)) as stored:
        (parent,) = stored.get_runs()
    # the run recorded its warehouse when it started
    assert parent.tags[WORKING_DB_TAG] == str(here.working.resolve())
    assert parent.tags[PUBLISHED_TAG] == str(database.resolve())
    with dg.instance_for_test() as instance:
        parent = dg.DagsterRun(job_name=parent.job_name, tags=dict(parent.tags))
        instance.add_run(parent)
        child = dg.DagsterRun(
            job_name=parent.job_name, tags={"dagster/parent_run_id": parent.run_id}
        )
        elsewhere = readers.Layout(
            published=tmp_path / "ui.duckdb", working=tmp_path / "ui.working.duckdb"
        )
        said = moved_reexecution(instance, child, elsewhere)
        assert said is not None
        assert str(here.working.resolve()) in said and str(tmp_path / "ui.working.duckdb") in said
        assert "Nothing was written" in said
        assert moved_reexecution(instance, child, here) is None
        # a run re-executing none, or one from before the tags, is not judged
        assert moved_reexecution(instance, dg.DagsterRun(job_name="x"), elsewhere) is None
        untagged = dg.DagsterRun(job_name=parent.job_name)
        instance.add_run(untagged)
        orphan = dg.DagsterRun(job_name="x", tags={"dagster/parent_run_id": untagged.run_id})
        assert moved_reexecution(instance, orphan, elsewhere) is None
        # A refused rerun records nothing (a backfill's rerun does not copy tags either): its
        # own rerun is judged by the run above it, not let through.
        instance.add_run(child)
        grandchild = dg.DagsterRun(job_name="x", tags={"dagster/parent_run_id": child.run_id})
        said = moved_reexecution(instance, grandchild, elsewhere)
        assert said is not None and f"a rerun of run {parent.run_id}" in said
        assert moved_reexecution(instance, grandchild, here) is None
        # Python's `execute_job` with ReexecutionOptions sets the run's parent, not the tag
        by_api = dg.DagsterRun(job_name="x", parent_run_id=parent.run_id, root_run_id=parent.run_id)
        assert moved_reexecution(instance, by_api, elsewhere) is not None
        assert moved_reexecution(instance, by_api, here) is None


def test_a_linked_analysts_file_is_the_same_warehouse_after_its_publish_replaced_the_link(
    tmp_path,
):
    """A publish replaces the file at its own path (a link there becomes a file): the paths a
    run records keep the file's name, so its rerun with the same settings is not refused."""
    import dagster as dg

    from engagement_box.governance import readers
    from pipelines.runs import location_tags, moved_reexecution

    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "engagement.duckdb").write_text("")
    (tmp_path / "wh").mkdir()
    link = tmp_path / "wh" / "engagement.duckdb"
    link.symlink_to(tmp_path / "disk" / "engagement.duckdb")
    layout = readers.Layout(published=link, working=readers.default_working(link))
    with dg.instance_for_test() as instance:
        parent = dg.DagsterRun(job_name="engagement_pipeline", tags=location_tags(layout))
        instance.add_run(parent)
        link.unlink()
        link.write_text("")  # the publish's rename over the link
        child = dg.DagsterRun(job_name="x", tags={"dagster/parent_run_id": parent.run_id})
        assert moved_reexecution(instance, child, layout) is None


def test_a_backfills_months_take_the_run_lock_in_month_order():
    """Dagster launches every run of a UI backfill at once; each waits for the months of its
    backfill before it that are still to run (not for finished ones, other backfills' runs or a
    run whose process is gone), so the persona refits fall on the same months as a backfill from
    the command line."""
    import dagster as dg

    from pipelines.runs import BACKFILL_TAG, PARTITION_TAG, earlier_in_backfill, process_tags

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    def run(month, status, backfill="b1", tags=None):
        return dg.DagsterRun(
            job_name="engagement_pipeline",
            status=status,
            tags={BACKFILL_TAG: backfill, PARTITION_TAG: month, **(tags or {})},
        )

    alive, dead = process_tags(), process_tags(gone.pid)
    dead["engagement/pid_start"] = dead["engagement/pid_start"] or "1"
    S = dg.DagsterRunStatus
    with dg.instance_for_test() as instance:
        runs = {
            "killed": run("2025-08-01", S.STARTED, tags=dead),
            "done": run("2025-09-01", S.SUCCESS, tags=alive),
            "waiting": run("2025-10-01", S.STARTED, tags=alive),
            "launching": run("2025-11-01", S.NOT_STARTED),
            "this": run("2025-12-01", S.STARTED, tags=alive),
            "other backfill": run("2025-01-01", S.STARTED, backfill="b2", tags=alive),
        }
        for r in runs.values():
            instance.add_run(r)
        assert earlier_in_backfill(instance, runs["this"]) == "the run of 2025-10-01 in backfill b1"
        assert earlier_in_backfill(instance, runs["launching"]) == (
            "the run of 2025-10-01 in backfill b1"
        )
        assert earlier_in_backfill(instance, runs["waiting"]) is None  # its earliest month
        assert earlier_in_backfill(instance, runs["other backfill"]) is None
        alone = dg.DagsterRun(job_name="engagement_pipeline", tags={PARTITION_TAG: "2025-12-01"})
        assert earlier_in_backfill(instance, alone) is None  # a run outside any backfill


def test_a_backfill_run_does_not_wait_for_a_launch_that_died(monkeypatch):
    """An earlier month whose launch died before its process said who it is stays STARTING
    for good (nothing marks it failed without run monitoring): the later months waited with no
    limit. They wait for such a run only for a grace period."""
    import dagster as dg

    import pipelines.runs as runs
    from pipelines.runs import BACKFILL_TAG, PARTITION_TAG, earlier_in_backfill

    S = dg.DagsterRunStatus

    def run(month, status):
        return dg.DagsterRun(
            job_name="engagement_pipeline",
            status=status,
            tags={BACKFILL_TAG: "b1", PARTITION_TAG: month},
        )

    with dg.instance_for_test() as instance:
        stuck, this = run("2025-10-01", S.STARTING), run("2025-11-01", S.STARTED)
        for r in (stuck, this):
            instance.add_run(r)
        assert earlier_in_backfill(instance, this) == "the run of 2025-10-01 in backfill b1"
        monkeypatch.setattr(runs, "LAUNCH_GRACE_SECONDS", 0.0)  # the grace is over
        assert earlier_in_backfill(instance, this) is None


class _FakeClock:
    """The `time` module as `pipelines.runs` (the run lock) and `pipelines.resources` see it,
    with a clock that moves only when the code sleeps (no test waits on the real clock);
    `on_sleep(now)` runs after each sleep."""

    def __init__(self, on_sleep=None):
        self.now, self.on_sleep = 0.0, on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.now)

    def __getattr__(self, name):
        return getattr(time, name)


def test_a_run_behind_an_earlier_month_waits_past_its_lock_timeout(tmp_path, monkeypatch):
    """The run lock's timeout bounds the wait for runs outside the backfill only: while an
    earlier month is still to run, a later one neither takes the free lock nor times out; once
    it goes first, the timeout counts from then (another run holds the lock a little longer)."""
    import fcntl

    import pipelines.runs as runs

    database = tmp_path / "w.duckdb"
    other = os.open(f"{database}.run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    held = [False]

    def on_sleep(now):
        # A run outside the backfill takes the lock while the earlier month runs, and keeps it
        # until 0.4 s after that month ended.
        if not held[0] and now < 10.0:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held[0] = True
        elif held[0] and now >= 10.4:
            fcntl.flock(other, fcntl.LOCK_UN)
            held[0] = None

    clock = _FakeClock(on_sleep)
    monkeypatch.setattr(runs, "time", clock)
    monkeypatch.setattr(runs, "AHEAD_POLL_SECONDS", 0.0)
    looks = []

    def ahead():
        looks.append(clock.now)
        return "the run of 2025-11-01" if clock.now < 10.0 else None

    said = []
    try:
        fd = runs.acquire_run_lock(database, timeout_seconds=1.0, ahead=ahead, say=said.append)
        try:
            assert clock.now >= 10.4  # waited 10 s for the earlier month, past the 1 s timeout
            assert said == ["the run of 2025-11-01"]  # once, not at every look
            assert len(looks) > 10
        finally:
            runs.release_run_lock(fd)
    finally:
        os.close(other)


def test_a_waiting_backfill_run_says_in_its_own_log_who_goes_first(tmp_path, monkeypatch):
    """The wait happens while the run's resources start, before any step: the UI shows the
    run's event log, so the waiting run says there which month goes first (a line on the
    webserver's terminal reached nobody)."""
    import dagster as dg

    import pipelines.resources as resources
    import pipelines.runs as runs

    monkeypatch.setattr(runs, "AHEAD_POLL_SECONDS", 0.0)

    @dg.asset(partitions_def=dg.MonthlyPartitionsDefinition(start_date="2025-01-01"))
    def touched(warehouse: resources.Warehouse) -> None:
        with warehouse.get_connection() as con:
            con.execute("SELECT 1")

    with dg.instance_for_test() as instance:
        earlier = dg.DagsterRun(
            job_name="engagement_pipeline",
            status=dg.DagsterRunStatus.STARTED,
            tags={
                runs.BACKFILL_TAG: "b1",
                runs.PARTITION_TAG: "2025-10-01",
                **runs.process_tags(),  # this process: alive
            },
        )
        instance.add_run(earlier)
        ended = []

        def on_sleep(now):  # the earlier month ends after a while of waiting
            if now >= 1.0 and not ended:
                instance.report_run_failed(earlier, message="ended")
                ended.append(now)

        clock = _FakeClock(on_sleep)  # the run lock's and the resources' clock
        monkeypatch.setattr(runs, "time", clock)
        monkeypatch.setattr(resources, "time", clock)
        result = dg.materialize(
            [touched],
            partition_key="2025-11-01",
            instance=instance,
            resources={"warehouse": resources.warehouse_resource(tmp_path / "w.duckdb")},
            tags={runs.BACKFILL_TAG: "b1"},
        )
        assert result.success and ended  # it waited until the earlier month ended
        logged = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any(
        "2025-11-01 waits for the run of 2025-10-01 in backfill b1 to go first (if its process is "
        "gone, e.g. on another host or container, end it: in the UI, that run's "
        "Terminate, forced" in m
        for m in logged
    ), logged  # a run of another host whose process is gone was waited for without a word


def test_a_run_waiting_for_the_run_lock_says_so_in_its_own_log(tmp_path, monkeypatch):
    """A run launched from the UI, the schedule or the sensor while another run (or an erasure)
    held the warehouse sat in its resources' start without a word for up to 30 minutes (a
    review): only the CLI said it was waiting. The run's own log, which the UI shows, now says
    who holds the lock and how long the run will wait."""
    import fcntl

    import dagster as dg

    import pipelines.resources as resources
    import pipelines.runs as runs

    @dg.asset(partitions_def=dg.MonthlyPartitionsDefinition(start_date="2025-01-01"))
    def touched(warehouse: resources.Warehouse) -> None:
        with warehouse.get_connection() as con:
            con.execute("SELECT 1")

    database = tmp_path / "w.duckdb"
    holder = os.open(f"{database}.run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(holder, b"pid 4242 since 2026-12-06 05:00:00\n")
    fcntl.flock(holder, fcntl.LOCK_EX)  # another run holds the warehouse

    def on_sleep(now):  # the other run ends after a while
        if now >= 2.0:
            fcntl.flock(holder, fcntl.LOCK_UN)

    clock = _FakeClock(on_sleep)  # the run lock's and the resources' clock
    monkeypatch.setattr(runs, "time", clock)
    monkeypatch.setattr(resources, "time", clock)
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [touched],
                partition_key="2025-11-01",
                instance=instance,
                resources={"warehouse": resources.warehouse_resource(database)},
            )
            assert result.success
            logged = [e.message for e in instance.all_logs(result.run_id) if e.message]
    finally:
        os.close(holder)
    waits = [m for m in logged if "waits for the run or erasure that holds" in m]
    assert waits == [
        "2025-11-01 waits for the run or erasure that holds the warehouse to finish (pid 4242 "
        "since 2026-12-06 05:00:00); it waits up to 1800 s (run_lock_timeout_seconds), then "
        "fails having written nothing"
    ], logged


def test_the_run_lock_file_names_its_holder_and_says_not_to_delete_it(tmp_path):
    """The lock file stays after every run and names a pid, as a stale pidfile does: deleted
    during a run, it let the next run start beside that one (a review). Its second line says
    so; the holder a waiting run names is its first line."""
    from pipelines import runs

    database = tmp_path / "w" / "engagement.duckdb"
    fd = runs.acquire_run_lock(database, timeout_seconds=1.0)
    try:
        first, second = Path(f"{database}.run.lock").read_text(encoding="utf-8").splitlines()
        assert first.startswith(f"pid {os.getpid()} since ")
        assert second == runs.RUN_LOCK_NOTE and "never delete this file" in second
        assert runs.run_lock_holder(f"{database}.run.lock") == first
    finally:
        runs.release_run_lock(fd)


def test_a_run_whose_lock_file_was_deleted_stops_before_its_next_step(tmp_path):
    """Deleting the lock file during a run let the next run take a lock of its own and start
    beside it (a review). The run holding the old one stops before its next step's connection,
    whether the file is gone or another run's new one stands there."""
    from pipelines import resources, runs

    database = tmp_path / "w" / "engagement.duckdb"
    warehouse = resources.Warehouse(database=str(database))
    fd = runs.acquire_run_lock(database, timeout_seconds=1.0)
    warehouse._run_lock = fd
    try:
        with warehouse.get_connection() as con:  # its own file: the step goes on
            con.execute("CREATE TABLE t AS SELECT 1 AS x")
        assert runs.run_lock_replaced(database, fd) is None
        lock = Path(f"{database}.run.lock")
        lock.unlink()
        said = runs.run_lock_replaced(database, fd)
        assert said.startswith(f"the run lock {lock} was deleted during this run"), said
        with pytest.raises(resources.WarehouseError, match="stops before its next step"):
            with warehouse.get_connection():
                pass
        lock.write_text("pid 1 since 2026-12-06 10:00:00\n")  # another run's file
        assert "was replaced during this run" in runs.run_lock_replaced(database, fd)
    finally:
        warehouse._run_lock = None
        runs.release_run_lock(fd)


def test_a_run_is_judged_dead_only_on_its_own_host_and_by_its_own_process():
    """`process_gone`, which marks a run failed and frees its slots: a run on another host
    whose pid is free here is alive (it works there), and this host's live pid whose start time
    is not the run's is a reused pid, the run's process gone (a mutation review: dropping
    either check passed every test)."""
    import socket

    from pipelines import runs

    tags = runs.process_tags()
    assert not runs.process_gone(tags)  # this very process
    elsewhere = {runs.HOST_TAG: "elsewhere", runs.PID_TAG: "4194303", runs.PID_START_TAG: "1"}
    assert not runs.process_gone(elsewhere)
    assert runs.process_gone({**elsewhere, runs.HOST_TAG: socket.gethostname()})  # no such pid
    assert runs.process_gone({**tags, runs.PID_START_TAG: "1"})  # the pid, reused


def test_two_warehouses_marts_differ_where_a_mart_is_missing_a_value_or_a_float():
    """`compare.differences`, the kill stress script's verdict, said nothing of a mart missing
    on one side (a mutation review found it untested)."""
    from engagement_box.governance.compare import differences

    assert differences({"a": [(1,)]}, {}) == ["a: 1 rows against 0"]
    assert differences({}, {"b": [(1,)]}) == ["b: 0 rows against 1"]
    found = {"m": [("x", 1.0), ("y", 2.0)]}
    assert differences(found, {"m": [("x", 1.0), ("y", 2.0 * (1 + 1e-12))]}) == []
    said = differences(found, {"m": [("z", 1.0), ("y", 2.5)]}, columns={"m": ["id", "clv"]})
    assert said == [
        "m.id: 1 rows differ, at most inf relative",
        "m.clv: 1 rows differ, at most 0.2 relative",
    ]
