"""The folder tree is the architecture: pipelines/ is the Dagster code location, assets/ the thin
assets, engagement_box/ the domain code with no Dagster import (docs/ARCHITECTURE.md)."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE_LOCATION = {
    "__init__.py",
    "definitions.py",
    "resources.py",
    "runs.py",  # the run lock and the runs Dagster recorded, used by resources.py
    "errors.py",
    "partitions.py",
    "jobs.py",
    "schedules.py",
    "sensors.py",
    "loggers.py",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_domain_package_never_imports_dagster():
    offenders = {}
    for path in sorted((REPO / "engagement_box").rglob("*.py")):
        if path.name == "cli.py" and path.parent.name == "engagement_box":
            continue  # the operator's front end launches Dagster runs
        dagster = {m for m in imported_modules(path) if m.split(".")[0].startswith("dagster")}
        if dagster:
            offenders[str(path.relative_to(REPO))] = sorted(dagster)
    assert offenders == {}


def test_pipelines_holds_only_the_code_location():
    assert {p.name for p in (REPO / "pipelines").glob("*.py")} <= CODE_LOCATION


def test_no_domain_module_imports_the_code_location_or_the_assets():
    for path in sorted((REPO / "engagement_box").rglob("*.py")):
        if path.name == "cli.py" and path.parent.name == "engagement_box":
            continue
        roots = {m.split(".")[0] for m in imported_modules(path)}
        assert not roots & {"pipelines", "assets"}, path


# A statement that reads or writes the project's tables: a DML or DDL keyword first, and a
# project schema or a table whose name the code fills in.
_STATEMENT = re.compile(r"^\s*\(?\s*(SELECT|INSERT|DELETE|UPDATE|CREATE|DROP|ALTER|COPY|WITH)\b")
_PROJECT_TABLE = re.compile(
    r"\b(staging|intermediate|work|marts|history|history_rows)\.\w"
    r"|\b(FROM|INTO|TABLE|VIEW|UPDATE|JOIN)\s+\{"
)


def _string_text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with `{}` where it fills a value in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def inline_statements(code: str) -> list[tuple[int, str]]:
    """(line, text) of each string of the Python `code` that is a statement on the project's
    tables."""
    tree = ast.parse(code)
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # its parts are read with it
            skipped.update(id(v) for v in node.values)
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skipped.add(id(body[0].value))  # a docstring may quote a statement
    found = []
    for node in ast.walk(tree):
        text = None if id(node) in skipped else _string_text(node)
        if text and _STATEMENT.match(text) and _PROJECT_TABLE.search(text):
            found.append((node.lineno, text.split("\n")[0][:80]))
    return found


def test_statements_on_the_project_tables_live_in_sql_files():
    """STYLE: SQL in `sql/<schema>/<name>.sql`, read by `engagement_box/sql.py::load_sql`. A
    statement written inline in Python is found by no one reading `sql/` for what touches a
    table (transaction control, settings and DuckDB's own catalog questions may stay inline)."""
    found = {
        f"{path.relative_to(REPO)}:{line}": text
        for top in ("engagement_box", "assets", "pipelines")
        for path in sorted((REPO / top).rglob("*.py"))
        for line, text in inline_statements(path.read_text(encoding="utf-8"))
    }
    assert found == {}


def test_the_inline_statement_finder_finds_one():
    """The test above can fail: a statement on a project table, plain or as an f-string with a
    table name filled in, is found; a docstring quoting one and a catalog question are not."""
    source = (
        '"""SELECT * FROM marts.customer in a docstring"""\n'
        'a = "SELECT count(*) FROM marts.snapshot_log"\n'
        'b = f"DELETE FROM {table} WHERE as_of = $as_of"\n'
        'c = "SELECT current_database()"\n'
        'd = "SELECT name FROM pragma_table_info($relation)"\n'
    )
    assert [line for line, _ in inline_statements(source)] == [2, 3]
