"""Ingest raw exports into the staging layer: read, parse, validate, quarantine, stage.

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

import codecs
import csv
import decimal
import functools
import hashlib
import io
import os
import queue
import re
import threading
import time
import uuid
import zoneinfo
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, NoReturn

import duckdb
import numpy as np
import pandera.errors as pa_errors
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engagement_box import dictionary
from engagement_box.governance import erasure, privacy, readers
from engagement_box.sql import columns as catalog_columns
from engagement_box.sql import (
    first_line,
    load_sql,
    quote_identifier,
    relation_exists,
    sql_template,
    table_exists,
    transaction,
)
from engagement_box.staging.contracts import (
    HANDLE_PATTERN,
    INVISIBLE_PATTERN,
    LIST_SEPARATOR,
    MONEY_DUCKDB_TYPE,
    PATTERN_WORDS,
    ROW_RULE_WORDS,
    SOURCES,
    STAGING_RULES,
    TRIMMED,
    Source,
)
from engagement_box.staging.reconciliation import reconcile

SUPPORTED_SUFFIXES = (".csv", ".parquet")
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

# Accepted timestamp text, tried in order. "T" between date and time is read as a space first.
# Text with an offset or "Z" is converted to UTC; text without one is taken as UTC.
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M%#z",
    "%Y-%m-%d",
)
# The form most exports use, parsed on polars' fast path: "2024-03-01 10:00:00", with "T" for
# the space and/or an offset of zero ("+00:00" or "Z"). ASCII digits only.
CANONICAL_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\+00:00|Z)?$"
# Forms parsed directly by polars (offsets of zero only as literal text: the value is the UTC
# time written); one is chosen per column from a sample of its first values.
DIRECT_TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S+00:00",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S+00:00",
    "%Y-%m-%d %H:%M:%SZ",
)
DIRECT_FORMAT_SAMPLE = 1000
TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")

# A timestamp or date later than the run's time plus this is quarantined as `in_future`: a day
# covers the exporting system's time zone and clock, not a typo of the year.
FUTURE_TOLERANCE = timedelta(days=1)
# The start of a CSV file read to check its encoding and header. A header row longer than
# this (a wide export of thousands of custom attributes) is read on, up to HEADER_MAX_BYTES.
HEAD_BYTES = 1 << 16
HEADER_MAX_BYTES = 1 << 26
# A raw column beside the contract's: why the row's fields cannot be trusted (NULL when they can).
ROW_PROBLEM = "row_problem"

# Order in which failures of one row are reported: the first becomes the row's `reason`.
REASON_PRIORITY = {
    "wrong_field_count": -1,
    "unparseable_timestamp": 0,
    "unparseable_date": 0,
    "unparseable_number": 0,
    "unparseable_integer": 0,
    "unparseable_boolean": 0,
    "missing_required_value": 1,
    "duplicate_key": 2,
    "not_an_allowed_value": 3,
    "malformed": 4,
    "out_of_range": 5,
    "in_future": 5,
}
ROW_RULE_PRIORITY = 6  # dataframe-level rules (e.g. not_self_referral) come last

# Python's csv module refuses a field longer than 131,072 characters by default ("field larger
# than field limit"), which failed the whole step on a valid export with a long quoted review.
# Its readers here only count fields and read headers: any length polars reads is accepted.
csv.field_size_limit(2**31 - 1)


class IngestError(Exception):
    """A file cannot be ingested at all (unreadable, wrong type, missing columns)."""


@dataclass(frozen=True)
class ExportFile:
    source: str
    path: Path
    relpath: str
    size_bytes: int
    mtime_ns: int
    ctime_ns: int

    @property
    def stat(self) -> tuple[int, int, int]:
        """What tells the same file without reading it (`staging.ingested_files`)."""
        return (self.size_bytes, self.mtime_ns, self.ctime_ns)


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
    seconds: float = 0.0


# ----------------------------------------------------------------------------------------------
# Files


# Files a desktop leaves beside exports: Excel's lock file of an open workbook (`~$name.csv`),
# Windows' thumbnail cache and folder settings. Never exports: ignored like hidden files.
DESKTOP_FILES = ("thumbs.db", "desktop.ini")


def _walk(folder: Path) -> Iterator[Path]:
    """Every entry under `folder` that is not a folder, following linked folders (a link to an
    archive folder is read as a subfolder is; each real folder once, so a link loop ends)."""
    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in names:
            yield Path(root) / name


def discover_files(data_dir: Path, source: Source) -> list[ExportFile]:
    """The export files of a source, in path order, in its folder and subfolders (linked ones
    too). Hidden files (`.name`), Excel's lock files (`~$name`) and `DESKTOP_FILES` are ignored;
    a link to nothing and a name that is not UTF-8 are refused, naming them."""
    folder = Path(data_dir) / source.name
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(_walk(folder)):
        rel = path.relative_to(data_dir).as_posix()
        if any(part.startswith((".", "~$")) for part in path.relative_to(folder).parts):
            continue
        if path.name.lower() in DESKTOP_FILES:
            continue
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # a name from another system's encoding (a zip from Windows)
            shown = os.fsencode(rel).decode("utf-8", errors="replace")
            raise IngestError(
                f"{shown}: the file name is not UTF-8 text (written in another system's "
                "encoding, e.g. unzipped from a Windows archive); rename the file"
            ) from None
        if not path.is_file():
            if path.is_symlink() and not path.exists():
                raise IngestError(
                    f"{rel}: a link to a file that is not there ({os.readlink(path)})"
                )
            continue  # a socket, a pipe: not a file anyone exported
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise IngestError(
                f"{rel}: unsupported file type {path.suffix or '(none)'!r}; "
                f"exports must be {' or '.join(SUPPORTED_SUFFIXES)}"
            )
        stat = path.stat()
        files.append(
            ExportFile(source.name, path, rel, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        )
    return files


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
    holds and that staged rows, in path order: their rows stay staged (README "Exports"),
    which a user who deleted one to withdraw its rows should be told (a file that staged none,
    header only, was said to keep its rows: a review). Empty when it cannot tell (no staging
    yet, a file the ingest refuses)."""
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


