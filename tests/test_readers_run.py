"""A real second process holds a read-only session on the published file through a whole run."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from engagement_box.governance.readers import default_working
from pipelines.definitions import defs
from pipelines.resources import EngagementConfig, ExportsResource, ModelSettings, Warehouse
from tests.pipeline_runs import copy_run

pytestmark = pytest.mark.integration

# Two readers. "hold": one read-only session kept open and queried in a loop until the stop file
# appears, then closed and opened again. "open": opens the file afresh, queries and closes it, in
# a loop (a separate process: DuckDB gives a process that still holds the file the same database).
# Each queries every 0.1 s: over 100 times in a run, and little CPU taken from the run itself.
READER = r"""
import json, os, sys, time
import duckdb
mode, path, stop = sys.argv[1:4]
current = "SELECT snapshot_id FROM marts.snapshots WHERE is_current"
seen, queries, failures = set(), 0, []
if mode == "hold":
    held = duckdb.connect(path, read_only=True)
    print(json.dumps({"held": held.execute(current).fetchone()[0]}), flush=True)
else:
    print(json.dumps({"opening": True}), flush=True)
while not os.path.exists(stop):
    try:
        con = held if mode == "hold" else duckdb.connect(path, read_only=True)
        seen.add(con.execute(current).fetchone()[0])
        con.execute("SELECT count(*), sum(clv) FROM marts.customer_value").fetchone()
        con.execute("SELECT count(*) FROM history.customer_rfm").fetchone()
        if mode != "hold":
            con.close()
        queries += 1
    except Exception as exc:
        failures.append(str(exc).splitlines()[0])
    time.sleep(0.1)
if mode == "hold":
    held.close()
again = duckdb.connect(path, read_only=True)
print(json.dumps({"seen": sorted(seen), "queries": queries, "failures": failures[:5],
                  "after_reconnect": again.execute(current).fetchone()[0]}), flush=True)
"""


def run_month(exports: Path, database: Path, partition: str):
    resources = {
        # A lock wait would fail at once: the run must never wait for the reader.
        "warehouse": Warehouse(database=str(database), lock_timeout_seconds=0.5),
        "exports": ExportsResource(data_dir=str(exports)),
        "model_settings": ModelSettings(),
        "engagement_config": EngagementConfig(audience_dir=str(database.parent / "audiences")),
    }
    job = defs.resolve_job_def("engagement_pipeline")
    return job.execute_in_process(
        resources=resources, partition_key=partition, raise_on_error=False
    )


def test_a_reader_holds_the_published_file_through_a_run_that_picks_up_a_new_export(
    december_run, tmp_path: Path
):
    first = copy_run(december_run, tmp_path)  # version 1 published, the file readers open
    exports, database = first.exports, first.database
    working = default_working(database)
    staged = "SELECT count(*) FROM staging.orders"
    before = query(working, staged)
    # A late order in a new export file: the next run stages it and publishes version 2.
    (exports / "orders" / "late.csv").write_text(
        "order_id,customer_id,ordered_at,net_amount,currency,status,channel\n"
        "late-1,C0000001,2025-12-30 12:00:00,10.00,USD,completed,web\n"
    )
    stop = tmp_path / "stop"
    started = [
        subprocess.Popen(
            [sys.executable, "-c", READER, mode, str(database), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("hold", "open")
    ]
    try:
        assert json.loads(started[0].stdout.readline()) == {"held": 1}
        assert json.loads(started[1].stdout.readline()) == {"opening": True}

        result = run_month(exports, database, "2025-12-01")  # a whole run, the reader holding on

        stop.touch()
        outputs = [reader.communicate(timeout=60) for reader in started]
    finally:
        for reader in started:
            reader.kill()
    assert result.success
    # The new file, and only it, was read; its row was staged.
    (orders,) = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["staging", "orders"])
    ]
    assert orders["files_ingested"].value == 1
    assert query(working, staged) == before + 1

    held, opened = (json.loads(out.splitlines()[-1]) for out, _ in outputs)
    # The held session saw the old version all through the run and, reconnected, the new one.
    assert held["seen"] == [1] and held["failures"] == [] and held["queries"] > 10
    assert held["after_reconnect"] == 2
    # Opening the file never failed during the run: first the old version, then the new one.
    assert opened["failures"] == [] and opened["queries"] > 10
    assert opened["seen"] in ([1, 2], [1]) and opened["after_reconnect"] == 2
    assert query(database, "SELECT count(*) FROM marts.snapshots WHERE is_current") == 1


def query(database: Path, statement: str):
    """The one value `statement` returns from `database`, opened read-only."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(statement).fetchone()[0]
    finally:
        con.close()
