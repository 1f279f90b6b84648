"""Work tables keyed by as-of date: each as-of (one partition's window) has its own rows.

A partitioned step replaces only its own as-of's rows, in one transaction (delete, then insert),
so a backfill of one month never touches another month's rows and readers see old or new rows,
never half. Downstream steps read only the rows of their own as-of. The key column is `as_of`
(DATE): two partitions whose window ends on the same day (a month after the last order, or every
month when ENGAGEMENT_AS_OF pins the date) compute the same rows and share them.

The rows of an as-of are also the rows of every version published from them (`history.<mart>`
views them, `engagement_box.governance.versions`): before they are replaced, those versions get
their own copy (`versions.keep_published_rows`), in the same transaction.

`<schema>.written_partitions` records, in the same transaction, which as-of each table holds
(table_name, as_of, written_at, computation): an as-of whose step ran and found no rows is told
apart from one whose step never ran. Retention deletes an as-of's rows and its record together
(`versions.trim_work`) once no retained version links it and it is no table's newest.

`computation` is the fingerprint of the inputs the rows were computed from (the staged files
and erasures, the settings the step ran with, the model code: `versions.inputs_fingerprint`),
given by the step that wrote them. Rows whose fingerprint is not that of the inputs now
(`Written.behind`) are neither read by a step nor published: a run of some steps, or a step run
with other settings, would otherwise have its rows published under inputs they do not follow.

`failed_checks` names the blocking checks the rows failed when they were written (NULL: none
failed). Dagster stops the steps after a failed blocking check in the same run only; a later
run of those steps alone reads the registry (`written`) and refuses such rows, so they
are never published.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import duckdb
import polars as pl
import pyarrow as pa

from engagement_box.governance.versions import REGISTRY, keep_published_rows
from engagement_box.sql import columns as catalog_columns
from engagement_box.sql import load_sql, quote_identifier, sql_template, transaction

KEY = "as_of"
# The work table that records each as-of's inputs (`assets/publish.py::version_inputs`).
INPUTS_TABLE = "version_inputs"


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    return dict(catalog_columns(con, schema, table))


def write_partition(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    frame: pl.DataFrame,
    as_of: dt.date,
    also: Sequence[tuple[str, Mapping]] = (),
    computation: str | None = None,
    failed_checks: Sequence[str] = (),
) -> int:
    """Replace the rows of `as_of` in `schema.table` with `frame` (its `as_of` column is set to
    `as_of`), in one transaction. The table is created on first write; a column the table does
    not have yet is added (older as-ofs show NULL there). `also`: statements (with their
    parameters) run in the same transaction, e.g. the state an incremental step records.
    `computation`: the fingerprint of the inputs the rows were computed from (None: unknown).
    `failed_checks`: the blocking checks the rows failed (`written` reads them back)."""
    frame = frame.with_columns(pl.lit(as_of, dtype=pl.Date).alias(KEY))
    # A column with no value in this partition (e.g. no fit message) has no type of its own;
    # stored as text, it accepts the values a later partition brings.
    frame = frame.with_columns(pl.col(pl.Null).cast(pl.String))
    name = _name(schema, table)
    con.execute(load_sql("marts/create_schema", schema=schema))
    con.register("partition_rows", arrow_batches(frame))
    try:
        with transaction(con):
            known = _columns(con, schema, table)
            if not known:
                con.execute(load_sql("work/create_partition_table", schema=schema, table=table))
            else:
                described = con.execute("DESCRIBE partition_rows").fetchall()
                for column, dtype, *_ in described:
                    if column not in known:
                        add = sql_template("work/add_partition_column")
                        con.execute(
                            add.format(table=name, column=quote_identifier(column), dtype=dtype)
                        )
                if schema == "work":  # a version published from these rows keeps them
                    keep_published_rows(con, table, as_of)
                delete = load_sql("work/delete_partition_rows", schema=schema, table=table)
                con.execute(delete, {"as_of": as_of})
            con.execute(load_sql("work/insert_partition_rows", schema=schema, table=table))
            _ensure_registry(con, schema)
            con.execute(
                load_sql("work/record_written_partition", schema=schema, registry=REGISTRY),
                {
                    "table": table,
                    "as_of": as_of,
                    "computation": computation,
                    "failed": ", ".join(failed_checks) or None,
                },
            )
            for statement, parameters in also:
                con.execute(statement, dict(parameters))
    finally:
        con.unregister("partition_rows")
    return frame.height


def _ensure_registry(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """`<schema>.written_partitions`, created or given the `computation` and `failed_checks`
    columns a warehouse written before them lacks (its as-ofs then have none: see
    `Written.behind`; no check is known to have failed)."""
    known = _columns(con, schema, REGISTRY)
    if not known:
        con.execute(load_sql("work/create_written_partitions", schema=schema, registry=REGISTRY))
    for column in ("computation", "failed_checks"):
        if known and column not in known:
            add = load_sql(
                "work/add_written_partitions_column",
                schema=schema,
                registry=REGISTRY,
                column=column,
            )
            con.execute(add)


class Written(NamedTuple):
    """What the registry records of one as-of's rows of a table (`written`)."""

    computation: str | None  # the fingerprint of the inputs they followed (None: unknown)
    failed_checks: list[str]  # the blocking checks they failed
    computations_recorded: bool  # the registry has the `computation` column of this release

    def behind(self, fingerprint: str) -> bool:
        """Whether the rows were computed from other inputs than those whose fingerprint is
        `fingerprint` (the inputs now), or from inputs not recorded (written before
        computations were recorded). False where the registry has no `computation` column yet
        (a warehouse no run of this release has written)."""
        return self.computations_recorded and self.computation != fingerprint


