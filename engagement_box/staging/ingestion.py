"""Ingest raw exports into the staging layer: read, parse, validate, quarantine, stage.

This module is the staging transaction and what it records (files taken in, moved, changed,
repeated keys, the messages a run says); the files are found, checked and read by
`staging/reading.py`, and their rows parsed, validated and turned into quarantine rows by
`staging/validation.py`.

The rule this module keeps: every raw row read ends up either in `staging.<source>` or in
`staging.quarantine` with a reason (or, if it belongs to a person erased on request, is counted in
`staging.erased_rows` and kept out), and a source's tables change in one transaction or not at
all.

How a source is ingested (`ingest_source`):
1. List the export files under `<data_dir>/<source>/` (`.csv` and `.parquet`; anything else is an
   error naming the file). A file whose path and content hash were ingested before is skipped; a
   file whose content changed replaces the rows it staged before.
2. Check every file first, from its first bytes or its Parquet footer (`check_header`): a file
   that cannot be opened, is not UTF-8 text, repeats or misses a required column, or has a
   Parquet column of a type its contract column cannot take raises `IngestError` naming the
   file, before any table is touched. Then read the files as text, in batches, inside one
   transaction (step 4); a file found unreadable further in (a row with more fields than the
   header, bytes that are not UTF-8) raises `IngestError` naming it and the line, and the
   transaction rolls back, so no table changes either. A message that quotes the file's text
   (a line, a header's names, a library's words about a value) masks the emails and handles in
   it (`privacy.masked_text`): it reaches the console and Dagster's run storage, which erasure
   does not reach.
3. Parse each column to the type its contract declares; text that does not parse is a failure
   (`unparseable_<type>`), never a silent NULL. A CSV row with fewer fields than the header is a
   failure (`wrong_field_count`), and so is a timestamp after the run's time plus a day
   (`in_future`). Validate the typed rows with the Pandera model.
4. In one DuckDB transaction: drop rows of changed files; append each batch's good rows to the
   staged table on a thread while the next batch is parsed, holding back repeated keys (the
   first occurrence by file path and row wins; keys staged before are checked in memory by
   64-bit hash, then as text: `_StagedKeys`, not against the compressed staged table); insert
   the quarantine rows, record the files. When a changed file dropped a key it had staged, the
   first row quarantined as that key's duplicate is staged instead. Then check the
   reconciliation (and that every duplicate's key is staged) inside the transaction and roll
   back if it does not hold.

No Dagster import: the assets in `assets/staging.py` are a thin layer over `ingest_source`.
"""

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl
import pyarrow as pa

from engagement_box import dictionary, settings
from engagement_box.clock import shop_zone, utc_now
from engagement_box.governance import erasure, readers, versions
from engagement_box.sql import columns as catalog_columns
from engagement_box.sql import (
    load_sql,
    quote_identifier,
    relation_exists,
    sql_template,
    table_exists,
    transaction,
)
from engagement_box.staging.contracts import (
    INVISIBLE_PATTERN,
    LIST_SEPARATOR,
    MONEY_DUCKDB_TYPE,
    ROW_PROBLEM,
    SOURCES,
    STAGING_RULES,
    IngestError,
    Source,
)
from engagement_box.staging.reading import (
    ExportFile,
    RefusedNames,
    check_headers,
    discover_files,
    file_sha256,
    lacks_last_line_end,
    read_raw,
    refuse_all,
)
from engagement_box.staging.reconciliation import reconcile
from engagement_box.staging.validation import WITH_OFFSET, check_batch, quarantine_rows

# Rows per validation batch: bounds the polars side's memory on big drops while keeping
# per-batch overhead small (10M orders: 500k-row batches took 29% longer; 1.5M no faster than
# 750k, and the peak, about 3.3 GiB, is mostly DuckDB's either way; docs/BENCHMARKS.md).
BATCH_ROWS = 750_000

DUCKDB_TYPES = {
    pl.String: "VARCHAR",
    pl.Datetime: "TIMESTAMP",
    pl.Date: "DATE",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
    pl.Boolean: "BOOLEAN",
}


@dataclass
class IngestReport:
    """What one ingest of one source did; the assets turn this into metadata."""

    source: str
    run_id: str
    files_seen: int = 0
    files_skipped: int = 0
    files_ingested: list[str] = field(default_factory=list)
    files_replaced: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    rows_erased: int = 0
    # Erased people's keys this ingest took from the register beside a working database started
    # anew (`erasure.adopt_register`; the CLI says so).
    erasures_adopted: int = 0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    # Per file: rows quarantined as duplicate_key, staged now that the file holding their key's
    # first occurrence changed and no longer holds it.
    duplicates_restaged: dict[str, int] = field(default_factory=dict)
    # Per changed file: the keys it staged before that no file stages now (a file overwritten
    # with other rows), with the first few of them. A changed file replaces its rows by design;
    # this says what left with them.
    keys_withdrawn: dict[str, dict] = field(default_factory=dict)
    # Per file of profiles (`PROFILE_SOURCE`): its rows quarantined as duplicate_key whose values
    # differ from the profile staged (a later export's correction or withdrawn consent, which a
    # later file does not apply): `profile_changes`. The CLI warns.
    profile_changes: dict[str, dict] = field(default_factory=dict)
    # Per file of orders: its rows quarantined as duplicate_key whose values differ from the
    # order staged (a later export's return), which a later file does not apply:
    # `order_changes`. The CLI warns.
    order_changes: dict[str, dict] = field(default_factory=dict)
    # New file -> an earlier file of the same content (the same export dropped again under
    # another name: all its rows are quarantined as duplicate_key).
    copies: dict[str, str] = field(default_factory=dict)
    # New path -> the path a file was taken in from, when that file is no longer there and this
    # one has its content: the file was moved or renamed (into an archive folder, say). Nothing
    # is read or staged again; its rows keep the path they were staged from.
    moved: dict[str, str] = field(default_factory=dict)
    # Files taken in again, unchanged, because they were taken in under other rules
    # (`contracts.STAGING_RULES`; also in `files_replaced`).
    restaged_for_rules: list[str] = field(default_factory=list)
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    # Per file taken in this run with rows quarantined: [rows read, rows quarantined]. A file
    # mostly quarantined (a date format the contract does not read) is said by the CLI.
    quarantined_files: dict[str, list[int]] = field(default_factory=dict)
    # Per CSV file taken in this run whose last line has no line end and whose last row was
    # quarantined: that row's reasons. The file looks cut short (copied while still being
    # written); the CLI warns (`cut_short_message`).
    cut_short: dict[str, list[str]] = field(default_factory=dict)
    # Per file taken in this run, ENGAGEMENT_TIME_ZONE not set: a timestamp among its first
    # values written at an offset other than UTC's (the CLI warns, `other_offset_message`).
    other_offsets: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def staged_zone(con: duckdb.DuckDBPyConnection) -> str | None:
    """The time zone the staged timestamps were read in: the one recorded, UTC for a warehouse
    that staged files before it was recorded, None when nothing is staged yet."""
    if relation_exists(con, "staging", "ingest_zone"):
        row = con.execute(load_sql("staging/ingest_zone")).fetchone()
        if row is not None:
            return str(row[0])
    if relation_exists(con, "staging", "ingested_files") and taken_in(con):
        return "UTC"  # every release before ENGAGEMENT_TIME_ZONE read timestamps in UTC
    return None


def follow_zone(con: duckdb.DuckDBPyConnection, zone: str) -> bool:
    """Record `zone` (ENGAGEMENT_TIME_ZONE) as the one staged timestamps are read in; when the
    files were taken in under another, every one is taken in again (its rule version forgotten,
    `sql/staging/forget_rules_of_every_file.sql`), so no day is read in two calendars. Files no
    longer in the folder keep the rows they staged (as after an upgrade of the rules). Returns
    whether the zone changed."""
    before = staged_zone(con)
    if before == zone:
        return False
    with transaction(con):
        con.execute(load_sql("staging/create_ingest_zone"))
        if before is not None:
            con.execute(load_sql("staging/forget_rules_of_every_file"))
        con.execute(load_sql("staging/forget_ingest_zone"))
        con.execute(load_sql("staging/record_ingest_zone"), {"time_zone": zone})
    return before is not None


def exports_taken_in(con: duckdb.DuckDBPyConnection, data_dir: Path | str) -> bool:
    """True when every export file of every source is already staged as it is now: the same
    path (where a moved file is now) and stat (size, mtime, ctime) in `staging.ingested_files`,
    or, when the stat moved but
    not the size, the same content hash (a copy, or an edit whose mtime was set back: ctime
    tells it). An ingest would change nothing. Cheap: only such files are read."""
    if not relation_exists(con, "staging", "ingested_files"):
        return False
    if duplicates_not_compared(con):  # a run stopped after its ingest's commit: finished next
        return False
    if staged_zone(con) not in (None, shop_zone()):  # read in another time zone: taken in again
        return False
    known = taken_in(con)
    for source in SOURCES.values():
        try:
            exports = discover_files(Path(data_dir), source)
        except IngestError:
            return False  # the ingest reports the file
        for export in exports:
            record = known.get((source.name, export.relpath))
            if record is None:
                return False
            if record.rules != STAGING_RULES:
                return False  # taken in under other rules: the next ingest takes it in again
            if record.stat == export.stat:
                continue
            if record.stat[0] != export.size_bytes or file_sha256(export.path) != record.sha256:
                return False
    return True