def taken_in(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], TakenIn]:
    """Every file taken in, by (source, where it is now: `moved_to`, else `source_file`).

    Reads a warehouse whose last ingest predates `moved_to` and `rules` too (the next ingest
    adds them; the CLI asks on a read-only connection): no file moved, none under these rules."""
    recorded = {name for name, _ in catalog_columns(con, "staging", "ingested_files")}
    rows = con.execute(
        sql_template("staging/taken_in_files").format(
            path="coalesce(moved_to, source_file)" if "moved_to" in recorded else "source_file",
            rules="rules" if "rules" in recorded else "NULL",
        )
    ).fetchall()
    return {
        (source, path): TakenIn(sha, (size, mtime, ctime), source_file, rules, staged, read)
        for source, path, sha, size, mtime, ctime, source_file, rules, staged, read in rows
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unreadable(export: ExportFile, problem: str) -> IngestError:
    return IngestError(f"{export.relpath}: unreadable {export.path.suffix} file: {problem}")


def _plain(exc: Exception) -> str:
    """A library's error message without the hints that follow it (options a user cannot set)."""
    return first_line(exc).rstrip(".")


def _columns(
    export: ExportFile, names: list[str], source: Source
) -> tuple[dict[str, str], list[str]]:
    """Header names as read -> contract names, and the names the contract does not know.

    A name is matched as its column's name whatever its case, and with spaces, hyphens or dots
    between its words (`Social Handles`, `converted-at`) or none (`E-Mail`, `CustomerID`): an
    export tool's header variant of an optional column was otherwise ignored, and every value
    of it lost without a word. A header that also names the column itself keeps it, and the
    variant is an extra column.

    Raises `IngestError` naming the file if a name repeats (exactly, or in another case or with
    other spaces, or two variants of one column) or a required column is missing. The names the
    contract does not know are returned as the file writes them, emails and handles masked:
    they go to Dagster's metadata and the run's warnings, and a file without its header row
    names its first row's values.
    """
    # A name quoted after the separator's space (`order_id, "customer_id"`) is its name; the
    # characters that show as nothing (`email` with a zero-width space) are not part of it.
    basic = [_unquoted_name(re.sub(INVISIBLE_PATTERN, "", c).strip()).lower() for c in names]
    # Columns without a name (Excel's trailing empty columns `...,channel,,,`) are ignored, however
    # many: polars names the second and later ones `_duplicated_<n>`.
    unnamed = {c for c in basic if not c or _UNNAMED.fullmatch(c)}
    # `social handles` -> `social_handles`; `e-mail`, `customerid` -> the column whose name
    # without its underscores they write (`email`, `customer_id`: no two columns of a source
    # are one name so, a test holds it).
    joined = [_variant_of(c, source) for c in basic]
    # A variant names a contract column the header does not also name exactly.
    variants = {j for c, j in zip(basic, joined, strict=True) if c != j and j in source.columns}
    variants -= set(basic)
    cleaned = [j if j in variants else c for c, j in zip(basic, joined, strict=True)]
    repeated = sorted({c for c in cleaned if cleaned.count(c) > 1} - unnamed)
    if repeated:
        raise IngestError(
            f"{export.relpath}: repeated column(s) {privacy.masked_text(', '.join(repeated))}: "
            "the header names each column once"
        )
    renamed = dict(zip(names, cleaned, strict=True))
    missing = [c for c in source.required_columns if c not in renamed.values()]
    if missing:
        separated = next(
            (
                f"; the header is one name holding {said}: exports are comma-separated (Excel: "
                'save as "CSV UTF-8 (Comma delimited)")'
                for separator, said in _OTHER_SEPARATORS.items()
                if len(names) == 1 and separator in names[0]
            ),
            "",
        )
        # A file without its header row names its first row's values (emails, handles); a wide
        # export names the first SHOWN_COLUMNS and how many there are.
        # As the file writes them (`orderId` is what to look for in the export's settings),
        # without the columns that have no name, which are ignored.
        named = [n for n, c in zip(names, cleaned, strict=True) if c not in unnamed]
        found = ", ".join(
            _shown(n.strip().replace("\n", " "), limit=120) for n in named[:SHOWN_COLUMNS]
        )
        found = found.replace("\t", "\\t")
        if len(named) > SHOWN_COLUMNS:
            found += f", ... ({len(named):,} in all)"
        found = found or "no header"
        raise IngestError(
            f"{export.relpath}: missing required column(s) {', '.join(missing)} "
            f"(found: {privacy.masked_text(found)}){separated}"
        )
    ignored = [n for n, c in renamed.items() if c not in source.columns and c not in unnamed]
    return renamed, [_printable(privacy.masked_text(n)) for n in ignored]


def _printable(name: str) -> str:
    """A column name as a message shows it: a tab or a line break escaped (`a\\nb`), so a
    file's header cannot start a line of its own in the run's log (a review)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


_UNNAMED = re.compile(r"_duplicated_\d+")


def _variant_of(name: str, source: Source) -> str:
    """A lower-case header name as its contract column's name where it writes that name with
    other separators (`social handles`, `converted-at`) or none (`e-mail`, `customerid`, from
    `CustomerID`); otherwise with its runs of separators as `_`."""
    joined = _SEPARATORS.sub("_", name)
    if joined in source.columns:
        return joined
    squeezed = _SQUEEZED.sub("", name)
    return next((c for c in source.columns if c.replace("_", "") == squeezed), joined)


def _unquoted_name(name: str) -> str:
    """A trimmed header name without the quotes a header written `, "customer_id"` leaves on it
    (no contract column's name holds a quote)."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"').strip()
    return name


# Separators other tools write between values, as a header read with commas shows them.
_OTHER_SEPARATORS = {";": "';'", "\t": "tabs (a tab-separated file)", "|": "'|'"}
_SEPARATORS = re.compile(r"[\s\-.]+")
_SQUEEZED = re.compile(r"[\s\-._]+")


def _foreign_encoding(head: bytes) -> str | None:
    """The name of the encoding the start of a file is in, when it is not UTF-8 text."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    # UTF-16 without a BOM: every other byte of its Latin letters is NUL (one stray NUL in
    # UTF-8 text is named with its line instead: `_nul_problem`)
    if head and head.count(b"\x00") * 10 >= len(head):
        return "UTF-16 or binary data (it holds NUL bytes)"
    return None


def _nul_problem(export: ExportFile, line: int) -> IngestError:
    return _unreadable(
        export,
        f"line {line} holds a NUL byte (\\0), which no text value may hold (a damaged export, "
        "or a tool's padding); remove it and run again",
    )


# Files of another kind named `.csv`, by their first bytes: a compressed export or a Parquet
# file was refused as "UTF-16 or binary data" or "holds a NUL byte (a tool's padding)".
_OTHER_KINDS = {
    b"\x1f\x8b": "a gzip-compressed file (decompress it: gunzip)",
    b"PAR1": "a Parquet file (name it .parquet)",
    b"PK\x03\x04": "a ZIP archive, or an Excel workbook (.xlsx: save it as CSV UTF-8)",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls: save it as CSV UTF-8)",
    b"BZh": "a bzip2-compressed file (decompress it)",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file (decompress it)",
}


def _csv_header(export: ExportFile) -> list[str]:
    """The header names of a CSV file, from its first bytes, after checking they are UTF-8."""
    with export.path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    kind = next((said for magic, said in _OTHER_KINDS.items() if head.startswith(magic)), None)
    if kind:
        raise _unreadable(export, f"not CSV text: it is {kind}")
    encoding = _foreign_encoding(head)
    if encoding:
        raise _unreadable(
            export, f"the text is encoded as {encoding}; exports must be UTF-8 (save it as UTF-8)"
        )
    if not head:
        raise _unreadable(export, "the file is empty (0 bytes); a CSV export has a header row")
    if b"\x00" in head:
        raise _nul_problem(export, head[: head.index(b"\x00")].count(b"\n") + 1)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=len(head) < HEAD_BYTES)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise _unreadable(
            export, f"line {line} is not UTF-8 text; exports must be UTF-8 (save it as UTF-8)"
        ) from None
    if len(head) == HEAD_BYTES and not _header_ends_in(text):
        text = _long_header_text(export)
    if "\r" in text.split("\n", 1)[0].removesuffix("\r"):  # CR alone ends the header line
        raise _unreadable(
            export,
            'its lines end with CR alone (old Mac, Excel\'s "CSV (Macintosh)"); save it with LF '
            'or CRLF line endings (Excel: "CSV UTF-8")',
        )
    first = text.split("\n", 1)[0].strip().lower()
    if len(first) in (4, 5) and first.startswith("sep="):  # `sep=,` / `sep=;`, any separator
        raise _unreadable(
            export,
            f"its first line `{text.split(chr(10), 1)[0].strip()}` is Excel's separator hint, "
            "not the header row: remove that line (the header must be the first line)",
        )
    lines = io.StringIO(text)
    try:
        names = next(csv.reader(lines), [])
    except csv.Error as exc:
        raise _unreadable(export, f"the header row cannot be read as CSV ({exc})") from None
    if lines.tell() == len(text) and any("\n" in name for name in names) and _open_quote(text):
        # The header's row took every line of the file: a quote it opens never closes.
        raise _unreadable(
            export,
            'line 1 (the header row) opens a quote (") that is never closed, so the whole file '
            "reads as one header name; write header names without quotes, or each between two",
        )
    return names


def _open_quote(text: str) -> bool:
    """Whether CSV text ends inside a quoted value (a quote opened and never closed)."""
    try:
        for _ in csv.reader(io.StringIO(text), strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _header_ends_in(text: str) -> bool:
    """Whether the CSV text holds the whole first row: a line break outside quotes ends it."""
    lines = io.StringIO(text)
    try:
        next(csv.reader(lines), None)
    except csv.Error:
        return True  # read in full or not, the header is refused as unreadable
    return lines.tell() < len(text) or text.endswith("\n")


def _long_header_text(export: ExportFile) -> str:
    """The start of a CSV file whose header row is longer than HEAD_BYTES, up to the end of that
    row (read in growing pieces, as UTF-8); refused past HEADER_MAX_BYTES."""
    size = HEAD_BYTES
    with export.path.open("rb") as handle:
        while True:
            size *= 4
            handle.seek(0)
            head = handle.read(size)
            try:
                text = codecs.getincrementaldecoder("utf-8-sig")().decode(
                    head, final=len(head) < size
                )
            except UnicodeDecodeError as exc:
                line = head[: exc.start].count(b"\n") + 1
                raise _unreadable(
                    export,
                    f"line {line} is not UTF-8 text; exports must be UTF-8 (save it as UTF-8)",
                ) from None
            # (a file whose lines end with CR alone: Python's csv refuses the CR in the first
            # line, so `_header_ends_in` stops here and `_csv_header` says what it is)
            if len(head) < size or _header_ends_in(text):
                return text
            if size >= HEADER_MAX_BYTES:
                raise _unreadable(
                    export,
                    f"its header row is longer than {HEADER_MAX_BYTES // 2**20} MiB (a quote "
                    "opened and never closed, or no line breaks): the header must be one line",
                )


# Parquet types a contract type can be read from (their values are turned into text, then parsed
# like a CSV's). Anything else, nested types above all, refuses the file before it is read.
_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_FLOATS = (pl.Float16, pl.Float32, pl.Float64)
_TEXT = (pl.String, pl.Categorical, pl.Enum, pl.Null)
PARQUET_TYPES: dict[type[pl.DataType], tuple[type[pl.DataType], ...]] = {
    pl.String: (*_TEXT, *_INTEGERS),
    pl.Float64: (*_TEXT, *_INTEGERS, *_FLOATS, pl.Decimal),
    # decimals: a warehouse's NUMBER(38, 0) unload of an integer column
    pl.Int64: (*_TEXT, *_INTEGERS, *_FLOATS, pl.Decimal),
    pl.Datetime: (*_TEXT, pl.Datetime, pl.Date),
    pl.Date: (*_TEXT, pl.Date, pl.Datetime),
    pl.Boolean: (*_TEXT, pl.Boolean, *_INTEGERS, *_FLOATS),  # 1/0, 1.0/0.0 as in CSV
}
_CONTRACT_TYPE_NAMES = {  # what the contract wants, and the Parquet types it is read from
    pl.String: "text (write it as text or integers)",
    pl.Float64: "a number (write it as integers, floats, decimals or text)",
    pl.Int64: "an integer (write it as integers, whole floats or decimals, or text)",
    pl.Datetime: "a timestamp (write it as timestamps, dates or text)",
    pl.Date: "a date (write it as dates, timestamps or text)",
    pl.Boolean: "a boolean (write it as booleans, 1/0 integers or floats, or text)",
}


def _type_name(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Struct):
        return "nested records (a struct)"
    if isinstance(dtype, pl.List | pl.Array):
        return "lists"
    if isinstance(dtype, pl.Binary):
        return "binary data"
    return f"values of type {dtype}"


MAX_DECIMAL_DIGITS = 38  # polars' decimals, as Arrow's decimal128


def _check_parquet_types(
    export: ExportFile, schema: dict[str, pl.DataType], renamed: dict[str, str], source: Source
) -> None:
    """Refuse a Parquet file whose column has a type its contract column cannot be read from."""
    wanted = source.dtypes
    for name, dtype in schema.items():
        column = renamed[name]
        if column not in wanted:
            continue  # ignored column
        contract = wanted[column].base_type()
        if dtype.base_type() not in PARQUET_TYPES[contract]:
            raise IngestError(
                f"{export.relpath}: column {column} holds {_type_name(dtype)}; "
                f"the contract wants {_CONTRACT_TYPE_NAMES[contract]}"
            )
        digits = getattr(dtype, "precision", None)
        if isinstance(dtype, pl.Decimal) and digits is not None and digits > MAX_DECIMAL_DIGITS:
            # polars reads at most 38 digits: the file was called "damaged"
            raise IngestError(
                f"{export.relpath}: column {column} holds decimals of {digits} digits; the "
                f"ingest reads at most {MAX_DECIMAL_DIGITS} (write them as decimals of "
                f"{MAX_DECIMAL_DIGITS} digits or fewer, or as floats)"
            )


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _unnamed_zones(path: Path) -> tuple[pa.Schema, dict[str, str]]:
    """The file's Arrow schema, and its timestamp columns whose time zone is no zone name (a
    fixed offset such as `+05:30`, which pandas writes for ISO text with that offset), with
    that zone: polars cannot read those (it panics), so `_parquet_schema` and `_read_parquet`
    read them through Arrow as the instants they are, in UTC, and `read_raw` writes them at
    their offset again (`_at_offset_as_text`)."""
    schema = pq.read_schema(path)
    odd = {
        f.name: f.type.tz
        for f in schema
        if pa.types.is_timestamp(f.type) and f.type.tz and f.type.tz not in _zone_names()
    }
    return schema, odd


def _in_utc(field: pa.Field) -> pa.Field:
    return field.with_type(pa.timestamp(field.type.unit, "UTC"))


def _parquet_schema(export: ExportFile) -> tuple[dict[str, pl.DataType], dict[str, str]]:
    """The file's columns as polars reads them, and its columns at an unnamed zone (for
    `_read_parquet`, so the footer is read once per use). A column name written twice is
    refused as a CSV header's is (polars' own error called the file damaged)."""
    path = export.path
    schema, odd = _unnamed_zones(path)
    repeated = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if repeated:
        raise IngestError(
            f"{export.relpath}: repeated column(s) {', '.join(repeated)}: the file names each "
            "column once"
        )
    if not odd:
        # glob=False: polars reads `[`, `*` and `?` in a name as a pattern of file names (a
        # review: `orders/x[1].csv` staged the rows of `orders/x1.csv` under its name)
        return dict(pl.scan_parquet(path, glob=False).collect_schema()), odd
    utc = pa.schema([_in_utc(f) if f.name in odd else f for f in schema])
    return dict(pl.from_arrow(utc.empty_table()).schema), odd


def _read_parquet(path: Path, columns: list[str], odd: dict[str, str]) -> pl.DataFrame:
    if not odd.keys() & set(columns):
        return pl.read_parquet(path, columns=columns, glob=False)
    table = pq.read_table(path, columns=columns)
    for i, f in enumerate(table.schema):
        if f.name in odd:  # the same instants, labelled UTC (Arrow stores them in UTC)
            table = table.set_column(i, _in_utc(f), table.column(i).cast(_in_utc(f).type))
    return pl.from_arrow(table)


def check_header(export: ExportFile, source: Source) -> list[str]:
    """Fail (`IngestError` naming the file) if the file cannot be opened, is not UTF-8 text,
    repeats or misses a column, or (Parquet) has a column of a type its contract cannot take.

    Cheap (reads the first bytes or the Parquet footer only): run on every file before any table
    changes. Returns the names of columns the contract does not know.
    """
    if export.path.suffix.lower() == ".csv":
        try:
            names = _csv_header(export)
        except OSError as exc:
            raise _unreadable(export, _plain(exc)) from None
        return _columns(export, names, source)[1]
    try:
        schema, _ = _parquet_schema(export)
    except IngestError:
        raise
    except (Exception, pl.exceptions.PanicException) as exc:  # all mean the same to a user
        problem = privacy.masked_text(_plain(exc))
        raise _unreadable(export, f"not a Parquet file, or a damaged one ({problem})") from None
    renamed, extra = _columns(export, list(schema), source)
    _check_parquet_types(export, schema, renamed, source)
    return extra


def check_headers(
    exports: list[ExportFile], source: Source, rows: bool = False
) -> dict[str, list[str]]:
    """`check_header` of every file: the columns no contract column reads, per file that has
    some. Fails (`IngestError`) naming every file refused, each with its problem, not only the
    first: a sender fixes them all at once. Both engines call it before anything is written.
    With `rows`, when a file is refused, the others' rows are read too, for the files refused
    for their rows (`_refuse_all`), named in the same error."""
    refused: list[str] = []
    ignored: dict[str, list[str]] = {}
    passed: list[ExportFile] = []
    for export in exports:
        try:
            extra = check_header(export, source)
        except IngestError as error:
            refused.append(str(error))
            continue
        passed.append(export)
        if extra:
            ignored[export.relpath] = extra
    if refused and rows:
        _refuse_all([IngestError(message) for message in refused], passed, source)
    if refused:
        raise refused_error(refused, source)
    return ignored


def refused_error(refused: list[str], source: Source) -> IngestError:
    """One error for the files of a source that cannot be taken in, each with its problem."""
    if len(refused) == 1:
        return IngestError(refused[0])
    return IngestError(
        f"{len(refused)} {source.name} files cannot be taken in; nothing was staged: "
        + "; ".join(refused)
    )


def _csv_problem(export: ExportFile, exc: Exception) -> IngestError:
    """A CSV file polars could not read, described in plain words with the line at fault.

    Only runs when a read failed, so reading the file again here costs nothing on good files.
    """
    try:
        with export.path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            width = len(next(reader, []))
            for record in reader:
                opened = next((v for v in record if _OPENED_AFTER_SPACE.match(v)), None)
                if len(record) > width and opened is not None:
                    return IngestError(
                        f"{export.relpath}: line {reader.line_num} has {len(record)} fields but "
                        f"the header has {width}: a value quoted after a space holds the "
                        f"separator ({_shown(opened)}...); a quote opens a quoted value only "
                        "right after the comma: remove the space before the quote, then run "
                        "again"
                    )
                if len(record) > width:
                    return IngestError(
                        f"{export.relpath}: line {reader.line_num} has {len(record)} fields but "
                        f"the header has {width} (a separator inside a value that is not "
                        "quoted?); fix the file and run again"
                    )
                stray = next(
                    (
                        v
                        for v in record
                        if '"' in v and not v.startswith('"') and not _QUOTED_FORM.match(v)
                    ),
                    None,
                )
                if stray is not None:  # csv reads it as text; polars refuses the file
                    return _quote_inside_value(export, reader.line_num, stray)
    except UnicodeDecodeError:
        with export.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return _unreadable(
                        export,
                        f"line {number} is not UTF-8 text; exports must be UTF-8 (save it as "
                        "UTF-8)",
                    )
    except (OSError, csv.Error):
        pass
    try:
        _text_after_closing_quote(export)
    except IngestError as problem:
        return problem
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    # Last: Python's csv reads a lone CR as a line's end, so the checks above saw such lines
    # whole; polars reads on past it (a line of too many fields), and said only that.
    line = _bare_cr_line(export)
    if line is not None:
        return _unreadable(
            export,
            f"line {line} holds a CR alone outside a quoted value, which ends a line only in old "
            'Mac files (Excel\'s "CSV (Macintosh)"; a part pasted from one?): save it with LF '
            "or CRLF line endings, then run again",
        )
    # polars quotes the value it could not parse ("could not parse `...` as dtype `str`")
    return _unreadable(export, privacy.masked_text(_plain(exc)))


def _bare_cr_line(export: ExportFile) -> int | None:
    """The first line (counted by LF) holding a CR that neither ends it nor sits inside a quoted
    value, or None. The header's own line endings are looked at before (`_csv_header`)."""
    quoted = False  # inside a quoted value at the start of the line
    with export.path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            body = line.rstrip(b"\n").removesuffix(b"\r")
            if b"\r" in body:
                inside = quoted
                for byte in body:
                    if byte == 0x22:  # a doubled quote toggles twice: still inside
                        inside = not inside
                    elif byte == 0x0D and not inside:
                        return number
            quoted ^= line.count(b'"') % 2 == 1
    return None


