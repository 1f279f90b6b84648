"""A publish killed with SIGKILL half-way leaves the last good version current and whole.

A real Python process publishes a version (20,000 customers); it says when its transaction has written
the first mart, and is then killed. Nothing in the process gets to clean up."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from engagement_box.governance import versions

REPO = Path(__file__).resolve().parents[1]

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import duckdb
    from engagement_box.governance import versions

    from tests.test_versions_kill import work_tables

    database, as_of, segment = sys.argv[1], sys.argv[2], sys.argv[3]
    con = duckdb.connect(database)
    work_tables(con, segment)
    publish_one = versions._publish_one

    def announced(con, mart, snapshot_id, current, work_as_of=None):
        publish_one(con, mart, snapshot_id, current, work_as_of)
        # the first mart is written inside the open transaction
        print("half-published", snapshot_id, flush=True)
        time.sleep(60)

    versions._publish_one = announced
    versions.publish(
        con, ["customer_rfm", "engagement_value"], run_id="killed",
        partition_key=None, as_of=as_of, settings={"segment": segment},
    )
    """
)
CUSTOMERS = 20_000


def work_tables(con: duckdb.DuckDBPyConnection, segment: str) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS work")
    con.execute(
        "CREATE OR REPLACE TABLE work.customer_rfm AS SELECT printf('C%07d', i) AS customer_id, "
        "$segment AS segment FROM range($n) t(i)",
        {"segment": segment, "n": CUSTOMERS},
    )
    con.execute(
        "CREATE OR REPLACE TABLE work.engagement_value AS SELECT printf('C%07d', i) AS customer_id,"
        " 'Champions' AS quadrant, i * 0.5 AS cev FROM range($n) t(i)",
        {"n": CUSTOMERS},
    )


def publish_here(database: Path, as_of: str, segment: str) -> versions.Snapshot:
    con = duckdb.connect(str(database))
    try:
        work_tables(con, segment)
        return versions.publish(
            con, ["customer_rfm", "engagement_value"], run_id="ok", partition_key=None,
            as_of=as_of, settings={"segment": segment},
        )  # fmt: skip
    finally:
        con.close()


def publisher(tmp_path: Path, database: Path, as_of: str, segment: str):
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    return subprocess.Popen(
        [sys.executable, str(script), str(database), as_of, segment],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("as_of", ["2025-03-31", "2025-01-31"], ids=["later month", "backfill"])
def test_a_publish_killed_half_way_leaves_the_last_good_version_current(tmp_path, as_of):
    database = tmp_path / "w.duckdb"
    assert publish_here(database, "2025-02-28", "Loyal").snapshot_id == 1

    killed = publisher(tmp_path, database, as_of, "Lost")
    assert killed.stdout is not None
    line = killed.stdout.readline()
    assert line.split() == ["half-published", "2"], killed.stderr.read() if killed.stderr else ""
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL

    con = duckdb.connect(str(database))
    try:
        current = con.execute(
            'SELECT snapshot_id, "tables" FROM marts.snapshots WHERE is_current'
        ).fetchall()
        assert [c[0] for c in current] == [1]
        assert json.loads(current[0][1]) == {
            "customer_rfm": CUSTOMERS,
            "engagement_value": CUSTOMERS,
        }
        assert con.execute(
            "SELECT count(*), count(DISTINCT segment), min(segment) FROM marts.customer_rfm_at("
            "(SELECT snapshot_id FROM marts.snapshots WHERE is_current))"
        ).fetchall() == [(CUSTOMERS, 1, "Loyal")]
        assert con.execute("SELECT count(*), min(segment) FROM marts.customer_rfm").fetchall() == [
            (CUSTOMERS, "Loyal")
        ]
        # Nothing of the killed version is anywhere.
        assert con.execute("SELECT count(*) FROM marts.snapshot_log").fetchall() == [(1,)]
        assert con.execute(
            "SELECT count(*) FROM history.customer_rfm WHERE snapshot_id <> 1"
        ).fetchall() == [(0,)]
    finally:
        con.close()

    # The next publish takes the id the killed one never got, and becomes current.
    again = publish_here(database, "2025-03-31", "Champions")
    assert (again.snapshot_id, again.current) == (2, True)
    con = duckdb.connect(str(database), read_only=True)
    try:
        assert con.execute(
            "SELECT snapshot_id FROM marts.snapshots WHERE is_current"
        ).fetchall() == [(2,)]
        assert con.execute(
            "SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration"
        ).fetchall() == [(1, 2)]
    finally:
        con.close()
