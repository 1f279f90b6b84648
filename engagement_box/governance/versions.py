"""Versioned marts: every publish is a snapshot that stays queryable with plain SQL.

Layout inside the warehouse file:
- `work.<mart>`: what the runs computed, rows per as-of date (`engagement_box.partitioned`),
  checked by blocking asset checks. Not for analysts.
- `marts.<mart>`: the current version (what analysts query by default): the one with the latest
  as-of date, and of those the newest. A backfill of a past month adds history without moving
  `marts` back in time.
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

from engagement_box.sql import load_sql, quote_identifier


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: int
    rows: dict[str, int]
    current: bool = True
    migration_rows: int = 0


def ensure_version_tables(con: duckdb.DuckDBPyConnection) -> None:
    for schema in ("work", "marts", "history"):
        con.execute(load_sql("versions/create_schema", schema=schema))
    con.execute(load_sql("versions/create_snapshots"))
    con.execute(load_sql("versions/create_segment_migration"))


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
    work_as_of: object = None,
) -> Snapshot:
    """Publish `work.<mart>` for every mart as one new snapshot, atomically.

    work_as_of: when given, only the work rows with that `as_of` (one partition's rows) are
    published; the work tables are keyed by as-of (`engagement_box.partitioned`)."""
    ensure_version_tables(con)
    missing = [m for m in marts if not table_exists(con, "work", m)]
    if missing:
        raise ValueError(f"nothing to publish for {missing}: work tables missing")
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(load_sql("versions/next_snapshot_id")).fetchone()
        snapshot_id = int(row[0]) if row else 1
        latest = con.execute(load_sql("versions/latest_as_of")).fetchone()
        current = as_of is None or latest is None or latest[0] is None or str(latest[0]) <= as_of
        rows = {}
        for mart in marts:
            rows[mart] = _publish_one(con, mart, snapshot_id, current, work_as_of)
        migration = _record_migration(con, snapshot_id, marts, as_of)
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
                "is_current": current,
            },
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Snapshot(snapshot_id, rows, current, migration)


def _publish_one(
    con: duckdb.DuckDBPyConnection,
    mart: str,
    snapshot_id: int,
    current: bool,
    work_as_of: object = None,
) -> int:
    name = quote_identifier(mart)
    # The work rows of this version: all of them, or one as-of's (a partition's) rows.
    rows = f"work.{name}"
    if work_as_of is not None:
        rows = f"(SELECT * FROM work.{name} WHERE as_of = $work_as_of)"
    given = {"work_as_of": work_as_of} if work_as_of is not None else {}
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
        f"INSERT INTO history.{name} BY NAME SELECT $snapshot_id AS snapshot_id, * FROM {rows}",
        {"snapshot_id": snapshot_id, **given},
    )
    if current or not table_exists(con, "marts", mart):
        con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS SELECT * FROM {rows}", given)
    con.execute(
        f"CREATE OR REPLACE MACRO marts.{quote_identifier(mart + '_at')}(version) AS TABLE "
        f"SELECT * EXCLUDE (snapshot_id) FROM history.{name} WHERE snapshot_id = version"
    )
    row = con.execute(f"SELECT count(*) FROM {rows}", given).fetchone()
    return int(row[0]) if row else 0


def snapshots(con: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_version_tables(con)
    cur = con.execute("SELECT * FROM marts.snapshots ORDER BY snapshot_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


MIGRATION_MARTS = ("customer_rfm", "engagement_value")


def _record_migration(
    con: duckdb.DuckDBPyConnection, snapshot_id: int, marts: list[str], as_of: str | None
) -> int:
    """Append the migration from the previous version (by as-of) to this one, if both exist."""
    if not all(m in marts for m in MIGRATION_MARTS):
        return 0
    previous = previous_snapshot(con, snapshot_id, as_of)
    if previous is None:
        return 0
    rows = segment_migration(con, previous, snapshot_id)
    con.register("migration_rows", rows)
    try:
        con.execute("INSERT INTO marts.segment_migration BY NAME SELECT * FROM migration_rows")
    finally:
        con.unregister("migration_rows")
    return rows.height


def segment_migration(con: duckdb.DuckDBPyConnection, from_snapshot: int, to_snapshot: int):
    """Customers moving between RFM segments and quadrants from one version to another."""
    return con.execute(
        load_sql("versions/segment_migration"),
        {"from_snapshot": from_snapshot, "to_snapshot": to_snapshot},
    ).pl()


def previous_snapshot(
    con: duckdb.DuckDBPyConnection, snapshot_id: int, as_of: str | None
) -> int | None:
    """The version `snapshot_id` (as of `as_of`) is compared with by default."""
    row = con.execute(
        load_sql("versions/previous_snapshot"), {"before_snapshot": snapshot_id, "as_of": as_of}
    ).fetchone()
    return int(row[0]) if row else None


@dataclass(frozen=True)
class Retention:
    expired: list[int]
    kept: int
    rows_deleted: int


def apply_retention(
    con: duckdb.DuckDBPyConnection,
    *,
    keep_versions: int,
    keep_days: int,
    now: datetime | None = None,
) -> Retention:
    """Drop the rows of versions the policy no longer keeps (see snapshots_to_expire.sql).

    The snapshot rows stay (with `expired_at`) as an audit trail; their data leaves `history.*`
    and `marts.segment_migration`. One transaction, then a CHECKPOINT so the space is reused.
    """
    if keep_versions < 1:
        raise ValueError("keep_versions must be at least 1")
    ensure_version_tables(con)
    now = now or datetime.now()
    expired = [
        int(r[0])
        for r in con.execute(
            load_sql("versions/snapshots_to_expire"),
            {"keep_versions": keep_versions, "keep_days": keep_days, "now": now},
        ).fetchall()
    ]
    deleted = 0
    if expired:
        con.execute("BEGIN TRANSACTION")
        try:
            for table in history_tables(con):
                row = con.execute(
                    f"DELETE FROM history.{quote_identifier(table)} "
                    "WHERE list_contains($expired, snapshot_id)",
                    {"expired": expired},
                ).fetchone()
                deleted += int(row[0]) if row else 0
            con.execute(
                "DELETE FROM marts.segment_migration "
                "WHERE list_contains($expired, from_snapshot) "
                "OR list_contains($expired, to_snapshot)",
                {"expired": expired},
            )
            con.execute(
                "UPDATE marts.snapshots SET expired_at = $now "
                "WHERE list_contains($expired, snapshot_id)",
                {"now": now, "expired": expired},
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
    row = con.execute("SELECT count(*) FROM marts.snapshots WHERE expired_at IS NULL").fetchone()
    return Retention(expired, int(row[0]) if row else 0, deleted)


def history_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'history' "
            "ORDER BY table_name"
        ).fetchall()
    ]
