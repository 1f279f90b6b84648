"""Versioned marts: every publish is a snapshot that stays queryable with plain SQL.

Layout inside the warehouse file:
- `work.<mart>`: what the runs computed, rows per as-of date (`engagement_box.partitioned`),
  checked by blocking asset checks. Not for analysts. Retention deletes the as-ofs no retained
  version links, except each work table's newest (`trim_work`).
- `marts.<mart>`: the current version (what analysts query by default): the one with the latest
  as-of date, and of those the newest, unless a later run replaced it (run for its as-of's
  month or later, with an earlier as-of: the data moved back, an order cancelled or a person
  erased; chain.sql); a view of that version's rows in `history.<mart>`. A backfill of a past
  month adds history without moving `marts` back in time.
- `history.<mart>`: every retained version, with a `snapshot_id` column: a view. A version
  published from one as-of's work rows (every run of the pipeline) keeps its rows where the run
  wrote them, in `work.<mart>` (linked in `history_rows.from_work`); the rows of versions whose
  work rows were replaced since (a rerun of the as-of copies them first: `keep_published_rows`)
  or that were published from whole work tables are in `history_rows.<mart>`.
- `marts.snapshot_log`: one row per publish (id, time, run, partition, as-of, settings, rows,
  inputs fingerprint, expiry); `marts.current_version`: the one version `marts.*` holds (a
  one-row table whose primary key allows no second row); `marts.snapshots`: the view analysts
  read, the log with `is_current`.
- `marts.<mart>_at(snapshot_id)`: a table macro, time travel in one call.
- `marts.segment_migration`: the moves between every consecutive pair of the migration chain
  (retained versions in as-of order; a rerun of an as-of replaces that as-of's version, and a
  version the data moved back under leaves it: chain.sql).

A publish links every mart's work rows of its as-of to one new snapshot id (the rows are written
once, by the step; `history.<mart>` and `marts.<mart>` view them) in ONE transaction, so all
marts of a version are consistent and a failed or killed run leaves the last good version intact.
A publish whose inputs (staged files, erasures, settings, code) equal those of the chain's version
of that as-of publishes nothing. A version published when the data moved back under the current
one (orders cancelled, a buyer erased) replaces it (chain.sql). See
docs/OPERATIONS.md, "Versions and time travel", for why this and not DuckLake.

No Dagster import here.
"""

import functools
import hashlib
import importlib.metadata
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from engagement_box import dictionary
from engagement_box.clock import in_zone, shop_zone, utc_now
from engagement_box.sql import (
    SQL_DIR,
    columns,
    load_sql,
    quote_identifier,
    quote_literal,
    quote_name,
    relation_exists,
    sql_template,
    transaction,
)
from engagement_box.sql import table_exists as sql_table_exists
from engagement_box.value import rfm


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: int
    rows: dict[str, int]
    current: bool = True
    migration_rows: int = 0
    published: bool = True  # False: the inputs equal those of version `snapshot_id`, kept as is
    inputs_fingerprint: str | None = None
    # The current version this one replaced with an earlier as-of (the data moved back: a
    # re-sent export cancelled the newest orders), as (snapshot id, as-of); None otherwise.
    replaced: tuple[int, str] | None = None


def replaced_words(snapshot_id: object, as_of: object) -> str:
    """How a run says its version replaced the current one with an earlier as-of (the step's
    outcome and the CLI's last line say it alike)."""
    return (
        f"it replaces version {snapshot_id} (as of {as_of}) as the current one: the data moved "
        "back (its as-of is earlier)"
    )


# ----------------------------------------------------------------------------------------------
# Inputs fingerprint

# Keys of the run's settings that name the run, not the numbers: two runs that differ only there
# compute the same version. Whether ENGAGEMENT_AS_OF pinned the as-of is one: the resolved as-of
# date is in the fingerprint, and runs alternately pinned to a month's as-of and not published
# the same numbers again each time.
RUN_ONLY_SETTINGS = frozenset({"partition_key", "as_of_pinned"})
# Libraries whose version can change the numbers.
MODEL_LIBRARIES = ("duckdb", "polars", "numpy", "scipy", "pandas", "lifetimes", "scikit-learn")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Code that does not compute published numbers.
_NOT_MODEL_CODE = frozenset({"cli.py", "generator.py", "reports.py"})


@functools.cache
def model_code_version() -> str:
    """A hash of the code that computes the marts: the domain package, the SQL files, the assets
    beside them, and the versions of the numeric libraries. Any change to them is a new code
    version, so a rerun after an upgrade publishes a new version instead of reusing one."""
    digest = hashlib.sha256()
    roots = [_PACKAGE_DIR, SQL_DIR, _PACKAGE_DIR.parent / "assets"]
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".sql")):
            if path.name in _NOT_MODEL_CODE and path.parent == _PACKAGE_DIR:
                continue
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    for library in MODEL_LIBRARIES:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{library}=={version}\0".encode())
    return digest.hexdigest()[:16]


def json_value(value: object) -> object:
    """A setting's value as JSON holds it: dates as ISO text, a mapping as an object (the social
    points: `json_extract` reads them, where Python's text of a dict is no JSON), other objects
    as their text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return str(value)


def erasure_requests(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every erasure request that deleted a row of the warehouse, in order: such an erasure
    changes the staged rows, so it is part of what versions and incremental steps are computed
    from. A request that matched no row (someone never seen, a mistyped email) changes nothing
    computed: it is left out, so it costs no recomputation and no copy of a version. (Its
    subject's rows in a file read later are kept out by the ingest; that file is new input.)"""
    if not table_exists(con, "staging", "erasure_log"):
        return []
    return [r[0] for r in con.execute(load_sql("staging/erasure_requests")).fetchall()]


