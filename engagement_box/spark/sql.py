"""The sql/ files as Spark SQL: one source of each table's logic, transpiled at load time.

The statements in `sql/<schema>/<name>.sql` are written in DuckDB SQL. For the Spark engine they
are read from the same files and turned into Spark SQL with sqlglot, after three rewrites that
sqlglot does not do (each one found by comparing the two engines' results):

- DuckDB macros (`create macro f(a) as <expr>`, `... as table select ...`) do not exist in Spark:
  calls are expanded in place from the macro files the statement names (`MACROS`).
- A list index `xs[i]` is 1-based in DuckDB, 0-based in Spark; sqlglot shifts only a literal
  index (with `list_position(...)` as the index it silently returned the wrong element). Every
  index becomes `element_at(xs, i)`, which is 1-based in Spark.
- `a / b` of DECIMALs is a DOUBLE in DuckDB but a DECIMAL rounded to 6 places in Spark: both
  operands are cast to DOUBLE, as DuckDB does.

Values stay bound parameters: DuckDB's `$name` becomes Spark's `:name`, bound by
`spark.sql(query, args=...)` (`parameters()` gives NULLs and lists their types). A statement
that cannot be written portably has its Spark version in `sql/spark_overrides/<name>.sql`
(only those; it is used as written, in Spark SQL).
"""

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp

from engagement_box.sql import SQL_DIR, load_sql, quote_identifier

OVERRIDES = SQL_DIR / "spark_overrides"

# The macro files each statement's macros come from (DuckDB keeps them in the catalog or the
# session; the Spark engine expands them from the same files).
IDENTITY_MACROS = ("intermediate/normalization", "intermediate/rules")
CURRENCY_MACROS = ("work/create_currency_macros",)


@functools.cache
def _macros(files: tuple[str, ...]) -> dict[str, tuple[list[str], exp.Expression, bool]]:
    """name -> (parameters, body, is a table macro), from the `create macro` statements (of a
    file's Spark version `sql/spark_overrides/<file>.macros.sql` when there is one, still
    DuckDB's syntax)."""
    found: dict[str, tuple[list[str], exp.Expression, bool]] = {}
    for name in files:
        # `<file>.macros.sql`, not `<file>.sql`: a statement file's override is Spark SQL,
        # which has no macros (`_load` runs that one in place of the file's statements)
        override = OVERRIDES / f"{name.replace('/', '__')}.macros.sql"
        text = override.read_text(encoding="utf-8") if override.exists() else load_sql(name)
        for statement in sqlglot.parse(text, read="duckdb"):
            if not isinstance(statement, exp.Create) or statement.kind != "MACRO":
                continue
            udf = statement.this
            macro = udf.this.name.lower()
            params = [p.name.lower() for p in udf.expressions]
            body = statement.expression
            found[macro] = (params, body, isinstance(body, exp.Query))
    return found


def _substitute(body: exp.Expression, params: list[str], args: list[exp.Expression]):
    if len(params) != len(args):
        raise ValueError(f"macro takes {len(params)} arguments, given {len(args)}")
    by_name = dict(zip(params, args, strict=True))

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in by_name:
            arg = by_name[node.name.lower()].copy()
            return arg if isinstance(arg, exp.Literal | exp.Column) else exp.Paren(this=arg)
        return node

    return body.copy().transform(replace)


def _expand_macros(tree: exp.Expression, macros: Mapping) -> exp.Expression:
    def expand(node: exp.Expression) -> exp.Expression:
        # scalar: [schema.]name(args)
        call = node.expression if isinstance(node, exp.Dot) else node
        if isinstance(call, exp.Anonymous) and call.name.lower() in macros:
            params, body, is_table = macros[call.name.lower()]
            if not is_table:
                expanded = _substitute(body, params, list(call.expressions))
                return _expand_macros(exp.Paren(this=expanded), macros)
        # table: FROM [schema.]name(args) AS alias
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous):
            fn = node.this
            if fn.name.lower() in macros and macros[fn.name.lower()][2]:
                params, body, _ = macros[fn.name.lower()]
                query = _expand_macros(_substitute(body, params, list(fn.expressions)), macros)
                return exp.Subquery(this=query, alias=node.args.get("alias"))
        return node

    return tree.transform(expand)


