"""Staging on Spark: the export folders read by Spark tasks, validated by the same contract code.

Each export file is one unit of work. The driver lists the files and checks every header
(`reading.check_headers`: a file that cannot be taken in fails the run, naming it, before
anything is written; the columns it names that no contract column reads are reported per
file). Spark then spreads the files over its tasks (`mapInArrow`); each task
reads its files with `reading.read_raw` and splits the rows with `validation.check_batch`, the
DuckDB engine's own functions, so the rules, the parsing and the quarantine reasons are written
once. The validated rows are written to the lake once, one folder per export file
(`ValidatedFiles`), and read back by the later passes; a file whose content, path, erasures and
code are those of its folder is not read again (a day's one new file is the only one a run
validates). Repeated keys are found by an aggregate by key over all files (the first by file
path, then row, is kept, as the DuckDB engine stages them); their quarantine rows come from
`validation.quarantine_rows`.
The reconciliation (rows read = staged + quarantined + erased) is checked before the tables are
published. The staged tables are written again from every file's validated rows on each
run that stages. The rows of people erased before (the register `engagement-box erase` writes beside
the working database, `erasure.read_register`) are dropped in the tasks before validation, as
the DuckDB engine's ingest drops them, and counted as erased.
"""

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import polars as pl
import pyarrow as pa

from engagement_box import settings
from engagement_box.clock import shop_zone
from engagement_box.governance import erasure
from engagement_box.spark.tables import write_json
from engagement_box.staging import contracts, ingestion, reading, validation
from engagement_box.staging.contracts import SOURCES, Source

# staged | quarantine | read, erased (one row per file: its rows read, or erased, in source_row)
# | carrier (a key an erased customer profile carried, by hash: `CARRIER_COLUMNS`) | refused (a
# file that cannot be taken in, its problem in `reason`)
KIND = "_kind"
REFUSED = "refused"  # the kind of the row of a file that cannot be taken in
# The kind of a file's row counting its quarantined rows with a date after the run's time among
# their reasons (the first reason may be another): a later run's clock could stage them.
FUTURE_KIND = "future"
OFFSET_KIND = "other_offset"  # a file's timestamp at another offset than UTC's
# The quarantine's own columns, named as in `staging.quarantine`; they travel beside the typed
# columns in one Arrow schema, so no source may have a column of the same name (checked).
QUARANTINE_COLUMNS = ("column", "reason", "detail", "reasons", "raw_values")
OUT_BATCH_ROWS = 65_536  # rows per Arrow batch a task hands back to the JVM
FILE_BYTES_PER_TASK = 64 * 2**20  # files are spread over more tasks than cores when large
# A carrier row's profile hash, key kind and key hash travel in these quarantine columns.
CARRIER_COLUMNS = {"reason": "profile_hash", "column": "kind", "detail": "key_hash"}
# `<lake>/tables/_validated/<source>/<entry>/`: one export file's validated rows (`ValidatedFiles`)
VALIDATED_DIR = "_validated"
ENTRY_RECORD = "_entry.json"  # Spark's reader skips names starting with "_"
ENTRY = "_entry"  # the partition column the validated rows are written by, one value per file
# `<lake>/file_arrivals/<source>.json`: when each export file still in the folder was first
# staged (`FileArrivals`). Outside `tables/`, which an erasure may delete: paths and times only.
ARRIVALS_DIR = "file_arrivals"


@dataclass
class SparkIngestReport:
    source: str
    files: int = 0
    rows_read: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    rows_erased: int = 0  # rows of people erased before, dropped unread
    rows_future: int = 0  # quarantined rows with a date after the run's time among their reasons
    files_validated: int = 0  # files read and validated by this staging (the rest: as before)
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    # As the DuckDB engine's `IngestReport` has them (the staging metadata the CLI warns from):
    # per file, the columns its contract does not know, as the file names them; and per file
    # with rows quarantined, [rows read, rows quarantined].
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    quarantined_files: dict[str, list[int]] = field(default_factory=dict)
    # (path, size, sha256) of each file read: what the version is computed from
    # (`spark/inputs.py`; by content, as the DuckDB engine knows its files: a file edited with
    # its size and time kept is another file, one sent again unchanged is the same)
    file_stats: list[tuple[str, int, str]] = field(default_factory=list)
    # Per file whose content is that of another of the source's files (by sha256), the first
    # of them in path order (its rows won): the DuckDB engine's `copies_of_earlier_files`.
    copies: dict[str, str] = field(default_factory=dict)
    # Per file of profiles: its repeated rows whose values differ from the staged profile's
    # (`ingestion.profile_changes`, the DuckDB engine's `profile_changes_not_applied`).
    profile_changes: dict[str, dict] = field(default_factory=dict)
    # (`ingestion.order_changes`, the DuckDB engine's `order_changes_not_applied`).
    order_changes: dict[str, dict] = field(default_factory=dict)
    # Per file validated by this staging whose timestamps carry an offset other than UTC's
    # while ENGAGEMENT_TIME_ZONE is not set: its first such value (`ingestion.other_offset`,
    # the DuckDB engine's `other_offsets`).
    other_offsets: dict[str, str] = field(default_factory=dict)
    # (profile hash, kind, key hash) of the keys the erased customer profiles read carried, as
    # the DuckDB engine's ingest records them (`erasure.record_erased_profiles`).
    erased_profile_keys: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.rows_read == self.rows_staged + self.rows_quarantined + self.rows_erased