def files_staging_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(source, path, sha256) of every export file taken in that stages a row, in that order.
    A header-only file, or one whose rows were all quarantined (an export sent again under
    another name), changes no staged row: what a version or a step is computed from leaves it
    out (`inputs_fingerprint`, `engagement_box.incremental.inputs`)."""
    if not table_exists(con, "staging", "ingested_files"):
        return []
    return con.execute(load_sql("staging/files_staging_rows")).fetchall()


def later_consents(con: duckdb.DuckDBPyConnection) -> list[list]:
    """[customer_id, marketing_consent, source_file, source_row] of each staged profile whose
    marketing consent a later customers file changed (`sql/staging/later_profile_consents.sql`:
    the latest file's word wins, a withdrawal or a re-consent), by id. The identity step applies
    them to the merged persons (`identity/links.py`); versions and the identity step are computed
    from them (`inputs_fingerprint`, `incremental.inputs`)."""
    if not later_consents_staged(con):
        return []
    if sql_table_exists(con, "staging", "later_consents_memo"):
        (token,) = con.execute(load_sql("staging/customers_state_token")).fetchone()
        kept = con.execute(load_sql("staging/memo_later_consents"), {"token": token}).fetchall()
        if kept:  # its marker row (customer_id NULL), then the answer
            return [[str(c), bool(v), str(f), int(r)] for c, v, f, r in kept if c is not None]
    return _later_consents(con)


def _later_consents(con: duckdb.DuckDBPyConnection) -> list[list]:
    # A warehouse of an earlier release, read before this release's first ingest adds the column
    recorded = {name for name, _ in columns(con, "staging", "ingested_files")}
    content = "f.content_taken_in" if "content_taken_in" in recorded else "NULL"
    sql = sql_template("staging/later_profile_consents").format(content=content)
    rows = con.execute(sql).fetchall()
    return [[str(c), bool(v), str(f), int(r)] for c, v, f, r in rows]


def keep_later_consents(con: duckdb.DuckDBPyConnection) -> None:
    """Compute `later_consents` and keep the answer for its readers while what it reads stays
    as it is (`staging.later_consents_memo`, sql/staging/create_later_consents_memo.sql): the
    writers that change it call this, the customers' ingest and an erasure. A reader whose
    staged rows differ from the kept answer's computes its own. Not inside a transaction."""
    import polars as pl

    if not later_consents_staged(con):
        return
    (token,) = con.execute(load_sql("staging/customers_state_token")).fetchone()
    rows = _later_consents(con)
    frame = pl.DataFrame(
        [(None, None, None, None), *rows],
        schema={
            "customer_id": pl.String,
            "marketing_consent": pl.Boolean,
            "source_file": pl.String,
            "source_row": pl.Int64,
        },
        orient="row",
    )
    with transaction(con):
        con.execute(load_sql("staging/create_later_consents_memo"))
        con.execute(load_sql("staging/clear_later_consents_memo"))
        con.register("consent_rows", frame.to_arrow())
        try:
            con.execute(load_sql("staging/keep_later_consents"), {"token": token})
        finally:
            con.unregister("consent_rows")


def later_consents_staged(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the tables `sql/staging/later_profile_consents.sql` reads are there (a warehouse
    that staged customers: none of them before)."""
    return (
        table_exists(con, "staging", "customers")
        and table_exists(con, "staging", "quarantine")
        and table_exists(con, "staging", "ingested_files")
    )


def inputs_fingerprint(
    con: duckdb.DuckDBPyConnection, *, as_of: object, settings: Mapping[str, object]
) -> str:
    """The hash of everything a version is computed from, before computing it.

    Covers: the as-of date; every export file taken in that stages a row (`staging.
    ingested_files`: source, path, sha256; a header-only file, or one whose rows are all
    quarantined, changes no mart, so it publishes no version of the same numbers); every
    erasure request (`staging.erasure_log`), since an erasure changes the staged
    rows; every marketing consent a later customers file changed (`later_consents`: its rows are
    quarantined repeats, yet the person's consent follows them); the run's settings except
    those in `RUN_ONLY_SETTINGS`; and `model_code_version()`.
    Equal fingerprints mean equal inputs, so the published numbers would be the same. Cheap (no
    staged row is read): an asset can call it first and skip its work when
    `version_with_inputs(con, fingerprint)` finds a version.
    """
    files = [list(r) for r in files_staging_rows(con)]
    erasures = erasure_requests(con)
    payload = {
        "as_of": json_value(as_of),
        "settings": {
            str(k): json_value(v) for k, v in settings.items() if k not in RUN_ONLY_SETTINGS
        },
        "files": files,
        "erasures": erasures,
        "code": model_code_version(),
    }
    consents = later_consents(con)
    if consents:  # absent when none: the fingerprints of versions before it stay the same
        payload["consent"] = consents
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def version_with_inputs(
    con: duckdb.DuckDBPyConnection,
    fingerprint: str,
    partition_key: str | None = None,
    as_of: str | None = None,
) -> int | None:
    """The retained version in the migration chain computed from these inputs, or None.

    None also when a version the run would publish becomes current (`_would_be_current`, given
    the run's partition and as-of) and the version found is not the current one: a backfill
    published it (with the same inputs: the partition is not one) while the data had moved
    back under the current version, which only a run of its month or a later one replaces
    (chain.sql). And None while the current version is not in the chain (a warehouse published
    before chain.sql's rule). The run then publishes, and its version becomes current."""
    if not table_exists(con, "marts", "snapshot_log"):
        return None
    chain = migration_chain(con)
    row = con.execute(
        load_sql("marts/version_with_inputs"), {"fingerprint": fingerprint, "chain": chain}
    )
    found = row.fetchone()
    if not found:
        return None
    current = current_version(con)
    if current is not None and current not in chain:
        return None
    if int(found[0]) != current and _would_be_current(con, partition_key, as_of):
        return None
    return int(found[0])


def _would_be_current(
    con: duckdb.DuckDBPyConnection, partition_key: str | None, as_of: str | None
) -> bool:
    """Whether a version of this partition and as-of, published now, would be current: its
    as-of is not before the current version's, or it replaces it (chain.sql: run for the
    current version's as-of month or a later one, with an earlier as-of)."""
    if as_of is None:
        return False  # not known to the caller: as before this rule
    current = con.execute(load_sql("marts/current_as_of")).fetchone()
    if current is None or current[1] is None:
        return True
    current_as_of = current[1]
    if str(current_as_of) <= as_of:
        return True
    return partition_key is not None and partition_key[:7] >= str(current_as_of)[:7]


# ----------------------------------------------------------------------------------------------
# Tables


_VERSION_TABLES = {
    ("marts", "snapshot_log"),
    ("marts", "current_version"),
    ("marts", "snapshots"),
    ("marts", "segment_migration"),
    ("history_rows", "from_work"),
    ("work", None),
    ("history", None),
    ("history_rows", None),
}
# Where the rows of versions live that are not work rows (any more): `history_rows.<mart>`;
# `history_rows.from_work` links the others to their work rows (sql/marts/create_version_links.sql).
ROWS = "history_rows"
LINKS = "from_work"
_LEGACY = "base table "  # version_tables.sql: a base table left in `history` by an old warehouse
# Columns of `marts.snapshots` later releases added: a view without them is made again (and the
# log gets the retirement columns, sql/marts/add_retirement_columns.sql).
_LATER_SNAPSHOTS_COLUMNS = frozenset({"stands_for_as_of", "retired_at", "retired_reason"})


def ensure_version_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the version tables that are missing (in one transaction: each commit of a DDL
    statement costs a disk sync), and adopt a warehouse from before `marts.snapshot_log`."""
    found = {
        (schema, table)
        for schema, table in con.execute(load_sql("marts/version_tables")).fetchall()
    }
    legacy = sorted(
        str(table).removeprefix(_LEGACY)
        for schema, table in found
        if schema == "history" and table is not None and str(table).startswith(_LEGACY)
    )
    if _VERSION_TABLES <= found and not legacy and not _is_base_table(con, "marts", "snapshots"):
        shown = {name for name, _ in _columns(con, "marts", "snapshots")}
        if not _LATER_SNAPSHOTS_COLUMNS <= shown:
            with transaction(con):  # a warehouse from before the columns: the log and its view
                con.execute(load_sql("marts/add_retirement_columns"))
                _create_snapshots_view(con)
        _typed_settings(con)
        return
    with transaction(con):
        for schema in ("work", "marts", "history", ROWS):
            con.execute(load_sql("marts/create_schema", schema=schema))
        adopt = _is_base_table(con, "marts", "snapshots")
        con.execute(load_sql("marts/create_snapshot_log"))
        con.execute(load_sql("marts/add_retirement_columns"))  # a log an earlier release made
        con.execute(load_sql("marts/create_current_version"))
        con.execute(load_sql("marts/create_segment_migration"))
        con.execute(load_sql("marts/create_version_links"))
        for mart in legacy:  # history.<mart> was the table of every version's rows: moved once
            con.execute(load_sql("history_rows/create_from_legacy_history", mart=mart))
            con.execute(load_sql("history/drop_legacy_table", mart=mart))
            _history_view(con, mart)
        if adopt:  # a warehouse from before marts.snapshot_log
            con.execute(load_sql("marts/adopt_snapshots_table"))
            con.execute(load_sql("marts/adopt_current_version"))
            con.execute(load_sql("marts/drop_snapshots_table"))
        _create_snapshots_view(con)
        if adopt:
            refresh_migration(con)


# Python's text of a value, as versions published before the typed JSON wrote it.
_PYTHON_TEXT = {"None": None, "True": True, "False": False}


def _typed_settings(con: duckdb.DuckDBPyConnection) -> int:
    """Give versions published before `marts.snapshot_log.settings` was typed JSON the JSON
    later ones hold: 'None', 'True' and 'False' were Python's text of null, true and false, so
    `settings->>'purchase_model' IS NOT NULL` took such a version for one pinned to a model
    named None (a review of an upgrade). Numbers kept as text read the same through `->>`
    and stay. Returns the versions changed; none once done."""
    rows = con.execute(load_sql("marts/settings_in_python_text")).fetchall()
    if not rows:
        return 0
    with transaction(con):
        for snapshot_id, text in rows:
            settings = {
                key: _PYTHON_TEXT.get(value, value) if isinstance(value, str) else value
                for key, value in json.loads(text).items()
            }
            con.execute(
                load_sql("marts/update_snapshot_settings"),
                {"settings": json.dumps(settings, sort_keys=True), "id": snapshot_id},
            )
    return len(rows)


def _create_snapshots_view(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create marts.snapshots with its descriptions: replacing a view drops its comments."""
    con.execute(snapshots_view_sql())
    dictionary.comment_on(con, "marts", "snapshots")


def snapshots_view_sql() -> str:
    """CREATE OR REPLACE VIEW marts.snapshots, with the migration chain's versions marked."""
    return sql_template("marts/create_snapshots_view").format(chain=load_sql("marts/chain"))


def _is_base_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return sql_table_exists(con, schema, table)


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return columns(con, schema, table)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Is `schema.table` a table or a view?"""
    return relation_exists(con, schema, table)


def current_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The version `marts.*` holds (None before the first publish)."""
    return current_version_as_of(con)[0]


def current_version_as_of(con: duckdb.DuckDBPyConnection) -> tuple[int | None, date | None]:
    """The version `marts.*` holds and its as-of date ((None, None) before the first publish)."""
    if not table_exists(con, "marts", "current_version"):
        return None, None
    row = con.execute(load_sql("marts/current_as_of")).fetchone()
    return (int(row[0]), row[1]) if row else (None, None)


# ----------------------------------------------------------------------------------------------
# Publish


def publish(
    con: duckdb.DuckDBPyConnection,
    marts: list[str],
    *,
    run_id: str,
    partition_key: str | None,
    as_of: str | None,
    settings: Mapping[str, object],
    fingerprint: str | None = None,
    work_as_of: object = None,
) -> Snapshot:
    """Publish `work.<mart>` for every mart as one new snapshot, atomically.

    work_as_of: when given, only the work rows with that `as_of` (one partition's rows) are
    published; the work tables are keyed by as-of (`engagement_box.partitioned`).
    When the inputs fingerprint (computed here unless given) equals that of the chain's version
    of this as-of, nothing is written and the returned Snapshot has `published=False` and that
    version's id. Otherwise the new version becomes current when its as-of is not before the
    current version's, or when it replaces the current version (published for the current
    version's as-of month or later with an earlier as-of: the data moved back, chain.sql), and
    the migration chain is brought up to date, all in one transaction.
    """
    ensure_version_tables(con)
    dictionary.rename_legacy_columns(con)
    missing = [m for m in marts if not table_exists(con, "work", m)]
    if missing:
        raise ValueError(f"nothing to publish for {missing}: work tables missing")
    if fingerprint is None:
        fingerprint = inputs_fingerprint(con, as_of=as_of, settings=settings)
    with transaction(con):
        existing = version_with_inputs(con, fingerprint, partition_key, as_of)
        if existing is None:
            snapshot = _publish_new(
                con, marts, run_id, partition_key, as_of, settings, fingerprint, work_as_of
            )
    if existing is not None:
        return _unchanged(con, existing, fingerprint)
    return snapshot


def _publish_new(
    con: duckdb.DuckDBPyConnection,
    marts: list[str],
    run_id: str | None,
    partition_key: str | None,
    as_of: str | None,
    settings: Mapping[str, object],
    fingerprint: str,
    work_as_of: object,
) -> Snapshot:
    """Write one new version (inside the caller's transaction)."""
    row = con.execute(load_sql("marts/next_snapshot_id")).fetchone()
    snapshot_id = int(row[0]) if row else 1
    latest = con.execute(load_sql("marts/current_as_of")).fetchone()
    current = as_of is None or latest is None or latest[1] is None or str(latest[1]) <= as_of
    rows = {mart: _count_work(con, mart, work_as_of) for mart in marts}
    con.execute(
        load_sql("marts/insert_snapshot"),
        {
            "snapshot_id": snapshot_id,
            "published_at": utc_now(),
            "run_id": run_id,
            "partition_key": partition_key,
            "as_of": as_of,
            "settings": json.dumps(dict(settings), sort_keys=True, default=str),
            "tables": json.dumps(rows, sort_keys=True),
            "inputs_fingerprint": fingerprint,
        },
    )
    replaced = None
    if not current and latest is not None:
        # The data moved back under the current version (chain.sql: this version replaces it,
        # and every version as far ahead): this one, as far as the data goes now, is current.
        chain = migration_chain(con)
        current = int(latest[0]) not in chain and chain[-1:] == [snapshot_id]
        replaced = (int(latest[0]), str(latest[1])) if current else None
    for mart in marts:
        _publish_one(con, mart, snapshot_id, current, work_as_of)
    if current:
        con.execute(load_sql("marts/set_current_version"), {"snapshot_id": snapshot_id})
    migration = refresh_migration(con)
    describe_tables(con, marts)
    return Snapshot(snapshot_id, rows, current, migration, True, fingerprint, replaced)


def _unchanged(con: duckdb.DuckDBPyConnection, snapshot_id: int, fingerprint: str) -> Snapshot:
    row = con.execute(load_sql("marts/snapshot_row_counts"), {"id": snapshot_id}).fetchone()
    rows = {str(k): int(v) for k, v in json.loads(row[0] or "{}").items()} if row else {}
    current = current_version(con) == snapshot_id
    return Snapshot(snapshot_id, rows, current, 0, False, fingerprint)


def _count_work(con: duckdb.DuckDBPyConnection, mart: str, work_as_of: object = None) -> int:
    """The work rows of a version: all of `work.<mart>`, or one as-of's (a partition's) rows."""
    if work_as_of is None:
        row = con.execute(load_sql("work/count_rows_to_publish", table=mart)).fetchone()
    else:
        row = con.execute(
            load_sql("work/count_as_of_rows_to_publish", table=mart), {"work_as_of": work_as_of}
        ).fetchone()
    return int(row[0]) if row else 0


def _publish_one(
    con: duckdb.DuckDBPyConnection,
    mart: str,
    snapshot_id: int,
    current: bool,
    work_as_of: object = None,
) -> None:
    """The version's rows of `mart`: one as-of's work rows are linked where they are (written
    once, by the step); a whole work table (no `work_as_of`) is copied to `history_rows.<mart>`."""
    work_columns = _columns(con, "work", mart)
    _rows_table(con, mart, work_columns)
    if work_as_of is None:
        con.execute(
            load_sql("history_rows/insert_version_rows", mart=mart), {"snapshot_id": snapshot_id}
        )
    else:
        con.execute(
            load_sql("history_rows/insert_version_link"),
            {"snapshot_id": snapshot_id, "mart": mart, "as_of": work_as_of},
        )
    _history_view(con, mart)
    if current or not table_exists(con, "marts", mart):
        _point_at_current(con, mart, [column for column, _ in work_columns])
    con.execute(time_travel_macro(mart))
    con.execute(time_travel_comment(mart))


def time_travel_macro(
    mart: str,
    rows: str | None = None,
    retained: list[int] | None = None,
    deleted: tuple[tuple[int, ...], str] | None = None,
) -> str:
    """The statement creating `marts.<mart>_at(version)` (sql/marts/create_time_travel_macro.sql).

    By default (the working database) it reads `history.<mart>` and checks the version against
    `marts.snapshots`. The published file passes `rows` (the `read_parquet` of its versions'
    files, made by `readers`) and `retained` (the retained versions), so the macro names none of
    the file's tables and works under any name the file is attached as; and `deleted`: the
    versions that had a file and the literal of the files' pattern, so that a version whose file
    is gone since the session opened (retention, an erasure) says so."""
    name = quote_identifier(mart)
    if retained is None:
        listed = load_sql("marts/retained_versions")
    else:  # integers of the snapshot log, written as numbers (DDL binds no parameter)
        listed = bigint_list(retained)
    gone = ""
    if deleted is not None:
        had, pattern = deleted
        gone = (
            f"\n        WHEN list_contains({bigint_list(had)}, number) AND NOT EXISTS "
            f"(SELECT 1 FROM glob({pattern}) AS g WHERE parse_filename(g.file) = "
            "'snapshot_' || number || '.parquet') THEN error('version ' || number || ' was "
            "deleted after this session "
            "opened the file (retention expired it, or an erasure): close every connection to "
            "the file in this process, then connect again; SELECT snapshot_id, as_of, "
            "stands_for_as_of FROM marts.snapshots WHERE expired_at IS NULL then lists the "
            "versions there are')"
        )
    return sql_template("marts/create_time_travel_macro").format(
        macro=quote_identifier(f"{mart}_at"),
        label=f"{mart}_at",  # a plain name: quote_identifier above refuses any other
        rows=rows or f"history.{name}",
        retained=listed,
        deleted=gone,
    )


def bigint_list(values) -> str:
    """Integers as a SQL list literal (DDL binds no parameter; `int` keeps them numbers)."""
    return "CAST([" + ", ".join(str(int(v)) for v in sorted(values)) + "] AS BIGINT[])"


def time_travel_comment(mart: str) -> str:
    """The description of `marts.<mart>_at` (COMMENT ON MACRO TABLE; the text is a constant of
    the code, quoted as a literal: DuckDB binds no parameter there)."""
    text = (
        f"The rows of marts.{mart} in one retained version: marts.{mart}_at(snapshot_id), e.g. "
        f"marts.{mart}_at((SELECT snapshot_id FROM marts.snapshots WHERE is_current)). A version "
        "that is expired, unknown or NULL is an error, not an empty result."
    )
    return f"COMMENT ON MACRO TABLE marts.{quote_identifier(f'{mart}_at')} IS {quote_literal(text)}"


def _rows_table(
    con: duckdb.DuckDBPyConnection, mart: str, work_columns: list[tuple[str, str]]
) -> None:
    """`history_rows.<mart>` with the work table's columns: created with the first version, a
    column added when a later version brings one (older versions show NULL there)."""
    if not sql_table_exists(con, ROWS, mart):
        con.execute(load_sql("history_rows/create_version_rows", mart=mart))
        return
    name = quote_identifier(mart)
    known = {c for c, _ in _columns(con, ROWS, mart)}
    for column, dtype in work_columns:
        if column not in known:
            con.execute(
                sql_template("history_rows/add_column").format(
                    mart=name, column=quote_identifier(column), type=dtype
                )
            )


def _history_view(con: duckdb.DuckDBPyConnection, mart: str) -> None:
    """`history.<mart>`: every retained version's rows with its id, the copied ones
    (`history_rows.<mart>`) and the linked work rows, in one view."""
    name = quote_identifier(mart)
    rows = "history/version_rows" if _links_work(con, mart) else "history/copied_version_rows"
    source = sql_template(rows).format(mart=name, mart_literal=quote_literal(mart))
    select = ordered_columns(con, mart, source)
    con.execute(sql_template("history/create_view").format(mart=name, select=select))


def ordered_columns(con: duckdb.DuckDBPyConnection, mart: str, source: str) -> str:
    """`SELECT` of the columns of the relation `source` (a query, or a table function) in the
    data dictionary's order (`dictionary.in_documented_order`). The version files are written
    from `history.<mart>`, so they keep that order too."""
    names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM ({source})").fetchall()]
    return f"SELECT {documented_list(mart, names)} FROM ({source})"


def documented_list(mart: str, names: list[str], prefix: str = "") -> str:
    """The column names (read from the catalog or a relation) of `mart`, quoted, in the data
    dictionary's order, each after `prefix` (`w.`), as a select list."""
    return ", ".join(prefix + quote_name(n) for n in dictionary.in_documented_order(mart, names))


def _links_work(con: duckdb.DuckDBPyConnection, mart: str) -> bool:
    """Whether versions can link `mart`'s work rows: `work.<mart>` is kept per as-of (it has an
    `as_of` column). The views then read the linked work rows too."""
    return "as_of" in {c for c, _ in _columns(con, "work", mart)}


def keep_published_rows(con: duckdb.DuckDBPyConnection, table: str, as_of: object) -> int:
    """Before a step replaces the work rows of `as_of` in `work.<table>`: the versions published
    from them (a rerun of the as-of) get their own copy in `history_rows.<table>`, so a version's
    rows never change. Inside the caller's transaction; returns the rows copied (0 when no
    version was published from those rows, as in a run of a new as-of)."""
    if not sql_table_exists(con, ROWS, LINKS):
        return 0
    row = con.execute(
        load_sql("history_rows/count_links_of_as_of"), {"mart": table, "as_of": as_of}
    ).fetchone()
    if not row or not row[0]:
        return 0
    _rows_table(con, table, _columns(con, "work", table))
    copied = con.execute(
        load_sql("marts/keep_published_rows", mart=table), {"mart": table, "as_of": as_of}
    ).fetchone()
    con.execute(load_sql("history_rows/delete_links_of_as_of"), {"mart": table, "as_of": as_of})
    return int(copied[0]) if copied else 0


def _point_at_current(con: duckdb.DuckDBPyConnection, mart: str, names: list[str]) -> None:
    """`marts.<mart>` as a view of the current version's rows, with the columns of the version
    published (`names`): the rows are written once (`history_rows.<mart>` or the linked work
    rows), and an erasure or a retention there is what `marts.<mart>` shows. The current
    version is picked before the join with the work rows, so only its as-of's work rows are
    read (through `history.<mart>`, every linked version's were: 0.11-0.17 CPU-s instead of
    0.005 for a five-row preview at 1M customers and three versions). A warehouse from before
    the views had a table there, with a copy of the rows: it is dropped."""
    if _is_base_table(con, "marts", mart):
        con.execute(load_sql("marts/drop_legacy_mart_table", mart=mart))
    view = (
        "marts/create_current_view"
        if _links_work(con, mart)
        else "marts/create_current_copied_view"
    )
    con.execute(
        sql_template(view).format(
            mart=quote_identifier(mart),
            mart_literal=quote_literal(mart),
            columns=documented_list(mart, names),
            work_columns=documented_list(mart, names, prefix="w."),
        )
    )


def describe_tables(con: duckdb.DuckDBPyConnection, marts: list[str]) -> None:
    """COMMENT ON the published marts (`marts.*`, `history.*`) and the version tables, from the
    data dictionary (`engagement_box.dictionary`). `CREATE OR REPLACE` drops a table's comments,
    so every publish writes them again."""
    names = [m for m in marts if m in dictionary.BY_NAME]
    names += [t.name for t in dictionary.TABLES if not t.versioned]
    for name in names:
        for schema in ("marts", "history"):
            if schema == "history" and not dictionary.table(name).versioned:
                continue
            if table_exists(con, schema, name):
                dictionary.comment_on(con, schema, name)


@dataclass(frozen=True)
class Freshness:
    snapshot_id: int | None
    as_of: date | None  # the current version's
    last_order_day: date | None  # the last completed order staged
    # Orders files that staged rows after the current version was published: orders it does not
    # hold though their days may be within its as-of (a pinned as-of past the data, late orders).
    files_since: int = 0
    # The shop's day the current version was published on: an as-of never passes it, so orders
    # dated after it wait for a later day's run, not for another month's.
    published_day: date | None = None

    @property
    def days_behind(self) -> int:
        """Days of staged orders the current version does not cover; -1 when no version exists."""
        if self.as_of is None:
            return -1
        if self.last_order_day is None:
            return 0
        return max((self.last_order_day - self.as_of).days, 0)

    @property
    def fresh(self) -> bool:
        """The current version holds every staged order up to the last one."""
        return self.days_behind == 0 and self.files_since == 0

    def describe(self) -> str:
        if self.as_of is None:
            return "no version is published yet"
        if self.last_order_day is None:
            return f"version {self.snapshot_id} is current, and no completed order is staged"
        if self.days_behind == 0 and self.files_since:
            return (
                f"the current version {self.snapshot_id} (as of {self.as_of}) was published "
                f"before {self.files_since} orders file(s) were staged, whose orders it does not "
                f"hold: run its month again (engagement-box run --month {self.as_of:%Y-%m})"
            )
        if self.days_behind == 0:
            where = (
                "the last completed order"
                if self.as_of == self.last_order_day
                else (f"after the last completed order staged ({self.last_order_day})")
            )
            return f"version {self.snapshot_id} is as of {self.as_of}, {where}"
        if self.as_of == self.published_day and self.last_order_day > self.as_of:
            # an order dated after the run's day (an export ahead of the shop's clock): running
            # the month again the same day said the same (a review of calendar edges)
            return (
                f"the current version {self.snapshot_id} is as of {self.as_of}, the day it was "
                f"published: the last completed order staged is dated {self.last_order_day}, "
                "after that day (an as-of never passes the run's day; ENGAGEMENT_TIME_ZONE sets "
                "the shop's calendar): a run on that day or later covers it"
            )
        return (
            f"the current version {self.snapshot_id} is as of {self.as_of}, {self.days_behind} "
            f"day(s) before the last completed order staged ({self.last_order_day}): run its "
            f"month (engagement-box run --month {self.last_order_day:%Y-%m})"
        )


def freshness(con: duckdb.DuckDBPyConnection) -> Freshness:
    """How the current version compares with the staged orders: dates in the warehouse only, so
    the answer does not depend on when it is asked."""
    from engagement_box import incremental  # it imports this module

    # a warehouse with no staged orders yet (the check run alone before any run)
    last = (
        incremental.last_completed_order_day(con)
        if table_exists(con, "staging", "orders")
        else None
    )
    current = (
        con.execute(load_sql("marts/current_as_of")).fetchone()
        if table_exists(con, "marts", "current_version")
        else None
    )
    if current is None:
        return Freshness(None, None, last)
    as_of = current[1]
    if isinstance(as_of, str):
        as_of = date.fromisoformat(as_of)
    files_since = 0
    published = con.execute(load_sql("marts/published_at"), {"id": current[0]}).fetchone()
    published_day = in_zone(published[0], shop_zone()).date() if published else None
    if published and table_exists(con, "staging", "ingested_files"):
        # both UTC (`clock.utc_now`)
        row = con.execute(
            load_sql("staging/orders_files_staged_since"), {"published": published[0]}
        ).fetchone()
        files_since = int(row[0]) if row else 0
    return Freshness(int(current[0]), as_of, last, files_since, published_day)


def snapshots(con: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_version_tables(con)
    cur = con.execute(load_sql("marts/all_snapshots"))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# ----------------------------------------------------------------------------------------------
# Segment migration

MIGRATION_MARTS = ("customer_rfm", "engagement_value")


def migration_chain(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Retained versions in as-of order, one per as-of (its newest publish): see chain.sql."""
    return [int(r[0]) for r in con.execute(load_sql("marts/chain")).fetchall()]


def _published_in(con: duckdb.DuckDBPyConnection, mart: str) -> set[int]:
    if not table_exists(con, "history", mart):
        return set()
    return {
        int(r[0])
        for r in con.execute(load_sql("history/published_version_ids", mart=mart)).fetchall()
    }


def refresh_migration(con: duckdb.DuckDBPyConnection, *, recompute: bool = False) -> int:
    """Make `marts.segment_migration` hold exactly the consecutive pairs of the chain.

    Pairs no longer consecutive (a version inserted between them, replaced by a rerun, or
    expired) are deleted; missing pairs (the neighbours of a new, replaced or expired version) are
    computed. Only versions that published both migration marts take part. `recompute`: every
    pair is computed again (after an erasure changed the versions' rows). Returns the number of
    rows added. Runs inside the caller's transaction when there is one.
    """
    if not table_exists(con, "marts", "segment_migration"):
        return 0
    with_marts = set.intersection(*(_published_in(con, m) for m in MIGRATION_MARTS))
    chain = [s for s in migration_chain(con) if s in with_marts]
    wanted = set(zip(chain, chain[1:], strict=False))
    have = _migration_pairs(con)
    if recompute:
        con.execute(load_sql("marts/delete_all_migration_pairs"))
        have = set()
    for from_snapshot, to_snapshot in sorted(have - wanted):
        con.execute(
            load_sql("marts/delete_migration_pair"),
            {"from_snapshot": from_snapshot, "to_snapshot": to_snapshot},
        )
    added = 0
    for from_snapshot, to_snapshot in sorted(wanted - have):
        rows = segment_migration(con, from_snapshot, to_snapshot)
        con.register("migration_rows", rows)
        try:
            con.execute(load_sql("marts/insert_migration_rows"))
        finally:
            con.unregister("migration_rows")
        added += rows.height
    return added


def segment_migration(con: duckdb.DuckDBPyConnection, from_snapshot: int, to_snapshot: int):
    """Customers moving between RFM segments and quadrants from one version to another, both
    versions' segments under today's names (`rfm.SEGMENT_RENAMES`)."""
    renames = rfm.SEGMENT_RENAMES
    return con.execute(
        load_sql("marts/segment_migration"),
        {
            "from_snapshot": from_snapshot,
            "to_snapshot": to_snapshot,
            "renamed_from": list(renames),
            "renamed_to": list(renames.values()),
        },
    ).pl()


# ----------------------------------------------------------------------------------------------
# Retention


@dataclass(frozen=True)
class Retention:
    expired: list[int]
    kept: int
    rows_deleted: int  # rows of the expired versions (their copies and linked work rows)
    migration_rows: int = 0  # rows of the pairs around the expired versions, computed now
    work_rows_deleted: int = 0  # rows of `work.*` deleted with the as-ofs trimmed
    as_ofs_trimmed: list[date] = field(default_factory=list)


def apply_retention(
    con: duckdb.DuckDBPyConnection,
    *,
    keep_versions: int,
    keep_days: int,
    now: datetime | None = None,
) -> Retention:
    """Drop the rows of versions the policy no longer keeps (see snapshots_to_expire.sql), and
    trim the work tables (`trim_work`).

    The log rows stay (with `expired_at`) as an audit trail; their data leaves `history.*`, and
    the migration chain closes the gap (the pair around it is computed). The work rows no
    retained version links and no next run carries forward leave `work.*`. One transaction,
    then a CHECKPOINT so the space is reused.
    """
    if keep_versions < 1:
        raise ValueError("keep_versions must be at least 1")
    ensure_version_tables(con)
    now = now or utc_now()
    expired = [
        int(r[0])
        for r in con.execute(
            load_sql("marts/snapshots_to_expire"),
            {"keep_versions": keep_versions, "keep_days": keep_days, "now": now},
        ).fetchall()
    ]
    deleted = migration = 0
    with transaction(con):
        if expired:
            deleted = _drop_version_rows(con, expired)
            con.execute(load_sql("marts/mark_expired"), {"now": now, "expired": expired})
            migration = refresh_migration(con)
        # Also when nothing expires now: the rows of a run that never published, or of
        # versions expired before the work tables were trimmed, go as well.
        work_deleted, trimmed = trim_work(con)
    if expired or trimmed:
        con.execute("CHECKPOINT")
    row = con.execute(load_sql("marts/count_retained")).fetchone()
    return Retention(expired, int(row[0]) if row else 0, deleted, migration, work_deleted, trimmed)


def _drop_version_rows(con: duckdb.DuckDBPyConnection, expired: list[int]) -> int:
    """Delete the rows of versions `expired` from `history.*` (their copies in `history_rows`,
    their links to work rows); the rows deleted. Retention and a retirement share it, inside
    their transaction; the caller marks their log rows expired."""
    deleted = 0
    for table in history_tables(con):
        row = con.execute(
            load_sql("history/count_expired_rows", mart=table), {"expired": expired}
        ).fetchone()
        deleted += int(row[0]) if row else 0
        if sql_table_exists(con, ROWS, table):
            con.execute(
                load_sql("history_rows/delete_expired_rows", mart=table), {"expired": expired}
            )
    con.execute(load_sql("history_rows/delete_expired_links"), {"expired": expired})
    return deleted


# ----------------------------------------------------------------------------------------------
# Retiring one version by hand


class RetireRefused(ValueError):
    """A version `retire_version` does not retire; the message says why and what to do."""


@dataclass(frozen=True)
class Retirement:
    snapshot_id: int
    as_of: date | None
    rows_deleted: int  # rows of its history (its copies and linked work rows)
    pairs_removed: list[tuple[int, int]]  # migration pairs that held it (or no longer consecutive)
    pairs_added: list[tuple[int, int]]  # migration pairs computed now (its neighbours')
    migration_rows: int
    was_current: bool
    current: int | None  # the current version afterwards
    current_as_of: date | None
    work_rows_deleted: int = 0
    as_ofs_trimmed: list[date] = field(default_factory=list)


_LISTED = "marts.snapshots lists the versions; those retained have no expired_at"


def retire_version(
    con: duckdb.DuckDBPyConnection,
    snapshot_id: int,
    *,
    now: datetime,
    reason: str | None = None,
    current_too: bool = False,
) -> Retirement:
    """Take one published version out of the warehouse, as retention expires one, for a reason
    the policy cannot see: a version computed from a half-copied export (docs/OPERATIONS.md,
    "Retiring a bad version").

    Its rows leave `history.*` (and `marts.<mart>_at` refuses it), its log row stays with
    `expired_at`, `retired_at` and `reason`, `marts.segment_migration` is brought to the
    consecutive pairs of the versions left (its neighbours' pair computed), and the work rows no
    version links any more are trimmed, in one transaction. The current version is refused
    unless `current_too`: then the last version of the migration chain left (the one a run
    would have made current had the retired one never been published) becomes current, in the
    same transaction, so `marts.current_version` never holds a retired version nor none.
    Raises `RetireRefused` (nothing written) for a version never published, expired or retired
    already, or the current one without `current_too` or without another version.
    """
    ensure_version_tables(con)
    with transaction(con):
        found = con.execute(
            load_sql("marts/version_to_retire"), {"snapshot_id": snapshot_id}
        ).fetchone()
        _refuse_to_retire(snapshot_id, found)
        as_of, was_current = found[0], bool(found[4])
        before = _migration_pairs(con)
        con.execute(
            load_sql("marts/mark_retired"),
            {"snapshot_id": snapshot_id, "now": now, "reason": reason},
        )
        if was_current:  # refused here too: this transaction then writes nothing
            con.execute(
                load_sql("marts/set_current_version"),
                {"snapshot_id": _successor(con, snapshot_id, as_of, current_too)},
            )
        deleted = _drop_version_rows(con, [snapshot_id])
        migration = refresh_migration(con)
        after = _migration_pairs(con)
        work_deleted, trimmed = trim_work(con)
    con.execute("CHECKPOINT")
    current, current_as_of = current_version_as_of(con)
    return Retirement(
        snapshot_id, as_of, deleted, sorted(before - after), sorted(after - before), migration,
        was_current, current, current_as_of, work_deleted, trimmed,
    )  # fmt: skip


def _refuse_to_retire(snapshot_id: int, found: tuple | None) -> None:
    """Raise `RetireRefused` when version `snapshot_id` (its row of version_to_retire.sql,
    `found`) is not one to retire: never published, retired or expired already."""
    if found is None:
        raise RetireRefused(
            f"version {snapshot_id} was never published in this warehouse; check the id ({_LISTED})"
        )
    as_of, expired_at, retired_at, reason, _ = found
    if retired_at is not None:
        why = f" ({reason})" if reason else ""
        raise RetireRefused(
            f"version {snapshot_id} (as of {as_of}) was retired already, at "
            f"{retired_at:%Y-%m-%d %H:%M:%S}{why}: nothing left to retire"
        )
    if expired_at is not None:
        raise RetireRefused(
            f"version {snapshot_id} (as of {as_of}) expired already by the retention policy, at "
            f"{expired_at:%Y-%m-%d %H:%M:%S}: its rows are gone, nothing left to retire"
        )


def _successor(
    con: duckdb.DuckDBPyConnection, snapshot_id: int, as_of: object, current_too: bool
) -> int:
    """The version that becomes current when the current one, `snapshot_id`, is retired (its
    log row already marked): the last of the migration chain left, which a run would have made
    current had the retired one never been published (a version it replaced comes back).
    Raises `RetireRefused` without `current_too`, or when no version is left."""
    chain = migration_chain(con)
    if not chain:
        raise RetireRefused(
            f"version {snapshot_id} (as of {as_of}) is the only retained version, so nothing "
            "could be current without it: publish a correct version first (engagement-box run), "
            "then retire this one"
        )
    successor = chain[-1]
    if not current_too:
        (successor_as_of,) = con.execute(
            load_sql("marts/version_to_retire"), {"snapshot_id": successor}
        ).fetchone()[:1]
        raise RetireRefused(
            f"version {snapshot_id} (as of {as_of}) is the current version (marts.*, the "
            "analysts' file and the audience files hold it): give --current to retire it and "
            f"make version {successor} (as of {successor_as_of}) current, or publish a correct "
            "version first (engagement-box run), which then becomes current"
        )
    return successor


def _migration_pairs(con: duckdb.DuckDBPyConnection) -> set[tuple[int, int]]:
    """The (from, to) pairs `marts.segment_migration` holds."""
    return {(int(f), int(t)) for f, t in con.execute(load_sql("marts/migration_pairs")).fetchall()}


# The tables of `work` that say which as-ofs the others hold (`engagement_box.partitioned`) and
# what their rows were computed from (`engagement_box.incremental`; both import these names):
# their rows of a trimmed as-of are deleted with the rows themselves.
REGISTRY = "written_partitions"
STATE = "incremental_state"


def partitioned_work_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of `work` whose rows steps write per as-of (sql/marts/work_tables_by_as_of.sql),
    without the two records of what was written (`REGISTRY`, `STATE`)."""
    return [
        str(r[0])
        for r in con.execute(load_sql("marts/work_tables_by_as_of")).fetchall()
        if r[0] not in (REGISTRY, STATE)
    ]


def trim_work(con: duckdb.DuckDBPyConnection) -> tuple[int, list[date]]:
    """Delete the as-ofs of `work.*` that no retained version shows and no next run carries
    forward; inside the caller's transaction. Returns the work rows deleted and the as-ofs.

    Versions link their work rows (`history_rows.from_work`) instead of copying them, so the
    rows of every as-of a step ever wrote stayed in `work.*`, those of expired versions too.
    Kept, in every work table:
    - every as-of a retained version links (any mart): `history.*` and `marts.*` show them;
    - every work table's newest as-of (of its rows or of `work.written_partitions`): the next
      run's incremental steps carry the newest state at or before their as-of forward
      (`incremental.plan`), the persona model in force (`personas.model_in_force`) and the
      fits' starting points (sql/work/earlier_fits.sql) the newest at or before it. A run that
      failed before its publish keeps its rows this way too, to be run again from the failure.
    An as-of is trimmed from every work table or from none: the steps that read another
    table's rows of the as-of they carry from (the influence network of the engagement values)
    find them whole. Tables: every base table of `work` with an `as_of` column (the partitioned
    tables, and `influence_edges` and `persona_model` written with them); the as-of's rows of
    `work.written_partitions` and `work.incremental_state` go too, so `partitioned.written`
    says it was not written and `incremental.plan` can never carry from it (it reads only the
    states recorded). A table without `as_of` (`buyer_days`, one state) is not touched.

    Not kept: an as-of that only a Dagster partition's latest run wrote, once its version has
    expired and a newer as-of was written. Every successful run publishes its as-of, so that is
    a version the policy no longer keeps (or a run that failed and was overtaken). Dagster still
    shows the partition materialized; a step of it run alone then fails with a plain message
    (`assets.value.require_work`, the publish too), and a run of the partition's whole graph
    writes the as-of again (cold, or incremental from a kept earlier as-of). No run can be
    writing meanwhile: retention holds the warehouse's run lock, as a run does.
    """
    tables = partitioned_work_tables(con)
    written: dict[str, set[date]] = {}
    for table in tables:
        written[table] = {
            r[0] for r in con.execute(load_sql("work/written_as_ofs", table=table)).fetchall()
        }
    if sql_table_exists(con, "work", REGISTRY):
        for table, as_of in con.execute(load_sql("work/written_partitions_as_ofs")).fetchall():
            written.setdefault(str(table), set()).add(as_of)
    kept = {max(as_ofs) for as_ofs in written.values() if as_ofs}
    kept |= {r[0] for r in con.execute(load_sql("history_rows/linked_as_ofs")).fetchall()}
    trimmed = sorted(set().union(*written.values()) - kept) if written else []
    if not trimmed:
        return 0, []
    deleted = 0
    for table in tables:
        if not written[table].isdisjoint(trimmed):
            row = con.execute(
                load_sql("work/delete_trimmed_as_ofs", table=table), {"trimmed": trimmed}
            ).fetchone()
            deleted += int(row[0]) if row else 0
    for table in (REGISTRY, STATE):
        if sql_table_exists(con, "work", table):
            con.execute(load_sql("work/delete_trimmed_as_ofs", table=table), {"trimmed": trimmed})
    return deleted, trimmed


def history_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables and views of the schema `history` of the connection's own database (not of
    a database attached beside it, such as the published file being built)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'history' "
            "AND table_catalog = current_database() ORDER BY table_name"
        ).fetchall()
    ]