def files_not_in_folder(con: duckdb.DuckDBPyConnection, data_dir: Path | str) -> list[str]:
    """The files taken in (where they are now, `source/path`) that the export folder no longer
    holds and that staged rows, in path order: their rows stay staged (docs/CONTRACTS.md, "How
    export files are taken in"), which a user who deleted one to withdraw its rows should be
    told (a file that staged none, header only, was said to keep its rows: a review). Empty
    when it cannot tell (no staging yet, a file the ingest refuses)."""
    if not relation_exists(con, "staging", "ingested_files"):
        return []
    present: set[tuple[str, str]] = set()
    for source in SOURCES.values():
        try:
            present |= {(source.name, e.relpath) for e in discover_files(Path(data_dir), source)}
        except IngestError:
            return []
    return sorted(
        path
        for (source, path), taken in taken_in(con).items()
        if (source, path) not in present and taken.rows_staged > 0
    )


class TakenIn(NamedTuple):
    """A file taken in, as `staging.ingested_files` records it."""

    sha256: str
    stat: tuple[int, int, int]  # size, mtime, ctime when last seen
    source_file: str  # the path its rows were staged from (where it is now may differ)
    rules: int | None  # STAGING_RULES it was taken in under (None: before they were recorded)
    rows_staged: int = 0  # the rows it staged (0: header only, or every row quarantined)
    rows_read: int = 0  # the rows it held (0: a header or a schema alone)
    first_taken_in: datetime | None = None  # when the file at its path was first taken in
    content_taken_in: datetime | None = None  # when its present content was first taken in


def taken_in(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], TakenIn]:
    """Every file taken in, by (source, where it is now: `moved_to`, else `source_file`).

    Reads a warehouse whose last ingest predates `moved_to` and `rules` too (the next ingest
    adds them; the CLI asks on a read-only connection): no file moved, none under these rules."""
    recorded = {name for name, _ in catalog_columns(con, "staging", "ingested_files")}
    rows = con.execute(
        sql_template("staging/taken_in_files").format(
            path="coalesce(moved_to, source_file)" if "moved_to" in recorded else "source_file",
            rules="rules" if "rules" in recorded else "NULL",
            first="first_taken_in" if "first_taken_in" in recorded else "NULL",
            content=(
                "coalesce(content_taken_in, ingested_at)"
                if "content_taken_in" in recorded
                else "ingested_at"
            ),
        )
    ).fetchall()
    return {(row[0], row[1]): TakenIn(row[2], tuple(row[3:6]), *row[6:]) for row in rows}