def _text_after_closing_quote(export: ExportFile) -> None:
    """Raise an `IngestError` naming the first line with text after a value's closing quote
    (`"C1"x`, `"C1" ,`), which polars refuses with its own words; Python's csv reads such a
    value silently unless strict. Or naming the line where a quote opens that no quote closes
    (the rest of the file read as one value: polars said only "could not parse")."""
    with export.path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        starts = 1  # the line the record being read starts on
        try:
            for _ in reader:
                starts = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                rest = reader.line_num - starts + 1
                raise IngestError(
                    f"{export.relpath}: a quote on line {starts} opens a value that no quote "
                    f"closes, so the file's last {rest} lines would be one value "
                    f"({_shown(_line_text(export, starts))}): close the quote, or double a "
                    'quote inside a value ("TV 55"" LED"), then run again'
                ) from None
            if "expected after" not in str(exc):
                raise
            line = reader.line_num
            raise IngestError(
                f"{export.relpath}: line {line} has text after the closing quote of a value, "
                f"a space included ({_shown(_line_text(export, line))}): a quoted value ends "
                "at its quote, then the comma; remove what follows the quote, or quote the "
                'whole value ("TV 55"" LED"), then run again'
            ) from None


def _line_text(export: ExportFile, number: int) -> str:
    """Line `number` (1-based) of a text file, for a message."""
    with export.path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        for i, line in enumerate(handle, start=1):
            if i == number:
                return line.rstrip("\r\n")
    return ""


def _field_counts(export: ExportFile, rows: pl.Series, records: int) -> pl.Series:
    """The number of fields of the given data rows (0-based) of a CSV file.

    Only asked for rows whose last field is empty or missing (polars pads a short row with NULLs,
    so these are the only rows that can be short). Lines are counted as fields (separators
    outside quoted text, plus one) when the file has one line per record; a file with line
    breaks inside quoted values is read record by record instead.
    """
    lines = pl.read_lines(export.path).to_series()
    if len(lines) == records + 1:
        picked = lines.gather(rows + 1)
        unquoted = picked.str.replace_all('"[^"]*"', "")
        fields = unquoted.str.count_matches(",", literal=True) + 1
        return fields.set(picked.str.strip_chars("\r") == "", 0).cast(pl.Int64)
    with export.path.open("rb") as handle:  # a binary file's lines end at LF alone
        reader = csv.reader(_lines_as_polars_reads_them(handle))
        next(reader, None)
        counts = [len(record) for record in reader]
    if len(counts) != records:  # never count the fields of one row against another
        raise _unreadable(
            export,
            f"its rows cannot be told apart ({records} rows read, {len(counts)} counted); "
            "check its quotes and line endings",
        )
    return pl.Series(counts, dtype=pl.Int64).gather(rows)


def _lines_as_polars_reads_them(handle) -> Iterator[str]:
    """The text lines of a binary file, for Python's csv module, which ends a record at a CR
    alone where polars keeps the CR in the value: such a CR is replaced (the field count is all
    that is asked), else every count after it would belong to another row. One line at a time:
    a large file is never read whole."""
    first = True
    for line in handle:
        ending = b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b""
        body = line[: len(line) - len(ending)]
        if b"\r" in body:
            body = body.replace(b"\r", b"\x1e")
        text = (body + ending).decode("utf-8")
        if first:
            text, first = text.removeprefix("\ufeff"), False
        yield text


# Bytes of values with line breaks looked at at once for rows inside them (`_in_parts`).
LINE_BREAK_PART_BYTES = 64 * 2**20


def _in_parts(rows: pl.Series, sizes: pl.Series) -> Iterator[pl.Series]:
    """`rows` (row numbers, in order) in consecutive parts of about LINE_BREAK_PART_BYTES of
    values (`sizes`, each row's), at least one row each: a file of 1 MB reviews is looked at
    64 MB at a time, not whole."""
    if not len(rows):
        return
    sizes = sizes.cast(pl.Int64)
    part = (sizes.cum_sum() - sizes) // LINE_BREAK_PART_BYTES
    for _, group in pl.DataFrame({"row": rows, "part": part}).group_by("part", maintain_order=True):
        yield group["row"]


def _rows_inside_values(
    export: ExportFile, frame: pl.DataFrame, source: Source, renamed: dict[str, str]
) -> None:
    """Refuse a CSV file in which a quoted value runs over a line that reads as a whole row: a
    stray `"` (e.g. `10" screen` unquoted, or a quote never closed until a later row's) turns
    the rows up to the next `"` into one value, which a reader takes for one row, so those rows
    would be lost without a trace. A line inside a value reads as a row when it has the header's
    number of fields and every typed field of the contract (dates, timestamps, numbers,
    booleans) parses at its place: text with line breaks and commas (a review, an address) does
    not. Only values with a line break are looked at; every column counts, ignored ones too."""
    if not frame.height or not frame.width or _lines(export) == frame.height + 1:
        return  # one line per row (and the header): no value holds a line break
    typed = {
        position: source.dtypes[renamed[name]]
        for position, name in enumerate(frame.columns)
        if renamed.get(name) in source.dtypes and source.dtypes[renamed[name]] != pl.String
    }
    column_names = {position: renamed.get(name) for position, name in enumerate(frame.columns)}

    def reads_as_rows(lines: pl.Series) -> pl.Series:
        fields = lines.str.split(",")
        whole = (fields.list.len() == frame.width).fill_null(False)
        parsed = pl.Series(values=[False] * len(lines), dtype=pl.Boolean)
        for position, dtype in typed.items():
            text = fields.list.get(position, null_on_oob=True).str.strip_chars()
            # A blank optional typed field (a conversion date, a flag) is a row's field too:
            # read as a value that must parse, a swallowed row with one was lost unseen. A
            # required one must hold its value (an address's blank parts are not a row's).
            value = _parse_column(text, dtype)[0].is_not_null().fill_null(False)
            if column_names[position] in source.required_columns:
                whole &= value
            else:
                whole &= value | text.is_in(list(NULL_TEXTS)).fill_null(False)
            parsed |= value
        return whole & parsed  # and at least one typed field holds a value of its type

    found: tuple[int, str] | None = None  # (row, column) of the first value holding a row
    for column in frame.columns:
        broken = frame[column].str.contains("\n", literal=True).fill_null(False).arg_true()
        for rows in _in_parts(broken, frame[column].gather(broken).str.len_bytes()):
            inner = pl.DataFrame(
                {"row": rows, "line": frame[column].gather(rows).str.split("\n").list.slice(1)}
            ).explode("line")
            # Only a line with the header's number of fields can read as a row: counted first,
            # split into fields after (a review's paragraphs, split whole, took 5 times the
            # file's size in memory).
            inner = inner.filter(
                inner["line"].str.count_matches(",", literal=True) == frame.width - 1
            )
            hits = inner.filter(reads_as_rows(inner["line"]))
            if hits.height:  # the parts are in row order: the first hit is this column's first
                if found is None or hits["row"][0] < found[0]:
                    found = (int(hits["row"][0]), column)
                break
    if found is None:
        return
    row, column = found
    lines = frame[column][row].split("\n")
    k = 1 + int(reads_as_rows(pl.Series(lines[1:], dtype=pl.String)).arg_true()[0])
    # the record's first line: the header, the rows before, the line breaks inside them
    before = frame.head(row).select(
        pl.sum_horizontal(pl.all().str.count_matches("\n", literal=True).fill_null(0))
    )
    first = 2 + row + int(before.to_series().sum())
    raise IngestError(
        f"{export.relpath}: the quoted value that opens on line {first} runs over "
        f"{len(lines)} lines, and line {first + k} inside it reads as a whole row "
        f'({_shown(lines[k])}): a stray " (an unquoted inch mark, a quote never closed)? '
        'Quote such values and double the quotes inside them ("10"" screen"), then run again'
    )


def _lines(export: ExportFile) -> int:
    """The number of lines of a CSV file (a last line without its line break counts). Refuses a
    file holding a NUL byte, naming the line: polars would stage it inside a value (`C\\01`),
    where no key or email matches it. numpy counts the line breaks at about 2 GB/s, twice as
    fast as `bytes.count` and four times as fast as asking polars which values hold one."""
    breaks, last = 0, b"\n"
    with export.path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            codes = np.frombuffer(chunk, dtype=np.uint8)
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise _nul_problem(export, breaks + int(np.count_nonzero(codes[:nul] == 10)) + 1)
            breaks += int(np.count_nonzero(codes == 10))
            last = chunk[-1:]
    return breaks + (last != b"\n")


