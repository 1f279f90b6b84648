"""Through Dagster: months after the data ends publish no new version (their as-of is capped at
the last completed order, and every input is the same)."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from engagement_box import generator
from tests.test_pipeline_e2e import run_graph

pytestmark = pytest.mark.integration


def test_months_after_the_data_ends_reuse_the_last_version(tmp_path: Path):
    exports = tmp_path / "exports"
    generator.generate(
        exports, generator.GeneratorConfig(customers=300, seed=5, end=dt.date(2025, 6, 30))
    )
    database = tmp_path / "w.duckdb"
    assert run_graph(exports, database, partition="2025-06-01").success

    later = run_graph(exports, database, partition="2025-11-01")

    assert later.success
    con = duckdb.connect(str(database), read_only=True)
    try:
        snapshots = con.execute(
            "SELECT snapshot_id, partition_key, is_current FROM marts.snapshots"
        ).fetchall()
    finally:
        con.close()
    assert snapshots == [(1, "2025-06-01", True)]
    metadata = [
        e.materialization.metadata
        for e in later.get_asset_materialization_events()
        if e.asset_key.path[0] == "marts"
    ]
    assert {m["snapshot_id"].value for m in metadata} == {1}
    assert not any(m["published_new_version"].value for m in metadata)
    assert "inputs equal those of version 1" in metadata[0]["outcome"].value
