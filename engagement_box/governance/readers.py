"""The analysts' file: a published copy of the current version that readers open while runs write.

DuckDB lets one process write a file, and while it writes nobody else may open it (even read-only),
and while anyone reads it nobody may write it. So the pipeline never writes the file analysts open:

- The working database (`ENGAGEMENT_WORKING_DB`, default `<warehouse>.working.duckdb`) holds
  everything the runs compute and the source of truth of the versions: staging, intermediate,
  work, marts and history. Only the pipeline opens it.
- The published file (`ENGAGEMENT_WAREHOUSE`, the path analysts open) is rebuilt after every
  change of the versions (publish, retention, erasure): a new file is built next to it, closed
  with no write-ahead log, and renamed over the old one (`os.replace`). A reader holding the old
  file keeps reading the old one (on Linux its open handle keeps the old inode); a new
  connection gets the new file. The pipeline never takes a lock on it, so readers never wait for
  runs and runs never wait for readers.
- Retained versions (`history.*`) are too big to copy into every new file (30 versions of 1M
  customers). Each version of each mart is written once, as a Parquet file
  `<warehouse stem>.history/<mart>/snapshot_<id>.parquet` (rewritten only by an erasure, by a
  rename), and the published file has views over the files of the retained versions. Only a new
  version's files are written by a publish. A session keeps its version's views, and the files
  stay, so it keeps reading the version it opened until it reconnects.

What the published file holds: `marts.<mart>` (views over the current version's Parquet files,
so a publish writes each mart's rows once), `marts.snapshot_log`, `marts.current_version`,
`marts.segment_migration` (tables), `marts.snapshots` (view), `marts.<mart>_at(snapshot_id)`
(time travel macros), `history.<mart>` (views over the retained versions' Parquet files), and
`staging.quarantine` and `staging.ingested_files` for the data engineers (tables).

Files of expired versions are deleted `EXPIRED_FILES_GRACE` after they expired, so a session
opened before a retention keeps its `history.*` for that long. An erasure rewrites every file
holding the person and deletes every file of an expired version at once (erasure wins over old
sessions: their `history.*` may then fail until they reconnect), as `engagement-box retire` deletes
the files of the version it retires.

No Dagster import here.
"""

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engagement_box import dictionary
from engagement_box.clock import utc_now
from engagement_box.governance import privacy, versions
from engagement_box.settings import pattern_characters
from engagement_box.sql import columns as catalog_columns
from engagement_box.sql import (
    first_line,
    is_lock_conflict,
    load_sql,
    quote_identifier,
    quote_literal,
    quote_name,
    sql_template,
    transaction,
)

# Tables copied from the working database into the published file, besides the marts (every
# table of `history`, see `published_marts`). The marts themselves come from one list: the
# `history` schema, which `versions.publish` creates for every mart of `assets/publish.py::MARTS`.
PUBLISHED_TABLES: tuple[tuple[str, str], ...] = (
    ("marts", "snapshot_log"),
    ("marts", "current_version"),
    ("marts", "segment_migration"),
    ("staging", "quarantine"),
    ("staging", "ingested_files"),
)
# Created in the published file from its own DDL, not copied (`_build`).
_CURRENT_VERSION = ("marts", "current_version")
# How long the Parquet files of an expired version stay for sessions opened before it expired.
EXPIRED_FILES_GRACE = timedelta(days=1)
_ATTACHED = "engagement_publishing"


class PublishError(Exception):
    """The published file cannot be built or replaced; the message says why."""


@dataclass(frozen=True)
class Layout:
    """Where the published file, its history files and the working database are."""

    published: Path
    working: Path

    @property
    def history_dir(self) -> Path:
        return self.published.with_name(f"{self.published.stem}.history")

    def history_file(self, mart: str, snapshot_id: int) -> Path:
        quote_identifier(mart)  # a plain name, never a path
        return self.history_dir / mart / f"snapshot_{int(snapshot_id)}.parquet"


def default_working(published: Path) -> Path:
    """The working database next to the published file: `engagement.duckdb` ->
    `engagement.working.duckdb`."""
    return published.with_name(f"{published.stem}.working{published.suffix or '.duckdb'}")


@dataclass
class Published:
    """What one rebuild of the published file did."""

    built: bool = False
    seconds: float = 0.0
    parquet_seconds: float = 0.0  # of which writing the history Parquet files
    files_written: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    files_rewritten: list[str] = field(default_factory=list)
    state: str = ""


def _literal(path: Path) -> str:
    """A path as a SQL string literal, where DuckDB takes no bound parameter: ATTACH, and the
    bodies of views and macros the published file keeps (a statement that can bind it does).
    Paths come from the configuration, never from data: a quote is doubled (a warehouse under
    `/data/it's/` was refused at the publish of every run, after all its steps: a review)."""
    return quote_literal(str(path))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def published_marts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The marts of the published file: every mart with a history table (each mart a publish
    wrote), so a mart added to `assets/publish.py::MARTS` is published with no other change."""
    return [m for m in versions.history_tables(con) if versions.table_exists(con, "marts", m)]


def state(con: duckdb.DuckDBPyConnection) -> str:
    """A token of everything the published file shows: it changes with a publish, a retention, an
    erasure or a new ingest. Equal tokens: the published file is up to date."""
    parts = []
    if versions.table_exists(con, "marts", "snapshot_log"):
        row = con.execute(load_sql("marts/snapshot_log_state")).fetchone()
        parts.append(str(row))
    if versions.table_exists(con, "staging", "erasure_log"):
        parts.append(str(con.execute(load_sql("staging/erasure_log_count")).fetchone()))
    if versions.table_exists(con, "staging", "ingested_files"):
        # What each file brought (a changed file that stages no row changes its hash and counts,
        # and the quarantine rows the published file copies), and where it is now (a file moved
        # after it was taken in: the copy's `moved_to` named the old place, review of
        # 2026-12-04); not its stat, which a touch moves.
        moved = any(c == "moved_to" for c, _ in catalog_columns(con, "staging", "ingested_files"))
        query = "staging/ingested_files_state" + ("" if moved else "_before_moved_to")
        row = con.execute(load_sql(query)).fetchone()
        parts.append(str(row))
    parts.append(",".join(published_marts(con)))
    return "|".join(parts)


def _place(layout: Layout) -> str:
    """The part of the token that is the history folder the published file's views read by
    absolute path: a warehouse moved to another folder (or pointed at by another
    ENGAGEMENT_WAREHOUSE) is published again, and its views then read its own files."""
    return f"|{layout.history_dir.absolute()}"


def _token(con: duckdb.DuckDBPyConnection, layout: Layout) -> str:
    """`state`, `_foreign_folders` and `_place`: equal tokens, the published file is up to
    date."""
    return state(con) + _foreign_folders(layout) + _place(layout)


def _foreign_folders(layout: Layout) -> str:
    """The history folders holding a file of another name that their pattern matches (a copy
    made there by hand), which `_version_files` reads by their list of files instead: one
    appearing after a build failed every session of that file, and every run said "nothing to
    do" until the next version (a re-review); the file is built again when the set changes."""
    if not layout.history_dir.is_dir():
        return ""
    odd = sorted(
        folder.name
        for folder in layout.history_dir.iterdir()
        if folder.is_dir() and _holds_foreign(folder)
    )
    return f"|foreign:{','.join(odd)}" if odd else ""