def _parquet_nul(export: ExportFile, frame: pl.DataFrame) -> None:
    """Refuse a Parquet file with a NUL character in a text value the contract reads, naming its
    row and column, as a CSV file holding a NUL byte is (`_lines`): it was staged inside the
    value (`x8@exa\\0mple.com`) and written so into the audience files. One literal search per
    text column, dictionary-encoded ones too."""
    for name, dtype in frame.schema.items():
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
            text = frame[name].cast(pl.String)
            found = text.str.contains("\x00", literal=True).fill_null(False)
            if found.any():
                row = int(found.arg_true()[0]) + 1
                raise _unreadable(
                    export,
                    f"row {row} holds a NUL character (\\0) in {privacy.masked_text(name)}, "
                    "which no text value may hold (a damaged export, or a tool's padding); "
                    "remove it and run again",
                )


def _shown(line: str, limit: int = 60) -> str:
    """An excerpt of a file's text for a message, its emails and handles masked: the message
    reaches the console and Dagster's run logs and event storage, which erasure does not reach,
    and the excerpt's shape (its quotes, separators, ids) is what finds the line. Masked before
    it is shortened, so no cut leaves part of an address unmasked."""
    line = privacy.masked_text(line.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _header_key(name: str) -> str:
    """A header name as the repeated-header check compares it: without a byte-order mark,
    invisible characters, spaces around it or quotes, in lower case, with runs of spaces,
    hyphens or dots as `_` (what `_columns` forgives in a header)."""
    name = re.sub(INVISIBLE_PATTERN, "", name).strip()
    return _SEPARATORS.sub("_", _unquoted_name(name).lower())


def _repeated_header(
    export: ExportFile, frame: pl.DataFrame, renamed: dict[str, str], source: Source
) -> None:
    """Refuse a CSV file with a row that repeats the header's names, in any order, case or
    spacing: two exports pasted together (`cat` keeps the second one's byte-order mark). With
    its columns in another order, the rows after it were staged into the wrong columns (order
    and customer ids swapped); in the same order the row is no data either. One look at the
    first column; a row is compared whole only where that value is a header name, so a value
    that happens to name a column is a value."""
    named = [raw for raw, name in renamed.items() if name and not _UNNAMED.fullmatch(name)]
    names = {_header_key(raw) for raw in named}
    # The contract's columns apart: a pasted part may name its other columns otherwise, or put
    # them elsewhere; either way of matching is a repeated header.
    contract = [i for i, raw in enumerate(named) if renamed[raw] in source.columns]
    contract_names = {_header_key(named[i]) for i in contract}
    if len(named) < 2 or not frame.height:
        return

    def cleaned(column: str) -> pl.Expr:  # `_header_key` of each value
        text = pl.col(column).str.replace_all(INVISIBLE_PATTERN, "").str.strip_chars()
        text = text.str.strip_chars('"').str.strip_chars().str.to_lowercase()
        return text.str.replace_all(_SEPARATORS.pattern, "_")

    hits = frame.select(cleaned(named[0]).is_in(list(names))).to_series()
    if not hits.any():
        return
    rows = frame.with_row_index("row").filter(hits)
    for row, values in rows.select("row", pl.concat_list(map(cleaned, named))).iter_rows():
        if set(values) == names or {values[i] for i in contract} == contract_names:
            raise IngestError(
                f"{export.relpath}: row {row + 1} repeats the header (two exports pasted "
                "together): split the file where that row starts, each part with its header"
            )


def _short_rows(export: ExportFile, frame: pl.DataFrame) -> pl.Series:
    """Per row of a CSV file: why its fields cannot be trusted (fewer fields than the header), or
    NULL. One NULL check of the last column; lines are read only if that column has NULLs."""
    problem = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(ROW_PROBLEM)
    if not frame.width or not frame.height:
        return problem
    candidates = frame[frame.columns[-1]].is_null().arg_true()
    if not len(candidates):
        return problem
    fields = _field_counts(export, candidates, frame.height)
    # Columns without a name at the header's end (a trailing `,` on the header line alone, as
    # some tools write it) hold nothing: a row without them has every field.
    named = [i for i, c in enumerate(frame.columns) if c.strip() and not _UNNAMED.fullmatch(c)]
    width = named[-1] + 1 if named else frame.width
    short = fields < width
    if not short.any():
        return problem
    detail = pl.select(
        pl.when(pl.lit(fields.filter(short)) == 0)
        .then(pl.lit("a blank line"))
        .otherwise(
            pl.format("{} field(s) where the header has {}", pl.lit(fields.filter(short)), width)
        )
    ).to_series()
    return problem.scatter(candidates.filter(short), detail)


def _as_text(column: pl.Expr, dtype: pl.DataType, contract: pl.DataType) -> pl.Expr:
    """A column's values as text, to be parsed like a CSV's. Floats for an integer column (pandas
    writes an integer column with a gap as floats: 5.0 and NaN) are written as integers when
    whole; `4.5` stays as it is and is quarantined as not an integer. NaN, in an integer or a
    boolean column, is a missing value. Decimals are written as they are (`5.00`, read as 5
    exactly by `_parse_column`; `5.50` quarantined)."""
    if contract.base_type() is pl.Int64 and dtype.base_type() in _FLOATS:
        # whole and within an integer's range; 1e20 stays `1e20` (quarantined, value shown)
        whole = column.is_finite() & (column == column.round(0)) & (column.abs() < 2.0**63)
        return (
            pl.when(column.is_nan())
            .then(None)
            .when(whole)
            .then(column.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(column.cast(pl.String))
        )
    if contract.base_type() is pl.Boolean and dtype.base_type() in _FLOATS:
        return pl.when(column.is_nan()).then(None).otherwise(column.cast(pl.String))  # a gap
    if dtype.base_type() in (pl.Datetime, pl.Date):
        return _temporal_as_text(column, dtype)
    return column.cast(pl.String)


def _temporal_as_text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A Parquet date or timestamp column as text. A value outside the years 1 to 9999 (epoch
    nanoseconds written into a millisecond column, a date32 of 2**31 - 1) stopped the ingest with
    a panic of polars' text conversion that named no file: it is written as its stored number
    and unit instead, which no timestamp form parses (quarantined, the number shown). A time
    with a zone keeps a day's margin, so that it is within those years in any zone and in UTC."""
    physical = column.to_physical()
    if dtype.base_type() is pl.Date:
        unit, low, high = "days", -719_162, 2_932_896  # 0001-01-01 and 9999-12-31
    else:
        unit = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds"}[
            dtype.time_unit  # type: ignore[attr-defined]
        ]
        per_second = {"nanoseconds": 10**9, "microseconds": 10**6, "milliseconds": 10**3}[unit]
        margin = 86_400 if dtype.time_zone is not None else 0  # type: ignore[attr-defined]
        # 0001-01-01T00:00:00 and 9999-12-31T23:59:59.999..., in seconds from 1970
        low = (-62_135_596_800 + margin) * per_second
        high = (253_402_300_800 - margin) * per_second - 1
        if unit == "nanoseconds":  # an i64 of nanoseconds spans the years 1677 to 2262
            low, high = -(2**63) + 1, 2**63 - 1
    inside = physical.is_between(low, high)
    return pl.coalesce(
        pl.when(inside).then(column).cast(pl.String),
        pl.when(~inside).then(
            pl.format("{} {} since 1970-01-01 (out of range)", physical, pl.lit(unit))
        ),
    )


# `-05:00`, `-0500` and `-05` (pyarrow writes and reads each)
_OFFSET = re.compile(r"([+-])(\d{2})(?::?(\d{2}))?")


def _at_offset_as_text(column: pl.Expr, dtype: pl.DataType, zone: str) -> pl.Expr:
    """A Parquet timestamp column at a fixed offset (`-05:00`), read as UTC instants, as text at
    that offset again (`2024-03-01 23:30:00.000000-05:00`), as a CSV writes it: a date column
    so written is the date written, as the contract says (its UTC day, 2024-03-02, was staged),
    and a timestamp the same instant. Values outside the years 1 to 9999 keep
    `_temporal_as_text`'s words; a zone that is no offset stays in UTC."""
    text = _temporal_as_text(column, dtype)
    offset = _OFFSET.fullmatch(zone)
    if offset is None:
        return text
    sign, hours, minutes = offset.groups()
    minutes = minutes or "00"
    shift = (1 if sign == "+" else -1) * (int(hours) * 60 + int(minutes))
    inside = ~text.str.ends_with("(out of range)").fill_null(False)
    local = pl.when(inside).then(column).dt.replace_time_zone(None) + pl.duration(minutes=shift)
    return pl.when(inside).then(local.cast(pl.String) + f"{sign}{hours}:{minutes}").otherwise(text)


# A value quoted after the separator's space (`O1, "C1"`): CSV readers that follow RFC 4180,
# polars among them, take the quotes for part of the text, and `"C1"` matched no customer.
_QUOTED_AFTER_SPACE = r'^\s+"((?:[^"]|"")*)"\s*$'
_QUOTED_FORM = re.compile(_QUOTED_AFTER_SPACE)
# A value quoted after a space whose closing quote is in a later field: the separator inside it
# split it (`O1, "Smith, John"`).
_OPENED_AFTER_SPACE = re.compile(r'^\s+"(?:[^"]|"")*$')


def _quote_scan(export: ExportFile) -> bool:
    """Whether a `"` follows a space or a tab in a CSV file (then `_unquoted_after_space` reads
    `O1, "C1"` as `C1`); and refuse the file when a `"` sits inside a value that is not quoted
    where polars reads it anyway and would stage the quote as text: `="00123"` (a spreadsheet's
    guard for leading zeros), `a""b`. A quote that opens a value (an even number of quotes
    before it) must follow the separator, a line break, the file's start, another quote (a
    doubled quote inside a quoted value) or spaces after the separator. An odd one out
    (`TV 55" LED`) fails polars' read and `_csv_problem` names it. One byte scan (0.28-0.46
    CPU-s for 622 MiB of orders) that spares most files `_unquoted_after_space` (1.5 CPU-s on
    the same rows, whose stray spaces lead a few values of every column)."""
    if not export.path.stat().st_size:
        return False
    data = np.memmap(export.path, dtype=np.uint8, mode="r")
    start = 3 if bytes(data[:3]) == b"\xef\xbb\xbf" else 0  # after a BOM
    quotes_before, after_space = 0, False
    for begin in range(start, data.size, 1 << 24):
        quotes = np.flatnonzero(data[begin : begin + (1 << 24)] == 34) + begin
        if not quotes.size:
            continue
        before = np.where(quotes > start, data[np.maximum(quotes - 1, 0)], 10)
        spaces = (before == 32) | (before == 9)
        after_space |= bool(spaces.any())
        opening = (np.arange(quotes.size) + quotes_before) % 2 == 0
        quotes_before += quotes.size
        odd = quotes[opening & ~np.isin(before, (44, 10, 13, 34, 32, 9))]
        # `O1, "C1"` opens a quoted value after spaces: the byte before them must end a field.
        at = quotes[opening & spaces]
        back = at - 1
        while back.size:
            blank = (back >= start) & np.isin(data[np.maximum(back, 0)], (32, 9))
            if not blank.any():
                break
            back = np.where(blank, back - 1, back)
        if at.size:
            ended = (back < start) | np.isin(data[np.maximum(back, 0)], (44, 10, 13))
            odd = np.concatenate([odd, at[~ended]])
        if odd.size:
            _refuse_quote_inside(export, data, start, int(odd.min()))
    return after_space


def _refuse_quote_inside(export: ExportFile, data: np.ndarray, start: int, at: int) -> None:
    """Raise the `IngestError` of a `"` at byte `at` inside a value that is not quoted, naming
    the line and the value (its text between the separators)."""
    breaks = np.flatnonzero(data[:at] == 10)
    first = int(breaks[-1]) + 1 if breaks.size else start
    text = bytes(data[first : first + (1 << 16)]).split(b"\n", 1)[0]
    offset = len(bytes(data[first:at]).decode("utf-8", errors="replace"))
    text = text.decode("utf-8", errors="replace").rstrip("\r")
    value = text[text.rfind(",", 0, offset) + 1 :].split(",", 1)[0]
    raise _quote_inside_value(export, breaks.size + 1, value)


def _quote_inside_value(export: ExportFile, line: int, value: str) -> IngestError:
    """The refusal of a file with a `"` inside a value that is not quoted, on `line`: found by
    the byte scan (polars read the file) or by `_csv_problem` (polars could not)."""
    return IngestError(
        f'{export.relpath}: line {line} has a " inside a value that is not quoted '
        f'({_shown(value)}); quote the value and double the quote ("TV 55"" LED"), then run '
        "again"
    )


def _unquoted_after_space(frame: pl.DataFrame) -> pl.DataFrame:
    """A CSV value written as whitespace, then a quoted value (`, "C1"`, as hand edits and some
    tools write a list), read as the quoted value (`C1`; a doubled `""` inside is one `"`), as
    Python's csv reads it with `skipinitialspace`. Only values starting with a space or a tab
    are matched against the pattern (exports with stray spaces have some in every column)."""
    fixed = []
    for name in frame.columns:
        column = frame[name]
        lead = (column.str.starts_with(" ") | column.str.starts_with("\t")).fill_null(False)
        rows = lead.arg_true()
        if not len(rows):
            continue
        inner = column.gather(rows).str.extract(_QUOTED_AFTER_SPACE, 1)
        hit = inner.is_not_null()
        if not hit.any():
            continue
        values = inner.filter(hit).str.replace_all('""', '"', literal=True)
        fixed.append(column.scatter(rows.filter(hit), values))
    return frame.with_columns(fixed) if fixed else frame


def read_raw(export: ExportFile, source: Source) -> tuple[pl.DataFrame, list[str]]:
    """The file's rows as text, in contract column order, with `source_file`, `source_row` and
    `row_problem` (why a CSV row's fields cannot be trusted: fewer fields than the header).

    Returns the frame and the names of columns the contract does not know (ignored, reported).
    `source_row` is the 1-based record number (1 = first data row; a CSV's header is not counted).
    Only the contract's columns of a Parquet file are read.
    """
    problem = None
    offsets: dict[str, str] = {}  # Parquet timestamp columns at a fixed offset, with it
    if export.path.suffix.lower() == ".csv":
        try:
            frame = pl.read_csv(
                export.path, infer_schema=False, encoding="utf8", raise_if_empty=False, glob=False
            )
        except Exception as exc:  # polars raises several types; all mean the same to a user
            raise _csv_problem(export, exc) from None
        renamed, extra = _columns(export, frame.columns, source)
        _repeated_header(export, frame, renamed, source)
        _rows_inside_values(export, frame, source, renamed)
        problem = _short_rows(export, frame)
        if _quote_scan(export):
            frame = _unquoted_after_space(frame)
    else:
        try:
            schema, odd = _parquet_schema(export)
            renamed, extra = _columns(export, list(schema), source)
            _check_parquet_types(export, schema, renamed, source)
            wanted = [name for name, c in renamed.items() if c in source.columns]
            frame = _read_parquet(export.path, wanted, odd)
            _parquet_nul(export, frame)
            offsets = {name: zone for name, zone in odd.items() if name in wanted}
        except IngestError:
            raise
        except (Exception, pl.exceptions.PanicException) as exc:  # all mean the same to a user
            raise _unreadable(
                export, f"not a Parquet file, or a damaged one ({privacy.masked_text(_plain(exc))})"
            ) from None
    by_name = {new: old for old, new in renamed.items()}
    frame = frame.select(
        pl.lit(export.relpath).alias("source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row"),
        *[
            _at_offset_as_text(
                pl.col(by_name[c]), frame.schema[by_name[c]], offsets[by_name[c]]
            ).alias(c)
            if by_name.get(c) in offsets
            else _as_text(pl.col(by_name[c]), frame.schema[by_name[c]], source.dtypes[c]).alias(c)
            if c in by_name
            else pl.lit(None, dtype=pl.String).alias(c)
            for c in source.columns
        ],
        pl.lit(None, dtype=pl.String).alias(ROW_PROBLEM) if problem is None else pl.lit(problem),
    )
    return frame, extra


# ----------------------------------------------------------------------------------------------
# Parsing and validation (pure, on polars frames)


# Text that export tools write for "no value": NULL. A database dump wrote guest orders'
# customer_id as `NULL`, which staged every guest as one customer named "NULL". Not `NA` (a
# country code).
# `\N`: MySQL's `SELECT ... INTO OUTFILE` and `mysqldump --tab`, and Hive's and Spark's text
# tables, write NULL so. `NaN`, `nan`, `<NA>`, `NaT`: pandas' missing values turned to text
# (an id column of a frame with gaps, `astype(str)`; `NaT` a datetime's): every guest order was
# staged under one buyer "nan". A float NaN in Parquet is a gap too, so a CSV's `NaN` in a
# number column is no value (a required column's row is `missing_required_value`), the same in
# both formats. A list's entries so written are dropped as blank ones are (`@ann;nan` merged
# everyone whose list ended so into one customer). A handle that is one of these words is
# written with its `@` (`@nan`), which no export tool writes for a gap.
NULL_TEXTS = (
    *("", "NULL", "null", "Null", "N/A", "n/a", "#N/A", "None", "\\N"),
    *("NaN", "nan", "-NaN", "-nan", "<NA>", "NaT"),  # pandas' own NA texts, as it reads them
)


def normalise_text(raw: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Trim every value (whitespace and invisible characters, `contracts.TRIMMED`), remove
    invisible characters inside email addresses and social handles, trim each entry of a list
    and drop the blank ones (`Source.lists`), make empty text and the `NULL_TEXTS` NULL, fold
    the case of enumerations and codes."""
    exprs = []
    contact_keys = source.contact_keys
    for name in source.columns:
        col = pl.col(name)
        if name in contact_keys:  # 0.5 CPU-s for 10M order emails
            col = col.str.replace_all(INVISIBLE_PATTERN, "")
        if name in source.lists:  # entries trimmed, blank ones (and NULL_TEXTS) dropped
            col = (
                col.str.split(LIST_SEPARATOR)
                .list.eval(pl.element().str.strip_chars(TRIMMED))
                .list.eval(pl.element().filter(~pl.element().is_in(list(NULL_TEXTS))))
                .list.join(LIST_SEPARATOR)
            )
        col = col.str.strip_chars(TRIMMED).replace(list(NULL_TEXTS), None)
        if name in source.casefold:
            col = col.str.to_lowercase()
        if name in source.upcase:
            col = col.str.to_uppercase()
        aliases = {written: read for column, written, read in source.aliases if column == name}
        if aliases:
            col = col.replace(aliases)
        exprs.append(col.alias(name))
    return raw.with_columns(exprs)


# A time whose seconds are 60 (`10:00:60`): polars reads it as the next minute (and 23:59:60 as
# the next day), where 24:00:00 or 10:61:00 are refused. A row so written is quarantined as
# unparseable, not moved silently (a leap second is not a time a shop's export records).
_SECOND_60 = r"\d:[0-5]\d:60(?:[^0-9]|$)"


def _without_second_60(text: pl.Series, parsed: pl.Series) -> pl.Series:
    """`parsed`, NULL where its text writes a 60th second or no four-digit year."""
    parsed = _with_four_digit_year(text, parsed)
    maybe = text.str.contains(":60", literal=True).fill_null(False) & parsed.is_not_null()
    if not maybe.any():
        return parsed
    rows = maybe.arg_true()
    bad = text.gather(rows).str.contains(_SECOND_60)
    return parsed.scatter(rows.filter(bad), None) if bad.any() else parsed


def _with_four_digit_year(text: pl.Series, parsed: pl.Series) -> pl.Series:
    """`parsed`, NULL where its text does not begin with a four-digit year: polars' `%Y` also
    reads `0-1-1`, `12-01-01 10:00` and `+2024-03-01`, and the date columns, which take the
    year from the text, did not (a date and a timestamp column read one text differently).
    Only values before the year 1000 (negative years too) or with a `+` first are looked at
    again (0.08 CPU-s for 7M timestamps; through `dt.year()` 0.3)."""
    first = datetime(1000, 1, 1) if parsed.dtype != pl.Date else datetime(1000, 1, 1).date()
    maybe = parsed.is_not_null() & ((parsed < first) | text.str.starts_with("+"))
    if not maybe.any():
        return parsed
    rows = maybe.arg_true()
    bad = ~text.gather(rows).str.contains(r"^[0-9]{4}-")
    return parsed.scatter(rows.filter(bad), None) if bad.any() else parsed


def _parse_timestamps(text: pl.Series) -> pl.Series:
    """Timestamps as naive UTC; NULL where the text is none of the accepted forms.

    An export mostly writes one form. The plain form that fits a sample of the column
    (`DIRECT_TIMESTAMP_FORMATS`) is parsed directly, with no regex and no rewrite; the rest goes
    on to `_parse_timestamps_other`. Every path gives the value the general formats give (tests
    compare them on edge cases and on generated text).
    """
    fmt = _direct_timestamp_format(text)
    if fmt is None:
        return _parse_timestamps_other(text)
    # No cache: timestamps are mostly distinct, and the cache made this 35% slower.
    parsed = _without_second_60(
        text, text.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False)
    )
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    return parsed.scatter(todo.arg_true(), _parse_timestamps_other(text.filter(todo)))


def _direct_timestamp_format(text: pl.Series) -> str | None:
    """The direct format that parses most of the first values, if one parses any.

    Trying a format that does not fit costs more than one that does (308 against 136 ms for
    800k values), so the format is chosen on a sample rather than tried in turn.
    """
    sample = text.head(DIRECT_FORMAT_SAMPLE).drop_nulls()
    if not len(sample):
        return None
    parsed = {
        fmt: len(sample)
        - sample.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False).null_count()
        for fmt in DIRECT_TIMESTAMP_FORMATS
    }
    best = max(parsed, key=lambda fmt: parsed[fmt])
    return best if parsed[best] else None


def _parse_dates(text: pl.Series) -> pl.Series:
    """Dates: plain `2024-03-01` parsed directly; any other accepted timestamp text gives the
    date it is written with (`2024-03-01T23:30:00-05:00` is 1 March, the day where it was
    written, not 2 March, the day in UTC)."""
    parsed = _with_four_digit_year(
        text, text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False)
    )
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    rest = text.filter(todo)
    # The date part as written: one-digit months and days too (`2024-1-2 10:00`), which a
    # timestamp accepts (its first ten characters were taken, and it was quarantined).
    written = rest.str.extract(r"^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})", 1).str.strptime(
        pl.Date, "%Y-%m-%d", strict=False, cache=False
    )
    dates = pl.select(
        pl.when(_parse_timestamps(rest).is_not_null()).then(written).alias(text.name)
    ).to_series()
    return parsed.scatter(todo.arg_true(), dates)


def _parse_timestamps_other(text: pl.Series) -> pl.Series:
    """Timestamps not in the plain form: a common variant ("T" between date and time, and/or an
    offset of zero, "+00:00" or "Z"; ASCII digits only) is rewritten to the plain form and
    parsed on polars' fast path; only the rest goes through the general formats, each tried on
    the rows still unparsed. The general formats accept disjoint texts (with an offset, with
    seconds, with minutes only, date only), so the order of the attempts cannot change a result.
    """
    canonical = text.str.contains(CANONICAL_TIMESTAMP)
    parsed = pl.select(
        pl.when(pl.lit(canonical))
        .then(
            pl.concat_str(
                pl.lit(text).str.slice(0, 10), pl.lit(" "), pl.lit(text).str.slice(11, 8)
            ).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        )
        .alias(text.name)
    ).to_series()
    parsed = _without_second_60(text, parsed)
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    return parsed.scatter(todo.arg_true(), _parse_timestamps_general(text.filter(todo)))


def _parse_timestamps_general(text: pl.Series) -> pl.Series:
    """Every accepted timestamp form, each format tried only on the rows not parsed yet."""
    # `T` between date and time, also after a one-digit month or day (`2024-1-2T10:00`)
    text = text.str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})T", "$1 ")
    # ` UTC` after the time, as BigQuery and other warehouses write a timestamp as text
    text = text.str.replace(r"^(\d{4}-\d{1,2}-\d{1,2} [0-9:.]*\d) UTC$", "$1+00:00")
    parsed = pl.Series(text.name, [None] * len(text), dtype=pl.Datetime("us"))
    for fmt in TIMESTAMP_FORMATS:
        todo = parsed.is_null() & text.is_not_null()
        if not todo.any():
            break
        attempt = text.filter(todo).str.strptime(
            pl.Datetime("us", "UTC") if "z" in fmt else pl.Datetime("us"), fmt, strict=False
        )
        if attempt.dtype.time_zone is not None:  # type: ignore[union-attr]
            attempt = attempt.dt.replace_time_zone(None)
        parsed = parsed.scatter(todo.arg_true(), attempt)
    return _without_second_60(text, parsed)


# The first instant and day a contract check can report: polars reads the year 0 (`0000-01-01`,
# or `0001-01-01T00:00:00+01:00` in UTC), which Python's datetime cannot hold, and the contract
# checks then failed the whole source with "year 0 is out of range", naming no file or row.
_FIRST_TIMESTAMP = datetime(1, 1, 1)
_FIRST_DATE = _FIRST_TIMESTAMP.date()


def _whole_decimal(written: str) -> int | None:
    """`written` (an exponent form such as `1e3`) as the integer it is exactly, or None when it
    is not whole or no BIGINT holds it."""
    try:
        number = decimal.Decimal(written)
    except decimal.InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() > 18 or number != number.to_integral_value():
        return None
    whole = int(number)
    return whole if -(2**63) <= whole < 2**63 else None


def _parse_column(text: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, str]:
    """Parse one text column; returns the typed column and the reason to give a failure."""
    if dtype == pl.String:
        return text, ""
    if dtype == pl.Datetime:
        values = _parse_timestamps(text)
        return values.set(values < _FIRST_TIMESTAMP, None), "unparseable_timestamp"
    if dtype == pl.Date:
        values = _parse_dates(text)
        return values.set(values < _FIRST_DATE, None), "unparseable_date"
    if dtype == pl.Float64:
        values = text.cast(pl.Float64, strict=False)
        return values.set(~values.is_finite().fill_null(True), None), "unparseable_number"
    if dtype == pl.Int64:
        # `5.0`: pandas writes an integer column with a gap as floats, in CSV as in Parquet
        values = text.cast(pl.Int64, strict=False)
        retry = values.is_null() & text.is_not_null()
        if retry.any():
            # A fraction of zeros, read exactly (`12345678901234567.00` through a float was
            # ...68; `.0` is 0); an exponent form (`1e3`) exactly, as a decimal, when its value
            # is whole (through a float, `1.0000000000000000001` was 1, `12345678901234567e0`
            # ...68, `40000000000000000001e-19` 4; three reviews). Anything else (`4.5`) stays
            # NULL: quarantined, the text shown.
            exact = text.str.replace(r"^([+-]?)(\d*)\.0*$", "${1}0${2}")
            values = values.fill_null(exact.cast(pl.Int64, strict=False))
            exponent = (
                retry
                & values.is_null()
                & text.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$").fill_null(False)
            ).arg_true()
            if len(exponent):  # rare: each read as a decimal in Python
                values = values.scatter(
                    exponent,
                    pl.Series([_whole_decimal(t) for t in text.gather(exponent)], dtype=pl.Int64),
                )
        return values.alias(text.name), "unparseable_integer"
    if dtype == pl.Boolean:
        lowered = text.str.to_lowercase()
        values = (
            pl.select(
                pl.when(lowered.is_in(TRUE_TEXT))
                .then(True)
                .when(lowered.is_in(FALSE_TEXT))
                .then(False)
                .otherwise(None)
            )
            .to_series()
            .alias(text.name)
        )
        # A flag written as a number with a fraction (`1.0`, `0.0`: pandas writes a 0/1 column
        # with a missing value as floats, and a Parquet float column reads so) is the integer:
        # 1.0 is true, 0.0 false, 0.5 unparseable, as `5.0` is the integer 5.
        retry = values.is_null() & text.is_not_null()
        if retry.any():
            floats = text.cast(pl.Float64, strict=False)
            values = (
                pl.select(
                    pl.when(pl.lit(retry) & (pl.lit(floats) == 1.0))
                    .then(True)
                    .when(pl.lit(retry) & (pl.lit(floats) == 0.0))
                    .then(False)
                    .otherwise(pl.lit(values))
                )
                .to_series()
                .alias(text.name)
            )
        return values, "unparseable_boolean"
    raise TypeError(f"no parser for {dtype}")


def parse(text: pl.DataFrame, source: Source) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed columns, and the parse failures as (index, column, reason, detail)."""
    typed = {}
    failures = []
    for name, dtype in source.dtypes.items():
        values, reason = _parse_column(text[name], dtype)
        typed[name] = values.alias(name)
        if reason:
            bad = (values.is_null() & text[name].is_not_null()).arg_true()
            if len(bad):
                failures.append(
                    pl.DataFrame(
                        {
                            "index": bad.cast(pl.Int64),
                            "column": name,
                            "reason": reason,
                            "detail": text[name].gather(bad),
                        }
                    )
                )
    frame = text.select("source_file", "source_row").with_columns(**typed)
    return frame, _concat_failures(failures)


def _reason_expr() -> pl.Expr:
    """Pandera's check names mapped to stable quarantine reasons."""
    check = pl.col("check")
    return (
        pl.when(check == "not_nullable")
        .then(pl.lit("missing_required_value"))
        .when(check.str.starts_with("isin"))
        .then(pl.lit("not_an_allowed_value"))
        .when(check.str.starts_with("str_matches"))
        .then(pl.lit("malformed"))
        .when(check.str.contains(r"^(greater_than|less_than|in_range)"))
        .then(pl.lit("out_of_range"))
        .otherwise(check)  # the model's named row rules, e.g. not_self_referral
        .alias("reason")
    )


# A date bound as pandera names it in a check on polars (`1990-01-01 00:00:00.alias("datetime")
# .strict_cast(Date)`): the detail a quarantine row shows says `1990-01-01`.
_POLARS_LITERAL = r'(\d{4}-\d{2}-\d{2})(?: 00:00:00)?\.alias\("[^"]*"\)(?:\.strict_cast\(\w+\))?'


def _check_in_words(check: pl.Expr) -> pl.Expr:
    """Pandera's name of a check as a quarantine detail shows it: a date bound as written
    (`_POLARS_LITERAL`), a pattern in words (`contracts.PATTERN_WORDS`)."""
    check = check.str.replace_all(_POLARS_LITERAL, "$1")
    for pattern, words in PATTERN_WORDS.items():
        check = check.str.replace(
            f"str_matches('{pattern}')", f"str_matches({words})", literal=True
        )
    return check


def validate(typed: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Run the Pandera contract; failures as (index, column, reason, detail)."""
    try:
        source.model.validate(typed, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        # Schema-level problems without a row index (wrong dtype) are bugs in parsing, not data.
        unindexed = cases.filter(pl.col("index").is_null())
        if unindexed.height:
            raise IngestError(
                f"{source.name}: contract failures without a row: {unindexed.to_dicts()}"
            ) from errors
        frame_rule = pl.col("schema_context") == "DataFrameSchema"
        failures = cases.select(
            pl.col("index").cast(pl.Int64),
            pl.when(frame_rule).then(None).otherwise(pl.col("column")).alias("column"),
            _reason_expr(),
            _check_in_words(pl.col("check")).alias("check"),
            frame_rule.alias("row_rule"),
            pl.col("failure_case").fill_null("null").alias("value"),
        )
        return _bad_handles_named(_with_detail_in_words(failures), typed)
    return _concat_failures([])


def _with_detail_in_words(failures: pl.DataFrame) -> pl.DataFrame:
    """The failures with a detail in words, the value quoted (`fax` is not one of web, mobile,
    store, app), where Pandera's name of the check read `isin(['web', ...]): fax` (a review).
    A row rule says what the row lacks (`contracts.ROW_RULE_WORDS`), where the detail repeated
    the row's JSON, which raw_values holds. Worded once per distinct check, then joined."""
    kinds = failures.select("check", "row_rule").unique()
    said = pl.DataFrame(
        [
            {"check": check, "row_rule": row_rule, **_check_words(check, row_rule)}
            for check, row_rule in kinds.iter_rows()
        ],
        schema={
            "check": pl.String,
            "row_rule": pl.Boolean,
            "before": pl.String,
            "after": pl.String,
        },
    )
    return (
        failures.join(
            said, on=["check", "row_rule"], how="left", nulls_equal=True, maintain_order="left"
        )
        .with_columns(
            pl.when(pl.col("after").is_null())
            .then(pl.col("before"))
            .otherwise(pl.concat_str("before", "value", "after"))
            .alias("detail")
        )
        .select("index", "column", "reason", "detail")
    )


_CHECK_WORDS = {
    "isin": "` is not one of {}",
    "greater_than_or_equal_to": "` is below the lowest accepted value, {}",
    "less_than_or_equal_to": "` is above the highest accepted value, {}",
    "greater_than": "` is not above {}",
    "in_range": "` is outside {}",
    "str_matches": "` is not {}",
}


def _check_words(check: str, row_rule: bool) -> dict[str, str | None]:
    """A check's words around the value (`before`, `after`; no value when `after` is None)."""
    name, _, argument = check.partition("(")
    argument = argument.removesuffix(")")
    if row_rule:
        if name in ROW_RULE_WORDS:
            return {"before": ROW_RULE_WORDS[name], "after": None}
    elif check == "not_nullable":
        return {"before": "no value, where one is required", "after": None}
    elif name in _CHECK_WORDS:
        if name == "isin":
            argument = re.sub(r"[\[\]']", "", argument)
        if name == "in_range":
            argument = argument.replace(", ", " to ", 1)
        return {"before": "`", "after": _CHECK_WORDS[name].format(argument)}
    return {"before": f"{check}: ", "after": ""}


def _bad_handles_named(failures: pl.DataFrame, typed: pl.DataFrame) -> pl.DataFrame:
    """The `social_handles_well_formed` failures with the column named and the first entry
    that is no handle in the detail. Pandera's detail of a row rule is the whole row as JSON,
    which did not say which of `@ann;@ann-lee` was refused. The failures keep their order."""
    rule = pl.col("reason") == "social_handles_well_formed"
    if not failures.select(rule.any()).item():
        return failures
    first_bad = (
        typed["social_handles"]
        .gather(failures["index"])
        .str.split(LIST_SEPARATOR)
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(~pl.element().str.contains(HANDLE_PATTERN)))
        .list.first()
    )
    return failures.with_columns(
        pl.when(rule).then(pl.lit("social_handles")).otherwise(pl.col("column")).alias("column"),
        pl.when(rule)
        .then(
            pl.format(
                "`{}` is not a handle (an optional @, then 1-64 letters, digits, _ or .)",
                pl.lit(first_bad),
            )
        )
        .otherwise(pl.col("detail"))
        .alias("detail"),
    )


def _concat_failures(parts: list[pl.DataFrame]) -> pl.DataFrame:
    schema = {"index": pl.Int64, "column": pl.String, "reason": pl.String, "detail": pl.String}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat([p.select(list(schema)).cast(schema) for p in parts])


def quarantine_rows(
    raw: pl.DataFrame, failures: pl.DataFrame, source: Source, run_id: str, at: datetime
) -> pl.DataFrame:
    """One quarantine row per failing raw row: first reason by priority, all reasons listed."""
    if failures.height == 0:
        return empty_quarantine()
    column_order = {name: i for i, name in enumerate(source.columns)}
    ranked = failures.with_columns(
        pl.col("reason")
        .replace_strict(REASON_PRIORITY, default=ROW_RULE_PRIORITY, return_dtype=pl.Int64)
        .alias("priority"),
        pl.col("column")
        .replace_strict(column_order, default=len(column_order), return_dtype=pl.Int64)
        .alias("column_rank"),
    ).sort("index", "priority", "column_rank", "reason")
    per_row = ranked.group_by("index", maintain_order=True).agg(
        pl.col("column").first(),
        pl.col("reason").first(),
        pl.col("detail").first(),
        pl.concat_str(pl.col("column").fill_null("row"), pl.lit(":"), pl.col("reason"))
        .unique(maintain_order=True)
        .alias("reasons"),
    )
    # Only the failing rows are looked up and encoded as JSON (a batch has millions of good ones).
    # Gathered first: a struct of every row of the batch cost 0.4 CPU-s over 10M orders.
    raw_rows = raw.select(
        pl.col("source_file", "source_row", *source.columns).gather(per_row["index"])
    ).select(
        "source_file",
        "source_row",
        pl.struct(source.columns).struct.json_encode().alias("raw_values"),
    )
    return pl.concat([per_row, raw_rows], how="horizontal").select(
        pl.lit(source.name).alias("source"),
        "source_file",
        "source_row",
        "column",
        "reason",
        "detail",
        "reasons",
        "raw_values",
        pl.lit(run_id).alias("run_id"),
        pl.lit(at).cast(pl.Datetime("us")).alias("quarantined_at"),
    )


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "source": pl.String,
            "source_file": pl.String,
            "source_row": pl.Int64,
            "column": pl.String,
            "reason": pl.String,
            "detail": pl.String,
            "reasons": pl.List(pl.String),
            "raw_values": pl.String,
            "run_id": pl.String,
            "quarantined_at": pl.Datetime("us"),
        }
    )


