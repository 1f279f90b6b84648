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
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@functools.cache
def _read(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    return path.read_text(encoding="utf-8")


def quote_identifier(name: str) -> str:
    """Quote an identifier that comes from the allow-list; anything else is a programming error."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not an allowed SQL identifier: {name!r}")
    return f'"{name}"'


def quote_literal(text: str) -> str:
    """A string constant of the code as a SQL literal, for the statements that take no bound
    parameter (DuckDB's COMMENT ON). Never for values that come from data or users."""
    return "'" + str(text).replace("'", "''") + "'"


def load_sql(name: str, **identifiers: str) -> str:
    """The statement in `sql/<name>.sql`, with `{placeholder}` identifiers filled in.

    Each identifier value must be a plain lower-case name (checked) or a comma-separated list of
    them (for column lists); they are quoted before substitution.
    """
    text = _read(name)
    if not identifiers:
        return text
    quoted = {}
    for key, value in identifiers.items():
        parts = [p.strip() for p in value.split(",")]
        quoted[key] = ", ".join(quote_identifier(p) for p in parts)
    return text.format(**quoted)


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
