"""Versioned marts: every publish is a snapshot that stays queryable with plain SQL.

Layout inside the warehouse file:
- `work.<mart>`: what the latest run computed, checked by blocking asset checks. Not for analysts.
- `marts.<mart>`: the latest published version (what analysts query by default).
- `history.<mart>`: every retained version, with a `snapshot_id` column.
- `marts.snapshots`: one row per publish (id, time, run, partition, as-of date, settings, rows).
- `marts.<mart>_at(snapshot_id)`: a table macro, time travel in one call.

A publish copies every work table into `marts` and `history` in ONE transaction with one new
snapshot id, so all marts of a version are consistent and a failed or killed run leaves the last
good version intact. See README "Versions" for why this and not DuckLake.

No Dagster import here.
"""

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.sql import load_sql, quote_identifier


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: int
    rows: dict[str, int]


def ensure_version_tables(con: duckdb.DuckDBPyConnection) -> None:
    for schema in ("work", "marts", "history"):
        con.execute(load_sql("versions/create_schema", schema=schema))
    con.execute(load_sql("versions/create_snapshots"))


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return [
        (name, dtype)
        for name, dtype in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $schema AND table_name = $table ORDER BY ordinal_position",
            {"schema": schema, "table": table},
        ).fetchall()
    ]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(_columns(con, schema, table))


def publish(
    con: duckdb.DuckDBPyConnection,
    marts: list[str],
    *,
    run_id: str,
    partition_key: str | None,
    as_of: str | None,
    settings: dict,
) -> Snapshot:
    """Publish `work.<mart>` for every mart as one new snapshot, atomically."""
    ensure_version_tables(con)
    missing = [m for m in marts if not table_exists(con, "work", m)]
    if missing:
        raise ValueError(f"nothing to publish for {missing}: work tables missing")
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(load_sql("versions/next_snapshot_id")).fetchone()
        snapshot_id = int(row[0]) if row else 1
        rows = {}
        for mart in marts:
            rows[mart] = _publish_one(con, mart, snapshot_id)
        con.execute(
            load_sql("versions/insert_snapshot"),
            {
                "snapshot_id": snapshot_id,
                "published_at": datetime.now(),
                "run_id": run_id,
                "partition_key": partition_key,
                "as_of": as_of,
                "settings": json.dumps(settings, sort_keys=True, default=str),
                "tables": json.dumps(rows, sort_keys=True),
            },
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Snapshot(snapshot_id, rows)


def _publish_one(con: duckdb.DuckDBPyConnection, mart: str, snapshot_id: int) -> int:
    name = quote_identifier(mart)
    work_columns = _columns(con, "work", mart)
    if not table_exists(con, "history", mart):
        con.execute(
            f"CREATE TABLE history.{name} AS "
            f"SELECT CAST(NULL AS BIGINT) AS snapshot_id, * FROM work.{name} LIMIT 0"
        )
    else:  # a new column in a later version: older versions show NULL there
        known = {c for c, _ in _columns(con, "history", mart)}
        for column, dtype in work_columns:
            if column not in known:
                con.execute(
                    f"ALTER TABLE history.{name} ADD COLUMN {quote_identifier(column)} {dtype}"
                )
    con.execute(
        f"INSERT INTO history.{name} BY NAME "
        f"SELECT $snapshot_id AS snapshot_id, * FROM work.{name}",
        {"snapshot_id": snapshot_id},
    )
    con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS SELECT * FROM work.{name}")
    con.execute(
        f"CREATE OR REPLACE MACRO marts.{quote_identifier(mart + '_at')}(version) AS TABLE "
        f"SELECT * EXCLUDE (snapshot_id) FROM history.{name} WHERE snapshot_id = version"
    )
    row = con.execute(f"SELECT count(*) FROM marts.{name}").fetchone()
    return int(row[0]) if row else 0


def snapshots(con: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_version_tables(con)
    cur = con.execute("SELECT * FROM marts.snapshots ORDER BY snapshot_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