IN_FUTURE = "in_future"  # the reason of a date after the run's time (plus FUTURE_TOLERANCE)


def future_failures(typed: pl.DataFrame, source: Source, now: datetime) -> pl.DataFrame:
    """Timestamps and dates later than `now` (the run's time, UTC) plus FUTURE_TOLERANCE."""
    limit = now + FUTURE_TOLERANCE
    failures = []
    for name, dtype in source.dtypes.items():
        if dtype.base_type() not in (pl.Datetime, pl.Date):
            continue
        if dtype.base_type() == pl.Datetime:
            bound, shown = limit, "%Y-%m-%d %H:%M:%S"
        else:
            bound, shown = limit.date(), "%Y-%m-%d"
        bad = (typed[name] > bound).arg_true()
        if len(bad):
            failures.append(
                pl.DataFrame(
                    {
                        "index": bad.cast(pl.Int64),
                        "column": name,
                        "reason": IN_FUTURE,
                        "detail": typed[name].gather(bad).dt.to_string(shown)
                        + f" is after the run's time {now:%Y-%m-%d %H:%M} UTC plus "
                        f"{FUTURE_TOLERANCE.days} day",
                    }
                )
            )
    return _concat_failures(failures)


def row_problem_failures(raw: pl.DataFrame) -> pl.DataFrame:
    """Rows whose fields cannot be trusted as read (`row_problem`: fewer fields than the header)."""
    problem = raw[ROW_PROBLEM]
    bad = problem.is_not_null().arg_true()
    if not len(bad):
        return _concat_failures([])
    return _concat_failures(
        [
            pl.DataFrame(
                {
                    "index": bad.cast(pl.Int64),
                    "column": pl.repeat(None, len(bad), dtype=pl.String, eager=True),
                    "reason": "wrong_field_count",
                    "detail": problem.gather(bad),
                }
            )
        ]
    )


