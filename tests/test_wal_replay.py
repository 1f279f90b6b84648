"""A process killed while the staging schema is being created leaves a warehouse that opens.

DuckDB 1.5.5 cannot replay a write-ahead log that holds `CREATE SCHEMA s` and then
`CREATE TYPE s.t AS ENUM (...)`: every later open fails. The first test reproduces that in
plain DuckDB and is expected to fail; when a DuckDB upgrade fixes the defect it passes, pytest
reports it (strict xfail), and the CHECKPOINT in `create_staged_table` may go.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]


def die_after(code: str, database: Path) -> None:
    """Run `code` (with `con` open on `database`) in a new process that ends like a kill: no
    checkpoint, no close, the write-ahead log left as it is."""
    script = textwrap.dedent(
        """
        import os, sys, duckdb
        con = duckdb.connect(sys.argv[1])
        {code}
        os._exit(0)
        """
    ).format(code=textwrap.dedent(code).strip())
    subprocess.run([sys.executable, "-c", script, str(database)], cwd=REPO, check=True)


@pytest.mark.xfail(
    strict=True,
    raises=duckdb.CatalogException,
    reason="DuckDB 1.5.5 defect: a log holding CREATE SCHEMA and CREATE TYPE in it cannot replay",
)
def test_duckdb_replays_a_log_holding_a_new_schema_and_its_enum_type(tmp_path):
    database = tmp_path / "w.duckdb"
    die_after(
        """
        con.execute("CREATE SCHEMA s")
        con.execute("CREATE TYPE s.t AS ENUM ('a', 'b')")
        """,
        database,
    )
    assert Path(f"{database}.wal").exists()
    con = duckdb.connect(str(database), read_only=True)
    con.close()


def test_a_run_killed_right_after_creating_the_staging_tables_leaves_a_warehouse_that_opens(
    tmp_path,
):
    database = tmp_path / "w.duckdb"
    die_after(
        """
        from engagement_box.staging.ingestion import ensure_staging
        ensure_staging(con)
        """,
        database,
    )
    con = duckdb.connect(str(database), read_only=True)
    try:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'staging'"
            ).fetchall()
        }
    finally:
        con.close()
    assert {"orders", "customers", "reviews", "social", "referrals", "quarantine"} <= tables
