"""Metadata every asset returns: row counts, the table's schema, and a small preview."""

import dagster as dg
import duckdb
import polars as pl

from engagement_box.governance import privacy
from engagement_box.sql import quote_identifier

PREVIEW_ROWS = 5


def table_metadata(
    con: duckdb.DuckDBPyConnection, schema: str, table: str
) -> dict[str, dg.MetadataValue]:
    """Row count, column schema and a markdown preview of `schema.table`."""
    name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = $schema AND table_name = $table ORDER BY ordinal_position",
        {"schema": schema, "table": table},
    ).fetchall()
    row = con.execute(f"SELECT count(*) FROM {name}").fetchone()
    rows = int(row[0]) if row else 0
    # Personal columns are masked: Dagster's run storage keeps metadata, and erasure can't reach it.
    preview = privacy.masked(con.execute(f"SELECT * FROM {name} LIMIT {PREVIEW_ROWS}").pl())
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(name=c, type=t) for c, t in columns])
        ),
        "dagster/table_name": dg.MetadataValue.text(f"{schema}.{table}"),
        "preview": dg.MetadataValue.md(markdown_table(preview)),
    }


def markdown_table(frame: pl.DataFrame) -> str:
    """A small frame as a markdown table (floats to 4 decimals) for the UI's metadata panel."""
    if frame.height == 0:
        return "_empty_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| "
        + " | ".join(
            ""
            if v is None
            else (f"{v:.4f}" if isinstance(v, float) else str(v).replace("|", "\\|"))
            for v in row
        )
        + " |"
        for row in frame.iter_rows()
    ]
    return "\n".join([header, rule, *body])