def typed_schema(source: Source) -> pl.Schema:
    """The staged row's polars schema, as `check_batch` makes it (asked of the code itself)."""
    raw = pl.DataFrame(
        schema={
            "source_file": pl.String,
            "source_row": pl.Int64,
            **{c: pl.String for c in source.columns},
            contracts.ROW_PROBLEM: pl.String,
        }
    )
    good, _ = validation.check_batch(raw, source, "schema", datetime(2000, 1, 1))
    return good.select(*source.columns, "source_file", "source_row").schema


def _arrow_schema(source: Source) -> pa.Schema:
    clash = sorted(set(source.columns) & {*QUARANTINE_COLUMNS, KIND})
    if clash:
        raise ValueError(
            f"{source.name}: the columns {clash} are also quarantine columns; the Spark engine "
            "carries both in one row, so rename them in the contract"
        )
    typed = pl.DataFrame(schema=typed_schema(source)).to_arrow(compat_level=pl.CompatLevel.oldest())
    fields = list(typed.schema)
    fields += [pa.field(c, pa.string()) for c in QUARANTINE_COLUMNS if c != "reasons"]
    fields.insert(len(fields) - 1, pa.field("reasons", pa.list_(pa.string())))
    fields.append(pa.field(KIND, pa.string()))
    return pa.schema(fields)


