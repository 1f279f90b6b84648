"""Ingest raw exports into the staging layer: read, parse, validate, quarantine, stage.

The rule this module keeps: every raw row read ends up either in `staging.<source>` or in
`staging.quarantine` with a reason, and a source's tables change in one transaction or not at all.

How a source is ingested (`ingest_source`):
1. List the export files under `<data_dir>/<source>/` (`.csv` and `.parquet`; anything else is an
   error naming the file). A file whose path and content hash were ingested before is skipped; a
   file whose content changed replaces the rows it staged before.
2. Read each file as text (header names trimmed and lower-cased, a UTF-8 BOM dropped). A missing
   required column or an unreadable file raises `IngestError` naming the file, before any table
   is touched.
3. Parse each column to the type its contract declares; text that does not parse is a failure
   (`unparseable_<type>`), never a silent NULL. Validate the typed rows with the Pandera model.
4. In one DuckDB transaction: drop rows of changed files, quarantine repeated keys (the first
   occurrence by file path and row wins), insert the good rows and the quarantine rows, record the
   files. Then check the reconciliation inside the transaction and roll back if it does not hold.

No Dagster import: the assets in `assets/ingest.py` are a thin layer over `ingest_source`.
"""

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandera.errors as pa_errors
import polars as pl

from pipelines.contracts import MONEY_DUCKDB_TYPE, SOURCES, Source
from pipelines.sql import load_sql, quote_identifier

SUPPORTED_SUFFIXES = (".csv", ".parquet")
# Rows per validation batch: bounds memory on big drops while keeping per-batch overhead small.
BATCH_ROWS = 2_000_000

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
    "%Y-%m-%d",
)
TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")

# Order in which failures of one row are reported: the first becomes the row's `reason`.
REASON_PRIORITY = {
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
}
ROW_RULE_PRIORITY = 6  # dataframe-level rules (e.g. not_self_referral) come last


class IngestError(Exception):
    """A file cannot be ingested at all (unreadable, wrong type, missing columns)."""


@dataclass(frozen=True)
class ExportFile:
    source: str
    path: Path
    relpath: str
    size_bytes: int
    mtime_ns: int


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
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


# ----------------------------------------------------------------------------------------------
# Files


def discover_files(data_dir: Path, source: Source) -> list[ExportFile]:
    """The export files of a source, in path order. Hidden files are ignored."""
    folder = Path(data_dir) / source.name
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(data_dir).as_posix()
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise IngestError(
                f"{rel}: unsupported file type {path.suffix or '(none)'!r}; "
                f"exports must be {' or '.join(SUPPORTED_SUFFIXES)}"
            )
        stat = path.stat()
        files.append(ExportFile(source.name, path, rel, stat.st_size, stat.st_mtime_ns))
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_raw(export: ExportFile, source: Source) -> tuple[pl.DataFrame, list[str]]:
    """The file's rows as text, in contract column order, with `source_file` and `source_row`.

    Returns the frame and the names of columns the contract does not know (ignored, reported).
    `source_row` is the 1-based record number (1 = first data row; a CSV's header is not counted).
    """
    try:
        if export.path.suffix.lower() == ".csv":
            frame = pl.read_csv(
                export.path, infer_schema=False, encoding="utf8", raise_if_empty=False
            )
        else:
            frame = pl.read_parquet(export.path)
            frame = frame.with_columns(pl.all().cast(pl.String))
    except Exception as exc:  # polars raises several types; all mean the same to a user
        raise IngestError(f"{export.relpath}: unreadable {export.path.suffix} file: {exc}") from exc

    renamed = {c: c.replace("\ufeff", "").strip().lower() for c in frame.columns}
    frame = frame.rename(renamed)
    missing = [c for c in source.required_columns if c not in frame.columns]
    if missing:
        raise IngestError(
            f"{export.relpath}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(frame.columns) or 'no header'})"
        )
    extra = [c for c in frame.columns if c not in source.columns]
    frame = frame.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in source.columns if c not in frame.columns]
    )
    frame = frame.select(
        pl.lit(export.relpath).alias("source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row"),
        *source.columns,
    )
    return frame, extra