def _holds_foreign(folder: Path) -> bool:
    """Whether a history folder holds a file of another name its pattern `snapshot_*.parquet`
    matches (a copy made there), which the pattern would open."""
    return any(_snapshot_id(p) is None for p in folder.glob("snapshot_*.parquet"))


def _has_version(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a version is published (before one is, there is no file for readers)."""
    return (
        versions.table_exists(con, "marts", "snapshot_log")
        and versions.current_version(con) is not None
    )


def behind(con: duckdb.DuckDBPyConnection, layout: Layout) -> str | None:
    """Why the published file is not what `publish` would build now from the working database
    `con`, or None (up to date, or no version yet)."""
    if not _has_version(con):
        return None
    if not layout.published.exists():
        return f"{layout.published} did not exist"
    recorded = _recorded(con, _STATE)
    if recorded == _token(con, layout):
        return _damage(con, layout)
    if recorded is not None and not recorded.endswith(_place(layout)):
        return (
            f"{layout.published} was built where the warehouse was before (its views read the "
            "versions' files there)"
        )
    return f"{layout.published} was behind the working database"


def _damage(con: duckdb.DuckDBPyConnection, layout: Layout) -> str | None:
    """Why the published file cannot serve its readers though its record says it is current, or
    None: a history file of a retained version is gone (its views fail on it), a write-ahead
    log a stopped session left is beside it, the file is not the one the last publish built
    (replaced, restored or written since), it does not open as
    a DuckDB file (overwritten, cut short), or its quarantine is not the masked one built. Each
    went unnoticed, every run said "nothing to do" with exit 0. Cheap: one read-only open and
    a stat per file.

    None while a session holds the file open for writing: replaced under that session, the
    session's next write would put a log beside the new file that no reader can replay. It is
    looked at again once the session closes (a normal publish replaces it all the same)."""
    retained = _retained(con)
    versions_of = {
        layout.history_file(mart, snapshot_id): snapshot_id
        for mart in published_marts(con)
        for snapshot_id in sorted(_logged_versions(con, mart))
        if snapshot_id in retained
    }
    files = list(versions_of)
    missing = [f for f in files if not f.exists()]
    if missing:
        return (
            f"{len(missing)} history file(s) of retained versions were missing "
            f"({missing[0]}{', ...' if len(missing) > 1 else ''}): written again"
        )
    cut = [f for f in files if not _whole_parquet(f)]
    if cut:
        return (
            f"{len(cut)} history file(s) of retained versions were cut short or damaged "
            f"({cut[0]}{', ...' if len(cut) > 1 else ''}): written again"
        )
    warehouse = _recorded(con, _WAREHOUSE_ID)
    stamps = _published_stamps(con)
    foreign = [
        f for f in files if _foreign(f, warehouse, versions_of[f], stamps.get(versions_of[f]))
    ]
    if foreign:
        return (
            f"{len(foreign)} history file(s) of retained versions were written by another "
            f"warehouse or for another version ({foreign[0]}"
            f"{', ...' if len(foreign) > 1 else ''}): written again"
        )
    quarantined = versions.table_exists(con, "staging", "quarantine")
    _, masked = _recorded_quarantine(con)
    unreadable, served = None, None
    try:
        reader = duckdb.connect(str(layout.published), read_only=True)
        try:
            reader.execute(load_sql("marts/current_version_count")).fetchone()
            served = _file_quarantine_state(reader) if quarantined else None
        finally:
            reader.close()
    except duckdb.Error as error:
        if is_lock_conflict(error):  # a session holds it for writing: not replaced under it
            return None
        unreadable = f"{layout.published} could not be read ({first_line(error)})"
    # A log beside it that no session holds: a session wrote into the file and was stopped
    # before its checkpoint (`DROP VIEW ...` in the DuckDB CLI, then killed). Every reader
    # replays it, and the file itself is unchanged, so the checks below do not see it.
    wal = layout.published.with_name(layout.published.name + ".wal")
    if unreadable is None and wal.exists():
        return (
            f"{layout.published} had a write-ahead log beside it ({wal.name}: a session wrote "
            "into it and was stopped; every reader replayed its changes): built again"
        )
    # The file the last publish built, untouched since: a copy of the working database put at
    # its path (every staged email in it), or a backup restored, was served until the inputs
    # changed, and nothing in a copy with an empty quarantine told it apart. One stat does.
    built = _recorded(con, _FILE)
    if built is None:
        return (
            f"{layout.published}: no record of the file the last publish built (kept since "
            "this version of the pipeline): built again"
        )
    if _file_identity(layout.published) != built:
        return (
            f"{layout.published} was not the file the last publish built (replaced or changed "
            "since: a copy put there by hand, a backup restored, a write into it; or a run "
            "stopped before it recorded the file): built again"
        )
    if unreadable:
        return unreadable
    # Its quarantine must be the one built, masked (0.05 s for 482,331 rows).
    if quarantined and served != masked:
        return (
            f"{layout.published} did not hold the masked quarantine it was built with (a file "
            "put there by hand, or restored from a backup): built again, every row masked"
        )
    return None


def _whole_parquet(path: Path) -> bool:
    """Whether a Parquet file ends as one does (`PAR1` after its footer): a file cut short fails
    every query of the views over it. Reads 4 bytes."""
    try:
        with path.open("rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


# One-value records of the last publish in the working database: what the file was built from
# (`marts.published_state`) and the file it built (`marts.published_file`, `_file_identity`).
_STATE = ("published_state", "state")
_FILE = ("published_file", "identity")
# The working database's own id, written into each file it publishes (`marts.published_from`).
_WAREHOUSE_ID = ("warehouse_identity", "warehouse_id")


def warehouse_id(con: duckdb.DuckDBPyConnection) -> str:
    """The working database's id, made on first use: a copy of the database keeps it."""
    known = _recorded(con, _WAREHOUSE_ID)
    if known is None:
        known = uuid.uuid4().hex
        _record(con, _WAREHOUSE_ID, known)
    return known


def foreign_working_problem_before_run(layout: Layout) -> str | None:
    """`foreign_working_problem` asked before a run starts (the CLI), with the working
    database's id read from it if it is there and readable now."""
    working_id, published, known = None, False, set()
    if layout.working.exists():
        try:
            with duckdb.connect(str(layout.working), read_only=True) as working:
                working_id = _recorded(working, _WAREHOUSE_ID)
                published = _recorded(working, _STATE) is not None
                known = version_ids(working)
        except duckdb.Error:
            return None  # held by a run: the publish asks again
    return foreign_working_problem(layout, working_id, published) or (
        restored_working_problem(layout, working_id, known)
    )


def version_ids(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Every version the database has recorded, expired ones included (`snapshot_log` keeps a
    row per version for good: retention only marks it expired)."""
    if not versions.table_exists(con, "marts", "snapshot_log"):
        return set()
    return {row[0] for row in con.execute(load_sql("marts/all_snapshot_ids")).fetchall()}


def restored_working_problem(layout: Layout, working_id: str | None, known: set[int]) -> str | None:
    """Why this warehouse's working database must not publish: the published file it built
    holds versions it has no record of, as when the working database was restored from a copy
    older than them (its damage message says to restore one). Publishing rebuilt the file
    without them and deleted their history files, saying "published nothing" (a re-review).
    None when the file is another warehouse's (`foreign_working_problem`) or not readable."""
    if working_id is None or not layout.published.exists():
        return None
    try:
        with duckdb.connect(str(layout.published), read_only=True) as published:
            if not versions.table_exists(published, "marts", "published_from"):
                return None
            row = published.execute(load_sql("marts/published_from")).pl().row(0, named=True)
            if row.get("warehouse_id") != working_id:
                return None
            missing = sorted(version_ids(published) - known)
    except (duckdb.Error, IndexError):
        return None
    if not missing:
        return None
    listed = ", ".join(str(v) for v in missing)
    return (
        f"{layout.published} holds version(s) {listed} that the working database "
        f"{layout.working} has no record of (restored from a copy older than them?): publishing "
        "from it would rebuild the file without them and delete their history files. Restore a "
        f"newer copy of the working database, or, to go on from this one and drop them, delete "
        f"{layout.published} first (the next run builds it again)"
    )


def foreign_working_problem(
    layout: Layout, working_id: str | None, working_published: bool = False
) -> str | None:
    """Why this working database (id `working_id`; None: it has none yet) must not publish to
    `layout.published`: the file, where it was built, was built from another working database
    that still exists and opens (a stray ENGAGEMENT_WORKING_DB replaced the analysts' file with
    a new warehouse's and deleted the other one's version files). A file from before files
    recorded it (or where it was) is taken as built from the working database next to it when
    that one has published and this one (`working_published`) has not. None when the file is
    this database's, was copied or moved since (a copy of a warehouse started over is its own),
    or its working database is gone and it lists no retained version (the warehouse starts
    over); a gone one whose versions the file lists holds it back, as a damaged one does (the
    versions' files are the only copy left)."""
    if not layout.published.exists():
        return None
    try:
        with duckdb.connect(str(layout.published), read_only=True) as published:
            if versions.table_exists(published, "marts", "published_from"):
                row = published.execute(load_sql("marts/published_from")).pl().row(0, named=True)
            else:
                row = {"working_database": str(default_working(layout.published))}
            retained = _retained_count(published)
    except (duckdb.Error, IndexError):
        return None  # not readable as a published file: `publish` replaces it
    if row.get("warehouse_id") is not None and row["warehouse_id"] == working_id:
        return None
    other = Path(row["working_database"])
    if row.get("published_file") is None:  # a file from before it was recorded: guessed
        damaged = other.exists() and not _opens(other)  # cannot say: held back below
        if working_published or (not damaged and not _has_published(other)):
            return None
    elif Path(row["published_file"]) != layout.published.absolute():
        return None  # copied or moved since: the working database it names is not its own
    if other.absolute() == layout.working.absolute() and other.exists():
        return None  # its own
    if not other.exists():
        if not retained:
            return None  # nothing published to lose: the warehouse starts over
        # A run here would start a new warehouse and replace the analysts' file with it: every
        # version deleted, snapshot ids given again to other data, and, with the register gone
        # too, erased people back in the marts. It happened without a word (a review).
        register = Path(f"{other}.erasures.json")
        return (
            f"{layout.published} holds {retained} version(s) built from the working database "
            f"{other}, which is missing: a run would start a new warehouse and replace them. "
            f"Restore {other} (and {register.name} beside it, the erasure register) from a "
            "backup; or set ENGAGEMENT_WAREHOUSE to another file to start a new warehouse there "
            f"(this one stays readable); or, to start over here and lose those versions, delete "
            f"{layout.published} and {layout.history_dir} first"
        )
    if not _opens(other):
        # Damaged, as the working database's error says: a new one beside the file replaced
        # it and deleted the versions' files, the only copy of them left (a review).
        return (
            f"{layout.published} was built from the working database {other}, which is "
            f"damaged; this run's is {layout.working}: publishing would replace the analysts' "
            "file and delete the version files it reads, the only copy of the versions "
            f"published so far. Restore {other} from a backup, or set ENGAGEMENT_WAREHOUSE to "
            "another file to start a new warehouse there (the old file and its history stay "
            f"readable), or, to start over here and lose those versions, delete {other}, "
            f"{layout.published} and {layout.history_dir}"
        )
    return (
        f"{layout.published} was built from the working database {other}, which still exists, "
        f"and this run's is {layout.working}: publishing would replace the analysts' file with "
        f"another warehouse's and delete that one's version files. Set ENGAGEMENT_WORKING_DB to "
        f"{other} to go on with that warehouse, or ENGAGEMENT_WAREHOUSE to another file to "
        f"publish this one there (or move {other} aside to start anew)"
    )


def _retained_count(published: duckdb.DuckDBPyConnection) -> int:
    """How many retained versions the published file lists (0 when it cannot say)."""
    try:
        if not versions.table_exists(published, "marts", "snapshot_log"):
            return 0
        row = published.execute(load_sql("marts/count_retained")).fetchone()
    except duckdb.Error:
        return 0
    return int(row[0]) if row else 0


def _has_published(path: Path) -> bool:
    """Whether the working database at `path` opens and has published a file."""
    try:
        with duckdb.connect(str(path), read_only=True) as working:
            return _recorded(working, _STATE) is not None
    except duckdb.Error as exc:
        return is_lock_conflict(exc)  # in use by a run: taken as a live warehouse


def _opens(path: Path) -> bool:
    """Whether the DuckDB file at `path` is there and opens (held by a run counts: it is in
    use); a damaged one does not."""
    if not path.exists():
        return False
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error as exc:
        return is_lock_conflict(exc) or "different configuration" in str(exc)
    return True


def _recorded(con: duckdb.DuckDBPyConnection, record: tuple[str, str]) -> str | None:
    table, column = record
    if not versions.table_exists(con, "marts", table):
        return None
    row = con.execute(load_sql("marts/recorded_value", table=table, column=column)).fetchone()
    return str(row[0]) if row else None


def _record(con: duckdb.DuckDBPyConnection, record: tuple[str, str], value: str | None) -> None:
    table, column = record
    # (a warehouse that never published)
    con.execute(load_sql("marts/create_schema", schema="marts"))
    con.execute(load_sql("marts/create_record_table", table=table, column=column))
    with transaction(con):
        con.execute(load_sql("marts/delete_record", table=table))
        if value is not None:
            con.execute(load_sql("marts/insert_record", table=table), {"value": value})


def _file_identity(path: Path) -> str | None:
    """The published file as the file system knows it (inode, size, modification time in ns):
    any copy put at its path, a backup restored, or a write into it gives another one. Not the
    device, which NFS and overlay mounts renumber at a remount. None when it is not there."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


# ----------------------------------------------------------------------------------------------
# History files


def _retained(con: duckdb.DuckDBPyConnection) -> set[int]:
    return {int(r[0]) for r in con.execute(load_sql("marts/retained_snapshot_ids")).fetchall()}


def _rows_per_version(con: duckdb.DuckDBPyConnection, mart: str) -> dict[int, int]:
    return {
        int(s): int(n)
        for s, n in con.execute(load_sql("history/rows_per_version", mart=mart)).fetchall()
    }


def _logged_versions(con: duckdb.DuckDBPyConnection, mart: str) -> dict[int, int]:
    """Retained versions with rows of `mart`, by the counts their log rows recorded at publish
    (no scan of the history table; an erasure may have removed rows since: `verify`)."""
    return {
        int(s): int(n)
        for s, n in con.execute(
            load_sql("marts/logged_rows_per_version"), {"key": f"$.{mart}"}
        ).fetchall()
    }


def _file_rows(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    row = con.execute(
        "SELECT coalesce(sum(row_group_num_rows), 0) FROM "
        "(SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata($path))",
        {"path": str(path)},
    ).fetchone()
    return int(row[0]) if row else 0


class Stamp(NamedTuple):
    """What a version's history files must agree with (`_foreign`): when it was published, as
    the files record it, and the as-of their rows hold."""

    published: str
    as_of: date | None


def _published_stamps(con: duckdb.DuckDBPyConnection) -> dict[int, Stamp]:
    """snapshot_id -> its `Stamp`."""
    return {
        int(s): Stamp(str(at), as_of)
        for s, at, as_of in con.execute(load_sql("marts/published_stamps")).fetchall()
    }


def _write_version_file(
    con: duckdb.DuckDBPyConnection,
    mart: str,
    snapshot_id: int,
    target: Path,
    warehouse: str,
    published: str | None,
) -> None:
    """Write one version of one mart to its Parquet file: a temporary name, then a rename, so a
    reader sees the whole old file or the whole new one. The file says which warehouse (its
    working database's id), version and publish (`published`, `_published_stamps`) it is of
    (`_foreign`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    try:
        con.execute(
            load_sql("history/copy_version_to_parquet", mart=mart),
            {
                "snapshot_id": snapshot_id,
                "path": str(partial),
                "warehouse_id": warehouse,
                "snapshot": str(snapshot_id),
                "published_at": published or "",
            },
        )
        _fsync(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _foreign(path: Path, warehouse: str | None, snapshot_id: int, stamp: Stamp | None) -> bool:
    """Whether a history file says (its key-value metadata) that another warehouse, another
    version, or another publish of the same version number wrote it (`stamp.published`: when
    the working database's version was published), or holds rows of another as-of than the
    version's (`stamp.as_of`, read from the file's column statistics): a working database
    restored over a warehouse started anew found the new one's `snapshot_1.parquet` in place
    and kept it, so analysts read another as-of's rows as version 1 (a review); a backup of the
    working database restored found the abandoned timeline's `snapshot_2.parquet`, of the same
    warehouse and number, and served it for good (a backup review), and so did a backup of a
    release whose files recorded no publish (an upgrade review: the as-of tells them apart when
    the two timelines' versions differ in it). An unreadable file is not judged here
    (`_whole_parquet` judges a damaged one)."""
    if not warehouse:
        return False
    try:
        metadata = pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return False
    if (
        stamp is not None
        and stamp.as_of is not None
        and _rows_as_of(metadata)
        not in (
            None,
            (stamp.as_of, stamp.as_of),
        )
    ):
        return True
    said = metadata.metadata or {}
    written_by = said.get(b"engagement_box_warehouse")
    if not written_by:
        return False
    published = said.get(b"engagement_box_published_at")
    return (
        written_by.decode() != warehouse
        or said.get(b"engagement_box_snapshot") != str(snapshot_id).encode()
        or (published is not None and stamp is not None and published.decode() != stamp.published)
    )


def _rows_as_of(metadata: pq.FileMetaData) -> tuple[date, date] | None:
    """The least and greatest `as_of` of a history file's rows, from its row groups'
    statistics (no row read); None when it has no such column, no rows or no statistics."""
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    if "as_of" not in names or not metadata.num_rows:
        return None
    column = names.index("as_of")
    lows, highs = [], []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return min(lows), max(highs)


def _snapshot_id(path: Path) -> int | None:
    """The version of a history file `snapshot_<id>.parquet`; None for another name (a copy a
    file manager made, `snapshot_2 (copy).parquet`), which is not the pipeline's and stays."""
    text = path.stem.removeprefix("snapshot_")
    return int(text) if text.isascii() and text.isdigit() else None


def delete_expired_files(
    con: duckdb.DuckDBPyConnection, layout: Layout, now: datetime
) -> list[str]:
    """Delete the files of versions expired `EXPIRED_FILES_GRACE` ago or more; their paths.
    The published file stopped naming them when they expired (it was built again then), so
    only sessions opened before that can still read them, for the grace. Reads the working
    database only (`con` may be read-only); its caller holds the run lock."""
    if not layout.history_dir.is_dir():
        return []
    past = {
        int(s)
        for (s,) in con.execute(
            load_sql("marts/snapshots_expired_before"), {"before": now - EXPIRED_FILES_GRACE}
        ).fetchall()
    }
    deleted = []
    for folder in sorted(layout.history_dir.iterdir()):
        for path in sorted(folder.glob("snapshot_*.parquet")) if folder.is_dir() else ():
            if _snapshot_id(path) in past:
                path.unlink(missing_ok=True)
                deleted.append(str(path))
    return deleted


def delete_version_files(layout: Layout, snapshot_id: int) -> list[str]:
    """Delete every Parquet file of one version now, not after `EXPIRED_FILES_GRACE`: a version
    an operator retired (`versions.retire_version`) holds numbers nobody should read, and the
    published file was built again without it first. A session opened before then is told the
    version was deleted since (`_still_there`) and to reconnect. Its paths."""
    deleted = []
    if layout.history_dir.is_dir():
        for folder in sorted(p for p in layout.history_dir.iterdir() if p.is_dir()):
            path = folder / f"snapshot_{int(snapshot_id)}.parquet"
            if path.exists():
                path.unlink()
                deleted.append(str(path))
    return deleted


def sync_history_files(
    con: duckdb.DuckDBPyConnection, layout: Layout, *, verify: bool = False, now: datetime
) -> Published:
    """Bring `<stem>.history/` to the retained versions of the working database.

    Writes the files of versions that have none (a new version, or the first publish of a
    warehouse from before this layout). With `verify` (after an erasure), also rewrites every file
    whose row count differs from the working history (the erased rows are gone there), and deletes
    every file of an expired version now; without it, those go `EXPIRED_FILES_GRACE` after expiry.
    """
    done = Published()
    retained = _retained(con)
    warehouse = warehouse_id(con)
    stamps = _published_stamps(con)
    expired_at = {int(s): t for s, t in con.execute(load_sql("marts/expired_snapshots")).fetchall()}
    marts = published_marts(con)
    for mart in marts:
        rows = _logged_versions(con, mart)
        if verify:  # the rows there are now; a version an erasure emptied keeps an empty file
            rows = {s: 0 for s in rows} | _rows_per_version(con, mart)
        for snapshot_id, count in sorted(rows.items()):
            if snapshot_id not in retained:
                continue
            target = layout.history_file(mart, snapshot_id)
            stamp = stamps.get(snapshot_id)
            published = stamp.published if stamp else None
            if not target.exists() or not _whole_parquet(target):  # gone, or cut short
                _write_version_file(con, mart, snapshot_id, target, warehouse, published)
                done.files_written.append(str(target))
            elif _foreign(target, warehouse, snapshot_id, stamp):  # another's
                _write_version_file(con, mart, snapshot_id, target, warehouse, published)
                done.files_rewritten.append(str(target))
            elif verify and _file_rows(con, target) != count:
                _write_version_file(con, mart, snapshot_id, target, warehouse, published)
                done.files_rewritten.append(str(target))
        folder = layout.history_dir / mart
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("snapshot_*.parquet")):
            snapshot_id = _snapshot_id(path)
            if snapshot_id is None:
                continue
            keep = snapshot_id in rows and snapshot_id in retained
            if keep:
                continue
            expired = expired_at.get(snapshot_id)
            graced = expired is not None and not verify and now - expired < EXPIRED_FILES_GRACE
            if not graced:
                path.unlink(missing_ok=True)
                done.files_deleted.append(str(path))
    # Files of marts no longer published (none today) and leftovers of killed writes.
    if layout.history_dir.is_dir():
        for path in layout.history_dir.glob("*/.*.tmp"):
            path.unlink(missing_ok=True)
        if verify:
            for folder in layout.history_dir.iterdir():
                if folder.is_dir() and folder.name not in marts:
                    for path in folder.glob("*.parquet"):
                        path.unlink(missing_ok=True)
                        done.files_deleted.append(str(path))
    return done


def _clear_history_files(layout: Layout) -> None:
    if layout.history_dir.is_dir():
        for path in layout.history_dir.glob("*/*.parquet"):
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# The published file


@dataclass(frozen=True)
class VersionFiles:
    """The retained versions' Parquet files of one mart, as the published file reads them.

    `source`: the relation of their rows. A session keeps the versions it opened with, and
    reads them from the files there are at each query: `read_parquet` of the folder's pattern,
    kept to the files of those versions by name. (It read the list of files, and a session
    opened before a retention or an erasure deleted one expired version's file could read no
    version at all, each query failing on that file; a review.) `versions`: the versions that
    had a file, which `marts.<mart>_at` says were deleted since when their file is gone;
    `pattern`: the literal of the folder's pattern, or None where the folder holds a file of
    another name that the pattern matches (or its path a character a pattern reads, which the
    settings refuse): the list of files then, as before. `present`: the condition that every
    version the session opened with still has its file, an error naming those deleted since
    otherwise (`_still_there`): `history.<mart>` holds it, so a query of those versions is not
    answered without them (`marts.<mart>_at` reads the others)."""

    source: str
    versions: tuple[int, ...]
    pattern: str | None
    present: str = "true"


def _version_files(
    con: duckdb.DuckDBPyConnection, layout: Layout, mart: str, warehouse: str
) -> VersionFiles | None:
    """`VersionFiles` of `mart`'s retained versions, None when no retained version has rows
    (`warehouse`: the working database's id, which the files must say wrote them)."""
    found = {
        s: layout.history_file(mart, s)
        for s in sorted(_logged_versions(con, mart))
        if layout.history_file(mart, s).exists()
    }
    if not found:
        return None
    folder = layout.history_dir / mart
    names = ", ".join(_literal(Path(f.name)) for f in found.values())
    # The pattern opens every file it matches (to unite their columns) before the names keep
    # the session's: a file of another name there (a copy, `snapshot_1 (copy).parquet`, which
    # may be half written) would fail every query, and the next build. Such a folder is read
    # by the list of its versions' files, as before (docs/OPERATIONS.md, "Readers and runs").
    if _holds_foreign(folder) or pattern_characters(str(folder)):
        pattern = None
        files = f"[{', '.join(_literal(f) for f in found.values())}]"
        files_read = f"SELECT * FROM read_parquet({files}, union_by_name = true)"
    else:
        pattern = files = _literal(folder / "snapshot_*.parquet")
        files_read = (
            f"SELECT * EXCLUDE (filename) FROM read_parquet({pattern}, union_by_name = true, "
            f"filename = true) WHERE parse_filename(filename) IN ({names})"
        )
    # Files written before a column was added hold it last (or not at all): the union takes
    # the first file's order, so the columns are listed in the dictionary's.
    ordered = versions.ordered_columns(con, mart, files_read)
    written_here = _written_here(mart, files, names, warehouse)
    source = f"(SELECT * FROM ({ordered}) WHERE {written_here})"
    present = _still_there(mart, tuple(found), pattern) if pattern is not None else "true"
    return VersionFiles(source, tuple(found), pattern, present)


def _written_here(mart: str, files: str, names: str, warehouse: str) -> str:
    """A condition of the published file's views and macros: true when none of the Parquet
    `files` it reads (a literal: a pattern, kept to `names`, or a list) says in its metadata
    that another warehouse wrote it; an error saying so otherwise. The views read the files by
    absolute path, so a copy of the published file opened after its warehouse was started anew
    at the same path (or on another machine with the same path) read the other warehouse's
    rows as its own versions, with no error (a review). Files written before they said whose
    they are pass."""
    message = quote_literal(
        f"marts.{mart} / history.{mart}: this published file's version files were replaced by "
        "another warehouse's at the same path (the warehouse was started anew there, or this "
        "file was copied from another machine): open the published file of the warehouse that "
        "wrote them, or keep a standalone copy (ATTACH this warehouse's file READ_ONLY and "
        "CREATE TABLE ... AS SELECT); the first such file: "
    )
    return (
        f"(SELECT CASE WHEN count(*) > 0 THEN error({message} || min(file_name)) ELSE true END "
        f"FROM parquet_kv_metadata({files}) WHERE parse_filename(file_name) IN ({names}) "
        f"AND key = 'engagement_box_warehouse' AND decode(value) <> {quote_literal(warehouse)})"
    )


def _still_there(mart: str, had: tuple[int, ...], pattern: str) -> str:
    """A condition of `history.<mart>`: true while every version in `had` (those the session
    opened with) has its file; otherwise an error naming the versions whose files were deleted
    since. Without it a query of `history.<mart>` in a session opened before a retention or an
    erasure deleted a version's file left that version out, while the session's
    `marts.snapshots` still listed it as retained (a review)."""
    message = quote_literal(
        f"history.{mart}: deleted after this session opened the file (retention expired them, "
        "or an erasure), version(s) "
    )
    after = quote_literal(
        ": close every connection to the file in this process, then connect again to read the "
        f"versions there are now (marts.{mart}_at reads the others)"
    )
    return (
        f"(SELECT CASE WHEN len(gone) > 0 THEN error({message} || array_to_string(gone, ', ') "
        f"|| {after}) ELSE true END FROM (SELECT list_filter({versions.bigint_list(had)}, "
        "v -> NOT list_contains(present, 'snapshot_' || v || '.parquet')) AS gone FROM "
        f"(SELECT coalesce(list(parse_filename(file)), []) AS present FROM glob({pattern}))))"
    )


def _history_view(mart: str, files: VersionFiles | None) -> str:
    """The statement creating `history.<mart>` in the published file: the retained versions'
    Parquet files (`files`, from `_version_files`)."""
    if files is None:  # no retained version has rows: an empty view of the right columns
        return load_sql("history/create_empty_history_view", mart=mart)
    view = sql_template("history/create_history_view")
    return view.format(mart=quote_identifier(mart), source=files.source, present=files.present)


def _time_travel_macro(
    con: duckdb.DuckDBPyConnection, mart: str, files: VersionFiles | None, retained: list[int]
) -> str:
    """The statement creating `marts.<mart>_at` in the published file: over the same files as
    `history.<mart>` (`files`), the `retained` versions listed, so it names none of the file's
    tables and works in a session that ATTACHes the file under any name (when no retained
    version has rows, a typed relation of no rows: `_no_versions`). A version whose file was
    deleted since the session opened the file is an error that says so (`files.pattern`)."""
    if files is None:
        return versions.time_travel_macro(mart, rows=_no_versions(con, mart), retained=retained)
    deleted = None
    if files.pattern is not None:
        deleted = (files.versions, files.pattern)
    return versions.time_travel_macro(mart, rows=files.source, retained=retained, deleted=deleted)


def _no_versions(con: duckdb.DuckDBPyConnection, mart: str) -> str:
    """A relation of no rows with the columns and types of `history.<mart>`, naming no table:
    what the macro of a mart that no retained version has rows of reads (`history.<mart>`
    would bind where the macro is called, and fail in a session that ATTACHes the file)."""
    # Names and types read from the catalog (not data).
    typed = "".join(
        f", CAST(NULL AS {dtype}) AS {quote_name(name)}"
        for name, dtype in catalog_columns(con, "marts", mart)
    )
    return f"(SELECT CAST(NULL AS BIGINT) AS snapshot_id{typed} WHERE false)"


def _current_view(
    con: duckdb.DuckDBPyConnection, layout: Layout, mart: str, warehouse: str
) -> str | None:
    """The statement creating `marts.<mart>` in the published file: a view over the current
    version's Parquet file, with the columns of the working `marts.<mart>` (None when that
    version has no rows: the table is copied instead)."""
    current = versions.current_version(con)
    path = layout.history_file(mart, current) if current is not None else None
    if path is None or not path.exists():
        return None
    names = [column for column, _ in catalog_columns(con, "marts", mart)]
    columns = ", ".join(quote_name(n) for n in names)  # names read from the catalog
    view = sql_template("marts/create_published_mart_view")
    written_here = _written_here(mart, _literal(path), _literal(Path(path.name)), warehouse)
    return view.format(
        mart=quote_identifier(mart), columns=columns, path=_literal(path), written_here=written_here
    )


def _comments(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str | None], str]:
    """The descriptions (`COMMENT ON`, from the data dictionary) of the working database's
    tables, views and columns: (schema, table, column or None) -> text."""
    rows = con.execute(
        "SELECT schema_name, table_name, NULL, comment FROM duckdb_tables() "
        "WHERE database_name = current_database() AND comment IS NOT NULL "
        "UNION ALL SELECT schema_name, view_name, NULL, comment FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal AND comment IS NOT NULL "
        "UNION ALL SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
        "WHERE database_name = current_database() AND comment IS NOT NULL"
    ).fetchall()
    return {(str(s), str(t), c): str(text) for s, t, c, text in rows}


def _comment_statements(
    fresh: duckdb.DuckDBPyConnection, comments: dict[tuple[str, str, str | None], str]
) -> list[str]:
    """COMMENT ON statements giving the published file's objects the working database's
    descriptions (a mart that is a view here was a table there). COMMENT ON binds no parameter:
    names are quoted as identifiers and texts as literals."""
    kinds = {
        (str(s), str(t)): kind
        for s, t, kind in fresh.execute(
            "SELECT schema_name, table_name, 'TABLE' FROM duckdb_tables() "
            "UNION ALL SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    }
    columns = {
        (str(s), str(t), str(c))
        for s, t, c in fresh.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns()"
        ).fetchall()
    }

    statements = []
    for (schema, table, column), text in sorted(comments.items(), key=str):
        target = f"{quote_name(schema)}.{quote_name(table)}"
        if column is None and (schema, table) in kinds:
            statements.append(
                f"COMMENT ON {kinds[schema, table]} {target} IS {quote_literal(text)}"
            )
        elif column is not None and (schema, table, column) in columns:
            described = f"{target}.{quote_name(column)}"
            statements.append(f"COMMENT ON COLUMN {described} IS {quote_literal(text)}")
    return statements


def _masked_quarantine(con: duckdb.DuckDBPyConnection, previous: bool = False) -> pa.Table:
    """Each quarantine row's rowid with its raw values and detail masked
    (`privacy.masked_json`, `privacy.masked_detail`; sql/marts/published_quarantine.sql).
    With `previous`, only the rows the file analysts have does not hold (the temp table
    `held_before`: sql/marts/quarantine_held_before.sql): a day's new quarantine rows, not the
    whole quarantine again (5.3 CPU-s for 482,331 rows at 1M customers after an export was sent
    twice)."""
    rows = "staging/quarantine_to_mask" + ("_not_held" if previous else "")
    found = con.execute(load_sql(rows)).fetchall()
    return pa.table(
        {
            "row_id": pa.array([r[0] for r in found], pa.int64()),
            "raw_values": pa.array([privacy.masked_json(r[1]) for r in found], pa.string()),
            "detail": pa.array([privacy.masked_detail(r[2], r[3]) for r in found], pa.string()),
        }
    )


# What the published quarantine was masked from: its rows (by their keys) and the masking
# itself. Change the version with any change to `privacy`'s masking: the next build then masks
# every row anew instead of copying rows the previous file masked the old way.
QUARANTINE_MASKING = "masked_json/10"
_PREVIOUS = "engagement_previous"


def quarantine_state(con: duckdb.DuckDBPyConnection) -> str:
    """The working database's quarantine rows, by their keys, and the masking: equal states,
    the published file's quarantine was masked from the same rows. Cheap (one aggregate over
    key columns). The row hashes are summed, not xor-ed: two equal rows would cancel out."""
    query = sql_template("staging/quarantine_key_state").format(quarantine="staging.quarantine")
    row = con.execute(query).fetchone()
    return f"{QUARANTINE_MASKING}|{row[0]}|{row[1]}"


def _file_quarantine_state(con: duckdb.DuckDBPyConnection, database: str | None = None) -> str:
    """The quarantine as a published file holds it (attached as `database`, or `con`'s own):
    every column of every row, masked values included. Recorded when the file is built: a file
    at the published path whose quarantine differs (a copy of the working database put there
    by hand, unmasked; a backup from before an erasure) is neither copied from nor served."""
    table = "staging.quarantine" if database is None else f"{database}.staging.quarantine"
    row = con.execute(
        sql_template("staging/quarantine_file_state").format(quarantine=table)
    ).fetchone()
    return f"{row[0]}|{row[1]}"


def _recorded_quarantine(con: duckdb.DuckDBPyConnection) -> tuple[str | None, str | None]:
    """What the published file's quarantine was built from (`quarantine_state` of the working
    quarantine) and what the file holds (`_file_quarantine_state`), as recorded at its build;
    (None, None) when nothing was, or only the first (a record from before the second)."""
    names = {c for c, _ in catalog_columns(con, "marts", "published_quarantine_state")}
    if "file_state" not in names:
        return None, None
    row = con.execute(load_sql("marts/recorded_quarantine_state")).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _attach_previous_quarantine(
    con: duckdb.DuckDBPyConnection, layout: Layout, state: str | None
) -> str | None:
    """Attach the file analysts have now (as `_PREVIOUS`, read-only) when its masked quarantine
    is the one this code built: the file holds what was recorded at its build
    (`_file_quarantine_state`), masked from the rows recorded then (`quarantine_state`) as
    `QUARANTINE_MASKING` masks. "whole" when the working quarantine has those rows now
    (`state`): the new file copies it instead of masking every row again (1.8-2.0 CPU-s per
    153k rows at 1M customers, on every publish); "rows" when it has others: the rows the file
    holds are copied, the others masked (`_masked_quarantine`). None when every row must be
    masked anew."""
    if state is None:
        return None
    masked_from, built = _recorded_quarantine(con)
    if masked_from is None or built is None:
        return None
    if not masked_from.startswith(f"{QUARANTINE_MASKING}|"):
        return None
    if not layout.published.exists():
        return None
    try:
        con.execute(f"ATTACH {_literal(layout.published)} AS {_PREVIOUS} (READ_ONLY)")
    except duckdb.Error:
        return None  # damaged or gone: masked anew
    held = con.execute(
        load_sql("staging/attached_quarantine_exists"), {"db": _PREVIOUS}
    ).fetchone()[0]
    # The file there must hold the quarantine it was built with, masked values and all.
    if not held or _file_quarantine_state(con, _PREVIOUS) != built:
        con.execute(f"DETACH {_PREVIOUS}")
        return None
    return "whole" if masked_from == state else "rows"


def mask_quarantine_anew(con: duckdb.DuckDBPyConnection) -> None:
    """Forget what the published quarantine was masked from, so the next publish masks every row
    again: the ingest changed the detail of rows the file already holds (a duplicate compared
    again), which a copy by the rows' keys would keep as they were."""
    if versions.table_exists(con, "marts", "published_quarantine_state"):
        con.execute(load_sql("marts/delete_published_quarantine_state"))


def _record_quarantine_state(
    con: duckdb.DuckDBPyConnection, state: str | None, built: str | None
) -> None:
    """Record what the published file's quarantine was made from (`quarantine_state`) and
    what it holds (`_file_quarantine_state`); nothing when it has no quarantine."""
    names = {c for c, _ in catalog_columns(con, "marts", "published_quarantine_state")}
    with transaction(con):
        if names and "file_state" not in names:  # a record from before the file's own state
            con.execute(load_sql("marts/drop_published_quarantine_state"))
        con.execute(load_sql("marts/create_published_quarantine_state"))
        con.execute(load_sql("marts/delete_published_quarantine_state"))
        if state is not None and built is not None:
            con.execute(
                load_sql("marts/insert_published_quarantine_state"),
                {"state": state, "built": built},
            )


def _build(
    con: duckdb.DuckDBPyConnection, layout: Layout, target: Path, quarantined: str | None
) -> str | None:
    """Build the published file at `target` (a new file) from the working database;
    `quarantined` is the working quarantine's `quarantine_state` (None: no quarantine).
    Returns the file's own quarantine state (`_file_quarantine_state`; None without one)."""
    for path in (target, target.with_name(target.name + ".wal")):
        path.unlink(missing_ok=True)
    marts = published_marts(con)
    warehouse = warehouse_id(con)
    sources = {mart: _version_files(con, layout, mart, warehouse) for mart in marts}
    retained = sorted(_retained(con))
    current_version = versions.current_version(con)
    views = [_history_view(mart, sources[mart]) for mart in marts]
    macros = [_time_travel_macro(con, mart, sources[mart], retained) for mart in marts]
    current = {mart: _current_view(con, layout, mart, warehouse) for mart in marts}
    comments = _comments(con)
    origin = {
        "id": warehouse,
        "working": str(layout.working.absolute()),
        "published": str(layout.published.absolute()),
    }
    previous = _attach_previous_quarantine(con, layout, quarantined)
    built = None
    con.execute(f"ATTACH {_literal(target)} AS {_ATTACHED}")
    try:
        with transaction(con):
            for schema in ("marts", "history", "staging"):
                con.execute(
                    load_sql("marts/create_published_schema", database=_ATTACHED, schema=schema)
                )
            tables = [("marts", m) for m in marts if current[m] is None] + [
                (s, t)
                for s, t in PUBLISHED_TABLES
                if versions.table_exists(con, s, t) and (s, t) != _CURRENT_VERSION
            ]
            for schema, table in tables:
                if (schema, table) == ("staging", "quarantine"):  # emails and handles masked
                    if previous == "whole":  # the file analysts have holds the same rows
                        con.execute(
                            load_sql(
                                "staging/copy_previous_quarantine",
                                database=_ATTACHED,
                                previous=_PREVIOUS,
                            )
                        )
                        continue
                    some = previous == "rows"  # it holds some of them: those are copied
                    if some:
                        con.execute(load_sql("marts/quarantine_held_before", previous=_PREVIOUS))
                    con.register("masked_quarantine", _masked_quarantine(con, previous=some))
                    query = "marts/published_quarantine" + ("_rows" if some else "")
                    try:
                        con.execute(load_sql(query, database=_ATTACHED))
                    finally:
                        con.unregister("masked_quarantine")
                        con.execute("DROP TABLE IF EXISTS held_before")
                    continue
                copy = load_sql(
                    "marts/copy_into_published_file", database=_ATTACHED, schema=schema, table=table
                )
                con.execute(copy)
        if quarantined is not None:
            built = _file_quarantine_state(con, _ATTACHED)
        con.execute(f"CHECKPOINT {_ATTACHED}")
    finally:
        con.execute(f"DETACH {_ATTACHED}")
        if previous:
            con.execute(f"DETACH {_PREVIOUS}")
    # Views are created in the file itself, so their names bind to its own schemas whatever
    # name a reader opens it under; the macros name no table (`_time_travel_macro`).
    fresh = duckdb.connect(str(target))
    try:
        with transaction(fresh):
            # Created as in the working database, its key and check with it: the description
            # analysts read says the table can hold one row at most (a copy had no constraint).
            fresh.execute(load_sql("marts/create_current_version"))
            fresh.execute(load_sql("marts/insert_current_version"), {"id": current_version})
            fresh.execute(load_sql("marts/create_published_from"))
            fresh.execute(load_sql("marts/insert_published_from"), origin)
            for statement in dictionary.comment_statements(fresh, "marts", "published_from"):
                fresh.execute(statement)
            fresh.execute(versions.snapshots_view_sql())
            for mart, view, macro in zip(marts, views, macros, strict=True):
                if current[mart] is not None:
                    fresh.execute(current[mart])
                fresh.execute(view)
                fresh.execute(macro)
                fresh.execute(versions.time_travel_comment(mart))
            for statement in _comment_statements(fresh, comments):
                fresh.execute(statement)
        fresh.execute("CHECKPOINT")
    finally:
        fresh.close()
    if target.with_name(target.name + ".wal").exists():
        raise PublishError(f"{target} kept a write-ahead log after its checkpoint; not published")
    _fsync(target)
    return built


def ensure_erasure_finished(con: duckdb.DuckDBPyConnection) -> None:
    """Create `staging.erasure_finished`. A warehouse from before it: every request it logged
    finished as erasures then did (the erase rewrote the files), so they are recorded so."""
    if versions.table_exists(con, "staging", "erasure_finished"):
        return
    con.execute(load_sql("erasure/create_erasure_finished"))
    if versions.table_exists(con, "staging", "erasure_log"):
        ids = [r for (r,) in con.execute(load_sql("staging/erasure_request_ids")).fetchall()]
        finish_erasures(con, ids)


def unfinished_erasures(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The logged erasure requests whose files are not all rewritten: an erase stopped after
    its commit left the person in the versions' Parquet files and the audience files, and
    nothing later looked (runs, retention and the schedule said nothing). The next publish
    checks every history file while there are some (`publish`), and the next audience step
    writes the files again and records them finished."""
    if not versions.table_exists(con, "staging", "erasure_log"):
        return []
    if not versions.table_exists(con, "staging", "erasure_finished"):
        return []  # the log from before this record: finished, recorded at the next erase
    return [r for (r,) in con.execute(load_sql("erasure/unfinished_erasures")).fetchall()]


def finish_erasures(
    con: duckdb.DuckDBPyConnection, ids: list[str], now: datetime | None = None
) -> None:
    """Record these erasure requests finished (their files rewritten)."""
    if ids:
        con.execute(
            load_sql("erasure/finish_erasures"),
            {"ids": ids, "at": (now or utc_now()).replace(tzinfo=None)},
        )


def publish(
    con: duckdb.DuckDBPyConnection,
    layout: Layout,
    *,
    erased: bool = False,
    now: datetime | None = None,
) -> Published:
    """Bring the published file and its history files up to date with the working database.

    `con` is the working database, opened for writing by the one process holding the run lock.
    Does nothing when the file is up to date (same `state`); `erased` forces a rebuild and checks
    every history file (after an erasure; also while an erasure is unfinished,
    `unfinished_erasures`). The new file replaces the old one in one rename.
    """
    started = time.perf_counter()
    now = (now or utc_now()).replace(tzinfo=None)
    if not _has_version(con):
        if erased or unfinished_erasures(con):
            _drop_unversioned_old_file(layout)
        return Published()  # nothing published yet: no file for readers
    working_id = _recorded(con, _WAREHOUSE_ID)
    problem = foreign_working_problem(
        layout, working_id, _recorded(con, _STATE) is not None
    ) or restored_working_problem(layout, working_id, version_ids(con))
    if problem:
        raise PublishError(problem)
    # An erase stopped after its commit: its person may still be in the history files.
    erased = erased or bool(unfinished_erasures(con))
    # Only the run lock's holder publishes: any file a publish was building is a killed
    # process's, and may hold rows an erasure since removed everywhere else.
    for stale in layout.published.parent.glob(f".{layout.published.name}.*.building*"):
        stale.unlink(missing_ok=True)
    token = _token(con, layout)
    recorded = _recorded(con, _STATE)
    if (
        not erased
        and layout.published.exists()
        and recorded == token
        and _damage(con, layout) is None
    ):
        # Up to date; the files of versions whose grace has passed since go now, not with the
        # next change (a quiet month kept every expired version's files on disk).
        return Published(state=token, files_deleted=delete_expired_files(con, layout, now))
    if recorded is None:
        # This working database never published: files in the history folder are not its
        # versions (an earlier working database's, or none). Write every version afresh.
        _clear_history_files(layout)
    done = sync_history_files(con, layout, verify=erased, now=now)
    done.parquet_seconds = time.perf_counter() - started
    masked_from = (
        quarantine_state(con) if versions.table_exists(con, "staging", "quarantine") else None
    )
    target = layout.published.with_name(f".{layout.published.name}.{os.getpid()}.building")
    try:
        built = _build(con, layout, target, masked_from)
        os.replace(target, layout.published)
    except BaseException:
        target.unlink(missing_ok=True)
        target.with_name(target.name + ".wal").unlink(missing_ok=True)
        raise
    dir_fd = os.open(layout.published.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    # A stale write-ahead log next to the new file would be replayed into it: none may stay.
    layout.published.with_name(layout.published.name + ".wal").unlink(missing_ok=True)
    _record(con, _STATE, token)
    _record_quarantine_state(con, masked_from, built)
    _record(con, _FILE, _file_identity(layout.published))
    if _recorded(con, _ADOPTED) is not None:
        _record(con, _ADOPTED, None)  # the old file is replaced: nothing to adopt again
    done.built = True
    done.state = token
    done.seconds = time.perf_counter() - started
    return done


# ----------------------------------------------------------------------------------------------
# Warehouses from before this layout


def is_single_file_warehouse(published: Path) -> bool:
    """True when `published` is a warehouse from before the working database: it holds the
    pipeline's own schemas (work, intermediate or staged sources), not just the published copy."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        row = con.execute(load_sql("work/count_pipeline_schemas")).fetchone()
        return bool(row and row[0])
    finally:
        con.close()


# What a working database copied from a warehouse from before it was copied from (the old
# file's `_file_identity` then): `adopt_single_file` copies it again if it changed since.
_ADOPTED = ("adopted_file", "identity")


def adopt_single_file(layout: Layout) -> bool:
    """A warehouse from before this layout becomes the working database: copied; the next
    publish builds the published file over the old one. Returns True when it adopted one.

    Called under the run lock, before any step opens the working database. The old file stays
    where analysts open it until that publish replaces it: moved instead (as it was), a first
    run that failed left analysts with no file at all, and an analyst's session open on it
    went with it and held off every step's write for its lock timeout. While it stays, it is
    copied again if it changed since it was copied (the release before ran on it after a
    failed first run here: its versions and erasures were lost at the next publish).
    """
    if not layout.published.exists():
        return False
    if layout.working.exists():
        # Asked of the working database first: the published file is not opened on every run
        # (an analyst's read-write session on it would fail the open). The record goes with
        # the first publish (`publish`).
        try:
            with duckdb.connect(str(layout.working), read_only=True) as working:
                adopted = _recorded(working, _ADOPTED)
        except duckdb.Error:
            return False  # the run's own open says what is wrong with it
        if adopted is None or adopted == _file_identity(layout.published):
            return False
    if not is_single_file_warehouse(layout.published):
        return False
    wal = layout.published.with_name(layout.published.name + ".wal")
    if wal.exists():  # fold the log into the file first, so the copy is one whole file
        con = duckdb.connect(str(layout.published))
        try:
            con.execute("CHECKPOINT")
        finally:
            con.close()
    identity = _file_identity(layout.published)
    layout.working.parent.mkdir(parents=True, exist_ok=True)
    # Under the run lock: a partial copy there is a killed adoption's.
    for stale in layout.working.parent.glob(f".{layout.working.name}.*.adopting"):
        stale.unlink(missing_ok=True)
    partial = layout.working.with_name(f".{layout.working.name}.{os.getpid()}.adopting")
    try:
        shutil.copyfile(layout.published, partial)
        with duckdb.connect(str(partial)) as copied:
            _record(copied, _ADOPTED, identity)
        _fsync(partial)
        # a log of the copy this one replaces would be replayed into it
        layout.working.with_name(layout.working.name + ".wal").unlink(missing_ok=True)
        os.replace(partial, layout.working)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return True


def _drop_unversioned_old_file(layout: Layout) -> bool:
    """After an erasure in a working database with no version yet: a warehouse from before the
    working database, still at the analysts' path (copied, not replaced, since no publish
    built a file), holds the person; it has no version to show either, so it goes."""
    if not layout.published.exists() or not is_single_file_warehouse(layout.published):
        return False
    layout.published.unlink()
    layout.published.with_name(layout.published.name + ".wal").unlink(missing_ok=True)
    return True
