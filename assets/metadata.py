"""Metadata every asset returns: row counts, the table's schema, and a small preview; and the
run's time, which bounds what the assets accept as already happened."""

import datetime as dt
import math
import re

import dagster as dg
import duckdb
import polars as pl

from engagement_box.governance import privacy
from engagement_box.sql import load_sql
from engagement_box.staging.reading import printable

PREVIEW_ROWS = 5


def table_metadata(
    con: duckdb.DuckDBPyConnection, schema: str, table: str
) -> dict[str, dg.MetadataValue]:
    """Row count, column schema and a markdown preview of `schema.table`."""
    # The column descriptions are the warehouse's COMMENT ON (the data dictionary's, on marts).
    columns = con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = $schema "
        "AND table_name = $table ORDER BY column_index",
        {"schema": schema, "table": table},
    ).fetchall()
    row = con.execute(load_sql("marts/table_row_count", schema=schema, table=table)).fetchone()
    rows = int(row[0]) if row else 0
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[dg.TableColumn(name=c, type=t, description=d) for c, t, d in columns]
            )
        ),
        "dagster/table_name": dg.MetadataValue.text(f"{schema}.{table}"),
        "preview": preview(
            con.execute(
                load_sql("marts/table_preview_rows", schema=schema, table=table),
                {"n": PREVIEW_ROWS},
            ).pl()
        ),
    }


def preview(frame: pl.DataFrame) -> dg.MetadataValue:
    """The first PREVIEW_ROWS rows of `frame` as a markdown table, personal columns masked:
    Dagster's run storage keeps metadata, and erasure cannot reach it."""
    return dg.MetadataValue.md(markdown_table(privacy.masked(frame.head(PREVIEW_ROWS))))


def version_preview(
    con: duckdb.DuckDBPyConnection, mart: str, snapshot_id: int
) -> dg.MetadataValue:
    """A markdown preview of one version's rows of a mart (`history.<mart>`), masked as
    `table_metadata` masks them: a backfill's version is not `marts.<mart>`."""
    rows = con.execute(
        load_sql("history/version_preview_rows", mart=mart),
        {"snapshot_id": snapshot_id, "n": PREVIEW_ROWS},
    ).pl()
    return preview(rows)


def money_label(name: str, currency: str | None) -> str:
    """The metadata label of a money total: its name and currency, e.g. `total_clv (USD)`."""
    return f"{name} ({currency})" if currency else name


def money_value(amount: object) -> dg.MetadataValue:
    """A money total for the metadata panel, rounded to cents (`money_label` names the currency)."""
    return dg.MetadataValue.float(round(float(amount or 0.0), 2))


def markdown_table(frame: pl.DataFrame) -> str:
    """A small frame as a markdown table (floats to 4 decimals, NaN and NULL blank) for the UI's
    metadata panel."""
    if frame.height == 0:
        return "_empty_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *body])


# The longest text a preview cell shows (a longer one is cut, with `…`).
CELL_CHARS = 80


def _cell(value: object) -> str:
    """One value as a markdown table cell. Text is a code span, so what an export wrote (a
    customer id `![x](https://...)`, a line break then `# heading`, `[Reset your password](...)`)
    shows as written: Dagster renders links and images in metadata, and a security review had
    an id put a phishing link in the previews. Control characters are escaped, and a long
    value is cut."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if not isinstance(value, str):
        return str(value)
    text = printable(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    if not text:
        return ""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return fence + padded.replace("|", "\\|") + fence


def run_time(context: dg.AssetExecutionContext) -> dt.datetime:
    """When this run was created (naive UTC): staging quarantines timestamps after it, and the
    as-of date never passes its day. The clock if the instance has no record of the run."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    created = record.create_timestamp if record is not None else None
    if created is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return created.astimezone(dt.UTC).replace(tzinfo=None)
