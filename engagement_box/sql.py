"""Read SQL statements from the repository's `sql/` folder.

Values are always bound as parameters (`$name`) by the caller. A few statements are shared by the
five sources and differ only in a table or column name; those take identifiers from a fixed
allow-list (the contracts' source and column names), substituted into `{placeholders}` after a
strict check. Nothing a user typed ever reaches a placeholder.
"""

import contextlib
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
# Letters of either case: DuckDB folds case, and the code has mixed-case columns (`T_days`).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.cache
def _read(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    return path.read_text(encoding="utf-8")


def quote_identifier(name: str) -> str:
    """Quote an identifier that comes from the allow-list; anything else is a programming error."""
    if not _IDENTIFIER.fullmatch(name):  # `^...$` with match let a trailing newline through
        raise ValueError(f"not an allowed SQL identifier: {name!r}")
    return f'"{name}"'


def quote_literal(text: str) -> str:
    """A string constant of the code, or a configured path, as a SQL literal, for the statements
    that take no bound parameter (DuckDB's COMMENT ON, ATTACH). Never for values that come from
    data or users."""
    return "'" + str(text).replace("'", "''") + "'"


def load_sql(name: str, **identifiers: str) -> str:
    """The statement in `sql/<name>.sql`, with `{placeholder}` identifiers filled in.

    Each identifier value must be a plain name (letters, digits and _, checked) or a
    comma-separated list of them (for column lists); they are quoted before substitution.
    """
    text = _read(name)
    if not identifiers:
        return text
    quoted = {}
    for key, value in identifiers.items():
        parts = [p.strip() for p in value.split(",")]
        quoted[key] = ", ".join(quote_identifier(p) for p in parts)
    return text.format(**quoted)


def sql_template(name: str) -> str:
    """The text of `sql/<name>.sql` with its `{placeholders}` unfilled, for the few DDL statements
    whose pieces the caller builds and quotes itself (DDL binds no parameter)."""
    return _read(name)


def first_line(error: BaseException) -> str:
    """What an error says in its first line (DuckDB's and polars' messages go on with hints and
    context a user cannot act on), or its type's name when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_lock_conflict(exc: Exception) -> bool:
    """Whether a DuckDB error is another process's lock on the file (not a damaged file)."""
    return isinstance(exc, duckdb.IOException) and "Could not set lock" in str(exc)


# The catalog questions a run asks many times (before every write and publish). DuckDB's own
# catalog functions answer them 3-5x faster than information_schema (7 ms against 25 ms on a run's
# working database), which joins every column of every database to answer.
# The columns of one relation: `pragma_table_info` looks the name up, where duckdb_columns()
# lists every column of every table (0.6 against 5.3 CPU-ms on a run's working database; the
# same names and types).
_COLUMNS = "SELECT name, type FROM pragma_table_info($relation)"
# The catalog functions' names selected first: filtered whole, with bound names and
# current_database(), they took 5-6 ms a question (0.5 s of a day's run), 0.9 ms so.
_TABLES = (
    "SELECT count(*) FROM (SELECT database_name, schema_name, table_name FROM duckdb_tables()) "
    "WHERE database_name = current_database() AND schema_name = $schema AND table_name = $name"
)
_VIEWS = (
    "SELECT count(*) FROM (SELECT database_name, schema_name, view_name FROM duckdb_views()) "
    "WHERE database_name = current_database() AND schema_name = $schema AND view_name = $name"
)


def quote_name(name: str) -> str:
    """A name read from the catalog (a column, a schema, not an allow-list) as an identifier:
    quoted, its quotes doubled. Names from the code take `quote_identifier`."""
    return '"' + str(name).replace('"', '""') + '"'


def _own(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> tuple[str, str]:
    """The connection's own database, and `schema.name` in it as a quoted three-part name."""
    catalog = con.execute("SELECT current_database()").fetchone()[0]
    return catalog, ".".join(quote_name(part) for part in (catalog, schema, name))


def columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[tuple[str, str]]:
    """(column name, type) of the table or view `schema.name` of the connection's own database,
    in order; empty when there is none."""
    _, relation = _own(con, schema, name)
    try:  # the name is a bound value; a missing one fails at binding, leaving any transaction
        return con.execute(_COLUMNS, {"relation": relation}).fetchall()
    except duckdb.CatalogException:
        return []


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """Is `schema.name` a base table of the connection's own database (not a view)?

    Looked up by name (`con.table`, which finds base tables only) instead of listing the
    catalog: duckdb_tables() builds a row for every table of every database, 1.2 ms a question
    on a tiny retailer's working database against 0.1, and a run asks at least 495 of them
    (11 % of a pipeline test module's samples). A name holding a double quote, which that lookup
    does not unquote, is still looked for in duckdb_tables()."""
    catalog, relation = _own(con, schema, name)
    if '"' in f"{catalog}{schema}{name}":
        row = con.execute(_TABLES, {"schema": schema, "name": name}).fetchone()
        return bool(row and row[0])
    try:  # a missing name fails the lookup only: an open transaction goes on
        con.table(relation)
    except duckdb.CatalogException:
        return False
    return True


def relation_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """Is `schema.name` a table or a view of the connection's own database?"""
    if table_exists(con, schema, name):
        return True
    row = con.execute(_VIEWS, {"schema": schema, "name": name}).fetchone()
    return bool(row and row[0])


def database_path(con: duckdb.DuckDBPyConnection) -> str | None:
    """The file of `con`'s current database (None in memory)."""
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return row[0] if row and row[0] else None


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB transaction: committed if the block ends normally, rolled back on any
    exception (KeyboardInterrupt and SystemExit too), so no table is ever left half-written."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