def staged_under_other_rules(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether rows stay staged from a file taken in under other ingest rules than today's
    (`sql/staging/files_under_other_rules.sql`; a warehouse from before rules were recorded:
    yes)."""
    if "rules" not in {name for name, _ in catalog_columns(con, "staging", "ingested_files")}:
        return True
    (other,) = con.execute(
        load_sql("staging/files_under_other_rules"), {"rules": STAGING_RULES}
    ).fetchone()
    return bool(other)


# ----------------------------------------------------------------------------------------------
# The warehouse side


def ensure_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Create the staging schema, bookkeeping tables and every source's staged table."""
    con.execute(load_sql("staging/create_schema"))
    con.execute(load_sql("staging/create_quarantine"))
    con.execute(load_sql("staging/create_ingested_files"))
    for source in SOURCES.values():
        create_staged_table(con, source)
    erasure.ensure_erasure_tables(con)
    dictionary.comment_on_staging(con)


def create_staged_table(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Create `staging.<source>` if it does not exist, with its ENUM types (see
    `staged_table_ddl`); the enumerated values are bound as parameters."""
    if table_exists(con, "staging", source.name):
        return
    # DuckDB 1.5.5 cannot replay a write-ahead log that holds both `CREATE SCHEMA staging` and a
    # `CREATE TYPE staging.<type>`: a crash in between made the file unopenable. Writing the
    # schema into the file first leaves no such log (tests/test_wal_replay.py).
    con.execute("CHECKPOINT")
    for column, values in source.enumerations.items():
        con.execute(
            sql_template("staging/create_enum_type").format(type=enum_type(source, column)),
            {"values": list(values)},
        )
    con.execute(staged_table_ddl(source))


def enum_type(source: Source, column: str) -> str:
    """The quoted name of the ENUM type of an enumerated column, e.g. "orders_status"."""
    return quote_identifier(f"{source.name}_{column}")


def staged_table_ddl(source: Source) -> str:
    """CREATE TABLE for a source, derived from its contract (identifiers from the allow-list).

    Text columns get a fixed storage instead of DuckDB's per-segment compression analysis, which
    tried every method on every segment and was the top of the ingest profile: columns with a
    fixed set of values (an `isin` check: order status and channel, social event type and
    platform) are ENUMs (one byte a row, no string statistics or dictionary to build: appending
    850k orders took 5.2 s instead of 6.5 s); other codes (few values) are dictionary-encoded,
    free text and ids FSST-compressed.
    """
    enumerations = source.enumerations

    def column(name: str, sql_type: str, nullable: bool) -> str:
        if name in enumerations:
            sql_type = f"staging.{enum_type(source, name)}"
        elif sql_type == "VARCHAR":
            few_values = name in source.casefold or name in source.upcase or name == "source_file"
            sql_type += " USING COMPRESSION " + ("dictionary" if few_values else "fsst")
        return f"{quote_identifier(name)} {sql_type}" + ("" if nullable else " NOT NULL")

    columns = [
        column(
            name,
            MONEY_DUCKDB_TYPE if name in source.money else DUCKDB_TYPES[dtype.base_type()],  # type: ignore[index]
            source.schema.columns[name].nullable,
        )
        for name, dtype in source.dtypes.items()
    ]
    columns += [column("source_file", "VARCHAR", False), column("source_row", "BIGINT", False)]
    return sql_template("staging/create_staged_table").format(
        table=quote_identifier(source.name), columns=", ".join(columns)
    )


def _batches(
    exports: list[ExportFile],
    source: Source,
    rows_read: dict[str, int],
    offsets: dict[str, str] | None = None,
) -> Iterator[pl.DataFrame]:
    """The files' rows in batches of BATCH_ROWS (the last one smaller), files in order, rows in
    file order; counts rows per file. A file larger than a batch is cut across batches (slices,
    no copy), so one big export is appended while its next part is validated. `offsets`: given,
    it receives a file's first timestamp written at an offset other than UTC's
    (`other_offset`)."""
    pending: list[pl.DataFrame] = []
    rows = 0
    for i, export in enumerate(exports):
        try:
            frame, _ = read_raw(export, source)
        except IngestError as error:
            refuse_all([error], exports[i + 1 :], source)
        rows_read[export.relpath] = frame.height
        if offsets is not None:
            example = other_offset(frame, source)
            if example is not None:
                offsets[export.relpath] = example
        while frame.height:
            part = frame.slice(0, BATCH_ROWS - rows)
            frame = frame.slice(part.height)
            pending.append(part)
            rows += part.height
            if rows == BATCH_ROWS:
                yield pl.concat(pending)
                pending, rows = [], 0
    if pending:
        yield pl.concat(pending)


def ingest_source(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    source_name: str,
    run_id: str | None = None,
    now: datetime | None = None,
    max_withdrawn_share: float | None = None,
) -> IngestReport:
    """Bring a source's new and changed export files into `staging.<source>` (see module doc).

    `now` is the run's time (naive UTC; default: the clock): quarantine rows carry it, and
    timestamps later than it plus FUTURE_TOLERANCE are quarantined as `in_future`.
    `max_withdrawn_share` (default ENGAGEMENT_MAX_WITHDRAWN_SHARE): a changed file that no
    longer holds more of the rows it staged is refused (`WithdrawnRows`), nothing changed.
    """
    started = time.perf_counter()
    source = SOURCES[source_name]
    run_id = run_id or uuid.uuid4().hex
    report = IngestReport(source=source.name, run_id=run_id)
    at = now if now is not None else utc_now()
    ensure_staging(con)
    # The Spark engine's list of erased people, written again if it misses some (erasures logged
    # before registers existed). A salt that did not make the logged hashes is left to `_stage`,
    # which refuses it as soon as it reads a file.
    with suppress(erasure.ErasureError):
        erasure.refresh_register(con)
    # A working database started anew beside the register of the old one: the people erased
    # there stay out (a backup from before some erasures is refused, saying what to do).
    report.erasures_adopted = erasure.adopt_register(con)
    follow_zone(con, shop_zone())

    # Each file taken in, by where it is now (`moved_to`, else the path it was taken in from).
    known = {path: record for (of, path), record in taken_in(con).items() if of == source.name}
    if any(record.first_taken_in is None for record in known.values()):
        _rank_files_taken_in_before(con, source)  # recorded before first_taken_in
        known = {path: r for (of, path), r in taken_in(con).items() if of == source.name}
    try:
        exports = discover_files(Path(data_dir), source)
    except RefusedNames as refused:
        unchanged = frozenset(
            e.relpath for e in refused.files if _taken_in_as_it_is(known.get(e.relpath), e)
        )
        raise refused.explained(unchanged) from None
    report.files_seen = len(exports)
    # Files taken in that are no longer where they were: a new file of the same size may be one
    # of them moved (its hash decides).
    present = {export.relpath for export in exports}
    gone = {path: record for path, record in known.items() if path not in present}
    # The paths moved files were taken in from: a file that comes to such a path, or a moved
    # file to be taken in again, first has every moved file's rows take the path it is at.
    moved_from = {
        record.source_file for path, record in known.items() if record.source_file != path
    }
    settle = False
    # Hashing ~1 GB of exports is seconds of CPU: new files are hashed on a thread (hashlib
    # releases the GIL) while their rows are parsed; only a file seen before with another size or
    # stat needs its hash now, to tell a changed file from a touched or copied one (an edit whose
    # mtime was set back, by cp -p, rsync -t or unzip, still moves the ctime).
    # When each file to take in was first taken in: this run for a new file; a changed file, a
    # moved one and one taken in under other rules keep their time, so their keys keep their
    # rank (an upgrade that took every file in again, in path order, gave an order staged from
    # `orders_2023-07.csv` to a later `a_fix.csv` repeating it: a review).
    first: dict[str, datetime] = {}
    # When the content of each file taken in again unchanged (other rules, moved) was first
    # taken in; a new or changed content: this run (a later file's consent ranks by it).
    content: dict[str, datetime] = {}
    # The rows each changed file staged before: one that no longer holds too many is refused.
    staged_before: dict[str, int] = {}
    share = (
        settings.value("ENGAGEMENT_MAX_WITHDRAWN_SHARE")
        if max_withdrawn_share is None
        else max_withdrawn_share
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        todo: list[tuple[ExportFile, Future[str]]] = []
        for export in exports:
            previous = known.get(export.relpath)
            if previous is None:
                origin = _moved_from(export, gone)
                if origin is None:
                    todo.append((export, hasher.submit(file_sha256, export.path)))
                    settle = settle or export.relpath in moved_from
                    continue
                _remember_move(con, export, origin.source_file)
                report.moved[export.relpath] = origin.source_file
                if origin.rules == STAGING_RULES:
                    report.files_skipped += 1
                    continue
                # Moved, and taken in under other rules: taken in again below, where it is now.
                previous = origin._replace(stat=export.stat)
            current_rules = previous.rules == STAGING_RULES
            if _taken_in_as_it_is(previous, export):
                report.files_skipped += 1
                continue
            same_stat = previous.stat == export.stat
            digest = previous.sha256 if same_stat else file_sha256(export.path)
            if current_rules and previous.sha256 == digest:
                report.files_skipped += 1
                _remember_stat(con, export, previous.source_file)  # same content: hash no more
                continue
            if not current_rules and previous.sha256 == digest:  # only the rules changed
                report.restaged_for_rules.append(export.relpath)
                if previous.content_taken_in is not None:
                    content[export.relpath] = previous.content_taken_in
            # A moved file that changed (or is taken in again): its rows take its new path
            # first, then it replaces them there, as a changed file does where it was taken in.
            settle = settle or previous.source_file != export.relpath
            done: Future[str] = Future()
            done.set_result(digest)
            todo.append((export, done))
            report.files_replaced.append(export.relpath)
            staged_before[export.relpath] = previous.rows_staged
            if previous.first_taken_in is not None:
                first[export.relpath] = previous.first_taken_in
        if settle:
            _settle_moves(con, source)
        try:
            if todo:
                more: frozenset[str] = frozenset()
                with _one_duckdb_thread(con):
                    while True:
                        try:
                            _stage(
                                con,
                                source,
                                todo,
                                report,
                                run_id,
                                at,
                                first,
                                more,
                                content,
                                (staged_before, share),
                            )
                            break
                        except _ProfileKeysRead as read:  # rolled back: again, with those keys
                            more |= read.more
            # This ingest's duplicates (and any a run stopped after its commit left uncompared)
            # compared with the rows staged for their keys: after the commit, with DuckDB's
            # threads (its join reads every staged key: 10M orders, 1.3 s on one thread, 0.45
            # on two).
            compare_repeats(con, source, run_id or "", report)
            if todo and source.name == "customers":
                # The consents later files changed, kept for the run's steps: each one's inputs
                # asked them again (`versions.later_consents`).
                versions.keep_later_consents(con)
        finally:
            for _, digest_future in todo:
                digest_future.cancel()
    report.quarantine_by_reason = dict(
        con.execute(
            load_sql("staging/quarantine_counts_by_reason"), {"source": source.name}
        ).fetchall()
    )
    report.seconds = time.perf_counter() - started
    return report


def _taken_in_as_it_is(record: TakenIn | None, export: ExportFile) -> bool:
    """The file was taken in under the current rules and its stat (size, mtime, ctime) is the
    one recorded: the ingest does not read it."""
    return record is not None and record.rules == STAGING_RULES and record.stat == export.stat


def _rank_files_taken_in_before(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Give every file of `source` a `first_taken_in` where one was recorded before it existed
    (a warehouse of an earlier release, or one an earlier release ran since): an order in which
    each file that stages a key now comes before every file holding a quarantined repeat of it
    (they were taken in so), the rest by when they were last taken in, then path. `ingested_at`
    alone, the last time, moved with every change in place: an upgrade ranked a file corrected
    after a later repeat of its key below that repeat, and the repeat took the key (a review).
    Times a microsecond apart from the earliest recorded one, so every new file ranks after."""
    files = con.execute(load_sql("staging/files_first_taken_in"), {"source": source.name})
    recorded = {path: (first or last, path) for path, last, first in files.fetchall()}
    if not recorded:
        return
    pairs = con.execute(
        sql_template("staging/files_repeating_staged_keys").format(
            key=_key_sql(source), table=quote_identifier(source.name)
        ),
        _repeat_parameters(con, source),
    ).fetchall()
    after: dict[str, set[str]] = {path: set() for path in recorded}
    waiting = dict.fromkeys(recorded, 0)  # stagers not yet placed, per repeater
    for stager, repeater in pairs:
        if stager in recorded and repeater in recorded and repeater not in after[stager]:
            after[stager].add(repeater)
            waiting[repeater] += 1
    order: list[str] = []
    left = set(recorded)
    while left:
        ready = [p for p in left if waiting[p] == 0] or list(left)  # a cycle: by time, then path
        chosen = min(ready, key=recorded.__getitem__)
        order.append(chosen)
        left.discard(chosen)
        for repeater in after[chosen]:
            waiting[repeater] -= 1
    start = min(when for when, _ in recorded.values())
    for i, path in enumerate(order):
        con.execute(
            load_sql("staging/set_first_taken_in"),
            {"source": source.name, "file": path, "first": start + timedelta(microseconds=i)},
        )


def _moved_from(export: ExportFile, gone: dict[str, TakenIn]) -> TakenIn | None:
    """The record of the file a new file is, moved: one of the files no longer where they were
    (`gone`, by the path they were at) with its size and content. That record is then used up
    (a second copy is a copy, not a move). None: a new file. A file that held no row is never
    the one moved: empty exports (a header alone) are the same bytes day after day, so a new
    day's empty file was taken for an old one moved, and got no record of its own."""
    same_size = [
        path
        for path, record in gone.items()
        if record.stat[0] == export.size_bytes and record.rows_read
    ]
    if not same_size:
        return None
    digest = file_sha256(export.path)
    for path in sorted(same_size):
        if gone[path].sha256 == digest:
            return gone.pop(path)
    return None


def _remember_move(con: duckdb.DuckDBPyConnection, export: ExportFile, origin: str) -> None:
    """Record that the file taken in from `origin` is now at `export`'s path, with its stat."""
    con.execute(
        load_sql("staging/update_moved_file"),
        {
            "moved_to": None if export.relpath == origin else export.relpath,  # moved back
            "size": export.size_bytes,
            "mtime": export.mtime_ns,
            "ctime": export.ctime_ns,
            "source": export.source,
            "file": origin,
        },
    )


def _settle_moves(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Every moved file of `source` becomes a file taken in where it is now: its rows,
    quarantine rows, erased-row counts and record take its present path (`moved_to`), in one
    transaction. The paths moved files were taken in from are then free for other files.

    All at once and through a placeholder path each, so that moves onto each other's paths (a
    file renamed to the name another moved file was taken in from, or two files swapped) never
    put two files' rows, or two records, under one path on the way."""
    moves = con.execute(
        load_sql("staging/moved_files"),
        {"source": source.name, "prefix": "/moving/"},  # export paths are relative: no clash
    ).pl()
    if moves.is_empty():
        return
    # the staged table's rows, then those of the source in the bookkeeping tables
    tables = [
        (source.name, False),
        ("quarantine", True),
        ("erased_rows", True),
        ("ingested_files", True),
    ]
    con.register("file_moves", moves)
    try:
        with transaction(con):
            for old, new in (("origin", "placeholder"), ("placeholder", "present")):
                for table, of_source in tables:
                    name = "rename_moved_source_rows" if of_source else "rename_moved_staged_rows"
                    con.execute(
                        load_sql(f"staging/{name}", table=table, new=new, old=old),
                        {"source": source.name} if of_source else {},
                    )
            con.execute(load_sql("staging/clear_moved_to"), {"source": source.name})
    finally:
        con.unregister("file_moves")


def _remember_stat(
    con: duckdb.DuckDBPyConnection, export: ExportFile, taken_in_from: str | None = None
) -> None:
    """Record a file's new stat when its content is what was staged (touched, copied);
    `taken_in_from`: the path it was staged from, when it has moved since."""
    con.execute(
        load_sql("staging/update_file_stat"),
        {
            "size": export.size_bytes,
            "mtime": export.mtime_ns,
            "ctime": export.ctime_ns,
            "source": export.source,
            "file": taken_in_from or export.relpath,
        },
    )


@contextmanager
def _one_duckdb_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB on one thread while a source is staged; its setting is restored afterwards.

    The appending thread's inserts take one core and polars' parsing and validation the other.
    DuckDB's own worker threads only contended with both: 10M orders took 34-36 s and 63-64
    CPU-seconds this way, against 37-46 s and 70-83 CPU-seconds with DuckDB's default of one
    thread per core (3 runs each, alternated).
    """
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute("SET threads = $n", {"n": 1})
    try:
        yield
    finally:
        con.execute("SET threads = $n", {"n": threads})


class _ProfileKeysRead(Exception):
    """The customers' staging read a profile erased by its customer id whose email or handles
    were not erased yet (`erasure.erased_profiles_keys`): its transaction rolls back, and the
    files are staged again with those keys erased too (`more`, their hashes)."""

    def __init__(self, more: set[str]):
        super().__init__(f"{len(more)} keys of erased profiles read")
        self.more = more


def _stage(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    todo: list[tuple[ExportFile, Future[str]]],
    report: IngestReport,
    run_id: str,
    at: datetime,
    first: dict[str, datetime],
    more_erased: frozenset[str] = frozenset(),
    content: dict[str, datetime] | None = None,
    withdrawal_limit: tuple[dict[str, int], float] = ({}, 1.0),
) -> None:
    """Stage the files of `todo` in one transaction. `first`: when files taken in before were
    first taken in (the others: `at`); repeated keys rank by it, then by path. `more_erased`:
    hashes of keys erased besides the logged ones and those `erasure.erased_profiles_keys`
    gives (the keys of a profile erased by its id read by this staging's first attempt).
    `content`: when the unchanged content of files taken in again was first taken in (the
    others: `at`)."""
    table = source.name
    columns = ",".join([*source.columns, "source_file", "source_row"])
    first = {e.relpath: first.get(e.relpath, at) for e, _ in todo}
    # the order duplicates are ranked in: the files first taken in first, then by path
    todo = sorted(todo, key=lambda item: (first[item[0].relpath], item[0].relpath))
    exports = [e for e, _ in todo]
    files = [e.relpath for e in exports]
    # Every file's header first: a file that cannot be opened or misses a column fails the run
    # here, before any table changes. A file that turns out unreadable further in fails it inside
    # the transaction below, which then rolls back: either way no table changes.
    report.ignored_columns.update(check_headers(exports, source, rows=True))

    # Repeated keys wait here, typed as staged, to be quarantined with their staged values.
    con.execute(load_sql("staging/create_duplicate_rows", table=table, columns=columns))
    rows_read: dict[str, int] = {}
    quarantined: list[pl.DataFrame] = []
    # People erased before (engagement_box.governance.erasure): their rows in these files are read
    # and counted as erased, never staged or quarantined. A salt that made none of the logged
    # hashes fails here, rather than letting erased people back in.
    logged = erasure.erased_subject_hashes(con)
    salt = erasure.resolve_salt(con) if logged else ""
    hashes = set(logged)
    if logged:
        erasure.erased_subject_hashes(con, salt)
        # The emails and handles of profiles erased by their customer id (read by an earlier
        # ingest: `_ProfileKeysRead`), kept out with them.
        hashes |= erasure.erased_profiles_keys(con, logged, salt, memo=True) | set(more_erased)
    zone = shop_zone()  # the calendar the timestamps are staged in (recorded: `follow_zone`)
    # left at UTC without a word: the timestamps written at another offset are said
    offsets: dict[str, str] | None = {} if not settings.raw_given("ENGAGEMENT_TIME_ZONE") else None
    suppressed: dict[str, int] = {}
    erased_profiles: list[pl.DataFrame] = []  # erased customer profiles read again
    # The erased rows of changed files: their keys left staging for the erasure, not for the
    # file (`_withdrawn_keys` does not ask for them back).
    erased_read: list[pl.DataFrame] | None = [] if report.files_replaced else None
    try:
        with transaction(con):
            if report.files_replaced:
                _remember_replaced_keys(con, source, report.files_replaced)
            _forget_files(con, source, files)
            keys = _StagedKeys(_staged_keys(con, source))

            # Good rows go straight into the staged table, batch by batch (files in path order, rows
            # in file order), so memory holds a few batches, not the whole drop. A thread appends
            # one batch to DuckDB while this one parses the next (both release the GIL).
            with _Appender(con, source) as appender:
                for raw in _batches(exports, source, rows_read, offsets):
                    if hashes:
                        raw = _suppress_erased(
                            raw, table, hashes, salt, suppressed, erased_profiles, erased_read
                        )
                    good, bad = check_batch(raw, source, run_id, at, zone)
                    del raw
                    quarantined.append(bad)
                    # Split and converted here, not on the appending thread (the busier one).
                    appender.put(*_split_repeated(good, source, keys))
                    del good
            del keys

            if report.files_replaced:
                _give_freed_keys_to_earlier_repeats(con, source, files, first)
            repeated = con.execute(load_sql("staging/duplicate_rows")).pl()
            # Compared with the rows staged for their keys after the commit (`compare_repeats`):
            # looking those up among the rows this transaction inserted cost 2.9 s and 1.3 GB
            # over 10M orders, against 0.3-0.6 s and 0.4 GB once committed. Until then their
            # detail says so (`NOT_COMPARED`).
            repeated = repeated.with_columns(pl.col("detail") + NOT_COMPARED)
            quarantined.append(duplicate_quarantine(repeated, None, source, run_id, at))
            bad_rows = pl.concat(quarantined)
            con.register("bad_rows", bad_rows)
            con.execute(load_sql("staging/insert_bad_rows"))
            con.unregister("bad_rows")
            erasure.add_erased_rows(con, table, suppressed)
            if erased_profiles:  # their keys go on counting for identity (by hash)
                erasure.record_erased_profiles(con, pl.concat(erased_profiles), salt)
                # A profile erased by its id read for the first time: its email and handles
                # are erased with it. Profiles of these files read before it that carry them
                # were staged: the whole staging again, with them (`ingest_source`).
                more = erasure.erased_profiles_keys(con, logged, salt) - hashes
                if more:
                    raise _ProfileKeysRead(more)
            if report.files_replaced:
                report.duplicates_restaged = restage_orphaned_duplicates(con, source, run_id, at)
                report.keys_withdrawn = _withdrawn_keys(
                    con, source, files, _erased_keys(erased_read or [], source, run_id, at)
                )
                for file in set(report.keys_withdrawn) & set(report.restaged_for_rules):
                    report.keys_withdrawn[file]["rules"] = STAGING_RULES  # not the file
                refused = withdrawal_refused(source.name, report, *withdrawal_limit)
                if refused:
                    raise WithdrawnRows(refused)
                _compare_again(con, source, report.files_replaced)

            staged_per_file = dict(
                con.execute(
                    load_sql("staging/count_staged_rows_per_file", table=table), {"files": files}
                ).fetchall()
            )
            quarantined_per_file = dict(bad_rows.group_by("source_file").len().iter_rows())
            report.cut_short = cut_short_files([e for e, _ in todo], rows_read, bad_rows)
            report.other_offsets = offsets or {}
            for export, digest in todo:
                name = export.relpath
                sha = digest.result()
                _unchanged_since_found(export, sha)  # the hash and the rows: one content
                con.execute(
                    load_sql("staging/insert_ingested_file"),
                    {
                        "source": table,
                        "file": name,
                        "sha": sha,
                        "size": export.size_bytes,
                        "mtime": export.mtime_ns,
                        "ctime": export.ctime_ns,
                        "read": rows_read.get(name, 0),
                        "staged": staged_per_file.get(name, 0),
                        "quarantined": quarantined_per_file.get(name, 0),
                        "run": run_id,
                        "at": at,
                        "rules": STAGING_RULES,
                        "first": first[name],
                        "content": (content or {}).get(name, at),
                    },
                )
            counts = reconcile(con, table)
            if not counts.holds:
                raise IngestError(
                    f"{table}: reconciliation failed inside the ingest transaction: read "
                    f"{counts.rows_read} rows, staged {counts.rows_staged} + quarantined "
                    f"{counts.rows_quarantined} + erased {counts.rows_erased}; nothing was changed"
                )
            # Only deleting the staged rows of a changed file can leave a duplicate without its key.
            orphans = orphaned_duplicates(con, table) if report.files_replaced else 0
            if orphans:
                raise IngestError(
                    f"{table}: {orphans} row(s) quarantined as duplicate_key have no staged row "
                    "with their key; nothing was changed"
                )
    finally:
        con.execute(load_sql("staging/drop_duplicate_rows"))

    report.files_ingested = files
    report.copies = _copies(con, source, todo, rows_read)
    report.rows_read = sum(rows_read.values())
    report.rows_quarantined = sum(quarantined_per_file.values())
    report.quarantined_files = quarantined_files(rows_read, quarantined_per_file)
    report.rows_erased = sum(suppressed.values())
    report.rows_staged = report.rows_read - report.rows_quarantined - report.rows_erased


def _unchanged_since_found(export: ExportFile, sha: str) -> None:
    """Refuse a file whose size or modification time moved since it was found, once its rows
    are read and its hash taken: an export still being written. Its rows were read from one
    content and its hash from a later one, so the next run took the file for staged as it is
    and its later rows were lost for good. The transaction rolls back; the next run reads the
    file whole. A moved status-change time alone (a hard link a backup made, chmod, an
    indexer's extended attributes) is checked by the content: the same hash, the same file."""
    try:
        now = export.path.stat()
        same = (now.st_size, now.st_mtime_ns) == (export.size_bytes, export.mtime_ns)
        if same and now.st_ctime_ns != export.ctime_ns:
            same = file_sha256(export.path) == sha
    except OSError:
        same = False
    if not same:
        raise IngestError(
            f"{export.relpath}: the file changed while it was read (an export still being "
            "written?); nothing of this source was staged: run again once it is complete"
        )


def quarantined_files(
    rows_read: dict[str, int], quarantined: dict[str, int]
) -> dict[str, list[int]]:
    """Per file with rows quarantined, in path order: [rows read, rows quarantined] (the
    staging metadata `quarantined_by_file` of both engines, from which the CLI warns of a file
    mostly quarantined)."""
    return {file: [rows_read.get(file, 0), n] for file, n in sorted(quarantined.items()) if n}


def cut_short_files(
    exports: list[ExportFile], rows_read: dict[str, int], bad_rows: pl.DataFrame
) -> dict[str, list[str]]:
    """Of the CSV files taken in, those that look cut short: the last line has no line end and
    the last row read was quarantined; with that row's reasons. A whole file without a final
    line end whose last row is good is not one (some tools write no final line end)."""
    said = {}
    for export in exports:
        name, last = export.relpath, rows_read.get(export.relpath, 0)
        if export.path.suffix.lower() != ".csv" or not last:
            continue
        row = (pl.col("source_file") == name) & (pl.col("source_row") == last)
        reasons = bad_rows.filter(row)["reason"]
        if len(reasons) and lacks_last_line_end(export.path):
            said[name] = sorted(set(reasons.to_list()))
    return said


# A timestamp's text ending in UTC's own offset (`validation.WITH_OFFSET` finds any offset).
_UTC_OFFSET = r"(?:[+-]00(?::?00)?|Z|z|UTC)$"
# How many of a file's first values are looked at: an export writes one offset, or one a season.
OFFSET_SAMPLE = 1000


def other_offset(frame: pl.DataFrame, source: Source) -> str | None:
    """The first of a file's first `OFFSET_SAMPLE` timestamps written at an offset other than
    UTC's, as `column: value`, or None. Cheap: a sample, not the column."""
    for name, dtype in source.dtypes.items():
        if dtype != pl.Datetime or name not in frame.columns:
            continue
        sample = frame[name].head(OFFSET_SAMPLE).drop_nulls().str.strip_chars()
        other = sample.filter(sample.str.contains(WITH_OFFSET) & ~sample.str.contains(_UTC_OFFSET))
        if len(other):
            return f"{name}: {other[0]}"
    return None


def _suppress_erased(
    raw: pl.DataFrame,
    table: str,
    hashes: set[str],
    salt: str,
    counts: dict[str, int],
    profiles: list[pl.DataFrame],
    read: list[pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Drop the rows of erased people from a raw batch, counting them per file; the customer
    profiles dropped are added to `profiles` (their keys are kept by hash:
    `erasure.record_erased_profiles`), and every row dropped to `read` when one is given."""
    shifted = raw[ROW_PROBLEM].is_not_null() if ROW_PROBLEM in raw.columns else None
    kept, dropped = erasure.drop_erased(raw, table, hashes, salt, shifted)
    for name, n in dropped.items():
        counts[name] = counts.get(name, 0) + n
    if dropped and (table == "customers" or read is not None):
        rows = erasure.dropped_rows(raw, kept)
        if table == "customers":
            profiles.append(rows)
        if read is not None:
            read.append(rows)
    return kept


def _erased_keys(
    erased: list[pl.DataFrame], source: Source, run_id: str, at: datetime
) -> pl.DataFrame:
    """The keys of the erased rows read (raw, as `_suppress_erased` dropped them), per file, as
    the staged key reads (`key_text`): rows that would not parse have no key to name."""
    frames = [check_batch(raw, source, run_id, at, shop_zone())[0] for raw in erased]
    frames = [f for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema={"source_file": pl.String, "key": pl.String})
    good = pl.concat(frames, how="vertical_relaxed")
    return pl.DataFrame({"source_file": good["source_file"], "key": key_text(good, source)})


class _Appender:
    """Appends batches to DuckDB on a thread: rows to stage to the staged table, rows held back
    for a repeated key (`_split_repeated`) to the temp table `duplicate_rows`. The connection is
    the thread's until the `with` block ends (then any error of the thread is raised).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, source: Source):
        self.con = con
        columns = ",".join([*source.columns, "source_file", "source_row"])
        self.insert_repeated = load_sql("staging/insert_repeated_rows", columns=columns)
        self.insert_good = load_sql("staging/insert_good_rows", table=source.name, columns=columns)
        self.queue: queue.Queue[tuple[pa.Table, pa.Table] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="staging-append", daemon=True)

    def __enter__(self) -> "_Appender":
        self.thread.start()
        return self

    def put(self, good: pa.Table, repeated: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((good, repeated))

    def __exit__(self, *exc_info: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc_info[0] is None:
            raise self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the producer learns of the error on its next put
            try:
                self._append(*item)
            except BaseException as exc:  # handed to the producer thread
                self.error = exc
            del item

    def _append(self, good: pa.Table, repeated: pa.Table) -> None:
        # Never run an INSERT that adds no row here: with DuckDB 1.5.5, an INSERT ... SELECT
        # that yields no row, followed in the same transaction by one of a row group or more
        # (122,880 rows) into the same table, loses the second insert's rows without an error
        # (tests/test_ingestion.py::test_batch_without_good_rows_before_a_large_batch).
        con = self.con
        if repeated.num_rows:
            con.register("repeated_rows", repeated)
            con.execute(self.insert_repeated)
            con.unregister("repeated_rows")
        if good.num_rows:
            con.register("good_rows", good)
            con.execute(self.insert_good)
            con.unregister("good_rows")


def key_text(frame: pl.DataFrame, source: Source) -> pl.Series:
    """A source's key per row as one text: the key column, or several joined by chr(31)."""
    if len(source.key_columns) == 1:
        return frame[source.key]
    return frame.select(
        pl.concat_str(
            [pl.col(c).cast(pl.String) for c in source.key_columns], separator="\x1f"
        ).alias(source.key)
    ).to_series()


def _key_sql(source: Source) -> str:
    """A source's key per staged row as one text, as `key_text` makes it."""
    columns = [f"cast({quote_identifier(c)} AS VARCHAR)" for c in source.key_columns]
    return columns[0] if len(columns) == 1 else f"concat_ws(chr(31), {', '.join(columns)})"


def _remember_replaced_keys(
    con: duckdb.DuckDBPyConnection, source: Source, files: list[str]
) -> None:
    """The keys the changed `files` stage now, before they are replaced (`_withdrawn_keys`)."""
    con.execute(
        sql_template("staging/create_replaced_keys").format(
            key=_key_sql(source), table=quote_identifier(source.name)
        ),
        {"files": files},
    )


def _withdrawn_keys(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    files: list[str],
    erased: pl.DataFrame,
    shown: int = 5,
) -> dict:
    """Per changed file whose keys staged before no file stages now: how many it no longer holds
    (`keys`, the first `shown` in `first`, in the file's old row order), how many it still
    holds in a row quarantined now (`quarantined`, `quarantined_first`): a row that became bad
    is no row taken away, and how many it holds in a row of a person erased on request
    (`erased`, counted, not named; the frame `erased`: `_erased_keys`). And per changed file
    whose keys staged before another of this run's `files` stages now, with that row's values
    (`moved`, `moved_first`, `moved_to`: the files): a key whose buyer or amount may have
    changed, said like the keys restaged from a repeat."""
    # The key of a quarantined row as the staged key reads, per column: trimmed, codes in
    # upper case (fx_rates' `usd`), dates as dates (`2024-01-01T00:00:00`) where they parse.
    names = {f"k{i}": c for i, c in enumerate(source.key_columns)}

    def raw_column(parameter: str, column: str) -> str:
        # invisible characters removed, then whitespace trimmed, as staging reads a value
        text = f"trim(regexp_replace(q.raw_values->>${parameter}, $invisible, '', 'g'))"
        if column in source.upcase:
            return f"upper({text})"
        if column in source.casefold:
            return f"lower({text})"
        if source.dtypes[column].base_type() is pl.Date:
            return f"coalesce(CAST(CAST(try_cast({text} AS TIMESTAMP) AS DATE) AS VARCHAR), {text})"
        return text

    raw = [raw_column(k, c) for k, c in names.items()]
    raw_key = raw[0] if len(raw) == 1 else f"concat_ws(chr(31), {', '.join(raw)})"
    sql = sql_template("staging/withdrawn_keys").format(
        key=_key_sql(source),
        table=quote_identifier(source.name),
        raw_key=raw_key,
    )
    con.register("erased_keys_read", erased)
    try:
        rows = con.execute(
            sql, {"source": source.name, "invisible": INVISIBLE_PATTERN, "shown": shown, **names}
        ).fetchall()
    finally:
        con.unregister("erased_keys_read")
    moved = con.execute(
        sql_template("staging/moved_keys").format(
            key=_key_sql(source), table=quote_identifier(source.name)
        ),
        {"files": files, "shown": shown},
    ).fetchall()
    con.execute(load_sql("staging/drop_replaced_keys"))
    withdrawn: dict[str, dict] = {}
    for file, gone, first, quarantined, quarantined_first, erased_count in rows:
        withdrawn[file] = {"keys": gone, "first": first or []}
        if quarantined:
            withdrawn[file] |= {"quarantined": quarantined, "quarantined_first": quarantined_first}
        if erased_count:
            withdrawn[file]["erased"] = erased_count
    for file, count, first, to in moved:
        said = withdrawn.setdefault(file, {"keys": 0, "first": []})
        said |= {"moved": count, "moved_first": first, "moved_to": to}
    return withdrawn


# Fewer rows than this withdrawn by a changed file are never refused (a small file's edit).
MIN_WITHDRAWN_REFUSED = 20


class WithdrawnRows(IngestError):
    """A changed export file no longer holds more of the rows it staged than
    ENGAGEMENT_MAX_WITHDRAWN_SHARE allows: its staging is refused, nothing changed."""


def withdrawal_refused(
    source: str, report: IngestReport, staged_before: dict[str, int], share: float
) -> str | None:
    """Why the changed files of `report` are refused, or None: a file (not one taken in again
    only for other staging rules) that no longer holds more than `share` of the rows it staged
    before, and at least MIN_WITHDRAWN_REFUSED. A half-written or cut-short re-export of a file
    that is replaced each time (customers.csv) took a tenth of the customers out of the next
    version, its audiences and every mart, and the run passed (a review)."""
    over = []
    for file, said in sorted(report.keys_withdrawn.items()):
        gone, before = said["keys"], staged_before.get(file, 0)
        if said.get("rules") or gone < MIN_WITHDRAWN_REFUSED or gone <= share * before:
            continue
        first = ", ".join(str(k).replace("\x1f", " ") for k in said["first"])
        more = ", ..." if gone > len(said["first"]) else ""
        over.append(
            f"{file} changed and no longer holds {gone:,} of the {before:,} rows it staged "
            f"before ({gone / before:.0%}; keys {first}{more})"
        )
    if not over:
        return None
    return (
        f"{source}: " + "; ".join(over) + f": more than ENGAGEMENT_MAX_WITHDRAWN_SHARE "
        f"({share:g}) of a file's rows. Nothing was staged from the {source} exports and the "
        "current version stands. A half-written or cut-short export looks so: put the whole "
        "file back, then run again. If those rows were truly removed from the export, run "
        "again with ENGAGEMENT_MAX_WITHDRAWN_SHARE=1 (that run only)"
    )


def _copies(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    todo: list[tuple[ExportFile, Future[str]]],
    rows_read: dict[str, int],
) -> dict[str, str]:
    """New or changed files whose content is that of another file taken in (by hash), among
    those with rows (`rows_read`: per file): empty exports are alike, and no row repeats."""
    earlier = con.execute(
        load_sql("staging/ingested_file_digests"), {"source": source.name}
    ).fetchall()
    by_digest: dict[str, list[str]] = {}
    for digest, file in earlier:
        by_digest.setdefault(digest, []).append(file)
    new = {export.relpath for export, _ in todo}
    copies = {}
    for export, digest in todo:
        if not rows_read.get(export.relpath):
            continue
        # The file taken in before, else a new one earlier in path order (whose rows won).
        others = [
            f
            for f in by_digest.get(digest.result(), [])
            if f != export.relpath and (f not in new or f < export.relpath)
        ]
        if others:
            copies[export.relpath] = min(others, key=lambda f: (f in new, f))
    return copies


def _forget_files(con: duckdb.DuckDBPyConnection, source: Source, files: list[str]) -> None:
    """Delete what `files` staged, quarantined and erased before: a changed file replaces it."""
    parameters = {"source": source.name, "files": files}
    con.execute(
        load_sql("staging/delete_staged_rows_of_files", table=source.name), {"files": files}
    )
    con.execute(load_sql("staging/delete_quarantine_rows_of_files"), parameters)
    con.execute(load_sql("staging/delete_ingested_files"), parameters)
    erasure.delete_erased_rows_of_files(con, source.name, files)


def _staged_keys(con: duckdb.DuckDBPyConnection, source: Source) -> pl.Series:
    """The keys staged by earlier ingests, as `key_text` writes them (several key columns
    joined by chr(31)): the ingest holds back rows that repeat them."""
    return (
        con.execute(
            sql_template("staging/staged_keys").format(
                key=_key_sql(source), table=quote_identifier(source.name)
            )
        )
        .pl()
        .to_series()
    )


def _orphans_sql(source: Source) -> str:
    name = (
        "orphaned_duplicates" if len(source.key_columns) == 1 else "orphaned_duplicates_composite"
    )
    return load_sql(f"staging/{name}", table=source.name, key=",".join(source.key_columns))


def _repeat_parameters(con: duckdb.DuckDBPyConnection, source: Source) -> dict:
    """The parameters of the queries that read a quarantined repeat's key from its raw values
    ($source, $key_paths), after creating the macro they read it with (`quarantined_key`, a
    temporary macro of `con`: sql/staging/create_quarantined_key_macro.sql)."""
    con.execute(load_sql("staging/create_quarantined_key_macro"))
    return {"source": source.name, "key_paths": [f"$.{c}" for c in source.key_columns]}


def orphaned_duplicates(con: duckdb.DuckDBPyConnection, source_name: str) -> int:
    """Rows quarantined as duplicate_key whose key is staged nowhere (must be 0: a key is always
    staged once when it was read at all, unless every row of it broke the contract)."""
    source = SOURCES[source_name]
    rows = con.execute(
        sql_template("staging/count_orphaned_duplicates").format(orphans=_orphans_sql(source)),
        _repeat_parameters(con, source),
    ).fetchone()
    return int(rows[0]) if rows else 0


def first_taken_in_by_file(con: duckdb.DuckDBPyConnection, source: Source) -> dict[str, datetime]:
    """When each file of `source` taken in was first taken in, by the path its rows carry
    (`source_file`): the rank of repeated keys, then path, then row."""
    return {
        record.source_file: record.first_taken_in
        for (of, _), record in taken_in(con).items()
        if of == source.name and record.first_taken_in is not None
    }


def _give_freed_keys_to_earlier_repeats(
    con: duckdb.DuckDBPyConnection, source: Source, files: list[str], first: dict[str, datetime]
) -> None:
    """A key a changed file of this ingest freed that a file of the ingest staged again, while a
    quarantined repeat of it waits in a file taken in earlier: the staged row goes back among
    the repeats (`duplicate_rows`), and `restage_orphaned_duplicates` then stages the earliest
    repeat. Keys rank by when their file was first taken in, then path, then row; the batches
    only knew the keys staged, not the repeats waiting in files the ingest does not read, so a
    new `a.csv` took the key from `z.csv`, taken in months before, where the Spark engine gave
    it to `z.csv` (a code review). `first`: when this ingest's files were first taken in."""
    ranks = {**first_taken_in_by_file(con, source), **first}
    file_ranks = pl.DataFrame(
        {"source_file": list(ranks), "first_taken_in": list(ranks.values())},
        schema={"source_file": pl.String, "first_taken_in": pl.Datetime("us")},
    )
    owed_sql = sql_template("staging/rows_owed_to_earlier_repeats").format(
        key=_key_sql(source), table=quote_identifier(source.name)
    )
    con.register("file_ranks", file_ranks)
    try:
        owed = con.execute(owed_sql, {**_repeat_parameters(con, source), "files": files}).pl()
    finally:
        con.unregister("file_ranks")
    if not owed.height:
        return
    columns = ",".join([*source.columns, "source_file", "source_row"])
    con.register("rows_owed", owed)
    try:
        # this ingest's other repeats of those keys: now repeats of an earlier file's row
        con.execute(sql_template("staging/update_owed_repeats_detail").format(key=_key_sql(source)))
        con.execute(
            load_sql("staging/move_staged_rows_to_duplicates", table=source.name, columns=columns)
        )
        con.execute(load_sql("staging/delete_owed_staged_rows", table=source.name))
    finally:
        con.unregister("rows_owed")


def restage_orphaned_duplicates(
    con: duckdb.DuckDBPyConnection, source: Source, run_id: str, at: datetime
) -> dict[str, int]:
    """Stage again the first quarantined duplicate of each key that is staged nowhere now (its
    first occurrence was in a file that changed and dropped it). Its values are those it was
    quarantined with (typed as staged, then as text), checked again against the contract.
    Returns the rows moved per file; the files' counts in `staging.ingested_files` follow."""
    rows = con.execute(_orphans_sql(source), _repeat_parameters(con, source)).pl()
    if not rows.height:
        return {}
    # files by when they were first taken in, then path, then rows: the order keys rank in
    first_taken_in = first_taken_in_by_file(con, source)
    rank = pl.Series([first_taken_in.get(f) for f in rows["source_file"]], dtype=pl.Datetime)
    rows = rows.with_columns(rank.alias("_rank")).sort(
        "_rank", "source_file", "source_row", nulls_last=True
    )
    values = (
        rows["raw_values"]
        .str.json_decode(dtype=pl.Struct({c: pl.String for c in source.columns}))
        .struct.unnest()
    )
    raw = pl.concat(
        [rows.select("source_file", "source_row"), values], how="horizontal"
    ).with_columns(pl.lit(None, dtype=pl.String).alias(ROW_PROBLEM))
    # The first row of each key (in the order above) is staged; the rest stay.
    first = key_text(raw, source).is_first_distinct()
    rest, raw = raw.filter(~first), raw.filter(first)
    good, bad = check_batch(raw, source, run_id, at, shop_zone())
    con.register("rows_to_drop", raw.select("source_file", "source_row"))
    con.execute(load_sql("staging/delete_quarantine_rows"), {"source": source.name})
    con.unregister("rows_to_drop")
    columns = ",".join([*source.columns, "source_file", "source_row"])
    if good.height:  # never an INSERT of no row here (see _Appender._append)
        con.register("restaged_rows", good)
        con.execute(load_sql("staging/insert_restaged_rows", table=source.name, columns=columns))
        con.unregister("restaged_rows")
    if bad.height:
        con.register("bad_rows", bad)
        con.execute(load_sql("staging/insert_bad_rows"))
        con.unregister("bad_rows")
    if rest.height and good.height:  # compared again, with the row staged now, after the commit
        _mark_not_compared(con, source, rest.select(_PLACE))
    moved = dict(good.group_by("source_file").len().iter_rows())
    for name, n in moved.items():
        con.execute(
            load_sql("staging/move_file_counts"), {"source": source.name, "file": name, "rows": n}
        )
    return moved


_PLACE = ["source_file", "source_row"]


def _compare_again(con: duckdb.DuckDBPyConnection, source: Source, files: list[str]) -> None:
    """The quarantined duplicates, in other files, of the keys the changed `files` stage now go
    back to "not compared yet": their detail said whether they repeat the row those files
    staged before (a corrected amount left "the same values" on a real conflict)."""
    sql = load_sql(
        "staging/duplicates_of_replaced_files",
        table=source.name,
        key=",".join(source.key_columns),
    )
    rows = con.execute(sql, {**_repeat_parameters(con, source), "files": files}).pl()
    if rows.height:
        _mark_not_compared(con, source, rows)


def _mark_not_compared(con: duckdb.DuckDBPyConnection, source: Source, rows: pl.DataFrame) -> None:
    """The quarantined duplicates at `rows` (source_file, source_row) go back to "not compared
    yet", for `compare_repeats` after the commit."""
    con.register("rest_rows", rows)
    try:
        con.execute(
            load_sql("staging/mark_duplicates_not_compared"),
            {"source": source.name, "pending": NOT_COMPARED},
        )
    finally:
        con.unregister("rest_rows")


def key_hashes(keys: pl.Series) -> pl.Series:
    """64-bit hashes of key text (polars' hash, stable within a process: `_StagedKeys`)."""
    return keys.hash(seed=0)


class _StagedKeys:
    """The keys an ingest must not stage again: those staged by earlier ingests, then those of
    each batch staged by this one, kept in memory beside their 64-bit hashes.

    A batch is checked by integer hash first (one pass over the hashes, no string hashing of the
    keys staged so far), then the few keys whose hash matches are compared as text, so a hash
    collision can never hold a row back wrongly. Keys are added in batch order, so a key is
    held back only against rows that come before it (the first occurrence wins).
    """

    def __init__(self, staged_before: pl.Series):
        self.keys = staged_before.cast(pl.String).rename("key")
        self.hashes = key_hashes(self.keys)
        self.n_before = len(self.keys)

    def lookup(self, keys: pl.Series, hashes: pl.Series) -> tuple[pl.Series, pl.Series]:
        """(seen, staged before this ingest) for each key of a batch, given their hashes."""
        candidates = self.hashes.is_in(hashes.implode()).arg_true()
        if not len(candidates):
            none = pl.repeat(False, len(keys), dtype=pl.Boolean, eager=True)
            return none, none
        matched = self.keys.gather(candidates)
        before = matched.filter(candidates < self.n_before)
        return keys.is_in(matched.implode()), keys.is_in(before.implode())

    def add(self, keys: pl.Series, hashes: pl.Series) -> None:
        self.keys.append(keys.cast(pl.String).rename("key"))
        self.hashes.append(hashes)


def first_distinct(keys: pl.Series, hashes: pl.Series) -> pl.Series:
    """`keys.is_first_distinct()`, computed on the keys' hashes; text compared only where a hash
    repeats (a tenth of the time on 750k string keys)."""
    repeated_hash = hashes.is_duplicated()
    if not repeated_hash.any():
        return ~repeated_hash
    where = repeated_hash.arg_true()
    return (~repeated_hash).scatter(where, keys.gather(where).is_first_distinct())


def _split_repeated(
    good: pl.DataFrame, source: Source, staged: _StagedKeys
) -> tuple[pa.Table, pa.Table]:
    """(rows to stage, rows held back) as Arrow tables; records the staged rows' keys.

    A row is held back if its key was staged before (by an earlier ingest or an earlier batch of
    this one) or repeats an earlier row of its batch. Arrow with plain (not view) strings: DuckDB
    appends those faster, and the conversion is cheap on the producer's thread.
    """
    keys = key_text(good, source)
    hashes = key_hashes(keys)
    seen, before = staged.lookup(keys, hashes)
    held = seen | ~first_distinct(keys, hashes)
    level = pl.CompatLevel.oldest()
    if not held.any():
        staged.add(keys, hashes)
        return good.to_arrow(compat_level=level), good.clear().select(
            pl.lit("", dtype=pl.String).alias("detail"), pl.all()
        ).to_arrow(compat_level=level)
    repeated = good.filter(held).select(
        pl.when(pl.lit(before.filter(held)))
        .then(pl.lit("already staged from an earlier file"))
        .otherwise(pl.lit("repeated within this ingest"))
        .alias("detail"),
        pl.all(),
    )
    good = good.filter(~held)
    staged.add(keys.filter(~held), hashes.filter(~held))
    return good.to_arrow(compat_level=level), repeated.to_arrow(compat_level=level)


# The source of profiles, whose repeated rows may carry changes (a later export's correction, a
# withdrawn marketing consent) that a later file does not apply (the first occurrence of a key
# is staged): the run warns of them (`profile_changes`). Marketing consent is the exception: the
# latest file's word wins (`versions.later_consents`, applied by the identity step).
PROFILE_SOURCE = "customers"
CONSENT = "marketing_consent"


def _compared(source: Source, suffix: str) -> list[pl.Expr]:
    """A source's non-key columns as repeats are compared with the staged row of their key:
    contact keys as identity and erasure compare them (an email in any case, handles in any
    order, case, with or without their @: `sql/intermediate/normalization.sql`), the others as
    staged (typed)."""
    exprs = []
    for c in source.columns:
        if c in source.key_columns:
            continue
        value = pl.col(c)
        if c in source.contact_keys:
            value = erasure.lower_expr(value.cast(pl.String))
            if c in source.lists:
                value = (
                    value.str.split(LIST_SEPARATOR)
                    .list.eval(pl.element().str.strip_chars().str.strip_chars_start("@"))
                    .list.sort()
                    .list.join(LIST_SEPARATOR)
                )
        exprs.append(value.alias(f"{c}{suffix}"))
    return exprs


def _with_staged(source: Source, repeated: pl.DataFrame, staged: pl.DataFrame) -> pl.DataFrame:
    """The repeated rows (key, compared columns, source_file, source_row) beside the staged row
    of their key (its compared columns suffixed `__staged`, its file as `_from`)."""
    key = list(source.key_columns)
    return repeated.select(*key, *_compared(source, ""), "source_file", "source_row").join(
        staged.select(*key, *_compared(source, "__staged"), pl.col("source_file").alias("_from")),
        on=key,
        how="inner",
    )


def repeat_differences(
    source: Source, repeated: pl.DataFrame, staged: pl.DataFrame
) -> pl.DataFrame:
    """source_file, source_row, changed: for each repeated row (typed as staged) whose key has a
    staged row (`staged`, the same columns), the columns whose values differ from it, joined by
    ", " ("": the same row sent again). Both engines; a duplicate's quarantine detail says it
    (`duplicate_detail`)."""
    schema = {"source_file": pl.String, "source_row": pl.Int64, "changed": pl.String}
    if not repeated.height or not staged.height:
        return pl.DataFrame(schema=schema)
    others = [c for c in source.columns if c not in source.key_columns]
    joined = _with_staged(source, repeated, staged)
    return joined.select(
        pl.col("source_file").cast(pl.String),
        pl.col("source_row").cast(pl.Int64),
        pl.concat_str(
            [pl.when(pl.col(c).ne_missing(pl.col(f"{c}__staged"))).then(pl.lit(c)) for c in others],
            separator=", ",
            ignore_nulls=True,
        ).alias("changed"),
    )


def duplicate_detail(rows: pl.DataFrame, differences: pl.DataFrame) -> pl.Series:
    """The quarantine detail of repeated rows (`rows`: source_file, source_row, detail: where
    the key was staged) with what they repeat: "..., the same values" (an export sent again),
    or "..., other values in net_amount, status: not applied" (a conflict, or a later export's
    change, which a later file does not apply: the row staged first stays)."""
    found = rows.select("source_file", "source_row", "detail").join(
        differences, on=["source_file", "source_row"], how="left", maintain_order="left"
    )
    changed = pl.col("changed")
    return found.select(
        pl.when(changed.is_null())
        .then(pl.col("detail"))
        .when(changed == "")
        .then(pl.col("detail") + pl.lit(", the same values"))
        .otherwise(pl.col("detail") + ", other values in " + changed + ": not applied")
        .alias("detail")
    ).to_series()


def profile_changes(
    source: Source, repeated: pl.DataFrame, staged: pl.DataFrame, shown: int = 5
) -> dict[str, dict]:
    """Per file, its repeated rows (typed as staged) whose values differ from the staged row of
    their key (`staged`, the same columns): {"rows", "first" keys, "consent_withdrawn" (the
    staged row says yes to marketing, the repeated one no), "withdrawn_first"}. Both engines."""
    withdrawn = (pl.col(f"{CONSENT}__staged") & ~pl.col(CONSENT)).fill_null(False)
    return _later_changes(
        source, repeated, staged, withdrawn, ("consent_withdrawn", "withdrawn_first"), shown
    )


# The source of orders, whose repeated rows may undo a sale staged before (a later export's
# `returned` or `cancelled` of an order staged as `completed`), which a later file does not
# apply: the run warns of them (`order_changes`), since the sale still counts.
ORDER_SOURCE = "orders"
STATUS = "status"


def order_changes(
    source: Source, repeated: pl.DataFrame, staged: pl.DataFrame, shown: int = 5
) -> dict[str, dict]:
    """Per file, its repeated orders whose values differ from the staged order of their id:
    {"rows", "first" ids, "sale_undone" (staged as completed, the repeat returned or cancelled:
    the sale still counts in spend, RFM and CLV), "undone_first"}. Both engines."""
    undone = (
        (pl.col(f"{STATUS}__staged").str.strip_chars().str.to_lowercase() == "completed")
        & pl.col(STATUS).str.strip_chars().str.to_lowercase().is_in(["returned", "cancelled"])
    ).fill_null(False)
    # within the file the order was staged from too: an export that appends a status change
    # as a new row (the bundled sample's 18 returns) is no plain duplicate of the sale
    return _later_changes(
        source, repeated, staged, undone, ("sale_undone", "undone_first"), shown, same_file=True
    )


def _later_changes(
    source: Source,
    repeated: pl.DataFrame,
    staged: pl.DataFrame,
    marked: pl.Expr,
    names: tuple[str, str],
    shown: int,
    same_file: bool = False,
) -> dict[str, dict]:
    """Per file, its repeated rows whose values differ from the staged row of their key, and
    those among them `marked` (`names`: the key of their count, and of their first keys).
    `same_file`: a row repeated within the file its key was staged from counts too."""
    others = [c for c in source.columns if c not in source.key_columns]
    if not repeated.height or not staged.height:
        return {}
    joined = _with_staged(source, repeated, staged)
    if not same_file:
        # A key repeated within the file it was staged from is a plain duplicate: not a later
        # export's change (the row staged first in that file stays, as for any source).
        joined = joined.filter(pl.col("source_file") != pl.col("_from"))
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}__staged")) for c in others])
    changed = joined.filter(differs).with_columns(marked.alias("_marked"))
    name, first = names
    found: dict[str, dict] = {}
    for (file,), part in changed.sort("source_file", "source_row").group_by(
        "source_file", maintain_order=True
    ):
        picked = part.filter("_marked")
        found[str(file)] = {
            "rows": part.height,
            "first": key_text(part, source).head(shown).to_list(),
            name: picked.height,
            first: key_text(picked, source).head(shown).to_list(),
        }
    return found


# The ending of a duplicate's detail until it is compared with the row staged for its key.
NOT_COMPARED = ", not compared yet"


def duplicates_not_compared(con: duckdb.DuckDBPyConnection, source: Source | None = None) -> bool:
    """Whether duplicates of `source` (of any source: None) wait for `compare_repeats`: an
    ingest committed and its run stopped before it compared them."""
    if not relation_exists(con, "staging", "quarantine"):
        return False
    row = con.execute(
        load_sql("staging/count_duplicates_not_compared"),
        {"source": source.name if source else None, "pending": NOT_COMPARED},
    ).fetchone()
    return bool(row and row[0])


def _as_quarantined(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Typed rows as a quarantine row holds them (every column as text), the booleans typed
    again (`profile_changes` reads the consent as one)."""
    return frame.with_columns(
        pl.col(c).cast(pl.String) if source.dtypes[c] != pl.Boolean else pl.col(c)
        for c in source.columns
    )


def compare_repeats(
    con: duckdb.DuckDBPyConnection, source: Source, run_id: str, report: IngestReport
) -> None:
    """After an ingest's commit: the duplicates of `source` not compared yet (this ingest's,
    and any a run stopped after its commit left; none: nothing is done) compared with the rows
    staged for their keys.
    Their detail then says whether they repeat them or which values differ
    (`duplicate_detail`), and a profiles source reports its changes not applied
    (`profile_changes`). A detail changed after an earlier run published it makes the next
    publish mask the quarantine anew."""
    pending = con.execute(
        load_sql("staging/duplicates_not_compared"),
        {"source": source.name, "pending": NOT_COMPARED},
    ).pl()
    if not pending.height:
        return
    booleans = [c for c in source.columns if source.dtypes[c] == pl.Boolean]
    rows = pl.concat(
        [
            pending.select(_PLACE),
            pending["raw"]
            .str.json_decode(dtype=pl.Struct({c: pl.String for c in source.columns}))
            .struct.unnest(),
        ],
        how="horizontal",
    ).with_columns(pl.col(c).replace_strict({"true": True, "false": False}) for c in booleans)
    con.register("repeated_keys", rows.select(source.key_columns).unique())
    try:
        staged = con.execute(
            load_sql(
                "staging/staged_rows_of_keys",
                table=source.name,
                key=",".join(source.key_columns),
            )
        ).pl()
    finally:
        con.unregister("repeated_keys")
    staged = _as_quarantined(staged, source)
    if source.name == PROFILE_SOURCE:
        report.profile_changes = profile_changes(source, rows, staged)
    if source.name == ORDER_SOURCE:
        report.order_changes = order_changes(source, rows, staged)
    said = pending.select(*_PLACE, pl.col("detail").str.strip_suffix(NOT_COMPARED).alias("detail"))
    said = said.select(_PLACE).with_columns(
        duplicate_detail(said, repeat_differences(source, rows, staged))
    )
    con.register("new_details", said)
    try:
        with transaction(con):
            con.execute(load_sql("staging/update_duplicate_details"), {"source": source.name})
            if (pending["run_id"] != run_id).any():  # published before with the other detail
                readers.mask_quarantine_anew(con)
    finally:
        con.unregister("new_details")


def duplicate_quarantine(
    rows: pl.DataFrame, staged: pl.DataFrame | None, source: Source, run_id: str, at: datetime
) -> pl.DataFrame:
    """Quarantine rows for repeated keys (`rows`, typed as staged, with the detail of where the
    key was staged), their values as staged (typed, then as text); given the staged rows of
    their keys (`staged`), the detail says whether they repeat them or differ
    (`duplicate_detail`). Both engines (the DuckDB engine says it after its commit:
    `compare_repeats`)."""
    if rows.height and staged is not None:
        rows = rows.with_columns(
            duplicate_detail(rows, repeat_differences(source, rows.drop("detail"), staged))
        )
    raw = rows.select(
        "source_file",
        "source_row",
        *[pl.col(c).cast(pl.String) for c in source.columns],
    )
    failures = pl.DataFrame(
        {
            "index": pl.int_range(0, rows.height, dtype=pl.Int64, eager=True),
            "column": source.key,
            "reason": "duplicate_key",
            "detail": rows["detail"],
        }
    )
    return quarantine_rows(raw, failures, source, run_id, at)