def written(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, as_of: dt.date
) -> Written | None:
    """The registry's record of the rows of `as_of` in `schema.table`, in one lookup: None
    when the as-of was never written (or there is no registry yet)."""
    known = _columns(con, schema, REGISTRY)
    if not known:
        return None
    select = ", ".join(c if c in known else "NULL" for c in ("computation", "failed_checks"))
    query = sql_template("work/written_partition")
    row = con.execute(
        query.format(columns=select, registry=_name(schema, REGISTRY)),
        {"table": table, "as_of": as_of},
    ).fetchone()
    if row is None:
        return None
    failed = row[1].split(", ") if row[1] else []
    return Written(row[0], failed, "computation" in known)


def behind_on(
    con: duckdb.DuckDBPyConnection, schema: str, as_of: dt.date, fingerprint: str
) -> list[str]:
    """The tables of `schema` whose rows of `as_of` the registry records as computed from other
    inputs than `fingerprint` (`Written.behind`) or as having failed a blocking check. None in a
    whole run's as-of: every step records the run's fingerprint. A version standing for `as_of`
    is no reason to skip a run while any is listed: the steps that refuse such rows tell the
    user to run the whole month, which must then compute them again (a review found it
    skipped, the refusal repeated). Empty where the registry predates `computation`."""
    known = _columns(con, schema, REGISTRY)
    if "computation" not in known or "failed_checks" not in known:
        return []
    query = sql_template("work/partitions_behind").format(registry=_name(schema, REGISTRY))
    rows = con.execute(query, {"as_of": as_of, "fingerprint": fingerprint}).fetchall()
    return [row[0] for row in rows]


# Rows per Arrow batch handed to DuckDB: one row group's worth.
BATCH_ROWS = 122_880


def arrow_batches(frame: pl.DataFrame) -> pa.Table:
    """The frame as Arrow in batches of `BATCH_ROWS`: DuckDB inserts a 1M-row frame of the
    pipeline's in about half the CPU it takes when handed the frame in one piece (1.4 against
    2.5-2.9 CPU-s for work.customer, docs/BENCHMARKS.md); same types, same rows, same order."""
    arrow = frame.to_arrow()
    return pa.Table.from_batches(arrow.to_batches(max_chunksize=BATCH_ROWS), schema=arrow.schema)


def read_partition(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    as_of: dt.date,
    *,
    keep_key: bool = False,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The rows of `as_of` in `schema.table` (without the `as_of` column unless `keep_key`;
    only `columns` when given: a step that needs two columns of a 1M-row partition reads two).

    Raises a plain error when the table or the as-of's rows are missing: the upstream asset has
    not been materialized for this partition."""
    if not _columns(con, schema, table):
        raise LookupError(
            f"{schema}.{table} does not exist yet: materialize {schema}/{table} for this "
            "partition first"
        )
    select = "*" if keep_key else f"* EXCLUDE ({KEY})"
    if columns is not None:
        select = ", ".join(quote_identifier(c) for c in columns)
    query = sql_template("work/partition_rows").format(columns=select, table=_name(schema, table))
    frame = con.execute(query, {"as_of": as_of}).pl()
    return frame


def partition_summary(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, as_of: dt.date, preview_rows: int
) -> tuple[int, pl.DataFrame]:
    """The number of rows of `as_of` in `schema.table`, and its first `preview_rows` rows (with
    the `as_of` column), without reading the others."""
    count_rows = load_sql("work/partition_row_count", schema=schema, table=table)
    row = con.execute(count_rows, {"as_of": as_of})
    count = int(row.fetchone()[0])
    preview = con.execute(
        load_sql("work/partition_preview", schema=schema, table=table),
        {"as_of": as_of, "n": preview_rows},
    ).pl()
    return count, preview