def check_batch(
    raw: pl.DataFrame, source: Source, run_id: str, at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a batch of raw text rows into (typed good rows, quarantine rows). `at` is the run's
    time (UTC): the quarantine's time and the bound of `in_future`."""
    text = normalise_text(raw, source)
    typed, parse_failures = parse(text, source)
    # Text that failed to parse is NULL now: the NULL is not a second failure of the same cell.
    check_failures = validate(typed, source).join(
        parse_failures.select("index", "column"),
        on=["index", "column"],
        how="anti",
        nulls_equal=False,
    )
    failures = pl.concat(
        [
            row_problem_failures(raw),
            parse_failures,
            check_failures,
            future_failures(typed, source, at),
        ]
    )
    good = typed
    if failures.height:
        bad = pl.repeat(False, typed.height, dtype=pl.Boolean, eager=True)
        good = typed.filter(~bad.scatter(failures["index"], True))
    return good, quarantine_rows(raw, failures, source, run_id, at)


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
    exports: list[ExportFile], source: Source, rows_read: dict[str, int]
) -> Iterator[pl.DataFrame]:
    """The files' rows in batches of BATCH_ROWS (the last one smaller), files in order, rows in
    file order; counts rows per file. A file larger than a batch is cut across batches (slices,
    no copy), so one big export is appended while its next part is validated."""
    pending: list[pl.DataFrame] = []
    rows = 0
    for i, export in enumerate(exports):
        try:
            frame, _ = read_raw(export, source)
        except IngestError as error:
            _refuse_all([error], exports[i + 1 :], source)
        rows_read[export.relpath] = frame.height
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


