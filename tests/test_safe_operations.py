"""Safe operations: concurrent runs and runs killed with SIGKILL leave a readable, consistent
warehouse, and the next run succeeds. Real `engagement-box run` processes, really killed."""

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from engagement_box import generator
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


def start_run(exports: Path, database: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ENGAGEMENT_DATA_DIR": str(exports),
        "ENGAGEMENT_WAREHOUSE": str(database),
        "ENGAGEMENT_AUDIENCE_DIR": str(database.parent / "audiences"),
        "DAGSTER_HOME": str(database.parent / "dagster_home"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "engagement_box.cli", "run", "--month", "2025-12"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_consistent(database: Path) -> int:
    """Staging reconciles, every retained version is whole, marts = the current version.

    Returns the number of published versions."""
    if not database.exists():
        return 0
    con = duckdb.connect(str(database), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
        if (
            "staging" in schemas
            and con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'staging' "
                "AND table_name = 'ingested_files'"
            ).fetchone()[0]
        ):
            for source in SOURCES:
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


def test_runs_killed_at_random_points_leave_the_last_good_version(exports, tmp_path):
    database = tmp_path / "w.duckdb"
    first = start_run(exports, database)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert assert_consistent(database) == 1

    rng = random.Random(20261122)
    for _ in range(3):
        run = start_run(exports, database)
        time.sleep(rng.uniform(2.0, 12.0))
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
        versions_now = assert_consistent(database)
        assert versions_now >= 1  # the last good version is intact and readable

    last = start_run(exports, database)
    assert last.wait(timeout=300) == 0, last.stderr.read()
    # Same exports, settings and code as the first run: its version stands, no duplicate.
    assert assert_consistent(database) == 1


def test_two_runs_started_together_both_finish_one_after_the_other(exports, tmp_path):
    database = tmp_path / "w.duckdb"
    runs = [start_run(exports, database), start_run(exports, database)]
    codes = [r.wait(timeout=600) for r in runs]
    assert codes == [0, 0], [r.stderr.read()[-2000:] for r in runs]
    # The second run finds the first one's inputs unchanged and publishes no duplicate.
    assert assert_consistent(database) == 1