# ----------------------------------------------------------------------------------------------
# Parsing and validation (pure, on polars frames)


def normalise_text(raw: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Trim every value, make empty text NULL, fold the case of enumerations and codes."""
    exprs = []
    for name in source.columns:
        col = pl.col(name).str.strip_chars()
        col = pl.when(col.str.len_bytes() == 0).then(None).otherwise(col)
        if name in source.casefold:
            col = col.str.to_lowercase()
        if name in source.upcase:
            col = col.str.to_uppercase()
        exprs.append(col.alias(name))
    return raw.with_columns(exprs)


def _parse_timestamps(text: pl.Series) -> pl.Series:
    text = text.str.replace(r"^(\d{4}-\d{2}-\d{2})T", "$1 ")
    parsed = text.str.strptime(pl.Datetime("us"), TIMESTAMP_FORMATS[0], strict=False)
    todo = parsed.is_null() & text.is_not_null()
    if not todo.any():
        return parsed
    rest = text.filter(todo)
    candidates = []
    for fmt in TIMESTAMP_FORMATS[1:]:
        attempt = rest.str.strptime(
            pl.Datetime("us", "UTC") if "z" in fmt else pl.Datetime("us"), fmt, strict=False
        )
        if attempt.dtype.time_zone is not None:  # type: ignore[union-attr]
            attempt = attempt.dt.replace_time_zone(None)
        candidates.append(attempt)
    filled = pl.select(pl.coalesce(candidates)).to_series()
    return parsed.scatter(todo.arg_true(), filled)


def _parse_column(text: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, str]:
    """Parse one text column; returns the typed column and the reason to give a failure."""
    if dtype == pl.String:
        return text, ""
    if dtype == pl.Datetime:
        return _parse_timestamps(text), "unparseable_timestamp"
    if dtype == pl.Date:
        return _parse_timestamps(text).dt.date(), "unparseable_date"
    if dtype == pl.Float64:
        values = text.cast(pl.Float64, strict=False)
        return values.set(~values.is_finite().fill_null(True), None), "unparseable_number"
    if dtype == pl.Int64:
        return text.cast(pl.Int64, strict=False), "unparseable_integer"
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
        return cases.select(
            pl.col("index").cast(pl.Int64),
            pl.when(frame_rule).then(None).otherwise(pl.col("column")).alias("column"),
            _reason_expr(),
            pl.concat_str(
                pl.col("check"), pl.lit(": "), pl.col("failure_case").fill_null("null")
            ).alias("detail"),
        )
    return _concat_failures([])


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
    raw_rows = raw.with_row_index("index").select(
        pl.col("index").cast(pl.Int64),
        "source_file",
        "source_row",
        pl.struct(source.columns).struct.json_encode().alias("raw_values"),
    )
    return per_row.join(raw_rows, on="index", how="left").select(
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


def check_batch(
    raw: pl.DataFrame, source: Source, run_id: str, at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a batch of raw text rows into (typed good rows, quarantine rows)."""
    text = normalise_text(raw, source)
    typed, parse_failures = parse(text, source)
    # Text that failed to parse is NULL now: the NULL is not a second failure of the same cell.
    check_failures = validate(typed, source).join(
        parse_failures.select("index", "column"),
        on=["index", "column"],
        how="anti",
        nulls_equal=False,
    )
    failures = pl.concat([parse_failures, check_failures])
    bad_index = failures["index"].unique()
    good = typed.filter(~pl.int_range(0, pl.len(), dtype=pl.Int64).is_in(bad_index.implode()))
    return good, quarantine_rows(raw, failures, source, run_id, at)


# ----------------------------------------------------------------------------------------------
# The warehouse side


def ensure_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Create the staging schema, bookkeeping tables and every source's staged table."""
    con.execute(load_sql("staging/create_schema"))
    con.execute(load_sql("staging/create_quarantine"))
    con.execute(load_sql("staging/create_ingested_files"))
    for source in SOURCES.values():
        con.execute(staged_table_ddl(source))


def staged_table_ddl(source: Source) -> str:
    """CREATE TABLE for a source, derived from its contract (identifiers from the allow-list)."""
    columns = [
        f"{quote_identifier(name)} "
        + (MONEY_DUCKDB_TYPE if name in source.money else DUCKDB_TYPES[dtype.base_type()])  # type: ignore[index]
        + ("" if source.schema.columns[name].nullable else " NOT NULL")
        for name, dtype in source.dtypes.items()
    ]
    columns += ['"source_file" VARCHAR NOT NULL', '"source_row" BIGINT NOT NULL']
    return (
        f"CREATE TABLE IF NOT EXISTS staging.{quote_identifier(source.name)} ({', '.join(columns)})"
    )


def _batches(
    exports: list[ExportFile], source: Source, report: IngestReport
) -> Iterator[pl.DataFrame]:
    pending: list[pl.DataFrame] = []
    rows = 0
    for export in exports:
        frame, extra = read_raw(export, source)
        if extra:
            report.ignored_columns[export.relpath] = extra
        pending.append(frame)
        rows += frame.height
        if rows >= BATCH_ROWS:
            yield pl.concat(pending)
            pending, rows = [], 0
    if pending:
        yield pl.concat(pending)


def ingest_source(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    source_name: str,
    run_id: str | None = None,
) -> IngestReport:
    """Bring a source's new and changed export files into `staging.<source>` (see module doc)."""
    started = time.perf_counter()
    source = SOURCES[source_name]
    run_id = run_id or uuid.uuid4().hex
    report = IngestReport(source=source.name, run_id=run_id)
    at = datetime.now().replace(tzinfo=None)
    ensure_staging(con)

    known = {
        row[0]: row[1:]
        for row in con.execute(
            load_sql("staging/ingested_files_for_source"), {"source": source.name}
        ).fetchall()
    }
    exports = discover_files(Path(data_dir), source)
    report.files_seen = len(exports)
    todo: list[tuple[ExportFile, str]] = []
    for export in exports:
        previous = known.get(export.relpath)
        if previous and previous[1:] == (export.size_bytes, export.mtime_ns):
            report.files_skipped += 1
            continue
        digest = file_sha256(export.path)
        if previous and previous[0] == digest:
            report.files_skipped += 1
            continue
        todo.append((export, digest))
        if previous:
            report.files_replaced.append(export.relpath)

    if todo:
        _stage(con, source, todo, report, run_id, at)
    report.quarantine_by_reason = dict(
        con.execute(load_sql("staging/quarantine_by_reason"), {"source": source.name}).fetchall()
    )
    report.seconds = time.perf_counter() - started
    return report


def _stage(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    todo: list[tuple[ExportFile, str]],
    report: IngestReport,
    run_id: str,
    at: datetime,
) -> None:
    table = source.name
    columns = ", ".join(quote_identifier(c) for c in [*source.columns, "source_file", "source_row"])
    # Read and check every file first: a file that cannot be read fails the run here, before any
    # staged table changes. Good rows wait in a temporary table, quarantine rows in memory.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE batch_rows AS "
        f"SELECT {columns} FROM staging.{quote_identifier(table)} LIMIT 0"
    )
    quarantined: list[pl.DataFrame] = []
    rows_read: dict[str, int] = {}
    for raw in _batches([e for e, _ in todo], source, report):
        for name, count in raw.group_by("source_file").len().iter_rows():
            rows_read[name] = rows_read.get(name, 0) + count
        good, bad = check_batch(raw, source, run_id, at)
        del raw
        con.register("good_rows", good)
        con.execute(f"INSERT INTO batch_rows SELECT {columns} FROM good_rows")
        con.unregister("good_rows")
        quarantined.append(bad)

    files = [e.relpath for e, _ in todo]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(load_sql("staging/delete_staged_rows_of_files", table=table), {"files": files})
        con.execute(
            load_sql("staging/delete_quarantine_of_files"), {"source": table, "files": files}
        )
        con.execute(load_sql("staging/delete_ingested_files"), {"source": table, "files": files})

        duplicates = con.execute(
            load_sql("staging/duplicate_keys", key=source.key, table=table)
        ).pl()
        if duplicates.height:
            quarantined.append(_duplicate_quarantine(con, duplicates, source, run_id, at))
            con.register("duplicate_rows", duplicates.select("source_file", "source_row"))
            con.execute(
                "DELETE FROM batch_rows USING duplicate_rows "
                "WHERE batch_rows.source_file = duplicate_rows.source_file "
                "AND batch_rows.source_row = duplicate_rows.source_row"
            )
            con.unregister("duplicate_rows")

        con.execute(
            f"INSERT INTO staging.{quote_identifier(table)} ({columns}) "
            f"SELECT {columns} FROM batch_rows ORDER BY source_file, source_row"
        )
        bad_rows = pl.concat(quarantined) if quarantined else empty_quarantine()
        con.register("bad_rows", bad_rows)
        con.execute("INSERT INTO staging.quarantine SELECT * FROM bad_rows")
        con.unregister("bad_rows")

        staged_per_file = dict(
            con.execute(
                "SELECT source_file, count(*) FROM batch_rows GROUP BY source_file"
            ).fetchall()
        )
        quarantined_per_file = dict(bad_rows.group_by("source_file").len().iter_rows())
        for export, digest in todo:
            name = export.relpath
            con.execute(
                "INSERT INTO staging.ingested_files VALUES "
                "($source, $file, $sha, $size, $mtime, $read, $staged, $quarantined, $run, $at)",
                {
                    "source": table,
                    "file": name,
                    "sha": digest,
                    "size": export.size_bytes,
                    "mtime": export.mtime_ns,
                    "read": rows_read.get(name, 0),
                    "staged": staged_per_file.get(name, 0),
                    "quarantined": quarantined_per_file.get(name, 0),
                    "run": run_id,
                    "at": at,
                },
            )
        files_count, read, staged, quarantined_count = reconcile(con, table)
        if read != staged + quarantined_count:
            raise IngestError(
                f"{table}: reconciliation failed inside the ingest transaction: read {read} rows, "
                f"staged {staged} + quarantined {quarantined_count}; nothing was changed"
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS batch_rows")

    report.files_ingested = files
    report.rows_read = sum(rows_read.values())
    report.rows_quarantined = sum(quarantined_per_file.values())
    report.rows_staged = report.rows_read - report.rows_quarantined


def _duplicate_quarantine(
    con: duckdb.DuckDBPyConnection,
    duplicates: pl.DataFrame,
    source: Source,
    run_id: str,
    at: datetime,
) -> pl.DataFrame:
    con.register("duplicate_rows", duplicates.select("source_file", "source_row", "detail"))
    rows = con.execute(
        "SELECT d.detail, b.* FROM batch_rows AS b JOIN duplicate_rows AS d "
        "USING (source_file, source_row) ORDER BY b.source_file, b.source_row"
    ).pl()
    con.unregister("duplicate_rows")
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


def reconcile(con: duckdb.DuckDBPyConnection, source_name: str) -> tuple[int, int, int, int]:
    """(files, rows read, rows staged, rows quarantined) for a source, from the tables."""
    SOURCES[source_name]  # only contract sources are tables
    row = con.execute(
        load_sql("staging/reconciliation", table=source_name), {"source": source_name}
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])
