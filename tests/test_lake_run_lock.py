"""The Spark lake's run lock: a Spark run holds `<lake>.run.lock` from its first step to its last
(`pipelines/resources.py::LakeResource`), and `engagement-box erase` takes it too, so an erasure
never rewrites the lake's versions under a run that is about to publish. No Spark needed: the
run here is one step that asks for the lake."""

import fcntl
import os
import threading
import time

import dagster as dg
import duckdb
import pytest

from pipelines.resources import LakeResource
from tests.test_lake_erasure import every_row, six_on_a_till
from tests.test_lake_erasure import lake_dir as lake_dir  # noqa: F401 (a fixture)


def _held_by_another(lock: str) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _two_steps_noting_the_lock(name: str, resource, lock: str):
    """A run of two steps, each asking for the resource `name` and noting whether `lock` is
    held by the run (another file descriptor cannot take it): (the first step, what they saw)."""
    seen = []

    @dg.asset(required_resource_keys={name})
    def first() -> None:
        seen.append(_held_by_another(lock))

    @dg.asset(deps=[first], required_resource_keys={name})
    def second() -> None:
        seen.append(_held_by_another(lock))

    assert dg.materialize([first, second], resources={name: resource}).success
    return first, seen


def test_a_spark_run_holds_the_lake_lock_from_start_to_end(tmp_path):
    lake = tmp_path / "lake"
    lock = f"{lake}.run.lock"
    first, seen = _two_steps_noting_the_lock("lake_dir", LakeResource(lake_dir=str(lake)), lock)
    assert seen == [True, True]
    assert not _held_by_another(lock)  # freed when the run ended

    # a second run on the same lake while the first holds it waits, then stops plainly
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(dg.DagsterResourceFunctionError) as stopped:
            dg.materialize(
                [first],
                resources={
                    "lake_dir": LakeResource(lake_dir=str(lake), run_lock_timeout_seconds=0)
                },
            )
    finally:
        os.close(fd)
    assert "another run has held" in str(stopped.value.__cause__)
    assert len(seen) == 2  # its step never ran


def test_erase_waits_for_the_spark_run_holding_the_lake(lake_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    """`engagement-box erase` while a Spark run holds the lake: it says it waits, touches
    nothing until the run ends, then erases the person from every version."""
    from engagement_box import cli

    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "published.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(tmp_path / "w" / "working.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(tmp_path / "audiences"))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(lake_dir))
    run = os.open(f"{lake_dir}.run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(run, fcntl.LOCK_EX)  # the run: another open file, as another process holds it
    os.write(run, b"pid 4242 since 2026-01-01 00:00:00\n")
    at_release = []

    def run_ends() -> None:
        time.sleep(1.5)
        at_release.append(sorted(every_row(lake_dir)["customer_id"].to_list()))
        os.close(run)  # the run ends: its lock is freed

    ender = threading.Thread(target=run_ends)
    ender.start()
    try:
        assert cli.main(["erase", "--customer-id", "C1"]) == 0
    finally:
        ender.join()
    out = capsys.readouterr().out
    assert "waiting for the run that holds the Spark lake to finish (pid 4242" in out
    assert at_release == [["C1", "C1", "C2", "C2", "C3", "C4"]]  # untouched while it ran
    assert "C1" not in every_row(lake_dir)["customer_id"].to_list()
    assert "lake customer_value" in out


def test_erase_without_a_lake_leaves_no_lock_file(tmp_path, monkeypatch):
    """Where no Spark run ever started there is no lake to lock: nothing is created for it."""
    from engagement_box import cli

    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "published.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(tmp_path / "w" / "working.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(tmp_path / "audiences"))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(tmp_path / "lake"))
    (tmp_path / "w").mkdir()
    duckdb.connect(str(tmp_path / "w" / "working.duckdb")).close()  # a warehouse, no lake
    assert cli.main(["erase", "--customer-id", "C1"]) == 0
    assert not (tmp_path / "lake").exists() and not (tmp_path / "lake.run.lock").exists()


def test_a_refused_erase_on_a_spark_only_setup_creates_no_working_database(
    lake_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    """A Spark-only setup (a lake, no DuckDB warehouse): an erasure refused for a shared address
    left an empty working database at ENGAGEMENT_WORKING_DB (a stop-47 note). Refused, nothing
    is created; the same request said shared is taken, and logged there."""
    from engagement_box import cli

    working = tmp_path / "w" / "working.duckdb"
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "published.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(working))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(tmp_path / "audiences"))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(lake_dir))
    six_on_a_till(lake_dir)
    assert cli.main(["erase", "--email", "till@shop.example"]) == 2
    assert "on 6 customer profiles" in capsys.readouterr().err
    assert not working.exists() and not working.with_name("working.duckdb.wal").exists()
    assert cli.main(["erase", "--email", "till@shop.example", "--shared"]) == 0
    assert working.exists() and "C1" not in every_row(lake_dir)["customer_id"].to_list()


def test_an_erase_giving_up_on_a_first_run_leaves_that_runs_working_database(
    lake_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    """A first DuckDB run beside a Spark lake creates the working database while it holds the
    lock; an erase that gave up waiting for it deleted that database as one it had created
    itself (a re-review). It deletes only what it created under the locks."""
    from engagement_box import cli
    from pipelines import runs

    published = tmp_path / "w" / "published.duckdb"
    working = tmp_path / "w" / "working.duckdb"
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(published))
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(working))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(tmp_path / "audiences"))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(lake_dir))
    waited = runs.run_lock
    monkeypatch.setattr(runs, "run_lock", lambda path, _timeout=0, **kw: waited(path, 1.5, **kw))
    working.parent.mkdir()
    run = os.open(f"{published}.run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(run, fcntl.LOCK_EX)  # the first run: another open file, as another process
    os.write(run, b"pid 4242 since 2026-01-01 00:00:00\n")

    def first_run_writes() -> None:
        time.sleep(0.5)
        con = duckdb.connect(str(working))
        con.execute("CREATE TABLE run_state AS SELECT 1 AS step")
        con.close()

    writer = threading.Thread(target=first_run_writes)
    writer.start()
    try:
        assert cli.main(["erase", "--customer-id", "C1"]) == 1
    finally:
        writer.join()
        os.close(run)
    assert "nothing was erased" in capsys.readouterr().err
    con = duckdb.connect(str(working), read_only=True)
    assert con.execute("SELECT step FROM run_state").fetchall() == [(1,)]


def test_a_warehouse_run_holds_its_run_lock_from_start_to_end_and_frees_it(tmp_path):
    """The DuckDB warehouse's `<database>.run.lock`, as the lake's above: held through a run's
    steps, and freed when the run ends, also in a process that goes on (a notebook running
    jobs in-process): a teardown that kept it passed every test, and the next run or erasure
    of another process would wait 30 minutes, then fail (a mutation review)."""
    from pipelines import runs
    from pipelines.resources import Warehouse

    database = tmp_path / "w.duckdb"
    lock = f"{database}.run.lock"
    _, seen = _two_steps_noting_the_lock("warehouse", Warehouse(database=str(database)), lock)
    assert seen == [True, True]
    assert not _held_by_another(lock)
    assert lock not in runs._HELD