def _refuse_all(refused: list[IngestError], rest: list[ExportFile], source: Source) -> NoReturn:
    """Raise one IngestError naming every file refused while its rows are read: the files
    after the first refused one (`rest`) are read too, only to find theirs, so a sender fixes
    them all at once rather than one per run (as `check_headers` does for the headers). The
    caller's transaction then rolls back: nothing is staged."""
    refused = refused + rows_refused(rest, source)
    said = sorted(str(error) for error in refused)  # in path order, as the files are read
    raise refused_error(said, source) from None


def rows_refused(exports: list[ExportFile], source: Source) -> list[IngestError]:
    """The files refused for their rows (`read_raw`'s refusals), each file read whole: for the
    message of a run that fails anyway, naming every file to fix."""
    refused = []
    for export in exports:
        try:
            read_raw(export, source)
        except IngestError as error:
            refused.append(error)
    return refused


def ingest_source(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    source_name: str,
    run_id: str | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Bring a source's new and changed export files into `staging.<source>` (see module doc).

    `now` is the run's time (naive UTC; default: the clock): quarantine rows carry it, and
    timestamps later than it plus FUTURE_TOLERANCE are quarantined as `in_future`.
    """
    started = time.perf_counter()
    source = SOURCES[source_name]
    run_id = run_id or uuid.uuid4().hex
    report = IngestReport(source=source.name, run_id=run_id)
    at = now if now is not None else datetime.now(UTC).replace(tzinfo=None)
    ensure_staging(con)
    # The Spark engine's list of erased people, written again if it misses some (erasures logged
    # before registers existed). A salt that did not make the logged hashes is left to `_stage`,
    # which refuses it as soon as it reads a file.
    with suppress(erasure.ErasureError):
        erasure.refresh_register(con)
    # A working database started anew beside the register of the old one: the people erased
    # there stay out (a backup from before some erasures is refused, saying what to do).
    report.erasures_adopted = erasure.adopt_register(con)

    # Each file taken in, by where it is now (`moved_to`, else the path it was taken in from).
    known = {path: record for (of, path), record in taken_in(con).items() if of == source.name}
    exports = discover_files(Path(data_dir), source)
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
            if current_rules and previous.stat == export.stat:
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
            # A moved file that changed (or is taken in again): its rows take its new path
            # first, then it replaces them there, as a changed file does where it was taken in.
            settle = settle or previous.source_file != export.relpath
            done: Future[str] = Future()
            done.set_result(digest)
            todo.append((export, done))
            report.files_replaced.append(export.relpath)
        if settle:
            _settle_moves(con, source)
        try:
            if todo:
                with _one_duckdb_thread(con):
                    _stage(con, source, todo, report, run_id, at)
            # This ingest's duplicates (and any a run stopped after its commit left uncompared)
            # compared with the rows staged for their keys: after the commit, with DuckDB's
            # threads (its join reads every staged key: 10M orders, 1.3 s on one thread, 0.45
            # on two).
            compare_repeats(con, source, run_id or "", report)
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


def _stage(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    todo: list[tuple[ExportFile, Future[str]]],
    report: IngestReport,
    run_id: str,
    at: datetime,
) -> None:
    table = source.name
    columns = ",".join([*source.columns, "source_file", "source_row"])
    todo = sorted(todo, key=lambda item: item[0].relpath)  # the order duplicates are ranked in
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
    hashes = erasure.erased_subject_hashes(con)
    salt = erasure.resolve_salt(con) if hashes else ""
    if hashes:
        erasure.erased_subject_hashes(con, salt)
    suppressed: dict[str, int] = {}
    erased_profiles: list[pl.DataFrame] = []  # erased customer profiles read again
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
                for raw in _batches(exports, source, rows_read):
                    if hashes:
                        raw = _suppress_erased(
                            raw, table, hashes, salt, suppressed, erased_profiles
                        )
                    good, bad = check_batch(raw, source, run_id, at)
                    del raw
                    quarantined.append(bad)
                    # Split and converted here, not on the appending thread (the busier one).
                    appender.put(*_split_repeated(good, source, keys))
                    del good
            del keys

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
            if report.files_replaced:
                report.duplicates_restaged = restage_orphaned_duplicates(con, source, run_id, at)
                report.keys_withdrawn = _withdrawn_keys(con, source, files)
                for file in set(report.keys_withdrawn) & set(report.restaged_for_rules):
                    report.keys_withdrawn[file]["rules"] = STAGING_RULES  # not the file
                _compare_again(con, source, report.files_replaced)

            staged_per_file = dict(
                con.execute(
                    load_sql("staging/count_staged_rows_per_file", table=table), {"files": files}
                ).fetchall()
            )
            quarantined_per_file = dict(bad_rows.group_by("source_file").len().iter_rows())
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


def _suppress_erased(
    raw: pl.DataFrame,
    table: str,
    hashes: set[str],
    salt: str,
    counts: dict[str, int],
    profiles: list[pl.DataFrame],
) -> pl.DataFrame:
    """Drop the rows of erased people from a raw batch, counting them per file; the customer
    profiles dropped are added to `profiles` (their keys are kept by hash:
    `erasure.record_erased_profiles`)."""
    shifted = raw[ROW_PROBLEM].is_not_null() if ROW_PROBLEM in raw.columns else None
    kept, dropped = erasure.drop_erased(raw, table, hashes, salt, shifted)
    for name, n in dropped.items():
        counts[name] = counts.get(name, 0) + n
    if dropped and table == "customers":
        profiles.append(erasure.dropped_rows(raw, kept))
    return kept


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
    con: duckdb.DuckDBPyConnection, source: Source, files: list[str], shown: int = 5
) -> dict:
    """Per changed file whose keys staged before no file stages now: how many it no longer holds
    (`keys`, the first `shown` in `first`, in the file's old row order), and how many it still
    holds in a row quarantined now (`quarantined`, `quarantined_first`): a row that became bad
    is no row taken away. And per changed file whose keys staged before another of this run's
    `files` stages now, with that row's values (`moved`, `moved_first`, `moved_to`: the files):
    a key whose buyer or amount may have changed, said like the keys restaged from a repeat."""
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
    rows = con.execute(
        sql, {"source": source.name, "invisible": INVISIBLE_PATTERN, "shown": shown, **names}
    ).fetchall()
    moved = con.execute(
        sql_template("staging/moved_keys").format(
            key=_key_sql(source), table=quote_identifier(source.name)
        ),
        {"files": files, "shown": shown},
    ).fetchall()
    con.execute(load_sql("staging/drop_replaced_keys"))
    withdrawn: dict[str, dict] = {}
    for file, gone, first, quarantined, quarantined_first in rows:
        withdrawn[file] = {"keys": gone, "first": first or []}
        if quarantined:
            withdrawn[file] |= {"quarantined": quarantined, "quarantined_first": quarantined_first}
    for file, count, first, to in moved:
        said = withdrawn.setdefault(file, {"keys": 0, "first": []})
        said |= {"moved": count, "moved_first": first, "moved_to": to}
    return withdrawn


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


def copy_message(file: str, other: str) -> str:
    """What a run says of a file whose content is that of another export file."""
    return (
        f"{file} holds the same content as {other}: its rows are quarantined as duplicate_key "
        f"(each key is staged once); remove one of the two if the export was dropped twice"
    )


def mostly_quarantined_message(
    file: str, read: int, quarantined: int, where: str = "staging.quarantine"
) -> str | None:
    """What the CLI says of a file at least half of whose rows were quarantined (None for one
    that is not): a whole export can fail its contract (dates as 11/01/2025), and a run that
    only counted it published a month without it. `where`: where the quarantine is read (the
    Spark engine's is a folder of its lake)."""
    if not read or quarantined * 2 < read:
        return None
    return (
        f"{file}: {quarantined:,} of {read:,} rows quarantined; {where} says why "
        "(fix the export and drop it again: the changed file replaces its rows; a row "
        "quarantined as duplicate_key repeats a key staged from another file, which a later "
        "file never replaces: to correct it, change the file it was staged from)"
    )


def source_of(file: str) -> str:
    """The source an export file was read for: the first folder of its path (`discover_files`
    names each file from the exports folder: `<source>/...`)."""
    return file.split("/", 1)[0]


SHOWN_COLUMNS = 10  # ignored columns named in a warning (a wide export has thousands)


def ignored_columns_message(source: str, file: str, columns: list[str]) -> str:
    """What the CLI says of a file's columns that the source's contract does not know: the
    first SHOWN_COLUMNS of them, and how many there are when there are more."""
    named = ", ".join(columns[:SHOWN_COLUMNS])
    if len(columns) > SHOWN_COLUMNS:
        named += f", ... ({len(columns):,} in all)"
    return (
        f"{file}: column(s) {named} ignored: not columns of {source} "
        "(docs/CONTRACTS.md lists them; a column named differently is not read)"
    )


def file_warnings(
    ignored: dict[str, list[str]],
    quarantined: dict[str, list[int]],
    copies: dict[str, str] | None = None,
    where: str = "staging.quarantine",
) -> list[str]:
    """What a run says of its files from a staging step's metadata (`ignored_columns`,
    `quarantined_by_file`, `copies_of_earlier_files`), on either engine: each file's columns
    its contract ignores, then each file at least half quarantined, unless it is a resent copy
    (said as a copy, `copy_message`). `where`: as `mostly_quarantined_message`'s."""
    said = [ignored_columns_message(source_of(f), f, c) for f, c in ignored.items()]
    for file, (read, lost) in quarantined.items():
        mostly = (
            None if file in (copies or {}) else mostly_quarantined_message(file, read, lost, where)
        )
        if mostly:
            said.append(mostly)
    return said


def adopted_message(hashes: int) -> str:
    """What a run says when its ingest took erasures from the register (`adopt_register`)."""
    return (
        f"{hashes} erased people's keys taken from the register beside the working database "
        "(it was started anew): their rows in the exports are kept out, as before"
    )


def moved_message(moved: dict[str, str]) -> str:
    """What a run says of export files found at a new path with the content they were taken in
    with (moved or renamed): not read again."""
    said = []
    away = sorted((path, origin) for path, origin in moved.items() if path != origin)
    if away:
        (first, origin), more = away[0], _more(len(away))
        said.append(f"moved, not read again: {first} (taken in as {origin}){more}")
    back = sorted(path for path, origin in moved.items() if path == origin)
    if back:  # moved away by an earlier run, now where it was taken in from
        said.append(f"back where taken in, not read again: {back[0]}{_more(len(back))}")
    return (
        "; ".join(said) + "; their rows keep the path they were staged from "
        "(staging.ingested_files.moved_to says where each file is now)"
    )


def _more(count: int) -> str:
    return f" and {count - 1} more" if count > 1 else ""


def rules_message(files: dict[str, int]) -> str:
    """What a run says of unchanged files taken in again under the ingest's current rules
    (files per source)."""
    counts = ", ".join(f"{source} {n}" for source, n in sorted(files.items()))
    return (
        f"taken in again under the ingest's current rules (version {STAGING_RULES}), though "
        f"unchanged: {counts} file(s), taken in by an earlier version of Engagement Box; their "
        "rows now read as docs/CONTRACTS.md says"
    )


def withdrawn_message(source: str, file: str, withdrawn: dict) -> str:
    """What a run says of a changed file whose keys staged before no file stages now: those it
    no longer holds, and those it holds in a row quarantined now; and of its keys staged now
    from another file taken in by the run."""

    def keys(count: int, first: list) -> str:
        listed = ", ".join(str(k).replace("\x1f", " ") for k in first)
        return f"(keys {listed}{', ...' if count > len(first) else ''})"

    # An unchanged file taken in again under the ingest's current rules: the rules, not the
    # file, moved its rows ("changed" sent a user looking for an edit no one made).
    rules = withdrawn.get("rules")
    said = []
    no_longer = (
        f"{file}, unchanged, read under the ingest's current rules (version {rules}), no longer "
        "gives"
        if rules
        else f"{file} changed and no longer holds"
    )
    if withdrawn["keys"]:
        said.append(
            f"{no_longer} {withdrawn['keys']:,} of the rows it staged "
            f"before {keys(withdrawn['keys'], withdrawn['first'])}: they left staging.{source} "
            "and every table computed from it. A file's rows are replaced when it changes: if "
            "they should stay, put them back in it or in a new file"
        )
    quarantined = withdrawn.get("quarantined", 0)
    if quarantined:
        head = (
            f"{file}, unchanged, read under the ingest's current rules (version {rules}):"
            if rules
            else f"{file} changed:"
        )
        said.append(
            f"{head} {quarantined:,} of its rows staged before are now quarantined "
            f"{keys(quarantined, withdrawn['quarantined_first'])}: they left staging.{source} "
            "and every table computed from it; staging.quarantine says why (docs/CONTRACTS.md "
            "gives the rules), correct them in the file"
        )
    moved = withdrawn.get("moved", 0)
    if moved:
        whose = "that file's" if len(withdrawn["moved_to"]) == 1 else "those files'"
        # The file's own row for such a key is gone, or quarantined now (a bad row, or the
        # repeat of the other file's row): staging.quarantine tells which.
        head = (
            f"{file}, unchanged, read under the ingest's current rules (version {rules}):"
            if rules
            else f"{file} changed, and"
        )
        said.append(
            f"{head} {moved:,} of the keys it staged before "
            f"{keys(moved, withdrawn['moved_first'])} are now staged from "
            f"{', '.join(withdrawn['moved_to'])}: {whose} rows count now for those keys in "
            f"staging.{source}, and their values may differ from those {file} had (its own "
            "row is gone, or quarantined now: staging.quarantine says why)"
        )
    return "; ".join(said)


def restaged_message(source: str, restaged: dict[str, int]) -> str:
    """What a run says when keys a changed file no longer stages were staged again from the row
    that repeated them in another file (`restage_orphaned_duplicates`): that row's values now
    count, and they may differ from the ones the changed file had."""
    files = ", ".join(f"{file} {rows:,}" for file, rows in sorted(restaged.items()))
    total = sum(restaged.values())
    return (
        f"{total:,} key(s) of staging.{source} that a changed file no longer holds are staged "
        f"again from the row that repeated them in another file ({files}): that row's values "
        "count now, and may differ from those the changed file had (staging.quarantine held it "
        "as duplicate_key)"
    )


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


def _orphan_parameters(source: Source) -> dict:
    return {"source": source.name, "key_paths": [f"$.{c}" for c in source.key_columns]}


def orphaned_duplicates(con: duckdb.DuckDBPyConnection, source_name: str) -> int:
    """Rows quarantined as duplicate_key whose key is staged nowhere (must be 0: a key is always
    staged once when it was read at all, unless every row of it broke the contract)."""
    source = SOURCES[source_name]
    rows = con.execute(
        sql_template("staging/count_orphaned_duplicates").format(orphans=_orphans_sql(source)),
        _orphan_parameters(source),
    ).fetchone()
    return int(rows[0]) if rows else 0


def restage_orphaned_duplicates(
    con: duckdb.DuckDBPyConnection, source: Source, run_id: str, at: datetime
) -> dict[str, int]:
    """Stage again the first quarantined duplicate of each key that is staged nowhere now (its
    first occurrence was in a file that changed and dropped it). Its values are those it was
    quarantined with (typed as staged, then as text), checked again against the contract.
    Returns the rows moved per file; the files' counts in `staging.ingested_files` follow."""
    rows = con.execute(_orphans_sql(source), _orphan_parameters(source)).pl()
    if not rows.height:
        return {}
    values = (
        rows["raw_values"]
        .str.json_decode(dtype=pl.Struct({c: pl.String for c in source.columns}))
        .struct.unnest()
    )
    raw = pl.concat(
        [rows.select("source_file", "source_row"), values], how="horizontal"
    ).with_columns(pl.lit(None, dtype=pl.String).alias(ROW_PROBLEM))
    # The first row of each key (files in path order, then rows) is staged; the rest stay.
    first = key_text(raw, source).is_first_distinct()
    rest, raw = raw.filter(~first), raw.filter(first)
    good, bad = check_batch(raw, source, run_id, at)
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
    rows = con.execute(sql, {**_orphan_parameters(source), "files": files}).pl()
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
# is staged): the run warns of them (`profile_changes`).
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
    others = [c for c in source.columns if c not in source.key_columns]
    if not repeated.height or not staged.height:
        return {}
    joined = _with_staged(source, repeated, staged)
    # A key repeated within the file it was staged from is a plain duplicate: not a later
    # export's change (the row staged first in that file stays, as for any source).
    joined = joined.filter(pl.col("source_file") != pl.col("_from"))
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}__staged")) for c in others])
    withdrawn = (
        (pl.col(f"{CONSENT}__staged") & ~pl.col(CONSENT)).fill_null(False)
        if CONSENT in others
        else pl.lit(False)
    )
    changed = joined.filter(differs).with_columns(withdrawn.alias("_withdrawn"))
    found: dict[str, dict] = {}
    for (file,), part in changed.sort("source_file", "source_row").group_by(
        "source_file", maintain_order=True
    ):
        gone = part.filter("_withdrawn")
        found[str(file)] = {
            "rows": part.height,
            "first": key_text(part, source).head(shown).to_list(),
            "consent_withdrawn": gone.height,
            "withdrawn_first": key_text(gone, source).head(shown).to_list(),
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


def profile_changes_message(file: str, changes: dict) -> str:
    """What a run says of a profiles file whose repeated rows differ from the staged profiles."""

    def keys(first: list, count: int) -> str:
        return ", ".join(map(str, first)) + (", ..." if count > len(first) else "")

    rows = changes["rows"]
    said = (
        f"{file}: {rows:,} row(s) change a profile staged from an earlier file "
        f"({keys(changes['first'], rows)}) and are NOT applied: a key repeated in a later file "
        "is quarantined as duplicate_key, the profile staged first stays"
    )
    withdrawn = changes.get("consent_withdrawn", 0)
    if withdrawn:
        said += (
            f"; among them {withdrawn:,} withdraw marketing consent "
            f"({keys(changes['withdrawn_first'], withdrawn)}), and those people stay in the "
            "audiences"
        )
    return said + (
        ". To apply a change, write it into the file the profile was staged from "
        "(staging.customers.source_file): a changed file replaces its rows (export the "
        "customers to one file name, replaced each time)"
    )


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