def _portable(tree: exp.Expression) -> exp.Expression:
    """The rewrites of the module doc, applied inside out (an index inside an index, a division
    inside a division)."""
    for node in reversed(list(tree.walk())):  # children before their parents
        if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
            node.set("materialized", None)  # a DuckDB planner hint; Spark has no such syntax
        elif isinstance(node, exp.Anonymous) and node.name.lower() == "list_position":
            # DuckDB: NULL when absent; Spark's array_position: 0 when absent (both 1-based)
            found = exp.Anonymous(this="array_position", expressions=list(node.expressions))
            position = exp.Nullif(this=found, expression=exp.Literal.number(0))
            node.replace(exp.cast(position, "INT"))  # element_at takes an INT index
        elif isinstance(node, exp.Bracket) and len(node.expressions) == 1:
            node.replace(
                exp.Anonymous(this="element_at", expressions=[node.this, node.expressions[0]])
            )
        elif isinstance(node, exp.Div):
            node.set("this", exp.cast(node.this, "DOUBLE"))
            node.set("expression", exp.cast(node.expression, "DOUBLE"))
    return tree


_STORAGE_HINT = re.compile(r"\s+using\s+compression\s+\w+", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One statement for Spark: what it does (`query`, `create_table`, `create_table_as`,
    `insert`, `view`, `schema`), the table it writes (schema.name) and its Spark SQL (for a
    table write, the SELECT; for `create_table`, a SELECT of no rows with the columns' types)."""

    kind: str
    target: str | None
    sql: str


def _target(table: exp.Expression) -> str:
    table = table.this if isinstance(table, exp.Schema) else table
    return f"{table.db}.{table.name}" if table.db else table.name


def _spark_sql(tree: exp.Expression, macros: Mapping, rewrite: bool = True) -> str:
    tree = _expand_macros(tree, macros)
    return (_portable(tree) if rewrite else tree).sql(dialect="spark")


def transpile(
    text: str, macro_files: tuple[str, ...] = (), read: str = "duckdb"
) -> list[Statement]:
    """DuckDB SQL text -> Spark statements (macros expanded, the rewrites above applied).
    An override (`read="spark"`) is parsed as Spark SQL: only its macros are expanded."""
    macros = _macros(tuple(macro_files))
    rewrite = read == "duckdb"
    out = []

    def _spark(tree, macros):  # noqa: F811 - the rewrites only for DuckDB text
        return _spark_sql(tree, macros, rewrite)

    # DuckDB's storage hints (`varchar using compression fsst`) mean nothing to Spark.
    text = _STORAGE_HINT.sub("", text)
    for tree in sqlglot.parse(text, read=read):
        if tree is None:
            continue
        if isinstance(tree, exp.Create):
            kind = (tree.kind or "").upper()
            if kind == "MACRO":
                continue  # expanded where it is called
            if kind == "SCHEMA":
                out.append(Statement("schema", tree.this.db or tree.this.name, ""))
                continue
            if kind == "VIEW":
                out.append(Statement("view", _target(tree.this), _spark(tree, macros)))
                continue
            if kind == "TABLE" and isinstance(tree.expression, exp.Query):
                query = tree.expression
                if tree.find(exp.TemporaryProperty) is not None:
                    # a connection's own temporary table: a session's temporary view in Spark
                    name = checked_identifier(_target(tree.this))
                    body = _spark(query, macros)
                    out.append(
                        Statement(
                            "view", name, f"CREATE OR REPLACE TEMPORARY VIEW `{name}` AS {body}"
                        )
                    )
                    continue
                with_ = tree.args.get("with_") or tree.args.get("with")
                if with_ is not None and query.args.get("with_") is None:
                    query = query.copy()
                    query.set("with_", with_.copy())
                out.append(Statement("create_table_as", _target(tree.this), _spark(query, macros)))
                continue
            if kind == "TABLE" and isinstance(tree.this, exp.Schema):
                columns = [
                    exp.alias_(exp.cast(exp.Null(), c.args["kind"]), c.name)
                    for c in tree.this.expressions
                    if isinstance(c, exp.ColumnDef)
                ]
                empty = exp.select(*columns).where(exp.false())
                out.append(Statement("create_table", _target(tree.this), _spark(empty, macros)))
                continue
        if isinstance(tree, exp.Insert):
            target = tree.this
            query = tree.expression
            names = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else []
            with_ = tree.args.get("with_") or tree.args.get("with")
            if with_ is not None and query.args.get("with_") is None:
                query = query.copy()
                query.set("with_", with_.copy())
            if names:
                query = exp.select(
                    *[exp.alias_(exp.column(f"_c{i}"), n) for i, n in enumerate(names)]
                ).from_(_numbered(query, len(names)))
            out.append(Statement("insert", _target(target), _spark(query, macros)))
            continue
        out.append(Statement("query", None, _spark(tree, macros)))
    return out


def _numbered(query: exp.Query, width: int) -> exp.Expression:
    """The query as a subquery whose columns are named _c0.._c{width-1} (by position)."""
    alias = exp.TableAlias(
        this=exp.to_identifier("_q"),
        columns=[exp.to_identifier(f"_c{i}") for i in range(width)],
    )
    return exp.Subquery(this=query, alias=alias)


@functools.cache
def _load(name: str, macro_files: tuple[str, ...], identifiers: tuple) -> tuple[Statement, ...]:
    override = OVERRIDES / f"{name.replace('/', '__')}.sql"
    if override.exists():
        # Written in Spark SQL; macros of the DuckDB files are still expanded.
        text = override.read_text(encoding="utf-8")
        return tuple(_override(text, macro_files))
    return tuple(transpile(load_sql(name, **dict(identifiers)), macro_files))


def _override(text: str, macro_files: tuple[str, ...]) -> list[Statement]:
    return transpile(text, macro_files, read="spark")


def load_spark_sql(
    name: str, macro_files: tuple[str, ...] = (), **identifiers: str
) -> tuple[Statement, ...]:
    """The Spark SQL statements of `sql/<name>.sql` (cached per file and identifiers), or its
    override `sql/spark_overrides/<schema>__<name>.sql` when there is one."""
    return _load(name, tuple(macro_files), tuple(sorted(identifiers.items())))


# Spark binds a NULL or a list only with its type: (Python value, Spark type of a NULL/list).
def _literal(value: Any, spark_type: str | None):
    from pyspark.sql import functions as F

    if value is None:
        if spark_type is None:
            raise ValueError("a NULL parameter needs its Spark type")
        return F.lit(None).cast(spark_type)
    if isinstance(value, list | tuple):
        # Spark takes array(<literals>) as an argument, not a cast of one: the SQL casts it.
        if not value:
            raise ValueError("an empty list parameter has no type: bind NULL instead")
        return F.array(*[F.lit(v) for v in value])
    if isinstance(value, Decimal | float | int | str | bool | date | datetime):
        return F.lit(value)  # a literal: Spark refuses a cast as an argument
    raise TypeError(f"cannot bind {type(value).__name__} as a Spark SQL parameter")


def parameters(values: Mapping[str, Any], types: Mapping[str, str] | None = None) -> dict:
    """`spark.sql(..., args=parameters(...))`: every value a typed literal, never SQL text."""
    types = types or {}
    return {name: _literal(v, types.get(name)) for name, v in values.items()}


def used_parameters(statement: str) -> set[str]:
    """The `:name` parameters a Spark statement uses (Spark rejects unused named arguments)."""
    return set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", statement))


def _typed_nulls(statement: str, nulls: Mapping[str, str]) -> str:
    """The statement with each NULL parameter written as `CAST(NULL AS <type>)`: Spark binds no
    typed NULL (`lit(None).cast(...)` is refused as an argument). Types come from the code."""

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in nulls:
            return exp.cast(exp.Null(), exp.DataType.build(nulls[node.name], dialect="spark"))
        return node

    return sqlglot.parse_one(statement, read="spark").transform(replace).sql(dialect="spark")


def run(spark, statement: str, values: Mapping[str, Any] | None = None, types=None):
    """Run one Spark SQL statement with its bound parameters (only those it uses); a NULL
    parameter needs its type in `types`."""
    wanted = used_parameters(statement)
    values = {k: v for k, v in (values or {}).items() if k in wanted}
    missing = wanted - set(values)
    if missing:
        raise ValueError(f"parameters not given: {', '.join(sorted(missing))}")
    types = types or {}
    nulls = {k: types.get(k) for k, v in values.items() if v is None}
    untyped = sorted(k for k, t in nulls.items() if t is None)
    if untyped:
        raise ValueError(f"NULL parameters need a Spark type: {', '.join(untyped)}")
    if nulls:
        statement = _typed_nulls(statement, nulls)
        values = {k: v for k, v in values.items() if v is not None}
    return spark.sql(statement, args=parameters(values, types))


def checked_identifier(name: str) -> str:
    """A schema or table name of the code (the same allow-list rule as `sql.quote_identifier`)."""
    quote_identifier(name)  # raises for anything but a plain lower-case name
    return name
