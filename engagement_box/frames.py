"""Writing a polars frame as a whole table: the tests and benchmarks set up tables with it (the
pipeline's steps write per as-of, `engagement_box/partitioned.py`)."""

import duckdb
import polars as pl

from engagement_box.sql import load_sql


def write_frame(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pl.DataFrame
) -> int:
    """Replace `schema.table` with `frame` (one statement: readers see old or new, never half)."""
    con.execute(load_sql("marts/create_schema", schema=schema))
    con.register("frame_to_write", frame)
    try:
        con.execute(load_sql("marts/replace_table_with_frame", schema=schema, table=table))
    finally:
        con.unregister("frame_to_write")
    return frame.height