def _validate_files(
    source_name: str,
    data_dir: str,
    run_id: str,
    at: datetime,
    plan: list[list[str]],
    erased: tuple[frozenset[str], str] = (frozenset(), ""),
    zone: str = "UTC",
    offsets: bool = False,
):
    """The mapInArrow function: task numbers in (their files in `plan`), staged / quarantine /
    read / erased rows out. `erased`: the subject hashes and salt of the people erased before.
    `zone`: the shop's time zone, read on the driver (an executor may not have its settings);
    `offsets`: whether to look for timestamps at another offset than UTC's (the zone is unset)."""
    hashes, salt = erased
    source = SOURCES[source_name]
    schema = _arrow_schema(source)
    typed_names = [*source.columns, "source_file", "source_row"]

    empty = {c: pl.lit(None, dtype=d) for c, d in typed_schema(source).items()}

    def to_batches(frame: pl.DataFrame) -> list[pa.RecordBatch]:
        # Handed to the JVM in slices: a 750,000-row batch is hundreds of MB in one buffer.
        table = frame.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema)
        return table.to_batches(max_chunksize=OUT_BATCH_ROWS) if frame.height else []

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            # The task's files validated together, as the DuckDB engine's batches are: one
            # check_batch call per task, not per file (a call has a fixed cost).
            pending: list[pl.DataFrame] = []
            relpaths = [r for task in batch.column("id").to_pylist() for r in plan[task]]
            for relpath in relpaths:
                path = Path(data_dir) / relpath
                stat = path.stat()
                export = reading.ExportFile(
                    source.name, path, relpath, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
                )
                try:
                    pending.append(reading.read_raw(export, source)[0])
                except contracts.IngestError as error:
                    # said on the driver with every other file refused (`stage_source`), as
                    # the DuckDB engine names them all at once, not the first task's alone
                    yield from to_batches(refused(relpath, str(error)))
                    continue
                example = ingestion.other_offset(pending[-1], source) if offsets else None
                if example is not None:  # the file and its value, in the row's reason
                    found = per_file({relpath: 0}, OFFSET_KIND)
                    yield from to_batches(
                        found.with_columns(reason=pl.lit(json.dumps([relpath, example])))
                    )
                if sum(r.height for r in pending) >= ingestion.BATCH_ROWS:
                    yield from checked(pending)
                    pending = []
            if pending:
                yield from checked(pending)

    def checked(raws: list[pl.DataFrame]) -> Iterator[pa.RecordBatch]:
        raw = pl.concat(raws)
        read = {r["source_file"][0]: r.height for r in raws if r.height}
        shifted = raw[contracts.ROW_PROBLEM].is_not_null()  # keys may sit in any column
        kept, erased_per_file = erasure.drop_erased(raw, source.name, hashes, salt, shifted)
        carriers = _carriers(raw, kept) if erased_per_file and source.name == "customers" else None
        raw = kept
        good, bad = validation.check_batch(raw, source, run_id, at, zone)
        staged = good.select(typed_names).with_columns(
            *[pl.lit(None, dtype=pl.String).alias(c) for c in QUARANTINE_COLUMNS],
            pl.lit("staged").alias(KIND),
        )
        staged = staged.with_columns(pl.col("reasons").cast(pl.List(pl.String)))
        quarantined = bad.select(
            *[empty[c].alias(c) for c in source.columns],
            "source_file",
            "source_row",
            *QUARANTINE_COLUMNS,
            pl.lit("quarantine").alias(KIND),
        )
        in_future = pl.element().str.ends_with(f":{validation.IN_FUTURE}")
        future = bad.filter(pl.col("reasons").list.eval(in_future).list.any())
        future_per_file = dict(future.group_by("source_file").len().iter_rows())
        parts = [
            staged,
            quarantined,
            per_file(read, "read"),
            per_file(erased_per_file, "erased"),
            per_file(future_per_file, FUTURE_KIND),
        ]
        if carriers is not None:
            parts.append(carriers)
        for part in parts:
            yield from to_batches(part.select(schema.names))

    def _carriers(raw: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
        # The erased profiles' keys, hashed in the task (no value leaves it), per file: a
        # file's validated rows are kept in its own folder (`ValidatedFiles`).
        dropped = erasure.dropped_rows(raw, kept)
        keys = pl.concat(
            [
                erasure.profile_key_hashes(rows, salt).with_columns(source_file=pl.lit(file))
                for (file,), rows in dropped.group_by("source_file")
            ],
            how="vertical_relaxed",
        )
        return keys.select(
            *[
                pl.col("source_file") if c == "source_file" else empty[c].alias(c)
                for c in typed_names
            ],
            *[
                pl.col(CARRIER_COLUMNS[c]).alias(c)
                if c in CARRIER_COLUMNS
                else pl.lit(None, dtype=pl.String).alias(c)
                for c in QUARANTINE_COLUMNS
            ],
            pl.lit("carrier").alias(KIND),
        ).with_columns(pl.col("reasons").cast(pl.List(pl.String)))

    def refused(relpath: str, problem: str) -> pl.DataFrame:
        # One row for a file that cannot be taken in, its problem in `reason`.
        return per_file({relpath: 0}, REFUSED).with_columns(reason=pl.lit(problem))

    def per_file(counts: dict[str, int], kind: str) -> pl.DataFrame:
        # One row per file, its count (rows read, or erased) in source_row.
        return (
            pl.DataFrame(
                {"source_file": list(counts), "source_row": list(counts.values())},
                schema={"source_file": pl.String, "source_row": pl.Int64},
            )
            .select(
                *[empty[c].alias(c) for c in source.columns],
                "source_file",
                "source_row",
                *[pl.lit(None, dtype=pl.String).alias(c) for c in QUARANTINE_COLUMNS],
                pl.lit(kind).alias(KIND),
            )
            .with_columns(pl.col("reasons").cast(pl.List(pl.String)))
        )

    return run


def spark_schema(source: Source):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(_arrow_schema(source))


def file_tasks(spark, exports: list[reading.ExportFile]) -> list[list[str]]:
    """The files of each task: at least one task per core, more when the files are large
    (about FILE_BYTES_PER_TASK each), so that no task holds a large share of the rows and every
    core of a cluster gets files. The largest files first, dealt round the tasks in turn."""
    total = sum(e.size_bytes for e in exports)
    count = min(
        len(exports), max(spark.sparkContext.defaultParallelism, -(-total // FILE_BYTES_PER_TASK))
    )
    plan: list[list[str]] = [[] for _ in range(count)]
    for i, export in enumerate(sorted(exports, key=lambda e: (-e.size_bytes, e.relpath))):
        plan[i % count].append(export.relpath)
    return plan


def stage_source(
    tables,
    data_dir: Path,
    source_name: str,
    run_id: str,
    at: datetime,
    erased: tuple[frozenset[str], str] = (frozenset(), ""),
    digests: dict[str, str] | None = None,
    code: str = "",
    reuse: bool = True,
):
    """(staged DataFrame, quarantine DataFrame, report) of one source, from all its files, the
    rows of the people erased before (`erased`: their subject hashes and the salt) left out.
    `digests`: the files' sha256 by path when the run hashed them already
    (`export_file_stats`); a file not among them is hashed here. `code`: what validates
    (`inputs.staging_code`); `reuse`: False validates every file again (a forced run).

    The validated rows are written once to the lake, one folder per file (`ValidatedFiles`),
    and read back by each of the later passes: the counts, the repeated keys, the staged rows
    and the quarantine. A file validated by an earlier staging from the same content, path,
    erasures and code, none of whose rows was held back as dated after that staging's time,
    is not read again. Nothing of the size of the input is kept in the JVM's heap, so the heap
    does not limit the rows a run can take (a cache held the rows before: at 10M order rows
    the collector took a quarter of the JVM's time)."""
    from pyspark.sql import functions as F

    spark = tables.spark
    source = SOURCES[source_name]
    exports = reading.discover_files(Path(data_dir), source)
    report = SparkIngestReport(source=source.name, files=len(exports))
    # every file's header first: fail before anything is written, naming every refused file
    report.ignored_columns.update(reading.check_headers(exports, source))
    known = digests or {}
    digests = {**_digests([e for e in exports if e.relpath not in known]), **known}
    report.file_stats = [(e.relpath, e.size_bytes, digests[e.relpath]) for e in exports]
    schema = spark_schema(source)
    typed = [*source.columns, "source_file", "source_row"]
    validated_files = ValidatedFiles(tables.lake, source.name)
    if not exports:
        validated_files.keep_only([])
        empty = spark.createDataFrame([], schema)
        return empty.select(typed), _quarantine(spark, empty), report
    entries = {e.relpath: entry_key(e.relpath, digests[e.relpath], code, erased) for e in exports}
    # left at UTC without a word: the files whose timestamps carry another offset are said
    zone_unset = not settings.raw_given("ENGAGEMENT_TIME_ZONE")
    fresh = [e for e in exports if not (reuse and validated_files.usable(entries[e.relpath], at))]
    report.files_validated = len(fresh)
    if fresh:
        _validate(
            spark, source.name, data_dir, run_id, at, fresh, entries, digests, erased, zone_unset,
            schema, validated_files,
        )  # fmt: skip
    rows = validated_files.read(spark, schema, list(entries.values()))
    arrivals = FileArrivals(tables.lake, source.name)
    first_seen = arrivals.first_seen(exports, digests, at)
    in_order = sorted(exports, key=lambda e: (first_seen[e.relpath]["first_staged"], e.relpath))

    # Money as the DuckDB engine stages it: DECIMAL(18, 4) (exact sums, the same on every run).
    def good_column(c: str):
        return F.col(c).cast("decimal(18,4)") if c in source.money else F.col(c)

    good = rows.filter(F.col(KIND) == "staged").select(*[good_column(c).alias(c) for c in typed])
    # Repeated keys: the first file staged, then by file path, then row (as the DuckDB engine
    # stages them: a file that arrives later never replaces a key staged before, whatever its
    # name; by path alone, a new `a_fix.csv` took an order staged months before from
    # `orders_2023-07.csv`, on this engine only: a review). An aggregate by key moves only the
    # keys and the row's place, not whole rows (a window over the keys sorted every row); the
    # keys seen more than once are few, and the join with them is a broadcast.
    # A row's place as one number (the file's rank, then the row): the aggregate's min is then
    # a hash aggregate (a min over a struct or text sorts every row, twice).
    rank_of = F.create_map(*[F.lit(x) for i, e in enumerate(in_order) for x in (e.relpath, i)])
    place = F.element_at(rank_of, F.col("source_file")).cast("bigint") * F.lit(2**32) + F.col(
        "source_row"
    )
    keys = {c: f"_key_{i}" for i, c in enumerate(source.key_columns)}
    arrow, sets = _one_pass(rows, keys, place, good_column)
    answers = pl.from_arrow(arrow)
    problems = answers.filter((pl.col("_set") == sets.reasons) & (pl.col(KIND) == REFUSED))
    if problems.height:  # nothing of this source is staged; the files in path order
        validated_files.forget([entries[e.relpath] for e in fresh])
        raise reading.refused_error(sorted(problems["reason"]), source)
    totals = answers.filter(pl.col("_set") == sets.kinds)
    per_kind = totals.group_by(KIND).agg(pl.col("_n").sum(), pl.col("_rows").sum())
    counts = dict(zip(per_kind[KIND], per_kind["_n"], strict=True))
    sums = dict(zip(per_kind[KIND], per_kind["_rows"], strict=True))
    files = totals.filter(pl.col("_file").is_not_null())
    read_per_file = dict(files.filter(pl.col(KIND) == "read").select("_file", "_rows").iter_rows())
    report.copies = _copies(in_order, digests, read_per_file)
    quarantined_per_file = dict(
        files.filter(pl.col(KIND) == "quarantine").select("_file", "_n").iter_rows()
    )
    future_per_file = dict(
        files.filter(pl.col(KIND) == FUTURE_KIND).select("_file", "_rows").iter_rows()
    )
    for export in fresh:  # usable by a later staging (`ValidatedFiles.usable`)
        validated_files.record(entries[export.relpath], at, future_per_file.get(export.relpath, 0))
    validated_files.keep_only(entries.values())
    arrivals.record(first_seen)
    if zone_unset:  # every file's validated rows, the cached ones too: said on each staging
        offsets = answers.filter((pl.col("_set") == sets.reasons) & (pl.col(KIND) == OFFSET_KIND))
        report.other_offsets = dict(sorted(json.loads(r) for r in offsets["reason"]))
    reasons = answers.filter((pl.col("_set") == sets.reasons) & (pl.col(KIND) == "quarantine"))
    is_first = (answers["_set"] == sets.keys).to_arrow()
    firsts = arrow.filter(is_first).select([*keys.values(), "_first"])
    if firsts.num_rows:
        repeated_keys = spark.createDataFrame(firsts)
        same_key = [F.col(c).eqNullSafe(F.col(k)) for c, k in keys.items()]
        marked = good.join(F.broadcast(repeated_keys), same_key, "left").select(
            *typed, (F.col("_first").isNotNull() & (place != F.col("_first"))).alias("_repeated")
        )
        staged = marked.filter(~F.col("_repeated")).select(typed)
        # Repeated keys are few: their quarantine rows are made by the DuckDB engine's function.
        dup_rows = pl.from_arrow(marked.filter(F.col("_repeated")).select(typed).toArrow())
        # The rows staged for those keys: a duplicate's detail says whether it repeats them
        # or differs, and a profile's changes are said (`profile_changes`).
        first_rows = pl.from_arrow(
            marked.filter(F.col("_first").isNotNull() & ~F.col("_repeated")).select(typed).toArrow()
        )
        if source.name == ingestion.PROFILE_SOURCE and dup_rows.height:
            report.profile_changes = ingestion.profile_changes(source, dup_rows, first_rows)
        if source.name == ingestion.ORDER_SOURCE and dup_rows.height:
            report.order_changes = ingestion.order_changes(source, dup_rows, first_rows)
    else:  # no key is repeated: every validated row is staged, with no join and no pass more
        staged = good.select(typed)
        dup_rows = first_rows = pl.DataFrame()
    quarantine = rows.filter(F.col(KIND) == "quarantine")
    by_reason_counts = dict(zip(reasons["reason"], reasons["_n"], strict=True))
    if dup_rows.height:
        dup_rows = dup_rows.sort("source_file", "source_row").with_columns(
            pl.lit("repeated within this ingest").alias("detail")
        )
        extra = ingestion.duplicate_quarantine(dup_rows, first_rows, source, run_id, at)
        extra_df = spark.createDataFrame(extra.to_arrow())
        for reason, n in extra.group_by("reason").len().iter_rows():
            by_reason_counts[reason] = by_reason_counts.get(reason, 0) + n
        for file, n in extra.group_by("source_file").len().iter_rows():
            quarantined_per_file[file] = quarantined_per_file.get(file, 0) + n
    else:
        extra_df = None
    quarantine_df = _quarantine(spark, quarantine, source.name, run_id, at)
    if extra_df is not None:
        quarantine_df = quarantine_df.unionByName(extra_df.select(*quarantine_df.columns))

    if counts.get("carrier"):
        carriers = rows.filter(F.col(KIND) == "carrier").select(
            *[F.col(c).alias(name) for c, name in CARRIER_COLUMNS.items()]
        )
        report.erased_profile_keys = sorted({tuple(r) for r in carriers.collect()})
    report.rows_read = sums.get("read") or 0
    report.rows_erased = sums.get("erased") or 0
    report.rows_future = sums.get(FUTURE_KIND) or 0
    report.rows_quarantined = counts.get("quarantine", 0) + dup_rows.height
    report.rows_staged = counts.get("staged", 0) - dup_rows.height
    report.quarantined_files = ingestion.quarantined_files(read_per_file, quarantined_per_file)
    # as the DuckDB engine reports them: the most frequent reason first
    report.quarantine_by_reason = dict(
        sorted(by_reason_counts.items(), key=lambda item: (-item[1], item[0]))
    )
    return staged, quarantine_df, report


def _validate(
    spark,
    source_name: str,
    data_dir: Path,
    run_id: str,
    at: datetime,
    fresh: list[reading.ExportFile],
    entries: dict[str, str],
    digests: dict[str, str],
    erased: tuple[frozenset[str], str],
    offsets: bool,
    schema,
    validated_files: "ValidatedFiles",
) -> None:
    """Read and validate the files of `fresh` (one Spark task per group of files, each row
    checked by the DuckDB engine's rules, `_validate_files`) and write their rows to the lake,
    a folder per file (`validated_files`, by `entries`). A file whose content is no longer the
    one hashed for it (`digests`) is refused, its folders forgotten. `offsets`: say the files
    whose timestamps carry another offset (the time zone left unset)."""
    from pyspark.sql import functions as F

    plan = file_tasks(spark, fresh)
    # one row per task, each in its own partition: the task's number picks its files
    validated = spark.range(0, len(plan), 1, len(plan)).mapInArrow(
        _validate_files(
            source_name,
            str(Path(data_dir).absolute()),
            run_id,
            at,
            plan,
            erased,
            shop_zone(),
            offsets=offsets,
        ),
        schema,
    )
    entry_of = F.create_map(*[F.lit(x) for e in fresh for x in (e.relpath, entries[e.relpath])])
    validated_files.write(
        validated.withColumn(ENTRY, F.element_at(entry_of, F.col("source_file"))),
        [entries[e.relpath] for e in fresh],
    )
    # The files read have the content hashed for them (the run's inputs, the folders'
    # names): one rewritten since it was hashed (an export still being written) would
    # keep its new rows under the old content's name.
    problem = _changed_since_hashed(fresh, digests)
    if problem is not None:
        validated_files.forget([entries[e.relpath] for e in fresh])
        raise contracts.IngestError(
            f"{problem}; nothing of {source_name} was staged: run again once the exports "
            "are complete"
        )


def _changed_since_hashed(exports: list[reading.ExportFile], digests: dict[str, str]) -> str | None:
    """What became of the first of `exports` whose content is no longer the one hashed for it
    (`digests`): removed, or changed while the run read it. None: every one is as hashed."""
    for export in exports:
        try:
            now = reading.file_sha256(export.path)
        except OSError:
            return f"{export.relpath}: the file was removed while the run read it"
        if now != digests[export.relpath]:
            return (
                f"{export.relpath}: the file changed while it was read (an export still being "
                "written?)"
            )
    return None


def _digests(exports: list[reading.ExportFile]) -> dict[str, str]:
    """The sha256 of each file, by path, on the driver's threads (hashlib lets go of the GIL
    on large blocks, so they hash in parallel)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        digests = pool.map(lambda e: reading.file_sha256(e.path), exports)
        return {e.relpath: d for e, d in zip(exports, digests, strict=True)}


def export_file_stats(data_dir: Path) -> list[list]:
    """(path, size, sha256) of every source's export files, sorted, as a staging records them
    (`SparkIngestReport.file_stats`, `inputs.record_staged`): read on the driver, no Spark."""
    exports = [e for s in SOURCES.values() for e in reading.discover_files(Path(data_dir), s)]
    digests = _digests(exports)  # every source's files on one pool of threads
    return sorted([e.relpath, e.size_bytes, digests[e.relpath]] for e in exports)


def _copies(
    exports: list[reading.ExportFile], digests: dict[str, str], rows_read: dict[str, int]
) -> dict[str, str]:
    """Files whose content is that of an earlier file (`exports` in the order their keys
    rank: an export sent twice under two names), each to the first such file: every row of a
    copy is a repeated key, and the run says it is a copy rather than a file quarantined whole
    (`digests`: each file's sha256). Files without rows (`rows_read`: per file) are left out:
    empty exports are alike, and no row repeats."""
    sizes = Counter(export.size_bytes for export in exports)
    first: dict[str, str] = {}
    copies = {}
    for export in exports:
        if sizes[export.size_bytes] < 2 or not rows_read.get(export.relpath):
            continue
        digest = digests[export.relpath]
        if digest in first:
            copies[export.relpath] = first[digest]
        else:
            first[digest] = export.relpath
    return copies


class _Sets(NamedTuple):
    """The `_set` values of `_one_pass`'s rows: per kind and file, per kind and reason, per
    repeated staged key."""

    kinds: int
    reasons: int
    keys: int


def _one_pass(rows, keys: dict[str, str], place, good_column) -> tuple[pa.Table, _Sets]:
    """One aggregation over the validated `rows` answers three questions in one pass: the rows
    of each kind (a "read" row per file holds the file's row count in source_row), per file for
    the rows read and quarantined; the quarantined rows per reason; and the staged keys
    (`keys`: column -> alias) seen more than once with the `place` of their first row. Its
    result is small (three kinds, the files, a few reasons, the repeated keys): it comes to the
    driver, and the repeated keys are joined back as a broadcast (the aggregate over every key
    is not run again by each pass that reads `marked`). Returns it as Arrow, with the `_set`
    value of each question's rows."""
    from pyspark.sql import functions as F

    is_staged = F.col(KIND) == "staged"
    by_kind = [KIND, "_file"]
    by_reason = [KIND, "reason"]
    by_key = [KIND, *keys.values()]
    more = ("reason", "_file")
    tagged = rows.select(
        KIND,
        "reason",
        "source_row",
        *[good_column(c).alias(k) for c, k in keys.items()],
        F.when(is_staged, place).alias("_place"),
        F.when(F.col(KIND).isin("read", "quarantine", FUTURE_KIND), F.col("source_file")).alias(
            "_file"
        ),
    )
    sets = _Sets(
        kinds=_set_id(by_kind, by_key, *more),
        reasons=_set_id(by_reason, by_key, *more),
        keys=_set_id(by_key, by_key, *more),
    )
    arrow = (
        tagged.groupingSets([by_kind, by_reason, by_key], *by_key, *more)
        .agg(
            F.grouping_id(*by_key, *more).alias("_set"),
            F.count("*").alias("_n"),
            F.sum("source_row").alias("_rows"),
            F.min("_place").alias("_first"),
        )
        .filter((F.col("_set") != sets.keys) | ((F.col(KIND) == "staged") & (F.col("_n") > 1)))
        .toArrow()
    )
    return arrow, sets


def _set_id(grouped: list[str], columns: list[str], *more: str) -> int:
    """Spark's grouping_id(*columns, *more) for the rows of the grouping set `grouped`: one bit
    per column, the first the highest, set where the column is not grouped."""
    names = [*columns, *more]
    return sum(1 << (len(names) - 1 - i) for i, c in enumerate(names) if c not in grouped)


def validated_table(source_name: str) -> str:
    """The working table of one source's validated rows that releases before 2026-12-06
    wrote (`stage_all` deletes it from a lake they left it in)."""
    return f"staging.validated_{source_name}"


def entry_key(relpath: str, digest: str, code: str, erased: tuple[frozenset[str], str]) -> str:
    """What a file's validated rows were made from: its path (the rows carry it), its content
    (sha256), the code that validated it and the erasure register (rows of people erased are
    left out). Another of any of them is another entry."""
    from engagement_box.spark.inputs import register_hash

    made_from = "\0".join([relpath, digest, code, register_hash(erased)])
    return hashlib.sha256(made_from.encode()).hexdigest()


class ValidatedFiles:
    """One source's validated rows, a folder per export file:
    `<lake>/tables/_validated/<source>/<entry>/` (`entry_key`), with `_entry.json` saying when
    it was validated and how many of its rows were quarantined with a date after that time
    among their reasons. A folder is used again while that count is 0 and the run's time is
    not earlier (a later clock would stage such rows, an earlier one quarantine rows it
    staged); one without its record (a staging that stopped, or refused a file) never is.
    The folders of files no longer exported are deleted when a staging of the source is done;
    every erasure deletes them all (`erasure.erase_from_lake`)."""

    def __init__(self, lake: Path, source_name: str):
        self.root = Path(lake) / "tables" / VALIDATED_DIR / source_name

    def usable(self, key: str, at: datetime) -> bool:
        try:
            record = json.loads((self.root / key / ENTRY_RECORD).read_text(encoding="utf-8"))
            validated_at = datetime.fromisoformat(record["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return record.get("future_rows") == 0 and validated_at <= at

    def write(self, frame, keys: list[str]) -> None:
        """`frame`'s rows into the folders of `keys` (by its `ENTRY` column), replacing them."""
        self.root.mkdir(parents=True, exist_ok=True)
        writing = self.root / f".writing-{uuid.uuid4().hex}"
        frame.write.partitionBy(ENTRY).mode("error").parquet(str(writing))
        for key in keys:
            target = self.root / key
            if target.exists():
                shutil.rmtree(target)
            written = writing / f"{ENTRY}={key}"
            if written.is_dir():
                os.replace(written, target)
            else:  # a file of no row (an empty export)
                target.mkdir()
        left = [p.name for p in writing.iterdir() if p.is_dir()]
        shutil.rmtree(writing)
        if left:  # a row of no file the run validated: never dropped unsaid
            raise RuntimeError(f"validated rows of no export file: {left}")

    def record(self, key: str, at: datetime, future_rows: int) -> None:
        write_json(
            self.root / key / ENTRY_RECORD, {"at": at.isoformat(), "future_rows": int(future_rows)}
        )

    def read(self, spark, schema, keys: list[str]):
        """The validated rows of the files of `keys`, in `schema`."""
        folders = [str(self.root / k) for k in keys if any((self.root / k).glob("*.parquet"))]
        if not folders:
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).parquet(*folders)

    def forget(self, keys: list[str]) -> None:
        for key in keys:
            shutil.rmtree(self.root / key, ignore_errors=True)

    def keep_only(self, keys) -> None:
        """Delete the folders of files not among `keys` (and writes that stopped)."""
        kept = set(keys)
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.name not in kept:
                shutil.rmtree(folder, ignore_errors=True)


class FileArrivals:
    """When each export file of one source was first staged, by path, with its content's sha256
    (`<lake>/file_arrivals/<source>.json`): its keys rank before those of files staged later, as
    the DuckDB engine's `staging.ingested_files` ranks them, though this engine stages every
    file again each run. A file changed in place keeps its time (the DuckDB engine stages it
    again in its keys' places); a file moved or renamed (a new path with the content of a path
    no longer there: `orders/archive/`) keeps the time it had, where the DuckDB engine reads
    nothing of it. A file no longer in the folder keeps its record, as the DuckDB engine keeps
    its row: moved across two runs (removed, then back in an archive folder) or put back, it
    keeps its rank (it was forgotten, and a review's archived file lost its key to a later one
    for good). A lake of an earlier release has no record: its files arrive at the first
    staging after the upgrade, ranked by path among themselves, as before."""

    def __init__(self, lake: Path, source_name: str):
        self.path = Path(lake) / ARRIVALS_DIR / f"{source_name}.json"

    def first_seen(
        self, exports: list[reading.ExportFile], digests: dict[str, str], at: datetime
    ) -> dict[str, dict[str, str]]:
        """Each of `exports`' first staging (`first_staged`: ISO text, which sorts as time; the
        one recorded for its path, else for a path gone with its content, else `at`), its
        content (`sha256`, from `digests`) and when that content was first staged
        (`content_staged`: `at` for a file changed since; the DuckDB engine's
        `content_taken_in`, which ranks a later file's consent: `later_consents`); and the
        records of files no longer there. A record of an earlier release has no
        `content_staged`: its `first_staged` stands for it."""
        known = self.recorded()
        present = {e.relpath for e in exports}
        # content -> the earliest times of a path no longer there (first staged, content staged)
        gone: dict[str, tuple[str, str]] = {}
        for path, entry in known.items():
            if path not in present and entry.get("sha256"):
                times = (entry["first_staged"], _content_staged(entry))
                earlier = gone.get(entry["sha256"], times)
                gone[entry["sha256"]] = (min(earlier[0], times[0]), min(earlier[1], times[1]))
        now = at.isoformat()
        seen = {}
        for e in exports:
            digest = digests[e.relpath]
            entry = known.get(e.relpath)
            if entry is not None:
                same = entry.get("sha256") in (None, digest)
                times = (entry["first_staged"], _content_staged(entry) if same else now)
            else:
                times = gone.get(digest, (now, now))
            seen[e.relpath] = {
                "first_staged": times[0],
                "sha256": digest,
                "content_staged": times[1],
            }
        # and the files no longer in the folder, as they were recorded
        return {**{p: e for p, e in known.items() if p not in seen}, **seen}

    def recorded(self) -> dict[str, dict[str, str]]:
        """The files recorded, by path (none when the record is missing or unreadable; an entry
        without its `first_staged` time is left out)."""
        try:
            known = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        return {
            path: entry
            for path, entry in (known.items() if isinstance(known, dict) else ())
            if isinstance(entry, dict) and isinstance(entry.get("first_staged"), str)
        }

    def record(self, first_seen: dict[str, dict[str, str]]) -> None:
        """After a staging of the source: every file it staged, and those recorded before that
        are no longer in the folder."""
        write_json(self.path, first_seen)


def _content_staged(entry: dict) -> str:
    """When a recorded file's content was first staged (`FileArrivals.first_seen`)."""
    content = entry.get("content_staged")
    return content if isinstance(content, str) else entry["first_staged"]


def ingested_files_rows(lake: Path) -> list[tuple]:
    """The lake's record of every source's files, in the columns of the DuckDB engine's
    `staging.ingested_files` that rank a profile's files (`INGESTED_FILES_SCHEMA`): from the
    arrivals each staging records (`FileArrivals`)."""
    rows = []
    for source_name in SOURCES:
        for file, entry in sorted(FileArrivals(lake, source_name).recorded().items()):
            first = datetime.fromisoformat(entry["first_staged"]).replace(tzinfo=None)
            content = datetime.fromisoformat(_content_staged(entry)).replace(tzinfo=None)
            rows.append((source_name, file, content, first, content))
    return rows


# `staging.ingested_files` of the lake: the columns the later consents' ranking reads
# (sql/staging/later_profile_consents.sql).
INGESTED_FILES_SCHEMA = (
    "source string, source_file string, content_taken_in timestamp_ntz, "
    "first_taken_in timestamp_ntz, ingested_at timestamp_ntz"
)


def _quarantine(spark, rows, source_name: str = "", run_id: str = "", at: datetime | None = None):
    """Quarantine rows in the columns of `staging.quarantine`."""
    from pyspark.sql import functions as F

    return rows.select(
        F.lit(source_name).alias("source"),
        "source_file",
        "source_row",
        *QUARANTINE_COLUMNS,
        F.lit(run_id).alias("run_id"),
        F.lit(at).cast("timestamp_ntz").alias("quarantined_at"),
    )
